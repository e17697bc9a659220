"""Boundary F1: do the predicted landslide outlines lie on the true ones?

The paper is about boundaries but scores only area overlap; this scores the outlines.

Definitions
-----------
- Boundary pixels of a binary mask: the *inner* boundary, i.e. landslide pixels with at least
  one 4-neighbour (up, down, left, right) that is background.
- The image border is not a boundary: pixels outside the image count as equal to their
  neighbour (edge padding), so a landslide touching the border has no outline there.
- Ignored pixels (255 in the truth, or ``valid == False``) are in neither boundary set, and
  they are treated like pixels outside the image: a landslide pixel whose only background-side
  neighbours are ignored is not a boundary pixel. (So padding a tile with 255 does not create
  an outline along the old image edge.) This applies to the truth and the prediction alike.
- A predicted boundary pixel is *matched* when a true boundary pixel lies within ``tolerance``
  pixels (Euclidean distance between pixel centres, ``<=``, via
  ``scipy.ndimage.distance_transform_edt``); a true boundary pixel is matched likewise by a
  predicted one. ``tolerance=0`` asks for the same pixel.

Precision = matched predicted / predicted boundary pixels; recall = matched true / true
boundary pixels; F1 their harmonic mean. Counts add up over images, so a dataset's boundary F1
is computed from the summed counts (every boundary pixel weighs the same), not as a mean of the
per-image F1s.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..records import IGNORE_INDEX

COUNT_KEYS = ("pred_boundary", "pred_matched", "true_boundary", "true_matched")


def boundary_pixels(mask: Any, keep: Any = None) -> np.ndarray:
    """Inner boundary of a binary mask.

    Parameters
    ----------
    mask : 2-D array, non-zero = landslide.
    keep : 2-D bool array, optional
        Pixels to score; the others belong to no boundary and never make a neighbour a
        boundary pixel (they behave like pixels outside the image).

    Returns
    -------
    numpy.ndarray of bool, same shape as ``mask``.
    """
    fg = np.asarray(mask).astype(bool)
    keep = np.ones_like(fg) if keep is None else np.asarray(keep).astype(bool)
    fg = fg & keep
    background = np.pad(~fg & keep, 1, mode="constant", constant_values=False)
    touches = (background[:-2, 1:-1] | background[2:, 1:-1]
               | background[1:-1, :-2] | background[1:-1, 2:])
    return fg & touches


def _matched(points: np.ndarray, targets: np.ndarray, tolerances: Sequence[float]
             ) -> list[int]:
    """How many ``points`` lie within each tolerance (px) of a ``targets`` pixel: one
    distance transform for all tolerances."""
    if not points.any() or not targets.any():
        return [0] * len(tolerances)
    distance = ndimage.distance_transform_edt(~targets)[points]
    return [int((distance <= tolerance).sum()) for tolerance in tolerances]


def _as_2d(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(f"pred and target must be 2-D arrays of one shape, got {pred.shape} "
                         f"and {target.shape}")
    return pred, target


def boundary_counts(pred: Any, target: Any, tolerance: float = 2,
                    valid: Any = None) -> dict[str, int]:
    """Boundary pixel counts of one image (definitions in the module docstring).

    Parameters
    ----------
    pred : 2-D array in {0, 1} (1 = landslide).
    target : 2-D array in {0, 1, 255}; 255 is ignored.
    tolerance : float
        Matching distance in pixels (>= 0).
    valid : 2-D bool array, optional
        ``False`` marks pixels to ignore, as 255 does.

    Returns
    -------
    dict
        ``pred_boundary``, ``pred_matched``, ``true_boundary``, ``true_matched`` (ints).
        Sum them over images and pass the sums to :func:`boundary_f1_from_counts`.
    """
    return boundary_counts_at(pred, target, (tolerance,), valid)[tolerance]


def boundary_counts_in_strips(pred: Any, target: Any, tolerance: float = 2,
                              valid: Any = None, strip_rows: int = 1024) -> dict[str, int]:
    """:func:`boundary_counts` of a large image, computed strip by strip (see
    :func:`boundary_counts_at`)."""
    return boundary_counts_at(pred, target, (tolerance,), valid, strip_rows)[tolerance]


def boundary_counts_at(pred: Any, target: Any, tolerances: Sequence[float] = (2,),
                       valid: Any = None, strip_rows: int | None = None
                       ) -> dict[float, dict[str, int]]:
    """:func:`boundary_counts` at several tolerances at once (one distance transform each
    way), ``{tolerance: counts}``.

    With ``strip_rows``, a large image is done strip by strip: each strip of ``strip_rows``
    rows is extended by a halo of ``ceil(max tolerance) + 1`` rows above and below (enough
    for a boundary pixel's neighbours and for every match within the tolerance), and only the
    boundary pixels of the strip's own rows are counted; the result equals the whole image's,
    with the distance transforms' memory bounded by the strip size.
    """
    pred, target = _as_2d(pred, target)
    tolerances = tuple(tolerances)
    if not tolerances or min(tolerances) < 0:
        raise ValueError(f"tolerances must be >= 0, got {tolerances}")
    keep_all = target != IGNORE_INDEX
    if valid is not None:
        keep_all = keep_all & np.asarray(valid).astype(bool)
    height = pred.shape[0]
    strip = height if strip_rows is None else strip_rows
    halo = 0 if strip_rows is None else int(np.ceil(max(tolerances))) + 1
    totals = {tol: {key: 0 for key in COUNT_KEYS} for tol in tolerances}
    for top in range(0, height, max(1, strip)):
        bottom = min(height, top + strip)
        lo, hi = max(0, top - halo), min(height, bottom + halo)
        keep = keep_all[lo:hi]
        pred_b = boundary_pixels(pred[lo:hi] == 1, keep)
        true_b = boundary_pixels(target[lo:hi] == 1, keep)
        core = np.zeros_like(pred_b)
        core[top - lo:bottom - lo] = True
        pred_core, true_core = pred_b & core, true_b & core
        pred_matched = _matched(pred_core, true_b, tolerances)
        true_matched = _matched(true_core, pred_b, tolerances)
        for i, tol in enumerate(tolerances):
            totals[tol]["pred_boundary"] += int(pred_core.sum())
            totals[tol]["pred_matched"] += pred_matched[i]
            totals[tol]["true_boundary"] += int(true_core.sum())
            totals[tol]["true_matched"] += true_matched[i]
    return totals


def boundary_f1_from_counts(counts: dict[str, int]) -> dict[str, float]:
    """Precision, recall and F1 from (summed) boundary counts.

    Both boundary sets empty: precision = recall = F1 = 1.0 (both agree there is no outline).
    Exactly one empty: F1 = 0.0, and the ratio with an empty denominator is 0.0 too.

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1`` (floats in 0–1).
    """
    n_pred, n_true = int(counts["pred_boundary"]), int(counts["true_boundary"])
    if n_pred == 0 and n_true == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = counts["pred_matched"] / n_pred if n_pred else 0.0
    recall = counts["true_matched"] / n_true if n_true else 0.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
