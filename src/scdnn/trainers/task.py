"""The Lightning task that trains any registered network for landslide segmentation."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from ..datasets import IGNORE_INDEX
from ..metrics import scores_from_confusion
from ..models import create_model
from .recipes import DEFAULT_WEIGHT_DECAY, DiceCELoss, Recipe, parameter_groups, warmup_cosine


class SegmentationTask(L.LightningModule):
    """Pixel classification for landslide segmentation, scored with the paper's metrics.

    ``recipe`` (:class:`scdnn.trainers.recipes.Recipe` text) picks loss, optimiser and
    schedule: ``paper`` (the default here) is cross-entropy and Adam at a constant rate with
    the paper's settings (Section 4: Adam, α = 0.001, β1 = 0.9, β2 = 0.999, ε = 1e-8);
    ``default`` is cross-entropy + soft Dice and AdamW (``weight_decay``, none on
    normalisation layers and biases) with a linear warm-up and a cosine decay to 0 over the
    run's optimiser steps, stepped every step; ``NAME:part=value,...`` changes parts.
    Pixels labelled 255 (padding, no data) are ignored by the loss and the metrics.
    Validation accumulates one confusion matrix over all validation pixels and logs
    ``val_miou`` (the checkpoint criterion), ``val_pa``, ``val_mpa``, ``val_fwiou`` and
    ``val_landslide_iou``.
    """

    def __init__(
        self,
        model: str = "scdnn",
        in_channels: int = 3,
        num_classes: int = 2,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        class_weights: list[float] | None = None,
        model_kwargs: dict | None = None,
        recipe: str = "paper",
        weight_decay: float = DEFAULT_WEIGHT_DECAY,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model, in_channels=in_channels, num_classes=num_classes,
                                  **(model_kwargs or {}))
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.recipe = Recipe.parse(recipe)
        if self.recipe.loss == "ce":
            self.criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)
        else:
            self.criterion = DiceCELoss(weight=weight, ignore_index=IGNORE_INDEX)
        self.val_confusion = MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.criterion(logits.float(), batch["mask"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"]).float()
        loss = self.criterion(logits, batch["mask"])
        self.log("val_loss", loss, on_step=False, on_epoch=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        self.val_confusion.update(logits.argmax(1), batch["mask"])

    def on_validation_epoch_end(self) -> None:
        scores = scores_from_confusion(self.val_confusion.compute().cpu().numpy())
        self.val_confusion.reset()
        landslide_iou = scores["class_iou"]["landslide"]
        for key, value in (("val_miou", scores["miou"]), ("val_pa", scores["pa"]),
                           ("val_mpa", scores["mpa"]), ("val_fwiou", scores["fwiou"]),
                           ("val_landslide_iou", landslide_iou)):
            self.log(key, float(value) if value is not None else 0.0, prog_bar=key == "val_miou")

    def configure_optimizers(self):
        hp = self.hparams
        if self.recipe.optimizer == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr,
                                         betas=(hp.beta1, hp.beta2), eps=hp.eps)
        else:
            optimizer = torch.optim.AdamW(parameter_groups(self.model, hp.weight_decay),
                                          lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps)
        if self.recipe.schedule == "constant":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
