"""One large scene spread over several workers: its windows in blocks of window rows.

A scene with more than ``block_windows`` windows in its grid is mapped by several tasks:

1. :func:`predict_block` (one task per block): block ``k`` of ``blocks`` is a run of
   consecutive rows of the window grid (:func:`block_rows`); the task predicts its windows
   plus those of the grid rows above that reach into it (the halo), blends them exactly as
   :func:`scdnn.mapping.core.blend` does (:class:`~scdnn.mapping.core.BlendBuffer`, the same
   windows added in the same order, so the sums are bit for bit those of one pass), and
   saves the finished probability rows from the block's first row to the next block's
   (NaN outside valid data) as one ``.npy`` file, written atomically;
2. :func:`finish_scene` (one task, after every block): :func:`scdnn.mapping.map_scene`
   with ``predict=`` reading those rows back (:func:`rows_from_blocks`) instead of running
   the network, which writes the scene's rasters, polygons and map.json as for any scene
   (one writer per file).

The outputs equal those of one process pixel for pixel. Memory per block task: one band of
``tile`` full-width rows (the blend buffer) plus the block's rows while they are saved.
The halo costs extra windows: with ``overlap <= tile / 2`` one grid row per block.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
from rasterio.windows import Window

from .job import RegionOptions, _predictor, _worker, map_scene_task

__all__ = ["block_rows", "predict_block", "rows_from_blocks", "finish_scene", "grid_windows"]


def grid_windows(height: int, width: int, options: RegionOptions, align: int = 16) -> int:
    """Windows in a scene's grid (to decide whether it is split; ``align`` as the model's)."""
    from ..mapping.tiling import window_grid

    return len(window_grid(height, width, options.tile, options.overlap, align=align))


def block_rows(row_offsets: list[int], blocks: int, k: int) -> tuple[int, int]:
    """Grid rows ``[first, end)`` of block ``k`` of ``blocks`` (contiguous, as even as can be)."""
    parts = np.array_split(np.arange(len(row_offsets)), blocks)
    part = parts[k]
    if len(part) == 0:
        return 0, 0
    return int(part[0]), int(part[-1]) + 1


def _block_file(folder: Path, k: int) -> Path:
    return Path(folder) / f"block-{k:05d}.npy"


def predict_block(scene: Path, folder: Path, options: RegionOptions, blocks: int, k: int
                  ) -> dict:
    """Predict block ``k`` of ``blocks`` of ``scene`` and save its rows in ``folder``."""
    from ..mapping import Tiling, open_scene, plan_windows
    from ..mapping.core import BlendBuffer, predict_windows
    from ..mapping.tiling import blend_weights

    predictor = _predictor(options.weights, options.engine, options.device, options.tta)
    tiling = Tiling(options.tile, options.overlap, options.batch_size)
    card = predictor.card
    with open_scene(scene, card.in_channels, card.inputs, dsm=options.dsm,
                    bands=options.bands) as sc:
        plan = plan_windows(predictor, sc, tiling)
        offsets = sorted({int(w.row_off) for w in plan.grid})
        first, end = block_rows(offsets, blocks, k)
        if first == end:
            return {"rows": 0, "worker": _worker()}
        top = offsets[first]
        bottom = offsets[end] if end < len(offsets) else sc.height
        height = plan.window_shape[0]
        halo = [r for r in offsets[:first] if r + height > top]
        start = halo[0] if halo else top
        windows = [w for w in plan.to_run if start <= int(w.row_off) < bottom]
        weight = blend_weights(*plan.window_shape, plan.tiling.overlap)
        buffer = BlendBuffer(weight.shape[0], sc.width)
        buffer.top = start
        rows = np.full((bottom - top, sc.width), np.nan, dtype=np.float32)

        def keep(chunks: Iterator[tuple[int, np.ndarray]]) -> None:
            for row0, probability in chunks:
                lo, hi = max(row0, top), min(row0 + len(probability), bottom)
                if lo < hi:
                    rows[lo - top:hi - top] = probability[lo - row0:hi - row0]

        for window, probability in predict_windows(predictor, sc, windows,
                                                   plan.tiling.batch_size):
            keep(buffer.flush(until=int(window.row_off)))
            buffer.add(window, probability, weight)
        keep(buffer.flush(until=bottom))
        valid = sc.valid_mask(Window(0, top, sc.width, bottom - top)) & np.isfinite(rows)
        rows[~valid] = np.nan
    final = _block_file(folder, k)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.part.npy")
    np.save(tmp, rows)
    os.replace(tmp, final)
    return {"rows": int(bottom - top), "first_row": int(top), "worker": _worker()}


def rows_from_blocks(folder: Path, blocks: int, strip: int = 256):
    """``map_scene``'s ``predict=``: the rows the blocks saved, top to bottom, in strips."""

    def predict(predictor, scene, plan, progress=iter):
        row = 0
        for k in range(blocks):
            path = _block_file(folder, k)
            if not path.is_file():
                continue  # an empty block (more blocks than grid rows)
            data = np.load(path, mmap_mode="r")
            for s in range(0, len(data), strip):
                probability = np.array(data[s:s + strip], dtype=np.float32)
                yield row, probability, np.isfinite(probability)
                row += len(probability)
        if row != scene.height:
            raise RuntimeError(f"blocks hold {row} of {scene.height} rows")

    return predict


def finish_scene(scene: Path, name: str, scenes_dir: Path, options: RegionOptions,
                 blocks: int, *block_results) -> dict:
    """Write the scene's outputs from its blocks' rows (after every block task), then
    delete the blocks."""
    folder = block_folder(scenes_dir, name)
    result = map_scene_task(scene, name, scenes_dir, options,
                            predict=rows_from_blocks(folder, blocks))
    if "error" not in result:
        shutil.rmtree(folder, ignore_errors=True)
    result["blocks"] = blocks
    return result


def block_folder(scenes_dir: Path, name: str) -> Path:
    """Where a scene's blocks keep their rows until the scene is written."""
    return Path(scenes_dir) / f".{name}.blocks"
