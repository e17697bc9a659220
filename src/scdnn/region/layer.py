"""One landslide layer for a job of several scenes: ``OUT/landslides.gpkg`` and ``.parquet``.

:func:`job_layer` reads every scene's polygon file, reprojects the polygons to the job's CRS,
adds a ``scene`` column and merges the polygons that straddle scenes
(:func:`merge_across_scenes`); :func:`write_layer` writes the table as a GeoPackage (layer
``landslides``) and a GeoParquet file, both renamed into place together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..mapping.outputs import Staging

__all__ = ["job_layer", "merge_across_scenes", "write_layer", "LAYER_FILES"]

LAYER_FILES = ("landslides.gpkg", "landslides.parquet")
COLUMNS = ["id", "scene", "area_m2", "perimeter_m", "mean_probability", "max_probability"]


def job_layer(polygon_files: Sequence[tuple[str, Path]], crs: Any):
    """The landslides of every scene in one GeoDataFrame in ``crs``, straddling polygons
    merged; ``polygon_files`` is ``(scene name, its landslides.gpkg or .geojson)``."""
    import geopandas as gpd
    import pandas as pd
    import pyogrio

    parts = []
    for name, path in polygon_files:
        table = pyogrio.read_dataframe(path)
        if table.crs is not None and crs is not None:
            table = table.to_crs(crs)
        else:
            table = table.set_crs(crs, allow_override=True)
        table.insert(0, "scene", name)
        parts.append(table)
    if parts:
        table = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=crs)
    else:
        table = gpd.GeoDataFrame({c: [] for c in COLUMNS}, geometry=[], crs=crs)
    return merge_across_scenes(table)


def merge_across_scenes(table):
    """Merge the polygons of different scenes that overlap or share a boundary (not a mere
    corner) into one polygon each; polygons of one scene are never merged with each other
    unless a polygon of another scene joins them.

    Attributes of a merged polygon: ``scene`` lists the scenes it comes from, sorted and
    joined with ``+``; ``area_m2`` and ``perimeter_m`` are those of the merged outline (all
    areas and perimeters are recomputed in the layer's CRS, in its units);
    ``mean_probability`` is the area-weighted mean of the parts' means (overlapping parts
    count twice: both scenes saw those pixels); ``max_probability`` is the parts' maximum.
    Rows come sorted by the first scene, then top to bottom, left to right; ``id`` is 1..n.
    """
    import geopandas as gpd
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    geoms = np.asarray(table.geometry.values, dtype=object)
    n = len(geoms)
    scenes = table["scene"].to_numpy(dtype=object) if n else np.array([], dtype=object)
    group = np.arange(n)
    if n:
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        keep = (left < right) & (scenes[left] != scenes[right])
        left, right = left[keep], right[keep]
        if len(left):
            contact = shapely.get_dimensions(shapely.intersection(geoms[left], geoms[right]))
            left, right = left[contact >= 1], right[contact >= 1]
        graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
        _, group = connected_components(graph, directed=False)
    area = shapely.area(geoms) if n else np.array([])
    mean = table["mean_probability"].to_numpy(dtype=np.float64) if n else np.array([])
    peak = table["max_probability"].to_numpy(dtype=np.float64) if n else np.array([])
    rows: dict[str, list] = {c: [] for c in COLUMNS[1:]}
    out_geoms = []
    scene_order = {name: k for k, name in enumerate(dict.fromkeys(scenes.tolist()))}
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        geom = geoms[members[0]] if len(members) == 1 else shapely.union_all(geoms[members])
        names = sorted(set(scenes[members].tolist()), key=scene_order.get)
        weight = area[members]
        rows["scene"].append("+".join(names))
        rows["mean_probability"].append(float(np.average(mean[members], weights=weight))
                                        if weight.sum() > 0 else float(mean[members].mean()))
        rows["max_probability"].append(float(peak[members].max()))
        out_geoms.append(geom)
    out_geoms = np.asarray(out_geoms, dtype=object)
    rows["area_m2"] = shapely.area(out_geoms).tolist() if len(out_geoms) else []
    rows["perimeter_m"] = shapely.length(out_geoms).tolist() if len(out_geoms) else []
    merged = gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(out_geoms, crs=table.crs),
                              crs=table.crs)
    if len(merged):
        bounds = shapely.bounds(out_geoms)
        first = [scene_order[s.split("+")[0]] for s in rows["scene"]]
        order = np.lexsort((bounds[:, 0], -bounds[:, 3], first))
        merged = merged.iloc[order].reset_index(drop=True)
    merged.insert(0, "id", np.arange(1, len(merged) + 1, dtype=np.int64))
    return merged


def write_layer(table, out: str | os.PathLike) -> list[Path]:
    """Write ``table`` as ``out/landslides.gpkg`` (layer ``landslides``) and
    ``out/landslides.parquet`` (GeoParquet), renamed into place together."""
    import warnings

    import pyogrio
    import shapely

    multi = bool(len(table)) and bool(
        (shapely.get_type_id(np.asarray(table.geometry.values)) == 6).any())
    with Staging(Path(out)) as staging:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pyogrio.write_dataframe(table, staging.final("landslides.gpkg"), driver="GPKG",
                                    layer="landslides",
                                    geometry_type="MultiPolygon" if multi else "Polygon",
                                    promote_to_multi=multi)
        table.to_parquet(staging.final("landslides.parquet"))
        return staging.commit()
