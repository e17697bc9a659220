"""Open a scene, check that a model can take it, and read it window by window.

A scene is any single raster GDAL reads (GeoTIFF, usually). Valid data is what GDAL's
*dataset mask* says it is (:meth:`rasterio.io.DatasetReader.dataset_mask`), which covers
every form of no-data rasterio exposes:

- a per-dataset mask band (internal ``.msk`` in the TIFF, or an external ``.msk`` file);
- an alpha band (0 = transparent = no data);
- a nodata value: a pixel is no data when *every* band holds the nodata value (GDAL's rule
  for the dataset mask; a pixel that is 0 in red only is dark, not missing).

The model's image bands are the first bands that are not an alpha band, as many as the
model takes. Only uint8 scenes are taken: the models' normalisation is in 0–255 pixel units.

Elevation: a model trained with a surface model (its card's ``inputs`` end with the
:data:`~scdnn.datasets.terrain.TERRAIN_CHANNELS`) also needs the scene's DSM. The DSM is read
on the image's grid: directly when it already has the image's CRS, transform and size,
otherwise resampled on the fly (bilinear) through a :class:`rasterio.vrt.WarpedVRT`. Each
window's terrain channels are computed from the DSM read with a halo around the window, so
they match a whole-scene computation (:mod:`scdnn.datasets.terrain`). With a DSM, a pixel is
valid where the image is valid *and* the DSM has a height.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError, ScdnnError, param
from .terrain import TERRAIN_CHANNELS, halo_pixels, terrain_channels

__all__ = ["Scene", "open_scene", "same_grid", "uses_elevation", "stored_blocks", "BlockIndex"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _gdal_reason(exc: BaseException) -> str:
    """The most specific message of a rasterio error (its cause holds GDAL's own), one line."""
    inner = exc.__cause__ or exc
    return " ".join(str(inner).split()) or type(inner).__name__


@dataclass
class Scene:
    """An open scene: the raster, the bands the model reads, and its georeferencing.

    Use as a context manager (or call :meth:`close`). ``units`` names the unit of the map
    coordinates: the CRS's linear unit (``"metre"``), ``"degree"`` for a geographic CRS,
    ``"pixel"`` for a raster without georeferencing, ``"unknown"`` for a transform without CRS.
    """

    path: Path
    dataset: rasterio.io.DatasetReader = field(repr=False)
    bands: tuple[int, ...]
    dsm_path: Path | None = None
    dsm: Any = field(default=None, repr=False)  # DatasetReader or WarpedVRT on the image grid
    _dsm_source: Any = field(default=None, repr=False)  # the opened DSM file under a VRT
    _blocks: Any = field(default=False, repr=False)  # BlockIndex | None, False: not looked up

    def block_index(self) -> BlockIndex | None:
        """Where the file stores no pixel block *and* the missing pixels mean no data, or None
        when that cannot be told without reading pixels (see :class:`BlockIndex`). Looked up
        once (about 1 µs a block, without reading a pixel)."""
        if self._blocks is False:
            self._blocks = BlockIndex.of_scene(self.dataset)
        return self._blocks

    def known_empty(self, window: Window) -> bool:
        """Whether ``window`` is known to hold no valid pixel without reading it: every pixel
        block it touches is absent from a sparse GeoTIFF whose absent pixels are no data."""
        index = self.block_index()
        if index is None:
            return False
        inner, _ = self._inside(window)
        return not index.any_stored(inner)

    @property
    def inputs(self) -> list[str]:
        """Names of the channels :meth:`read` returns."""
        names = [f"band{b}" for b in self.bands]
        return names + list(TERRAIN_CHANNELS) if self.dsm is not None else names

    @property
    def channels(self) -> int:
        """Number of channels :meth:`read` returns."""
        return len(self.bands) + (len(TERRAIN_CHANNELS) if self.dsm is not None else 0)

    @property
    def width(self) -> int:
        return self.dataset.width

    @property
    def height(self) -> int:
        return self.dataset.height

    @property
    def crs(self):
        return self.dataset.crs

    @property
    def transform(self):
        return self.dataset.transform

    @property
    def georeferenced(self) -> bool:
        """Whether the scene has a CRS (map coordinates); otherwise coordinates are pixels."""
        return self.dataset.crs is not None

    @property
    def units(self) -> str:
        return map_units(self.dataset)

    @property
    def pixel_size_m(self) -> float | None:
        """The side of a pixel in metres (:func:`metre_pixel_size`), or None."""
        return metre_pixel_size(self.dataset)

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in squared ``units`` (|determinant| of the transform)."""
        return abs(self.dataset.transform.determinant)

    def read(self, window: Window) -> np.ndarray:
        """The model's channels inside ``window`` as an ``H x W x C`` uint8 array: the image
        bands, then the terrain channels when the scene has a DSM. The part of a window that
        overhangs the scene's edge reads as 0."""
        inner, pad = self._inside(window)
        if pad is not None:
            return _pad(self.read(inner), pad, 0)
        try:
            chw = self.dataset.read(list(self.bands), window=window)
        except RasterioError as exc:
            raise self._read_error(window, exc) from None
        image = np.moveaxis(chw, 0, -1)
        if self.dsm is None:
            return image
        return np.concatenate([image, self._terrain(window)], axis=-1)

    def valid_mask(self, window: Window) -> np.ndarray:
        """``H x W`` bool: True where ``window`` holds valid data (GDAL's dataset mask, and
        a height in the DSM when there is one); False where it overhangs the scene."""
        inner, pad = self._inside(window)
        if pad is not None:
            return _pad(self.valid_mask(inner), pad, False)
        try:
            valid = self.dataset.dataset_mask(window=window) > 0
        except RasterioError as exc:
            raise self._read_error(window, exc) from None
        if self.dsm is not None:
            valid &= self._dsm_valid(window)
        return valid

    def _inside(self, window: Window) -> tuple[Window, tuple[int, int, int, int] | None]:
        """``window`` clipped to the scene, and the (top, bottom, left, right) padding that
        restores its size (``None`` when it lies inside the scene)."""
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        if r0 >= 0 and c0 >= 0 and r1 <= self.height and c1 <= self.width:
            return window, None
        top, left = max(r0, 0), max(c0, 0)
        bottom, right = min(r1, self.height), min(c1, self.width)
        if bottom <= top or right <= left:
            raise ValueError(f"window {window} lies outside the scene")
        return (Window(left, top, right - left, bottom - top),
                (top - r0, r1 - bottom, left - c0, c1 - right))

    def _read_dsm(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        try:
            z = self.dsm.read(1, window=window, masked=True)
        except RasterioError as exc:
            raise self._read_error(window, exc, self.dsm_path) from None
        valid = ~np.ma.getmaskarray(z) & np.isfinite(z.filled(np.nan).astype(np.float64))
        return z.filled(0).astype(np.float64), valid

    def _dsm_valid(self, window: Window) -> np.ndarray:
        return self._read_dsm(window)[1]

    def _terrain(self, window: Window) -> np.ndarray:
        """Terrain channels of ``window``, computed on the DSM read with a halo."""
        halo = halo_pixels(self.dataset.res)
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        top, left = max(0, r0 - halo), max(0, c0 - halo)
        bottom, right = min(self.height, r0 + h + halo), min(self.width, c0 + w + halo)
        z, valid = self._read_dsm(Window(left, top, right - left, bottom - top))
        channels = terrain_channels(z, valid, self.dataset.res)
        return channels[r0 - top:r0 - top + h, c0 - left:c0 - left + w]

    def _read_error(self, window: Window, exc: BaseException, path: Path | None = None
                    ) -> ScdnnError:
        r, c = int(window.row_off), int(window.col_off)
        return ScdnnError(f"cannot read pixels at rows {r}–{r + int(window.height) - 1}, columns "
                         f"{c}–{c + int(window.width) - 1}: file truncated or corrupt "
                         f"({_gdal_reason(exc)})", path or self.path)

    def close(self) -> None:
        for handle in (self.dsm, self._dsm_source, self.dataset):
            if handle is not None:
                handle.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class BlockIndex:
    """Which pixel blocks of a GeoTIFF are stored: ``stored[i, j]`` for the block at block
    row ``i``, block column ``j`` (blocks of ``block`` = (rows, columns) pixels).

    A sparse GeoTIFF (GDAL's ``SPARSE_OK=TRUE``) leaves out blocks that were never written;
    GDAL reads them as the band's nodata value (0 without one). GDAL tells which are absent
    without reading pixels (``BLOCK_OFFSET_x_y`` in the ``TIFF`` metadata domain is empty).
    """

    stored: np.ndarray
    block: tuple[int, int]

    def any_stored(self, window: Window) -> bool:
        """Whether a block that ``window`` (inside the raster) touches is stored."""
        return bool(self.stored[self._rows(window), self._cols(window)].any())

    def _rows(self, window: Window) -> slice:
        r0, h = int(window.row_off), int(window.height)
        return slice(r0 // self.block[0], -(-(r0 + h) // self.block[0]))

    def _cols(self, window: Window) -> slice:
        c0, w = int(window.col_off), int(window.width)
        return slice(c0 // self.block[1], -(-(c0 + w) // self.block[1]))

    def stored_columns(self, row0: int, row1: int, width: int) -> tuple[int, int] | None:
        """The pixel columns ``(first, end)`` spanned by stored blocks in rows
        ``row0`` to ``row1 - 1`` (block-aligned, clipped to ``width``); None when no block
        there is stored."""
        rows = self.stored[row0 // self.block[0]: -(-row1 // self.block[0])]
        columns = np.flatnonzero(rows.any(axis=0))
        if not len(columns):
            return None
        return (int(columns[0]) * self.block[1],
                min(width, (int(columns[-1]) + 1) * self.block[1]))

    @classmethod
    def of_bands(cls, dataset, bands: Sequence[int]) -> BlockIndex | None:
        """Blocks stored in *any* of ``bands`` (1-based) of a GeoTIFF; None for another
        driver or bands of different block shapes."""
        if dataset.driver != "GTiff" or len({dataset.block_shapes[b - 1] for b in bands}) != 1:
            return None
        bh, bw = dataset.block_shapes[bands[0] - 1]
        ny, nx = -(-dataset.height // bh), -(-dataset.width // bw)
        # pixel-interleaved bands share their blocks: band 1 tells for all
        if len(bands) > 1 and str(getattr(dataset, "interleaving", "")).endswith("pixel"):
            bands = bands[:1]
        stored = np.zeros((ny, nx), dtype=bool)
        tag = dataset.get_tag_item
        for b in bands:
            stored |= np.array([[bool(tag(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b))
                                 for x in range(nx)] for y in range(ny)], dtype=bool)
        return cls(stored, (bh, bw))

    @classmethod
    def of_scene(cls, dataset) -> BlockIndex | None:
        """The blocks holding pixels that may be valid, when absent blocks mean no data:

        - nodata values on every band (GDAL's dataset mask: no data where every band holds
          its nodata value, which is what an absent block reads as): blocks stored in any band;
        - an alpha band without a nodata value (an absent block reads as 0: transparent):
          blocks stored in the alpha band.

        None otherwise (an internal or external mask band, whose blocks rasterio cannot
        list; no no-data at all, where absent blocks read as valid zeros).
        """
        if dataset.driver != "GTiff":
            return None
        flags = dataset.mask_flag_enums
        if all(f == [MaskFlags.nodata] for f in flags):
            return cls.of_bands(dataset, list(dataset.indexes))
        alpha = [i for i, ci in zip(dataset.indexes, dataset.colorinterp, strict=False)
                 if ci == ColorInterp.alpha]
        if (len(alpha) == 1 and all(MaskFlags.alpha in f and MaskFlags.per_dataset in f
                                    for i, f in zip(dataset.indexes, flags, strict=True)
                                    if i != alpha[0])
                and dataset.nodatavals[alpha[0] - 1] is None):
            return cls.of_bands(dataset, alpha)
        return None


def stored_blocks(path: str | os.PathLike) -> BlockIndex | None:
    """The stored blocks of band 1 of the GeoTIFF ``path`` (None for another format)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            return BlockIndex.of_bands(dataset, [1])


def _pad(array: np.ndarray, pad: tuple[int, int, int, int], value) -> np.ndarray:
    """``array`` (H x W [x C]) padded by (top, bottom, left, right) with ``value``."""
    top, bottom, left, right = pad
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


def uses_elevation(inputs: list[str] | None) -> bool:
    """Whether a model with these input names takes terrain channels (needs a DSM)."""
    return any(name in TERRAIN_CHANNELS for name in inputs or [])


def open_scene(path: str | os.PathLike, in_channels: int, inputs: list[str] | None = None,
               dsm: str | os.PathLike | None = None, bands: Sequence[int] | None = None
               ) -> Scene:
    """Open ``path`` (and its ``dsm``) for a model taking ``in_channels`` channels named
    ``inputs``, reading its image ``bands`` (1-based; by default the scene's non-alpha
    bands when there are as many as the model takes, see :func:`_model_bands`).

    A model whose ``inputs`` include the terrain channels takes ``in_channels - 2`` image
    bands and needs ``dsm``; any other model takes ``in_channels`` image bands and no DSM.

    Raises
    ------
    ScdnnError
        The file is missing, not a raster, not uint8, has fewer non-alpha bands than the
        model takes, or its last pixel cannot be read (a cut-off file, usually); the model
        needs a DSM and none is given, or a DSM is given to a model trained without one;
        the DSM is missing, not a raster, or does not overlap the scene.
    """
    path = Path(path)
    terrain = uses_elevation(inputs)
    if terrain and dsm is None:
        raise InvalidValueError(f"the model takes elevation (inputs: {', '.join(inputs or [])}); "
                                f"give the scene's surface model with {param('dsm')}", path)
    if dsm is not None and not terrain:
        raise InvalidValueError(f"the model was trained without elevation (inputs: "
                        f"{', '.join(inputs or []) or f'{in_channels} image bands'}); leave out "
                        f"{param('dsm')} or use weights trained with {param('use_dsm')}", Path(dsm))
    image_channels = in_channels - (len(TERRAIN_CHANNELS) if terrain else 0)
    dataset = _open_raster(path, "scene")
    scene = None
    try:
        scene = Scene(path=path, dataset=dataset,
                      bands=_model_bands(dataset, image_channels, inputs, path, bands))
        if dsm is not None:
            scene.dsm_path = Path(dsm)
            scene._dsm_source = _open_raster(scene.dsm_path, "DSM")
            scene.dsm = _dsm_on_image_grid(scene._dsm_source, dataset, scene.dsm_path)
        _probe(scene)
    except BaseException:
        if scene is not None:
            scene.close()
        else:
            dataset.close()
        raise
    return scene


def _open_raster(path: Path, what: str):
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} file does not exist", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError:
        raise InputFileError("not a raster file GDAL can read", path) from None


def map_units(dataset) -> str:
    """The unit of an open raster's map coordinates: ``pixel`` (no CRS, identity transform),
    ``unknown`` (no CRS otherwise), ``degree`` (a geographic CRS), else the CRS's linear
    units (``metre`` for UTM)."""
    crs = dataset.crs
    if crs is None:
        return "pixel" if dataset.transform.is_identity else "unknown"
    if crs.is_geographic:
        return "degree"
    return crs.linear_units or "unknown"


def metre_pixel_size(dataset) -> float | None:
    """The side of a pixel of an open raster in metres when its map units are metres (the
    square root of a pixel's area: :func:`scdnn.outlines.pixel_size_of`, the rule outline
    cleaning converts metres with), else None: no CRS, a geographic CRS, other units."""
    from ..outlines import pixel_size_of

    return pixel_size_of(dataset.transform, map_units(dataset))


def same_grid(a, b) -> bool:
    """Whether two rasters share CRS, transform and size (pixel for pixel aligned)."""
    return (a.crs == b.crs and a.width == b.width and a.height == b.height
            and a.transform.almost_equals(b.transform))


def _dsm_on_image_grid(source, image, path: Path):
    """The DSM as read on ``image``'s grid: itself, or a bilinear WarpedVRT onto that grid."""
    if source.count < 1 or source.dtypes[0] in ("complex64", "complex128"):
        raise InvalidValueError("DSM must have one real-valued band of elevations", path)
    if same_grid(source, image):
        return _Band1(source)
    if source.crs is None or image.crs is None:
        raise InvalidValueError(f"DSM is on another grid than the scene "
                                f"({source.width}x{source.height} vs "
                                f"{image.width}x{image.height}) and one of them has no CRS, so it "
                                f"cannot be resampled onto the scene", path)
    left, bottom, right, top = transform_bounds(source.crs, image.crs, *source.bounds)
    b = image.bounds
    if left >= b.right or right <= b.left or bottom >= b.top or top <= b.bottom:
        raise InvalidValueError(f"DSM does not overlap the scene {image.name} (DSM bounds "
                        f"{left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f} vs scene "
                        f"{b.left:.1f}, {b.bottom:.1f}, {b.right:.1f}, {b.top:.1f} in "
                        f"{image.crs.to_string()})", path)
    nodata = source.nodata if source.nodata is not None else -3.4e38
    return WarpedVRT(source, crs=image.crs, transform=image.transform, width=image.width,
                     height=image.height, resampling=Resampling.bilinear, nodata=nodata,
                     dtype="float32")


class _Band1:
    """The DSM file itself when it is already on the image grid (reads band 1)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def read(self, band: int, window: Window, masked: bool = True):
        return self.dataset.read(band, window=window, masked=masked)

    def close(self) -> None:  # the source is closed by the scene
        pass


def _model_bands(dataset, in_channels: int, inputs: list[str] | None, path: Path,
                 bands: Sequence[int] | None = None) -> tuple[int, ...]:
    """The band indexes (1-based) the model reads, checked to be uint8.

    ``bands`` given: exactly those (``in_channels`` distinct bands of the file). Otherwise the
    non-alpha bands when there are exactly ``in_channels``; for a 3-band model, the bands
    labelled red, green and blue when the file labels them (RGB + near-infrared drones);
    any other choice would be a guess (is band 4 of an RGBN file alpha or infrared?), so it
    is refused with the bands to choose from.
    """
    if bands is not None:
        chosen = tuple(bands)
        if (len(chosen) != in_channels or len(set(chosen)) != len(chosen)
                or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool)
                           and 1 <= b <= dataset.count for b in chosen)):
            raise InvalidValueError(f"must be {in_channels} different band numbers from 1 to "
                                    f"{dataset.count} (the scene's bands), got "
                                    f"{list(chosen)}", option="bands")
    else:
        image_bands = [i for i, ci in zip(dataset.indexes, dataset.colorinterp, strict=False)
                       if ci != ColorInterp.alpha]
        if len(image_bands) < in_channels:
            names = f" ({', '.join(inputs)})" if inputs else ""
            alpha = " besides its alpha band" if len(image_bands) < dataset.count else ""
            raise InvalidValueError(f"scene has {_plural(len(image_bands), 'band')}{alpha} but "
                                    f"the model takes {in_channels}{names}", path)
        rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        labelled = [[i for i, ci in zip(dataset.indexes, dataset.colorinterp, strict=False)
                     if ci == colour] for colour in rgb]
        if len(image_bands) == in_channels:
            chosen = tuple(image_bands)
        elif in_channels == 3 and all(len(found) == 1 for found in labelled):
            chosen = tuple(found[0] for found in labelled)
        else:
            kinds = ", ".join(f"{i}: {ci.name}" for i, ci in
                              zip(dataset.indexes, dataset.colorinterp, strict=False))
            raise InvalidValueError(f"scene has {len(image_bands)} bands that are not alpha "
                                    f"({kinds}) and the model takes {in_channels}: say which "
                                    f"with {param('bands')} (e.g. "
                                    f"{' '.join(str(i) for i in image_bands[:in_channels])})",
                                    path)
    dtypes = {dataset.dtypes[i - 1] for i in chosen}
    if dtypes != {"uint8"}:
        raise InvalidValueError(f"scene is {', '.join(sorted(dtypes))}; only uint8 scenes are "
                                f"supported (the model's normalisation is in 0–255 units)", path)
    return chosen


def _probe(scene: Scene) -> None:
    """Read the last pixel: a file cut short fails here, before any output is made."""
    last = Window(scene.width - 1, scene.height - 1, 1, 1)
    scene.read(last)
    scene.valid_mask(last)
