"""Predictor (a loaded model), the scene-prediction core, and map_scene with a loaded model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from conftest import TINY, random_rgb, spread_weights
from scdnn.errors import InputFileNotFoundError, InvalidValueError
from scdnn.inference import landslide_probability
from scdnn.mapping import Tiling, map_scene, open_scene, plan_windows, predict_scene
from scdnn.predictor import Predictor
from scdnn.weights import load_model, read_card

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 100, 140
ROWS, COLS = np.mgrid[0:H, 0:W]
#: valid: columns 30 onwards, less a hole; with Tiling(48, 16) and the stride-16 TINY SCDnn
#: the grid is 3 x 4 windows (offsets 0, 32, 64[, 96]) and those at column 0 hold no valid pixel
VALID = (COLS >= 50) & ~((ROWS >= 50) & (ROWS < 60) & (COLS >= 70) & (COLS < 90))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return spread_weights(tmp_path_factory.mktemp("weights") / "weights.safetensors",
                          random_rgb(64, 64, seed=1), TINY)


@pytest.fixture(scope="module")
def predictor(weights) -> Predictor:
    return Predictor.from_file(weights)


def write_scene(path: Path, valid: np.ndarray = VALID) -> Path:
    """An RGB GeoTIFF with an internal mask band."""
    image = np.moveaxis(random_rgb(*valid.shape, seed=3), -1, 0)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=valid.shape[1],
                           height=valid.shape[0], count=3, dtype="uint8", crs="EPSG:32647",
                           transform=Affine(0.5, 0, 500000, 0, -0.5, 3400000)) as dst:
            dst.write(image)
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    return path


class Counting(torch.nn.Module):
    """A network that records the batch sizes it is given."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.batches = model, []
        self.output_stride = model.output_stride

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.model(x)


# --- Predictor -------------------------------------------------------------------------------

def test_predictor_probability_and_mask_of_an_image(predictor: Predictor, weights: Path) -> None:
    image = random_rgb(37, 53, seed=7)  # sizes that are not multiples of the stride
    probability = predictor.probability(image)
    assert probability.shape == (37, 53) and probability.dtype == np.float32
    assert 0 <= probability.min() and probability.max() <= 1
    assert 0.05 < (probability >= 0.5).mean() < 0.95  # spread weights: both classes
    model, card = load_model(weights)
    np.testing.assert_array_equal(probability,
                                  landslide_probability(model, image, card.normalization))
    mask = predictor.predict(image, threshold=0.3)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask, probability >= 0.3)


def test_predictor_probabilities_of_a_batch(predictor: Predictor) -> None:
    images = [random_rgb(32, 48, seed=s) for s in (1, 2)]
    batch = torch.from_numpy(np.stack([predictor.normalization.apply(i) for i in images]))
    probabilities = predictor.probabilities(batch)
    assert probabilities.shape == (2, 32, 48) and probabilities.dtype == np.float32
    for image, p in zip(images, probabilities, strict=True):
        np.testing.assert_allclose(p, predictor.probability(image), atol=1e-5)
    np.testing.assert_array_equal(predictor.probabilities(batch.numpy()), probabilities)


def test_predictor_describes_its_model(predictor: Predictor, weights: Path) -> None:
    assert predictor.card == read_card(weights)
    assert predictor.in_channels == 3 and predictor.inputs == ["red", "green", "blue"]
    assert predictor.normalization.mean == [128.0] * 3
    assert predictor.output_stride == 16 and predictor.engine == "torch"
    assert predictor.device == torch.device("cpu") and predictor.source == weights
    assert "scdnn" in repr(predictor) and not predictor.model.training


def test_predictor_refuses_images_it_cannot_take(predictor: Predictor) -> None:
    with pytest.raises(InvalidValueError,
                       match=r"^image has 4 band\(s\) but the model takes 3 \(red, green, blue\)"):
        predictor.probability(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(InvalidValueError, match="image has 1 band"):
        predictor.probability(np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidValueError, match="image must be uint8"):
        predictor.probability(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InvalidValueError, match=r"batch must be N x 3 x H x W"):
        predictor.probabilities(torch.zeros(1, 4, 8, 8))
    with pytest.raises(InvalidValueError, match="threshold"):
        predictor.predict(np.zeros((8, 8, 3), np.uint8), threshold=1.0)


def test_predictor_from_file_mistakes(tmp_path: Path, weights: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="weights file does not exist"):
        Predictor.from_file(tmp_path / "nope.safetensors")
    with pytest.raises(InvalidValueError, match="unknown engine 'tensorrt'"):
        Predictor.from_file(weights, engine="tensorrt")
    with pytest.raises(InvalidValueError, match="cannot use device 'nonsense'"):
        Predictor.from_file(weights, device="nonsense")
    with pytest.raises(InvalidValueError, match="card must be a ModelCard"):
        Predictor(torch.nn.Identity(), {"model": "scdnn"})


def test_predictor_of_any_torch_module(weights: Path) -> None:
    net = torch.nn.Conv2d(3, 2, 1).train()
    predictor = Predictor(net, read_card(weights))
    assert not net.training and predictor.output_stride == 1 and predictor.source is None
    assert predictor.probability(random_rgb(5, 6, seed=0)).shape == (5, 6)


# --- the scene-prediction core ---------------------------------------------------------------

def test_predict_scene_yields_every_row_once_top_to_bottom(tmp_path: Path,
                                                           predictor: Predictor) -> None:
    scene = write_scene(tmp_path / "scene.tif")
    with open_scene(scene, 3, predictor.inputs) as sc:
        plan = plan_windows(predictor, sc, Tiling(48, 16, batch_size=2))
        assert plan.align == 16 and plan.window_shape == (48, 48)
        assert all(int(w.row_off) % 16 == 0 and int(w.col_off) % 16 == 0 for w in plan.grid)
        assert (plan.total, plan.run, plan.skipped) == (12, 9, 3)
        assert plan.counts() == {"total": 12, "run": 9, "skipped_no_valid_pixel": 3}
        rows = list(predict_scene(predictor, sc, plan))
    firsts = [row0 for row0, _, _ in rows]
    assert firsts[0] == 0 and firsts == sorted(firsts)
    assert all(a + len(p) == b for (a, p, _), b in zip(rows[:-1], firsts[1:], strict=True))
    probability = np.concatenate([p for _, p, _ in rows])
    valid = np.concatenate([v for _, _, v in rows])
    assert probability.shape == (H, W) and probability.dtype == np.float32
    np.testing.assert_array_equal(valid, VALID)
    np.testing.assert_array_equal(np.isnan(probability), ~VALID)  # NaN exactly outside
    assert 0 <= np.nanmin(probability) and np.nanmax(probability) <= 1


def test_predict_scene_batches_only_windows_with_valid_pixels(tmp_path: Path,
                                                              weights: Path) -> None:
    model, card = load_model(weights)
    counting = Counting(model)
    predictor = Predictor(counting, card)
    scene = write_scene(tmp_path / "scene.tif")
    with open_scene(scene, 3, predictor.inputs) as sc:
        rows = list(predict_scene(predictor, sc, Tiling(48, 16, batch_size=4)))
    assert counting.batches == [4, 4, 1]  # 9 of 12 windows
    reference = Predictor.from_file(weights)
    with open_scene(scene, 3, predictor.inputs) as sc:  # batching changes nothing
        one_by_one = list(predict_scene(reference, sc, Tiling(48, 16, batch_size=1)))
    assert len(rows) == len(one_by_one)
    for (_, a, _), (_, b, _) in zip(rows, one_by_one, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_scene_without_valid_data_runs_no_window(tmp_path: Path, weights: Path) -> None:
    model, card = load_model(weights)
    counting = Counting(model)
    predictor = Predictor(counting, card)
    scene = write_scene(tmp_path / "empty.tif", np.zeros((H, W), bool))
    with open_scene(scene, 3, predictor.inputs) as sc:
        plan = plan_windows(predictor, sc, Tiling(48, 16))
        assert (plan.run, plan.skipped) == (0, plan.total) and plan.total > 0
        rows = list(predict_scene(predictor, sc, plan))
    assert counting.batches == []
    assert sum(len(p) for _, p, _ in rows) == H
    assert all(np.isnan(p).all() and not v.any() for _, p, v in rows)
    with pytest.raises(InvalidValueError, match="no valid pixel"):
        map_scene(scene, predictor, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tiling_refuses_values_that_cannot_make_a_grid() -> None:
    assert Tiling(64.0, 16, 2) == Tiling(64, 16, 2)
    with pytest.raises(InvalidValueError, match="^tile must be a positive"):
        Tiling(0, 0)
    with pytest.raises(InvalidValueError, match="^overlap must be"):
        Tiling(64, -1)
    with pytest.raises(InvalidValueError, match="^tile 64 is smaller than twice overlap 40"):
        Tiling(64, 40)
    with pytest.raises(InvalidValueError, match="^batch_size must be a positive integer"):
        Tiling(64, 16, 0)
    with pytest.raises(InvalidValueError) as error:
        Tiling(64, 40)
    assert error.value.cli_message().startswith("--tile 64 is smaller than twice --overlap 40")


# --- map_scene with a loaded model ----------------------------------------------------------

def test_map_scene_with_a_predictor_equals_map_scene_with_the_path(tmp_path: Path,
                                                                   weights: Path) -> None:
    scene = write_scene(tmp_path / "scene.tif")
    tiling = Tiling(48, 16, batch_size=3)
    by_path = map_scene(scene, weights, tmp_path / "path", tiling=tiling)
    loaded = map_scene(scene, Predictor.from_file(weights), tmp_path / "loaded", tiling=tiling)
    for name in ("probability.tif", "mask.tif"):
        with rasterio.open(tmp_path / "path" / name) as a, \
                rasterio.open(tmp_path / "loaded" / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    by_path.pop("provenance"), loaded.pop("provenance")
    assert by_path == loaded
    assert (loaded["weights"], loaded["engine"]) == (str(weights), "torch")
    assert (loaded["tile"], loaded["overlap"], loaded["batch_size"]) == (48, 16, 3)
    assert loaded["windows"] == {"total": 12, "run": 9, "skipped_no_valid_pixel": 3}
    on_disk = json.loads((tmp_path / "loaded" / "map.json").read_text())
    assert on_disk["windows"] == loaded["windows"]
