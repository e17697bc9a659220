"""The Lightning pieces on their own: the task, the data modules and the CSV log callback,
on tiny generated data (a few seconds in all)."""

from __future__ import annotations

import csv
import logging
import os
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import Affine
from torch.utils.data import DataLoader

from scdnn.datasets import Normalization, open_dataset
from scdnn.datasets.scenes import RandomWindowSampler, SceneCollection
from scdnn.errors import UserError
from scdnn.metrics import scores_from_confusion
from scdnn.trainers.callbacks import LOG_COLUMNS, EpochCSVLog
from scdnn.trainers.data import SceneDataModule, SegmentationDataModule
from scdnn.trainers.task import SegmentationTask

pytestmark = pytest.mark.usefixtures("one_thread", "quiet_lightning")

NORM = Normalization(mean=[128.0] * 3, std=[64.0] * 3)
#: conftest's TINY with 8 channels from the stem on: torch 2.14's channels-last backward of a
#: strided 1x1 convolution with fewer than 8 input channels corrupts the heap on one thread.
TRAINABLE = {"widths": (8, 8, 8, 8), "aspc_channels": 8, "decoder_channels": 8}
VAL_KEYS = {"val_loss", "val_miou", "val_pa", "val_mpa", "val_fwiou", "val_landslide_iou"}


def tiny_task(**kwargs) -> SegmentationTask:
    torch.manual_seed(0)
    return SegmentationTask(model="scdnn", model_kwargs=dict(TRAINABLE), **kwargs)


def batch(n: int = 2, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, 2, (n, size, size), generator=g)
    mask[:, :4] = 255  # padding rows: ignored
    return {"image": torch.randn(n, 3, size, size, generator=g), "mask": mask,
            "name": [f"i{k}" for k in range(n)]}


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False,
                     num_sanity_val_steps=0, **kwargs)



# --- SegmentationTask ------------------------------------------------------------------------

def test_training_step_returns_a_finite_loss_with_gradients() -> None:
    task = tiny_task()
    loss = task.training_step(batch(), 0)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    grads = [p.grad for p in task.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_loss_ignores_label_255_and_uses_the_class_weights() -> None:
    """The loss is cross-entropy with the configured class weights over pixels not 255."""
    data = batch()
    plain = tiny_task()
    weighted = tiny_task(class_weights=[0.2, 5.0])
    assert torch.equal(weighted.criterion.weight, torch.tensor([0.2, 5.0]))
    assert plain.criterion.weight is None
    with torch.no_grad():
        logits = weighted(data["image"]).float()
        keep = data["mask"] != 255
        expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], data["mask"][keep],
                                   weight=torch.tensor([0.2, 5.0]))
        assert float(weighted.training_step(data, 0)) == pytest.approx(float(expected),
                                                                       rel=1e-5)
        assert float(plain.training_step(data, 0)) != pytest.approx(float(expected), rel=1e-3)
    # the weights travel with the module (a buffer) and are saved in its checkpoint
    assert "criterion.weight" in weighted.state_dict()


def test_configure_optimizers_is_adam_with_the_configured_settings() -> None:
    task = tiny_task(lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6)
    optimizer = task.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.02 and group["betas"] == (0.8, 0.95) and group["eps"] == 1e-6
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(task.parameters()))
    default = tiny_task().configure_optimizers().param_groups[0]  # the paper's settings
    assert (default["lr"], default["betas"], default["eps"]) == (1e-3, (0.9, 0.999), 1e-8)


def _expected_scores(task: SegmentationTask, batches: list[dict]) -> dict:
    cm = np.zeros((2, 2), np.int64)
    with torch.no_grad():
        for b in batches:
            pred = task(b["image"]).argmax(1)
            keep = b["mask"] != 255
            np.add.at(cm, (b["mask"][keep].numpy(), pred[keep].numpy()), 1)
    return scores_from_confusion(cm)


def test_validation_logs_scores_over_all_pixels_of_the_epoch() -> None:
    """One confusion matrix over every validation batch (not a mean of per-batch scores),
    reset between epochs."""
    task = tiny_task().eval()
    first = [batch(1, 32, seed=s) for s in (1, 2, 3)]
    second = [batch(1, 32, seed=s) for s in (4, 5)]
    trainer = quiet_trainer()
    logged = trainer.validate(task, dataloaders=DataLoader(first, batch_size=None),
                              verbose=False)[0]
    assert set(logged) == VAL_KEYS
    scores = _expected_scores(task, first)
    assert logged["val_miou"] == pytest.approx(scores["miou"], abs=1e-6)
    assert logged["val_pa"] == pytest.approx(scores["pa"], abs=1e-6)
    assert logged["val_mpa"] == pytest.approx(scores["mpa"], abs=1e-6)
    assert logged["val_fwiou"] == pytest.approx(scores["fwiou"], abs=1e-6)
    assert logged["val_landslide_iou"] == pytest.approx(scores["class_iou"]["landslide"],
                                                        abs=1e-6)
    assert np.isfinite(logged["val_loss"])
    again = trainer.validate(task, dataloaders=DataLoader(second, batch_size=None),
                             verbose=False)[0]
    assert again["val_miou"] == pytest.approx(_expected_scores(task, second)["miou"], abs=1e-6)


# --- data modules ----------------------------------------------------------------------------

def test_segmentation_data_module_loaders(folder_dataset: Path) -> None:
    dataset = open_dataset(folder_dataset)
    module = SegmentationDataModule(dataset, [0, 1, 2], [3, 4], NORM, image_size=32,
                                    batch_size=2, crops_per_image=3)
    train = module.train_dataloader()
    assert len(train.dataset) == 9 and len(train) == 4  # 9 crops, the last odd one dropped
    batches = list(train)
    assert len(batches) == 4
    for b in batches:
        assert b["image"].shape == (2, 3, 32, 32) and b["image"].dtype == torch.float32
        assert b["mask"].shape == (2, 32, 32) and b["mask"].dtype == torch.int64
        assert set(b["mask"].unique().tolist()) <= {0, 1, 255}
    val = module.val_dataloader()
    assert len(val) == 2
    for b in val:  # native size, one image per batch
        assert b["image"].shape == (1, 3, 40, 48) and b["mask"].shape == (1, 40, 48)
    # fewer samples than a batch: one short batch, nothing dropped
    small = SegmentationDataModule(dataset, [0], [1], NORM, image_size=32, batch_size=8)
    assert [b["image"].shape[0] for b in small.train_dataloader()] == [1]


def _first_batch(module) -> dict:
    return next(iter(module.train_dataloader()))


def test_segmentation_data_module_seeding(folder_dataset: Path) -> None:
    dataset = open_dataset(folder_dataset)

    def first(seed: int) -> dict:
        L.seed_everything(seed, verbose=False)
        module = SegmentationDataModule(dataset, [0, 1, 2, 3], [4], NORM, image_size=24,
                                        batch_size=2, seed=seed)
        return _first_batch(module)

    a, b, c = first(0), first(0), first(1)
    assert a["name"] == b["name"]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert a["name"] != c["name"] or not torch.equal(a["image"], c["image"])


def write_scene(root: Path, size: int = 64) -> Path:
    """One scene folder: a ramp image (every flip and rotation changes it), all valid."""
    root.mkdir(parents=True)
    rows, cols = np.mgrid[0:size, 0:size]
    ramp = (rows * 3 + cols).astype(np.uint8)
    grid = dict(driver="GTiff", width=size, height=size, crs="EPSG:32647",
                transform=Affine(0.5, 0, 500000.0, 0, -0.5, 3400000.0))
    with rasterio.open(root / "rgb.tif", "w", count=3, dtype="uint8", **grid) as dst:
        dst.write(np.stack([ramp, ramp // 2, 255 - ramp]))
    with rasterio.open(root / "mask.tif", "w", count=1, dtype="uint8", nodata=255,
                       **grid) as dst:
        dst.write((rows < cols).astype(np.uint8), 1)
    return root


def scene_module(root: Path, size: int, length: int, seed: int = 0, **kwargs
                 ) -> SceneDataModule:
    collection = SceneCollection(root)
    split = {"train": collection.names, "test": [], "val_blocks": {}, "seed": seed}
    sampler = RandomWindowSampler(collection, split, size, length, seed)
    return SceneDataModule(collection, split, sampler, NORM, **kwargs)


def test_scene_data_module_loaders_and_seeding(tmp_path: Path) -> None:
    root = write_scene(tmp_path / "scene", size=64)
    module = scene_module(root, size=32, length=6, batch_size=4)
    train = module.train_dataloader()
    assert len(train) == 1  # 6 windows, batch 4: the short batch dropped
    b = next(iter(train))
    assert b["image"].shape == (4, 3, 32, 32) and b["image"].dtype == torch.float32
    assert b["mask"].shape == (4, 32, 32) and b["mask"].dtype == torch.int64
    val = module.val_dataloader()  # nothing held out: a fixed draw of 8 training windows
    assert len(val) == 8 and next(iter(val))["image"].shape == (1, 3, 32, 32)

    again = _first_batch(scene_module(root, size=32, length=6, batch_size=4))
    other = _first_batch(scene_module(root, size=32, length=6, batch_size=4, seed=1))
    assert again["name"] == b["name"] and torch.equal(again["image"], b["image"])
    assert other["name"] != b["name"] or not torch.equal(other["image"], b["image"])


def test_scene_workers_do_not_repeat_each_others_augmentations(tmp_path: Path) -> None:
    """Windows as large as the scene: every sample is the whole scene, so samples differ
    only by their augmentation. Two workers must not draw the same augmentations."""
    root = write_scene(tmp_path / "scene", size=32)
    torch.manual_seed(0)
    module = scene_module(root, size=32, length=8, batch_size=1, workers=2)
    images = [b["image"] for b in module.train_dataloader()]
    assert len(images) == 8
    # batches alternate between the workers: 0, 2, 4, 6 from one, 1, 3, 5, 7 from the other
    assert not all(torch.equal(images[k], images[k + 1]) for k in range(0, 8, 2))


# --- EpochCSVLog -----------------------------------------------------------------------------

def _fit(root: Path, epochs: int, log: Path, ckpt_path: Path | None = None) -> None:
    L.seed_everything(0, verbose=False)
    dataset = open_dataset(root)
    module = SegmentationDataModule(dataset, [0, 1, 2], [3], NORM, image_size=32,
                                    batch_size=3)
    last = L.pytorch.callbacks.ModelCheckpoint(dirpath=log.parent / "ckpt", filename="last",
                                               monitor=None, save_top_k=1,
                                               enable_version_counter=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, max_epochs=epochs,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[EpochCSVLog(log), last])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # resuming into it
        trainer.fit(tiny_task(), datamodule=module, ckpt_path=ckpt_path, weights_only=True)


def _rows(log: Path) -> list[dict]:
    with open(log, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_log_one_row_per_epoch_and_resume_appends(folder_dataset: Path,
                                                      tmp_path: Path) -> None:
    log = tmp_path / "run" / "log.csv"
    _fit(folder_dataset, 2, log)
    rows = _rows(log)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert tuple(rows[0]) == LOG_COLUMNS
    for r in rows:
        assert all(r[k] != "" for k in LOG_COLUMNS), r
        assert float(r["seconds"]) >= 0 and 0 <= float(r["val_miou"]) <= 1
    # a run killed after writing epoch 3's row but before saving its checkpoint
    with open(log, "a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=LOG_COLUMNS).writerow(
            {"epoch": 3, "train_loss": 99, "val_miou": 0.5})
    _fit(folder_dataset, 3, log, ckpt_path=log.parent / "ckpt" / "last.ckpt")
    resumed = _rows(log)
    assert [int(r["epoch"]) for r in resumed] == [1, 2, 3]
    assert resumed[:2] == rows  # kept as they were
    assert float(resumed[2]["train_loss"]) != 99  # the new epoch 3, not the stale row


class _FakeTrainer:
    is_global_zero = True
    sanity_checking = False
    global_step = 0

    def __init__(self, epoch: int, metrics: dict) -> None:
        self.current_epoch = epoch
        self.callback_metrics = {k: torch.tensor(v) for k, v in metrics.items()}


def test_csv_log_is_replaced_atomically(tmp_path: Path) -> None:
    """Each write renames a complete file over log.csv and never rewrites it in place: a
    reader of the previous file keeps reading it whole, and no temporary is left."""
    log = tmp_path / "log.csv"
    callback = EpochCSVLog(log)
    callback.on_train_start(_FakeTrainer(0, {}), None)
    for epoch in range(3):
        before = log.read_text()
        with open(log) as reader:  # opened before the write, read after it
            trainer = _FakeTrainer(epoch, {"train_loss": 1.0 / (epoch + 1), "val_miou": 0.5})
            callback.on_train_epoch_start(trainer, None)
            callback.on_train_epoch_end(trainer, None)
            assert reader.read() == before
            assert os.fstat(reader.fileno()).st_nlink == 0  # replaced, not truncated
        assert log.read_text().startswith(before) and len(log.read_text()) > len(before)
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]
    assert [r["train_loss"] for r in _rows(log)] == ["1.0", "0.5", "0.333333"]


def test_csv_log_skips_the_sanity_check_and_other_ranks(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    callback = EpochCSVLog(log)
    callback.on_train_start(_FakeTrainer(0, {}), None)
    sanity = _FakeTrainer(0, {"val_miou": 0.1})
    sanity.sanity_checking = True
    other_rank = _FakeTrainer(0, {"val_miou": 0.2})
    other_rank.is_global_zero = False
    for trainer in (sanity, other_rank):
        callback.on_train_epoch_start(trainer, None)
        callback.on_train_epoch_end(trainer, None)
    assert _rows(log) == []


# --- train(): global state -------------------------------------------------------------------

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def test_quiet_lightning_is_undone_after_the_block() -> None:
    from scdnn.trainers.fit import _quiet_lightning

    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    filters = list(warnings.filters)
    try:
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
        with _quiet_lightning():
            assert all(lg.level == logging.WARNING for lg in loggers)
            with warnings.catch_warnings(record=True) as caught:
                warnings.warn("this dataloader does not have many workers", UserWarning,
                              stacklevel=1)
            assert caught == []
        assert all(lg.level == logging.DEBUG for lg in loggers)
        assert warnings.filters == filters
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def test_train_restores_warning_filters_and_logger_levels(tmp_path: Path) -> None:
    """Even when it fails: an unknown model is refused after Lightning was quietened."""
    from scdnn.trainers.fit import TrainConfig, train

    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.INFO)
        filters = list(warnings.filters)
        with pytest.raises(UserError, match="unet9000"):
            train(TrainConfig(data=str(tmp_path), out=str(tmp_path / "o"), model="unet9000"))
        assert warnings.filters == filters
        assert all(lg.level == logging.INFO for lg in loggers)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def test_epoch_log_times_an_epoch_resumed_midway_from_the_resume(tmp_path):
    """A run resumed in the middle of an epoch gets no epoch-start hook for it; its row
    once held the process clock's whole value (16 hours in a bundled run's log.csv)."""
    import csv
    import time
    from types import SimpleNamespace

    from scdnn.trainers.callbacks import EpochCSVLog

    log = EpochCSVLog(tmp_path / "log.csv")
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=3, global_step=70,
                              sanity_checking=False, callback_metrics={}, optimizers=[])
    time.sleep(0.01)
    log.on_train_start(trainer, None)  # resumed: no on_train_epoch_start for epoch 4
    log.on_train_epoch_end(trainer, None)
    (row,) = list(csv.DictReader(open(tmp_path / "log.csv", newline="")))
    assert row["epoch"] == "4" and 0 <= float(row["seconds"]) < 5
