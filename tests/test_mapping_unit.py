"""The minimum mapping unit a model carries: chosen on validation, recorded on the card, the
default of outline cleaning wherever the model's masks are cleaned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scdnn.errors import InvalidValueError
from scdnn.outlines import OutlineCleaning, cleaning_record, model_cleaning
from scdnn.records import MappingUnit, ModelCard, Normalization
from scdnn.trainers.mapping_unit import best_unit, choose_mapping_unit, score_mapping_units


def squares(size: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Truth: one 20 x 20 landslide. Prediction: it, a 5 x 5 speck and a 12 x 12 blob.

    Cleaned (default smoothing, 2 px), the speck keeps < 100 px, the blob 100-200 px, the
    landslide 200-1000 px, so with units 100, 200, 1000: the predicted objects are 2, 1, 0;
    object F1 = 2 * 0.5 * 1 / 1.5 = 0.667, 1, 0."""
    truth = np.zeros((size, size), np.uint8)
    truth[10:30, 10:30] = 1
    pred = truth.copy()
    pred[50:55, 10:15] = 1
    pred[50:62, 40:52] = 1
    return pred, truth


def test_the_unit_that_keeps_the_landslide_and_drops_the_specks_is_chosen():
    scores = score_mapping_units([squares()], units=(100, 200, 1000))
    assert scores[100]["object_f1"] == pytest.approx(2 / 3)
    assert scores[200]["object_f1"] == 1.0
    assert scores[1000]["object_f1"] == 0.0
    assert scores[200]["miou"] > scores[1000]["miou"]
    assert best_unit(scores) == 200


def test_ties_go_to_the_better_miou_then_the_smaller_unit():
    assert best_unit({100: {"object_f1": 0.5, "miou": 0.8},
                      400: {"object_f1": 0.5, "miou": 0.8}}) == 100
    assert best_unit({100: {"object_f1": 0.5, "miou": 0.7},
                      400: {"object_f1": 0.5, "miou": 0.8}}) == 400


def test_no_data_is_not_scored_and_no_landslide_means_no_choice():
    pred, truth = squares()
    truth[45:70, 0:70] = 255  # the speck and the blob lie in no data
    scores = score_mapping_units([(pred, truth)], units=(100, 200, 1000))
    assert scores[100]["object_f1"] == scores[200]["object_f1"] == 1.0
    assert best_unit(scores) == 100
    empty = np.zeros_like(truth)
    assert score_mapping_units([(pred, empty)], units=(100, 200)) is None


class Fixed(torch.nn.Module):
    """A 'network' that returns the logits of a given mask, whatever it is shown."""

    def __init__(self, mask: np.ndarray) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("mask", torch.from_numpy(mask).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask.expand(x.shape[0], *self.mask.shape)
        return torch.stack([1 - m, m], 1) + self.bias


def test_choose_mapping_unit_predicts_the_validation_batches_once_and_records_the_scores():
    pred, truth = squares()
    model = Fixed(pred).train()
    loader = [{"image": torch.zeros(1, 3, *pred.shape), "mask": torch.from_numpy(truth)[None]}]
    unit = choose_mapping_unit(model, loader, units=(100, 200, 1000))
    assert unit.area_px == 200.0 and unit.chosen_on == "validation"
    assert set(unit.scores) == {"100", "200", "1000"}
    assert unit.scores["200"]["object_f1"] == 1.0
    assert model.training  # given back as it came
    assert choose_mapping_unit(model, None) is None


def card(unit: MappingUnit | None = None) -> ModelCard:
    return ModelCard(model="scdnn", in_channels=3, mapping_unit=unit,
                     normalization=Normalization(mean=[0.0] * 3, std=[1.0] * 3))


def test_the_card_keeps_its_unit_and_refuses_a_bad_one(tmp_path):
    unit = MappingUnit(area_px=2000, scores={"2000": {"object_f1": 0.5, "miou": 0.7}})
    data = card(unit).to_dict()
    assert data["mapping_unit"]["area_px"] == 2000.0
    assert ModelCard.from_dict(json.loads(json.dumps(data))).mapping_unit == unit
    assert "mapping_unit" not in card().to_dict()  # a card without one says nothing
    for bad in (-1, "big", None, float("nan")):
        data["mapping_unit"] = {"area_px": bad}
        with pytest.raises(InvalidValueError, match="mapping unit|area_px") as info:
            ModelCard.from_dict(data, source=tmp_path / "w.safetensors")
        assert "w.safetensors" in str(info.value)
    data["mapping_unit"] = [2000]
    with pytest.raises(InvalidValueError, match="must be an object"):
        ModelCard.from_dict(data)


def test_cleaning_takes_the_models_unit_unless_told_otherwise():
    c = OutlineCleaning().for_model(card(MappingUnit(area_px=2000)))
    assert c.model_unit == 2000.0
    px = c.for_data(None)  # images: pixels
    assert (px.min_area, px.max_hole, px.smooth, px.units) == (2000.0, 2000.0, 2.0, "px")
    m = c.resolve(0.5)  # 0.5 m pixels: 2000 px = 500 m², and back to 2000 px
    assert (m.min_area, m.max_hole, m.smooth) == (2000.0, 2000.0, 2.0)
    assert c.for_data(0.5).min_area == 500.0 and c.for_data(0.5).units == "m"
    given = OutlineCleaning(min_area=50).for_model(card(MappingUnit(area_px=2000)))
    assert given.for_data(None).min_area == 50.0 and given.for_data(None).max_hole == 2000.0
    assert OutlineCleaning().for_model(card()) == OutlineCleaning()
    with pytest.raises(InvalidValueError, match="model_unit"):
        OutlineCleaning(model_unit=-1)
    with pytest.raises(InvalidValueError, match="use_model_unit"):
        OutlineCleaning(use_model_unit="no")
    fixed = OutlineCleaning(use_model_unit=False)
    assert fixed.for_model(card(MappingUnit(area_px=2000))).for_data(None).min_area == 400.0
    assert model_cleaning(None, card(MappingUnit(area_px=2000))) is None
    record = cleaning_record(c, None)
    assert record["model_unit"] == 2000.0 and record["pixels"]["min_area"] == 2000.0
    assert cleaning_record(OutlineCleaning(), None)["model_unit"] is None


def with_unit(weights: Path, area: float, out: Path) -> Path:
    """A copy of ``weights`` whose card carries a mapping unit of ``area`` px."""
    from scdnn.weights import load_model, save_weights

    model, c = load_model(weights)
    c.mapping_unit = MappingUnit(area_px=area)
    save_weights(model, out, c)
    return out


@pytest.mark.slow
def test_predict_evaluate_and_map_clean_with_the_models_unit(tmp_path, folder_dataset):
    """The same cleaning as given by hand, wherever the model's masks are cleaned."""
    from scdnn.evaluation import evaluate
    from scdnn.inference import predict_folder
    from scdnn.mapping import map_scene
    from scdnn.outlines import clean_mask
    from test_demo import tiny_weights

    plain = tiny_weights(tmp_path / "plain.safetensors")
    unit = with_unit(plain, 2000, tmp_path / "unit.safetensors")
    by_hand = OutlineCleaning(min_area=2000, max_hole=2000)
    for weights, cleaning, name in ((unit, OutlineCleaning(), "model"),
                                    (plain, by_hand, "hand"), (plain, None, "raw")):
        predict_folder(folder_dataset / "images", weights, tmp_path / f"p-{name}",
                       cleaning=cleaning)
        evaluate(folder_dataset, tmp_path / f"e-{name}", weights=str(weights), use_all=True,
                 cleaning=cleaning)
    for a in sorted((tmp_path / "p-model" / "masks").glob("*.png")):
        assert a.read_bytes() == (tmp_path / "p-hand" / "masks" / a.name).read_bytes()
    model = json.loads((tmp_path / "e-model" / "metrics.json").read_text())
    hand = json.loads((tmp_path / "e-hand" / "metrics.json").read_text())
    assert model["miou"] == hand["miou"] and model["objects"] == hand["objects"]
    assert model["cleaning"]["min_area"] == 2000.0 and model["cleaning"]["model_unit"] == 2000.0
    raw = json.loads((tmp_path / "e-raw" / "metrics.json").read_text())
    # the unit (larger than any image) removed every predicted landslide
    assert raw["objects"]["pred_objects"] > 0 == model["objects"]["pred_objects"]
    image = sorted((folder_dataset / "images").iterdir())[0]
    summary = map_scene(image, unit, tmp_path / "m", warn=lambda _: None,
                        cleaning=OutlineCleaning())
    assert summary["cleaning"]["pixels"]["min_area"] == 2000.0
    from scdnn.datasets.io import read_mask

    raw_map = map_scene(image, unit, tmp_path / "m-raw", warn=lambda _: None)
    assert raw_map["cleaning"] is None
    before = read_mask(tmp_path / "m-raw" / "mask.tif")
    after = read_mask(tmp_path / "m" / "mask.tif")
    expected = clean_mask(before == 1, by_hand.for_data(None), before != 255)
    assert np.array_equal(after == 1, expected)


@pytest.mark.slow
def test_a_trained_model_carries_the_unit_chosen_on_its_validation_images(tmp_path):
    from scdnn.cli import main
    from scdnn.datasets.synthetic import write_synthetic_dataset
    from scdnn.outlines import MAPPING_UNITS_PX
    from scdnn.weights import read_card
    from test_cli import TINY_TRAIN

    data = write_synthetic_dataset(tmp_path / "data", count=6, size=40, seed=1)
    assert main(["train", str(data), "--out", str(tmp_path / "run"), *TINY_TRAIN]) == 0
    c = read_card(tmp_path / "run" / "weights.safetensors")
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["val"]
    assert c.mapping_unit is not None and c.mapping_unit.area_px in MAPPING_UNITS_PX
    assert set(c.mapping_unit.scores) == {f"{u:g}" for u in MAPPING_UNITS_PX}
    written = json.loads((tmp_path / "run" / "model.json").read_text())
    assert written["mapping_unit"]["area_px"] == c.mapping_unit.area_px
