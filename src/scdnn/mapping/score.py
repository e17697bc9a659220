"""Scenes predicted for scoring: the mask ``scdnn map`` would write, held in memory.

:func:`predict_scene_mask` predicts a labelled scene exactly as ``scdnn map`` predicts it (the
same windows, batches and blending, :func:`.core.predict_scene`);
:func:`scdnn.evaluation.evaluate` scores it on every valid labelled pixel.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from ..datasets.io import IGNORE_INDEX
from ..datasets.scenes import LabelledScene
from ..errors import InvalidValueError
from ..records import ModelCard

__all__ = ["predict_scene_mask"]


def predict_scene_mask(model, card: ModelCard, scene: LabelledScene, tile: int, overlap: int,
                       batch_size: int, threshold: float, device: str = "cpu",
                       progress: Callable[[Iterable], Iterable] = iter,
                       tta: str = "none") -> np.ndarray:
    """The landslide mask ``scdnn map`` would write for ``scene`` (uint8 0/1, 255 = no data),
    predicted by :func:`.core.predict_scene`. ``model`` is a network with its ``card``, on
    ``device`` (with test-time augmentation ``tta``), or a :class:`scdnn.Predictor` (its own
    ``tta``)."""
    from ..predictor import Predictor
    from .core import Tiling, plan_windows, predict_scene

    sc = scene.scene
    if sc.channels != card.in_channels:
        raise InvalidValueError(f"scene gives {sc.channels} channels ({', '.join(sc.inputs)}) but "
                                f"the model takes {card.in_channels} ({', '.join(card.inputs)})",
                                sc.path)
    predictor = model if isinstance(model, Predictor) else Predictor(model, card, device, tta=tta)
    plan = plan_windows(predictor, sc, Tiling(tile, overlap, batch_size))
    mask = np.full((sc.height, sc.width), IGNORE_INDEX, np.uint8)
    if not plan.run:
        return mask
    for row0, probability, valid in predict_scene(predictor, sc, plan, progress=progress):
        rows = slice(row0, row0 + len(probability))
        mask[rows] = np.where(valid, probability >= threshold, IGNORE_INDEX)
    return mask
