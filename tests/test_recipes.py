"""Training recipes (paper and default), --steps, and the cpu benchmark budget in steps, on
tiny generated data (seconds)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader

from conftest import box_mask, random_rgb, write_image
from scdnn.benchmark.budgets import BUDGETS, CPU_STEPS, budget_overrides
from scdnn.benchmark.plan import check_out, run_state
from scdnn.cli import main
from scdnn.datasets import IGNORE_INDEX
from scdnn.datasets.transforms import RGBBrightnessContrast, RGBSaturation, train_transform
from scdnn.errors import InvalidValueError
from scdnn.records import Split
from scdnn.trainers.fit import TrainConfig, train
from scdnn.trainers.recipes import (
    DiceCELoss,
    ema_decay,
    parameter_groups,
    warmup_cosine,
    warmup_steps,
)
from scdnn.trainers.task import SegmentationTask

pytestmark = pytest.mark.usefixtures("one_thread", "quiet_lightning")

#: A tiny SCDnn that trains on one thread (see test_trainers.TRAINABLE).
TRAINABLE = {"widths": (8, 8, 8, 8), "aspc_channels": 8, "decoder_channels": 8}



def tiny_task(**kwargs) -> SegmentationTask:
    torch.manual_seed(0)
    return SegmentationTask(model="scdnn", model_kwargs=dict(TRAINABLE), **kwargs)


def random_batches(count: int, n: int = 2, size: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for k in range(count):
        mask = torch.randint(0, 2, (n, size, size), generator=g)
        mask[:, :3] = IGNORE_INDEX
        out.append({"image": torch.randn(n, 3, size, size, generator=g), "mask": mask,
                    "name": [f"b{k}-{i}" for i in range(n)]})
    return out


class LRTrace(L.Callback):
    """The learning rate of every optimiser step, read just before the step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit_steps(task: SegmentationTask, steps: int) -> LRTrace:
    trace = LRTrace()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        num_sanity_val_steps=0, max_steps=steps, limit_val_batches=0,
                        callbacks=[trace])
    trainer.fit(task, train_dataloaders=DataLoader(random_batches(steps), batch_size=None))
    return trace


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Six 40 x 48 images with a landslide box each."""
    root = tmp_path / "ds"
    for k in range(6):
        write_image(root / "images" / f"i{k}.png", random_rgb(40, 48, seed=k))
        write_image(root / "masks" / f"i{k}.png",
                    box_mask(40, 48, 4 + k, 6, 24, 30 + k, value=255))
    return root


def tiny_config(data: Path, out: Path, **kwargs) -> TrainConfig:
    options = {"model": "scdnn", "batch_size": 2, "image_size": 32, "accelerator": "cpu",
               "devices": "1", "model_kwargs": dict(TRAINABLE), "epochs": None,
               "max_steps": 3, **kwargs}
    return TrainConfig(data=str(data), out=str(out), **options)


def log_rows(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# --- paper recipe: unchanged -------------------------------------------------------------

def test_paper_recipe_is_adam_at_a_constant_rate_with_cross_entropy() -> None:
    task = tiny_task(recipe="paper", lr=2e-3)
    assert type(task.criterion) is nn.CrossEntropyLoss
    assert task.criterion.ignore_index == IGNORE_INDEX
    trace = fit_steps(task, 4)
    optimizer = task.trainer.optimizers[0]
    assert type(optimizer) is torch.optim.Adam
    assert task.trainer.lr_scheduler_configs == []
    assert trace.lrs == [2e-3] * 4
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert optimizer.param_groups[0]["weight_decay"] == 0


def test_task_refuses_an_unknown_recipe() -> None:
    with pytest.raises(InvalidValueError, match="unknown recipe 'fancy'"):
        SegmentationTask(model="scdnn", model_kwargs=dict(TRAINABLE), recipe="fancy")


# --- default recipe: optimiser, schedule, loss --------------------------------------------

def test_default_recipe_param_groups_exempt_norms_and_biases() -> None:
    task = tiny_task(recipe="default")
    decay, no_decay = parameter_groups(task.model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    ids = lambda group: {id(p) for p in group["params"]}  # noqa: E731
    everything = {id(p) for p in task.model.parameters()}
    assert ids(decay) | ids(no_decay) == everything and not ids(decay) & ids(no_decay)
    norms = [m for m in task.model.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in task.model.modules() if isinstance(m, nn.Conv2d)]
    assert norms and convs
    for norm in norms:
        assert id(norm.weight) in ids(no_decay) and id(norm.bias) in ids(no_decay)
    for conv in convs:
        assert id(conv.weight) in ids(decay)
        if conv.bias is not None:
            assert id(conv.bias) in ids(no_decay)
    # the task's optimiser is AdamW over exactly these groups
    trace = fit_steps(task, 2)
    optimizer = task.trainer.optimizers[0]
    assert type(optimizer) is torch.optim.AdamW
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert len(trace.lrs) == 2


def test_warmup_cosine_factors_by_hand() -> None:
    factor = warmup_cosine(100)  # warm-up: 5 steps
    assert warmup_steps(100) == 5 and warmup_steps(10) == 1 and warmup_steps(1000) == 50
    assert [factor(k) for k in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factor(5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 96)))
    assert factor(52) == pytest.approx(0.5 * (1 + math.cos(math.pi * 48 / 96)))  # = 0.5
    assert factor(52) == pytest.approx(0.5)
    assert factor(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 95 / 96)))
    assert 0 < factor(99) < 3e-4
    assert factor(100) == 0.0
    values = [factor(k) for k in range(100)]
    assert values[4:] == sorted(values[4:], reverse=True)


def test_default_recipe_steps_the_schedule_every_optimiser_step() -> None:
    task = tiny_task(recipe="default", lr=1e-3)
    trace = fit_steps(task, 20)  # warm-up 1 step, then cosine over 20
    config = task.trainer.lr_scheduler_configs[0]
    assert config.interval == "step" and config.frequency == 1
    factor = warmup_cosine(20)
    assert trace.lrs == pytest.approx([1e-3 * factor(k) for k in range(20)])
    assert trace.lrs[0] == pytest.approx(1e-3)
    assert trace.lrs[1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 20)))
    assert trace.lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 19 / 20)))
    assert trace.lrs[-1] < 1e-5


def test_dice_ce_loss_by_hand_with_ignored_pixels_and_class_weights() -> None:
    p = torch.tensor([0.8, 0.3, 0.9, 0.6])  # landslide probabilities of four pixels
    logits = torch.stack([torch.zeros(4), torch.log(p / (1 - p))]).reshape(1, 2, 1, 4)
    target = torch.tensor([1, 0, IGNORE_INDEX, 1]).reshape(1, 1, 4)
    loss = DiceCELoss(ignore_index=IGNORE_INDEX)(logits, target)
    ce = -(math.log(0.8) + math.log(0.7) + math.log(0.6)) / 3
    dice = (2 * (0.8 + 0.6) + 1) / ((0.8 + 0.3 + 0.6) + 2 + 1)  # pixel 3 ignored
    assert float(loss) == pytest.approx(ce + 1 - dice, rel=1e-5)
    weighted = DiceCELoss(weight=torch.tensor([1.0, 3.0]))(logits, target)
    ce_w = -(3 * math.log(0.8) + math.log(0.7) + 3 * math.log(0.6)) / (3 + 1 + 3)
    assert float(weighted) == pytest.approx(ce_w + 1 - dice, rel=1e-5)
    task = tiny_task(recipe="default")
    assert isinstance(task.criterion, DiceCELoss)


def test_ema_decay_follows_the_run_length() -> None:
    assert ema_decay(1000) == pytest.approx(0.99)
    assert ema_decay(10) == 0.9 and ema_decay(10**6) == 0.999


# --- augmentation --------------------------------------------------------------------------

def test_strong_augmentation_keeps_mask_values_and_alignment() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((48, 48), np.uint8)
    mask[10:30, 14:40] = 1
    mask[:, :3] = IGNORE_INDEX
    image = rng.integers(0, 256, (48, 48, 5), dtype=np.uint8)
    image[:, :, 3] = np.where(mask == 1, 250, 10)  # a DSM band that draws the mask
    image[:, :, 4] = 77
    transform = train_transform(32, seed=3, strong=True)
    zoomed = 0
    for _ in range(40):
        out = transform(image=image, mask=mask)
        img, msk = out["image"], out["mask"]
        assert img.shape == (32, 32, 5) and msk.shape == (32, 32)
        assert set(np.unique(msk)) <= {0, 1, IGNORE_INDEX}
        labelled = msk != IGNORE_INDEX
        # aligned: the DSM band (never colour-jittered) says where the landslide is
        agree = ((img[:, :, 3] > 130) == (msk == 1))[labelled]
        assert agree.mean() > 0.95
        # DSM bands untouched by colour: only the two values (or a blend at edges, or fill)
        inside = labelled & (img[:, :, 4] != 0)
        assert (img[:, :, 4][inside] == 77).mean() > 0.9
        zoomed += int((msk == IGNORE_INDEX).sum() > 3 * 32)  # zoom-out border filled with 255
        assert np.isin(img[:, :, 3][labelled], [10, 250]).mean() > 0.8  # not jittered
    assert zoomed > 0


def test_colour_jitter_leaves_bands_after_rgb_alone() -> None:
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 5), dtype=np.uint8)
    for transform in (RGBSaturation(saturation=0.5, p=1.0),
                      RGBBrightnessContrast(brightness=0.3, contrast=0.3, bands=3, p=1.0)):
        transform.set_random_state(np.random.default_rng(0), __import__("random").Random(0))
        out = transform(image=image)["image"]
        assert np.array_equal(out[:, :, 3:], image[:, :, 3:])
        assert not np.array_equal(out[:, :, :3], image[:, :, :3])


# --- whole runs ----------------------------------------------------------------------------

def test_default_recipe_saves_the_final_ema_weights(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(dataset, run, recipe="default", max_steps=6, lr=1e-2))
    saved = load_file(str(run / "weights.safetensors"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ema = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    raw = {k[len("model."):]: v for k, v in ckpt["current_model_state"].items()
           if k.startswith("model.")}
    weights = [k for k in saved if k.endswith("conv.weight") or k.endswith(".weight")]
    assert weights
    assert all(torch.equal(saved[k], ema[k]) for k in saved)
    assert any(not torch.equal(ema[k], raw[k]) for k in weights)
    assert not (run / "checkpoints" / "best.ckpt").exists()
    config = json.loads((run / "config.json").read_text())["config"]
    card = json.loads((run / "model.json").read_text())
    assert config["recipe"] == "default" and card["config"]["recipe"] == "default"
    rows = log_rows(run)
    assert rows[-1]["step"] == "6" and rows[-1]["val_miou"] != ""
    # the last of 6 steps (warm-up 1): 0.5 * (1 + cos(5 pi / 6)) of the peak
    assert float(rows[-1]["lr"]) == pytest.approx(1e-2 * 0.5 * (1 + math.cos(5 * math.pi / 6)),
                                                  rel=1e-5)


def test_steps_stop_at_n_optimiser_steps_and_validate_there(dataset: Path,
                                                            tmp_path: Path) -> None:
    """4 crops per image: an epoch is longer than 5 steps, so the run stops mid-epoch."""
    run = tmp_path / "run"
    train(tiny_config(dataset, run, recipe="paper", max_steps=5, crops_per_image=4))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5
    rows = log_rows(run)
    assert [r["step"] for r in rows] == ["5"] and rows[0]["epoch"] == "1"
    assert rows[0]["val_miou"] != "" and float(rows[0]["lr"]) == pytest.approx(1e-3)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["max_steps"] == 5 and config["epochs"] is None
    assert (run / "checkpoints" / "best.ckpt").is_file()


def test_config_needs_exactly_one_of_epochs_and_steps(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="exactly one"):
        train(tiny_config(dataset, tmp_path / "a", epochs=2, max_steps=3))
    with pytest.raises(InvalidValueError, match="exactly one"):
        train(tiny_config(dataset, tmp_path / "b", epochs=None, max_steps=None))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_train_defaults_to_the_default_recipe_and_takes_steps(
        dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scdnn.cli import build_parser

    args = build_parser().parse_args(["train", str(dataset), "--out", "o"])
    assert args.recipe == "default" and args.epochs is None and args.steps is None
    bench = build_parser().parse_args(["benchmark", str(dataset), "--out", "o"])
    assert bench.recipe == "paper"
    assert main(["train", str(dataset), "--out", "o", "--epochs", "2", "--steps", "3"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_old_config_without_recipe_reads_as_paper(dataset: Path, tmp_path: Path) -> None:
    old = {"data": "d", "out": "o", "model": "scdnn", "epochs": 5, "lr": 1e-3}
    config = TrainConfig(**old)
    assert config.recipe == "paper" and config.max_steps is None
    # a benchmark's finished run written before recipes is still this benchmark's
    run = tmp_path / "run"
    train(tiny_config(dataset, run, recipe="paper", max_steps=1))
    saved = json.loads((run / "config.json").read_text())
    split = Split.from_dict(json.loads((run / "split.json").read_text()))
    expected = dict(saved["config"])
    for key in ("recipe", "max_steps", "encoder_weights"):
        saved["config"].pop(key)
    saved["config"]["epochs"] = 50
    expected.update(epochs=50, max_steps=None)
    (run / "config.json").write_text(json.dumps(saved))
    assert run_state(run, expected, split) == "evaluate"
    assert run_state(run, {**expected, "recipe": "default"}, split) == "fresh"


# --- the cpu budget ------------------------------------------------------------------------

def test_cpu_budget_is_1000_steps_of_batch_8_at_256_px() -> None:
    o = budget_overrides("cpu")
    assert CPU_STEPS == 1000
    assert (o["max_steps"], o["batch_size"], o["image_size"]) == (1000, 8, 256)
    assert o["max_minutes"] is None and o["epochs"] is None
    assert "1000 optimiser steps" in BUDGETS["cpu"].description
    TrainConfig(data="d", out="o", **o).check()
    for name in ("smoke", "paper"):
        TrainConfig(data="d", out="o", **budget_overrides(name)).check()


def test_benchmark_folder_of_the_old_minute_budget_is_refused(
        folder_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench"
    out.mkdir()
    old_train = {k: v for k, v in budget_overrides("cpu").items()
                 if k not in ("max_steps", "recipe")}
    old_train.update(epochs=200, max_minutes=20.0)
    (out / "benchmark.json").write_text(json.dumps(
        {"benchmark": {"dataset": {}, "budget": "cpu", "train": old_train, "split_seed": 0,
                       "tolerance": 2}}))
    new = {"dataset": {}, "budget": "cpu", "train": budget_overrides("cpu"),
           "split_seed": 0, "tolerance": 2}
    with pytest.raises(InvalidValueError, match="old cpu budget"):
        check_out(out, new, overwrite=False)
    assert check_out(out, new, overwrite=True) is False
    code = main(["benchmark", str(folder_dataset), "--out", str(out), "--budget", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "old cpu budget" in err and "benchmark.json" in err


#: TrainConfig's fields when benchmark.json was first written (format 1). A field added to
#: TrainConfig since must be in ADDED_FIELDS with the value older benchmarks ran with, or an
#: upgraded scdnn refuses to continue a benchmark it started.
FORMAT_1_TRAIN_FIELDS = {
    "data", "out", "model", "epochs", "max_minutes", "batch_size", "image_size",
    "crops_per_image", "seed", "lr", "beta1", "beta2", "eps", "class_weights",
    "test_fraction", "val_fraction", "split", "use_dem", "include_non_landslide",
    "accelerator", "devices", "precision", "workers", "windows_per_epoch", "test_scenes",
    "use_dsm", "val_block", "model_kwargs"}


def test_every_train_field_added_since_format_1_has_an_upgrade_value() -> None:
    from dataclasses import fields

    from scdnn.benchmark.plan import ADDED_FIELDS

    added = {f.name for f in fields(TrainConfig)} - FORMAT_1_TRAIN_FIELDS
    assert added <= set(ADDED_FIELDS), sorted(added - set(ADDED_FIELDS))


def test_benchmark_started_before_num_nodes_existed_continues(tmp_path: Path) -> None:
    """A benchmark folder written before --num-nodes (its train identity has no num_nodes)
    is continued by the same command, not refused as another configuration."""
    from dataclasses import asdict

    from scdnn.benchmark.plan import benchmark_identity

    train_now = asdict(TrainConfig(data="d", out="o", recipe="default",
                                   **budget_overrides("cpu")))
    new = benchmark_identity({}, "cpu", train_now, 0, 2)
    old = json.loads(json.dumps(new))
    del old["train"]["num_nodes"]
    out = tmp_path / "bench"
    out.mkdir()
    (out / "benchmark.json").write_text(json.dumps({"benchmark": old}))
    assert check_out(out, new, overwrite=False) is True
    two_nodes = benchmark_identity({}, "cpu", {**train_now, "num_nodes": 2}, 0, 2)
    with pytest.raises(InvalidValueError, match="num_nodes: 1 -> 2"):
        check_out(out, two_nodes, overwrite=False)


# --- recipes part by part (ablations) ----------------------------------------------------

def test_a_recipe_is_its_named_parts_with_the_changes_given() -> None:
    from scdnn.trainers.recipes import NAMED, Recipe

    paper, default = Recipe.parse("paper"), Recipe.parse("default")
    assert (paper.optimizer, paper.schedule, paper.loss, paper.augmentation, paper.ema,
            paper.weights) == ("adam", "constant", "ce", "basic", False, "best")
    assert (default.optimizer, default.schedule, default.loss, default.augmentation,
            default.ema, default.weights) == ("adamw", "warmup-cosine", "ce+dice", "strong",
                                              True, "final")
    r = Recipe.parse("default: augmentation=basic , loss=ce")
    assert (r.name, r.loss, r.augmentation, r.optimizer, r.ema) == (
        "default", "ce", "basic", "adamw", True)
    # the shortest text: changed parts in the order of PARTS; unchanged ones dropped
    assert r.text == "default:loss=ce,augmentation=basic"
    assert Recipe.parse("default:loss=ce+dice").text == "default"
    assert Recipe.parse("default:ema=no,weights=best").text == "default:ema=no,weights=best"
    assert Recipe.parse(r.text) == r
    assert NAMED["paper"] == paper and paper.text == "paper"


@pytest.mark.parametrize("text, message", [
    ("fancy", "unknown recipe 'fancy'"),
    ("default:loss=dice", "recipe part loss takes ce, ce\\+dice, got 'dice'"),
    ("default:lr=1", "'lr=1' in recipe 'default:lr=1' is not part=value"),
    ("default:loss", "'loss' in recipe"),
    ("default:loss=ce,loss=ce+dice", "part loss is given twice"),
    ("default:", "nothing after ':'"),
    ("paper:ema=yes", "ema=yes keeps the final averaged weights"),
])
def test_a_bad_recipe_is_refused_naming_the_part(text: str, message: str, dataset: Path,
                                                 tmp_path: Path, capsys) -> None:
    from scdnn.trainers.recipes import Recipe

    with pytest.raises(InvalidValueError, match=message):
        Recipe.parse(text)
    with pytest.raises(InvalidValueError, match=message):
        tiny_config(dataset, tmp_path / "api", recipe=text).check()
    out = tmp_path / "cli"
    assert main(["train", str(dataset), "--out", str(out), "--recipe", text]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--recipe" in err, err
    assert not out.exists()


def test_task_takes_loss_optimiser_and_schedule_from_the_recipe_parts() -> None:
    task = tiny_task(recipe="default:loss=ce,schedule=constant", lr=2e-3)
    assert type(task.criterion) is nn.CrossEntropyLoss
    trace = fit_steps(task, 3)
    assert type(task.trainer.optimizers[0]) is torch.optim.AdamW
    assert task.trainer.lr_scheduler_configs == [] and trace.lrs == [2e-3] * 3
    task = tiny_task(recipe="paper:loss=ce+dice,schedule=warmup-cosine", lr=2e-3)
    assert type(task.criterion) is DiceCELoss
    trace = fit_steps(task, 4)
    assert type(task.trainer.optimizers[0]) is torch.optim.Adam
    assert trace.lrs[-1] < trace.lrs[1]


def test_default_recipe_without_ema_can_keep_the_best_epoch(dataset: Path,
                                                            tmp_path: Path) -> None:
    """The ablation of 'final averaged weights instead of a validation pick': no EMA state
    in the checkpoint, best.ckpt written, the card's recipe the shortest text."""
    run = tmp_path / "run"
    train(tiny_config(dataset, run, recipe="default:ema=no,weights=best", max_steps=4))
    assert (run / "checkpoints" / "best.ckpt").is_file()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert "current_model_state" not in ckpt
    card = json.loads((run / "model.json").read_text())
    assert card["config"]["recipe"] == "default:ema=no,weights=best"
    assert card["best_epoch"] >= 1


def test_cli_train_records_the_recipe_in_its_shortest_form(dataset: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", str(dataset), "--out", str(out), "--steps", "2", "--image-size",
                 "32", "--batch-size", "2", "--accelerator", "cpu",
                 "--recipe", "default:loss=ce+dice,augmentation=basic"]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["recipe"] == "default:augmentation=basic"
