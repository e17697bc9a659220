"""Reading images, masks and DEM tiles from disk, with errors a user can act on.

Every reader opens the file with Pillow and forces the pixel data to be decoded
(``Image.load()``), so a truncated or corrupt file fails here, with a
:class:`~scdnn.errors.ScdnnError` that names it, instead of half-way through training.
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is deliberately left unset.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError
from ..records import IGNORE_INDEX

__all__ = ["IMAGE_EXTENSIONS", "IGNORE_INDEX", "read_image", "read_mask", "read_dem"]

#: File extensions (lower case) recognised as images and masks.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Modes whose pixels are wider than 8 bits: fine for masks (values are checked), refused
# for images (scdnn's models and normalisation expect 0-255 bands).
_WIDE_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;32", "I;32B", "I;32L"}


def _load(path: str | os.PathLike, what: str) -> Image.Image:
    """Open ``path`` with Pillow and decode all of its pixels, or raise ScdnnError."""
    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError(f"cannot read {what}: file does not exist", p)
    if p.is_dir():
        raise InputFileError(f"cannot read {what}: is a folder, not a file", p)
    try:
        with warnings.catch_warnings():
            # a DecompressionBombWarning is not a user error for large mosaics; the hard
            # limit (DecompressionBombError) still applies and is reported below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                img.load()  # PIL is lazy: decode now so truncation shows up here
                return img.copy()  # detached from the file, which the with-block closes
    except UnidentifiedImageError:
        raise InputFileError(f"cannot read {what}: not an image file (or a format Pillow "
                             "cannot read)", p) from None
    except Image.DecompressionBombError as exc:
        raise InputFileError(f"cannot read {what}: {exc}", p) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputFileError(f"cannot read {what}: {reason}", p) from None


def _to_array(img: Image.Image, path: Path, what: str) -> np.ndarray:
    try:
        return np.asarray(img)
    except (OSError, ValueError, TypeError) as exc:  # exotic modes numpy cannot view
        raise InputFileError(f"cannot read {what}: unsupported pixel format {img.mode!r} ({exc})",
                             path) from None


def read_image(path: str | os.PathLike, channels: int | None = None) -> np.ndarray:
    """Read an 8-bit image as an ``H x W x C`` uint8 array.

    Grayscale images give ``C = 1``, RGB ``C = 3``. An alpha channel is dropped (RGBA -> 3
    bands, LA -> 1 band): scdnn treats transparency as display information, not data.
    Palette, CMYK and YCbCr images are converted to RGB; 1-bit images become 0/255.

    Parameters
    ----------
    path : image file (PNG, JPEG, TIFF, anything Pillow reads)
    channels : if given, the number of bands the image must have

    Raises
    ------
    ScdnnError
        The file is missing, not an image, truncated or corrupt, has more than 8 bits per
        band, or does not have ``channels`` bands.
    """
    p = Path(path)
    img = _load(p, "image")
    mode = img.mode
    if mode in _WIDE_MODES:
        raise InputFileError(
            f"cannot read image: it has more than 8 bits per band (Pillow mode {mode!r}); "
            "scdnn reads 8-bit images, convert it to 8-bit first", p)
    if mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA", "CMYK", "YCbCr", "RGBX", "RGBa", "HSV", "LAB"):
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise InputFileError(f"cannot read image: cannot convert mode {mode!r} to RGB ({exc})",
                                 p) from None
    arr = _to_array(img, p, "image")
    if arr.dtype != np.uint8:
        raise InputFileError(f"cannot read image: pixels are {arr.dtype}, expected 8-bit (uint8)",
                             p)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3 and mode in ("RGBA", "LA", "La"):
        arr = arr[:, :, :-1]  # drop alpha
    elif arr.ndim != 3:
        raise InputFileError(f"cannot read image: unexpected array shape {arr.shape}", p)
    arr = np.array(arr, dtype=np.uint8, order="C")  # a writable copy (PIL's view is read-only)
    if channels is not None and arr.shape[2] != channels:
        raise InvalidValueError(f"image has {arr.shape[2]} band(s), expected {channels}", p)
    return arr


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a binary landslide mask as an ``H x W`` uint8 array with values in {0, 1}.

    Accepted encodings: 0/1 and 0/255 (a mask with only 0 is all background; only 1 or only
    255 is all landslide). Palette PNGs are read by palette index. A multi-band mask (RGB
    export of a binary mask) is accepted when all its bands are equal; an alpha band is
    ignored.

    Raises
    ------
    ScdnnError
        The file cannot be read, its bands differ, or it has values other than 0/1 or 0/255.
    """
    p = Path(path)
    img = _load(p, "mask")
    mode = img.mode
    arr = _to_array(img, p, "mask")
    if arr.ndim == 3:
        if mode in ("RGBA", "LA", "La", "PA"):
            arr = arr[:, :, :-1]
        first = arr[:, :, 0]
        if arr.shape[2] > 1 and not all(np.array_equal(first, arr[:, :, k])
                                        for k in range(1, arr.shape[2])):
            raise InvalidValueError(
                f"mask has {arr.shape[2]} bands that differ; expected a single-band 0/1 or "
                "0/255 mask", p)
        arr = first
    elif arr.ndim != 2:
        raise InputFileError(f"cannot read mask: unexpected array shape {arr.shape}", p)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.uint8:
        present = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        present = np.unique(arr)
    values = set(present.tolist())
    if values <= {0, 1}:
        out = arr != 0
    elif values <= {0, 255}:
        out = arr == 255
    else:
        shown = sorted(values)
        listed = ", ".join(_fmt(v) for v in shown[:10]) + (", ..." if len(shown) > 10 else "")
        raise InvalidValueError(f"mask has values other than 0/1 or 0/255: found [{listed}]", p)
    return out.astype(np.uint8)


def _fmt(v: float | int) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def read_dem(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a single-band elevation tile as ``H x W`` uint8.

    8-bit grayscale is returned as is; a multi-band export whose bands are equal gives one
    band, other colour images are converted to luminance. Wider data (16-bit PNG/TIFF, float)
    is stretched linearly from the tile's own minimum..maximum to 0..255 (relative relief,
    the information an 8-bit DEM PNG carries). With ``size = (height, width)`` a tile of a
    different size is resampled bilinearly onto that grid (DEMs are often coarser than the
    imagery they cover).

    Raises
    ------
    ScdnnError
        The file cannot be read.
    """
    p = Path(path)
    img = _load(p, "DEM")
    if img.mode in _WIDE_MODES:
        arr = _to_array(img, p, "DEM")
    elif img.mode == "L":
        arr = np.asarray(img)
    else:
        try:
            rgb = np.asarray(img.convert("RGB"))
            same = (np.array_equal(rgb[..., 0], rgb[..., 1])
                    and np.array_equal(rgb[..., 0], rgb[..., 2]))
            arr = rgb[..., 0] if same else np.asarray(img.convert("RGB").convert("L"))
        except (ValueError, OSError) as exc:
            raise InputFileError(f"cannot read DEM: unsupported pixel format {img.mode!r} ({exc})",
                                 p) from None
    if arr.ndim != 2:
        raise InputFileError(f"cannot read DEM: expected a single band, got array shape "
                             f"{arr.shape}", p)
    if arr.dtype != np.uint8:
        data = arr.astype(np.float64)
        finite = np.isfinite(data)
        if not finite.any():
            raise InputFileError("cannot read DEM: it has no finite values", p)
        lo, hi = float(data[finite].min()), float(data[finite].max())
        scaled = np.zeros_like(data) if hi <= lo else (data - lo) / (hi - lo) * 255.0
        scaled[~finite] = 0.0
        arr = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if size is not None and arr.shape[:2] != tuple(size):
        h, w = size
        arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR))
    return np.array(arr, dtype=np.uint8, order="C")

