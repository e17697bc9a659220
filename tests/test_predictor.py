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
        assert plan.counts() == {"total": 12, "run": 9, "skipped_no_valid_pixel": 3,
                                  "masks_read": 12}
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
    assert loaded["windows"] == {"total": 12, "run": 9, "skipped_no_valid_pixel": 3,
                                  "masks_read": 12}
    on_disk = json.loads((tmp_path / "loaded" / "map.json").read_text())
    assert on_disk["windows"] == loaded["windows"]


# --- test-time augmentation ------------------------------------------------------------------

class Ramp(torch.nn.Module):
    """A hand-made network that is not flip-equivariant: landslide logit ``band 0 + c * column
    + r * row``, row and column counted in the frame it is given; background logit 0. So its
    landslide probability is ``sigmoid(band 0 + c * column + r * row)``."""

    output_stride = 1

    def __init__(self, c: float, r: float):
        super().__init__()
        self.c, self.r = c, r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        logit = (x[:, 0] + self.c * torch.arange(w, dtype=x.dtype)
                 + self.r * torch.arange(h, dtype=x.dtype)[:, None])
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


def _ramp_predictor(tta: str, c: float, r: float) -> Predictor:
    from scdnn.records import ModelCard, Normalization

    card = ModelCard(model="ramp", in_channels=1, normalization=Normalization([0.0], [1.0]))
    return Predictor(Ramp(c, r), card, tta=tta)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def test_tta_flips_averages_the_flipped_predictions_turned_back() -> None:
    h, w = 3, 5
    x = np.random.default_rng(0).normal(size=(2, 1, h, w)).astype(np.float32)
    i, j = np.mgrid[0:h, 0:w]
    c, r = 0.7, -0.4
    # identity; left-right: the network saw column w-1-j; upside down: row h-1-i
    expected = (_sigmoid(x[:, 0] + c * j + r * i) + _sigmoid(x[:, 0] + c * (w - 1 - j) + r * i)
                + _sigmoid(x[:, 0] + c * j + r * (h - 1 - i))) / 3
    got = _ramp_predictor("flips", c, r).probabilities(x)
    assert got.shape == (2, h, w)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    none = _ramp_predictor("none", c, r).probabilities(x)
    np.testing.assert_allclose(none, _sigmoid(x[:, 0] + c * j + r * i), rtol=1e-6, atol=1e-7)
    assert np.abs(got - none).max() > 0.1  # the network is not flip-equivariant


def test_tta_d4_averages_the_eight_transforms_turned_back() -> None:
    # a column ramp: across the 8 rotations and reflections, the column the network sees at
    # pixel (i, j) is j, w-1-j, i and h-1-i, twice each (on a non-square image too)
    h, w = 4, 6
    x = np.zeros((1, 1, h, w), np.float32)
    i, j = np.mgrid[0:h, 0:w]
    c = 0.5
    expected = (_sigmoid(c * j) + _sigmoid(c * (w - 1 - j)) + _sigmoid(c * i)
                + _sigmoid(c * (h - 1 - i))) / 4
    got = _ramp_predictor("d4", c, 0.0).probabilities(x)
    np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-7)


def test_tta_none_is_the_plain_forward_pass_exactly(weights: Path) -> None:
    from scdnn.predictor import landslide_softmax

    model, card = load_model(weights)
    image = random_rgb(37, 53, seed=7)
    x = torch.from_numpy(card.normalization.apply(image))[None]
    with torch.inference_mode():
        today = torch.softmax(model(x).float(), dim=1)[:, 1].numpy()  # the code before tta
    assert np.array_equal(Predictor(model, card).probabilities(x), today)
    assert np.array_equal(Predictor(model, card, tta="none").probability(image), today[0])
    assert np.array_equal(landslide_softmax(model, x, "none"), today)
    assert np.array_equal(landslide_probability(model, image, card.normalization), today[0])
    flips = Predictor(model, card, tta="flips")
    assert flips.tta == "flips" and "tta='flips'" in repr(flips)
    assert not np.array_equal(flips.probabilities(x), today)


def test_tta_unknown_mode_is_refused(weights: Path) -> None:
    with pytest.raises(InvalidValueError, match="unknown test-time augmentation 'd8'"):
        Predictor.from_file(weights, tta="d8")


def test_map_scene_with_tta_same_windows_recorded_in_map_json(tmp_path: Path,
                                                               weights: Path) -> None:
    from scdnn.records import MapRecord

    scene = write_scene(tmp_path / "scene.tif")
    tiling = Tiling(48, 16, batch_size=2)
    model, card = load_model(weights)
    counting = Counting(model)
    plain = map_scene(scene, Predictor(counting, card), tmp_path / "none", tiling=tiling)
    shapes = list(counting.batches)
    counting.batches.clear()
    augmented = map_scene(scene, Predictor(counting, card, tta="d4"), tmp_path / "d4",
                          tiling=tiling)
    assert counting.batches == [n for n in shapes for _ in range(8)]  # 8 passes per batch
    assert plain["windows"] == augmented["windows"] == {"total": 12, "run": 9,
                                                        "skipped_no_valid_pixel": 3,
                                  "masks_read": 12}
    assert (plain["tta"], augmented["tta"]) == ("none", "d4")
    on_disk = json.loads((tmp_path / "d4" / "map.json").read_text())
    assert on_disk["tta"] == "d4" and list(on_disk).index("tta") == list(on_disk).index(
        "engine") + 1
    with rasterio.open(tmp_path / "none" / "probability.tif") as a, \
            rasterio.open(tmp_path / "d4" / "probability.tif") as b:
        assert a.shape == b.shape and not np.array_equal(a.read(), b.read())
    # a map.json written before tta was recorded reads as "none" and is written back unchanged
    old = {k: v for k, v in json.loads((tmp_path / "none" / "map.json").read_text()).items()
           if k != "tta"}
    record = MapRecord.from_dict(old)
    assert record.tta == "none" and record.to_dict() == old
