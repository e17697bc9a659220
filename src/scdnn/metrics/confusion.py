"""The paper's metrics (Li et al. 2024, Eqs. 20–24) from a confusion matrix.

``cm[i, j]`` counts pixels of true class ``i`` predicted as class ``j`` (rows = truth), class 0
background, class 1 landslide; ``p_ij`` in the paper's notation.

Undefined ratios: a class with no pixels in the truth has no PA (0/0), and a class absent from
both truth and prediction has no IoU. Such entries are ``None`` and are left out of the means
(MPA, MIoU), as ``nanmean`` would; FWIoU weighs a class by its truth frequency, which is 0 for a
class absent from the truth, so it is unaffected. An all-zero matrix gives ``None`` throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASS_NAMES = ("background", "landslide")


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def scores_from_confusion(cm: Any) -> dict[str, Any]:
    """PA, MPA, MIoU, FWIoU, per-class PA/IoU and landslide precision/recall/F1.

    Parameters
    ----------
    cm : (2, 2) array-like of counts, rows = truth, columns = prediction.

    Returns
    -------
    dict with keys ``pa`` (Eq. 20), ``mpa`` (Eq. 21), ``miou`` (Eqs. 22–23), ``fwiou``
    (Eq. 24), ``class_pa``, ``class_iou`` (keyed by class name), ``confusion`` (the counts),
    ``confusion_normalized`` (rows divided by their sums, the paper's Table 1),
    ``landslide_precision``, ``landslide_recall``, ``landslide_f1`` and ``pixels``.
    Fractions in 0–1; ``None`` where undefined (see the module docstring).
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(CLASS_NAMES), len(CLASS_NAMES)):
        raise ValueError(f"expected a {len(CLASS_NAMES)}x{len(CLASS_NAMES)} matrix, got {cm.shape}")
    total = int(cm.sum())
    diag = np.diag(cm)
    truth = cm.sum(axis=1)  # Σ_j p_ij
    pred = cm.sum(axis=0)   # Σ_j p_ji
    class_pa = [_ratio(diag[i], truth[i]) for i in range(len(CLASS_NAMES))]
    class_iou = [_ratio(diag[i], truth[i] + pred[i] - diag[i]) for i in range(len(CLASS_NAMES))]
    fwiou = None
    if total:
        fwiou = float(sum(truth[i] / total * iou for i, iou in enumerate(class_iou)
                          if iou is not None))
    precision = _ratio(diag[1], pred[1])
    recall = class_pa[1]
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "pa": _ratio(diag.sum(), total),
        "mpa": _mean(class_pa),
        "miou": _mean(class_iou),
        "fwiou": fwiou,
        "class_pa": dict(zip(CLASS_NAMES, class_pa)),
        "class_iou": dict(zip(CLASS_NAMES, class_iou)),
        "confusion": cm.tolist(),
        "confusion_normalized": [[_ratio(cm[i, j], truth[i]) for j in range(len(CLASS_NAMES))]
                                 for i in range(len(CLASS_NAMES))],
        "landslide_precision": precision,
        "landslide_recall": recall,
        "landslide_f1": f1,
        "pixels": total,
    }
