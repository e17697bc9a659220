"""``scdnn map`` of several scenes (scdnn.region): inputs, per-scene outputs, the job layer,
resuming, bad input, and the Dask cluster (``--workers``; a worker killed mid-task)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from conftest import TINY, spread_weights
from scdnn.cli import main
from scdnn.region import RegionOptions, map_region, resolve_scenes, scene_names
from scdnn.region.layer import merge_across_scenes

pytestmark = pytest.mark.usefixtures("one_thread")

CRS = "EPSG:32647"
PX = 0.5
X0, Y0 = 500000.0, 3400000.0
#: The region: 96 x 200 px; scenes are column ranges of it.
RH, RW = 96, 200
ROWS, COLS = np.mgrid[0:RH, 0:RW]
#: One bright elliptic landslide around column 110 (columns 80..140).
LANDSLIDE = ((ROWS - 48) ** 2 / 20 ** 2 + (COLS - 110) ** 2 / 30 ** 2) < 1
SMALL = ["--tile", "64", "--overlap", "16", "--raw"]


def region_image(seed: int = 0) -> np.ndarray:
    """3 x RH x RW uint8: smooth structure, noise and the bright landslide."""
    rng = np.random.default_rng(seed)
    base = 110 + 20 * np.sin(ROWS / 7.0)[None] * np.cos(COLS / 11.0)[None] + 80 * LANDSLIDE
    return np.clip(base + rng.normal(0, 8, (3, RH, RW)), 1, 255).astype(np.uint8)


def write_part(path: Path, col0: int, col1: int, image: np.ndarray | None = None,
               crs: str = CRS) -> Path:
    """Columns col0..col1 of the region as a GeoTIFF on the region's grid."""
    image = region_image() if image is None else image
    part = image[:, :, col0:col1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=part.shape[2], height=part.shape[1],
                       count=3, dtype="uint8", crs=crs,
                       transform=Affine(PX, 0, X0 + col0 * PX, 0, -PX, Y0)) as dst:
        dst.write(part)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return spread_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors",
                          np.moveaxis(region_image(1)[:, :64, :64], 0, -1), TINY)


@pytest.fixture
def scenes(tmp_path: Path) -> list[Path]:
    """Three scenes: a (columns 0..96), b (64..160, overlapping a) and c (136..200)."""
    folder = tmp_path / "scenes"
    return [write_part(folder / "a.tif", 0, 96), write_part(folder / "b.tif", 64, 160),
            write_part(folder / "c.tif", 136, 200)]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def layer(out: Path):
    import geopandas as gpd

    return gpd.read_parquet(out / "landslides.parquet")


def assert_same_map(a: Path, b: Path) -> None:
    """Two scene folders hold the same map: rasters pixel for pixel, the same polygons."""
    import pyogrio

    for name in ("probability.tif", "mask.tif"):
        np.testing.assert_array_equal(read(a / name), read(b / name), err_msg=name)
    pa, pb = (pyogrio.read_dataframe(x / "landslides.gpkg") for x in (a, b))
    assert len(pa) == len(pb)
    assert pa.geometry.geom_equals(pb.geometry).all()


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# --- inputs ----------------------------------------------------------------------------------

def write_vrt(path: Path, parts: list[tuple[Path, int]], width: int) -> Path:
    """A VRT mosaic of the parts (file, first column) side by side, 3 bands."""
    bands = []
    for b in (1, 2, 3):
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">{f.name}</SourceFilename>'
            f'<SourceBand>{b}</SourceBand><DstRect xOff="{c}" yOff="0" xSize="64" '
            f'ySize="{RH}"/></SimpleSource>' for f, c in parts)
        bands.append(f'<VRTRasterBand dataType="Byte" band="{b}">{sources}</VRTRasterBand>')
    path.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{RH}">'
                    f'<GeoTransform>{X0}, {PX}, 0, {Y0}, 0, {-PX}</GeoTransform>'
                    f'{"".join(bands)}</VRTDataset>')
    return path


def test_scenes_from_paths_folders_globs_lists_and_vrt_mosaics(tmp_path: Path) -> None:
    folder = tmp_path / "tiles"
    a, b = write_part(folder / "a.tif", 0, 64), write_part(folder / "b.TIFF", 64, 128)
    (folder / "notes.txt").write_text("not a scene")
    other = write_part(tmp_path / "other" / "a.tif", 128, 192)
    assert resolve_scenes([str(folder)]) == [a, b]
    assert resolve_scenes([str(folder / "*.tif")]) == [a]
    assert resolve_scenes([str(tmp_path / "**" / "a.tif")]) == [other, a]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# scenes\n{a}\n\nother/a.tif\n")  # relative to the list's folder
    assert resolve_scenes([f"@{listing}"]) == [a, tmp_path / "other/a.tif"]
    assert resolve_scenes([str(a)], scene_list=listing) == [a, tmp_path / "other/a.tif"]
    vrt = write_vrt(folder / "mosaic.vrt", [(a, 0), (b, 64)], 128)
    assert resolve_scenes([str(vrt)]) == [a, b]
    assert resolve_scenes([str(a), str(a), str(folder)]) == [a, b]  # each file once
    assert scene_names([a, other, b]) == ["a", "a-2", "b"]


def test_a_band_stack_vrt_is_one_scene(tmp_path: Path) -> None:
    a = write_part(tmp_path / "a.tif", 0, 64)
    vrt = write_vrt(tmp_path / "stack.vrt", [(a, 0)], 64)
    assert resolve_scenes([str(vrt)]) == [vrt]


# --- several scenes in one process -----------------------------------------------------------

def test_several_scenes_equal_one_scene_runs_and_one_layer(tmp_path: Path, scenes, weights,
                                                          capsys) -> None:
    out = tmp_path / "job"
    assert main(["map", str(tmp_path / "scenes"), "--weights", str(weights), "--out", str(out),
                 *SMALL]) == 0
    assert "3 mapped" in capsys.readouterr().out
    for scene in scenes:
        single = tmp_path / f"single-{scene.stem}"
        assert main(["map", str(scene), "--weights", str(weights), "--out", str(single),
                     *SMALL]) == 0
        assert sorted(p.name for p in single.iterdir()) == [
            "landslides.gpkg", "map.json", "mask.tif", "probability.tif"]
        folder = out / "scenes" / scene.stem
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in
                                                                  single.iterdir())
        assert_same_map(folder, single)
    job = json.loads((out / "job.json").read_text())
    assert [s["name"] for s in job["scenes"]] == ["a", "b", "c"]
    assert {s["status"] for s in job["scenes"]} == {"complete"}
    assert job["options"]["tile"] == 64 and job["status"] == "complete"
    table = layer(out)
    import pyogrio

    gpkg = pyogrio.read_dataframe(out / "landslides.gpkg")
    assert len(gpkg) == len(table) == job["landslides"]
    assert table.crs.to_epsg() == 32647 and gpkg.crs.to_epsg() == 32647
    assert list(table.columns[:2]) == ["id", "scene"]
    assert set("+".join(table["scene"]).split("+")) <= {"a", "b", "c"}
    total = sum(pyogrio.read_info(out / "scenes" / s / "landslides.gpkg")["features"]
                for s in "abc")
    assert 0 < len(table) <= total
    assert sorted(p.name for p in out.iterdir()) == [
        "job.json", "landslides.gpkg", "landslides.parquet", "scenes"]


def test_job_layer_in_another_crs(tmp_path: Path, scenes, weights) -> None:
    out = tmp_path / "job"
    assert main(["map", *map(str, scenes[:2]), "--weights", str(weights), "--out", str(out),
                 "--crs", "EPSG:4326", *SMALL]) == 0
    table = layer(out)
    assert table.crs.to_epsg() == 4326
    assert table.total_bounds[0] > 90 and table.total_bounds[1] > 25  # lon/lat of the scenes


class Brightness:
    """A 'network' that calls bright pixels landslides (the generated landslide)."""

    @staticmethod
    def module():
        import torch

        class Net(torch.nn.Module):
            output_stride = 16

            def forward(self, x):
                score = 8.0 * (x.mean(dim=1, keepdim=True) - 0.35)
                return torch.cat([torch.zeros_like(score), score], dim=1)

        return Net()


def test_a_landslide_straddling_two_scenes_is_one_polygon(tmp_path: Path, weights,
                                                          monkeypatch) -> None:
    from scdnn.predictor import Predictor
    from scdnn.region import job as job_module
    from scdnn.weights import read_card

    predictor = Predictor(Brightness.module(), read_card(weights))
    monkeypatch.setattr(job_module, "_predictor", lambda *args: predictor)
    # a sees the landslide cut at column 120, b sees it whole; they overlap on 60..120
    scenes = [write_part(tmp_path / "a.tif", 0, 120), write_part(tmp_path / "b.tif", 60, 200)]
    out = tmp_path / "job"
    map_region(scenes, RegionOptions(str(weights), tile=64, overlap=16), out)
    import pyogrio

    for s in "ab":
        assert pyogrio.read_info(out / "scenes" / s / "landslides.gpkg")["features"] == 1
    table = layer(out)
    assert len(table) == 1 and table["scene"][0] == "a+b"
    pixels = table.area[0] / PX ** 2
    assert abs(pixels - LANDSLIDE.sum()) < 0.15 * LANDSLIDE.sum()


def test_merge_across_scenes_only_joins_other_scenes_along_a_line() -> None:
    import geopandas as gpd
    from shapely.geometry import box

    table = gpd.GeoDataFrame({
        "scene": ["a", "a", "b", "b", "c"],
        "mean_probability": [0.6, 0.7, 0.8, 0.9, 0.75],
        "max_probability": [0.9, 0.8, 0.95, 0.99, 0.8]},
        geometry=[box(0, 0, 2, 2), box(2, 2, 3, 3),      # a: two touching at a corner
                  box(1, 0, 4, 1),                        # b: overlaps a's first
                  box(10, 0, 11, 1), box(11, 1, 12, 2)])  # b and c touch at a corner only
    merged = merge_across_scenes(table)
    assert merged["scene"].tolist() == ["a", "a+b", "b", "c"]  # top to bottom in each scene
    assert merged["id"].tolist() == [1, 2, 3, 4]
    first = merged.iloc[1]
    assert first.geometry.area == pytest.approx(4 + 3 - 1)
    assert first["area_m2"] == pytest.approx(6)
    assert first["mean_probability"] == pytest.approx((0.6 * 4 + 0.8 * 3) / 7)
    assert first["max_probability"] == pytest.approx(0.95)


# --- resuming --------------------------------------------------------------------------------

def test_a_rerun_skips_complete_scenes_and_redoes_a_corrupted_one(tmp_path: Path, scenes,
                                                                 weights, capsys) -> None:
    out = tmp_path / "job"
    command = ["map", *map(str, scenes), "--weights", str(weights), "--out", str(out), *SMALL]
    assert main(command) == 0
    reference = {s: read(out / "scenes" / s / "mask.tif") for s in "abc"}
    stamps = {s: (out / "scenes" / s / "map.json").stat().st_mtime_ns for s in "abc"}
    mask = out / "scenes" / "b" / "mask.tif"
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])  # cut off
    (out / "landslides.parquet").unlink()
    capsys.readouterr()
    assert main(command) == 0
    assert "1 mapped, 2 complete already" in capsys.readouterr().out
    for s in "ac":
        assert (out / "scenes" / s / "map.json").stat().st_mtime_ns == stamps[s]
    for s in "abc":
        np.testing.assert_array_equal(read(out / "scenes" / s / "mask.tif"), reference[s])
    job = json.loads((out / "job.json").read_text())
    assert [s["kept"] for s in job["scenes"]] == [True, False, True]
    assert (out / "landslides.parquet").is_file()
    # other options: every scene again
    assert main([*command, "--threshold", "0.6"]) == 0
    assert "3 mapped" in capsys.readouterr().out


def test_a_folder_that_is_not_a_job_is_refused(tmp_path: Path, scenes, weights,
                                               capsys) -> None:
    out = tmp_path / "job"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    assert main(["map", *map(str, scenes), "--weights", str(weights), "--out", str(out),
                 *SMALL]) == 2
    one_line_error(capsys, str(out), "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["glob", "list", "channels", "crs", "workers-scheduler"])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, scenes, weights, capsys,
                                                  case: str) -> None:
    out = tmp_path / "job"
    args = [*map(str, scenes)]
    extra: list[str] = []
    if case == "glob":
        args, needle = [str(tmp_path / "none" / "*.tif"), str(scenes[0])], "glob matches no file"
    elif case == "list":
        listing = tmp_path / "list.txt"
        listing.write_text(f"{scenes[0]}\nmissing.tif\n")
        args, needle = [f"@{listing}"], "missing.tif: scene file does not exist (listed in"
    elif case == "channels":
        gray = tmp_path / "gray.tif"
        with rasterio.open(gray, "w", driver="GTiff", width=32, height=32, count=1,
                           dtype="uint8", crs=CRS, transform=Affine(PX, 0, X0, 0, -PX, Y0)) as d:
            d.write(np.full((1, 32, 32), 100, np.uint8))
        args, needle = [*args, str(gray)], "gray.tif"
    elif case == "crs":
        extra, needle = ["--crs", "EPSG:nope"], "--crs"
    else:
        extra, needle = ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers"
    code = main(["map", *args, "--weights", str(weights), "--out", str(out), *SMALL, *extra])
    assert code == 2
    one_line_error(capsys, needle)
    assert not out.exists() or not any(out.rglob("*.tif"))
    assert not (out / "landslides.gpkg").exists()


def test_options_of_several_scenes_refused_with_one(tmp_path: Path, scenes, weights,
                                                    capsys) -> None:
    code = main(["map", str(scenes[0]), "--weights", str(weights), "--out", str(tmp_path / "o"),
                 "--workers", "2", *SMALL])
    assert code == 2
    one_line_error(capsys, "--workers applies to several scenes")


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path, scenes, weights, capsys) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "job"
    started = time.monotonic()
    code = main(["map", *map(str, scenes), "--weights", str(weights), "--out", str(out), *SMALL,
                 "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"])
    assert code == 2
    one_line_error(capsys, "--scheduler", "tcp://127.0.0.1:9", "1 s")
    assert time.monotonic() - started < 30
    assert not any(out.rglob("*.tif")) and not (out / "landslides.gpkg").exists()


# --- Dask ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as c, \
            distributed.Client(c, set_as_default=False) as client:
        yield client


@pytest.mark.slow
def test_workers_equal_one_process_pixel_for_pixel(tmp_path: Path, scenes, weights,
                                                   capsys) -> None:
    pytest.importorskip("distributed")
    single, dask = tmp_path / "single", tmp_path / "dask"
    assert main(["map", *map(str, scenes), "--weights", str(weights), "--out", str(single),
                 *SMALL]) == 0
    assert main(["map", *map(str, scenes), "--weights", str(weights), "--out", str(dask), *SMALL,
                 "--workers", "2"]) == 0
    for s in "abc":
        assert_same_map(dask / "scenes" / s, single / "scenes" / s)
    assert len(layer(dask)) == len(layer(single))
    assert layer(dask).geometry.geom_equals(layer(single).geometry).all()
    assert json.loads((dask / "job.json").read_text())["workers"] == 2


@pytest.mark.slow
def test_a_worker_killed_mid_task_costs_a_retry(tmp_path: Path, scenes, weights,
                                                cluster) -> None:
    options = RegionOptions(str(weights), tile=64, overlap=16)
    single = tmp_path / "single"
    map_region(scenes, options, single)
    out = tmp_path / "dask"
    killed: list[int] = []

    def kill_first_writer() -> None:  # kill -9 the worker writing scene b, mid-task
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for part in (out / "scenes").glob(".b.*.part"):
                pid = int(part.name.split(".")[2])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_first_writer)
    watcher.start()
    job = map_region(scenes, options, out, client=cluster)
    watcher.join()
    assert killed, "no worker was killed"
    assert job["status"] == "complete"
    b = next(e for e in job["scenes"] if e["name"] == "b")
    assert b["status"] == "complete" and not b["worker"].endswith(f":{killed[0]}")
    for s in "abc":
        assert_same_map(out / "scenes" / s, single / "scenes" / s)
    assert not list((out / "scenes").glob(".*"))
    assert len(layer(out)) == len(layer(single))


@pytest.mark.slow
def test_a_large_scene_in_blocks_of_windows_equals_one_process(tmp_path: Path, weights,
                                                               cluster) -> None:
    """Scenes of more windows than block_windows are predicted in blocks of window rows by
    several tasks (halo rows blended as in one pass): the same map, pixel for pixel."""
    image = np.concatenate([region_image(3), region_image(4), region_image(5)], axis=1)
    tall = tmp_path / "tall.tif"
    with rasterio.open(tall, "w", driver="GTiff", width=RW, height=3 * RH, count=3,
                       dtype="uint8", crs=CRS, transform=Affine(PX, 0, X0, 0, -PX, Y0)) as d:
        d.write(image)
    scenes = [tall, write_part(tmp_path / "small.tif", 0, 64)]
    options = RegionOptions(str(weights), tile=64, overlap=16)
    single, dask = tmp_path / "single", tmp_path / "dask"
    map_region(scenes, options, single)
    job = map_region(scenes, options, dask, client=cluster, block_windows=8)
    entry = {e["name"]: e for e in job["scenes"]}
    assert entry["tall"]["blocks"] > 2 and "blocks" not in entry["small"]
    for s in ("tall", "small"):
        assert_same_map(dask / "scenes" / s, single / "scenes" / s)
    assert not list((dask / "scenes").glob(".*"))
