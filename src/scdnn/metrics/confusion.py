"""The paper's metrics (Li et al. 2024, Eqs. 20–24) from a confusion matrix.

``cm[i, j]`` counts pixels of true class ``i`` predicted as class ``j`` (rows = truth, columns =
prediction), class 0 background, class 1 landslide: ``p_ij`` in the paper's notation. The paper's
sums over ``i = 0..k`` are read as means over the two classes.

Undefined ratios (0/0) are ``None``, never 0 and never NaN:

- a class with no pixels in the truth has no PA (``class_pa``, its ``confusion_normalized`` row
  and, for landslide, no recall);
- a class absent from both truth and prediction has no IoU;
- no predicted landslide pixels: no landslide precision; landslide F1 = 2TP / (2TP + FP + FN)
  is ``None`` only when landslide is absent from both truth and prediction.

``None`` entries are left out of the means (MPA, MIoU), as ``nanmean`` would do. FWIoU weighs a
class by its share of the truth, which is 0 for a class whose IoU is undefined, so it needs no
rule. An all-zero matrix (nothing scored) gives ``None`` for every score and ``pixels`` = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASS_NAMES = ("background", "landslide")
_K = len(CLASS_NAMES)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(sum(defined) / len(defined)) if defined else None


def scores_from_confusion(cm: Any) -> dict[str, Any]:
    """PA, MPA, MIoU, FWIoU, per-class PA and IoU, landslide precision/recall/F1.

    Parameters
    ----------
    cm : array-like, shape (2, 2)
        Non-negative integer counts, rows = truth, columns = prediction, order
        ``CLASS_NAMES`` (background, landslide).

    Returns
    -------
    dict
        ``pa`` (Eq. 20), ``mpa`` (Eq. 21), ``miou`` (Eqs. 22–23), ``fwiou`` (Eq. 24),
        ``class_pa`` and ``class_iou`` (keyed by class name), ``confusion`` (the counts as
        nested lists), ``confusion_normalized`` (each row divided by its sum: the paper's
        Table 1), ``landslide_precision``, ``landslide_recall``, ``landslide_f1`` and
        ``pixels`` (total count). Scores are fractions in 0–1 as plain floats, ``None`` where
        undefined (see the module docstring); the dict is JSON-serialisable.

    Raises
    ------
    ValueError
        ``cm`` is not 2x2 or holds negative counts (a programming error, not a user one).
    """
    cm = np.asarray(cm)
    if cm.shape != (_K, _K):
        raise ValueError(f"expected a {_K}x{_K} confusion matrix, got shape {cm.shape}")
    cm = cm.astype(np.int64)
    if (cm < 0).any():
        raise ValueError("confusion matrix has negative counts")
    total = int(cm.sum())
    diag = [int(cm[i, i]) for i in range(_K)]
    truth = [int(cm[i, :].sum()) for i in range(_K)]  # Σ_j p_ij
    pred = [int(cm[:, i].sum()) for i in range(_K)]   # Σ_j p_ji
    class_pa = [_ratio(diag[i], truth[i]) for i in range(_K)]
    class_iou = [_ratio(diag[i], truth[i] + pred[i] - diag[i]) for i in range(_K)]
    fwiou = None
    if total:
        fwiou = float(sum(truth[i] / total * iou for i, iou in enumerate(class_iou)
                          if iou is not None))
    tp, fp, fn = diag[1], pred[1] - diag[1], truth[1] - diag[1]
    return {
        "pa": _ratio(sum(diag), total),
        "mpa": _mean(class_pa),
        "miou": _mean(class_iou),
        "fwiou": fwiou,
        "class_pa": dict(zip(CLASS_NAMES, class_pa, strict=False)),
        "class_iou": dict(zip(CLASS_NAMES, class_iou, strict=False)),
        "confusion": [[int(v) for v in row] for row in cm],
        "confusion_normalized": [[_ratio(cm[i, j], truth[i]) for j in range(_K)]
                                 for i in range(_K)],
        "landslide_precision": _ratio(tp, pred[1]),
        "landslide_recall": class_pa[1],
        "landslide_f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "pixels": total,
    }
