"""``scdnn predict`` and ``scdnn evaluate``: apply weights to image folders and score masks.

Images are processed whole, at their native size, one at a time (networks pad to their output
stride and crop back). For scenes larger than memory use ``scdnn map``, which tiles.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from PIL import Image

from .datasets import IMAGE_EXTENSIONS, BijieLandslide, Normalization, load_split, open_dataset, read_image, read_mask
from .errors import UserError
from .metrics import Evaluator
from .predictor import Predictor, landslide_softmax
from .runs import atomic_path, prepare_out_dir, provenance, write_json
from .weights import load_model

__all__ = ["landslide_probability", "landslide_probabilities", "predict_folder", "image_files",
           "save_png", "open_for_model", "evaluate"]


def landslide_probability(model: torch.nn.Module, image: np.ndarray,
                          normalization: Normalization, device: str = "cpu") -> np.ndarray:
    """Softmax probability of the landslide class for one HxWxC uint8 image (HxW float32),
    with a bare network and its normalisation (a loaded model: :meth:`Predictor.probability`)."""
    x = torch.from_numpy(normalization.apply(image))[None].to(device)
    return landslide_softmax(model, x)[0]


def landslide_probabilities(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax probability of the landslide class for a normalised batch ``N x C x H x W``
    already on the model's device (``N x H x W`` float32; a loaded model:
    :meth:`Predictor.probabilities`)."""
    return landslide_softmax(model, x)


def _check_bands(image: np.ndarray, card: dict, path: Path) -> None:
    if image.shape[-1] != card.in_channels:
        raise UserError(f"image has {image.shape[-1]} bands but the model takes "
                        f"{card.in_channels} ({', '.join(card.inputs)})", path)


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Images to predict: ``folder/*`` or, for a dataset folder, ``folder/images/*``."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError("image folder does not exist", root)
    if (root / "images").is_dir():
        root = root / "images"
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError("no images (png, jpg, tif) in folder", root)
    return files


def predict_folder(images: str | os.PathLike, weights: str | os.PathLike | Predictor,
                   out: str | os.PathLike, threshold: float = 0.5, overwrite: bool = False,
                   device: str = "cpu", progress: Callable[[Iterable], Iterable] = iter,
                   engine: str = "torch") -> Path:
    """Write ``OUT/masks/<stem>.png`` (0/255) and ``OUT/probabilities/<stem>.png`` (0–255).

    ``weights`` is a loaded :class:`Predictor` (``device`` and ``engine`` are then its own),
    or a file loaded with ``engine``: ``"torch"`` (a .safetensors file) or
    ``"onnxruntime"`` (an ONNX model from ``scdnn export``); see :mod:`scdnn.engines`."""
    files = image_files(images)
    predictor = weights if isinstance(weights, Predictor) else \
        Predictor.from_file(weights, engine, device)
    out = prepare_out_dir(out, overwrite=overwrite)
    (out / "masks").mkdir(exist_ok=True)
    (out / "probabilities").mkdir(exist_ok=True)
    for path in progress(files):
        image = read_image(path)
        _check_bands(image, predictor.card, path)
        prob = predictor.probability(image)
        save_png(np.where(prob >= threshold, 255, 0).astype(np.uint8), out / "masks" / f"{path.stem}.png")
        save_png(np.round(prob * 255).astype(np.uint8), out / "probabilities" / f"{path.stem}.png")
    return out


def _test_names(dataset, card: dict | None, split_file: str | None, use_all: bool
                ) -> tuple[list[str], str]:
    """Which images to score, and a phrase saying why.

    With weights and neither ``--split`` nor ``--all``: the test part of the model's own split
    when DATA holds those images; every image when DATA holds none of them (another dataset).
    DATA holding only some of them is refused rather than guessed at: scoring a model on its
    own training images by accident would overstate it.
    """
    names = [s.name for s in dataset.samples]
    if use_all:
        return names, "all images"
    if split_file:
        return load_split(split_file, names)["test"], f"test part of {split_file}"
    test = card.test_names if card else []
    present = [n for n in test if n in set(names)]
    if test and len(present) == len(test):
        return test, "test part of the split in the model card"
    if present:
        missing = next(n for n in test if n not in set(names))
        raise UserError(f"holds only {len(present)} of the model's {len(test)} test images "
                        f"('{missing}' is missing); use --all or --split", dataset.root)
    return names, "all images"


def open_for_model(data: str | os.PathLike, card: dict | None):
    """Open DATA with the inputs the model was trained with (DEM band, non-landslide images)."""
    use_dem = "dem" in (card.inputs if card else [])
    dataset = open_dataset(data, use_dem=use_dem)
    if (card.config.get("include_non_landslide") if card else False) and \
            isinstance(dataset, BijieLandslide):
        dataset = open_dataset(data, use_dem=use_dem, include_non_landslide=True)
    return dataset


def evaluate(data: str | os.PathLike, out: str | os.PathLike, weights: str | None = None,
             predictions: str | None = None, split: str | None = None, use_all: bool = False,
             tolerance: int = 2, overwrite: bool = False, device: str = "cpu",
             progress: Callable[[Iterable], Iterable] = iter) -> dict[str, Any]:
    """Score a model (``weights``) or existing mask files (``predictions``) against the truth.

    Writes ``OUT/metrics.json`` and ``OUT/per_image.csv`` and returns the metrics. With
    ``weights`` it also writes the predicted mask of every scored image as
    ``OUT/masks/<name>.png`` (0/255; a name with a prefix such as ``non-landslide/`` lands
    in a subfolder), which ``scdnn report`` draws. ``source`` in metrics.json holds the
    absolute paths of DATA and of the weights or predictions.
    """
    if (weights is None) == (predictions is None):
        raise UserError("give exactly one of --weights or --predictions")
    card = None
    model = None
    if weights is not None:
        model, card = load_model(weights)
        model.to(device)
    dataset = open_for_model(data, card)
    names, chosen = _test_names(dataset, card, split, use_all)
    by_name = {s.name: i for i, s in enumerate(dataset.samples)}
    pred_files: dict[str, Path] = {}
    if predictions is not None:
        pred_root = Path(predictions)
        if not pred_root.is_dir():
            raise UserError("predictions folder does not exist", pred_root)
        if (pred_root / "masks").is_dir():
            pred_root = pred_root / "masks"
        pred_files = {p.stem: p for p in pred_root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
        missing = [n for n in names if Path(n).name not in pred_files]
        if missing:
            raise UserError(f"no prediction for image '{missing[0]}'"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                            pred_root)
    out = prepare_out_dir(out, overwrite=overwrite)

    evaluator = Evaluator(tolerance=tolerance)
    normalization = card.normalization if card else None
    for name in progress(names):
        sample = dataset.samples[by_name[name]]
        item = dataset[by_name[name]]
        truth = item["mask"]
        if model is not None:
            _check_bands(item["image"], card, sample.image_path)
            pred = (landslide_probability(model, item["image"], normalization, device) >= 0.5)
            mask_file = out / "masks" / f"{name}.png"
            mask_file.parent.mkdir(parents=True, exist_ok=True)
            save_png(np.where(pred, 255, 0).astype(np.uint8), mask_file)
        else:
            path = pred_files[Path(name).name]
            pred = read_mask(path)
            if pred.shape != truth.shape:
                raise UserError(f"prediction is {pred.shape[0]}x{pred.shape[1]} but the truth "
                                f"{sample.mask_path} is {truth.shape[0]}x{truth.shape[1]}", path)
        evaluator.update(pred.astype(np.uint8), truth, name)

    metrics = evaluator.compute()
    metrics["scored"] = chosen
    metrics["source"] = {key: None if value is None else os.path.abspath(value)
                         for key, value in (("data", data), ("weights", weights),
                                            ("predictions", predictions))}
    metrics["provenance"] = provenance()
    write_json(out / "metrics.json", metrics)
    evaluator.write_csv(out / "per_image.csv")
    return metrics
