"""Image/mask pairs in two folders: the generic dataset layout.

Shared here: :class:`Sample` (one image with its mask and extra files) and the base class
that reads items and validates a whole dataset, used by both readers in this subpackage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError
from .io import IMAGE_EXTENSIONS, read_image, read_mask

__all__ = ["Sample", "PairedDataset", "ImageMaskFolder", "list_images"]


@dataclass
class Sample:
    """One image and its mask, paired by file stem.

    Attributes
    ----------
    name : unique name of the sample in its dataset (the file stem, possibly prefixed)
    image_path : the image file
    mask_path : the mask file; ``None`` for an all-background sample (no landslide)
    extra_paths : further aligned rasters by kind, e.g. ``{"dem": Path(...)}``
    """

    name: str
    image_path: Path
    mask_path: Path | None
    extra_paths: dict[str, Path] = field(default_factory=dict)


def list_images(folder: Path, what: str = "image") -> dict[str, Path]:
    """Map file stem -> path for the image files directly inside ``folder``.

    Recognised extensions: png, jpg, jpeg, tif, tiff (any case). Hidden files (``.name``,
    including macOS ``._name`` companions) and other files are ignored.

    Raises
    ------
    ScdnnError
        Two files share a stem (``a.png`` and ``a.jpg``): which one is meant is ambiguous.
    """
    found: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InputFileError(f"cannot list the folder: {exc.strerror or exc}", folder) from None
    for path in entries:
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.is_symlink() and not path.exists():  # broken or looping: say so, don't skip
            raise InputFileError(f"cannot read {what}: broken symbolic link or link loop",
                                 path)
        if not path.is_file():
            continue
        if path.stem in found:
            raise InvalidValueError(f"two {what} files share the name '{path.stem}': "
                            f"{found[path.stem].name} and {path.name}; keep one", path)
        found[path.stem] = path
    return found


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise InputFileNotFoundError(f"{what} does not exist", path)
    if not path.is_dir():
        raise InputFileError(f"{what} is not a folder", path)


class PairedDataset:
    """Base class: a sorted list of :class:`Sample` read as ``dict(image, mask, name)``.

    Subclasses fill ``self.samples`` and may override :meth:`load_image` and
    :meth:`load_mask`.
    """

    root: Path
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        """Sample names, in dataset order."""
        return [s.name for s in self.samples]

    def indices_of(self, names: Iterable[str]) -> list[int]:
        """Positions of ``names`` in this dataset (KeyError for an unknown name)."""
        index = {s.name: i for i, s in enumerate(self.samples)}
        return [index[n] for n in names]

    def _sample(self, i: int) -> Sample:
        n = len(self.samples)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} samples")
        return self.samples[i]

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as ``H x W x C`` uint8."""
        return read_image(self._sample(i).image_path)

    def load_mask(self, i: int, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Mask ``i`` as ``H x W`` uint8 in {0, 1} (zeros of ``shape`` when it has no mask file)."""
        sample = self._sample(i)
        if sample.mask_path is None:
            if shape is None:
                shape = self.load_image(i).shape[:2]
            return np.zeros(shape, dtype=np.uint8)
        return read_mask(sample.mask_path)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self._sample(i)
        image = self.load_image(i)
        mask = self.load_mask(i, image.shape[:2])
        if mask.shape != image.shape[:2]:
            raise InvalidValueError(f"image is {image.shape[0]}x{image.shape[1]} but its mask "
                                    f"{sample.mask_path} is {mask.shape[0]}x{mask.shape[1]}",
                                    sample.image_path)
        return {"image": image, "mask": mask, "name": sample.name}

    def largest_side(self, indices: Iterable[int]) -> int:
        """The longest side, in pixels, of images ``indices`` (read from the file headers;
        0 when a header cannot be read, which :meth:`validate` reports properly)."""
        from PIL import Image

        largest = 0
        for i in indices:
            try:
                with Image.open(self._sample(i).image_path) as img:
                    largest = max(largest, *img.size)
            except (OSError, ValueError, SyntaxError):
                continue
        return largest

    @property
    def in_channels(self) -> int:
        """Number of image bands (read from the first sample)."""
        return int(self.load_image(0).shape[2])

    def validate(self, progress: Callable[[Iterable], Iterable] | None = None) -> None:
        """Read every sample once so that a bad file fails before any work is written.

        Checks that each image and mask is readable, that the sizes agree, that masks hold
        only 0/1 or 0/255, and that all images have the same number of bands.

        Parameters
        ----------
        progress : optional wrapper over an iterable (e.g. a progress bar), as elsewhere
            in scdnn; called once with the sample positions.

        Raises
        ------
        ScdnnError
            Naming the first bad file.
        """
        positions: Iterable[int] = range(len(self.samples))
        if progress is not None:
            positions = progress(positions)
        bands: int | None = None
        first: Path | None = None
        for i in positions:
            item = self[i]
            c = item["image"].shape[2]
            if bands is None:
                bands, first = c, self.samples[i].image_path
            elif c != bands:
                raise InvalidValueError(f"image has {c} band(s) but {first} has {bands}; all "
                                        "images of a dataset must have the same bands",
                                        self.samples[i].image_path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self.samples)})"


class ImageMaskFolder(PairedDataset):
    """A dataset stored as two folders of images and masks paired by file stem.

    Layout::

        root/
          images/  a.png  b.jpg  c.tif ...   (RGB or grayscale, 8-bit)
          masks/   a.png  b.png  c.png ...   (single band, 0/255 or 0/1; 1 or 255 = landslide)

    An image and its mask share a file stem; extensions may differ (png, jpg, jpeg, tif,
    tiff, any case). Image sizes may vary from one pair to the next.

    Two real datasets in this layout sit in ``../shared/data`` next to the project:

    - ``sichuan-aerial``: aerial images of landslides in Sichuan, Zeng et al. 2021,
      Science Data Bank, doi:10.11922/sciencedb.j00001.00222, CC BY 4.0;
    - ``hokkaido-iburi``: satellite images of the 2018 Hokkaido Iburi-East earthquake
      landslides from the CAS Landslide Dataset, Xu et al. 2024, Scientific Data 11:12,
      CC BY-NC 4.0 (non-commercial).

    Parameters
    ----------
    root : the dataset folder
    image_dir, mask_dir : names of its two subfolders

    Attributes
    ----------
    samples : list of :class:`Sample`, sorted by name

    Items are ``dict(image=H x W x C uint8, mask=H x W uint8 in {0, 1}, name=str)``.

    Raises
    ------
    ScdnnError
        The root or a subfolder is missing, there are no pairs, an image has no mask or a
        mask has no image (naming the file), or two files share a stem.
    """

    def __init__(self, root: str | os.PathLike, image_dir: str = "images", mask_dir: str = "masks"):
        self.root = Path(root)
        _check_folder(self.root, "dataset folder")
        self.image_dir = self.root / image_dir
        self.mask_dir = self.root / mask_dir
        for sub, what in ((self.image_dir, "images"), (self.mask_dir, "masks")):
            if not sub.is_dir():
                raise InputFileNotFoundError(f"dataset folder has no {sub.name}/ subfolder for "
                                             f"the {what}", self.root)
        images = list_images(self.image_dir, "image")
        masks = list_images(self.mask_dir, "mask")
        self.samples = pair_by_stem(images, masks, self.image_dir, self.mask_dir)


def pair_by_stem(images: dict[str, Path], masks: dict[str, Path], image_dir: Path, mask_dir: Path,
                 prefix: str = "") -> list[Sample]:
    """Pair ``images`` and ``masks`` (stem -> path) into samples sorted by name.

    Raises
    ------
    ScdnnError
        No images, an image without a mask or a mask without an image.
    """
    if not images:
        raise InvalidValueError(f"no image/mask pairs: {image_dir.name}/ has no "
                        f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files", image_dir)
    lonely_images = sorted(set(images) - set(masks))
    if lonely_images:
        more = _more(len(lonely_images) - 1, "image")
        raise InputFileNotFoundError(f"image has no mask in {mask_dir} (expected a mask file named "
                        f"'{lonely_images[0]}.png' or another image extension){more}",
                        images[lonely_images[0]])
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_masks:
        more = _more(len(lonely_masks) - 1, "mask")
        raise InputFileNotFoundError(f"mask has no image in {image_dir} (expected an image file "
                                     f"named '{lonely_masks[0]}' with an image extension){more}",
                                     masks[lonely_masks[0]])
    return [Sample(prefix + stem, images[stem], masks[stem], {}) for stem in sorted(images)]


def _more(count: int, what: str) -> str:
    return f"; {count} other {what}{'s' if count > 1 else ''} too" if count > 0 else ""

