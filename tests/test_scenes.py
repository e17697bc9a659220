"""Georeferenced scenes: terrain channels, DSM on the image grid, scene training and scoring.

Every scene here is a tiny GeoTIFF folder written into ``tmp_path`` (CRS, internal mask band,
non-square pixels, a DSM with a nodata value).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from rasterio.windows import Window

from conftest import one_line_error, stripe_mask, write_stripe_scene
from scdnn.cli import main
from scdnn.datasets import Normalization
from scdnn.datasets.scene import open_scene
from scdnn.datasets.scenes import (
    RandomWindowSampler,
    SceneCollection,
    SceneWindowDataset,
    find_scenes,
    make_scene_split,
    scene_normalization,
)
from scdnn.datasets.terrain import (
    RELATIVE_ELEVATION_RANGE_M,
    halo_pixels,
    relative_elevation,
    slope_degrees,
    terrain_channels,
)
from scdnn.metrics import Evaluator
from scdnn.metrics.boundary import boundary_counts, boundary_counts_in_strips
from scdnn.models import create_model
from scdnn.records import ModelCard
from scdnn.weights import save_weights

H, W = 96, 120
PX, PY = 0.5, 0.7  # non-square pixels
TRANSFORM = Affine(PX, 0.0, 500000.0, 0.0, -PY, 3400000.0)
CRS = "EPSG:32647"
ROWS, COLS = np.mgrid[0:H, 0:W]
VALID = COLS >= 20  # the first 20 columns are outside the survey
LANDSLIDE = ((ROWS - 48) ** 2 / 20 ** 2 + (COLS - 70) ** 2 / 25 ** 2) < 1
TERRAIN = ["red", "green", "blue", "slope", "relative_elevation"]


def write_scene_folder(root: Path, label: np.ndarray | None = None, dsm: bool = True,
                       label_transform: Affine = TRANSFORM) -> Path:
    """rgb.tif (mask band), mask.tif (0/1/255), dsm.tif (float32, nodata -9999)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    image = np.clip(100 + 60 * LANDSLIDE[None] + rng.normal(0, 10, (3, H, W)), 1, 255)
    grid = dict(driver="GTiff", width=W, height=H, crs=CRS, transform=TRANSFORM)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(root / "rgb.tif", "w", count=3, dtype="uint8", **grid) as dst:
            dst.write(image.astype(np.uint8))
            dst.write_mask(np.where(VALID, 255, 0).astype(np.uint8))
    if label is None:
        label = np.where(VALID, LANDSLIDE, 255).astype(np.uint8)
    with rasterio.open(root / "mask.tif", "w", count=1, dtype="uint8", nodata=255,
                       **{**grid, "transform": label_transform}) as dst:
        dst.write(label, 1)
    if dsm:
        z = 1000.0 + 0.3 * COLS * PX - 4.0 * LANDSLIDE
        with rasterio.open(root / "dsm.tif", "w", count=1, dtype="float32", nodata=-9999,
                           **grid) as dst:
            dst.write(np.where(COLS >= 10, z, -9999).astype(np.float32), 1)
    return root


def tiny_weights(path: Path, inputs: list[str]) -> Path:
    torch.manual_seed(0)
    model = create_model("scdnn", in_channels=len(inputs))
    card = {"model": "scdnn", "in_channels": len(inputs), "num_classes": 2, "model_kwargs": {},
            "classes": ["background", "landslide"], "inputs": inputs,
            "normalization": Normalization([120.0] * len(inputs),
                                           [50.0] * len(inputs)).to_dict()}
    save_weights(model, path, ModelCard.from_dict(card))
    return path



# --- terrain channels (hand-computed cases) ---------------------------------------------

def test_slope_of_a_tilted_plane() -> None:
    # z rises 0.5 m per metre eastward: slope atan(0.5) = 26.565°, on any pixel size
    rows, cols = np.mgrid[0:8, 0:9]
    z = 0.5 * cols * 2.0  # 2 m pixels
    slope = slope_degrees(z, np.ones_like(z, bool), (2.0, 3.0))
    assert np.allclose(slope, np.degrees(np.arctan(0.5)))
    channels = terrain_channels(z, np.ones_like(z, bool), (2.0, 3.0))
    assert (channels[..., 0] == round(26.565 / 90 * 255)).all()  # 75


def test_relative_elevation_of_a_pit() -> None:
    # a flat field with one pixel 9 m lower; the 25 m box at 5 m pixels is 5 x 5 pixels
    z = np.full((11, 11), 100.0)
    z[5, 5] = 91.0
    rel = relative_elevation(z, np.ones_like(z, bool), (5.0, 5.0))
    assert rel[5, 5] == pytest.approx(-9.0 + 9.0 / 25)  # below the box mean by 8.64 m
    assert rel[5, 7] == pytest.approx(9.0 / 25)  # neighbours sit above the mean
    assert rel[0, 0] == pytest.approx(0.0)
    channels = terrain_channels(z, np.ones_like(z, bool), (5.0, 5.0))
    r = RELATIVE_ELEVATION_RANGE_M
    assert channels[5, 5, 1] == round((-8.64 + r) / (2 * r) * 255)  # 17
    assert channels[0, 0, 1] == 128  # level with its surroundings


def test_missing_heights_are_left_out_of_the_local_mean() -> None:
    z = np.full((9, 9), 50.0)
    valid = np.ones_like(z, bool)
    z[4, 4], valid[4, 4] = -9999.0, False
    rel = relative_elevation(z, valid, (5.0, 5.0))
    assert np.allclose(rel[valid], 0.0)
    assert np.allclose(slope_degrees(z, valid, (5.0, 5.0)), 0.0)


def test_windows_read_with_halo_equal_the_whole_scene(tmp_path: Path) -> None:
    root = write_scene_folder(tmp_path / "s")
    with open_scene(root / "rgb.tif", 5, TERRAIN, dsm=root / "dsm.tif") as scene:
        whole = scene.read(Window(0, 0, W, H))
        assert halo_pixels(scene.dataset.res) < 40
        for r, c in [(0, 0), (30, 50), (64, 88)]:
            part = scene.read(Window(c, r, 32, 32))
            assert np.array_equal(part, whole[r:r + 32, c:c + 32])
        valid = scene.valid_mask(Window(0, 0, W, H))
    # valid = image mask (cols >= 20) and DSM heights (cols >= 10)
    assert np.array_equal(valid, VALID)


def test_dsm_on_another_grid_is_resampled_onto_the_scene(tmp_path: Path) -> None:
    root = write_scene_folder(tmp_path / "s")
    coarse = tmp_path / "coarse.tif"  # the same surface at 4x coarser pixels
    z = 1000.0 + 0.3 * (np.arange(W // 4) * 4 + 1.5)[None].repeat(H // 4, 0) * PX
    with rasterio.open(coarse, "w", driver="GTiff", width=W // 4, height=H // 4, count=1,
                       dtype="float32", crs=CRS,
                       transform=TRANSFORM @ Affine.scale(4)) as dst:
        dst.write(z.astype(np.float32), 1)
    with open_scene(root / "rgb.tif", 5, TERRAIN, dsm=coarse) as scene:
        x = scene.read(Window(40, 20, 40, 40))
    # a plane of 0.3 m/m: slope atan(0.3) = 16.7° -> 47, whatever the grid it came on
    assert abs(int(np.median(x[..., 3])) - round(np.degrees(np.arctan(0.3)) / 90 * 255)) <= 1


# --- map with a DSM: bad inputs ---------------------------------------------------------

@pytest.mark.slow
def test_map_with_dsm_model(tmp_path: Path, capsys) -> None:
    root = write_scene_folder(tmp_path / "s")
    weights = tiny_weights(tmp_path / "w.safetensors", TERRAIN)
    out = tmp_path / "map"
    assert main(["map", str(root / "rgb.tif"), "--dsm", str(root / "dsm.tif"), "--weights",
                 str(weights), "--out", str(out), "--tile", "64", "--overlap", "16"]) == 0
    summary = json.loads((out / "map.json").read_text())
    assert summary["inputs"] == TERRAIN and summary["dsm"].endswith("dsm.tif")
    assert summary["valid_pixels"] == int(VALID.sum())


def test_map_refuses_a_dsm_model_without_dsm(tmp_path: Path, capsys) -> None:
    root = write_scene_folder(tmp_path / "s")
    weights = tiny_weights(tmp_path / "w.safetensors", TERRAIN)
    code = main(["map", str(root / "rgb.tif"), "--weights", str(weights), "--out",
                 str(tmp_path / "o")])
    one_line_error(code, capsys, "rgb.tif", "--dsm")
    assert not (tmp_path / "o").exists()


def test_a_dsm_that_is_all_no_data_is_blamed_not_the_scene(tmp_path: Path, capsys) -> None:
    """It was reported as "scene has no valid pixel", naming the scene."""
    root = write_scene_folder(tmp_path / "s")
    with rasterio.open(root / "dsm.tif", "r+") as dst:
        dst.write(np.full((H, W), -9999, np.float32), 1)
    weights = tiny_weights(tmp_path / "w.safetensors", TERRAIN)
    code = main(["map", str(root / "rgb.tif"), "--dsm", str(root / "dsm.tif"), "--weights",
                 str(weights), "--out", str(tmp_path / "o")])
    one_line_error(code, capsys, "dsm.tif", "DSM has no height")
    assert not (tmp_path / "o").exists()


def test_map_refuses_a_dsm_for_an_rgb_model(tmp_path: Path, capsys) -> None:
    root = write_scene_folder(tmp_path / "s")
    weights = tiny_weights(tmp_path / "w.safetensors", ["red", "green", "blue"])
    code = main(["map", str(root / "rgb.tif"), "--dsm", str(root / "dsm.tif"), "--weights",
                 str(weights), "--out", str(tmp_path / "o")])
    one_line_error(code, capsys, "dsm.tif", "without elevation")


def test_map_refuses_a_dsm_that_does_not_overlap(tmp_path: Path, capsys) -> None:
    root = write_scene_folder(tmp_path / "s")
    far = tmp_path / "far.tif"
    with rasterio.open(far, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs=CRS, transform=Affine(1, 0, 600000.0, 0, -1, 3500000.0)) as dst:
        dst.write(np.zeros((1, 10, 10), np.float32))
    weights = tiny_weights(tmp_path / "w.safetensors", TERRAIN)
    code = main(["map", str(root / "rgb.tif"), "--dsm", str(far), "--weights", str(weights),
                 "--out", str(tmp_path / "o")])
    one_line_error(code, capsys, "far.tif", "does not overlap")
    assert not (tmp_path / "o").exists()


def test_map_refuses_weights_whose_in_channels_do_not_match(tmp_path: Path, capsys) -> None:
    root = write_scene_folder(tmp_path / "s")
    weights = tiny_weights(tmp_path / "w.safetensors", ["b1", "b2", "b3", "b4"])
    code = main(["map", str(root / "rgb.tif"), "--weights", str(weights), "--out",
                 str(tmp_path / "o")])
    one_line_error(code, capsys, "rgb.tif", "3 bands", "takes 4")


# --- scene datasets: split, sampler ------------------------------------------------------

def test_scene_split_and_windows_never_touch_validation_blocks(tmp_path: Path) -> None:
    write_scene_folder(tmp_path / "data" / "scene-a")
    write_scene_folder(tmp_path / "data" / "scene-b")
    collection = SceneCollection(tmp_path / "data")
    assert [s.name for s in find_scenes(tmp_path / "data")] == ["scene-a", "scene-b"]
    split = make_scene_split(collection, ["scene-b"], val_fraction=0.25, block_size=32, seed=3)
    assert split["train"] == ["scene-a"] and split["test"] == ["scene-b"]
    blocks = split["val_blocks"]["scene-a"]
    assert blocks and split == make_scene_split(collection, ["scene-b"], 0.25, 32, 3)
    held = np.zeros((H, W), bool)
    for r, c, h, w in blocks:
        held[r:r + h, c:c + w] = True
    share = (held & VALID).sum() / VALID.sum()
    assert 0.25 <= share < 0.25 + 32 * 32 / VALID.sum() + 1e-9
    sampler = RandomWindowSampler(collection, split, size=24, length=200, seed=0)
    windows = list(sampler)
    assert len(windows) == 200 and windows != list(sampler)  # each epoch draws new windows
    assert windows == list(RandomWindowSampler(collection, split, 24, 200, seed=0))
    for name, r, c, s in windows:
        assert name == "scene-a"
        assert not held[r:r + s, c:c + s].any()
        assert VALID[r:r + s, c:c + s].any()
    norm = scene_normalization(collection, sampler, windows=4)
    assert norm.channels == 3


def test_windows_too_large_to_fit_between_blocks_hide_the_validation_labels(tmp_path: Path
                                                                            ) -> None:
    """A window wider than the gaps between validation blocks still trains, on every label but
    the blocks' (255 there), which it never sees; the normalisation leaves them out too."""
    write_scene_folder(tmp_path / "data" / "scene-a")
    write_scene_folder(tmp_path / "data" / "scene-b")
    collection = SceneCollection(tmp_path / "data")
    split = make_scene_split(collection, ["scene-b"], val_fraction=0.25, block_size=16, seed=3)
    held = np.zeros((H, W), bool)
    for r, c, h, w in split["val_blocks"]["scene-a"]:
        held[r:r + h, c:c + w] = True
    size = min(H, W)  # overlaps a block wherever it goes
    sampler = RandomWindowSampler(collection, split, size=size, length=6, seed=0)
    data = SceneWindowDataset(collection, Normalization([0.0] * 3, [1.0] * 3), sampler=sampler)
    plain = SceneWindowDataset(collection, Normalization([0.0] * 3, [1.0] * 3))
    for name, r, c, s in sampler:
        assert held[r:r + s, c:c + s].any()
        mask = data[(name, r, c, s)]["mask"].numpy()
        seen = plain[(name, r, c, s)]["mask"].numpy()
        inside = held[r:r + mask.shape[0], c:c + mask.shape[1]]
        assert (mask[inside] == 255).all()  # validation labels hidden
        np.testing.assert_array_equal(mask[~inside], seen[~inside])  # the rest as read
        assert (seen[inside] != 255).any()  # (there were labels to hide)
    assert scene_normalization(collection, sampler, windows=4).channels == 3


def test_label_on_another_grid_is_refused(tmp_path: Path, capsys) -> None:
    write_scene_folder(tmp_path / "s", label_transform=TRANSFORM @ Affine.translation(3, 0))
    code = main(["train", str(tmp_path / "s"), "--out", str(tmp_path / "run")])
    one_line_error(code, capsys, "mask.tif", "another grid")
    assert not (tmp_path / "run").exists()


def test_non_binary_label_is_refused(tmp_path: Path, capsys) -> None:
    label = np.where(VALID, LANDSLIDE * 2, 255).astype(np.uint8)  # 0/2 instead of 0/1
    write_scene_folder(tmp_path / "s", label=label)
    code = main(["train", str(tmp_path / "s"), "--out", str(tmp_path / "run")])
    one_line_error(code, capsys, "mask.tif", "not binary")


def test_use_dsm_without_dsm_is_refused(tmp_path: Path, capsys) -> None:
    write_scene_folder(tmp_path / "s", dsm=False)
    code = main(["train", str(tmp_path / "s"), "--out", str(tmp_path / "run"), "--use-dsm"])
    one_line_error(code, capsys, "dsm.tif")


# --- scene training and scoring, end to end ----------------------------------------------

@pytest.fixture(scope="module")
def scene_run(tmp_path_factory) -> tuple[Path, Path]:
    data = tmp_path_factory.mktemp("scenes") / "data"
    write_scene_folder(data / "scene-a")
    write_scene_folder(data / "scene-b")
    run = data.parent / "run"
    code = main(["train", str(data), "--out", str(run), "--test-scenes", "scene-b",
                 "--use-dsm", "--epochs", "1", "--windows-per-epoch", "4", "--batch-size", "2",
                 "--image-size", "32", "--val-block", "32", "--val-fraction", "0.2"])
    assert code == 0
    return data, run


@pytest.mark.slow
def test_scene_training_records_inputs_and_split(scene_run) -> None:
    _, run = scene_run
    card = json.loads((run / "model.json").read_text())
    assert card["inputs"] == TERRAIN and card["in_channels"] == 5
    assert card["split"]["test"] == ["scene-b"] and card["split"]["val_blocks"]["scene-a"]
    assert card["config"]["windows_per_epoch"] == 4 and card["config"]["use_dsm"] is True
    # chosen on the held-out validation windows of scene-a, which hold part of its landslide
    assert card["mapping_unit"]["chosen_on"] == "validation"


@pytest.mark.slow
def test_scene_evaluation_scores_every_valid_pixel(scene_run, tmp_path: Path, capsys) -> None:
    data, run = scene_run
    out = tmp_path / "eval"
    assert main(["evaluate", str(data), "--weights", str(run / "weights.safetensors"),
                 "--out", str(out), "--tile", "64", "--overlap", "16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"]["scenes"] == ["scene-b"]  # the model's own test scene
    # cleaned with the model's own mapping unit, in m² at the scene's pixel size
    unit = json.loads((run / "model.json").read_text())["mapping_unit"]["area_px"]
    assert metrics["cleaning"]["model_unit"] == unit
    assert metrics["cleaning"]["min_area"] == pytest.approx(unit * PX * PY)
    assert metrics["confusion"] is not None
    assert sum(map(sum, metrics["confusion"])) == int(VALID.sum())
    # 2 px times the side of a square of the pixel's area
    assert metrics["boundary_tolerance_m"] == pytest.approx(2 * math.sqrt(PX * PY))
    with rasterio.open(out / "masks" / "scene-b.tif") as src:
        assert src.crs.to_string() == CRS and src.transform == TRANSFORM
        mask = src.read(1)
    assert (mask[~VALID] == 255).all() and np.isin(mask[VALID], (0, 1)).all()
    assert "2 px = 1.18 m" in capsys.readouterr().out


def test_scene_evaluation_of_a_perfect_prediction(tmp_path: Path) -> None:
    root = write_scene_folder(tmp_path / "s", dsm=False)
    out = tmp_path / "eval"
    assert main(["evaluate", str(root), "--predictions", str(root / "mask.tif"),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(1.0)
    assert metrics["boundary_f1"] == pytest.approx(1.0)


def test_scene_evaluation_refuses_a_prediction_on_another_grid(tmp_path: Path, capsys) -> None:
    root = write_scene_folder(tmp_path / "s", dsm=False)
    other = tmp_path / "other.tif"
    with rasterio.open(other, "w", driver="GTiff", width=W - 1, height=H, count=1,
                       dtype="uint8", crs=CRS, transform=TRANSFORM) as dst:
        dst.write(np.zeros((1, H, W - 1), np.uint8))
    code = main(["evaluate", str(root), "--predictions", str(other), "--out",
                 str(tmp_path / "e")])
    one_line_error(code, capsys, "other.tif", "another grid")


# --- boundary F1 at ground tolerances (metres) ------------------------------------------

def test_boundary_f1_in_metres_uses_each_scenes_own_pixel_size(tmp_path: Path,
                                                                monkeypatch) -> None:
    """Three scenes in one evaluation: at 0.5 m pixels the predicted edge is 2 px (1 m) off,
    at 2 m pixels 1 px (2 m) off, and a scene in EPSG:4326 (degrees) is predicted exactly.
    Each metre tolerance is converted with its scene's pixel size, so an edge is matched
    from the tolerance equal to its offset on the ground, not below it; the scene in degrees
    adds nothing to the metre scores."""
    from scdnn.evaluation import evaluate

    data = tmp_path / "data"
    write_stripe_scene(data / "fine", 30, 40, edge=20, px=0.5)
    write_stripe_scene(data / "coarse", 10, 40, edge=20, px=2.0)
    write_stripe_scene(data / "geographic", 6, 40, edge=20, px=1e-5, crs="EPSG:4326")
    predicted_edge = {"fine": 22, "coarse": 21, "geographic": 20}

    def predict(model, card, scene, *args, **kwargs) -> np.ndarray:
        path = stripe_mask(tmp_path / f"pred-{scene.name}.tif", data / scene.name,
                           predicted_edge[scene.name])
        with rasterio.open(path) as src:
            return src.read(1)

    monkeypatch.setattr("scdnn.mapping.score.predict_scene_mask", predict)
    weights = tiny_weights(tmp_path / "w.safetensors", ["red", "green", "blue"])
    metrics = evaluate(data, tmp_path / "eval", weights=str(weights))
    assert metrics["images"] == 3 and metrics["boundary_images_m"] == 2
    at_m = metrics["boundary_f1_at_m"]
    assert sorted(at_m, key=float) == ["0.5", "1", "2", "4"]
    # 0.5 m = 1 px (fine) and 0.25 px (coarse): neither edge is matched
    assert at_m["0.5"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # 1 m = 2 px (fine: matched, 30 rows) and 0.5 px (coarse: not, 10 rows)
    assert at_m["1"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75}
    assert at_m["2"] == at_m["4"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert metrics["boundary_counts_at_m"]["1"] == {"pred_boundary": 40, "pred_matched": 30,
                                                    "true_boundary": 40, "true_matched": 30}
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["boundary_f1_at_m"] == at_m
    # the pixel scores take every scene: at 1 px the coarse and geographic edges match
    assert metrics["boundary_f1_at"]["1"]["f1"] == pytest.approx(16 / 46)


def test_a_scene_in_degrees_gets_no_metre_scores(tmp_path: Path, capsys) -> None:
    root = write_stripe_scene(tmp_path / "s", 12, 30, edge=15, px=1e-5, crs="EPSG:4326")
    pred = stripe_mask(tmp_path / "pred.tif", root, 17)
    assert main(["evaluate", str(root), "--predictions", str(pred),
                 "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "boundary_f1_at_m" in metrics and metrics["boundary_f1_at_m"] is None
    assert metrics["boundary_counts_at_m"] is None and metrics["boundary_images_m"] == 0
    assert metrics["boundary_f1_at"]["2"]["f1"] == 1.0  # pixel scores as ever
    out = capsys.readouterr().out
    assert "8 px" in out and "0.5 m" not in out and "4 m" not in out


# --- strip-wise scoring equals whole-image scoring ---------------------------------------

def test_scene_scores_in_strips_equal_whole_image_scores() -> None:
    rng = np.random.default_rng(0)
    from scipy import ndimage

    pred = (ndimage.uniform_filter(rng.random((130, 90)), 9) > 0.5).astype(np.uint8)
    target = (ndimage.uniform_filter(rng.random((130, 90)), 9) > 0.5).astype(np.uint8)
    target[:10, :10] = 255
    valid = rng.random((130, 90)) > 0.1
    assert boundary_counts_in_strips(pred, target, 3, valid, strip_rows=17) == \
        boundary_counts(pred, target, 3, valid)
    whole, strips = Evaluator(3), Evaluator(3)
    assert whole.update(pred, target, "x", valid) == strips.update_scene(pred, target, "x",
                                                                        valid, strip_rows=23)
    a, b = whole.compute(), strips.compute()
    assert a["confusion"] == b["confusion"]
    assert a["boundary_f1"] == b["boundary_f1"]
