"""Per-image scores and the paper's Fig. 8 MIoU bins.

Per image
---------
Each image is scored from its own 2x2 confusion matrix (truth 255 ignored) with the rules of
:mod:`scdnn.metrics.confusion`:

- a class absent from both the image's truth and its prediction has no IoU (0/0) and is left
  out of that image's MIoU, so an all-background image predicted all background scores
  MIoU 1.0, and predicting one false landslide pixel on it drops MIoU to about 0.5 (background
  IoU ~1, landslide IoU 0);
- a class absent from the image's truth has no PA: ``None`` (an empty cell in per_image.csv).

Fig. 8 bins
-----------
``MIOU_BINS`` = ("> 0.9", "0.8–0.9", "0.7–0.8", "0.6–0.7", "< 0.6"). The two outer labels are
strict, as the paper writes them; an edge value goes to the bin *below* it, except 0.6, which
"< 0.6" excludes:

    "> 0.9"    0.9 < v
    "0.8–0.9"  0.8 < v <= 0.9
    "0.7–0.8"  0.7 < v <= 0.8
    "0.6–0.7"  0.6 <= v <= 0.7
    "< 0.6"    v < 0.6

Values are compared as computed (no rounding).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..records import IGNORE_INDEX
from .confusion import scores_from_confusion

MIOU_BINS = ("> 0.9", "0.8–0.9", "0.7–0.8", "0.6–0.7", "< 0.6")


def miou_bin(value: float) -> str:
    """The Fig. 8 bin label of one MIoU (edges in the module docstring)."""
    if value > 0.9:
        return MIOU_BINS[0]
    if value > 0.8:
        return MIOU_BINS[1]
    if value > 0.7:
        return MIOU_BINS[2]
    if value >= 0.6:
        return MIOU_BINS[3]
    return MIOU_BINS[4]


def miou_bins(values: Iterable[float | None]) -> dict[str, dict[str, Any]]:
    """Count and fraction of images per Fig. 8 bin, in ``MIOU_BINS`` order.

    ``None`` values (no scored pixels) are skipped and not counted in the denominator; with no
    values every fraction is 0.0.

    Returns
    -------
    dict
        ``{label: {"count": int, "fraction": float}}`` for every label of ``MIOU_BINS``.
    """
    counts = {label: 0 for label in MIOU_BINS}
    for value in values:
        if value is not None:
            counts[miou_bin(value)] += 1
    n = sum(counts.values())
    return {label: {"count": c, "fraction": (c / n if n else 0.0)} for label, c in counts.items()}


def image_confusion(pred: Any, target: Any, valid: Any = None) -> np.ndarray:
    """2x2 confusion counts of one image, rows = truth; truth 255 and ``valid == False``
    ignored."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    keep = target != IGNORE_INDEX
    if valid is not None:
        keep &= np.asarray(valid).astype(bool)
    t, p = target[keep], pred[keep]
    if not (np.isin(t, (0, 1)).all() and np.isin(p, (0, 1)).all()):
        raise ValueError("pred must hold only 0/1 and target only 0/1/255")
    return np.bincount(t.astype(np.int64) * 2 + p.astype(np.int64), minlength=4).reshape(2, 2)


def per_image_scores(pred: Any, target: Any, valid: Any = None) -> dict[str, float | None]:
    """MIoU and per-class PA and IoU of one image (rules in the module docstring).

    Parameters
    ----------
    pred : array, values in {0, 1}.
    target : array of the same shape, values in {0, 1, 255}; 255 is ignored.
    valid : bool array, optional; ``False`` pixels are ignored too.

    Returns
    -------
    dict
        ``miou``, ``landslide_pa``, ``background_pa``, ``landslide_iou``, ``background_iou``:
        fractions, or ``None`` where undefined.
    """
    scores = scores_from_confusion(image_confusion(pred, target, valid))
    return {
        "miou": scores["miou"],
        "landslide_pa": scores["class_pa"]["landslide"],
        "background_pa": scores["class_pa"]["background"],
        "landslide_iou": scores["class_iou"]["landslide"],
        "background_iou": scores["class_iou"]["background"],
    }
