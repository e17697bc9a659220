"""DeepLab v3+ baselines (ResNet50 and MobileNetV2 encoders) from segmentation_models_pytorch."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPPPooling
from torch import nn

from scdnn.errors import InvalidValueError
from scdnn.models._padding import PaddedSegmentationModel
from scdnn.models.scdnn.blocks import PoolingBatchNorm2d

__all__ = ["DeepLabV3Plus", "ENCODERS"]

#: Encoders of the paper's two DeepLab v3+ baselines (smp encoder names).
ENCODERS = ("resnet50", "mobilenet_v2")


def _make_pooling_bn_safe(model: nn.Module) -> None:
    """Swap the BatchNorm2d of each smp ``ASPPPooling`` branch for a PoolingBatchNorm2d.

    smp's image-pooling branch normalizes a (N, C, 1, 1) map with a plain BatchNorm2d, which
    raises in training mode at batch size 1. PoolingBatchNorm2d is the same layer (same
    parameters, same state-dict keys) that falls back to its running statistics in that case.
    """
    for module in model.modules():
        if isinstance(module, ASPPPooling):
            for i, layer in enumerate(module):
                if type(layer) is nn.BatchNorm2d:
                    safe = PoolingBatchNorm2d(
                        layer.num_features, eps=layer.eps, momentum=layer.momentum
                    )
                    safe.load_state_dict(layer.state_dict())
                    module[i] = safe


class DeepLabV3Plus(PaddedSegmentationModel):
    """DeepLab v3+ (Chen et al. 2018) from segmentation_models_pytorch, trained from scratch.

    Wraps ``smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, ...)``: never
    pretrained, nothing is downloaded. smp's standard decoder is kept: ASPP with its
    image-pooling branch and 1x1 projection (depthwise-separable atrous convolutions, smp's
    default), 256 channels, dropout 0.5, the 48-channel 1/4-scale low-level skip, output
    stride 16. One setting differs from smp's defaults: the atrous rates are (6, 12, 18), the
    DeepLab v3/v3+ rates for output stride 16 (smp defaults to (12, 24, 36), the rates for
    output stride 8), and the rates of SCDnn's ASPC. Both can be overridden through
    ``smp_kwargs``.

    The BatchNorm of the image-pooling branch is a
    :class:`~scdnn.models.scdnn.blocks.PoolingBatchNorm2d`, so that training at batch size 1
    works (smp's plain BatchNorm2d raises there). The input is zero-padded at the bottom and
    right to a multiple of 16 and the logits are cropped back. Returns logits.

    Parameters
    ----------
    encoder : {"resnet50", "mobilenet_v2"}
        smp encoder name.
    in_channels : int
        Input bands.
    num_classes : int
        Output classes.
    **smp_kwargs
        Further keyword arguments of ``smp.DeepLabV3Plus`` (e.g. ``decoder_atrous_rates``).
    """

    output_stride = 16

    def __init__(
        self,
        encoder: str = "resnet50",
        in_channels: int = 3,
        num_classes: int = 2,
        **smp_kwargs: Any,
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise InvalidValueError(f"unknown encoder '{encoder}'; choose from: "
                                    f"{', '.join(ENCODERS)}")
        for key in ("encoder_name", "encoder_weights", "in_channels", "classes"):
            if key in smp_kwargs:
                raise InvalidValueError(f"DeepLabV3Plus sets '{key}' itself; do not pass it")
        if smp_kwargs.get("encoder_output_stride", 16) != 16:
            raise InvalidValueError("DeepLabV3Plus baselines use output stride 16")
        smp_kwargs.setdefault("decoder_atrous_rates", (6, 12, 18))
        self.encoder_name = encoder
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.net = smp.DeepLabV3Plus(
            encoder_name=encoder,
            encoder_weights=None,
            in_channels=self.in_channels,
            classes=self.num_classes,
            **smp_kwargs,
        )
        _make_pooling_bn_safe(self.net)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 16."""
        return self.net(x)
