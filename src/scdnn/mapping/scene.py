"""Open a scene, check that a model can take it, and read it window by window.

A scene is any single raster GDAL reads (GeoTIFF, usually). Valid data is what GDAL's
*dataset mask* says it is (:meth:`rasterio.io.DatasetReader.dataset_mask`), which covers
every form of no-data rasterio exposes:

- a per-dataset mask band (internal ``.msk`` in the TIFF, or an external ``.msk`` file);
- an alpha band (0 = transparent = no data);
- a nodata value: a pixel is no data when *every* band holds the nodata value (GDAL's rule
  for the dataset mask; a pixel that is 0 in red only is dark, not missing).

The model's input bands are the first ``in_channels`` bands that are not an alpha band.
Only uint8 scenes are taken: the models' normalisation is in 0–255 pixel units.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from ..errors import UserError

__all__ = ["Scene", "open_scene"]


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
        crs = self.dataset.crs
        if crs is None:
            return "pixel" if self.dataset.transform.is_identity else "unknown"
        if crs.is_geographic:
            return "degree"
        return crs.linear_units or "unknown"

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in squared ``units`` (|determinant| of the transform)."""
        return abs(self.dataset.transform.determinant)

    def read(self, window: Window) -> np.ndarray:
        """The model's bands inside ``window`` as an ``H x W x C`` uint8 array."""
        try:
            chw = self.dataset.read(list(self.bands), window=window)
        except RasterioError as exc:
            raise self._read_error(window, exc) from None
        return np.moveaxis(chw, 0, -1)

    def valid_mask(self, window: Window) -> np.ndarray:
        """``H x W`` bool: True where ``window`` holds valid data (GDAL's dataset mask)."""
        try:
            return self.dataset.dataset_mask(window=window) > 0
        except RasterioError as exc:
            raise self._read_error(window, exc) from None

    def _read_error(self, window: Window, exc: BaseException) -> UserError:
        r, c = int(window.row_off), int(window.col_off)
        return UserError(f"cannot read pixels at rows {r}–{r + int(window.height) - 1}, columns "
                         f"{c}–{c + int(window.width) - 1}: file truncated or corrupt "
                         f"({_gdal_reason(exc)})", self.path)

    def close(self) -> None:
        self.dataset.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_scene(path: str | os.PathLike, in_channels: int, inputs: list[str] | None = None) -> Scene:
    """Open ``path`` for a model taking ``in_channels`` bands named ``inputs``.

    Raises
    ------
    UserError
        The file is missing, not a raster, not uint8, has fewer non-alpha bands than the
        model takes, or its last pixel cannot be read (a cut-off file, usually).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("scene file does not exist", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except RasterioError:
        raise UserError("not a raster file GDAL can read", path) from None
    try:
        scene = Scene(path=path, dataset=dataset, bands=_model_bands(dataset, in_channels,
                                                                     inputs, path))
        _probe(scene)
    except BaseException:
        dataset.close()
        raise
    return scene


def _model_bands(dataset, in_channels: int, inputs: list[str] | None, path: Path
                 ) -> tuple[int, ...]:
    """The first ``in_channels`` non-alpha band indexes (1-based), checked to be uint8."""
    image_bands = [i for i, ci in zip(dataset.indexes, dataset.colorinterp)
                   if ci != ColorInterp.alpha]
    if len(image_bands) < in_channels:
        names = f" ({', '.join(inputs)})" if inputs else ""
        alpha = " besides its alpha band" if len(image_bands) < dataset.count else ""
        raise UserError(f"scene has {_plural(len(image_bands), 'band')}{alpha} but the model "
                        f"takes {in_channels}{names}", path)
    bands = tuple(image_bands[:in_channels])
    dtypes = {dataset.dtypes[i - 1] for i in bands}
    if dtypes != {"uint8"}:
        raise UserError(f"scene is {', '.join(sorted(dtypes))}; only uint8 scenes are supported "
                        f"(the model's normalisation is in 0–255 units)", path)
    return bands


def _probe(scene: Scene) -> None:
    """Read the last pixel: a file cut short fails here, before any output is made."""
    last = Window(scene.width - 1, scene.height - 1, 1, 1)
    scene.read(last)
    scene.valid_mask(last)
