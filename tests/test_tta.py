"""Test-time augmentation (``--tta``) through the commands: evaluate, predict, demo, and the
records that keep it (the averaging itself: test_predictor.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, random_rgb, spread_weights
from scdnn.cli import TTA_CHOICES, main
from scdnn.predictor import TTA_MODES
from scdnn.records import EvaluationRecord

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return spread_weights(tmp_path_factory.mktemp("weights") / "weights.safetensors",
                          random_rgb(64, 64, seed=1), TINY)


def test_the_command_line_offers_the_predictor_modes() -> None:
    assert TTA_CHOICES == TTA_MODES == ("none", "flips", "d4")


def test_evaluate_with_tta_records_it(folder_dataset: Path, weights: Path, tmp_path: Path,
                                      capsys) -> None:
    outs = {}
    for tta in ("none", "flips"):
        out = tmp_path / tta
        assert main(["evaluate", str(folder_dataset), "--weights", str(weights), "--all",
                     "--out", str(out), "--tta", tta, "--raw"]) == 0, capsys.readouterr().err
        outs[tta] = out
    plain = json.loads((outs["none"] / "metrics.json").read_text())
    flips = json.loads((outs["flips"] / "metrics.json").read_text())
    assert (plain["tta"], flips["tta"]) == ("none", "flips")
    assert EvaluationRecord.from_dict(flips).tta == "flips"
    masks = [np.asarray(Image.open(outs[t] / "masks" / "a.png")) for t in ("none", "flips")]
    assert masks[0].shape == masks[1].shape and not np.array_equal(*masks)


def test_evaluate_refuses_tta_on_saved_masks(folder_dataset: Path, tmp_path: Path,
                                             capsys) -> None:
    code = main(["evaluate", str(folder_dataset), "--predictions", str(folder_dataset),
                 "--all", "--out", str(tmp_path / "o"), "--tta", "d4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--tta" in err, err
    assert not (tmp_path / "o").exists()


def test_metrics_written_before_tta_read_as_none() -> None:
    old = {"format_version": 1, "pa": 0.9, "mpa": 0.8, "miou": 0.7, "fwiou": 0.85,
           "class_pa": {}, "class_iou": {}, "confusion": [[5, 1], [1, 3]], "source": {},
           "provenance": {}}
    record = EvaluationRecord.from_dict(old)
    assert record.tta == "none" and record.to_dict() == old  # written back unchanged


def test_predict_with_tta(weights: Path, tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(random_rgb(40, 56, seed=4)).save(images / "x.png")
    probs = {}
    for tta in ("none", "d4"):
        assert main(["predict", str(images), "--weights", str(weights), "--out",
                     str(tmp_path / tta), "--tta", tta]) == 0, capsys.readouterr().err
        probs[tta] = np.asarray(Image.open(tmp_path / tta / "probabilities" / "x.png"))
    assert probs["none"].shape == probs["d4"].shape == (40, 56)
    assert not np.array_equal(probs["none"], probs["d4"])


def test_an_unknown_tta_is_a_usage_error(weights: Path, tmp_path: Path, capsys) -> None:
    code = main(["predict", str(tmp_path), "--weights", str(weights), "--out",
                 str(tmp_path / "o"), "--tta", "d8"])
    assert code == 2 and "invalid choice: 'd8'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_with_tta_records_it(weights: Path, tmp_path: Path, capsys) -> None:
    from test_demo import tiny_sample

    sample = tiny_sample(tmp_path / "sample")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", str(weights), "--sample", str(sample),
                 "--tta", "flips"]) == 0, capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["tta"] == "flips"
    for name in ("scene-a", "scene-b", "scene-c"):
        assert json.loads((out / "maps" / name / "map.json").read_text())["tta"] == "flips"
