"""Object scores: are the predicted landslides the true landslides, one for one?

A landslide map is read as a set of landslides, not only as pixels: an inventory that splits
one landslide into forty pieces, or merges two into one, has the wrong landslides even at a
good pixel IoU. These scores count objects.

Definitions
-----------
- Objects: the connected components (8-neighbour) of the landslide pixels (value 1) of the
  truth and of the prediction, over scored pixels only: pixels that are 255 in the truth or
  ``False`` in ``valid`` belong to no object (so no-data splits what it crosses, and an object
  cut by the image edge or by no-data is scored as the part that is seen).
- Matching: a true and a predicted object match when their intersection over union (pixels)
  is at least ``min_iou`` (0.5), one to one. At 0.5 or above a pair is unique: IoU >= 0.5
  means the intersection holds at least half of each object, so two disjoint objects could
  both match a third only by each filling exactly half of it, and then they would touch and
  be one connected object. Below 0.5 (``min_iou`` is a parameter) pairs are taken in order of
  decreasing IoU, each object at most once.
- Counts add up over images: ``true`` and ``pred`` objects, ``matched`` pairs, the sum of the
  matched pairs' IoU, and the true and predicted landslide areas (pixels).

From the counts: precision = matched / pred, recall = matched / true, F1 their harmonic
mean (0 when one side has no object); ``count_ratio`` = pred / true (1 is right, 259 means
hundreds of fragments per landslide); ``matched_iou`` = mean IoU of the matched pairs;
``area_bias`` = (predicted area - true area) / true area. A ratio with a zero denominator
is ``None``, except that precision, recall and F1 are 1.0 when there is no object in truth
nor prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..records import IGNORE_INDEX

__all__ = ["OBJECT_COUNT_KEYS", "label_objects", "object_counts", "object_scores",
           "MIN_IOU"]

MIN_IOU = 0.5
OBJECT_COUNT_KEYS = ("true", "pred", "matched", "matched_iou_sum", "true_area", "pred_area")
_EIGHT = np.ones((3, 3), dtype=bool)


def label_objects(mask: Any, keep: Any = None) -> tuple[np.ndarray, int]:
    """Connected components (8-neighbour) of the pixels equal to 1 in ``mask`` where ``keep``
    (default everywhere): ``(labels int32, count)``, labels 1..count, 0 elsewhere."""
    fg = np.asarray(mask) == 1
    if keep is not None:
        fg &= np.asarray(keep, dtype=bool)
    labels, count = ndimage.label(fg, structure=_EIGHT)
    return labels.astype(np.int32, copy=False), int(count)


def _pairs(true_labels: np.ndarray, n_true: int, pred_labels: np.ndarray, n_pred: int
           ) -> list[tuple[float, int, int]]:
    """``(iou, true label, pred label)`` of every overlapping pair."""
    both = (true_labels > 0) & (pred_labels > 0)
    if not both.any():
        return []
    t_area = np.bincount(true_labels.ravel(), minlength=n_true + 1)
    p_area = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    key = true_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    keys, inter = np.unique(key, return_counts=True)
    t, p = keys // (n_pred + 1), keys % (n_pred + 1)
    iou = inter / (t_area[t] + p_area[p] - inter)
    return [(float(i), int(a), int(b)) for i, a, b in zip(iou, t, p, strict=False)]


def object_counts(pred: Any, target: Any, valid: Any = None, min_iou: float = MIN_IOU
                  ) -> dict[str, float]:
    """Object counts of one image (definitions in the module docstring).

    Parameters
    ----------
    pred : 2-D array, 1 = landslide (anything else is not)
    target : 2-D array of the same shape in {0, 1, 255}; 255 is not scored
    valid : 2-D bool array, optional; ``False`` is not scored, as 255 in ``target``
    min_iou : the IoU a pair needs to match (0.5)
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(f"pred and target must be 2-D arrays of one shape, got {pred.shape} "
                         f"and {target.shape}")
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    keep = target != IGNORE_INDEX
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    true_labels, n_true = label_objects(target, keep)
    pred_labels, n_pred = label_objects(pred, keep)
    used_true: set[int] = set()
    used_pred: set[int] = set()
    matched, iou_sum = 0, 0.0
    for iou, t, p in sorted(_pairs(true_labels, n_true, pred_labels, n_pred),
                            key=lambda x: (-x[0], x[1], x[2])):
        if iou < min_iou:
            break
        if t in used_true or p in used_pred:
            continue
        used_true.add(t)
        used_pred.add(p)
        matched += 1
        iou_sum += iou
    return {"true": n_true, "pred": n_pred, "matched": matched, "matched_iou_sum": iou_sum,
            "true_area": int((true_labels > 0).sum()), "pred_area": int((pred_labels > 0).sum())}


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def object_scores(counts: dict[str, float]) -> dict[str, Any]:
    """Precision, recall, F1, count ratio, mean matched IoU and area bias from (summed)
    :func:`object_counts`, plus the counts themselves."""
    true, pred, matched = counts["true"], counts["pred"], counts["matched"]
    if true == 0 and pred == 0:
        precision = recall = f1 = 1.0
    else:
        precision, recall = _ratio(matched, pred), _ratio(matched, true)
        f1 = (0.0 if not precision or not recall
              else 2 * precision * recall / (precision + recall))
    return {"precision": precision, "recall": recall, "f1": f1,
            "count_ratio": _ratio(pred, true),
            "matched_iou": _ratio(counts["matched_iou_sum"], matched),
            "area_bias": None if counts["true_area"] == 0 else
            (counts["pred_area"] - counts["true_area"]) / counts["true_area"],
            "true_objects": int(true), "pred_objects": int(pred), "matched": int(matched)}
