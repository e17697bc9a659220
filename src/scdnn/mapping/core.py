"""Scene prediction: windows -> batches -> network -> blended probability rows.

Every prediction of a whole scene goes through :func:`predict_scene`: ``scdnn map``
(:func:`.predict.map_scene`), ``scdnn evaluate`` on scenes (:func:`.score.predict_scene_mask`)
and the mapping benchmark. It works in three steps:

1. :func:`plan_windows` lays the window grid (:func:`.tiling.window_grid`, offsets aligned to
   the network's output stride) and drops the windows without a valid pixel, which never
   reach the network;
2. the remaining windows are read, normalised, stacked ``batch_size`` at a time and run
   through the network (:func:`predict_windows`); inside a window, invalid pixels are set to
   0 *after* normalisation (the training mean, a neutral input, :func:`model_input`), so the
   values that happen to fill no-data areas do not leak into the predictions near them;
3. overlapping predictions are blended with the weight window of
   :func:`.tiling.blend_weights` (:func:`blend`), which hands back finished rows of the
   scene, top to bottom, as soon as no later window can touch them.

Memory: the scene is never read whole. The blending accumulators (a weighted sum and a
weight sum, float32) hold one band of ``tile`` full-width rows, so memory grows with the
scene's width, not its area.

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
           "predict_windows", "model_input", "BlendBuffer", "blend"]


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
    """

    tiling: Tiling
    align: int
    grid: tuple[Window, ...] = field(repr=False)
    to_run: tuple[Window, ...] = field(repr=False)
    window_shape: tuple[int, int]

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
        """``{"total", "run", "skipped_no_valid_pixel"}``, as map.json records them."""
        return {"total": self.total, "run": self.run, "skipped_no_valid_pixel": self.skipped}


def plan_windows(predictor: Predictor, scene: Scene, tiling: Tiling = DEFAULT_TILING,
                 align: int | None = None) -> WindowPlan:
    """Lay ``tiling``'s window grid over ``scene`` and find the windows with a valid pixel.

    ``align`` (default: the predictor's output stride) is what window offsets are multiples
    of; see :mod:`.tiling` for why a strided network needs it. Reads the scene's valid-data
    mask once per window.
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
    to_run = tuple(w for w in grid if scene.valid_mask(w).any())
    return WindowPlan(tiling=tiling, align=align, grid=grid, to_run=to_run, window_shape=shape)


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
    if scene.channels != predictor.in_channels:
        raise InvalidValueError(f"scene gives {scene.channels} channels but the model takes "
                                f"{predictor.in_channels}", scene.path)
    if plan is None or isinstance(plan, Tiling):
        plan = plan_windows(predictor, scene, DEFAULT_TILING if plan is None else plan)
    predictions = predict_windows(predictor, scene, progress(plan.to_run),
                                  plan.tiling.batch_size)
    weight = blend_weights(*plan.window_shape, plan.tiling.overlap)
    for row0, probability in blend(predictions, weight, scene.height, scene.width):
        valid = scene.valid_mask(Window(0, row0, scene.width, len(probability)))
        valid &= np.isfinite(probability)
        probability[~valid] = np.nan
        yield row0, probability, valid


def predict_windows(predictor: Predictor, scene: Scene, windows: Iterable[Window],
                    batch_size: int = 1) -> Iterator[tuple[Window, np.ndarray]]:
    """Landslide probability (``H x W`` float32) of each window, in the order given.

    Windows are read, normalised (:func:`model_input`), stacked ``batch_size`` at a time
    (they all have the same size, see :mod:`.tiling`) and run through the predictor.
    """
    batch: list[Window] = []
    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            yield from _run_batch(predictor, scene, batch)
            batch = []
    if batch:
        yield from _run_batch(predictor, scene, batch)


def _run_batch(predictor: Predictor, scene: Scene, windows: list[Window]
               ) -> Iterator[tuple[Window, np.ndarray]]:
    x = torch.from_numpy(np.stack([model_input(scene, w, predictor.normalization)
                                   for w in windows]))
    return zip(windows, predictor.probabilities(x), strict=True)


def model_input(scene: Scene, window: Window, normalization: Normalization) -> np.ndarray:
    """The network's ``C x H x W`` float32 input for ``window``: the model's bands
    normalised, invalid pixels set to 0 (the training mean)."""
    x = normalization.apply(scene.read(window))
    x[:, ~scene.valid_mask(window)] = 0.0
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
