"""Boundary F1: do predicted landslide outlines lie on the true ones?

The paper is about boundaries but scores only area overlap; this scores the outlines.

A mask's boundary pixels are its landslide pixels with at least one 4-neighbour that is
background (the inner boundary). The image border is not a boundary: pixels beyond it count as
equal to their neighbour (edge padding). A predicted boundary pixel is *matched* when a true
boundary pixel lies within ``tolerance`` pixels (Euclidean distance), and vice versa. Pixels
labelled 255 in the truth, or outside ``valid``, belong to neither boundary set.

Counts add up over images, so a dataset's boundary F1 comes from summed counts (pixels, not a
mean of per-image F1s): precision = matched predicted / predicted boundary pixels, recall =
matched true / true boundary pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

IGNORE = 255


def boundary_pixels(mask: np.ndarray) -> np.ndarray:
    """Inner boundary of a binary mask (bool, same shape)."""
    fg = np.asarray(mask).astype(bool)
    padded = np.pad(fg, 1, mode="edge")
    interior = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return fg & ~interior


def _within(points: np.ndarray, targets: np.ndarray, tolerance: float) -> int:
    """How many ``points`` lie within ``tolerance`` px of any ``targets`` pixel."""
    if not points.any():
        return 0
    if not targets.any():
        return 0
    distance = ndimage.distance_transform_edt(~targets)
    return int((distance[points] <= tolerance).sum())


def boundary_counts(pred: np.ndarray, target: np.ndarray, tolerance: float = 2,
                    valid: np.ndarray | None = None) -> dict[str, int]:
    """Boundary pixel counts of one image (see the module docstring)."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    keep = target != IGNORE
    if valid is not None:
        keep &= np.asarray(valid).astype(bool)
    pred_b = boundary_pixels(pred == 1) & keep
    true_b = boundary_pixels(target == 1) & keep
    return {
        "pred_boundary": int(pred_b.sum()),
        "pred_matched": _within(pred_b, true_b, tolerance),
        "true_boundary": int(true_b.sum()),
        "true_matched": _within(true_b, pred_b, tolerance),
    }


def boundary_f1_from_counts(counts: dict[str, int]) -> dict[str, float]:
    """Precision, recall and F1 from (summed) boundary counts.

    Both boundary sets empty: 1.0 (both agree there is no outline); exactly one empty: 0.0.
    """
    n_pred, n_true = counts["pred_boundary"], counts["true_boundary"]
    if n_pred == 0 and n_true == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = counts["pred_matched"] / n_pred if n_pred else 0.0
    recall = counts["true_matched"] / n_true if n_true else 0.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}
