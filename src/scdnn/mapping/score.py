"""``scdnn evaluate`` on georeferenced scenes: map each test scene, score every valid pixel.

A scene is predicted exactly as ``scdnn map`` predicts it (the same windows, batches and
blending, :func:`.core.predict_scene`) and scored against its
label raster over every pixel that is valid in the scene (and its DSM, for a model that uses
one) and labelled 0 or 1: no-data is never scored. Scores are the dataset metrics of
:class:`scdnn.metrics.Evaluator`, one row per scene in ``per_image.csv``, the boundary F1
tolerance given in pixels and in metres.

Memory: the predicted mask, the label and the valid mask are held for the whole scene as
uint8/bool (3 bytes per pixel); scoring works strip by strip
(:meth:`scdnn.metrics.Evaluator.update_scene`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..datasets import Normalization
from ..datasets.io import IGNORE_INDEX
from ..datasets.scene import same_grid, uses_elevation
from ..datasets.scenes import LabelledScene, SceneCollection
from ..errors import UserError
from ..metrics import Evaluator
from ..runs import atomic_path, prepare_out_dir, provenance, read_json, write_json
from ..weights import load_model
from .predict import _to_device, check_options

__all__ = ["evaluate_scenes", "predict_scene_mask"]


def evaluate_scenes(data: str | os.PathLike, out: str | os.PathLike, weights: str | None = None,
                    predictions: str | None = None, split: str | None = None,
                    use_all: bool = False, tolerance: int = 2, tile: int = 2048,
                    overlap: int = 512, batch_size: int = 1, threshold: float = 0.5,
                    overwrite: bool = False, device: str = "cpu",
                    progress: Callable[[Iterable], Iterable] = iter) -> dict[str, Any]:
    """Score a model (``weights``) or a predicted mask raster (``predictions``) on the scenes
    of ``data``. Writes ``OUT/metrics.json``, ``OUT/per_image.csv`` (one row per scene) and,
    with weights, ``OUT/masks/<scene>.tif`` (0, 1, 255 = no data; the scene's grid).

    Which scenes: ``use_all`` -> all; ``split`` -> that split file's ``test`` scenes; else the
    test scenes of the model's own split when ``data`` holds them all, every scene when it
    holds none of them; holding only some is refused (UserError).
    """
    if (weights is None) == (predictions is None):
        raise UserError("give exactly one of --weights or --predictions")
    check_options(tile, overlap, batch_size, threshold, 0.0, 0.0, "gpkg")
    card, model = None, None
    if weights is not None:
        model, card = load_model(weights)
        _to_device(model, device)
    elevation = uses_elevation(card.inputs if card else None)
    collection = SceneCollection(data, use_dsm=elevation)
    names, chosen = _scenes_to_score(collection, card, split, use_all)
    if predictions is not None and len(names) != 1:
        raise UserError(f"--predictions takes one mask raster, so DATA must be one scene "
                        f"(it holds {len(names)}: {', '.join(names)})", data)
    out = prepare_out_dir(out, overwrite=overwrite)
    evaluator = Evaluator(tolerance=tolerance)
    pixel_sizes = []
    for name in names:
        scene = collection.open(name)
        pixel_sizes.append(scene.scene.dataset.res if scene.scene.units == "metre" else None)
        if model is not None:
            pred = predict_scene_mask(model, card, scene, tile, overlap, batch_size, threshold,
                                      device, progress)
            _write_mask(pred, scene, out / "masks" / f"{name}.tif")
        else:
            pred = _read_predictions(Path(predictions), scene)
        label, valid = _label_and_valid(scene)
        evaluator.update_scene(np.where(pred == 1, 1, 0).astype(np.uint8), label, name,
                               valid=valid)
    collection.close()

    metrics = evaluator.compute()
    metrics["boundary_tolerance_m"] = _tolerance_m(tolerance, pixel_sizes)
    metrics["scored"] = chosen
    metrics["source"] = {"data": str(data), "weights": weights, "predictions": predictions,
                         "scenes": names, "tile": tile, "overlap": overlap}
    metrics["provenance"] = provenance()
    write_json(out / "metrics.json", metrics)
    evaluator.write_csv(out / "per_image.csv")
    return metrics


def _scenes_to_score(collection: SceneCollection, card: dict | None, split: str | None,
                     use_all: bool) -> tuple[list[str], str]:
    names = collection.names
    if use_all:
        return names, "all scenes"
    if split:
        test = list(read_json(split).get("test", []))
        missing = [n for n in test if n not in names]
        if missing or not test:
            raise UserError(f"split's test scenes {test} are not all in {collection.root}",
                            split)
        return test, f"test scenes of {split}"
    test = card.test_names if card else []
    present = [n for n in test if n in names]
    if test and len(present) == len(test):
        return test, "test scenes of the split in the model card"
    if present:
        missing = next(n for n in test if n not in names)
        raise UserError(f"holds only {len(present)} of the model's {len(test)} test scenes "
                        f"('{missing}' is missing); use --all or --split", collection.root)
    if card and set(card.split.get("train", [])) & set(names):
        raise UserError(f"holds the model's training scene(s) "
                        f"{sorted(set(card.split['train']) & set(names))} and none of its "
                        f"test scenes; use --all to score them anyway", collection.root)
    return names, "all scenes"


def predict_scene_mask(model, card: dict, scene: LabelledScene, tile: int, overlap: int,
                       batch_size: int, threshold: float, device: str = "cpu",
                       progress: Callable[[Iterable], Iterable] = iter) -> np.ndarray:
    """The landslide mask ``scdnn map`` would write for ``scene`` (uint8 0/1, 255 = no data),
    predicted by :func:`.core.predict_scene`. ``model`` is a network with its ``card``, on
    ``device``, or a :class:`scdnn.Predictor`."""
    from ..predictor import Predictor
    from .core import Tiling, plan_windows, predict_scene

    sc = scene.scene
    if sc.channels != card.in_channels:
        raise UserError(f"scene gives {sc.channels} channels ({', '.join(sc.inputs)}) but the "
                        f"model takes {card.in_channels} ({', '.join(card.inputs)})",
                        sc.path)
    predictor = model if isinstance(model, Predictor) else Predictor(model, card, device)
    plan = plan_windows(predictor, sc, Tiling(tile, overlap, batch_size))
    mask = np.full((sc.height, sc.width), IGNORE_INDEX, np.uint8)
    if not plan.run:
        return mask
    for row0, probability, valid in predict_scene(predictor, sc, plan, progress=progress):
        rows = slice(row0, row0 + len(probability))
        mask[rows] = np.where(valid, probability >= threshold, IGNORE_INDEX)
    return mask


def _label_and_valid(scene: LabelledScene) -> tuple[np.ndarray, np.ndarray]:
    """The whole label (0/1/255) and validity, read strip by strip."""
    label = np.empty((scene.height, scene.width), np.uint8)
    for top in range(0, scene.height, 1024):
        window = Window(0, top, scene.width, min(1024, scene.height - top))
        label[top:top + int(window.height)] = scene.read_label(window, check=True)
        label[top:top + int(window.height)][~scene.scene.valid_mask(window)] = IGNORE_INDEX
    return label, label != IGNORE_INDEX


def _read_predictions(path: Path, scene: LabelledScene) -> np.ndarray:
    """A predicted mask raster on the scene's grid: 1 landslide, anything else not."""
    if path.is_dir():
        path = path / "mask.tif"
    if not path.is_file():
        raise UserError("predicted mask raster does not exist", path)
    try:
        with rasterio.open(path) as src:
            if not same_grid(src, scene.scene.dataset):
                raise UserError(f"predicted mask is on another grid than the scene "
                                f"{scene.files.image} ({src.width}x{src.height} vs "
                                f"{scene.width}x{scene.height}, or another transform/CRS)", path)
            pred = src.read(1)
    except RasterioError as exc:
        raise UserError(f"cannot read the predicted mask: {exc}", path) from None
    bad = ~np.isin(pred, (0, 1, IGNORE_INDEX))
    if bad.any():
        raise UserError(f"predicted mask is not binary: holds {pred[bad][0]} (expected 0, 1, "
                        f"255 = no data)", path)
    return pred


def _write_mask(mask: np.ndarray, scene: LabelledScene, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = scene.scene.dataset
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", driver="GTiff", width=ds.width, height=ds.height, count=1,
                           dtype="uint8", crs=ds.crs, transform=ds.transform,
                           nodata=IGNORE_INDEX, tiled=True, compress="deflate") as dst:
            dst.write(mask, 1)


def _tolerance_m(tolerance: float, pixel_sizes: list) -> float | None:
    """The pixel tolerance in metres (mean pixel size), when every scene is in metres."""
    if not pixel_sizes or any(p is None for p in pixel_sizes):
        return None
    return float(tolerance * np.mean([abs(v) for p in pixel_sizes for v in p]))
