"""``scdnn train``: from a dataset folder to a run folder with the trained weights.

Which weights are kept depends on the recipe (:mod:`.recipes`): ``paper`` keeps the epoch
with the best validation MIoU, ``default`` the final exponential moving average of the
weights. A run lasts ``epochs`` epochs or, with ``max_steps``, that many optimiser steps
(validation also runs after the last one); ``max_minutes`` can cut either short.

The order matters for users: every check that can fail on their input (dataset, split file,
options, resume checkpoint) runs before anything is written; everything written is atomic.

Run folder layout::

    RUN_DIR/
      config.json            options, normalisation, provenance (used by --resume)
      split.json             the train/val/test names (reusable with --split)
      log.csv                one row per epoch: optimiser step, losses, validation metrics,
                             learning rate, seconds
      checkpoints/best.ckpt  Lightning checkpoints: best by validation MIoU (paper recipe
      checkpoints/last.ckpt  only), and the latest
      weights.safetensors    the weights kept (see above), with the model card embedded
      model.json             the model card, readable

The card also carries the minimum mapping unit chosen on the validation samples with the
kept weights (:mod:`.mapping_unit`), which outline cleaning then takes as its default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

from ..datasets import Normalization, save_split
from ..datasets.source import TrainingData, open_source
from ..errors import InvalidValueError, param
from ..metrics import CLASS_NAMES
from ..models import create_model, explicit_model_kwargs
from ..models.rescaled import data_crop_size
from ..records import ModelCard, with_legacy_kwargs
from ..runs import launched_rank_zero, prepare_out_dir, provenance, read_json, write_json
from ..weights import save_weights
from .callbacks import EpochCSVLog
from .mapping_unit import choose_mapping_unit
from .recipes import Recipe, ema_callback
from .task import SegmentationTask


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (stored in config.json and the model card).

    ``recipe`` is ``paper`` or ``default``, or either with parts changed
    (``default:loss=ce``; :class:`scdnn.trainers.recipes.Recipe`); it is ``paper`` here,
    so that a config.json written before recipes existed reads back as what it was, while
    ``scdnn train`` asks for ``default`` unless told. ``max_steps`` (optimiser steps)
    replaces ``epochs`` when set (then ``epochs`` is ``None``). ``encoder_weights``: a local
    file of pretrained encoder weights for the DeepLab v3+ baselines
    (:mod:`scdnn.models.pretrained`), loaded before the first step.
    """

    data: str
    out: str
    model: str = "scdnn"
    epochs: int | None = 50
    max_steps: int | None = None
    recipe: str = "paper"
    encoder_weights: str | None = None
    max_minutes: float | None = None
    batch_size: int = 8
    image_size: int = 256
    crops_per_image: int = 1
    seed: int = 0
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    class_weights: list[float] | None = None
    test_fraction: float = 0.3
    val_fraction: float = 0.1
    split: str | None = None
    use_dem: bool = False
    include_non_landslide: bool = False
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    workers: int = 0
    windows_per_epoch: int = 256
    test_scenes: list[str] | None = None
    use_dsm: bool = False
    val_block: int = 512
    model_kwargs: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Refuse values that cannot train (InvalidValueError naming the field), before
        anything is read or written: the command line checks its flags the same way, this
        holds the same for the Python API. Besides: an unknown recipe, and neither or both
        of ``epochs`` and ``max_steps``."""
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"must be a positive integer, got {value!r}", option=name)

        def finite(name: str, ok, requirement: str) -> None:
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not ok(value)):
                raise InvalidValueError(f"{requirement}, got {value!r}", option=name)

        Recipe.parse(self.recipe)
        if (self.epochs is None) == (self.max_steps is None):
            raise InvalidValueError(f"give exactly one of {param('epochs')} and "
                                    f"{param('max_steps', 'steps')}")
        if self.epochs is not None:
            positive_int("epochs")
        steps = self.max_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or steps < 1):
            raise InvalidValueError(f"{param('max_steps', 'steps')} must be a positive "
                                    f"integer, got {steps!r}")
        for name in ("batch_size", "image_size", "crops_per_image", "windows_per_epoch",
                     "val_block", "num_nodes"):
            positive_int(name)
        if self.max_minutes is not None:
            finite("max_minutes", lambda v: v > 0, "must be a positive number")
        finite("lr", lambda v: v > 0, "must be a positive number")
        finite("beta1", lambda v: 0 <= v < 1, "must be a number in [0, 1)")
        finite("beta2", lambda v: 0 <= v < 1, "must be a number in [0, 1)")
        finite("eps", lambda v: v > 0, "must be a positive number")
        finite("test_fraction", lambda v: 0 <= v < 1, "must be a number in [0, 1)")
        finite("val_fraction", lambda v: 0 <= v < 1, "must be a number in [0, 1)")
        if self.test_fraction + self.val_fraction >= 1:
            raise InvalidValueError(f"and {param('val_fraction')} leave no training images "
                                    f"({self.test_fraction} + {self.val_fraction} ≥ 1)",
                                    option="test_fraction")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (
                0 <= self.seed < 2**32):
            raise InvalidValueError(f"must be an integer from 0 to {2**32 - 1}, got "
                                    f"{self.seed!r}", option="seed")
        if self.class_weights is not None:
            weights = list(self.class_weights)
            if (len(weights) != 2 or not all(isinstance(w, (int, float))
                                              and not isinstance(w, bool)
                                              and math.isfinite(w) and w >= 0 for w in weights)
                    or sum(weights) <= 0):
                raise InvalidValueError("must be two finite numbers ≥ 0 (background, "
                                        f"landslide), not both 0, got {weights!r}",
                                        option="class_weights")


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's info messages and its known-harmless warnings silenced inside the block;
    the warning filters and the loggers' levels are restored when it ends."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric",
                                                     "lightning")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        try:
            for logger in loggers:
                logger.setLevel(logging.WARNING)
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*predict_dataloader.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            # DDP: the validation scores come from a torchmetrics confusion matrix, which
            # compute() already sums over every process; logging them needs no sync_dist
            warnings.filterwarnings("ignore", ".*sync_dist=True.*when logging on epoch level.*")
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Train ``config.model`` and return the path of the weights file (the weights the
    recipe keeps: the best validation epoch's for ``paper`` (``weights=best``), the final
    averaged ones for ``default``)."""
    with _quiet_lightning():
        return _train(config, resume, overwrite)


def _train(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    config.check()
    out = Path(config.out)
    last_ckpt = out / "checkpoints" / "last.ckpt"
    if resume:
        started = (out / "config.json").is_file() and (out / "split.json").is_file()
        if not last_ckpt.is_file() and not started:
            raise InvalidValueError(f"{param('resume')}: no checkpoint to resume from "
                                    "(checkpoints/last.ckpt)", out)
        # config.json and split.json without a checkpoint: killed before the first epoch ended
        # written before recipes: "paper", the field's default; before the upsampling kernel
        # was recorded: 4, its old default (resumed_config)
        config = resumed_config(out)
        config.check()
        if not last_ckpt.is_file():
            # Stopped before its first checkpoint: nothing to keep, so the run starts over
            # with its own config and split (the same seed draws the same split).
            if launched_rank_zero():
                    print(f"scdnn: {out}: no checkpoint yet (stopped before the first epoch "
                      "ended); starting the run over", file=sys.stderr)
            resume, overwrite = False, True
    else:
        config = dataclasses.replace(
            config, model_kwargs=explicit_model_kwargs(config.model, config.model_kwargs))
    # an unknown name or option (input_scale out of range) fails here, before any work
    create_model(config.model, **config.model_kwargs)

    data = _prepare_data(config, out, resume)
    if config.encoder_weights and not resume:  # checked before anything is written
        from ..models.pretrained import load_encoder_weights

        load_encoder_weights(create_model(config.model, in_channels=data.in_channels,
                                          **config.model_kwargs),
                             config.encoder_weights, config.model)
    recipe = Recipe.parse(config.recipe)
    keep_best = recipe.weights == "best"
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="best",
                                 monitor="val_miou", mode="max", save_top_k=1,
                                 enable_version_counter=False) if keep_best else None
    # checkpoints/last.ckpt, what --resume starts from, must be the latest epoch. Since
    # Lightning 2.6 `save_last=True` writes it only when a top-k checkpoint is written, i.e.
    # a copy of best.ckpt: a resumed run would restart at its best epoch. A checkpoint
    # without a monitor saves every epoch, overwriting the same file.
    latest = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None,
                             save_top_k=1, enable_version_counter=False)
    callbacks = [latest, EpochCSVLog(out / "log.csv"), TQDMProgressBar(), ValidateAtLastStep()]
    if keep_best:
        callbacks.insert(0, checkpoint)
    if recipe.ema:
        callbacks.append(ema_callback())
    trainer = _make_trainer(config, out, callbacks)
    split = data.split
    writer = launched_rank_zero()  # other ranks of a distributed run write nothing
    if not resume and writer:
        prepare_out_dir(out, overwrite=overwrite)
        save_split(split, out / "split.json")
    L.seed_everything(config.seed, workers=True, verbose=False)
    if resume:
        normalization = Normalization.from_dict(read_json(out / "config.json")["normalization"])
    else:
        normalization = data.normalization()  # the same on every rank: same data, same split
        if writer:
            write_json(out / "config.json", {"config": config.to_dict(),
                                             "normalization": normalization.to_dict(),
                                             "provenance": provenance()})

    in_channels = data.in_channels
    task = SegmentationTask(model=config.model, in_channels=in_channels, num_classes=2,
                            lr=config.lr, beta1=config.beta1, beta2=config.beta2, eps=config.eps,
                            class_weights=config.class_weights, model_kwargs=config.model_kwargs,
                            recipe=config.recipe)
    if config.encoder_weights and not resume:
        from ..models.pretrained import load_encoder_weights

        load_encoder_weights(task.model, config.encoder_weights, config.model)
    datamodule = data.datamodule(normalization)
    trainer.fit(task, datamodule=datamodule, ckpt_path=last_ckpt if resume else None,
                weights_only=True)

    if trainer.is_global_zero:
        if keep_best:
            best_path = checkpoint.best_model_path or str(last_ckpt)
            state, best_epoch = checkpoint_model_state(best_path)
            task.model.load_state_dict(state)
            best_score = checkpoint.best_model_score
        else:  # the final (with ema, averaged) weights, already in the network; their validation
            best_epoch = trainer.current_epoch  # epochs begun, i.e. the last one, from 1
            best_score = trainer.callback_metrics.get("val_miou")
        # the smallest landslide the maps keep, chosen on the validation samples
        mapping_unit = choose_mapping_unit(task.model, datamodule.held_out_dataloader())
        card = ModelCard(
            model=config.model, in_channels=in_channels, num_classes=2,
            model_kwargs=config.model_kwargs, classes=list(CLASS_NAMES), inputs=data.inputs,
            normalization=normalization, best_epoch=best_epoch,
            best_val_miou=None if best_score is None else float(best_score),
            config=config.to_dict(), split=split.to_dict(), provenance=provenance(),
            mapping_unit=mapping_unit)
        save_weights(task.model, out / "weights.safetensors", card)
    return out / "weights.safetensors"


class ValidateAtLastStep(L.Callback):
    """Stops training right after optimiser step ``max_steps`` through ``should_stop``, so
    that Lightning validates (and checkpoints, and log.csv gets its row) at that step even
    in the middle of an epoch; ``max_steps`` alone would end the run without validating."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


def resumed_config(out: str | os.PathLike) -> TrainConfig:
    """The configuration a run in ``out`` was begun with (its config.json). A run begun
    before config.json named every network option whose default changed
    (:data:`scdnn.records.LEGACY_MODEL_KWARGS`) resumes with the network it began with."""
    saved = dict(read_json(Path(out) / "config.json")["config"])
    saved["model_kwargs"] = with_legacy_kwargs(saved.get("model", "scdnn"),
                                               saved.get("model_kwargs"))
    return TrainConfig(**saved)


def checkpoint_model_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], int]:
    """The network's state dict in a Lightning checkpoint of :func:`train` (no code is run:
    ``weights_only=True``) and the epoch it was saved at, counted from 1."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items()
             if k.startswith("model.")}
    return state, int(ckpt.get("epoch", -1)) + 1


def _prepare_data(config: TrainConfig, out: Path, resume: bool) -> TrainingData:
    """Open ``config.data`` (:func:`scdnn.datasets.source.open_source`) and draw (or reload)
    its split; every check on the user's data runs here, before anything is written."""
    source = open_source(config.data, use_dem=config.use_dem,
                         include_non_landslide=config.include_non_landslide,
                         use_dsm=config.use_dsm, test_scenes=config.test_scenes)
    source.validate()
    if resume:
        split = source.load_split(out / "split.json")
    elif config.split:
        split = source.load_split(config.split)
    else:
        split = source.draw_split(seed=config.seed, test_fraction=config.test_fraction,
                                  val_fraction=config.val_fraction, val_block=config.val_block)
    # the network sees image_size px; at an input_scale other than 1 that is a larger (or
    # smaller) crop of the data
    crop = data_crop_size(config.image_size, config.model_kwargs.get("input_scale", 1.0))
    return source.training_data(split, image_size=crop,
                                batch_size=config.batch_size,
                                crops_per_image=config.crops_per_image,
                                windows_per_epoch=config.windows_per_epoch,
                                workers=config.workers, seed=config.seed,
                                strong_augmentation=Recipe.parse(config.recipe).augmentation
                                == "strong")


def _make_trainer(config: TrainConfig, out: Path, callbacks: list) -> L.Trainer:
    """The Lightning trainer; a bad accelerator/devices/precision is the user's mistake."""
    devices: Any = config.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    try:
        return L.Trainer(
            max_epochs=-1 if config.max_steps is not None else config.epochs,
            max_steps=-1 if config.max_steps is None else config.max_steps,
            accelerator=config.accelerator, devices=devices, num_nodes=config.num_nodes,
            max_time=(None if config.max_minutes is None
                      else datetime.timedelta(minutes=config.max_minutes)),
            precision=config.precision, callbacks=callbacks, logger=False,
            default_root_dir=out, num_sanity_val_steps=0, log_every_n_steps=1,
            enable_model_summary=False,
        )
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidValueError(f"{param('accelerator')} {config.accelerator} "
                                f"{param('devices')} {config.devices} "
                                f"{param('precision')} {config.precision}: {first}") from None


def env_workers() -> int:
    """Default data-loading workers: 0 on 1–2 cores (loading in the main process is faster
    there than competing with the model for the cores), else 2."""
    return 0 if (os.cpu_count() or 1) <= 2 else 2
