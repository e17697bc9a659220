"""``scdnn map``: a landslide map of a whole scene, window by window.

:func:`map_scene` is the recipe; each step calls into the other modules:

1. open the scene and check the model can take it (:mod:`.scene`);
2. lay the window grid and find the windows with a valid pixel
   (:func:`.core.plan_windows`; windows in blocks a sparse GeoTIFF leaves out are known
   empty without reading them); a scene without one is refused;
3. predict the windows and blend the overlapping predictions (:func:`.core.predict_blocks`),
   which hands back finished rows of the scene in column blocks, only where windows ran
   (the next batch of windows is read on a second thread while the network runs);
4. write them as probability and mask rasters (:class:`.outputs.BlockWriter`: sparse
   GeoTIFFs, blocks without a valid pixel not stored);
5. clean the mask strip by strip (:func:`.clean.clean_raster`, unless ``cleaning`` is None):
   smoothing, objects below the minimum mapping unit removed, small holes filled
   (:mod:`scdnn.outlines`);
6. polygonize the (cleaned) mask strip by strip (:func:`.outputs.polygonize`), so that
   mask.tif and the polygons hold the same landslides; add areas and probability
   statistics, simplify the outlines, write the polygons;
7. convert the rasters to Cloud Optimized GeoTIFFs (sparse; overviews of a sparse raster
   computed over its stored blocks; the probability's on a second thread while steps 6 and
   7 run for the mask), rename everything into place and write ``map.json``.

Memory model: the scene is never read whole. GDAL's block cache, which would otherwise keep
every block read or written up to ``GDAL_CACHEMAX`` (by default 5 % of the machine's memory,
so in practice the whole scene's blocks), is bounded to :data:`GDAL_CACHE_BYTES` while a
scene is mapped (:func:`bounded_gdal_cache`). Prediction holds one band of ``tile`` rows,
and in it only the column blocks windows cover (:mod:`.core`); finished blocks are written
to the output files as soon as no later window can reach them. Cleaning and polygonizing
read strips of rows, over the columns of the blocks the rasters store. Peak memory is
therefore O(tile x width) at most: it grows with the scene's width, not its area, and with
the width of its valid data in a sparse scene (plus the landslide polygons themselves).
Time: empty regions of a sparse GeoTIFF are skipped at every step but the last copy into
the COG layout, where GDAL visits every block (about 2 ns a declared pixel). Outside valid
data both rasters hold nodata.
"""

from __future__ import annotations

import contextlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import InvalidValueError
from ..outlines import (
    OutlineCleaning,
    check_cleaning,
    cleaning_record,
    model_cleaning,
    pixel_size_of,
)
from ..predictor import Predictor
from ..records import MapRecord
from ..runs import output_dir, provenance, write_json
from .clean import clean_raster
from .core import DEFAULT_TILING, Tiling, plan_windows, predict_blocks
from .outputs import (
    IGNORE_INDEX,
    POLYGON_FORMATS,
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    BlockWriter,
    Staging,
    copy_to_cog,
    landslide_table,
    polygonize,
    probability_percent,
    quiet_georeferencing,
    write_polygons,
)
from .scene import Scene, open_scene

__all__ = ["map_scene", "write_rasters", "check_options", "bounded_gdal_cache",
           "GDAL_CACHE_BYTES"]

#: GDAL's block cache (``GDAL_CACHEMAX``) while :func:`map_scene` runs, in bytes: a few times
#: the blocks one window reads (a 2048 px RGB window with its mask: 16 MiB). GDAL's default,
#: 5 % of the machine's memory, lets the cache keep every block of the scene read so far and
#: of the rasters read back, so that peak memory grew with the scene's area.
GDAL_CACHE_BYTES = 32 * 2**20


@contextlib.contextmanager
def bounded_gdal_cache(nbytes: int = GDAL_CACHE_BYTES):
    """Bound GDAL's block cache (process-wide) to ``nbytes`` inside the ``with`` block, and
    restore it after; a cache already bounded below ``nbytes`` is left as it is."""
    from rasterio.env import get_gdal_config, set_gdal_config

    previous = get_gdal_config("GDAL_CACHEMAX")  # the cache's size in bytes
    if previous <= nbytes:
        yield
        return
    set_gdal_config("GDAL_CACHEMAX", nbytes)
    try:
        yield
    finally:
        set_gdal_config("GDAL_CACHEMAX", previous)


def _silent(message: str) -> None:
    """The default ``warn``: library code says nothing."""


def map_scene(scene: str | os.PathLike, model: Predictor | str | os.PathLike,
              out: str | os.PathLike, *, tiling: Tiling = DEFAULT_TILING, threshold: float = 0.5,
              dsm: str | os.PathLike | None = None, bands: Sequence[int] | None = None,
              cleaning: OutlineCleaning | None = None, fmt: str = "gpkg",
              overwrite: bool = False,
              progress: Callable[[Iterable], Iterable] = iter,
              warn: Callable[[str], None] = _silent, cog_blocksize: int = 512,
              predict: Callable[..., Iterable] | None = None) -> dict[str, Any]:
    """Map landslides in ``scene`` with ``model``; write the outputs into ``out``.

    Writes ``probability.tif`` and ``mask.tif`` (COGs on the scene's grid; probability in
    percent, uint8 0-100 with scale 0.01, 255 = no data; mask 0/1, 255 = no data),
    ``landslides.gpkg`` (or ``.geojson`` with ``fmt="geojson"``) and ``map.json``, and
    returns map.json's content.

    Parameters
    ----------
    scene : path
        The scene raster (uint8 bands; no data as a mask band, nodata value or alpha band).
    model : Predictor or path
        A loaded model, or a weights file (.safetensors) loaded here on the CPU; for another
        device or an ONNX model pass ``Predictor.from_file(path, engine=..., device=...)``.
    out : path
        The output folder (new or empty, unless ``overwrite``).
    tiling : Tiling
        Window size, overlap and batch size (see :mod:`.core`).
    threshold : float
        Landslide where the probability is at least this.
    dsm : path, optional
        The scene's surface model, needed by (and only by) a model trained with terrain
        channels; it may be on another grid (resampled on the fly).
    bands : sequence of int, optional
        The scene's bands (1-based) the model reads, in the model's order; by default its
        non-alpha bands when there are as many as the model takes (or the bands labelled
        red, green, blue for a 3-band model). Recorded in map.json.
    cleaning : OutlineCleaning, optional
        How the mask is cleaned (:mod:`scdnn.outlines`; values in metres are converted with
        the scene's pixel size, pixel defaults on a scene without a projected CRS) and its
        polygons simplified; None (the default) writes the raw thresholded mask with pixel
        outlines, as the command line's ``--raw``. The command line uses
        ``OutlineCleaning()``. Recorded in map.json (``cleaning``; ``min_area`` and
        ``simplify`` give the values used in CRS units).
    fmt : {"gpkg", "geojson"}
        Polygon file format.
    overwrite : bool
        Write into a non-empty ``out`` (its files are replaced, nothing else deleted).
    progress : callable
        Wraps the iterable of windows to run (a progress bar).
    warn : callable
        Receives one-line warnings (a scene without a CRS).
    cog_blocksize : int
        Block size of the output COGs.
    predict : callable, optional
        ``predict(predictor, scene, plan, progress=progress)`` gives the blended full-width
        rows, as :func:`.core.predict_scene` does; :mod:`scdnn.region.blocks` passes rows
        predicted by several workers. By default :func:`.core.predict_blocks` predicts the
        scene, giving only the column blocks where windows ran (a sparse scene's empty
        regions cost nothing).

    Raises
    ------
    ScdnnError
        Bad options (InvalidValueError), a scene the model cannot take, a scene without a
        valid pixel, or an output folder that is not empty (without ``overwrite``).
    """
    check_outputs(threshold, fmt)
    check_cleaning(cleaning)
    if not isinstance(tiling, Tiling):
        raise InvalidValueError(f"must be a Tiling, got {type(tiling).__name__}",
                                option="tiling")
    predictor = model if isinstance(model, Predictor) else Predictor.from_file(model)
    card = predictor.card
    cleaning = model_cleaning(cleaning, card)  # the model's own mapping unit, if it has one
    with bounded_gdal_cache(), \
            open_scene(scene, card.in_channels, card.inputs, dsm=dsm, bands=bands) as sc:
        if sc.units in ("pixel", "unknown", "degree"):
            warn(_units_warning(sc))
        plan = plan_windows(predictor, sc, tiling)
        if not plan.run:
            shape = (min(sc.height, 1024), min(sc.width, 1024))
            if sc.dsm is not None and sc.dataset.dataset_mask(out_shape=shape).any():
                raise InvalidValueError("DSM has no height where the scene has data (all no "
                                        "data there, or it does not cover the scene)",
                                        sc.dsm_path)
            raise InvalidValueError("scene has no valid pixel (all masked or nodata)", sc.path)
        # a folder made here is removed again if mapping fails (a half-read scene)
        with output_dir(out, overwrite=overwrite) as out, Staging(out) as staging:
            prob_tmp, mask_tmp = staging.scratch("probability.tif"), staging.scratch("mask.tif")
            raw_tmp = mask_tmp if cleaning is None else staging.scratch("mask-raw.tif")
            if predict is None:
                bands = predict_blocks(predictor, sc, plan, progress=progress)
            else:  # full-width rows, as predict_scene gives them
                bands = _rows_as_bands(predict(predictor, sc, plan, progress=progress))
            counts = write_rasters(bands, sc, threshold, prob_tmp, raw_tmp)
            pixel_size = pixel_size_of(sc.transform, sc.units)
            min_area = simplify = 0.0
            if cleaning is not None:
                pixels = cleaning.resolve(pixel_size)
                counts = clean_raster(raw_tmp, mask_tmp, pixels)
                min_area, simplify = _in_crs_units(cleaning, pixel_size, sc.pixel_area)

            # the probability COG is copied on a second thread (GDAL releases the GIL)
            # while the mask is polygonized and copied: both only read probability.tif
            with quiet_georeferencing(), \
                    ThreadPoolExecutor(1, thread_name_prefix="scdnn-cog") as background:
                probability_cog = background.submit(
                    copy_to_cog, prob_tmp, staging.final("probability.tif"),
                    resampling="average", predictor=True, blocksize=cog_blocksize)
                landslides = polygonize(mask_tmp, prob_tmp)
                table = landslide_table(landslides, sc.transform, sc.crs, simplify=simplify)
                write_polygons(table, staging.final(f"landslides.{fmt}"), fmt)
                copy_to_cog(mask_tmp, staging.final("mask.tif"), resampling="mode",
                            blocksize=cog_blocksize)
                probability_cog.result()
            record = MapRecord(
                scene=str(sc.path), dsm=None if dsm is None else str(dsm),
                weights=None if predictor.source is None else os.fspath(predictor.source),
                engine=predictor.engine, tta=predictor.tta, model=card.model,
                inputs=card.inputs,
                bands=list(sc.bands), width=sc.width, height=sc.height,
                crs=sc.crs.to_string() if sc.crs else None,
                transform=list(sc.transform)[:6], units=sc.units,
                tile=tiling.tile, overlap=tiling.overlap, batch_size=tiling.batch_size,
                threshold=threshold, min_area=min_area, simplify=simplify,
                cleaning=cleaning_record(cleaning, pixel_size),
                windows=plan.counts(), **counts,
                valid_area=counts["valid_pixels"] * sc.pixel_area,
                landslide_area=counts["landslide_pixels"] * sc.pixel_area,
                landslides=len(table),
                nodata={"probability": PROBABILITY_NODATA, "mask": IGNORE_INDEX},
                outputs=["probability.tif", "mask.tif", f"landslides.{fmt}"],
                provenance=provenance())
            summary = record.to_dict()
            # map.json is staged too (renamed last), so that a killed run never leaves
            # outputs without it (a rerun would then see a folder that is not its own)
            write_json(staging.final("map.json"), summary)
            staging.commit()
    return summary


def write_rasters(bands: Iterable[tuple[int, int, list]], scene: Scene,
                  threshold: float, probability_path: Path, mask_path: Path) -> dict[str, int]:
    """Write blended probability (:func:`.core.predict_blocks`), top to bottom, as the
    probability and mask rasters; nodata in both wherever a pixel is not valid. Both are
    sparse GeoTIFFs (:class:`.outputs.BlockWriter`): blocks without a valid pixel are not
    written.

    Returns the counts of valid and landslide pixels.
    """
    grid = dict(width=scene.width, height=scene.height, crs=scene.crs, transform=scene.transform)
    counts = {"valid_pixels": 0, "landslide_pixels": 0}
    with BlockWriter(probability_path, dtype="uint8", nodata=PROBABILITY_NODATA,
                     scale=PROBABILITY_SCALE, units="percent", **grid) as prob_out, \
            BlockWriter(mask_path, dtype="uint8", nodata=IGNORE_INDEX, **grid) as mask_out:
        for first, rows, pieces in bands:
            for row0, col0, probability, valid in pieces:
                if not valid.any():
                    continue
                landslide = valid & (probability >= threshold)
                prob_out.write(row0, col0, probability_percent(probability, valid))
                mask_out.write(row0, col0, np.where(valid, landslide, IGNORE_INDEX)
                               .astype(np.uint8))
                counts["valid_pixels"] += int(valid.sum())
                counts["landslide_pixels"] += int(landslide.sum())
            prob_out.done(first + rows)
            mask_out.done(first + rows)
            # let the band go before the next one is asked for: producing it runs the network
            # on the next window, and the band (rows x the scene's width) would live on in
            # these names meanwhile
            pieces = probability = valid = landslide = None
    return counts


def _rows_as_bands(rows: Iterable[tuple[int, np.ndarray, np.ndarray]]
                   ) -> Iterable[tuple[int, int, list]]:
    """Full-width rows ``(first_row, probability, valid)`` as :func:`write_rasters` takes
    bands: one piece each, from column 0."""
    for row0, probability, valid in rows:
        yield row0, len(probability), [(row0, 0, probability, valid)]


def check_options(tile: int, overlap: int, batch_size: int, threshold: float,
                  fmt: str = "gpkg", cleaning: OutlineCleaning | None = None) -> None:
    """Refuse option values that cannot work (InvalidValueError), before anything is read."""
    Tiling(tile, overlap, batch_size)
    check_outputs(threshold, fmt)
    check_cleaning(cleaning)


def check_outputs(threshold: float, fmt: str) -> None:
    """Refuse a threshold or polygon format that cannot work (InvalidValueError)."""
    if not 0 < threshold < 1:
        raise InvalidValueError(f"must be strictly between 0 and 1, got {threshold}",
                                option="threshold")
    if fmt not in POLYGON_FORMATS:
        raise InvalidValueError(f"must be one of {', '.join(POLYGON_FORMATS)}, got '{fmt}'",
                                option="fmt")


def _in_crs_units(cleaning: OutlineCleaning, pixel_size: float | None,
                  pixel_area: float) -> tuple[float, float]:
    """The cleaning's minimum area and polygon tolerance in the scene's CRS units."""
    used = cleaning.for_data(pixel_size)
    if used.units == "m":
        return used.min_area, used.simplify
    return used.min_area * pixel_area, used.simplify * math.sqrt(pixel_area)


def _units_warning(scene: Scene) -> str:
    if scene.units == "degree":
        return (f"{scene.path}: geographic CRS: area_m2 and perimeter_m are in degrees; "
                f"reproject the scene to a projected CRS for metres")
    if scene.units == "pixel":
        return (f"{scene.path}: no CRS or geotransform: polygons are in pixel coordinates, "
                f"area_m2 and perimeter_m in pixels")
    return f"{scene.path}: no CRS: areas are in the units of the geotransform"
