"""The report of a mapping folder (``scdnn map``: map.json, probability.tif, mask.tif,
landslides.gpkg or .geojson).

Rasters are only ever read decimated (rasterio ``out_shape``; GDAL takes the COG overviews),
the longest side at most :data:`OVERVIEW_SIDE` pixels, so a report of a huge scene is quick
and small. The scene itself is drawn when its file is still where map.json says; otherwise
the mask stands in for it.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputFileError, InvalidValueError
from ..records import MapRecord
from ..runs import read_json
from . import figures
from .evaluation import resolve
from .html import Report, Section, fmt_number, fmt_pct, image, key_values, note, table

__all__ = ["mapping_report", "decimated_shape", "OVERVIEW_SIDE", "LARGEST"]

#: Longest side, in pixels, of the rasters read for the overviews.
OVERVIEW_SIDE = 1600
#: Rows of the table of the largest landslides (and ids written on the overview).
LARGEST = 10
_MASK_COLOURS = {0: (0.96, 0.96, 0.93), 1: (1.0, 0.72, 0.35)}


def decimated_shape(height: int, width: int, longest: int = OVERVIEW_SIDE) -> tuple[int, int]:
    """``(rows, columns)`` of a raster shrunk so that its longest side is ≤ ``longest``."""
    scale = min(1.0, longest / max(height, width, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence rasterio's warning about rasters without georeferencing (pixel maps)."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


@contextlib.contextmanager
def _raster(path: Path, what: str) -> Iterator[Any]:
    """``rasterio.open(path)``; a file that cannot be opened or read (cut short, corrupt)
    is the user's InputFileError naming it, not a traceback."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with _quiet(), rasterio.open(path) as src:
            yield src
    except RasterioError as exc:
        while exc.__cause__ is not None or exc.__context__ is not None:  # GDAL's own words
            exc = exc.__cause__ or exc.__context__
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputFileError(f"cannot read {what} (truncated or corrupt?): {reason}",
                             path) from None


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """0–1 floats, each band stretched between its 1st and 99th percentile of valid pixels."""
    out = np.zeros(rgb.shape, np.float32)
    for b in range(rgb.shape[-1]):
        band = rgb[..., b].astype(np.float32)
        values = band[valid]
        if values.size == 0:
            continue
        lo, hi = np.percentile(values, [1, 99])
        out[..., b] = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
    return out


def _scene_background(scene: Path, summary: dict[str, Any], shape: tuple[int, int]
                      ) -> np.ndarray:
    from rasterio.enums import Resampling

    with _raster(scene, "the scene") as src:
        if (src.height, src.width) != (summary.get("height"), summary.get("width")):
            raise InvalidValueError(f"scene is {src.width}x{src.height} px but map.json says "
                            f"{summary.get('width')}x{summary.get('height')}", scene)
        bands = [int(b) for b in (summary.get("bands") or range(1, src.count + 1))][:3]
        data = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.average)
        valid = src.dataset_mask(out_shape=shape) > 0
    rgb = np.moveaxis(data, 0, -1)
    if rgb.shape[-1] < 3:
        rgb = np.repeat(rgb[..., :1], 3, axis=-1)
    background = _stretch(rgb, valid)
    background[~valid] = figures.NEUTRAL
    return background


def _mask_background(mask_path: Path, shape: tuple[int, int]) -> np.ndarray:
    from rasterio.enums import Resampling

    with _raster(mask_path, "the mask") as src:
        mask = src.read(1, out_shape=shape, resampling=Resampling.mode)
    background = np.empty((*shape, 3), np.float32)
    background[:] = figures.NEUTRAL
    for value, colour in _MASK_COLOURS.items():
        background[mask == value] = colour
    return background


def _probability(path: Path, shape: tuple[int, int]) -> np.ma.MaskedArray:
    from rasterio.enums import Resampling

    from ..mapping.outputs import read_probability

    with _raster(path, "the probabilities") as src:
        return read_probability(src, out_shape=shape, resampling=Resampling.average)


def _polygon_file(run_dir: Path, summary: dict[str, Any]) -> Path | None:
    names = [n for n in summary.get("outputs") or [] if str(n).startswith("landslides.")]
    names += ["landslides.gpkg", "landslides.geojson"]
    return next((run_dir / n for n in names if (run_dir / n).is_file()), None)


def _rings(geometries, transform) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Every polygon ring in the scene's pixel coordinates, and one inner point per polygon."""
    import shapely

    inverse = ~transform
    matrix = np.array([[inverse.a, inverse.b], [inverse.d, inverse.e]])
    offset = np.array([inverse.c, inverse.f])
    pixel = shapely.transform(np.asarray(geometries, dtype=object),
                              lambda xy: xy @ matrix.T + offset)
    rings: list[np.ndarray] = []
    points = []
    for geom in pixel:
        if geom is None or geom.is_empty:
            points.append((np.nan, np.nan))
            continue
        for poly in getattr(geom, "geoms", [geom]):
            rings.append(np.asarray(poly.exterior.coords)[:, :2])
            rings.extend(np.asarray(r.coords)[:, :2] for r in poly.interiors)
        p = geom.representative_point()
        points.append((p.x, p.y))
    return rings, points


def _units(summary: dict[str, Any]) -> tuple[str, str]:
    units = summary.get("units") or "unknown"
    if units in ("metre", "meter", "metres", "meters"):
        return "m", "m²"
    return units, f"{units}²"


def _summary_table(summary: dict[str, Any]) -> str:
    length, area = _units(summary)
    windows = summary.get("windows") or {}
    transform = summary.get("transform") or []
    pixel = (f"{abs(transform[0]):g} × {abs(transform[4]):g} {length}"
             if len(transform) >= 6 else "n/a")
    share = None
    if summary.get("valid_area"):
        share = summary.get("landslide_area", 0) / summary["valid_area"]
    pairs = [
        ("scene", summary.get("scene")),
        *([("DSM", summary["dsm"])] if summary.get("dsm") else []),
        ("weights", f"{summary.get('weights', 'n/a')}"
                    + (f" ({summary['engine']})" if summary.get("engine") else "")),
        ("model", f"{summary.get('model')} (inputs: {', '.join(summary.get('inputs') or [])})"),
        ("size", f"{fmt_number(summary.get('width'))} × {fmt_number(summary.get('height'))} px"),
        ("CRS", summary.get("crs") or "none (pixel coordinates)"),
        ("pixel size", pixel),
        ("windows", f"{windows.get('run', 'n/a')} run of {windows.get('total', 'n/a')} "
                    f"({windows.get('skipped_no_valid_pixel', 'n/a')} without a valid pixel "
                    f"skipped); tile {summary.get('tile')} px, overlap {summary.get('overlap')} "
                    f"px, batch {summary.get('batch_size')}"),
        ("threshold", summary.get("threshold")),
        ("min area / simplify", f"{summary.get('min_area')} {area} / "
                                f"{summary.get('simplify')} {length}"),
        ("outline cleaning", _cleaning_text(summary.get("cleaning"))),
        ("valid area", f"{fmt_number(summary.get('valid_area'))} {area} "
                       f"({fmt_number(summary.get('valid_pixels'))} px)"),
        ("landslide area", f"{fmt_number(summary.get('landslide_area'))} {area} "
                           f"({fmt_number(summary.get('landslide_pixels'))} px, "
                           f"{fmt_pct(share)} % of the valid area)"),
        ("landslides", fmt_number(summary.get("landslides"))),
        ("outputs", ", ".join(summary.get("outputs") or [])),
    ]
    return key_values((k, "n/a" if v is None else v) for k, v in pairs)


def _cleaning_text(cleaning: Any) -> str:
    """map.json's ``cleaning`` in words ("none (raw mask)" when null or absent)."""
    if not isinstance(cleaning, dict):
        return "none (raw mask)"
    unit = cleaning.get("units", "m")
    px = cleaning.get("pixels") or {}
    return (f"objects < {cleaning.get('min_area')} {unit}² removed, holes < "
            f"{cleaning.get('max_hole')} {unit}² filled, smoothing radius "
            f"{cleaning.get('smooth')} {unit} (in pixels: {fmt_number(px.get('min_area'))}, "
            f"{fmt_number(px.get('max_hole'))}, {fmt_number(px.get('smooth'))})")


def mapping_report(run_dir: Path) -> Report:
    """The :class:`~scdnn.report.html.Report` of a mapping folder."""
    from rasterio.transform import Affine

    summary = read_json(run_dir / "map.json")
    if not isinstance(summary, dict) or not {"width", "height", "transform"} <= set(summary):
        raise InvalidValueError("not a map.json of scdnn map (no width/height/transform)",
                        run_dir / "map.json")
    summary = MapRecord.from_dict(summary, run_dir / "map.json").to_dict()
    height, width = int(summary["height"]), int(summary["width"])
    shape = decimated_shape(height, width)
    transform = Affine(*summary["transform"][:6])
    length, area = _units(summary)
    notes: list[str] = []

    table_html = ""
    rings: list[np.ndarray] = []
    labels: list[tuple[float, float, str]] = []
    polygons = _polygon_file(run_dir, summary)
    if polygons is None:
        notes.append("The landslide polygon file (landslides.gpkg / .geojson) is missing.")
    else:
        try:
            import geopandas as gpd
        except ImportError:
            gpd = None
            notes.append("geopandas is not installed (pip install 'scdnn[geo]'): the polygons "
                         "are not drawn and the table of the largest landslides is left out.")
        if gpd is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    frame = gpd.read_file(polygons)
                except Exception as exc:  # pyogrio/GDAL errors have no common base class
                    raise InputFileError(f"cannot read the landslide polygons: {exc}",
                                    polygons) from None
            rings, points = _rings(list(frame.geometry), transform)
            largest = frame.sort_values("area_m2", ascending=False).head(LARGEST) \
                if "area_m2" in frame else frame.head(0)
            rows = []
            for idx, rec in largest.iterrows():
                position = frame.index.get_loc(idx)
                x, y = points[position]
                if np.isfinite(x):
                    labels.append((x, y, str(rec.get("id", position + 1))))
                centre = rec.geometry.centroid if rec.geometry is not None else None
                rows.append([rec.get("id", position + 1), fmt_number(float(rec["area_m2"])),
                             fmt_number(float(rec.get("perimeter_m", float("nan")))),
                             fmt_number(float(rec.get("mean_probability", float("nan"))), 3),
                             fmt_number(float(rec.get("max_probability", float("nan"))), 3),
                             "n/a" if centre is None else
                             f"{centre.x:,.2f}, {centre.y:,.2f}"])
            if rows:
                table_html = table(["id", f"area ({area})", f"perimeter ({length})",
                                    "mean probability", "max probability",
                                    "centroid x, y (map coordinates)"], rows)
            else:
                table_html = "<p>No landslide was mapped.</p>"

    scene_path = resolve(summary.get("scene"), run_dir)
    background = None
    what = "the scene"
    if scene_path is not None:
        try:
            background = _scene_background(scene_path, summary, shape)
        except Exception as exc:  # a replaced or unreadable scene: fall back on the mask
            notes.append(f"The scene cannot be drawn ({' '.join(str(exc).split())}); the mask "
                         "is shown instead.")
    else:
        notes.append(f"The scene {summary.get('scene')} is not available; the mask is shown "
                     "instead (orange: landslide).")
    if background is None and (run_dir / "mask.tif").is_file():
        background = _mask_background(run_dir / "mask.tif", shape)
        what = "the landslide mask"

    overview = []
    if background is not None:
        title = (f"{what.capitalize()}, landslide outlines in magenta, the {len(labels)} "
                 "largest numbered; grey: no data") if labels else \
            f"{what.capitalize()}, landslide outlines in magenta; grey: no data"
        overview.append(image(figures.scene_overview(background, (height, width), rings,
                                                     labels, title),
                              "scene overview with landslide polygons",
                              f"Read at {shape[1]} × {shape[0]} px of {width} × {height}."))
    else:
        notes.append("Neither the scene nor mask.tif can be read: no overview.")

    prob_html = note("probability.tif is missing.")
    if (run_dir / "probability.tif").is_file():
        prob = _probability(run_dir / "probability.tif", shape)
        prob_html = image(figures.probability_overview(
            prob, (height, width), summary.get("threshold"),
            "Landslide probability (grey: no data; green line on the bar: the threshold)"),
            "probability overview", f"Read at {shape[1]} × {shape[0]} px from the COG's "
            "overviews.")

    sections = [Section("Summary", _summary_table(summary)),
                Section("Overview", "\n".join([*(note(n) for n in notes), *overview])),
                Section("Probability", prob_html)]
    if table_html:
        sections.append(Section("Largest landslides", table_html))
    facts = [("scene", summary.get("scene") or "n/a"),
                    ("landslides", f"{fmt_number(summary.get('landslides'))}, "
                                   f"{fmt_number(summary.get('landslide_area'))} {area}"),
                    ("CRS", summary.get("crs") or "none")]
    return Report(title=f"Mapping report: {run_dir.resolve().name}", run_dir=str(run_dir),
                  kind="mapping", facts=facts, sections=sections,
                  provenance=summary.get("provenance"))
