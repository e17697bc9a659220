"""Per-tile scores of a large predicted mask: the benchmark's Fig. 8 and Fig. 9 on scenes.

A test scene is one image, so its per-image MIoU is a single number. Instead the scene is cut
into square tiles from its top-left corner (``tile`` pixels; smaller at the right and bottom
edges), and every tile with at least :data:`TILE_MIN_VALID` of a *full* tile's area valid and
labelled is scored on its own, with the per-image rules of :mod:`.per_image` and the boundary
counts of :mod:`.boundary` (exactly the row :meth:`scdnn.metrics.Evaluator.update` computes for
an image, without its torchmetrics bookkeeping, which costs more than the scores on 512 px
tiles).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .boundary import boundary_counts, boundary_f1_from_counts
from .per_image import IGNORE_INDEX, per_image_scores

__all__ = ["TILE_MIN_VALID", "tile_windows", "select_tiles", "score_tiles"]

#: A tile is scored when this share of a full tile's area is valid and labelled.
TILE_MIN_VALID = 0.1


def tile_windows(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """``(row, col, height, width)`` of the ``tile`` x ``tile`` tiles covering an image, row by
    row from the top-left corner; the last row and column of tiles are cut at the edge."""
    return [(row, col, min(tile, height - row), min(tile, width - col))
            for row in range(0, height, tile) for col in range(0, width, tile)]


def score_tiles(pred: Any, label: Any, tile: int, tolerance: float = 2,
                min_valid: float = TILE_MIN_VALID) -> list[dict[str, Any]]:
    """Score a predicted mask raster tile by tile against its label.

    Parameters
    ----------
    pred : ``H x W`` predicted mask: 1 landslide, any other value not (0 background, 255 no
        data: a raster written by ``scdnn evaluate`` or ``scdnn map``)
    label : ``H x W`` truth: 0 background, 1 landslide, 255 not scored (no label, no data)
    tile : side of the tiles in pixels
    tolerance : boundary F1 tolerance in pixels
    min_valid : a tile is scored when at least ``min_valid * tile * tile`` of its pixels are
        labelled 0 or 1

    Returns
    -------
    list of dict
        One per scored tile, in :func:`tile_windows` order: ``row``, ``col``, ``height``,
        ``width``, ``valid`` (labelled pixels), ``landslide`` (labelled 1), and the scores of
        a per_image.csv row: ``miou``, ``landslide_pa``, ``background_pa``, ``landslide_iou``
        (``None`` where undefined), ``boundary_f1`` and ``pixels`` (scored pixels).
    """
    pred, label = np.asarray(pred), np.asarray(label)
    if pred.ndim != 2 or pred.shape != label.shape:
        raise ValueError(f"pred {pred.shape} and label {label.shape} must be 2-D and of one "
                         "shape")
    rows = []
    for t in select_tiles(label, tile, min_valid):
        cut = (slice(t["row"], t["row"] + t["height"]), slice(t["col"], t["col"] + t["width"]))
        target = label[cut].astype(np.int64)
        guess = (pred[cut] == 1).astype(np.int64)
        scores = per_image_scores(guess, target)
        counts = boundary_counts(guess, target, tolerance)
        rows.append({**t, "miou": scores["miou"], "landslide_pa": scores["landslide_pa"],
                     "background_pa": scores["background_pa"],
                     "landslide_iou": scores["landslide_iou"],
                     "boundary_f1": boundary_f1_from_counts(counts)["f1"],
                     "pixels": t["valid"]})
    return rows


def select_tiles(label: Any, tile: int, min_valid: float = TILE_MIN_VALID
                 ) -> list[dict[str, int]]:
    """The tiles of a label (``H x W``, 255 = not scored) that :func:`score_tiles` scores:
    ``{"row", "col", "height", "width", "valid", "landslide"}`` (pixel counts), in
    :func:`tile_windows` order."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be 2-D, got shape {label.shape}")
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    found = []
    for row, col, height, width in tile_windows(*label.shape, tile):
        cut = label[row:row + height, col:col + width]
        valid = int((cut != IGNORE_INDEX).sum())
        if valid >= min_valid * tile * tile:
            found.append({"row": row, "col": col, "height": height, "width": width,
                          "valid": valid, "landslide": int((cut == 1).sum())})
    return found
