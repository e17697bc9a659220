"""A scene's labels: a raster on its grid, or a landslide inventory of polygons.

A scene folder holds its labels in one of two ways (:func:`label_files`):

- a **label raster** on the image's grid (``mask.tif`` or ``label.tif``; 0 background,
  1 landslide, 255 or the nodata value ignored): :class:`RasterLabels`;
- a **landslide inventory** (``labels.gpkg``, ``labels.shp``, ``labels.geojson`` or
  ``labels.parquet``; polygons in any CRS) and optionally an **area of interest**
  (``aoi.gpkg``, ``aoi.shp`` or ``aoi.geojson``; polygons saying where the inventory is
  complete): :class:`PolygonLabels`. Inside a landslide polygon the label is 1, elsewhere 0;
  outside the area of interest it is 255 (ignored). Without an area of interest, the whole
  scene counts.

Both give ``read(window)``: the labels of a window of the scene's grid as ``uint8`` 0, 1 or
255; the scene's own no-data is set to 255 by the caller
(:class:`~scdnn.datasets.scenes.LabelledScene`). A folder holding both a label raster and an
inventory, or two inventories, is ambiguous and refused.

Polygons are rasterised window by window (:func:`rasterio.features.rasterize`,
``all_touched=False``: a pixel is a landslide when its centre is inside a polygon), after
being reprojected to the scene's CRS; each window rasterises only the polygons its bounds
intersect (found with the inventory's spatial index), so memory and time follow the window,
not the inventory. Reading polygons needs the ``geo`` extra (geopandas, pyogrio).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError
from .io import IGNORE_INDEX

__all__ = ["RASTER_LABEL_NAMES", "POLYGON_LABEL_NAMES", "AOI_NAMES", "LabelFiles",
           "label_files", "Labels", "RasterLabels", "PolygonLabels", "open_labels",
           "read_polygons"]

RASTER_LABEL_NAMES = ("mask.tif", "label.tif")
POLYGON_LABEL_NAMES = ("labels.gpkg", "labels.shp", "labels.geojson", "labels.parquet")
AOI_NAMES = ("aoi.gpkg", "aoi.shp", "aoi.geojson")
_POLYGONAL = ("Polygon", "MultiPolygon")


class LabelFiles(tuple):
    """``(label, aoi)``: the label raster or inventory of a scene folder, and its area of
    interest (None for a raster, or an inventory without one)."""

    def __new__(cls, label: Path, aoi: Path | None = None):
        return tuple.__new__(cls, (label, aoi))

    @property
    def label(self) -> Path:
        return self[0]

    @property
    def aoi(self) -> Path | None:
        return self[1]


def label_files(folder: str | os.PathLike) -> LabelFiles | None:
    """The labels of a scene folder: its label raster (the first of ``mask.tif``,
    ``label.tif``), or its inventory ``labels.*`` with its ``aoi.*`` if any; None when it has
    neither.

    Raises
    ------
    InvalidValueError
        The folder holds a label raster and an inventory, two inventories, two areas of
        interest, or an area of interest next to a label raster (which one is meant?).
    """
    folder = Path(folder)
    rasters = [folder / n for n in RASTER_LABEL_NAMES if (folder / n).is_file()]
    polygons = [folder / n for n in POLYGON_LABEL_NAMES if (folder / n).is_file()]
    aois = [folder / n for n in AOI_NAMES if (folder / n).is_file()]
    if rasters and polygons:
        raise InvalidValueError(f"holds both a label raster ({rasters[0].name}) and landslide "
                                f"polygons ({polygons[0].name}): which are the labels is "
                                "ambiguous; keep one", folder)
    if len(polygons) > 1:
        raise InvalidValueError(f"holds {len(polygons)} polygon label files "
                                f"({', '.join(p.name for p in polygons)}); keep one", folder)
    if len(aois) > 1:
        raise InvalidValueError(f"holds {len(aois)} area-of-interest files "
                                f"({', '.join(p.name for p in aois)}); keep one", folder)
    if rasters:
        if aois:
            raise InvalidValueError(f"holds an area of interest ({aois[0].name}) next to a label "
                                    f"raster ({rasters[0].name}); an area of interest goes with "
                                    "polygon labels (labels.*): mark unlabelled pixels 255 in "
                                    "the raster instead", folder)
        return LabelFiles(rasters[0])
    if polygons:
        return LabelFiles(polygons[0], aois[0] if aois else None)
    return None


class Labels(Protocol):
    """What a scene's labels give: ``read(window, check)`` as uint8 0/1/255."""

    path: Path

    def read(self, window: Window, check: bool = False) -> np.ndarray: ...

    def close(self) -> None: ...


class RasterLabels:
    """A label raster on the scene's grid (0 background, 1 landslide, 255 or nodata ignored).

    Raises
    ------
    ScdnnError
        Not a raster, on another grid than ``grid`` (the scene's dataset), not one integer
        band; when reading with ``check``, a value other than 0, 1 and 255.
    """

    def __init__(self, path: str | os.PathLike, grid: Any, image: str | os.PathLike | None = None):
        from .scene import same_grid

        self.path = Path(path)
        try:
            self.dataset = rasterio.open(self.path)
        except RasterioError:
            raise InputFileError("not a raster file GDAL can read", self.path) from None
        if not same_grid(self.dataset, grid):
            label = self.dataset
            self.close()
            raise InvalidValueError(f"label raster is on another grid than its image "
                                    f"{image or grid.name} ({label.width}x{label.height} vs "
                                    f"{grid.width}x{grid.height}, or another transform or "
                                    "CRS); labels must be pixel-aligned with the image",
                                    self.path)
        if self.dataset.count != 1 or not np.issubdtype(np.dtype(self.dataset.dtypes[0]),
                                                         np.integer):
            self.close()
            raise InvalidValueError("label raster must have one integer band (0 background, "
                                    "1 landslide, 255 no data)", self.path)

    def read(self, window: Window, check: bool = False) -> np.ndarray:
        """Labels inside ``window``: 0, 1, or 255 (label 255 or nodata); ``check``: refuse
        any other value."""
        try:
            label = self.dataset.read(1, window=window, masked=True)
        except RasterioError as exc:
            raise InputFileError(f"cannot read the label raster: {exc}", self.path) from None
        values = label.filled(IGNORE_INDEX)
        if check:
            bad = ~np.isin(values, (0, 1, IGNORE_INDEX))
            if bad.any():
                raise InvalidValueError(f"label raster is not binary: holds {values[bad][0]} "
                                        "(expected 0 background, 1 landslide, 255 no data)",
                                        self.path)
        return values.astype(np.uint8)

    def close(self) -> None:
        if getattr(self, "dataset", None) is not None:
            self.dataset.close()


def _geo():
    try:
        import geopandas
        import shapely
    except ImportError:
        raise InvalidValueError("polygon files need geopandas and shapely: "
                                "pip install 'scdnn[geo]'") from None
    return geopandas, shapely


def read_polygons(path: str | os.PathLike, crs: Any, what: str = "landslide polygons",
                  allow_empty: bool = False):
    """The polygons of ``path`` (a GeoPackage, shapefile, GeoJSON or GeoParquet file, any CRS),
    checked, repaired and reprojected to ``crs``; a GeoSeries of Polygon/MultiPolygon.

    Checks, each refused with an :class:`~scdnn.errors.ScdnnError` naming the file:

    - the file must be readable (a missing or corrupt file, a GeoPackage with several
      layers: which one is meant?);
    - it must hold at least one feature (unless ``allow_empty``: a map with no landslide is
      a legitimate prediction) and no feature without geometry or with an empty one (a
      label that says nothing is more likely a broken export than a deliberate choice);
    - every geometry must be a Polygon or MultiPolygon: points and lines have no area, so a
      pixel rule cannot label them;
    - it must have a CRS: without one, coordinates cannot be placed on the scene;
    - invalid geometries (self-intersections, bow ties, rings crossing) are repaired with
      :func:`shapely.make_valid` (``method="structure"``, which keeps the area a mapper
      drew and drops collapsed parts), since digitised inventories often hold them and the
      repair does not move any boundary; a geometry that has no area left after the
      repair (a polygon collapsed to a line, say) is refused, as it cannot be labelled.
    """
    gpd, shapely = _geo()
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} file does not exist", path)
    frame = _read_frame(gpd, path, what)
    if len(frame) == 0:
        if allow_empty:
            return gpd.GeoSeries([], crs=crs)
        raise InvalidValueError(f"{what} file holds no feature", path)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        raise InvalidValueError(f"{what} file has {int(empty.sum())} feature(s) without a "
                                f"geometry or with an empty one (first: feature {k})", path)
    types = shapely.get_type_id(geoms)
    bad = ~np.isin(types, (3, 6))  # Polygon, MultiPolygon
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidValueError(f"{what} must be polygons; feature {k} is a "
                                f"{geoms[k].geom_type} "
                                f"({int(bad.sum())} feature(s) are not polygons)", path)
    if frame.crs is None:
        raise InvalidValueError(f"{what} file has no CRS (a shapefile without its .prj?); "
                                "the polygons cannot be placed on the scene", path)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        fixed = []
        for k, geom in zip(np.flatnonzero(invalid), repaired, strict=True):
            parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
            area = shapely.unary_union(parts) if parts else None
            if area is None or area.is_empty or area.area == 0:
                reason = shapely.is_valid_reason(geoms[k])
                raise InvalidValueError(f"{what}: feature {int(k)} is an invalid polygon "
                                        f"({reason}) with no area left once repaired; fix or "
                                        "remove it", path)
            fixed.append(area)
        for k, area in zip(np.flatnonzero(invalid), fixed, strict=True):
            geoms[k] = area
    series = gpd.GeoSeries(geoms, crs=frame.crs)
    try:
        return series.to_crs(crs)
    except Exception as exc:  # pyproj CRSError, or a transform that fails
        raise InvalidValueError(f"{what} cannot be reprojected to the scene's CRS: {exc}",
                                path) from None


def _read_frame(gpd, path: Path, what: str):
    try:
        if path.suffix.lower() == ".parquet":
            return gpd.read_parquet(path)
        import pyogrio

        layers = pyogrio.list_layers(path)
        if len(layers) > 1:
            raise InvalidValueError(f"{what} file has {len(layers)} layers "
                                    f"({', '.join(str(n) for n in layers[:, 0])}); keep one",
                                    path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return gpd.read_file(path, engine="pyogrio")
    except InvalidValueError:
        raise
    except ImportError as exc:
        raise InvalidValueError(f"cannot read {path.suffix} files: {exc}", path) from None
    except Exception as exc:  # pyogrio DataSourceError, pyarrow errors: the file is bad
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"cannot read {what}: {reason}", path) from None


class PolygonLabels:
    """Landslide polygons (and optionally an area of interest) rasterised on a scene's grid.

    Parameters
    ----------
    path : the inventory (see :func:`read_polygons` for the formats and the checks)
    grid : the scene's raster (anything with ``crs``, ``transform``, ``width``, ``height``)
    aoi : polygons saying where the inventory is complete; outside them the label is 255
    allow_empty : accept an inventory without any polygon (a predicted map of nothing)

    Raises
    ------
    ScdnnError
        What :func:`read_polygons` refuses; a grid without a CRS; an inventory (or area of
        interest) none of whose polygons overlap the scene.
    """

    def __init__(self, path: str | os.PathLike, grid: Any, aoi: str | os.PathLike | None = None,
                 allow_empty: bool = False):
        self.path = Path(path)
        self.aoi_path = None if aoi is None else Path(aoi)
        if grid.crs is None:
            raise InvalidValueError("polygon labels need a georeferenced scene; this scene "
                                    "has no CRS", getattr(grid, "name", None))
        self.transform = grid.transform
        self.width, self.height = int(grid.width), int(grid.height)
        crs = grid.crs.to_wkt()
        self.polygons = read_polygons(self.path, crs, allow_empty=allow_empty)
        self.aoi = None if aoi is None else read_polygons(aoi, crs, what="area of interest")
        full = Window(0, 0, self.width, self.height)
        if len(self.polygons) and not len(self._intersecting(self.polygons, full)):
            raise InvalidValueError(f"no landslide polygon overlaps the scene "
                                    f"({self._bounds_text(self.polygons)})", self.path)
        if self.aoi is not None and not len(self._intersecting(self.aoi, full)):
            raise InvalidValueError(f"the area of interest does not overlap the scene "
                                    f"({self._bounds_text(self.aoi)})", self.aoi_path)

    def _box(self, window: Window):
        import shapely

        left, bottom, right, top = rasterio.windows.bounds(window, self.transform)
        return shapely.box(min(left, right), min(bottom, top), max(left, right),
                           max(bottom, top))

    def _intersecting(self, series, window: Window):
        """The geometries of ``series`` intersecting ``window`` (spatial index query)."""
        index = series.sindex.query(self._box(window), predicate="intersects")
        return series.values[np.sort(index)]

    def _bounds_text(self, series) -> str:
        b = series.total_bounds
        scene = self._box(Window(0, 0, self.width, self.height)).bounds
        return (f"polygon bounds {b[0]:.1f}, {b[1]:.1f}, {b[2]:.1f}, {b[3]:.1f} vs scene "
                f"{scene[0]:.1f}, {scene[1]:.1f}, {scene[2]:.1f}, {scene[3]:.1f} in the "
                "scene's CRS")

    def _burn(self, series, window: Window) -> np.ndarray:
        from rasterio.features import rasterize

        shape = (int(window.height), int(window.width))
        geoms = self._intersecting(series, window)
        if not len(geoms):
            return np.zeros(shape, np.uint8)
        return rasterize(((g, 1) for g in geoms), out_shape=shape,
                         transform=window_transform(window, self.transform), fill=0,
                         all_touched=False, dtype="uint8")

    def read(self, window: Window, check: bool = False) -> np.ndarray:
        """Labels inside ``window``: 1 where a pixel's centre is inside a landslide polygon,
        0 elsewhere, 255 outside the area of interest. (``check`` is accepted for the
        raster's sake: polygons were checked when read.)"""
        label = self._burn(self.polygons, window)
        if self.aoi is not None:
            label[self._burn(self.aoi, window) == 0] = IGNORE_INDEX
        return label

    def close(self) -> None:
        pass


def open_labels(files: LabelFiles, grid: Any, image: str | os.PathLike | None = None
                ) -> RasterLabels | PolygonLabels:
    """The labels of ``files`` (:func:`label_files`) on ``grid``, the scene's raster."""
    if files.label.name in RASTER_LABEL_NAMES or files.label.suffix.lower() in (".tif", ".tiff"):
        return RasterLabels(files.label, grid, image)
    return PolygonLabels(files.label, grid, files.aoi)
