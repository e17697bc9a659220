"""Training recipes: the paper's, and ``default`` (what ``scdnn train`` uses unless told).

``paper``
    The paper's setting (Section 4): Adam, lr 1e-3 constant (β1 = 0.9, β2 = 0.999,
    ε = 1e-8), cross-entropy, flips and 90° rotations with mild brightness/contrast, and the
    weights of the epoch with the best validation MIoU. ``scdnn benchmark`` trains with it
    unless asked otherwise, and a run folder written before recipes existed is one.
``default``
    A current recipe for the same networks: AdamW (lr 1e-3, the paper's betas and eps,
    weight decay 0.01 on every weight except those of normalisation layers and the biases),
    a linear warm-up over the first 5 % of the optimiser steps then cosine decay to 0
    (:func:`warmup_cosine`, stepped per optimiser step), loss cross-entropy + soft Dice on
    the landslide class (:class:`DiceCELoss`), stronger augmentation
    (:func:`scdnn.datasets.transforms.train_transform` with ``strong=True``: scale 0.75-1.5
    and colour jitter on the RGB bands), and an exponential moving average of the weights
    (:func:`ema_callback`). The **final** averaged weights are saved, not a validation pick;
    validation still runs every epoch and after the last step, and is logged.

A recipe is a :class:`Recipe`: six parts (optimiser, schedule, loss, augmentation, EMA,
which weights are kept). ``NAME:part=value,...`` is the named recipe with some parts
changed, for ablations: ``default:loss=ce`` is the default recipe with cross-entropy
alone, ``default:ema=no,weights=best`` keeps the best validation epoch's weights instead
of the final average (:meth:`Recipe.parse`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..datasets.io import IGNORE_INDEX
from ..errors import InvalidValueError

__all__ = ["RECIPES", "NAMED", "PARTS", "Recipe", "DEFAULT_WEIGHT_DECAY", "WARMUP_FRACTION",
           "DiceCELoss", "ema_callback", "ema_decay", "parameter_groups", "warmup_cosine",
           "warmup_steps"]



@dataclass(frozen=True)
class Recipe:
    """What a training recipe decides, part by part (each part's values: :data:`PARTS`).

    Attributes
    ----------
    name : str
        The named recipe it starts from (``paper`` or ``default``).
    optimizer : str
        ``adam`` (every parameter, no weight decay) or ``adamw`` (weight decay
        :data:`DEFAULT_WEIGHT_DECAY`, none on normalisation layers and biases).
    schedule : str
        ``constant`` learning rate, or ``warmup-cosine`` (:func:`warmup_cosine`, per step).
    loss : str
        ``ce`` (cross-entropy) or ``ce+dice`` (:class:`DiceCELoss`).
    augmentation : str
        ``basic`` (flips, 90° rotations, mild brightness and contrast) or ``strong`` (also
        scale 0.75-1.5 and colour jitter; :func:`scdnn.datasets.transforms.train_transform`).
    ema : bool
        Average the weights (:func:`ema_callback`); validation sees the average.
    weights : str
        Which weights are saved: ``best`` (the epoch with the best validation MIoU) or
        ``final`` (those after the last step; the average with ``ema``).
    """

    name: str
    optimizer: str
    schedule: str
    loss: str
    augmentation: str
    ema: bool
    weights: str

    @classmethod
    def parse(cls, text: str) -> "Recipe":
        """``NAME`` or ``NAME:part=value[,part=value...]`` -> the recipe; anything else
        raises :class:`~scdnn.errors.InvalidValueError` naming the ``recipe`` option.
        ``ema`` takes yes/no; ``ema=yes`` with ``weights=best`` is refused (the validation
        pick would be of averaged weights the checkpoint does not hold)."""
        name, colon, rest = str(text).partition(":")
        if name not in NAMED:
            raise InvalidValueError(f"unknown recipe '{name}'; choose from: "
                                    f"{', '.join(RECIPES)} (optionally NAME:part=value,...)",
                                    option="recipe")
        changes: dict[str, Any] = {}
        for item in filter(None, (piece.strip() for piece in rest.split(","))):
            part, eq, value = item.partition("=")
            if part not in PARTS or not eq:
                raise InvalidValueError(f"'{item}' in recipe '{text}' is not part=value with "
                                        f"part one of {', '.join(PARTS)}", option="recipe")
            if value not in PARTS[part]:
                raise InvalidValueError(f"recipe part {part} takes {', '.join(PARTS[part])}, "
                                        f"got '{value}'", option="recipe")
            if part in changes:
                raise InvalidValueError(f"recipe part {part} is given twice in '{text}'",
                                        option="recipe")
            changes[part] = value == "yes" if part == "ema" else value
        if colon and not changes:
            raise InvalidValueError(f"recipe '{text}': nothing after ':'", option="recipe")
        recipe = dataclasses.replace(NAMED[name], **changes)
        if recipe.ema and recipe.weights == "best":
            raise InvalidValueError(f"recipe '{text}': ema=yes keeps the final averaged "
                                    "weights; use weights=final, or ema=no with weights=best",
                                    option="recipe")
        return recipe

    @property
    def text(self) -> str:
        """The shortest text :meth:`parse` reads back as this recipe: the name, then the
        parts that differ from the named recipe's, in the order of :data:`PARTS`."""
        base = NAMED[self.name]
        changed = [f"{part}={_value_text(getattr(self, part))}" for part in PARTS
                   if getattr(self, part) != getattr(base, part)]
        return self.name + (":" + ",".join(changed) if changed else "")


def _value_text(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


#: Each part of a :class:`Recipe` and the values it takes.
PARTS: dict[str, tuple[str, ...]] = {
    "optimizer": ("adam", "adamw"),
    "schedule": ("constant", "warmup-cosine"),
    "loss": ("ce", "ce+dice"),
    "augmentation": ("basic", "strong"),
    "ema": ("yes", "no"),
    "weights": ("best", "final"),
}

#: The named recipes.
NAMED: dict[str, Recipe] = {
    "paper": Recipe("paper", optimizer="adam", schedule="constant", loss="ce",
                    augmentation="basic", ema=False, weights="best"),
    "default": Recipe("default", optimizer="adamw", schedule="warmup-cosine", loss="ce+dice",
                      augmentation="strong", ema=True, weights="final"),
}
#: The recipe names, ``paper`` first.
RECIPES: tuple[str, ...] = tuple(NAMED)
#: AdamW weight decay of the ``default`` recipe.
DEFAULT_WEIGHT_DECAY = 0.01
#: Share of the optimiser steps spent warming the learning rate up (``default`` recipe).
WARMUP_FRACTION = 0.05

_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm,
                nn.LocalResponseNorm)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW parameter groups: with ``weight_decay`` (every weight of a layer other than
    a normalisation layer) and without (biases, and all parameters of BatchNorm, GroupNorm,
    LayerNorm and InstanceNorm layers). Each parameter is in exactly one group."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, _NORM_LAYERS) or name.endswith("bias"):
                no_decay.append(param)
            else:
                decay.append(param)
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]


def warmup_steps(total_steps: int, fraction: float = WARMUP_FRACTION) -> int:
    """Warm-up length: ``fraction`` of ``total_steps``, rounded, at least 1."""
    return max(1, int(round(fraction * total_steps)))


def warmup_cosine(total_steps: int, fraction: float = WARMUP_FRACTION) -> Callable[[int], float]:
    """The learning-rate factor of optimiser step ``k`` (0-based), for ``LambdaLR``.

    With ``w = warmup_steps(total_steps)``: ``(k + 1) / w`` for ``k < w`` (a linear warm-up
    that reaches the full rate at step ``w - 1``), then
    ``0.5 * (1 + cos(pi * (k - w + 1) / (total_steps - w + 1)))``, a cosine decay that is
    about 0 at the last step ``k = total_steps - 1`` (and exactly 0 one step later). Steps
    past the total keep factor 0.
    """
    total = max(1, int(total_steps))
    warm = min(warmup_steps(total, fraction), total)

    def factor(k: int) -> float:
        if k < warm:
            return (k + 1) / warm
        progress = min(1.0, (k - warm + 1) / (total - warm + 1))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class DiceCELoss(nn.Module):
    """Cross-entropy plus soft Dice loss on the landslide class (class 1).

    ``loss = CE(logits, target; class weights, ignore 255) + (1 - dice)``, with
    ``dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)`` over the valid pixels
    of the whole batch (``p``: the softmax probability of class 1, ``t``: 1 where the label
    is 1); pixels labelled ``ignore_index`` count in neither term. Class weights weigh the
    cross-entropy term (Dice is on the one class).
    """

    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX,
                 smooth: float = 1.0, positive: int = 1) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
        self.ignore_index = ignore_index
        self.smooth = float(smooth)
        self.positive = int(positive)

    def dice_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = (target != self.ignore_index).to(logits.dtype)
        prob = torch.softmax(logits, dim=1)[:, self.positive] * valid
        truth = (target == self.positive).to(logits.dtype) * valid
        inter = (prob * truth).sum()
        dice = (2 * inter + self.smooth) / (prob.sum() + truth.sum() + self.smooth)
        return 1.0 - dice

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce(logits, target) + self.dice_loss(logits, target)


def ema_decay(total_steps: int) -> float:
    """EMA decay for a run of ``total_steps``: ``1 - 10 / total_steps`` within
    [0.9, 0.999], so the average spans about the last tenth of the run (0.99 for 1000
    steps: the warm-up steps weigh nothing in the final weights)."""
    return min(0.999, max(0.9, 1.0 - 10.0 / max(1, int(total_steps))))


def ema_callback():
    """The weight-averaging callback of the ``default`` recipe: an exponential moving
    average of all parameters and buffers, updated after every optimiser step from the end
    of the warm-up, with the decay of :func:`ema_decay` for the run's length (known when fit
    begins: ``trainer.estimated_stepping_batches``). Lightning's ``EMAWeightAveraging``
    (Lightning 2.6+) when installed, else a small callback on
    ``torch.optim.swa_utils.AveragedModel``. Validation sees the averaged weights; when
    training ends they replace the network's."""
    try:
        from lightning.pytorch.callbacks import EMAWeightAveraging
    except ImportError:  # Lightning < 2.6
        return _ema_callback_class()()
    from torch.optim.swa_utils import get_ema_avg_fn

    class RunLengthEMA(EMAWeightAveraging):
        """``EMAWeightAveraging`` whose decay and start follow the run's step count."""

        def setup(self, trainer, pl_module, stage: str) -> None:
            if stage == "fit":
                total = int(trainer.estimated_stepping_batches)
                self.decay = ema_decay(total)
                self._kwargs["avg_fn"] = get_ema_avg_fn(decay=self.decay)
                self.update_starting_at_step = warmup_steps(total) - 1
            super().setup(trainer, pl_module, stage)

    return RunLengthEMA()


def _ema_callback_class():
    import lightning as L
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    class EMACallback(L.Callback):
        """EMA of the module's parameters and buffers (for Lightning without
        ``EMAWeightAveraging``): updated after each optimiser step from ``start``, swapped
        in for validation, copied into the module when training ends."""

        def __init__(self) -> None:
            self.decay, self.start = 0.999, 0
            self.average: AveragedModel | None = None
            self._last = 0

        def setup(self, trainer, pl_module, stage: str) -> None:
            if stage == "fit":
                total = int(trainer.estimated_stepping_batches)
                self.decay, self.start = ema_decay(total), warmup_steps(total) - 1
                self.average = AveragedModel(pl_module, use_buffers=True,
                                             multi_avg_fn=get_ema_multi_avg_fn(self.decay))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step > self._last and trainer.global_step - 1 >= self.start:
                self.average.update_parameters(pl_module)
                self._last = trainer.global_step

        def _swap(self, pl_module) -> None:
            pairs = zip([*self.average.module.parameters(), *self.average.module.buffers()],
                        [*pl_module.parameters(), *pl_module.buffers()], strict=True)
            for avg, cur in pairs:
                tmp = avg.data.clone()
                avg.data.copy_(cur.data)
                cur.data.copy_(tmp)

        def on_validation_epoch_start(self, trainer, pl_module) -> None:
            if self.average is not None:
                self._swap(pl_module)

        on_validation_epoch_end = on_validation_epoch_start

        def on_train_end(self, trainer, pl_module) -> None:
            pairs = zip([*self.average.module.parameters(), *self.average.module.buffers()],
                        [*pl_module.parameters(), *pl_module.buffers()], strict=True)
            for avg, cur in pairs:
                cur.data.copy_(avg.data)

        def state_dict(self) -> dict[str, Any]:
            return {"last": self._last,
                    "average": None if self.average is None else self.average.state_dict()}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self._last = state.get("last", 0)
            if self.average is not None and state.get("average") is not None:
                self.average.load_state_dict(state["average"])

    return EMACallback
