"""Landslide segmentation datasets: readers, splits, normalisation and augmentation.

Readers return items ``dict(image=H x W x C uint8, mask=H x W uint8 in {0, 1}, name=str)``:

- :class:`ImageMaskFolder`: ``images/`` + ``masks/`` folders paired by file stem;
- :class:`BijieLandslide`: the Bijie landslide dataset layout (Ji et al. 2020);
- :func:`open_dataset`: picks one of them from a folder's layout.

:class:`SegmentationDataset` turns a reader into normalised torch tensors, optionally
through :func:`train_transform`. User mistakes raise :class:`scdnn.errors.ScdnnError`.

:mod:`.source` puts image folders and georeferenced scenes (:mod:`.scenes`) behind one
interface, :class:`~.source.DataSource` (:func:`~.source.open_source` picks the kind), which
training, evaluation and the benchmark use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError
from .bijie import BijieLandslide
from .folders import ImageMaskFolder, PairedDataset, Sample
from .io import IGNORE_INDEX, IMAGE_EXTENSIONS, read_dem, read_image, read_mask
from .split import load_split, make_split, save_split
from .torch_dataset import SegmentationDataset
from .transforms import Normalization, compute_normalization, seed_transform, train_transform

__all__ = [
    "IGNORE_INDEX", "IMAGE_EXTENSIONS", "Sample", "PairedDataset", "ImageMaskFolder",
    "BijieLandslide", "open_dataset", "read_image", "read_mask", "read_dem", "make_split",
    "save_split", "load_split", "Normalization", "compute_normalization", "train_transform",
    "seed_transform", "SegmentationDataset",
]

# options that only the Bijie layout understands; harmless when off
_BIJIE_ONLY = ("include_non_landslide", "use_dem")


def open_dataset(path: str | os.PathLike, **kw: Any) -> ImageMaskFolder | BijieLandslide:
    """Open a dataset folder with the reader its layout calls for.

    ``landslide/image/`` inside -> :class:`BijieLandslide`; ``images/`` and ``masks/`` ->
    :class:`ImageMaskFolder`. Keyword arguments go to the reader; the Bijie-only options
    ``include_non_landslide`` and ``use_dem`` may be passed as ``False`` for any layout.

    Raises
    ------
    ScdnnError
        The folder is missing, has neither layout, or a Bijie-only option is switched on
        for an images/masks folder.
    """
    root = Path(path)
    if not root.exists():
        raise InputFileNotFoundError("dataset folder does not exist", root)
    if not root.is_dir():
        raise InputFileError("dataset path is not a folder", root)
    if (root / "landslide" / "image").is_dir():
        return BijieLandslide(root, **kw)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        for option in _BIJIE_ONLY:
            if kw.pop(option, False):
                raise InvalidValueError(f"{option} applies only to the Bijie dataset layout "
                                        "(landslide/image + landslide/mask); this folder has "
                                        "images/ + masks/", root)
        return ImageMaskFolder(root, **kw)
    raise InputFileError("is not a dataset folder: expected images/ + masks/ or the Bijie layout "
                    "landslide/image + landslide/mask", root)
