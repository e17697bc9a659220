"""Callbacks: the per-epoch CSV log of a training run."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import lightning as L

from ..runs import atomic_write

LOG_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "val_miou", "val_pa", "val_mpa",
               "val_fwiou", "val_landslide_iou", "lr", "seconds")


class EpochCSVLog(L.Callback):
    """Writes one row per finished epoch to ``log.csv``; on resume, rows of epochs that the
    restored checkpoint had not finished are dropped so none appears twice.

    ``step`` is the number of optimiser steps taken so far, ``lr`` the learning rate of the
    epoch's last step (first parameter group); a run stopped by ``max_steps`` in the middle
    of an epoch ends with a row for that partial epoch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._started = 0.0
        self._lr: float | None = None

    def _rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def _write(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        with atomic_write(self.path, "w") as handle:
            handle.write(buffer.getvalue())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a run resumed in the middle of an epoch gets no epoch start for it: its row counts
        # from the resume (not from whenever this process's clock began)
        self._started = time.perf_counter()
        if trainer.is_global_zero:
            done = trainer.current_epoch
            self._write([r for r in self._rows() if int(r["epoch"]) <= done])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch,
                             batch_idx: int) -> None:
        if trainer.optimizers:
            self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
               "lr": None if self._lr is None else float(f"{self._lr:.6g}"),
               "seconds": round(time.perf_counter() - self._started, 2)}
        row.update({k: round(metrics[k], 6) for k in LOG_COLUMNS if k in metrics})
        self._write([*self._rows(), row])
