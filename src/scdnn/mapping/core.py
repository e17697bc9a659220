"""Scene prediction: windows -> batches -> network -> blended probability rows.

Every prediction of a whole scene goes through :func:`predict_scene`: ``scdnn map``
(:func:`.predict.map_scene`), ``scdnn evaluate`` on scenes (:func:`.score.predict_scene_mask`)
and the mapping benchmark. It works in three steps:

1. :func:`plan_windows` lays the window grid (:func:`.tiling.window_grid`, offsets aligned to
   the network's output stride) and drops the windows without a valid pixel, which never
   reach the network. A window whose pixel blocks are all absent from a sparse GeoTIFF
   (absent pixels meaning no data, :meth:`.scene.Scene.known_empty`) is dropped without
   reading a pixel; the others have their valid-data mask read once, kept for step 2;
2. the remaining windows are read, normalised, stacked ``batch_size`` at a time and run
   through the network (:func:`predict_windows`); inside a window, invalid pixels are set to
   0 *after* normalisation (the training mean, a neutral input, :func:`model_input`), so the
   values that happen to fill no-data areas do not leak into the predictions near them;
3. overlapping predictions are blended with the weight window of
   :func:`.tiling.blend_weights` (:func:`blend_blocks`), which hands back finished rows of
   the scene, top to bottom, as soon as no later window can touch them, in column blocks
   (:func:`predict_blocks`): only the blocks a window that ran covers. :func:`predict_scene`
   gives the same as full-width rows.

Memory and time: the scene is never read whole. The blending accumulators (a weighted sum
and a weight sum, float32, and the valid mask) hold one band of ``tile`` rows, and in it only
the column blocks that windows run cover, so memory grows with the scene's width at most,
and with the width of its valid data in a sparse scene. Window masks are kept between
planning and prediction, except where a window is all valid (nothing kept) and beyond
:data:`MASK_CACHE_BYTES` (read again). Empty regions of a sparse GeoTIFF cost a block-index
lookup each (about 1 µs a block), no pixel reading.

::

    from scdnn import Predictor
    from scdnn.mapping import Tiling, open_scene, plan_windows, predict_scene

    predictor = Predictor.from_file("weights.safetensors")
    with open_scene("scene.tif", predictor.in_channels, predictor.inputs) as scene:
        plan = plan_windows(predictor, scene, Tiling(tile=1024, overlap=256))
        print(plan.counts())   # windows in the grid, run, skipped (no valid pixel)
        for first_row, probability, valid in predict_scene(predictor, scene, plan):
            ...                # rows first_row .. first_row + len(probability) - 1
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from rasterio.windows import Window

from ..datasets import Normalization
from ..errors import InvalidValueError
from ..predictor import Predictor
from .scene import Scene
from .tiling import _whole, blend_weights, check_memory, check_tiling, window_grid

__all__ = ["Tiling", "DEFAULT_TILING", "WindowPlan", "plan_windows", "predict_scene",
           "predict_blocks", "predict_windows", "model_input", "BlendBuffer", "blend",
           "blend_blocks", "BLOCK", "MASK_CACHE_BYTES"]

#: Column blocks of the blending buffer and of the pieces :func:`predict_blocks` yields (the
#: block size of the rasters ``scdnn map`` writes).
BLOCK = 256
#: Window masks kept from planning for prediction (bit-packed), at most this many bytes.
MASK_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Tiling:
    """How a scene is cut into windows and fed to the network.

    Parameters
    ----------
    tile : int
        Window size in pixels (windows are ``tile`` x ``tile``, or the scene's size where it
        is smaller).
    overlap : int
        Pixels shared by neighbouring windows, blended; 0 is plain tiling; at most
        ``tile / 2``.
    batch_size : int
        Windows per forward pass.

    Raises
    ------
    InvalidValueError
        A value that cannot make a grid (named as the parameter, e.g. ``tile``).
    """

    tile: int = 2048
    overlap: int = 512
    batch_size: int = 1

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap)
        if not _whole(self.batch_size) or self.batch_size <= 0:
            raise InvalidValueError(f"must be a positive integer, got {self.batch_size}",
                                    option="batch_size")
        for name in ("tile", "overlap", "batch_size"):  # 64.0 -> 64
            object.__setattr__(self, name, int(getattr(self, name)))


#: ``Tiling()``: 2048 px windows, 512 px blended overlap, one window per batch.
DEFAULT_TILING = Tiling()


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one scene for one model: the whole grid and those to run.

    Attributes
    ----------
    tiling : Tiling
        The window size, overlap and batch size the plan was laid with.
    align : int
        Window offsets are multiples of it (the network's output stride).
    grid : tuple of Window
        Every window of the grid, row-major.
    to_run : tuple of Window
        The windows holding at least one valid pixel, in the same order.
    window_shape : (int, int)
        Height and width of every window.
    read : int
        Windows whose valid-data mask was read (the others are known empty from the file's
        block index, :meth:`.scene.Scene.known_empty`).
    """

    tiling: Tiling
    align: int
    grid: tuple[Window, ...] = field(repr=False)
    to_run: tuple[Window, ...] = field(repr=False)
    window_shape: tuple[int, int]
    read: int = -1
    #: (row_off, col_off) -> True (all valid) or a bit-packed mask, for windows in to_run
    masks: dict = field(default_factory=dict, repr=False, compare=False)

    def valid_mask(self, scene: Scene, window: Window) -> np.ndarray:
        """``window``'s valid mask as planning read it (read again when it was not kept)."""
        kept = self.masks.get((int(window.row_off), int(window.col_off)))
        if kept is None:
            return scene.valid_mask(window)
        shape = (int(window.height), int(window.width))
        if kept is True:
            return np.ones(shape, dtype=bool)
        return np.unpackbits(kept, count=shape[0] * shape[1]).reshape(shape).astype(bool)

    @property
    def total(self) -> int:
        """Windows in the grid."""
        return len(self.grid)

    @property
    def run(self) -> int:
        """Windows that reach the network."""
        return len(self.to_run)

    @property
    def skipped(self) -> int:
        """Windows without a valid pixel, never run."""
        return len(self.grid) - len(self.to_run)

    def counts(self) -> dict[str, int]:
        """``{"total", "run", "skipped_no_valid_pixel", "masks_read"}``, as map.json records them
        (``masks_read``: windows whose mask was read, the others known empty from a sparse file's
        block index)."""
        return {"total": self.total, "run": self.run, "skipped_no_valid_pixel": self.skipped,
                "masks_read": self.read}


def plan_windows(predictor: Predictor, scene: Scene, tiling: Tiling = DEFAULT_TILING,
                 align: int | None = None) -> WindowPlan:
    """Lay ``tiling``'s window grid over ``scene`` and find the windows with a valid pixel.

    ``align`` (default: the predictor's output stride) is what window offsets are multiples
    of; see :mod:`.tiling` for why a strided network needs it. Reads the scene's valid-data
    mask once per window, except for windows known empty from a sparse GeoTIFF's block index
    (:meth:`.scene.Scene.known_empty`), and keeps the masks of the windows to run (up to
    :data:`MASK_CACHE_BYTES`, bit-packed; nothing for an all-valid window).
    """
    if not isinstance(tiling, Tiling):
        raise InvalidValueError(f"must be a Tiling, got {type(tiling).__name__}",
                                option="tiling")
    align = predictor.output_stride if align is None else int(align)
    shape = (min(tiling.tile, scene.height), min(tiling.tile, scene.width))
    grid = tuple(window_grid(scene.height, scene.width, tiling.tile, tiling.overlap,
                             align=align))
    # before any window is read: a batch never holds more windows than the grid has
    check_memory(shape, min(tiling.batch_size, len(grid)))
    to_run: list[Window] = []
    masks: dict = {}
    read, kept_bytes = 0, 0
    for window in grid:
        if scene.known_empty(window):
            continue
        valid = scene.valid_mask(window)
        read += 1
        if not valid.any():
            continue
        to_run.append(window)
        key = (int(window.row_off), int(window.col_off))
        if valid.all():
            masks[key] = True
        elif kept_bytes + valid.size // 8 <= MASK_CACHE_BYTES:
            masks[key] = np.packbits(valid, axis=None)
            kept_bytes += masks[key].nbytes
    return WindowPlan(tiling=tiling, align=align, grid=grid, to_run=tuple(to_run),
                      window_shape=shape, read=read, masks=masks)


def predict_scene(predictor: Predictor, scene: Scene, plan: WindowPlan | Tiling | None = None,
                  *, progress: Callable[[Iterable], Iterable] = iter
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Blended landslide probability of ``scene``, row band by row band, top to bottom.

    Parameters
    ----------
    predictor : Predictor
        The model; ``scene`` must have been opened for it (its channels).
    scene : Scene
        An open scene (:func:`scdnn.mapping.open_scene`).
    plan : WindowPlan or Tiling, optional
        The windows (:func:`plan_windows`), or a :class:`Tiling` to lay them with (default
        ``Tiling()``: 2048 px windows, 512 px overlap, batch 1).
    progress : callable
        Wraps the iterable of windows to run (a progress bar).

    Yields
    ------
    tuple
        ``(first_row, probability, valid)``: the scene rows ``first_row`` onwards, every
        row of the scene exactly once; ``probability`` float32 rows (``sum(weight * p) /
        sum(weight)`` over the windows covering each pixel), NaN exactly where ``valid``
        (bool rows: the scene's valid data, covered by a window) is False. A scene without a
        valid pixel runs no window and yields all-NaN rows.

    Raises
    ------
    InvalidValueError
        The scene gives another number of channels than the model takes.
    """
    width = scene.width
    for row0, rows, pieces in predict_blocks(predictor, scene, plan, progress=progress):
        for top in range(row0, row0 + rows, BLOCK):  # empty stretches: one block row at a time
            n = min(BLOCK, row0 + rows - top)
            probability = np.full((n, width), np.nan, dtype=np.float32)
            valid = np.zeros((n, width), dtype=bool)
            for r, c, p, v in pieces:
                if r <= top < r + len(p):
                    probability[:, c:c + p.shape[1]] = p[top - r:top - r + n]
                    valid[:, c:c + p.shape[1]] = v[top - r:top - r + n]
            yield top, probability, valid


def predict_blocks(predictor: Predictor, scene: Scene, plan: WindowPlan | Tiling | None = None,
                   *, progress: Callable[[Iterable], Iterable] = iter
                   ) -> Iterator[tuple[int, int, list[tuple[int, int, np.ndarray, np.ndarray]]]]:
    """Blended landslide probability of ``scene`` where windows ran, top to bottom.

    The same probabilities as :func:`predict_scene` (which is built on it), in pieces: yields
    ``(first_row, rows, pieces)`` for scene rows ``first_row`` to ``first_row + rows - 1``
    (every row of the scene exactly once), ``pieces`` a list of ``(first_row, first_column,
    probability, valid)`` in column order, each :data:`BLOCK` columns wide (narrower at the
    right edge) at a multiple of :data:`BLOCK`; columns without a piece have no valid pixel.
    """
    if scene.channels != predictor.in_channels:
        raise InvalidValueError(f"scene gives {scene.channels} channels but the model takes "
                                f"{predictor.in_channels}", scene.path)
    if plan is None or isinstance(plan, Tiling):
        plan = plan_windows(predictor, scene, DEFAULT_TILING if plan is None else plan)
    predictions = predict_windows(predictor, scene, progress(plan.to_run),
                                  plan.tiling.batch_size, plan=plan, with_valid=True)
    weight = blend_weights(*plan.window_shape, plan.tiling.overlap)
    yield from blend_blocks(predictions, weight, scene.height, scene.width)


def predict_windows(predictor: Predictor, scene: Scene, windows: Iterable[Window],
                    batch_size: int = 1, plan: WindowPlan | None = None,
                    with_valid: bool = False) -> Iterator[tuple]:
    """Landslide probability (``H x W`` float32) of each window, in the order given, as
    ``(window, probability)``; ``(window, probability, valid)`` with ``with_valid``.

    Windows are read, normalised (:func:`model_input`), stacked ``batch_size`` at a time
    (they all have the same size, see :mod:`.tiling`) and run through the predictor. Valid
    masks come from ``plan`` where it kept them, else are read. The next batch is read on a
    second thread while the network runs on this one (GDAL and the network both release
    the GIL); only that thread touches ``scene`` meanwhile, and the values are the same.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="scdnn-read") as reader:
        pending = None
        for batch in _batches(windows, batch_size):
            ahead = reader.submit(_read_batch, predictor, scene, batch, plan)
            if pending is not None:
                yield from _run_batch(predictor, *pending.result(), with_valid)
            pending = ahead
        if pending is not None:
            yield from _run_batch(predictor, *pending.result(), with_valid)


def _batches(windows: Iterable[Window], size: int) -> Iterator[list[Window]]:
    batch: list[Window] = []
    for window in windows:
        batch.append(window)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_batch(predictor: Predictor, scene: Scene, windows: list[Window],
                plan: WindowPlan | None) -> tuple[list[Window], np.ndarray, list[np.ndarray]]:
    """The windows, their stacked network input and their valid masks."""
    valid = [scene.valid_mask(w) if plan is None else plan.valid_mask(scene, w)
             for w in windows]
    x = np.stack([model_input(scene, w, predictor.normalization, v)
                  for w, v in zip(windows, valid, strict=True)])
    return windows, x, valid


def _run_batch(predictor: Predictor, windows: list[Window], x: np.ndarray,
               valid: list[np.ndarray], with_valid: bool) -> Iterator[tuple]:
    probabilities = predictor.probabilities(torch.from_numpy(x))
    if with_valid:
        return zip(windows, probabilities, valid, strict=True)
    return zip(windows, probabilities, strict=True)


def model_input(scene: Scene, window: Window, normalization: Normalization,
                valid: np.ndarray | None = None) -> np.ndarray:
    """The network's ``C x H x W`` float32 input for ``window``: the model's bands
    normalised, invalid pixels set to 0 (the training mean). ``valid``: the window's valid
    mask, when already read."""
    x = normalization.apply(scene.read(window))
    x[:, ~(scene.valid_mask(window) if valid is None else valid)] = 0.0
    return x


class BlendBuffer:
    """Weighted sums of probabilities for one band of full-width rows.

    Holds ``sum(weight * p)`` and ``sum(weight)`` for scene rows ``top`` to
    ``top + rows - 1``; :meth:`flush` hands back finished rows and moves the band down.
    """

    def __init__(self, rows: int, width: int):
        self.rows, self.top = rows, 0
        self.weighted = np.zeros((rows, width), dtype=np.float32)
        self.weights = np.zeros((rows, width), dtype=np.float32)

    def add(self, window: Window, probability: np.ndarray, weight: np.ndarray) -> None:
        r = int(window.row_off) - self.top
        c = int(window.col_off)
        h, w = probability.shape
        w = min(w, self.weights.shape[1] - c)  # a window overhanging the right edge
        probability, weight = probability[:, :w], weight[:, :w]
        if r < 0 or r + h > self.rows:
            raise ValueError(f"window at row {window.row_off} is outside the buffered rows "
                             f"{self.top}–{self.top + self.rows - 1} (windows out of order?)")
        self.weighted[r:r + h, c:c + w] += weight * probability
        self.weights[r:r + h, c:c + w] += weight

    def flush(self, until: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first row, probability rows)`` for the rows above ``until``: blended
        probability, NaN where no window contributed."""
        while self.top < until:
            n = min(until - self.top, self.rows)
            done = self.weights[:n]
            with np.errstate(invalid="ignore", divide="ignore"):
                probability = np.where(done > 0, self.weighted[:n] / done, np.nan)
            yield self.top, probability.astype(np.float32)
            for array in (self.weighted, self.weights):
                array[:-n] = array[n:].copy()
                array[-n:] = 0
            self.top += n


class BlockBlendBuffer:
    """:class:`BlendBuffer` for one band of rows, held in column blocks of ``block`` pixels:
    only the blocks a window touched are allocated (and dropped again once flushed with
    nothing pending). Also ORs the windows' valid masks. The arithmetic per pixel is
    :class:`BlendBuffer`'s, in the same order, so the blended values are identical."""

    def __init__(self, rows: int, width: int, block: int = BLOCK):
        self.rows, self.width, self.block, self.top = rows, width, block, 0
        self.blocks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, window: Window, probability: np.ndarray, weight: np.ndarray,
            valid: np.ndarray) -> None:
        r = int(window.row_off) - self.top
        c = int(window.col_off)
        h, w = probability.shape
        w = min(w, self.width - c)  # a window overhanging the right edge
        if r < 0 or r + h > self.rows:
            raise ValueError(f"window at row {window.row_off} is outside the buffered rows "
                             f"{self.top}–{self.top + self.rows - 1} (windows out of order?)")
        b = self.block
        for k in range(c // b, -(-(c + w) // b)):
            k0, k1 = k * b, min((k + 1) * b, self.width)
            a0, a1 = max(c, k0), min(c + w, k1)  # scene columns of the window in block k
            if k not in self.blocks:
                shape = (self.rows, k1 - k0)
                self.blocks[k] = (np.zeros(shape, np.float32), np.zeros(shape, np.float32),
                                  np.zeros(shape, bool))
            weighted, weights, ok = self.blocks[k]
            p, wt = probability[:, a0 - c:a1 - c], weight[:, a0 - c:a1 - c]
            weighted[r:r + h, a0 - k0:a1 - k0] += wt * p
            weights[r:r + h, a0 - k0:a1 - k0] += wt
            ok[r:r + h, a0 - k0:a1 - k0] |= valid[:, a0 - c:a1 - c]

    def flush(self, until: int
              ) -> Iterator[tuple[int, int, list[tuple[int, int, np.ndarray, np.ndarray]]]]:
        """Yield ``(first row, rows, pieces)`` for the rows above ``until`` (see
        :func:`predict_blocks`): pieces hold the blended probability (NaN where no window
        contributed) and the valid mask (False there)."""
        while self.top < until:
            if not self.blocks:  # nothing pending: jump
                yield self.top, until - self.top, []
                self.top = until
                return
            n = min(until - self.top, self.rows)
            pieces = []
            for k in sorted(self.blocks):
                weighted, weights, ok = self.blocks[k]
                done = weights[:n]
                with np.errstate(invalid="ignore", divide="ignore"):
                    probability = np.where(done > 0, weighted[:n] / done, np.nan)
                probability = probability.astype(np.float32)
                valid = ok[:n] & np.isfinite(probability)
                probability[~valid] = np.nan
                pieces.append((self.top, k * self.block, probability, valid))
                if not weights[n:].any():
                    del self.blocks[k]
                    continue
                for array in (weighted, weights, ok):
                    array[:-n] = array[n:].copy()
                    array[-n:] = 0
            yield self.top, n, pieces
            self.top += n


def blend_blocks(predictions: Iterable[tuple[Window, np.ndarray, np.ndarray]],
                 weight: np.ndarray, height: int, width: int, block: int = BLOCK
                 ) -> Iterator[tuple[int, int, list[tuple[int, int, np.ndarray, np.ndarray]]]]:
    """:func:`blend` in column blocks, with the windows' valid masks: window predictions
    ``(window, probability, valid)`` in row-major order -> ``(first row, rows, pieces)`` from
    the top of the scene to its bottom (see :func:`predict_blocks`)."""
    buffer = BlockBlendBuffer(weight.shape[0], width, block)
    for window, probability, valid in predictions:
        yield from buffer.flush(until=int(window.row_off))
        buffer.add(window, probability, weight, valid)
    yield from buffer.flush(until=height)


def blend(predictions: Iterable[tuple[Window, np.ndarray]], weight: np.ndarray,
          height: int, width: int) -> Iterator[tuple[int, np.ndarray]]:
    """Blend window predictions, given in row-major order, into finished scene rows.

    Yields ``(first row, probability rows)`` from the top of the scene to its bottom, every
    row once: ``sum(weight * p) / sum(weight)`` over the windows covering each pixel, NaN
    where none did. A row is yielded as soon as the next window starts below it.
    """
    buffer = BlendBuffer(weight.shape[0], width)
    for window, probability in predictions:
        yield from buffer.flush(until=int(window.row_off))
        buffer.add(window, probability, weight)
    yield from buffer.flush(until=height)
