"""True and predicted landslide boundaries drawn over an image: the one drawing of the
evaluation report's examples and the benchmark's Fig. 9.

Colours: true boundary yellow, predicted boundary red (and, when asked, the predicted
landslide tinted red). Pure numpy/scipy: the callers put the picture into a matplotlib figure.
"""

from __future__ import annotations

import numpy as np

from .metrics import boundary_pixels
from .records import IGNORE_INDEX

__all__ = ["TRUTH_COLOUR", "PRED_COLOUR", "display_rgb", "boundary_overlay"]

TRUTH_COLOUR = (1.0, 0.85, 0.0)   # yellow
PRED_COLOUR = (0.9, 0.1, 0.1)     # red


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An ``H x W x 3`` float image in 0–1 from an ``H x W`` or ``H x W x C`` uint8 image
    (the first three bands; one or two bands shown grey)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    return image.astype(np.float32) / 255.0


def _outline(mask: np.ndarray, keep: np.ndarray | None, width: int) -> np.ndarray:
    """The mask's inner boundary (:func:`scdnn.metrics.boundary_pixels`), ``width`` px wide."""
    edge = boundary_pixels(mask, keep)
    if width > 1 and edge.any():
        from scipy import ndimage

        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge


def boundary_overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray | None,
                     width: int = 1, tint: float = 0.0) -> np.ndarray:
    """``image`` (``H x W [x C]`` uint8) as ``H x W x 3`` floats in 0–1 with the true boundary
    in yellow and, if ``pred`` is given, the predicted boundary in red, ``width`` pixels wide.

    ``truth`` holds 0/1/255: pixels labelled 255 are ignored (no boundary along them);
    ``pred`` is a 0/1 (or bool) mask. ``tint`` > 0 also blends the predicted landslide with red
    by that weight, which keeps a prediction visible that has no boundary inside the image
    (all landslide: the image border is no boundary).
    """
    truth = np.asarray(truth)
    rgb = display_rgb(image).copy()
    keep = truth != IGNORE_INDEX
    if pred is not None:
        pred = np.asarray(pred).astype(bool)
        if tint:
            rgb[pred] = (1 - tint) * rgb[pred] + tint * np.asarray(PRED_COLOUR, np.float32)
    rgb[_outline(truth == 1, keep, width)] = TRUTH_COLOUR
    if pred is not None:
        rgb[_outline(pred, None, width)] = PRED_COLOUR
    return rgb
