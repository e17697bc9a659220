"""The segmentation networks: SCDnn and the paper's four baselines.

>>> from scdnn.models import create_model
>>> model = create_model("scdnn", in_channels=3, num_classes=2)

Every model maps (N, in_channels, H, W) to logits (N, num_classes, H, W) for any H, W >= 1
(the input is zero-padded at the bottom and right to the model's output stride and the
logits are cropped back), and is built from scratch: no pretrained weights, no downloads.
Any of them can work at another resolution than its input's
(``create_model("scdnn", input_scale=0.5)``, :mod:`scdnn.models.rescaled`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from scdnn.errors import InvalidValueError
from scdnn.models.complexity import count_parameters, gflops
from scdnn.models.deeplab import DeepLabV3Plus
from scdnn.models.rescaled import Rescaled, check_input_scale
from scdnn.models.scdnn import SCDnn
from scdnn.models.segnet import SegNet
from scdnn.models.sssn import SSSN

__all__ = [
    "MODEL_NAMES",
    "create_model",
    "explicit_model_kwargs",
    "count_parameters",
    "gflops",
    "SCDnn",
    "SSSN",
    "SegNet",
    "DeepLabV3Plus",
    "Rescaled",
]


def _deeplab(encoder: str) -> Callable[..., nn.Module]:
    def factory(in_channels: int = 3, num_classes: int = 2, **kwargs: Any) -> nn.Module:
        return DeepLabV3Plus(encoder, in_channels=in_channels, num_classes=num_classes, **kwargs)

    return factory


#: name -> factory(in_channels=..., num_classes=..., **kwargs)
_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "scdnn": SCDnn,
    "sssn": SSSN,
    "segnet": SegNet,
    "deeplabv3plus-resnet50": _deeplab("resnet50"),
    "deeplabv3plus-mobilenetv2": _deeplab("mobilenet_v2"),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _check_kwargs(name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> None:
    """Raise ScdnnError for keyword arguments the factory does not accept."""
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the DeepLab factories pass the rest on to smp, which checks them
    unknown = sorted(set(kwargs) - set(params) - {"self"})
    if unknown:
        allowed = sorted(set(params) - {"self", "in_channels", "num_classes"}
                         | {"input_scale"})
        raise InvalidValueError(
            f"model '{name}' has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(allowed) or 'none'}"
        )


def explicit_model_kwargs(name: str, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``kwargs`` with the current default of every option whose default changed
    (:data:`scdnn.records.LEGACY_MODEL_KWARGS`) added where it is not given: what a new
    record (config.json, a model card) writes, so that it is read back as it was made."""
    from ..records import LEGACY_MODEL_KWARGS

    out = dict(kwargs or {})
    factory = _REGISTRY.get(name)
    if factory is None:
        return out
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    for key in LEGACY_MODEL_KWARGS.get(name, {}):
        if key not in out and key in params:
            out[key] = params[key].default
    return out


def create_model(name: str, in_channels: int = 3, num_classes: int = 2,
                 input_scale: float = 1.0, **kwargs: Any) -> nn.Module:
    """Build a network by name, with fresh (not pretrained) weights.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    in_channels : int
        Input bands.
    num_classes : int
        Output classes.
    input_scale : float
        Run the network at this factor of the input's resolution (0.5: half), its logits
        resampled back to the input's size (:class:`~scdnn.models.rescaled.Rescaled`); 1
        (the default) gives the network itself.
    **kwargs
        Passed to the model's constructor, e.g. ``create_model("scdnn", context="aspp")``.

    Returns
    -------
    nn.Module
        The model, in training mode, its weights in channels-last memory format, in which
        oneDNN's convolutions run faster on CPU (benchmarks/results/README.md, "Networks:
        size and speed"); results are unchanged (to float rounding).

    Raises
    ------
    ScdnnError
        Unknown name, unknown option, fewer than 1 input channel / class, or an
        ``input_scale`` out of range.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InvalidValueError(f"unknown model '{name}'; choose from: {', '.join(MODEL_NAMES)}")
    for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidValueError(f"{label} must be a positive integer, got {value!r}")
    scale = check_input_scale(input_scale)
    _check_kwargs(name, factory, kwargs)
    model = factory(in_channels=in_channels, num_classes=num_classes, **kwargs)
    if scale != 1.0:
        model = Rescaled(model, scale)
    return model.to(memory_format=torch.channels_last)
