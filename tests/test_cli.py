"""End-to-end behaviour of the ``scdnn`` command line on tiny generated data."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_and_kill, stripe_mask, write_stripe_scene
from scdnn.cli import main
from scdnn.datasets.synthetic import write_synthetic_dataset
from scdnn.runs import cpu_name, machine_description

#: The paper recipe: the tests of a finished run look for its best.ckpt (the default recipe,
#: which keeps the final averaged weights, has none; tests/test_recipes.py covers it).
TINY_TRAIN = ["--epochs", "2", "--batch-size", "2", "--image-size", "32", "--workers", "0",
              "--recipe", "paper"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_synthetic_dataset(tmp_path / "data", count=6, size=40, seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny SCDnn run shared by the tests that need weights."""
    root = tmp_path_factory.mktemp("trained")
    data = write_synthetic_dataset(root / "data", count=6, size=40, seed=1)
    assert main(["train", str(data), "--out", str(root / "run"), *TINY_TRAIN]) == 0
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "scdnn.cli", *args], capture_output=True,
                          text=True, timeout=300)


def assert_user_error(code: int, capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


# --- the happy paths -------------------------------------------------------------------------

@pytest.mark.slow
def test_train_writes_a_complete_run_folder(trained: Path) -> None:
    run = trained / "run"
    for name in ("weights.safetensors", "model.json", "split.json", "config.json", "log.csv",
                 "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (run / name).is_file(), name
    card = json.loads((run / "model.json").read_text())
    assert card["model"] == "scdnn" and card["in_channels"] == 3
    assert card["classes"] == ["background", "landslide"]
    assert set(card["split"]) >= {"train", "val", "test"}
    assert card["config"]["epochs"] == 2
    # a new run names the network options whose default changed, so --resume keeps them
    assert card["model_kwargs"]["upsampling_kernel"] == 8
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["model_kwargs"] == card["model_kwargs"]
    assert len(card["normalization"]["mean"]) == 3
    assert card["provenance"]["scdnn_version"]
    assert "git_commit" in card["provenance"]
    # the machine names the processor model, since a time budget depends on it
    assert card["provenance"]["machine"] == machine_description()
    assert card["provenance"]["machine"].endswith(f"{os.cpu_count()} CPUs")
    if cpu_name():
        assert cpu_name() in card["provenance"]["machine"]
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(r["train_loss"] and r["val_miou"] for r in rows)
    assert not list(run.rglob("*.part"))


@pytest.mark.slow
def test_split_is_seeded_and_reusable(trained: Path, tmp_path: Path) -> None:
    split = json.loads((trained / "run" / "split.json").read_text())
    assert len(split["test"]) == 2  # round(6 * 0.3)
    out = tmp_path / "again"
    assert main(["train", str(trained / "data"), "--out", str(out), "--split",
                 str(trained / "run" / "split.json"), "--epochs", "1", "--image-size", "32",
                 "--workers", "0"]) == 0
    again = json.loads((out / "split.json").read_text())
    assert again["test"] == split["test"] and again["train"] == split["train"]


@pytest.mark.slow
def test_evaluate_weights_scores_the_runs_test_images(trained: Path, capsys) -> None:
    out = trained / "eval"
    assert main(["evaluate", str(trained / "data"), "--weights",
                 str(trained / "run" / "weights.safetensors"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MIoU" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    split = json.loads((trained / "run" / "split.json").read_text())
    assert metrics["images"] == len(split["test"])
    for key in ("pa", "mpa", "miou", "fwiou", "class_pa", "class_iou", "confusion",
                "landslide_f1", "boundary_f1", "miou_bins"):
        assert key in metrics, key
    assert set(metrics["class_iou"]) == {"background", "landslide"}
    assert sum(map(sum, metrics["confusion"])) == len(split["test"]) * 40 * 40
    assert (out / "per_image.csv").is_file()


@pytest.mark.slow
def test_predict_then_evaluate_predictions_agree(trained: Path) -> None:
    pred = trained / "pred"
    assert main(["predict", str(trained / "data"), "--weights",
                 str(trained / "run" / "weights.safetensors"), "--out", str(pred)]) == 0
    masks = sorted((pred / "masks").glob("*.png"))
    assert len(masks) == 6 and len(list((pred / "probabilities").glob("*.png"))) == 6
    assert set(np.unique(np.array(Image.open(masks[0])))) <= {0, 255}
    out_w, out_p = trained / "eval-w", trained / "eval-p"
    assert main(["evaluate", str(trained / "data"), "--all", "--weights",
                 str(trained / "run" / "weights.safetensors"), "--out", str(out_w)]) == 0
    assert main(["evaluate", str(trained / "data"), "--all", "--predictions", str(pred),
                 "--out", str(out_p)]) == 0
    a = json.loads((out_w / "metrics.json").read_text())
    b = json.loads((out_p / "metrics.json").read_text())
    assert a["confusion"] == b["confusion"]


def test_evaluate_predictions_of_another_tool(data: Path, tmp_path: Path) -> None:
    """Perfect predictions written as 0/1 masks score 1.0 everywhere."""
    pred = tmp_path / "other-tool"
    pred.mkdir()
    for mask in (data / "masks").glob("*.png"):
        Image.fromarray((np.array(Image.open(mask)) > 0).astype(np.uint8)).save(pred / mask.name)
    assert main(["evaluate", str(data), "--predictions", str(pred), "--out",
                 str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(1.0) and metrics["boundary_f1"] == pytest.approx(1.0)


def test_evaluate_prints_boundary_f1_in_metres_on_a_scene(tmp_path: Path, capsys) -> None:
    """A 0.5 m scene whose predicted edge is 2 px (1 m) off: not matched at 0.5 m, matched
    from 1 m; the table ``scdnn evaluate`` prints has the metre line under the pixel one."""
    scene = write_stripe_scene(tmp_path / "scene", 20, 40, edge=20, px=0.5)
    pred = stripe_mask(tmp_path / "pred.tif", scene, 22)
    assert main(["evaluate", str(scene), "--predictions", str(pred), "--out",
                 str(tmp_path / "e")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if "0.5 m" in line)
    assert lines[header].split() == ["boundary", "F1", "(%)", "0.5", "m", "1", "m", "2", "m",
                                     "4", "m"]
    assert lines[header + 1].split() == ["0.00", "100.00", "100.00", "100.00"]
    assert "8 px" in lines[header - 3]  # below the pixel tolerances
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["boundary_f1_at_m"]["0.5"]["f1"] == 0.0
    assert metrics["boundary_f1_at_m"]["1"]["f1"] == 1.0 and metrics["boundary_images_m"] == 1


def test_evaluate_gives_no_metre_scores_on_png_images(data: Path, tmp_path: Path,
                                                      capsys) -> None:
    assert main(["evaluate", str(data), "--predictions", str(data / "masks"), "--out",
                 str(tmp_path / "e"), "--all"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert "boundary_f1_at_m" in metrics and metrics["boundary_f1_at_m"] is None
    assert metrics["boundary_images_m"] == 0 and metrics["boundary_f1_at"]["1"]["f1"] == 1.0
    out = capsys.readouterr().out
    assert "8 px" in out and "0.5 m" not in out


@pytest.mark.slow
def test_models_lists_all_five(capsys) -> None:
    assert main(["models", "--size", "64"]) == 0
    out = capsys.readouterr().out
    for name in ("scdnn", "sssn", "segnet", "deeplabv3plus-resnet50", "deeplabv3plus-mobilenetv2"):
        assert name in out


@pytest.mark.slow
def test_resume_continues_a_killed_run_to_the_same_final_epoch(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "--epochs", "30", "--batch-size", "2",
            "--image-size", "32", "--workers", "0"]
    log = out / "log.csv"
    run_and_kill([sys.executable, "-m", "scdnn.cli", *args],
                 lambda: log.exists() and len(log.read_text().splitlines()) >= 3)
    assert not (out / "weights.safetensors").exists()
    result = run_cli(*args[:-8], "--resume")  # --resume reads its options from config.json
    assert result.returncode == 0, result.stderr
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(out / "log.csv"))]
    assert epochs == list(range(1, 31))
    assert (out / "weights.safetensors").is_file()


@pytest.mark.slow
def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(
        data: Path, tmp_path: Path) -> None:
    """Killed (-9) before the first epoch ended, a run holds config.json and split.json but
    no checkpoint: --resume starts it over with its own config instead of refusing (the user
    could neither resume nor rerun without --overwrite)."""
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "2",
            "--image-size", "32", "--crops-per-image", "40", "--workers", "0"]
    run_and_kill([sys.executable, "-m", "scdnn.cli", *args], (out / "config.json").exists)
    assert not (out / "checkpoints" / "last.ckpt").exists()
    result = run_cli("train", str(data), "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert "starting the run over" in result.stderr
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(out / "log.csv"))]
    assert epochs == [1, 2]
    assert (out / "weights.safetensors").is_file()


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu_matches_one_process_in_kind(data: Path,
                                                                     tmp_path: Path) -> None:
    """--accelerator cpu --devices 2: Lightning starts a second process (gloo) that runs the
    same command; it trains and writes nothing, rank 0 writes the run's files once."""
    args = ["--epochs", "2", "--batch-size", "2", "--image-size", "32", "--workers", "0",
            "--recipe", "paper", "--accelerator", "cpu"]
    single, double = tmp_path / "one", tmp_path / "two"
    result = run_cli("train", str(data), "--out", str(single), *args, "--devices", "1")
    assert result.returncode == 0, result.stderr
    result = run_cli("train", str(data), "--out", str(double), *args, "--devices", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("weights:") == 1  # printed by rank 0 only
    assert "Traceback" not in result.stderr and "sync_dist" not in result.stderr
    one = list(csv.DictReader(open(single / "log.csv")))
    two = list(csv.DictReader(open(double / "log.csv")))
    assert [r["epoch"] for r in two] == [r["epoch"] for r in one] == ["1", "2"]
    # each process takes half the crops: half the optimiser steps per epoch, same data
    assert int(two[-1]["step"]) <= int(one[-1]["step"])
    for a, b in zip(one, two, strict=True):
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 0.25
    assert json.loads((double / "split.json").read_text()) == json.loads(
        (single / "split.json").read_text())
    assert (double / "weights.safetensors").is_file()


@pytest.mark.slow
def test_last_checkpoint_is_the_final_epoch_even_when_it_is_not_the_best(data: Path,
                                                                          tmp_path: Path) -> None:
    """--resume starts from checkpoints/last.ckpt: it must hold the latest epoch. (Lightning
    2.6's save_last=True wrote it only with a new best, so it was a copy of best.ckpt.)"""
    import torch

    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), "--epochs", "3", "--batch-size", "2",
                 "--image-size", "32", "--workers", "0", "--recipe", "paper"]) == 0
    log = [float(r["val_miou"]) for r in csv.DictReader(open(out / "log.csv"))]
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["epoch"]
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert log[best] == max(log) and best < 2  # on this seeded data: no gain after epoch 1
    assert last == 2  # zero-based: the third epoch


# --- bad input: exit 2, one line naming the file and the problem, nothing half-written ------

def test_missing_data_folder(tmp_path: Path, capsys) -> None:
    code = main(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "nope")
    assert not (tmp_path / "o").exists()


def test_folder_without_pairs(tmp_path: Path, capsys) -> None:
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    code = main(["train", str(tmp_path / "d"), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "no")
    assert not (tmp_path / "o").exists()


def test_image_without_mask(data: Path, tmp_path: Path, capsys) -> None:
    (data / "masks" / "synthetic-002.png").unlink()
    code = main(["train", str(data), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "synthetic-002", "mask")
    assert not (tmp_path / "o").exists()


def test_mask_without_image(data: Path, tmp_path: Path, capsys) -> None:
    (data / "images" / "synthetic-003.png").unlink()
    code = main(["train", str(data), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "synthetic-003", "image")


def test_image_and_mask_of_different_sizes(data: Path, tmp_path: Path, capsys) -> None:
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(data / "masks" / "synthetic-001.png")
    code = main(["train", str(data), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "synthetic-001")
    assert not (tmp_path / "o").exists()


def test_mask_with_other_values(data: Path, tmp_path: Path, capsys) -> None:
    Image.fromarray(np.full((40, 40), 7, np.uint8)).save(data / "masks" / "synthetic-004.png")
    code = main(["train", str(data), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "synthetic-004", "7")


def test_truncated_image(data: Path, tmp_path: Path, capsys) -> None:
    path = data / "images" / "synthetic-005.png"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    code = main(["train", str(data), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, "synthetic-005")
    assert not (tmp_path / "o").exists()


def test_unknown_model(data: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", str(data), "--out", str(tmp_path / "o"), "--model", "unet9000"])
    assert_user_error(code, capsys, "unet9000")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--image-size"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_sizes(option: str, value: str, data: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", str(data), "--out", str(tmp_path / "o"), option, value])
    assert_user_error(code, capsys, option, "positive")


def test_weights_not_safetensors(data: Path, tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "weights.safetensors"
    bogus.write_bytes(b"PK\x03\x04 this is a zip or a pickle, not safetensors")
    code = main(["evaluate", str(data), "--weights", str(bogus), "--out", str(tmp_path / "o")])
    assert_user_error(code, capsys, str(bogus), "safetensors")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_weights_that_do_not_match_the_model(trained: Path, tmp_path: Path, capsys) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = trained / "run" / "weights.safetensors"
    with safe_open(str(source), framework="pt") as handle:
        card = json.loads(handle.metadata()["scdnn"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    card["model"], card["model_kwargs"] = "sssn", {}  # the tensors are SCDnn's
    forged = tmp_path / "forged.safetensors"
    save_file(tensors, str(forged), metadata={"scdnn": json.dumps(card)})
    code = main(["predict", str(trained / "data"), "--weights", str(forged), "--out",
                 str(tmp_path / "o")])
    assert_user_error(code, capsys, str(forged), "do not match")
    assert not (tmp_path / "o").exists()


def test_resume_without_checkpoint(data: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", str(data), "--out", str(tmp_path / "o"), "--resume"])
    assert_user_error(code, capsys, "checkpoint")


def test_output_folder_not_empty(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code = main(["train", str(data), "--out", str(out), "--epochs", "1"])
    assert_user_error(code, capsys, str(out), "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


@pytest.mark.slow
def test_overwrite_allows_a_non_empty_output_folder(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["train", str(data), "--out", str(out), "--overwrite", "--epochs", "1",
                 "--image-size", "32", "--workers", "0"]) == 0
    assert (out / "weights.safetensors").is_file()


def test_bad_input_through_the_installed_command(tmp_path: Path) -> None:
    """The real process: exit status 2 and one stderr line, no traceback."""
    result = run_cli("train", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_bf16_training_on_cpu(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bf16"
    assert main(["train", str(data), "--out", str(out), "--precision", "bf16-mixed",
                 "--accelerator", "cpu", *TINY_TRAIN]) == 0
    card = json.loads((out / "model.json").read_text())
    assert card["config"]["precision"] == "bf16-mixed"


def test_bad_precision_value(data: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", str(data), "--out", str(tmp_path / "o"), "--precision", "fp7"])
    assert_user_error(code, capsys, "fp7")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_max_minutes_stops_early_and_still_writes_weights(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "timed"
    assert main(["train", str(data), "--out", str(out), "--epochs", "50", "--max-minutes",
                 "0.0001", "--batch-size", "2", "--image-size", "32", "--workers", "0"]) == 0
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(out / "log.csv"))]
    assert 1 <= len(epochs) < 50
    assert (out / "weights.safetensors").is_file()


def test_max_minutes_must_be_positive(data: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", str(data), "--out", str(tmp_path / "o"), "--max-minutes", "0"])
    assert_user_error(code, capsys, "--max-minutes")


@pytest.mark.slow
def test_train_and_evaluate_on_the_bijie_layout_with_dem(bijie_dataset: Path, tmp_path: Path,
                                                         capsys) -> None:
    """The paper's layout end to end: DEM as a fourth channel, non-landslide images added."""
    run = tmp_path / "bijie-run"
    assert main(["train", str(bijie_dataset), "--out", str(run), "--use-dem",
                 "--include-non-landslide", *TINY_TRAIN]) == 0
    card = json.loads((run / "model.json").read_text())
    assert card["in_channels"] == 4 and card["inputs"][-1] == "dem"
    names = sum((card["split"][k] for k in ("train", "val", "test")), [])
    assert any(n.startswith("non-landslide/") for n in names)
    assert main(["evaluate", str(bijie_dataset), "--weights", str(run / "weights.safetensors"),
                 "--out", str(tmp_path / "eval"), "--all"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images"] == len(names)


@pytest.mark.slow
def test_evaluate_refuses_data_holding_only_part_of_the_models_test_images(
        trained: Path, tmp_path: Path, capsys) -> None:
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(trained / "data", partial)
    test = json.loads((trained / "run" / "split.json").read_text())["test"]
    for folder in ("images", "masks"):
        (partial / folder / f"{test[0]}.png").unlink()
    code = main(["evaluate", str(partial), "--weights",
                 str(trained / "run" / "weights.safetensors"), "--out", str(tmp_path / "e")])
    assert_user_error(code, capsys, test[0], "--all")
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_outputs_are_ordinary_files_not_private(trained: Path) -> None:
    """Atomic writes go through mkstemp (0600); final files get the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.json", "split.json", "log.csv", "config.json", "weights.safetensors"):
        assert (trained / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
