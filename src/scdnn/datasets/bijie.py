"""The Bijie landslide dataset (Ji et al. 2020), the dataset of the SCDnn paper."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputFileNotFoundError, InvalidValueError
from .folders import PairedDataset, Sample, _check_folder, list_images, pair_by_stem
from .io import read_dem, read_image

__all__ = ["BijieLandslide", "NON_LANDSLIDE_PREFIX"]

#: Prefix of the names of non-landslide samples, so they never collide with landslide ones.
NON_LANDSLIDE_PREFIX = "non-landslide/"


class BijieLandslide(PairedDataset):
    """The Bijie landslide dataset: satellite images, masks and DEM of Bijie, Guizhou, China.

    Ji, S., Yu, D., Shen, C., Li, W., Xu, Q. (2020): Landslide detection from an open
    satellite imagery and digital elevation model dataset using attention boosted
    convolutional neural networks. Landslides 17, 1337-1352. 770 landslide images with masks
    and DEM tiles, and 2773 non-landslide images; image sizes vary. The SCDnn paper trains
    on 70 % of the 770 landslide images and tests on the other 30 % (231).

    Layout (the dataset as distributed)::

        root/
          landslide/image/*.png   landslide/mask/*.png   landslide/dem/*.png (optional)
          landslide/polygon_coordinate/*.txt             (ignored)
          non-landslide/image/*.png   non-landslide/dem/*.png   (optional)

    Files are paired by stem. Landslide samples are named by stem; non-landslide samples
    are named ``"non-landslide/<stem>"`` and have an all-background mask.

    Parameters
    ----------
    root : the ``Bijie-landslide-dataset`` folder
    include_non_landslide : also use the non-landslide images as all-background samples
        (off by default: the paper trains and tests on the landslide images only)
    use_dem : append the DEM tile as a fourth band (``C = 4``). A DEM tile whose size
        differs from its image is resampled bilinearly onto the image grid; 16-bit DEMs
        are stretched to 0..255 per tile (see :func:`scdnn.datasets.io.read_dem`).

    Raises
    ------
    ScdnnError
        A required folder is missing, an image has no mask, a mask has no image, or (with
        ``use_dem``) an image has no DEM tile.
    """

    def __init__(self, root: str | os.PathLike, include_non_landslide: bool = False,
                 use_dem: bool = False):
        self.root = Path(root)
        self.include_non_landslide = bool(include_non_landslide)
        self.use_dem = bool(use_dem)
        _check_folder(self.root, "dataset folder")
        landslide = self.root / "landslide"
        for sub in ("image", "mask"):
            if not (landslide / sub).is_dir():
                raise InputFileNotFoundError(f"Bijie dataset has no landslide/{sub}/ folder",
                                             self.root)
        images = list_images(landslide / "image", "image")
        masks = list_images(landslide / "mask", "mask")
        samples = pair_by_stem(images, masks, landslide / "image", landslide / "mask")
        if self.use_dem:
            _attach_dem(samples, landslide / "dem", images)
        if self.include_non_landslide:
            folder = self.root / "non-landslide" / "image"
            if not folder.is_dir():
                raise InputFileNotFoundError("include_non_landslide: the Bijie dataset has no "
                                             "non-landslide/image/ folder", self.root)
            others = list_images(folder, "image")
            extra = [Sample(NON_LANDSLIDE_PREFIX + stem, path, None, {})
                     for stem, path in sorted(others.items())]
            if self.use_dem:
                _attach_dem(extra, self.root / "non-landslide" / "dem", others)
            samples += extra
        self.samples = sorted(samples, key=lambda s: s.name)

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as ``H x W x C`` uint8; with ``use_dem`` the DEM is band ``C - 1``."""
        sample = self._sample(i)
        image = read_image(sample.image_path)
        if not self.use_dem:
            return image
        dem = read_dem(sample.extra_paths["dem"], size=image.shape[:2])
        return np.concatenate([image, dem[:, :, None]], axis=2)


def _attach_dem(samples: list[Sample], dem_dir: Path, images: dict[str, Path]) -> None:
    """Record each sample's DEM tile in ``extra_paths['dem']`` or raise ScdnnError."""
    if not dem_dir.is_dir():
        raise InputFileNotFoundError(f"use_dem: the Bijie dataset has no "
                                     f"{dem_dir.parent.name}/dem/ folder", dem_dir.parent)
    dems = list_images(dem_dir, "DEM")
    for sample in samples:
        stem = sample.image_path.stem
        if stem not in dems:
            raise InvalidValueError(f"use_dem: image has no DEM tile in {dem_dir}", images[stem])
        sample.extra_paths["dem"] = dems[stem]
