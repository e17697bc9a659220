"""``scdnn evaluate``: score a model or saved masks against the truth, on images or scenes.

One entry point, :func:`evaluate`, for every kind of data (:mod:`scdnn.datasets.source`):

- image folders: each image predicted whole at its native size, one at a time (networks pad
  to their output stride and crop back); predicted masks kept as ``OUT/masks/<name>.png``;
- georeferenced scenes: each scene predicted exactly as ``scdnn map`` predicts it (the same
  windows, batches and blending) and scored against its label raster on every pixel that is
  valid in the scene (and its DSM, for a model that uses one) and labelled 0 or 1: no-data is
  never scored. One row per scene in per_image.csv; the boundary F1 tolerance is also given in
  metres, and on scenes in a projected CRS in metres boundary F1 is also scored at ground
  tolerances of 0.5, 1, 2 and 4 m (each converted to pixels with the scene's own pixel size;
  ``boundary_f1_at_m``); predicted masks kept as ``OUT/masks/<scene>.tif``.

Memory on scenes: the predicted mask, the label and the valid mask are held for the whole
scene as uint8/bool (3 bytes per pixel); scoring works strip by strip
(:meth:`scdnn.metrics.Evaluator.update_scene`).

A second entry point, :func:`evaluate_polygons`, scores landslide polygons (a ``scdnn map``
run's ``landslides.gpkg``, or any tool's) against a landslide inventory: both are rasterised
on one grid (the map's ``mask.tif``) and scored as a scene.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

from .datasets.source import ScoringOptions, open_source_for_model
from .errors import InputFileNotFoundError, InvalidValueError, param
from .metrics import Evaluator
from .outlines import OutlineCleaning, check_cleaning, model_cleaning
from .records import EvaluationRecord
from .runs import output_dir, provenance, write_json

__all__ = ["evaluate", "evaluate_polygons", "ScoringOptions"]


def evaluate(data: str | os.PathLike, out: str | os.PathLike, weights: str | None = None,
             predictions: str | None = None, split: str | None = None, use_all: bool = False,
             tolerance: int = 2, tile: int = 2048, overlap: int = 512, batch_size: int = 1,
             threshold: float = 0.5, cleaning: OutlineCleaning | None = None,
             overwrite: bool = False, device: str = "cpu", tta: str = "none",
             progress: Callable[[Iterable], Iterable] = iter,
             summary: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Score a model (``weights``) or saved masks (``predictions``) on the samples of ``data``.

    Parameters
    ----------
    data : an image dataset folder (images/ + masks/, or the Bijie layout) or georeferenced
        scenes (a scene folder or a folder of them)
    out : the evaluation folder (new or empty unless ``overwrite``)
    weights : a weights file: its model predicts every scored sample, and the predicted masks
        are kept in ``OUT/masks/`` (``<name>.png`` 0/255, or ``<scene>.tif`` 0/1/255 on the
        scene's grid)
    predictions : instead of weights: a folder of mask files paired with the images by stem
        (0/255 or 0/1; its ``masks/`` subfolder when it has one), or for one scene a mask
        raster on its grid (a ``scdnn map`` folder's ``mask.tif``)
    split, use_all : which samples: ``use_all`` every one; ``split`` the test part of that
        split file; else the test part of the model's own split when ``data`` holds all of
        it, every sample when it holds none of it (another dataset); holding only part of it
        is refused
    tolerance : boundary F1 tolerance in pixels
    tile, overlap, batch_size : scenes: the windows, as ``scdnn map`` takes them
    threshold : landslide where the predicted probability is at least this
    cleaning : with ``weights``: how the model's masks are cleaned before they are written
        and scored (:class:`scdnn.outlines.OutlineCleaning`; metres are converted with each
        scene's pixel size, images take pixel values); None (the default, what the
        benchmark scores) keeps the raw thresholded masks. ``predictions`` are always scored
        as given. Recorded as ``cleaning`` in metrics.json.
    device : where the model runs
    tta : with ``weights``: test-time augmentation, ``none``, ``flips`` or ``d4``
        (:class:`scdnn.Predictor`); recorded in metrics.json (``none`` for ``predictions``)
    progress : wraps an iterable of work (images, or a scene's windows) for a progress bar
    summary : called with each line saying what was scored, once it is done (the command line
        prints them)

    Returns
    -------
    dict
        The content of ``OUT/metrics.json`` (also ``OUT/per_image.csv``): the
        :meth:`~scdnn.metrics.Evaluator.compute` metrics (``boundary_f1_at_m``: boundary
        F1 at 0.5, 1, 2 and 4 m on scenes in metres, None on images and on scenes without a
        pixel size in metres), ``boundary_tolerance_m`` on scenes,
        ``scored`` (which samples and why), ``source`` (what was scored against what) and
        ``provenance``.

    Raises
    ------
    ScdnnError
        Not exactly one of ``weights`` and ``predictions``; unreadable weights, data or
        masks; a split that does not fit the data; the data holding part of the model's test
        samples; a non-empty ``out`` without ``overwrite``. All before anything is written;
        a failure while scoring (a mask raster that cannot be read) removes an output folder
        made here.
    """
    if (weights is None) == (predictions is None):
        raise InvalidValueError(f"give exactly one of {param('weights')} or {param('predictions')}")
    from .predictor import tta_transforms

    check_cleaning(cleaning)
    tta_transforms(tta)  # an unknown mode fails before anything is read
    if tta != "none" and weights is None:
        raise InvalidValueError(f"{param('tta')} augments a model's predictions; it needs "
                                f"{param('weights')}, not {param('predictions')}")
    card, model = None, None
    if weights is not None:
        from .predictor import move_to_device
        from .weights import load_model

        model, card = load_model(weights)
        move_to_device(model, device)
        cleaning = model_cleaning(cleaning, card)  # the model's own mapping unit
    options = ScoringOptions(tile=tile, overlap=overlap, batch_size=batch_size,
                             threshold=threshold, cleaning=cleaning, tta=tta)
    source = open_source_for_model(data, card)
    names, chosen = source.names_to_score(card, split, use_all)
    source.check_scoring(names, predictions=predictions, options=options)
    with output_dir(out, overwrite=overwrite) as out:
        evaluator = Evaluator(tolerance=tolerance)
        added = source.score(names, evaluator, model=model, card=card,
                             predictions=predictions,
                             masks=out / "masks" if model is not None else None,
                             options=options, device=device, progress=progress)
        metrics = evaluator.compute()
        metrics.update(added)
        metrics["scored"] = chosen
        metrics["tta"] = tta  # "none" for masks scored as given, as cleaning is None
        metrics["source"] = source.scoring_record(names, weights=weights,
                                                  predictions=predictions, options=options)
        metrics["provenance"] = provenance()
        metrics = EvaluationRecord.from_dict(metrics).to_dict()  # the typed record, checked
        write_json(out / "metrics.json", metrics)
        evaluator.write_csv(out / "per_image.csv")
    for line in source.summary(metrics) if summary is not None else ():
        summary(line)
    return metrics


#: Polygon files of a ``scdnn map`` folder, in the order looked for.
MAP_POLYGONS = ("landslides.gpkg", "landslides.geojson")


def map_polygons_and_grid(polygons: str | os.PathLike, grid: str | os.PathLike | None = None
                          ) -> tuple[Path, Path]:
    """The polygon file and the grid raster meant by ``polygons`` and ``grid``.

    ``polygons`` is a polygon file or a ``scdnn map`` folder (its ``landslides.gpkg`` or
    ``.geojson``). Without ``grid``, the grid is the map's ``mask.tif``: in that folder, or
    next to the polygon file.

    Raises
    ------
    ScdnnError
        A missing file or folder; a map folder without polygons; no ``mask.tif`` to take
        the grid from and no ``grid``.
    """
    path = Path(polygons)
    if path.is_dir():
        found = next((path / n for n in MAP_POLYGONS if (path / n).is_file()), None)
        if found is None:
            raise InputFileNotFoundError(f"map folder holds no {' or '.join(MAP_POLYGONS)}",
                                         path)
        folder, path = path, found
    elif path.is_file():
        folder = path.parent
    else:
        raise InputFileNotFoundError("polygon file does not exist", path)
    if grid is None:
        if not (folder / "mask.tif").is_file():
            raise InvalidValueError(f"no mask.tif beside the polygons to take the grid from; "
                                    f"give a raster with {param('grid')}", path)
        return path, folder / "mask.tif"
    if not Path(grid).is_file():
        raise InputFileNotFoundError("grid raster does not exist", grid)
    return path, Path(grid)


def evaluate_polygons(inventory: str | os.PathLike, polygons: str | os.PathLike,
                      out: str | os.PathLike, aoi: str | os.PathLike | None = None,
                      grid: str | os.PathLike | None = None, tolerance: int = 2,
                      overwrite: bool = False, strip_rows: int = 1024,
                      summary: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Score landslide ``polygons`` against an ``inventory``, both rasterised on one grid.

    Parameters
    ----------
    inventory : the true landslides, a polygon file in any CRS
        (:func:`scdnn.datasets.labels.read_polygons`: GeoPackage, shapefile, GeoJSON,
        GeoParquet)
    polygons : the predicted landslides: a polygon file in any CRS, or a ``scdnn map`` folder
        (its ``landslides.gpkg``); it may hold no polygon (nothing was mapped)
    out : the evaluation folder (new or empty unless ``overwrite``)
    aoi : where the inventory is complete (polygons); only pixels inside it are scored
    grid : the raster whose grid both are rasterised on (CRS, transform, size; its no-data
        is not scored); by default the map's ``mask.tif`` (in the map folder, or beside the
        polygon file)
    tolerance : boundary F1 tolerance in pixels
    strip_rows : rows rasterised at a time
    summary : called with each line saying what was scored

    A pixel is a landslide when its centre is inside a polygon (``all_touched=False``), for
    the inventory and the prediction alike; the scores are those of ``scdnn evaluate`` on a
    scene (pixel, object and boundary scores, boundary F1 in metres when the grid's CRS is
    projected in metres; ``OUT/metrics.json``, ``OUT/per_image.csv``).

    Raises
    ------
    ScdnnError
        A bad inventory, prediction or area of interest (see
        :class:`~scdnn.datasets.labels.PolygonLabels`), no grid, a grid that is not a raster
        or has no CRS, a non-empty ``out`` without ``overwrite``; all before anything is
        written.
    """
    import numpy as np
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    from .datasets.io import IGNORE_INDEX
    from .datasets.labels import PolygonLabels
    from .datasets.scene import metre_pixel_size
    from .errors import InputFileError

    polygons, grid = map_polygons_and_grid(polygons, grid)
    try:
        dataset = rasterio.open(grid)
    except RasterioError:
        raise InputFileError("grid raster is not a raster file GDAL can read", grid) from None
    with dataset:
        if dataset.crs is None:
            raise InvalidValueError("grid raster has no CRS; polygons cannot be placed on it",
                                    grid)
        truth = PolygonLabels(inventory, dataset, aoi=aoi)
        pred_labels = PolygonLabels(polygons, dataset, allow_empty=True)
        height, width = dataset.height, dataset.width
        target = np.empty((height, width), np.uint8)
        pred = np.empty((height, width), np.uint8)
        for top in range(0, height, strip_rows):
            window = Window(0, top, width, min(strip_rows, height - top))
            rows = slice(top, top + int(window.height))
            target[rows] = truth.read(window)
            pred[rows] = pred_labels.read(window)
            try:
                valid = dataset.read_masks(1, window=window) != 0
            except RasterioError as exc:
                raise InputFileError(f"cannot read the grid raster: {exc}", grid) from None
            target[rows][~valid] = IGNORE_INDEX
        pixel = metre_pixel_size(dataset)
    name = polygons.parent.name if polygons.name in MAP_POLYGONS else polygons.stem
    with output_dir(out, overwrite=overwrite) as out:
        evaluator = Evaluator(tolerance=tolerance)
        evaluator.update_scene(pred, target, name, valid=target != IGNORE_INDEX,
                               strip_rows=strip_rows, pixel_size_m=pixel)
        del pred, target
        metrics = evaluator.compute()
        metrics["boundary_tolerance_m"] = None if pixel is None else tolerance * pixel
        metrics["boundary_tolerances_m"] = None if pixel is None else {
            key: float(key) * pixel for key in evaluator.tolerance_keys()}
        metrics["cleaning"] = None  # polygons are scored as given
        metrics["scored"] = ("every valid pixel of the grid" if aoi is None else
                             "every valid pixel of the grid inside the area of interest")
        metrics["tta"] = "none"
        metrics["source"] = {"data": os.fspath(inventory), "polygons": os.fspath(polygons),
                             "aoi": None if aoi is None else os.fspath(aoi),
                             "grid": os.fspath(grid), "weights": None, "predictions": None,
                             "scenes": [name]}
        metrics["provenance"] = provenance()
        metrics = EvaluationRecord.from_dict(metrics).to_dict()
        write_json(out / "metrics.json", metrics)
        evaluator.write_csv(out / "per_image.csv")
    if summary is not None:
        summary(f"scored {polygons} against {inventory} on the grid of {grid}, "
                f"{metrics['scored']}")
        if metrics.get("boundary_tolerance_m") is not None:
            summary(f"boundary tolerance: {metrics['boundary_tolerance_px']} px = "
                    f"{metrics['boundary_tolerance_m']:.2f} m")
    return metrics
