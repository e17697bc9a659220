"""What ``scdnn benchmark`` compares, and under which training budget.

Every network of a benchmark gets the same split, augmentation, optimizer and budget; a
budget is a set of :class:`scdnn.trainers.fit.TrainConfig` overrides on top of
:data:`COMMON` (the paper's optimizer settings, Section 4: alpha = 0.001, beta1 = 0.9,
beta2 = 0.999, eps = 1e-8, and its 70 % / 30 % split, of which we keep 10 % of all images
for validation). The training recipe (:mod:`scdnn.trainers.recipes`) is the benchmark's
own option, ``paper`` (Adam, constant rate, cross-entropy, best validation epoch) unless
asked otherwise.

Budgets
-------
``smoke``
    Seconds on tiny data, for CI and tests: 1 epoch of one 32 px crop per training image,
    batch 2. Its scores mean nothing.
``cpu``
    A fixed 1000 optimiser steps per network (``max_steps=1000``), batch 8, 256 px crops, 8
    crops per training image per epoch (an epoch is only how often validation runs: about 21
    steps on ``sichuan-aerial`` and ``hokkaido-iburi``, so about 48 validations). Steps, not
    minutes, so that the budget means the same on every host; it costs a CPU hours for the
    slow networks (SegNet, DeepLab v3+ ResNet50). The results record the epochs each network
    reached and its training seconds. Benchmark folders made when this budget was 20 minutes
    of wall clock are refused (:func:`scdnn.benchmark.plan.check_out`).
``paper``
    The full schedule, meant for a GPU: a fixed 100 epochs, no time limit, 256 px crops, one
    crop per training image per epoch (an epoch is one pass over the training images), batch
    8. The paper does not state its epoch count, crop size or batch size; these are our
    choice.

Scenes
------
On georeferenced scenes (a train scene and a test scene, e.g. ``jinsha-uav``) there are no
training images to count: an epoch is ``windows_per_epoch`` random windows of ``image_size``
pixels over the training scenes' valid, non-held-out area, and validation holds out
``val_fraction`` (10 %) of their valid labelled pixels as square blocks of ``val_block``
pixels (:func:`scdnn.datasets.scenes.make_scene_split`). :data:`SCENE_OVERRIDES` adds, per
budget:

``smoke``
    4 windows per epoch (of 32 px, batch 2), 64 px validation blocks: seconds on a tiny scene
    (on jinsha-uav, minutes: validation alone is about 60 blocks).
``cpu``
    160 windows per epoch (20 batches of 8), 256 px validation blocks. The crops per epoch
    match the image datasets' at this budget: 8 crops x about 20 training images (21 in the
    seeded splits of ``sichuan-aerial`` and ``hokkaido-iburi``, 168 crops), so validation
    runs about as often as there (every 20 steps, 50 times over the 1000 steps; every
    network is validated and checkpointed equally often). 256 px blocks (not 512) spread the 10 %
    validation share over more places of the training scene (jinsha scene-a, split seed 0:
    6 blocks instead of 2), which makes picking the best epoch less of a coin toss.
``paper``
    512 windows per epoch (64 batches of 8, about the 462 training images of the Bijie
    dataset under this split), 256 px validation blocks, 100 epochs.

Model rows
----------
The paper's five networks (:data:`PAPER_MODELS`, in the order of its Table 2) and three SCDnn
ablations (:data:`ABLATIONS`) trained under the same budget: ``scdnn-aspp`` (DeepLab v3+'s
ASPP, with its image-pooling branch, in place of the ASPC), ``scdnn-noskip`` (no skip
connection in the decoder) and ``scdnn-disjoint`` (4x4 kernels equal to the stride, which do
not overlap, in both x4 transposed-convolution upsampling blocks, instead of SCDnn's default
8x8 kernels cropped by 2, as MATLAB's DeepLab v3+ decoder has them). Before SCDnn's default
became 8x8 the row was ``scdnn-overlap`` (8x8) and ``scdnn`` had 4x4 kernels: results
written then keep those names. Variants (:data:`VARIANTS`), asked for by name only:
``scdnn-half`` and ``scdnn-quarter``, SCDnn at half and a quarter of the data's resolution
(``input_scale`` 0.5 and 0.25, :mod:`scdnn.models.rescaled`), the crops they see of the
budget's size (two and four times as wide in the data), so their compute per step is SCDnn's.

This module imports nothing heavy, so the command line can use it for its help text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import InvalidValueError, param

__all__ = ["ABLATIONS", "VARIANTS", "ALL_MODELS", "BUDGETS", "BUDGET_NAMES", "COMMON", "CPU_STEPS",
           "MODEL_SPECS", "ModelSpec", "PAPER_MODELS", "SCENE_OVERRIDES", "Budget", "budget_notes",
           "budget_overrides", "resolve_models"]


#: Settings every network gets whatever the budget: the paper's optimizer and split fractions,
#: plain cross-entropy, fp32, RGB only.
COMMON: dict[str, Any] = {
    "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
    "class_weights": None,
    "test_fraction": 0.3, "val_fraction": 0.1,
    "use_dem": False, "include_non_landslide": False,
    "precision": "32-true",
}


@dataclasses.dataclass(frozen=True)
class Budget:
    """A named training budget: TrainConfig overrides and a one-line description."""

    name: str
    description: str
    overrides: dict[str, Any]


#: Optimiser steps per network of the ``cpu`` budget.
CPU_STEPS = 1000

BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", "1 epoch of 32 px crops, batch 2: seconds, for CI (scores "
                    "mean nothing)",
                    {"epochs": 1, "max_minutes": None, "image_size": 32, "crops_per_image": 1,
                     "batch_size": 2}),
    "cpu": Budget("cpu", "1000 optimiser steps per network (the same on every host), 256 px "
                  "crops, 8 crops per image per epoch, batch 8",
                  {"epochs": None, "max_steps": CPU_STEPS, "max_minutes": None,
                   "image_size": 256, "crops_per_image": 8, "batch_size": 8}),
    "paper": Budget("paper", "100 epochs, no time limit, 256 px crops, 1 crop per image, "
                    "batch 8 (for a GPU; the paper states no epoch count: our choice)",
                    {"epochs": 100, "max_minutes": None, "image_size": 256,
                     "crops_per_image": 1, "batch_size": 8}),
}

BUDGET_NAMES: tuple[str, ...] = tuple(BUDGETS)

#: What a budget adds on scene data (see *Scenes* above): windows per epoch and the size of
#: the held-out validation blocks.
SCENE_OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": {"windows_per_epoch": 4, "val_block": 64},
    "cpu": {"windows_per_epoch": 160, "val_block": 256},
    "paper": {"windows_per_epoch": 512, "val_block": 256},
}

#: One line per budget on what an epoch is on scenes (for help texts and results.md).
SCENE_DESCRIPTIONS: dict[str, str] = {
    "smoke": "an epoch is 4 random 32 px windows; 64 px validation blocks",
    "cpu": "an epoch (how often validation runs) is 160 random 256 px windows (8 crops x "
           "~20 images, as on image datasets); 256 px validation blocks",
    "paper": "an epoch is 512 random 256 px windows; 256 px validation blocks",
}


def budget_overrides(name: str, kind: str = "dataset") -> dict[str, Any]:
    """The TrainConfig overrides of budget ``name``: :data:`COMMON` plus the budget's own,
    plus :data:`SCENE_OVERRIDES` when ``kind`` is ``"scenes"``.

    Raises
    ------
    ScdnnError
        Unknown budget name.
    """
    if name not in BUDGETS:
        raise InvalidValueError(f"unknown budget '{name}'; choose from: {', '.join(BUDGET_NAMES)}")
    overrides = {**COMMON, **BUDGETS[name].overrides}
    if kind == "scenes":
        overrides.update(SCENE_OVERRIDES[name])
    return overrides


def budget_notes(name: str, kind: str = "dataset") -> dict[str, Any]:
    """What results.json's ``config`` adds about budget ``name`` on data of ``kind``: on
    scenes, what an epoch is (``scene_description``, :data:`SCENE_DESCRIPTIONS`)."""
    return {"scene_description": SCENE_DESCRIPTIONS[name]} if kind == "scenes" else {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One row of the benchmark tables.

    Attributes
    ----------
    name : the row's name, also the run folder prefix (``scdnn-aspp`` -> ``scdnn-aspp-seed0``)
    network : the :func:`scdnn.models.create_model` name
    kwargs : keyword arguments for the network (as a tuple of pairs, to stay hashable)
    label : how the tables name it
    paper : the key of the paper's published figures for this row, or None (ablations)
    """

    name: str
    network: str
    kwargs: tuple[tuple[str, Any], ...]
    label: str
    paper: str | None

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return dict(self.kwargs)


PAPER_MODELS: tuple[str, ...] = ("sssn", "segnet", "deeplabv3plus-resnet50",
                                 "deeplabv3plus-mobilenetv2", "scdnn")
ABLATIONS: tuple[str, ...] = ("scdnn-aspp", "scdnn-noskip", "scdnn-disjoint")
VARIANTS: tuple[str, ...] = ("scdnn-half", "scdnn-quarter")

MODEL_SPECS: dict[str, ModelSpec] = {
    "sssn": ModelSpec("sssn", "sssn", (), "SSSN", "sssn"),
    "segnet": ModelSpec("segnet", "segnet", (), "SegNet", "segnet"),
    "deeplabv3plus-resnet50": ModelSpec("deeplabv3plus-resnet50", "deeplabv3plus-resnet50", (),
                                        "DeepLab v3+ ResNet50", "deeplabv3plus-resnet50"),
    "deeplabv3plus-mobilenetv2": ModelSpec("deeplabv3plus-mobilenetv2",
                                           "deeplabv3plus-mobilenetv2", (),
                                           "DeepLab v3+ MobileNetV2", "deeplabv3plus-mobilenetv2"),
    "scdnn": ModelSpec("scdnn", "scdnn", (), "SCDnn", "scdnn"),
    "scdnn-aspp": ModelSpec("scdnn-aspp", "scdnn", (("context", "aspp"),),
                            "SCDnn with ASPP (ablation)", None),
    "scdnn-noskip": ModelSpec("scdnn-noskip", "scdnn", (("skip", False),),
                              "SCDnn without skip (ablation)", None),
    "scdnn-disjoint": ModelSpec("scdnn-disjoint", "scdnn", (("upsampling_kernel", 4),),
                                "SCDnn, 4x4 disjoint upsampling kernels (ablation)", None),
    "scdnn-half": ModelSpec("scdnn-half", "scdnn", (("input_scale", 0.5),),
                            "SCDnn at half resolution", None),
    "scdnn-quarter": ModelSpec("scdnn-quarter", "scdnn", (("input_scale", 0.25),),
                               "SCDnn at a quarter of the resolution", None),
}

#: Every accepted ``--models`` name, in table order.
ALL_MODELS: tuple[str, ...] = PAPER_MODELS + ABLATIONS + VARIANTS


def resolve_models(names: str | list[str] | tuple[str, ...], ablations: bool = False
                   ) -> list[ModelSpec]:
    """The model rows for ``--models`` (``all`` = the paper's five) and ``--ablations``.

    Duplicates are dropped; the rows come in table order (:data:`ALL_MODELS`), whatever
    order they were given in.

    Raises
    ------
    ScdnnError
        An unknown name, or no model at all.
    """
    if isinstance(names, str):
        names = [names]
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted.update(PAPER_MODELS)
        elif name in MODEL_SPECS:
            wanted.add(name)
        else:
            raise InvalidValueError(f"unknown model '{name}'; choose from: all, "
                            f"{', '.join(ALL_MODELS)}")
    if ablations:
        wanted.update(ABLATIONS)
    if not wanted:
        raise InvalidValueError(f"no model to benchmark ({param('models')} is empty)")
    return [MODEL_SPECS[name] for name in ALL_MODELS if name in wanted]
