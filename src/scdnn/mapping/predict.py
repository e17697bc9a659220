"""``scdnn map``: a landslide map of a whole scene, window by window.

:func:`map_scene` is the recipe; each step calls into the other modules:

1. open the scene and check the model can take it (:mod:`.scene`);
2. lay the window grid and drop windows without a valid pixel (:mod:`.tiling`);
3. predict the windows in batches (:func:`predict_windows`) and blend the overlapping
   predictions (:func:`blend`), which hands back finished rows of the scene;
4. write those rows as probability and mask rasters (:class:`.outputs.RowWriter`);
5. polygonize the mask strip by strip (:func:`.outputs.polygonize`), add areas and
   probability statistics, write the polygons;
6. convert the rasters to Cloud Optimized GeoTIFFs, rename everything into place and write
   ``map.json``.

Memory model: the scene is never read whole. The blending accumulators (a weighted sum and
a weight sum, float32) hold one band of ``tile`` full-width rows; rows are flushed to the
output files as soon as the windows move below them, since no later window can touch them.
Polygonizing reads strips of full-width rows. Peak memory is therefore O(tile x width):
it grows with the scene's width, not its area (plus the landslide polygons themselves).

Windows without a valid pixel are skipped without running the network. Inside a window,
invalid pixels are set to 0 *after* normalisation (the training mean, a neutral input), so
the values that happen to fill no-data areas do not leak into the predictions near them;
outside valid data both rasters hold nodata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from rasterio.windows import Window

from ..datasets import Normalization
from ..engines import load_predictor
from ..inference import landslide_probabilities
from ..errors import UserError
from ..runs import prepare_out_dir, provenance, write_json
from .outputs import (MASK_NODATA, POLYGON_FORMATS, PROBABILITY_NODATA, RowWriter, Staging,
                      landslide_table, polygonize, write_cog, write_polygons)
from .scene import Scene, open_scene
from .tiling import blend_weights, check_tiling, window_grid

__all__ = ["map_scene", "output_stride", "predict_windows", "blend", "BlendBuffer", "write_rasters",
           "check_options", "model_input"]


def _silent(message: str) -> None:
    """The default ``warn``: library code says nothing."""


def map_scene(scene: str | os.PathLike, weights: str | os.PathLike, out: str | os.PathLike, *,
              tile: int = 2048, overlap: int = 512, batch_size: int = 1,
              threshold: float = 0.5,
              min_area: float = 0.0, simplify: float = 0.0, fmt: str = "gpkg",
              dsm: str | os.PathLike | None = None, overwrite: bool = False,
              device: str = "cpu", engine: str = "torch",
              progress: Callable[[Iterable], Iterable] = iter,
              warn: Callable[[str], None] = _silent, cog_blocksize: int = 512) -> dict[str, Any]:
    """Map landslides in ``scene`` with ``weights``; write the outputs into ``out``.

    Writes ``probability.tif`` and ``mask.tif`` (COGs on the scene's grid), ``landslides.gpkg``
    (or ``.geojson`` with ``fmt="geojson"``) and ``map.json``, and returns map.json's content.
    ``progress`` wraps the iterable of windows to run (a progress bar); ``warn`` receives
    one-line warnings (no CRS). ``dsm`` is the scene's surface model, needed by (and only
    by) a model trained with terrain channels; it may be on another grid (resampled on the
    fly). See the module docstring for the memory model. ``engine``
    is ``"torch"`` (``weights`` is a .safetensors file) or ``"onnxruntime"`` (``weights`` is
    an ONNX model from ``scdnn export``; CPU only); see :mod:`scdnn.engines`.

    Raises
    ------
    UserError
        Bad options, a scene the model cannot take, a scene without a valid pixel, or an
        output folder that is not empty (without ``overwrite``).
    """
    check_options(tile, overlap, batch_size, threshold, min_area, simplify, fmt)
    model, card = load_predictor(weights, engine)
    normalization = card.normalization
    with open_scene(scene, card.in_channels, card.inputs, dsm=dsm) as sc:
        if sc.units in ("pixel", "unknown", "degree"):
            warn(_units_warning(sc))
        windows = window_grid(sc.height, sc.width, tile, overlap,
                              align=output_stride(model, card))
        to_run = [w for w in windows if sc.valid_mask(w).any()]
        if not to_run:
            raise UserError("scene has no valid pixel (all masked or nodata)", sc.path)
        _to_device(model, device)
        out = prepare_out_dir(out, overwrite=overwrite)

        with Staging(out) as staging:
            prob_tmp, mask_tmp = staging.scratch("probability.tif"), staging.scratch("mask.tif")
            predictions = predict_windows(model, sc, progress(to_run), normalization,
                                          batch_size, device)
            weight = blend_weights(int(to_run[0].height), int(to_run[0].width), overlap)
            rows = blend(predictions, weight, sc.height, sc.width)
            counts = write_rasters(rows, sc, threshold, prob_tmp, mask_tmp)

            landslides = polygonize(mask_tmp, prob_tmp)
            table = landslide_table(landslides, sc.transform, sc.crs, min_area, simplify)
            write_polygons(table, staging.final(f"landslides.{fmt}"), fmt)
            write_cog(prob_tmp, staging.final("probability.tif"), resampling="average",
                      predictor=True, blocksize=cog_blocksize)
            write_cog(mask_tmp, staging.final("mask.tif"), resampling="mode",
                      blocksize=cog_blocksize)
            summary = {
                "scene": str(sc.path),
                "dsm": None if dsm is None else str(dsm),
                "weights": str(weights),
                "engine": engine,
                "model": card.model,
                "inputs": card.inputs,
                "bands": list(sc.bands),
                "width": sc.width,
                "height": sc.height,
                "crs": sc.crs.to_string() if sc.crs else None,
                "transform": list(sc.transform)[:6],
                "units": sc.units,
                "tile": tile, "overlap": overlap, "batch_size": batch_size,
                "threshold": threshold, "min_area": min_area, "simplify": simplify,
                "windows": {"total": len(windows), "run": len(to_run),
                            "skipped_no_valid_pixel": len(windows) - len(to_run)},
                **counts,
                "valid_area": counts["valid_pixels"] * sc.pixel_area,
                "landslide_area": counts["landslide_pixels"] * sc.pixel_area,
                "landslides": len(table),
                "nodata": {"probability": PROBABILITY_NODATA, "mask": MASK_NODATA},
                "outputs": ["probability.tif", "mask.tif", f"landslides.{fmt}"],
                "provenance": provenance(),
            }
            # map.json is staged too (renamed last), so that a killed run never leaves
            # outputs without it (a rerun would then see a folder that is not its own)
            write_json(staging.final("map.json"), summary)
            staging.commit()
    return summary


def write_rasters(rows: Iterable[tuple[int, np.ndarray]], scene: Scene, threshold: float,
                  probability_path: Path, mask_path: Path) -> dict[str, int]:
    """Write blended probability rows, top to bottom, as the probability and mask rasters.

    Pixels outside the scene's valid data (or that no window covered) get nodata in both.
    Returns the counts of valid and landslide pixels.
    """
    grid = dict(width=scene.width, height=scene.height, crs=scene.crs, transform=scene.transform)
    counts = {"valid_pixels": 0, "landslide_pixels": 0}
    with RowWriter(probability_path, dtype="float32", nodata=PROBABILITY_NODATA,
                   **grid) as prob_out, \
            RowWriter(mask_path, dtype="uint8", nodata=MASK_NODATA, **grid) as mask_out:
        for row0, probability in rows:
            valid = scene.valid_mask(Window(0, row0, scene.width, len(probability)))
            valid &= np.isfinite(probability)
            landslide = valid & (probability >= threshold)
            prob_out.write(np.where(valid, probability, PROBABILITY_NODATA).astype(np.float32))
            mask_out.write(np.where(valid, landslide, MASK_NODATA).astype(np.uint8))
            counts["valid_pixels"] += int(valid.sum())
            counts["landslide_pixels"] += int(landslide.sum())
    return counts


def check_options(tile: int, overlap: int, batch_size: int, threshold: float,
                  min_area: float, simplify: float, fmt: str) -> None:
    """Refuse option values that cannot work (UserError), before anything is read."""
    check_tiling(tile, overlap)
    if int(batch_size) != batch_size or batch_size <= 0:
        raise UserError(f"--batch-size must be a positive integer, got {batch_size}")
    if not 0 < threshold < 1:
        raise UserError(f"--threshold must be strictly between 0 and 1, got {threshold}")
    for name, value in (("--min-area", min_area), ("--simplify", simplify)):
        if not value >= 0:  # also refuses NaN
            raise UserError(f"{name} must be a number ≥ 0, got {value}")
    if fmt not in POLYGON_FORMATS:
        raise UserError(f"--format must be one of {', '.join(POLYGON_FORMATS)}, got '{fmt}'")


def output_stride(model, card: dict) -> int:
    """The network's output stride (window offsets are aligned to it, see :mod:`.tiling`):
    the model's own attribute, else (an ONNX model) that of the network its card names."""
    stride = getattr(model, "output_stride", None)
    if stride is None and isinstance(model, torch.nn.Module):
        return 1  # a network that declares no stride: plain grid
    if stride is None:
        from ..models import create_model

        stride = getattr(create_model(card.model, in_channels=card.in_channels,
                                      **card.model_kwargs), "output_stride", 1)
    return int(stride)


def _to_device(model: torch.nn.Module, device: str) -> None:
    try:
        model.to(torch.device(device))
    except (RuntimeError, ValueError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot use device '{device}': {first}") from None


def _units_warning(scene: Scene) -> str:
    if scene.units == "degree":
        return (f"{scene.path}: geographic CRS: area_m2 and perimeter_m are in degrees; "
                f"reproject the scene to a projected CRS for metres")
    if scene.units == "pixel":
        return (f"{scene.path}: no CRS or geotransform: polygons are in pixel coordinates, "
                f"area_m2 and perimeter_m in pixels")
    return f"{scene.path}: no CRS: areas are in the units of the geotransform"


def predict_windows(model: torch.nn.Module, scene: Scene, windows: Iterable[Window],
                    normalization: Normalization, batch_size: int = 4, device: str = "cpu"
                    ) -> Iterator[tuple[Window, np.ndarray]]:
    """Landslide probability (``H x W`` float32) of each window, in the order given.

    Windows are read, normalised, stacked ``batch_size`` at a time (they all have the same
    size, see :mod:`.tiling`) and run through ``model``.
    """
    batch: list[Window] = []
    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            yield from _run_batch(model, scene, batch, normalization, device)
            batch = []
    if batch:
        yield from _run_batch(model, scene, batch, normalization, device)


def _run_batch(model: torch.nn.Module, scene: Scene, windows: list[Window],
               normalization: Normalization, device: str) -> Iterator[tuple[Window, np.ndarray]]:
    x = torch.from_numpy(np.stack([model_input(scene, w, normalization) for w in windows]))
    return zip(windows, landslide_probabilities(model, x.to(device)))


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
