"""Per-band normalisation and the training augmentation pipeline.

Seeding: albumentations 2.x transforms draw from their own random generators and ignore
the global ``random``/``numpy`` seeds, and ``Compose(seed=s)`` gives every transform an
identically seeded generator (so, e.g., the horizontal and vertical flips would always fire
together). :func:`train_transform` therefore gives the whole pipeline one shared generator
(:func:`seed_transform`); its seed is the ``seed`` argument, or, when that is ``None``, a
number drawn from Python's global :mod:`random` state, so a run seeded with
``lightning.seed_everything`` / ``random.seed`` is reproducible. Inside DataLoader worker
processes, :class:`~scdnn.datasets.SegmentationDataset` reseeds the pipeline from the
worker's torch seed, so workers do not repeat each other's augmentations.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import albumentations as A
import cv2
import numpy as np

from ..errors import InvalidValueError
from ..records import Normalization
from .io import IGNORE_INDEX

__all__ = ["Normalization", "compute_normalization", "train_transform", "seed_transform",
           "RGBBrightnessContrast", "RGBSaturation", "SCALE_RANGE"]

#: Zoom range of the strong augmentation (``train_transform(..., strong=True)``).
SCALE_RANGE = (0.75, 1.5)


def compute_normalization(dataset: Any, indices: Iterable[int], max_pixels: int = 2_000_000,
                          seed: int = 0) -> Normalization:
    """Per-band mean and std over the training images (a sample of their pixels).

    Each image contributes all its pixels or, when the images together hold more than
    ``max_pixels``, about ``max_pixels / len(indices)`` pixels drawn at random (seeded).
    Stds below 1.0 (a constant band) are raised to 1.0 so that normalising never divides
    by almost zero.

    Parameters
    ----------
    dataset : a reader with ``load_image(i)`` or ``dataset[i]["image"]`` (H x W x C uint8)
    indices : training positions in ``dataset`` (duplicates are counted once)

    Raises
    ------
    ScdnnError
        No indices, or images with different band counts.
    """
    order = list(dict.fromkeys(int(i) for i in indices))
    if not order:
        raise InvalidValueError("cannot compute the normalization: no training images")
    per_image = max(1, int(max_pixels) // len(order))
    rng = np.random.default_rng(seed)
    load = getattr(dataset, "load_image", None)
    total = 0
    sums = squares = np.zeros(0)
    for i in order:
        image = load(i) if load is not None else dataset[i]["image"]
        if image.ndim == 2:
            image = image[:, :, None]
        pixels = image.reshape(-1, image.shape[2])
        if pixels.shape[0] > per_image:
            pixels = pixels[rng.integers(0, pixels.shape[0], size=per_image)]
        pixels = pixels.astype(np.float64)
        if total == 0:
            sums = np.zeros(pixels.shape[1])
            squares = np.zeros(pixels.shape[1])
        elif pixels.shape[1] != sums.shape[0]:
            samples = getattr(dataset, "samples", None)
            where = samples[i].image_path if samples is not None else None
            raise InvalidValueError(f"image has {pixels.shape[1]} band(s) but the first training "
                                    f"image has {sums.shape[0]}", where)
        sums += pixels.sum(axis=0)
        squares += np.square(pixels).sum(axis=0)
        total += pixels.shape[0]
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - mean**2, 0.0))
    return Normalization(mean=mean.tolist(), std=np.maximum(std, 1.0).tolist())


class RGBBrightnessContrast(A.ImageOnlyTransform):
    """Random brightness and contrast on the first ``bands`` bands only.

    ``out = clip(pixel * alpha + beta * 255)`` with ``alpha`` uniform in
    ``[1 - contrast, 1 + contrast]`` and ``beta`` uniform in ``[-brightness, brightness]``,
    applied to bands ``0 .. bands - 1`` (the RGB part); further bands (a DEM) are left
    untouched. Works for any band count.
    """

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, bands: int = 3,
                 p: float = 0.5):
        super().__init__(p=p)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.bands = int(bands)

    def get_params(self) -> dict[str, float]:
        return {"alpha": self.py_random.uniform(1.0 - self.contrast, 1.0 + self.contrast),
                "beta": self.py_random.uniform(-self.brightness, self.brightness)}

    def apply(self, img: np.ndarray, alpha: float = 1.0, beta: float = 0.0,
              **params: Any) -> np.ndarray:
        squeeze = img.ndim == 2
        out = img[:, :, None].copy() if squeeze else img.copy()
        k = min(self.bands, out.shape[2])
        if out.dtype == np.uint8:  # a lookup table: cheap even on large images
            lut = np.clip(np.rint(np.arange(256, dtype=np.float64) * alpha + beta * 255.0), 0, 255)
            out[:, :, :k] = cv2.LUT(np.ascontiguousarray(out[:, :, :k]),
                                    lut.astype(np.uint8)).reshape(out.shape[0], out.shape[1], k)
        else:  # float images in 0..1
            out[:, :, :k] = np.clip(out[:, :, :k] * alpha + beta, 0.0, 1.0)
        return out[:, :, 0] if squeeze else out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness", "contrast", "bands")


class RGBSaturation(A.ImageOnlyTransform):
    """Random saturation on the first three bands only (when the image has three or more).

    ``rgb = grey + factor * (rgb - grey)`` with ``grey`` the luma (0.299 R + 0.587 G +
    0.114 B) and ``factor`` uniform in ``[1 - saturation, 1 + saturation]``; further bands
    (DEM, DSM terrain) are left untouched.
    """

    def __init__(self, saturation: float = 0.2, p: float = 0.5):
        super().__init__(p=p)
        self.saturation = float(saturation)

    def get_params(self) -> dict[str, float]:
        return {"factor": self.py_random.uniform(1.0 - self.saturation, 1.0 + self.saturation)}

    def apply(self, img: np.ndarray, factor: float = 1.0, **params: Any) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] < 3:
            return img
        out = img.copy()
        rgb = out[:, :, :3].astype(np.float32)
        grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        mixed = grey[:, :, None] + factor * (rgb - grey[:, :, None])
        top = 255.0 if out.dtype == np.uint8 else 1.0
        mixed = np.clip(mixed, 0.0, top)
        out[:, :, :3] = np.rint(mixed) if out.dtype == np.uint8 else mixed
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("saturation",)


def seed_transform(transform: A.BaseCompose, seed: int) -> A.BaseCompose:
    """Give ``transform`` and all its children one shared generator seeded with ``seed``."""
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return transform


def train_transform(image_size: int, seed: int | None = None, strong: bool = False
                    ) -> A.Compose:
    """Random ``image_size`` crops with flips, 90-degree rotations and mild colour jitter.

    Pipeline: brightness/contrast +-0.1 on the first 3 bands (p = 0.5; a DEM band is not
    touched; first, so that padding stays exactly 0) -> ``PadIfNeeded`` to at least
    ``image_size`` (image padded with 0, mask with :data:`IGNORE_INDEX` so the padding is
    ignored by the loss; the image is placed at a random position) ->
    ``RandomCrop(image_size)`` -> horizontal flip, vertical flip, random 90-degree
    rotation (p = 0.5 each). Works for any band count.

    ``strong=True`` (the ``default`` training recipe) jitters colour harder and zooms:
    brightness/contrast +-0.2 (p = 0.8) and saturation +-0.2 (p = 0.5), both on the first 3
    bands only (DEM/DSM bands are never colour-jittered) -> a random zoom by a factor in
    :data:`SCALE_RANGE` (0.75-1.5, ``Affine``, p = 0.8; image bilinear, mask
    nearest-neighbour, uncovered border: image 0, mask :data:`IGNORE_INDEX`) -> the same
    padding, crop, flips and rotations.

    Call it as ``t(image=HxWxC uint8, mask=HxW uint8)``. Seeding: see the module docstring;
    ``seed=None`` draws the seed from Python's global :mod:`random` state.
    """
    if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
            or image_size < 1):
        raise InvalidValueError(f"image size must be a positive integer, got {image_size!r}")
    size = int(image_size)
    if strong:
        first = [
            RGBBrightnessContrast(brightness=0.2, contrast=0.2, bands=3, p=0.8),
            RGBSaturation(saturation=0.2, p=0.5),
            A.Affine(scale=SCALE_RANGE, keep_ratio=True, interpolation=cv2.INTER_LINEAR,
                     mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT,
                     fill=0, fill_mask=IGNORE_INDEX, p=0.8),
        ]
    else:
        first = [RGBBrightnessContrast(brightness=0.1, contrast=0.1, bands=3, p=0.5)]
    pipeline = A.Compose([
        *first,
        A.PadIfNeeded(min_height=size, min_width=size, position="random",
                      border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX),
        A.RandomCrop(height=size, width=size),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
    ])
    return seed_transform(pipeline, random.getrandbits(63) if seed is None else int(seed))

