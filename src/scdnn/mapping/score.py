"""Scenes predicted for scoring: the mask ``scdnn map`` would write, held in memory.

:func:`predict_scene_mask` predicts a labelled scene exactly as ``scdnn map`` predicts it (the
same windows, batches and blending, :func:`.predict.predict_windows` and :func:`.predict.blend`);
:func:`scdnn.evaluation.evaluate` scores it on every valid labelled pixel.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
from rasterio.windows import Window

from ..datasets.io import IGNORE_INDEX
from ..datasets.scenes import LabelledScene
from ..errors import UserError
from .predict import blend, output_stride, predict_windows
from .tiling import blend_weights, window_grid

__all__ = ["evaluate_scenes", "predict_scene_mask"]


def evaluate_scenes(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`scdnn.evaluation.evaluate` (scenes and images alike), kept under its old name."""
    from ..evaluation import evaluate

    return evaluate(*args, **kwargs)


def predict_scene_mask(model, card: dict, scene: LabelledScene, tile: int, overlap: int,
                       batch_size: int, threshold: float, device: str = "cpu",
                       progress: Callable[[Iterable], Iterable] = iter) -> np.ndarray:
    """The landslide mask ``scdnn map`` would write for ``scene`` (uint8 0/1, 255 = no data)."""
    sc = scene.scene
    if sc.channels != card.in_channels:
        raise UserError(f"scene gives {sc.channels} channels ({', '.join(sc.inputs)}) but the "
                        f"model takes {card.in_channels} ({', '.join(card.inputs)})",
                        sc.path)
    normalization = card.normalization
    windows = [w for w in window_grid(sc.height, sc.width, tile, overlap,
                                      align=output_stride(model, card))
               if sc.valid_mask(w).any()]
    mask = np.full((sc.height, sc.width), IGNORE_INDEX, np.uint8)
    if not windows:
        return mask
    predictions = predict_windows(model, sc, progress(windows), normalization, batch_size,
                                  device)
    weight = blend_weights(int(windows[0].height), int(windows[0].width), overlap)
    for row0, probability in blend(predictions, weight, sc.height, sc.width):
        valid = sc.valid_mask(Window(0, row0, sc.width, len(probability)))
        valid &= np.isfinite(probability)
        rows = slice(row0, row0 + len(probability))
        mask[rows] = np.where(valid, probability >= threshold, IGNORE_INDEX)
    return mask
