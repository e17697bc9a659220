"""``scdnn predict``: apply weights to image folders (``scdnn evaluate`` is
:mod:`scdnn.evaluation`).

Images are processed whole, at their native size, one at a time (networks pad to their output
stride and crop back). For scenes larger than memory use ``scdnn map``, which tiles.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

from .datasets import (
    IMAGE_EXTENSIONS,
    Normalization,
    read_image,
)
from .errors import InputFileNotFoundError, InvalidValueError
from .outlines import OutlineCleaning, check_cleaning, clean_mask, model_cleaning
from .predictor import Predictor, landslide_softmax
from .records import ModelCard
from .runs import atomic_path, output_dir

__all__ = ["landslide_probability", "check_bands", "predict_folder", "image_files",
           "save_png"]


def landslide_probability(model: torch.nn.Module, image: np.ndarray,
                          normalization: Normalization, device: str = "cpu",
                          tta: str = "none") -> np.ndarray:
    """Softmax probability of the landslide class for one HxWxC uint8 image (HxW float32),
    with a bare network and its normalisation (a loaded model: :meth:`Predictor.probability`);
    ``tta``: test-time augmentation (:data:`scdnn.predictor.TTA_MODES`)."""
    x = torch.from_numpy(normalization.apply(image))[None].to(device)
    return landslide_softmax(model, x, tta)[0]


def check_bands(image: np.ndarray, card: ModelCard, path: Path) -> None:
    """Refuse an image (read from ``path``) whose band count the model does not take."""
    if image.shape[-1] != card.in_channels:
        raise InvalidValueError(f"image has {image.shape[-1]} bands but the model takes "
                        f"{card.in_channels} ({', '.join(card.inputs)})", path)


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Images to predict: ``folder/*`` or, for a dataset folder, ``folder/images/*``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputFileNotFoundError("image folder does not exist", root)
    if (root / "images").is_dir():
        root = root / "images"
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputFileNotFoundError("no images (png, jpg, tif) in folder", root)
    return files


def predict_folder(images: str | os.PathLike, weights: str | os.PathLike | Predictor,
                   out: str | os.PathLike, threshold: float = 0.5, overwrite: bool = False,
                   device: str = "cpu", progress: Callable[[Iterable], Iterable] = iter,
                   engine: str = "torch", cleaning: OutlineCleaning | None = None,
                   tta: str = "none") -> Path:
    """Write ``OUT/masks/<stem>.png`` (0/255) and ``OUT/probabilities/<stem>.png`` (0–255).

    ``cleaning`` (an :class:`scdnn.outlines.OutlineCleaning`) cleans each mask: images have
    no pixel size, so its values are pixels (defaults 400 px, 400 px, 2 px); None (the
    default) writes the raw thresholded masks, as the command line's ``--raw``.
    Probabilities are never changed.

    ``weights`` is a loaded :class:`Predictor` (``device``, ``engine`` and ``tta`` are then
    its own), or a file loaded with ``engine``: ``"torch"`` (a .safetensors file) or
    ``"onnxruntime"`` (an ONNX model from ``scdnn export``); see :mod:`scdnn.engines`.
    ``tta``: test-time augmentation (:class:`Predictor`)."""
    check_cleaning(cleaning)
    files = image_files(images)
    predictor = weights if isinstance(weights, Predictor) else \
        Predictor.from_file(weights, engine, device, tta=tta)
    cleaning = model_cleaning(cleaning, predictor.card)  # the model's own mapping unit
    pixels = None if cleaning is None else cleaning.resolve(None)
    with output_dir(out, overwrite=overwrite) as out:  # removed if it was ours and we fail
        (out / "masks").mkdir(exist_ok=True)
        (out / "probabilities").mkdir(exist_ok=True)
        for path in progress(files):
            image = read_image(path)
            check_bands(image, predictor.card, path)
            prob = predictor.probability(image)
            mask = prob >= threshold
            if pixels is not None:
                mask = clean_mask(mask, pixels)
            save_png(np.where(mask, 255, 0).astype(np.uint8),
                     out / "masks" / f"{path.stem}.png")
            save_png(np.round(prob * 255).astype(np.uint8),
                     out / "probabilities" / f"{path.stem}.png")
    return out
