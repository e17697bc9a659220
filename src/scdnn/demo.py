"""``scdnn demo``: landslide boundaries on real images, offline, with the bundled weights.

The package ships SCDnn weights (``scdnn/data/scdnn-sichuan.safetensors``, trained by
``scdnn train`` on aerial images of Sichuan, CC BY 4.0; see ``scdnn/data/WEIGHTS.md``) and
the sample to run them on (``scdnn/data/sample/``: central 640 px crops of the 4 held-back
test images the weights' card names under ``demo_sample``, with their masks; written by
``benchmarks/bundle_sample.py``; source and licence in ``sample/ATTRIBUTION.md``). The
images come, in this order, from:

- ``--sample`` (a dataset folder with ``images/`` + ``masks/``);
- the bundled ``scdnn/data/sample/``;
- in a copy of the package without it, ``../shared/data/sichuan-aerial`` (the project's data
  folder, beside the repository or the working directory): the same crops are cut into
  ``OUT/sample/``;
- otherwise a small generated dataset in ``OUT/sample/``, with a note that its scores mean
  nothing (the pipeline runs; the network has never seen such images).

:func:`run_demo`:

1. loads the weights once (:class:`scdnn.Predictor`) and maps every sample image with
   :func:`scdnn.mapping.map_scene`, the code of ``scdnn map``
   (the PNGs have no CRS, so coordinates and areas are in pixels);
2. scores the predicted masks against the truth (:class:`scdnn.metrics.Evaluator`);
3. writes the output folder in the layout of ``scdnn evaluate`` and renders its report::

     OUT/maps/<name>/   probability.tif, mask.tif, landslides.gpkg, map.json (scdnn map)
     OUT/masks/<name>.png   predicted mask, 0/255
     OUT/metrics.json, OUT/per_image.csv   scores (as scdnn evaluate writes them)
     OUT/report.html   scdnn report of OUT: tables, and each image with the true and the
                       predicted boundaries
     OUT/.scdnn-demo   marker: the folder is the demo's own

The output folder is replaced on each run, but only when it is a previous demo's (it holds
the marker) or empty; any other folder is refused unless ``overwrite`` is set, and then
files are written into it and nothing in it is deleted. A folder that holds the weights or
the sample, or lies inside the sample, is always refused.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import rasterio

from .datasets import open_dataset, read_image, read_mask
from .datasets.scene import uses_elevation
from .errors import InputFileError, InputFileNotFoundError, InvalidValueError, param
from .inference import save_png
from .mapping import IGNORE_INDEX, map_scene
from .metrics import Evaluator
from .outlines import OutlineCleaning, check_cleaning, cleaning_record, model_cleaning
from .predictor import Predictor
from .report import write_report
from .runs import atomic_write, provenance, write_json
from .weights import read_card

__all__ = ["run_demo", "bundled_weights", "bundled_sample", "crop_sample", "demo_sample_spec",
           "MARKER"]

#: The file that marks an output folder as the demo's own (replaced on the next run).
MARKER = ".scdnn-demo"
WEIGHTS_NAME = "scdnn-sichuan.safetensors"
SAMPLE_NAME = "sample"


def _data_dir() -> Path:
    """The package's data folder (``scdnn/data``, shipped as package data)."""
    return Path(str(resources.files("scdnn").joinpath("data")))


def bundled_weights() -> Path:
    """Path of the bundled SCDnn weights (it may be absent in a checkout before bundling)."""
    return _data_dir() / WEIGHTS_NAME


def bundled_sample() -> Path:
    """Path of the bundled sample dataset (``images/`` + ``masks/``)."""
    return _data_dir() / SAMPLE_NAME


def _silent(message: str) -> None:
    """The default ``warn``: library code says nothing."""


def run_demo(out: str | os.PathLike = "demo-output", weights: str | os.PathLike | None = None,
             sample: str | os.PathLike | None = None, overwrite: bool = False,
             progress: Callable[[Iterable], Iterable] = iter,
             warn: Callable[[str], None] = _silent,
             cleaning: OutlineCleaning | None = None, tta: str = "none") -> dict[str, Any]:
    """Map, score and report the demo sample; return the metrics with ``report`` (the path
    of report.html) and ``maps`` (name -> the map.json summary of ``scdnn map``) added.

    ``cleaning`` cleans the maps as :func:`scdnn.mapping.map_scene` does (the sample's PNGs
    have no pixel size: pixel values, defaults 400 px, 400 px, 2 px, 1 px); the scores are
    those of the cleaned masks, and metrics.json records it (``cleaning``). None (the
    default) keeps the raw masks, as ``scdnn demo --raw``; the command line cleans with
    ``OutlineCleaning()``.

    ``weights`` and ``sample`` replace the bundled weights file and sample folder (a dataset
    folder with ``images/`` and ``masks/``). ``progress`` wraps the images to map;
    ``warn`` receives one-line notes (once: the sample has no CRS). ``tta``: test-time
    augmentation (:class:`scdnn.Predictor`), recorded in metrics.json and each map.json.

    Raises
    ------
    ScdnnError
        The weights file is missing (the bundled one too: not bundled yet), not an scdnn
        weights file, holds tensors of another network than its card names, or takes other
        inputs than the sample's image bands (elevation, another band count); the sample is
        missing or has an image without a mask; the output folder is not the demo's own, or
        holds the weights or the sample.
    """
    from .predictor import tta_transforms

    check_cleaning(cleaning)
    tta_transforms(tta)  # an unknown mode fails first
    weights = Path(weights) if weights is not None else bundled_weights()
    if not weights.is_file():
        if weights == bundled_weights():
            raise InvalidValueError("the bundled weights are not in this copy of scdnn (they are "
                            f"written by benchmarks/bundle.py); give {param('weights')}", weights)
        raise InputFileNotFoundError("weights file does not exist", weights)
    if sample is None and bundled_sample().is_dir():
        sample = bundled_sample()
    if sample is not None:
        sample = Path(sample)
        if not sample.is_dir():
            raise InputFileNotFoundError("demo sample folder does not exist (expected images/ and "
                                         "masks/)", sample)
        _check_sample(sample)
        predictor = _load_weights(weights, open_dataset(sample).in_channels, tta)
        _check_apart(Path(out), weights, sample)
        out = _prepare(Path(out), overwrite)
    else:
        predictor = _load_weights(weights, 3, tta)
        _check_apart(Path(out), weights, None)
        out = _prepare(Path(out), overwrite)
        sample = _make_sample(read_card(weights), out / "sample", warn)
    dataset = _check_sample(sample)
    cleaning = model_cleaning(cleaning, predictor.card)  # the model's own mapping unit

    evaluator = Evaluator(tolerance=2)
    notes: list[str] = []
    maps: dict[str, Any] = {}
    for s in progress(dataset.samples):
        summary = map_scene(s.image_path, predictor, out / "maps" / s.name, overwrite=True,
                            warn=notes.append, cleaning=cleaning)
        maps[s.name] = summary
        with rasterio.open(out / "maps" / s.name / "mask.tif") as src:
            mask = src.read(1)
        truth = read_mask(s.mask_path)
        if truth.shape != mask.shape:
            raise InvalidValueError(f"truth mask is {truth.shape[0]}x{truth.shape[1]} but the "
                                    f"image is {mask.shape[0]}x{mask.shape[1]}", s.mask_path)
        predicted = (mask == 1).astype(np.uint8)
        save_png(np.where(predicted == 1, 255, 0).astype(np.uint8),
                 out / "masks" / f"{s.name}.png")
        evaluator.update(predicted, truth, s.name, valid=mask != IGNORE_INDEX)
    if notes:
        warn("the sample images have no CRS: polygons are in pixel coordinates, areas in "
             "pixels")

    metrics = evaluator.compute()
    metrics["scored"] = "every image of the demo sample (held-back test images)"
    metrics["cleaning"] = cleaning_record(cleaning, None)
    metrics["tta"] = tta
    metrics["source"] = {"data": os.path.abspath(sample), "weights": os.path.abspath(weights),
                         "predictions": None}
    metrics["provenance"] = provenance()
    write_json(out / "metrics.json", metrics)
    evaluator.write_csv(out / "per_image.csv")
    report = write_report(out)
    return {**metrics, "report": report, "maps": maps}


def _check_sample(sample: Path):
    """The sample as a dataset, every image and mask read once first (sizes agree, masks
    0/1 or 0/255), so that a bad sample is refused before anything is written."""
    dataset = open_dataset(sample)
    for s in dataset.samples:
        if s.mask_path is None:
            raise InvalidValueError("sample image has no truth mask in masks/", s.image_path)
    dataset.validate()
    return dataset


def shared_sichuan() -> Path | None:
    """``../shared/data/sichuan-aerial`` beside the working directory or the repository."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        folder = base / ".." / "shared" / "data" / "sichuan-aerial"
        if (folder / "images").is_dir():
            return folder.resolve()
    return None


def _make_sample(card: dict[str, Any], folder: Path, warn: Callable[[str], None]) -> Path:
    """Write the demo sample into ``folder``: crops of the held-back test images the card
    names (``demo_sample``) from ../shared/data/sichuan-aerial, else generated images."""
    source = shared_sichuan()
    names, crop = demo_sample_spec(card)
    if source is not None and names and crop_sample(source, names, crop, folder):
        return folder
    from .datasets.synthetic import write_synthetic_dataset

    shutil.rmtree(folder, ignore_errors=True)
    warn("no real sample here (no bundled sample in this copy of scdnn, and "
         "../shared/data/sichuan-aerial not found): mapping generated images instead; the "
         "pipeline runs, but the scores say nothing about the network")
    return write_synthetic_dataset(folder, count=3, size=256, seed=0)


def demo_sample_spec(card) -> tuple[list[str], int]:
    """The demo sample a weights card names (``demo_sample``): its images that are held-back
    test images of the card's split, and the side of their central crop in pixels."""
    spec = card.extra.get("demo_sample") or {}
    test = set(card.split.get("test", []))
    return [n for n in spec.get("images", []) if n in test], int(spec.get("crop", 640))


def crop_sample(source: Path, names: list[str], crop: int, folder: Path) -> bool:
    """Write the central ``crop`` x ``crop`` pixels of ``source``'s images and masks
    ``names`` (``images/<name>.png``, ``masks/<name>.png``, masks as 0/255) into ``folder``
    as PNGs; False, having written only some, when one of them is missing. Deterministic:
    the same inputs give the same files (``benchmarks/bundle_sample.py`` bundles them)."""
    for name in names:
        image, mask = source / "images" / f"{name}.png", source / "masks" / f"{name}.png"
        if not (image.is_file() and mask.is_file()):
            return False
        _save_crop(read_image(image), folder / "images" / f"{name}.png", crop)
        _save_crop(read_mask(mask) * np.uint8(255), folder / "masks" / f"{name}.png", crop)
    return True


def _save_crop(array: np.ndarray, path: Path, crop: int) -> None:
    """The central ``crop`` x ``crop`` pixels of ``array`` as a PNG."""
    h, w = array.shape[:2]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(np.ascontiguousarray(array[top:top + crop, left:left + crop]), path)


def _load_weights(weights: Path, bands: int, tta: str = "none") -> Predictor:
    """Load the weights once for every image; refuse weights the sample cannot feed: tensors
    of another network than the card names (load_model), or inputs other than ``bands``
    image bands."""
    predictor = Predictor.from_file(weights, tta=tta)
    card = predictor.card
    inputs = list(card.inputs)
    takes = card.in_channels
    if uses_elevation(inputs) or "dem" in inputs or takes != bands:
        names = f" ({', '.join(inputs)})" if inputs else ""
        raise InvalidValueError(f"the weights take {takes} inputs{names} but the demo sample "
                                f"images have {bands} bands and no elevation; give weights "
                                f"trained on {bands}-band images alone", weights)
    return predictor


def _check_apart(out: Path, weights: Path, sample: Path | None) -> None:
    """Refuse an output folder that holds the weights or the sample, or lies inside the
    sample: replacing it, or writing masks/ into it, would destroy the inputs."""
    o = out.resolve()
    if weights.resolve().is_relative_to(o) or (sample is not None and (
            sample.resolve().is_relative_to(o) or o.is_relative_to(sample.resolve()))):
        raise InputFileError("output folder holds or is inside the weights or the sample; give "
                        f"another {param('out')}", out)


def _prepare(out: Path, overwrite: bool) -> Path:
    """Make ``out`` the demo's output folder: a previous demo's folder (with the marker) is
    deleted and made anew; an empty or new folder gets the marker; any other folder is
    refused unless ``overwrite`` (then written into, nothing deleted, no marker)."""
    if out.exists() and not out.is_dir():
        raise InputFileError("output path exists and is not a folder", out)
    if out.is_dir() and (out / MARKER).is_file():
        shutil.rmtree(out)
    elif out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputFileError(f"output folder exists, is not empty and is not a previous demo "
                                 f"output (no {MARKER} file); give another {param('out')} or "
                                 f"{param('overwrite')}", out)
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"cannot create output folder: {exc.strerror}", out) from None
    with atomic_write(out / MARKER, "w") as handle:
        handle.write("Written by scdnn demo: the next scdnn demo run with this --out deletes "
                     "this folder and writes it anew.\n")
    return out
