"""Score masks held in memory with the package's metrics (:class:`.evaluator.Evaluator`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import InvalidValueError
from .evaluator import Evaluator
from .per_image import IGNORE_INDEX

__all__ = ["evaluate_masks"]


def evaluate_masks(predictions: Sequence[Any], truths: Sequence[Any], tolerance: float = 2,
                   names: Sequence[str] | None = None,
                   pixel_size_m: float | Sequence[float | None] | None = None
                   ) -> dict[str, Any]:
    """The dataset metrics of predicted masks against their truth, as ``scdnn evaluate``
    computes them.

    Parameters
    ----------
    predictions : sequence of arrays
        Predicted masks, ``H x W`` numpy arrays or tensors holding 0 (background) and 1
        (landslide); bool accepted. One 2-D array is taken as one mask.
    truths : sequence of arrays
        The true masks, one per prediction and of its shape: 0, 1, and 255 for pixels that
        are not scored (no data).
    tolerance : float
        Boundary F1 matching distance in pixels.
    names : sequence of str, optional
        The masks' names (per-image rows; default ``"0"``, ``"1"``...).
    pixel_size_m : float or sequence of (float or None), optional
        The side of a pixel in metres, of every mask or of each: those masks are also scored
        at the ground tolerances 0.5, 1, 2 and 4 m (``boundary_f1_at_m``, converted to pixels
        with each mask's pixel size). None: pixel tolerances only.

    Returns
    -------
    dict
        The metrics ``metrics.json`` holds besides ``scored``, ``source`` and
        ``provenance``: ``pa``, ``mpa``, ``miou``, ``fwiou`` (fractions), ``class_pa``,
        ``class_iou``, ``confusion``, ``landslide_f1``, ``boundary_f1``, ``miou_bins``,
        ``images``... (:meth:`scdnn.metrics.Evaluator.compute`).

    Raises
    ------
    InvalidValueError
        The sequences differ in length, a pair differs in shape or is not 2-D, or a mask
        holds other values.
    """
    predictions, truths = _masks(predictions), _masks(truths)
    if len(predictions) != len(truths):
        raise InvalidValueError(f"{len(predictions)} prediction(s) but {len(truths)} truth "
                                f"mask(s); give one truth per prediction", option="truths")
    names = [str(i) for i in range(len(predictions))] if names is None else list(names)
    if len(names) != len(predictions):
        raise InvalidValueError(f"has {len(names)} names but there are {len(predictions)} "
                                f"masks", option="names")
    sizes = (list(pixel_size_m) if isinstance(pixel_size_m, (list, tuple, np.ndarray))
             else [pixel_size_m] * len(predictions))
    if len(sizes) != len(predictions) or not all(
            p is None or isinstance(p, (int, float, np.floating)) and 0 < p < np.inf
            for p in sizes):
        raise InvalidValueError(f"must be one pixel size in metres > 0 (or None), or one per "
                                f"mask ({len(predictions)}), got {pixel_size_m!r}",
                                option="pixel_size_m")
    if not tolerance >= 0:
        raise InvalidValueError(f"must be a number of pixels ≥ 0, got {tolerance}",
                                option="tolerance")
    evaluator = Evaluator(tolerance=tolerance)
    for i, (pred, truth, name, size) in enumerate(zip(predictions, truths, names, sizes,
                                                      strict=True)):
        if pred.ndim != 2 or pred.shape != truth.shape:
            raise InvalidValueError(f"predictions[{i}] is {pred.shape} but truths[{i}] is "
                                    f"{truth.shape}; both must be the same H x W")
        if not np.isin(pred, (0, 1)).all():
            raise InvalidValueError(f"predictions[{i}] holds values other than 0 and 1 "
                                    f"(e.g. {pred[~np.isin(pred, (0, 1))].flat[0]})")
        if not np.isin(truth, (0, 1, IGNORE_INDEX)).all():
            raise InvalidValueError(f"truths[{i}] holds values other than 0, 1 and {IGNORE_INDEX} "
                                    "(e.g. "
                                    f"{truth[~np.isin(truth, (0, 1, IGNORE_INDEX))].flat[0]})")
        evaluator.update(pred.astype(np.uint8), truth.astype(np.uint8), name,
                         pixel_size_m=None if size is None else float(size))
    return evaluator.compute()


def _masks(masks: Any) -> list[np.ndarray]:
    """A list of numpy arrays from a sequence of arrays or tensors (one 2-D array: one mask)."""
    if hasattr(masks, "detach"):  # a torch tensor
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = [masks]
    return [np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m) for m in masks]
