"""Landslide inventories (polygons) as scene labels: rasterisation, CRS, area of interest,
window-by-window reading, training and scoring like a label raster, bad inventories.

Every inventory here is a tiny file written into ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from conftest import one_line_error, write_ellipse_scene
from scdnn.cli import main
from scdnn.datasets.labels import PolygonLabels, label_files
from scdnn.datasets.scenes import LabelledScene, find_scenes

gpd = pytest.importorskip("geopandas")
shapely = pytest.importorskip("shapely")

CRS = "EPSG:32647"
PX = 1.0
X0, Y0 = 500000.0, 3400000.0
TRANSFORM = Affine(PX, 0.0, X0, 0.0, -PX, Y0)


class Grid:
    """A 10 x 12 grid of 1 m pixels in UTM 47N, as a scene's raster gives it."""

    crs = rasterio.crs.CRS.from_string(CRS)
    transform = TRANSFORM
    width, height = 12, 10
    name = "grid"


def pixel_polygon(points: list[tuple[float, float]]):
    """A polygon given in (column, row) pixel-corner coordinates of the grid."""
    return shapely.Polygon([TRANSFORM @ p for p in points])


def write_polygons(path: Path, geoms, crs=CRS, **kw) -> Path:
    gpd.GeoDataFrame({"id": list(range(len(geoms)))}, geometry=list(geoms),
                     crs=crs).to_file(path, **kw)
    return path


TRIANGLE = [(1, 1), (7.3, 1), (1, 7.3)]


def triangle_pixels() -> np.ndarray:
    """By hand: a pixel (r, c) has its centre (c + .5, r + .5) inside the triangle when
    c >= 1, r >= 1 and c + r + 1 < 8.3, i.e. c + r <= 7."""
    r, c = np.mgrid[0:10, 0:12]
    return ((c >= 1) & (r >= 1) & (c + r <= 7)).astype(np.uint8)


def test_a_polygon_labels_the_pixels_whose_centre_is_inside(tmp_path: Path) -> None:
    path = write_polygons(tmp_path / "labels.gpkg", [pixel_polygon(TRIANGLE)])
    label = PolygonLabels(path, Grid).read(Window(0, 0, 12, 10))
    expected = triangle_pixels()
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, expected)
    assert expected.sum() == 21 and label[1, 7] == 0  # 6 + 5 + ... + 1; (1, 7) is only touched


@pytest.mark.parametrize("name", ["labels.geojson", "labels.gpkg", "labels.shp",
                                  "labels.parquet"])
def test_a_polygon_in_another_crs_lands_on_the_same_pixels(tmp_path: Path, name: str) -> None:
    geographic = gpd.GeoSeries([pixel_polygon(TRIANGLE)], crs=CRS).to_crs("EPSG:4326")
    assert geographic.total_bounds[0] < 180  # really in degrees
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
        path = tmp_path / name
        gpd.GeoDataFrame(geometry=geographic).to_parquet(path)
    else:
        path = write_polygons(tmp_path / name, geographic.values, crs="EPSG:4326")
    label = PolygonLabels(path, Grid).read(Window(0, 0, 12, 10))
    np.testing.assert_array_equal(label, triangle_pixels())


def test_outside_the_area_of_interest_the_label_is_ignored(tmp_path: Path) -> None:
    path = write_polygons(tmp_path / "labels.gpkg", [pixel_polygon(TRIANGLE)])
    aoi = write_polygons(tmp_path / "aoi.gpkg", [pixel_polygon([(0, 0), (5, 0), (5, 10),
                                                                (0, 10)])])
    label = PolygonLabels(path, Grid, aoi=aoi).read(Window(0, 0, 12, 10))
    expected = triangle_pixels()
    expected[:, 5:] = 255
    np.testing.assert_array_equal(label, expected)


def test_window_by_window_equals_the_whole_grid(tmp_path: Path) -> None:
    from rasterio.features import rasterize

    rng = np.random.default_rng(0)
    blobs = [shapely.Point(TRANSFORM @ (rng.uniform(0, 12), rng.uniform(0, 10)))
             .buffer(rng.uniform(0.8, 3.0), quad_segs=7) for _ in range(6)]
    path = write_polygons(tmp_path / "labels.gpkg", blobs)
    labels = PolygonLabels(path, Grid)
    whole = labels.read(Window(0, 0, 12, 10))
    direct = rasterize([(g, 1) for g in blobs], out_shape=(10, 12), transform=TRANSFORM,
                       dtype="uint8")
    np.testing.assert_array_equal(whole, direct)
    assert 0 < whole.sum() < whole.size
    pieces = np.full((10, 12), 7, np.uint8)
    for r in range(0, 10, 3):
        for c in range(0, 12, 5):
            h, w = min(3, 10 - r), min(5, 12 - c)
            pieces[r:r + h, c:c + w] = labels.read(Window(c, r, w, h))
    np.testing.assert_array_equal(pieces, whole)


def test_a_self_intersecting_polygon_is_repaired(tmp_path: Path) -> None:
    # two triangles meeting at (4.3, 4); no pixel centre on an edge
    bowtie = pixel_polygon([(1.3, 1), (7.3, 7), (7.3, 1), (1.3, 7)])
    assert not bowtie.is_valid
    path = write_polygons(tmp_path / "labels.gpkg", [bowtie])
    label = PolygonLabels(path, Grid).read(Window(0, 0, 12, 10))
    r, c = np.mgrid[0:10, 0:12]
    x, y = c + .5, r + .5  # pixel centres
    left = (x > 1.3) & (y > x - 0.3) & (y < 8.3 - x)
    right = (x < 7.3) & (y < x - 0.3) & (y > 8.3 - x)
    assert left.sum() > 5 and right.sum() > 5
    np.testing.assert_array_equal(label, (left | right).astype(np.uint8))


# --- scene folders with an inventory ----------------------------------------------------

H, W = 64, 80
ROWS, COLS = np.mgrid[0:H, 0:W]
VALID = COLS >= 10


def inventory_scene(root: Path, crs: str = "EPSG:4326") -> Path:
    """An ellipse scene whose mask.tif is replaced by the same landslide as polygons
    (``labels.gpkg`` in ``crs``); the raster is kept beside the folder as ``root.tif``."""
    from rasterio.features import shapes

    write_ellipse_scene(root, VALID, (32, 45), (14, 22), seed=1, dsm=None)
    with rasterio.open(root / "mask.tif") as src:
        mask, transform, scene_crs = src.read(1), src.transform, src.crs
    geoms = [shapely.geometry.shape(g) for g, _ in
             shapes((mask == 1).astype(np.uint8), mask=mask == 1, transform=transform)]
    frame = gpd.GeoDataFrame(geometry=geoms, crs=scene_crs).to_crs(crs)
    frame.to_file(root / "labels.gpkg")
    (root / "mask.tif").rename(root.with_suffix(".tif"))
    return root


def whole_label_and_mask(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The label a scene folder's polygons give, and the mask raster they were made from."""
    scene = LabelledScene(find_scenes(root)[0])
    try:
        label = scene.whole_label()
    finally:
        scene.close()
    with rasterio.open(root.with_suffix(".tif")) as src:
        return label, src.read(1)


def test_scene_labels_from_polygons_equal_the_mask_raster(tmp_path: Path) -> None:
    root = inventory_scene(tmp_path / "s")
    label, expected = whole_label_and_mask(root)
    assert label[VALID].sum() > 100
    np.testing.assert_array_equal(label, expected)


def test_a_scene_folder_with_an_area_of_interest_ignores_what_is_outside(tmp_path: Path
                                                                        ) -> None:
    root = inventory_scene(tmp_path / "s")
    write_polygons(root / "aoi.shp", [shapely.box(*(TRANSFORM_SCENE @ (0, H)),
                                                  *(TRANSFORM_SCENE @ (50, 0)))])
    assert label_files(root).aoi == root / "aoi.shp"
    label, expected = whole_label_and_mask(root)
    expected[:, 50:] = 255
    np.testing.assert_array_equal(label, expected)


def test_a_folder_with_a_mask_and_polygons_is_ambiguous(tmp_path: Path, capsys) -> None:
    root = inventory_scene(tmp_path / "s")
    (root.with_suffix(".tif")).rename(root / "mask.tif")
    with pytest.raises(ValueError, match="ambiguous"):
        label_files(root)
    code = main(["evaluate", str(root), "--predictions", str(root / "mask.tif"),
                 "--out", str(tmp_path / "e")])
    one_line_error(code, capsys, str(root), "ambiguous")



def test_a_scene_with_polygons_trains_and_scores_like_its_mask_raster(tmp_path: Path) -> None:
    polygons = inventory_scene(tmp_path / "polygons")
    raster = write_ellipse_scene(tmp_path / "raster", VALID, (32, 45), (14, 22), seed=1,
                                 dsm=None)
    run = tmp_path / "run"
    assert main(["train", str(polygons), "--out", str(run), "--epochs", "1",
                 "--windows-per-epoch", "2", "--batch-size", "2", "--image-size", "32",
                 "--val-block", "32", "--val-fraction", "0.2", "--workers", "0"]) == 0
    confusions = []
    for data in (polygons, raster):
        out = tmp_path / f"eval-{data.name}"
        assert main(["evaluate", str(data), "--weights", str(run / "weights.safetensors"),
                     "--all", "--raw", "--tile", "64", "--overlap", "16",
                     "--out", str(out)]) == 0
        confusions.append(json.loads((out / "metrics.json").read_text())["confusion"])
    assert confusions[0] == confusions[1]
    assert sum(map(sum, confusions[0])) == int(VALID.sum())


# --- bad inventories: exit status 2, one line naming the file ---------------------------

def _no_crs(root: Path, landslide: list) -> Path:
    return write_polygons(root / "labels.gpkg", landslide, crs=None)


def _shapefile_without_prj(root: Path, landslide: list) -> Path:
    write_polygons(root / "labels.shp", landslide)
    (root / "labels.prj").unlink()
    return root / "labels.shp"


def _far_away(root: Path, landslide: list) -> Path:
    far = [shapely.affinity.translate(g, 10_000, 0) for g in landslide]
    return write_polygons(root / "labels.gpkg", far)


def _collapsed(root: Path, landslide: list) -> Path:
    x, y = TRANSFORM_SCENE * (30, 30)
    line_like = shapely.Polygon([(x, y), (x + 5, y - 5), (x + 10, y - 10), (x, y)])
    assert not line_like.is_valid
    return write_polygons(root / "labels.gpkg", landslide + [line_like])


def _no_feature(root: Path, landslide: list) -> Path:
    path = root / "labels.gpkg"
    gpd.GeoDataFrame({"id": []}, geometry=gpd.GeoSeries([], crs=CRS)).to_file(
        path, geometry_type="Polygon")
    return path


def _empty_geometry(root: Path, landslide: list) -> Path:
    return write_polygons(root / "labels.gpkg", landslide + [None])


def _points(root: Path, landslide: list) -> Path:
    return write_polygons(root / "labels.gpkg",
                          [shapely.Point(TRANSFORM_SCENE * (40, 30))])


def _lines(root: Path, landslide: list) -> Path:
    return write_polygons(root / "labels.geojson",
                          [shapely.LineString([TRANSFORM_SCENE * (20, 20),
                                               TRANSFORM_SCENE * (60, 40)])])


def _garbage(root: Path, landslide: list) -> Path:
    path = root / "labels.geojson"
    path.write_bytes(b'{"type": "FeatureCollection", "features": [{"type": tru')
    return path


def _two_layers(root: Path, landslide: list) -> Path:
    path = root / "labels.gpkg"
    write_polygons(path, landslide, layer="more", mode="a")
    return path


def _aoi_far_away(root: Path, landslide: list) -> Path:
    path = write_polygons(root / "aoi.gpkg", [shapely.box(0, 0, 10, 10)])
    write_polygons(root / "labels.gpkg", landslide)
    return path


TRANSFORM_SCENE = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 3400000.0)  # write_ellipse_scene's


@pytest.mark.parametrize("make, needle", [
    (_no_crs, "no CRS"), (_shapefile_without_prj, "no CRS"),
    (_far_away, "overlaps the scene"), (_collapsed, "no area left"),
    (_no_feature, "no feature"), (_empty_geometry, "empty"), (_points, "Point"),
    (_lines, "LineString"), (_garbage, "cannot read"), (_two_layers, "2 layers"),
    (_aoi_far_away, "area of interest does not overlap"),
])
def test_a_bad_inventory_ends_with_one_line_naming_it(tmp_path: Path, capsys, make,
                                                        needle) -> None:
    root = inventory_scene(tmp_path / "s", crs=CRS)
    landslide = list(gpd.read_file(root / "labels.gpkg").geometry)
    assert landslide
    if make is not _two_layers:
        (root / "labels.gpkg").unlink()
    bad = make(root, landslide)
    capsys.readouterr()  # warnings of writing the file
    code = main(["evaluate", str(root), "--predictions", str(root.with_suffix(".tif")),
                 "--out", str(tmp_path / "e")])
    one_line_error(code, capsys, str(bad), needle)
    assert not (tmp_path / "e").exists()


# --- scdnn evaluate INVENTORY --polygons MAP ---------------------------------------------

def _map_folder(tmp_path: Path, shift_px: int) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A scene's inventory (UTM), and a map folder: mask.tif (the scene's grid, 255 where
    the scene has no data) and landslides.gpkg (EPSG:4326) = the landslide moved right by
    ``shift_px`` columns. Returns (inventory, map, truth, predicted) as pixels."""
    root = inventory_scene(tmp_path / "s", crs=CRS)
    inventory = root / "labels.gpkg"
    with rasterio.open(root.with_suffix(".tif")) as src:
        truth, profile = src.read(1), src.profile
    landslide = gpd.read_file(inventory)
    moved = landslide.translate(shift_px * 0.5, 0).to_crs("EPSG:4326")
    run = tmp_path / "map"
    run.mkdir()
    gpd.GeoDataFrame(geometry=moved).to_file(run / "landslides.gpkg", layer="landslides")
    predicted = np.zeros_like(truth)
    predicted[:, shift_px:] = truth[:, :-shift_px] == 1
    with rasterio.open(run / "mask.tif", "w", **profile) as dst:
        dst.write(np.where(VALID, predicted, 255).astype(np.uint8), 1)
    return inventory, run, truth, predicted


def test_evaluate_scores_map_polygons_against_an_inventory(tmp_path: Path, capsys) -> None:
    inventory, run, truth, predicted = _map_folder(tmp_path, shift_px=3)
    aoi = write_polygons(tmp_path / "aoi.geojson",
                         [shapely.box(*(TRANSFORM_SCENE * (0, H)), *(TRANSFORM_SCENE * (60, 0)))])
    out = tmp_path / "eval"
    assert main(["evaluate", str(inventory), "--polygons", str(run), "--aoi", str(aoi),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    scored = VALID & (COLS < 60)
    t, p = truth[scored].astype(int), predicted[scored].astype(int)
    expected = [[int(((t == a) & (p == b)).sum()) for b in (0, 1)] for a in (0, 1)]
    assert metrics["confusion"] == expected
    assert expected[0][1] > 0 and expected[1][0] > 0 and expected[1][1] > 0
    assert metrics["source"]["grid"] == str(run / "mask.tif")
    assert metrics["boundary_tolerance_m"] == pytest.approx(1.0)
    assert metrics["objects"] is not None and 0 < metrics["boundary_f1"] < 1
    assert "metrics.json" in capsys.readouterr().out


def test_evaluate_polygons_equal_to_the_inventory_score_perfectly(tmp_path: Path) -> None:
    inventory, run, _, _ = _map_folder(tmp_path, shift_px=1)
    out = tmp_path / "eval"
    assert main(["evaluate", str(inventory), "--polygons", str(inventory),
                 "--grid", str(run / "mask.tif"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(1.0) and metrics["boundary_f1"] == pytest.approx(1.0)
    assert sum(map(sum, metrics["confusion"])) == int(VALID.sum())


def test_evaluate_polygons_refuses_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    inventory, run, _, _ = _map_folder(tmp_path, shift_px=1)
    points = write_polygons(tmp_path / "points.gpkg", [shapely.Point(TRANSFORM_SCENE * (5, 5))])
    code = main(["evaluate", str(points), "--polygons", str(run), "--out", str(tmp_path / "e")])
    one_line_error(code, capsys, str(points), "Point")
    code = main(["evaluate", str(inventory), "--polygons", str(inventory),
                 "--out", str(tmp_path / "e")])
    one_line_error(code, capsys, str(inventory), "--grid")
    code = main(["evaluate", str(inventory.parent), "--predictions", str(run / "mask.tif"),
                 "--aoi", str(inventory), "--out", str(tmp_path / "e")])
    one_line_error(code, capsys, "--aoi", "--polygons")
    assert not (tmp_path / "e").exists()
