"""Per-image scores and the paper's Fig. 8 MIoU bins.

Each image is scored from its own confusion matrix (255 ignored), with the rules of
:mod:`scdnn.metrics.confusion`: a class absent from both the image's truth and its prediction
has no IoU and is left out of that image's MIoU, so an all-background image predicted all
background scores MIoU 1.0; a class absent from the truth has no PA (``None``).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .confusion import scores_from_confusion

IGNORE = 255

# The paper's Fig. 8 bins, best first. "> 0.9" and "< 0.6" are strict as the paper writes them,
# so an edge value belongs to the bin that starts at it: 0.9 -> "0.8–0.9", 0.6 -> "0.6–0.7".
MIOU_BINS = ("> 0.9", "0.8–0.9", "0.7–0.8", "0.6–0.7", "< 0.6")
_EDGES = (0.9, 0.8, 0.7, 0.6)


def miou_bin(value: float) -> str:
    """The Fig. 8 bin of one MIoU: > 0.9 is strict; 0.8 ≤ v ≤ 0.9 is "0.8–0.9"; and so on
    down to "< 0.6", which is strict (0.6 itself is "0.6–0.7")."""
    if value > _EDGES[0]:
        return MIOU_BINS[0]
    for label, low in zip(MIOU_BINS[1:-1], _EDGES[1:]):
        if value >= low:
            return label
    return MIOU_BINS[-1]


def miou_bins(values: Iterable[float | None]) -> dict[str, dict[str, float]]:
    """Count and share of images per Fig. 8 bin (``None`` values are skipped)."""
    defined = [v for v in values if v is not None]
    counts = {label: 0 for label in MIOU_BINS}
    for value in defined:
        counts[miou_bin(value)] += 1
    n = len(defined)
    return {label: {"count": c, "fraction": (c / n if n else 0.0)} for label, c in counts.items()}


def image_confusion(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None
                    ) -> np.ndarray:
    """2x2 confusion counts of one image, rows = truth; 255 in ``target`` ignored."""
    pred = np.asarray(pred).astype(np.int64)
    target = np.asarray(target).astype(np.int64)
    keep = target != IGNORE
    if valid is not None:
        keep &= np.asarray(valid).astype(bool)
    return np.bincount(target[keep] * 2 + pred[keep], minlength=4).reshape(2, 2)


def per_image_scores(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None
                     ) -> dict[str, Any]:
    """MIoU, landslide and background PA and IoU of one image (see the module docstring)."""
    scores = scores_from_confusion(image_confusion(pred, target, valid))
    return {
        "miou": scores["miou"],
        "landslide_pa": scores["class_pa"]["landslide"],
        "background_pa": scores["class_pa"]["background"],
        "landslide_iou": scores["class_iou"]["landslide"],
        "background_iou": scores["class_iou"]["background"],
    }
