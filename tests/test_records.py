"""Typed records (model cards, splits) and the typed exceptions: what users and files see."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from scdnn.errors import (
    InputFileError,
    InputFileNotFoundError,
    InvalidValueError,
    ScdnnError,
    UserError,
    param,
)
from scdnn.records import (
    FORMAT_VERSION,
    EvaluationRecord,
    MapRecord,
    ModelCard,
    Normalization,
    Split,
)
from scdnn.runs import read_json, write_json

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def card_dict(**changes):
    card = {"model": "scdnn", "in_channels": 3, "num_classes": 2,
            "inputs": ["red", "green", "blue"],
            "normalization": {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}}
    card.update(changes)
    return {k: v for k, v in card.items() if v is not ...}


# ---------------------------------------------------------------------------- exceptions

def test_exceptions_are_the_builtins_they_resemble():
    assert issubclass(InvalidValueError, ValueError)
    assert issubclass(InputFileError, OSError)
    assert issubclass(InputFileNotFoundError, FileNotFoundError)
    for cls in (InvalidValueError, InputFileError, InputFileNotFoundError):
        assert issubclass(cls, ScdnnError) and issubclass(cls, UserError)
    with pytest.raises(FileNotFoundError, match="x.tif: scene file does not exist"):
        raise InputFileNotFoundError("scene file does not exist", "x.tif")


def test_messages_name_parameters_and_the_cli_renders_flags():
    exc = InvalidValueError("must be a positive integer, got 0", option="batch_size")
    assert str(exc) == "batch_size must be a positive integer, got 0"
    assert exc.cli_message() == "--batch-size must be a positive integer, got 0"
    exc = InvalidValueError(f"folder is not empty (use {param('overwrite')})", "out")
    assert str(exc) == "out: folder is not empty (use overwrite)"
    assert exc.cli_message() == "out: folder is not empty (use --overwrite)"
    assert "\x1e" not in str(exc) and "\x1e" not in exc.cli_message()


def test_exceptions_pickle_with_path_and_option():  # dask and multiprocessing send them back
    exc = pickle.loads(pickle.dumps(InputFileError("cannot read", "a.tif", option="dsm")))
    assert type(exc) is InputFileError
    assert (exc.path, exc.option, exc.message) == ("a.tif", "dsm", "cannot read")


# ---------------------------------------------------------------------------- model cards

def test_card_round_trip_keeps_unknown_fields():
    data = card_dict(demo_sample={"images": ["a"]}, best_epoch=3)
    card = ModelCard.from_dict(data)
    assert card.in_channels == 3 and card.normalization.std == [4.0, 5.0, 6.0]
    assert card.extra == {"demo_sample": {"images": ["a"]}} and card.best_epoch == 3
    assert card.format_version == 0  # written before versioning
    out = card.to_dict()
    assert out["format_version"] == FORMAT_VERSION and out["demo_sample"] == {"images": ["a"]}
    assert ModelCard.from_dict(out).to_dict() == out


@pytest.mark.parametrize("changes, needle", [
    ({"in_channels": "three"}, "'in_channels' must be a positive integer, got 'three'"),
    ({"in_channels": 0}, "'in_channels' must be a positive integer"),
    ({"in_channels": True}, "'in_channels' must be a positive integer"),
    ({"model": None}, "'model' must be a network name"),
    ({"normalization": ...}, "has no 'normalization'"),
    ({"normalization": {"mean": [1, 2, 3], "std": [0, 1, 1]}}, "positive stds"),
    ({"normalization": {"mean": [1, 2], "std": [1, 1]}}, "normalization has 2 band(s)"),
    ({"normalization": [1, 2, 3]}, "malformed normalization"),
    ({"inputs": ["red"]}, "'inputs' names 1 channel(s)"),
    ({"model_kwargs": []}, "'model_kwargs' has the wrong type"),
])
def test_bad_card_fields_are_named(changes, needle):
    with pytest.raises(InvalidValueError) as info:
        ModelCard.from_dict(card_dict(**changes), "w.safetensors")
    assert str(info.value).startswith("w.safetensors: model card")
    assert needle in str(info.value)


def test_a_card_that_is_not_an_object():
    with pytest.raises(InvalidValueError, match="must be a JSON object, got list"):
        ModelCard.from_dict([1, 2], "w")


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/model.json"))
                         + sorted(RESULTS.glob("*/runs/*/model.json")), ids=str)
def test_committed_cards_written_before_versioning_still_read(path):
    data = read_json(path)
    card = ModelCard.from_dict(data, path)
    assert card.model == data["model"] and card.in_channels == data["in_channels"]
    assert card.to_dict()["config"] == data["config"]


def test_normalization_checks_and_applies():
    norm = Normalization([10.0, 20.0], [2.0, 4.0])
    import numpy as np

    image = np.full((2, 3, 2), 30, np.uint8)
    out = norm.apply(image)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    assert out[0, 0, 0] == 10.0 and out[1, 0, 0] == 2.5  # (30-10)/2, (30-20)/4
    with pytest.raises(InvalidValueError, match="image has 3 band"):
        norm.apply(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidValueError):
        Normalization([1.0], [float("nan")])


# ---------------------------------------------------------------------------- splits

def test_split_round_trip_and_checks():
    split = Split.from_dict({"train": ["b", "a"], "test": ["c"], "seed": 1})
    assert split.train == ["a", "b"] and split.val == [] and split.format_version == 0
    assert Split.from_dict(split.to_dict()).to_dict() == split.to_dict()
    assert split.to_dict()["format_version"] == FORMAT_VERSION
    with pytest.raises(InvalidValueError, match="names sample 'a' twice"):
        Split.from_dict({"train": ["a"], "test": ["a"]}, "s.json")
    with pytest.raises(InvalidValueError, match="s.json: split file has no 'test' list"):
        Split.from_dict({"train": ["a"]}, "s.json")


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/split.json")), ids=str)
def test_committed_splits_written_before_versioning_still_read(path):
    data = read_json(path)
    split = Split.from_dict(data, path)
    assert split.test == sorted(data["test"])
    assert split.format_version == data.get("format_version", 0)  # 0: before versioning


def test_every_json_object_the_package_writes_is_versioned(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"format_version": FORMAT_VERSION,
                                                             "x": 1}
    write_json(tmp_path / "b.json", [1, 2])  # not an object: written as it is
    assert json.loads((tmp_path / "b.json").read_text()) == [1, 2]


# ---------------------------------------------------------------------------- result records


@pytest.mark.parametrize("path", sorted(RESULTS.rglob("metrics.json")), ids=str)
def test_committed_metrics_read_as_typed_records_and_round_trip(path):
    data = read_json(path)
    record = EvaluationRecord.from_dict(data, path)
    assert record.miou == data["miou"] and record.confusion == data["confusion"]
    assert record.to_dict() == {"format_version": FORMAT_VERSION, **data}


@pytest.mark.parametrize("path", sorted(RESULTS.rglob("map.json")), ids=str)
def test_committed_map_records_read_and_round_trip(path):
    data = read_json(path)
    record = MapRecord.from_dict(data, path)
    assert (record.width, record.height) == (data["width"], data["height"])
    assert record.to_dict() == {"format_version": FORMAT_VERSION, **data}


def test_result_records_name_the_bad_field():
    with pytest.raises(InvalidValueError, match="m.json: metrics.json: 'miou' has the wrong"):
        EvaluationRecord.from_dict({"pa": 1, "mpa": 1, "miou": "x", "fwiou": 1,
                                    "class_pa": {}, "class_iou": {},
                                    "confusion": [[1, 0], [0, 1]]}, "m.json")
    with pytest.raises(InvalidValueError, match="metrics.json has no 'confusion'"):
        EvaluationRecord.from_dict({"pa": 1, "mpa": 1, "miou": 1, "fwiou": 1,
                                    "class_pa": {}, "class_iou": {}})
    with pytest.raises(InvalidValueError, match="'confusion' must be a 2 x 2"):
        EvaluationRecord.from_dict({"pa": 1, "mpa": 1, "miou": 1, "fwiou": 1,
                                    "class_pa": {}, "class_iou": {}, "confusion": [[1]]})
    good = {"scene": "s.tif", "width": 2, "height": 2, "transform": [1, 0, 0, 0, -1, 0],
            "threshold": 0.5, "windows": {}, "landslides": 0, "outputs": []}
    assert MapRecord.from_dict(good).units == "unknown"
    with pytest.raises(InvalidValueError, match="'width' has the wrong type"):
        MapRecord.from_dict({**good, "width": "2"})
    with pytest.raises(InvalidValueError, match="'transform' must hold 6 numbers"):
        MapRecord.from_dict({**good, "transform": [1, 0]})


def test_output_dir_removes_a_folder_it_made_when_the_block_fails(tmp_path):
    from scdnn.runs import output_dir

    with pytest.raises(RuntimeError):
        with output_dir(tmp_path / "new") as out:
            (out / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "theirs.txt").write_text("y")
    with pytest.raises(RuntimeError):
        with output_dir(kept, overwrite=True) as out:
            raise RuntimeError("boom")
    assert (kept / "theirs.txt").read_text() == "y"  # a folder that held files is left alone
    with output_dir(tmp_path / "ok") as out:
        (out / "done.txt").write_text("z")
    assert (tmp_path / "ok" / "done.txt").is_file()


# ------------------------------------------------------- options whose default changed

def test_card_without_the_upsampling_kernel_reads_as_the_old_disjoint_kernel():
    from scdnn.records import LEGACY_MODEL_KWARGS

    assert LEGACY_MODEL_KWARGS["scdnn"] == {"upsampling_kernel": 4}
    assert ModelCard.from_dict(card_dict()).model_kwargs == {"upsampling_kernel": 4}
    assert ModelCard.from_dict(card_dict(model_kwargs={"skip": False})).model_kwargs == {
        "upsampling_kernel": 4, "skip": False}
    named = card_dict(model_kwargs={"upsampling_kernel": 8})
    assert ModelCard.from_dict(named).model_kwargs == {"upsampling_kernel": 8}
    assert ModelCard.from_dict(card_dict(model="sssn")).model_kwargs == {}


def test_new_weights_and_training_configs_name_the_kernel(tmp_path):
    import torch
    from safetensors.torch import save_file

    from scdnn.models import create_model, explicit_model_kwargs
    from scdnn.trainers.fit import TrainConfig, resumed_config
    from scdnn.weights import load_model, read_card, save_weights

    tiny = {"widths": [4, 8, 8, 8], "aspc_channels": 8, "decoder_channels": 8}
    assert explicit_model_kwargs("scdnn", tiny) == {**tiny, "upsampling_kernel": 8}
    assert explicit_model_kwargs("sssn", {}) == {}
    # a new card records the kernel of the network it was saved from, even if it said none
    model = create_model("scdnn", **tiny).eval()
    card = ModelCard.from_dict(card_dict(model_kwargs=tiny))
    save_weights(model, tmp_path / "new.safetensors", card)
    assert read_card(tmp_path / "new.safetensors").model_kwargs["upsampling_kernel"] == 8
    assert read_json(tmp_path / "model.json")["model_kwargs"]["upsampling_kernel"] == 8
    assert load_model(tmp_path / "new.safetensors")[0].upsampling_kernel == 8
    # a file written before the option existed: its card names no kernel, its tensors are 4x4
    old = create_model("scdnn", **tiny, upsampling_kernel=4).eval()
    state = {k: v.contiguous() for k, v in old.state_dict().items()}
    save_file(state, str(tmp_path / "old.safetensors"),
              metadata={"scdnn": json.dumps(card_dict(model_kwargs=tiny))})
    loaded, read = load_model(tmp_path / "old.safetensors")
    assert loaded.upsampling_kernel == 4 and read.model_kwargs["upsampling_kernel"] == 4
    x = torch.randn(1, 3, 37, 21)
    with torch.no_grad():
        assert torch.equal(loaded(x), old(x))
    # --resume of a run whose config.json names no kernel keeps 4; a new run's names 8
    write_json(tmp_path / "run" / "config.json",
               {"config": TrainConfig(data="d", out="o", model_kwargs=tiny).to_dict()})
    assert resumed_config(tmp_path / "run").model_kwargs == {**tiny, "upsampling_kernel": 4}
    write_json(tmp_path / "run" / "config.json",
               {"config": TrainConfig(data="d", out="o",
                                      model_kwargs={"upsampling_kernel": 8}).to_dict()})
    assert resumed_config(tmp_path / "run").model_kwargs == {"upsampling_kernel": 8}
