"""A network that works at a fraction of its input's resolution: ``input_scale``.

Large landslides are told from bare ground, river beds and towns by their surroundings. A
network trained on 256 px crops at full resolution sees a sixteenth of a 1024 px aerial
image at a time, and much less than a large landslide with its surroundings, so it maps
every bright slope. Run at half resolution (``input_scale=0.5``), the same network, the
same 256 px the network sees and the same compute cover four times the ground.

:class:`Rescaled` averages blocks of ``k x k`` input pixels (``k = 1 / input_scale``, an
integer: a box filter, exact and the same in ONNX), runs the network, and resamples the
logits back up by ``k`` (bilinear, pixel centres aligned), cropped to the input's size, so
that masks, metrics and maps stay at the data's own resolution and every caller (training
loss, validation, ``predict``, ``map``, ONNX export, test-time augmentation) handles it as
any other network. The factor is part of the model: built by
``create_model(name, input_scale=...)``, recorded in the model card's ``model_kwargs`` and
rebuilt from it; training draws crops of ``image_size / input_scale`` data pixels
(:func:`data_crop_size`), so that the network sees ``image_size`` pixels whatever the scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidValueError

__all__ = ["Rescaled", "base_network", "check_input_scale", "data_crop_size", "MAX_FACTOR"]

#: The largest block averaged into one pixel (``input_scale`` 1/16: a 2048 px window becomes
#: a 128 px one).
MAX_FACTOR = 16


def check_input_scale(value: object) -> float:
    """``value`` as a float ``1 / k``, ``k`` an integer from 1 to :data:`MAX_FACTOR` (1, 0.5,
    0.25, 1/3 given to 6 digits, ...); InvalidValueError otherwise (a bool, a string, NaN,
    infinity, zero, a negative number or a factor that is not one over an integer)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and 1 / MAX_FACTOR <= value <= 1)
    if ok:
        k = round(1 / value)
        ok = abs(1 / k - value) <= 1e-6
    if not ok:
        raise InvalidValueError(f"must be 1 over an integer from 1 to {MAX_FACTOR} (1, 0.5, "
                                f"0.25, ...: 0.5 runs the network at half resolution), got "
                                f"{value!r}", option="input_scale")
    return 1 / round(1 / value)


def data_crop_size(image_size: int, input_scale: float) -> int:
    """The training crop, in data pixels, that the network sees as ``image_size`` pixels."""
    return image_size * round(1 / check_input_scale(input_scale))


def base_network(model: nn.Module) -> nn.Module:
    """The network itself: ``model``'s inside a :class:`Rescaled` one, else ``model``."""
    return model.network if isinstance(model, Rescaled) else model


class Rescaled(nn.Module):
    """``network`` run on ``k x k`` block means of its input; logits at the input's size.

    Parameters
    ----------
    network : nn.Module
        Any of :mod:`scdnn.models`' networks (N x C x H x W -> N x classes x H x W).
    input_scale : float
        ``1 / k`` (:func:`check_input_scale`); 1 would change nothing, and
        ``create_model`` then returns the network itself.

    Attributes
    ----------
    factor : int
        ``k``.
    output_stride : int
        The network's output stride in *input* pixels (``k`` times its own): windows of a
        scene start at its multiples (:mod:`scdnn.mapping.tiling`), so that they fall on the
        network's own grid at the working resolution.
    """

    def __init__(self, network: nn.Module, input_scale: float):
        super().__init__()
        self.network = network
        self.input_scale = check_input_scale(input_scale)
        self.factor = round(1 / self.input_scale)
        self.output_stride = self.factor * int(getattr(network, "output_stride", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.factor
        # block means; a last partial block (a size not a multiple of k) is the mean of the
        # pixels it holds
        small = F.avg_pool2d(x, k, stride=k, ceil_mode=True)
        logits = self.network(small)
        # back up by k: output pixel j samples (j + 1/2) / k - 1/2 of the small grid, the
        # centre of its block; cropped to the input's size
        up = F.interpolate(logits, scale_factor=k, mode="bilinear", align_corners=False)
        return up[..., :x.shape[-2], :x.shape[-1]]

    def extra_repr(self) -> str:
        return f"input_scale=1/{self.factor}"
