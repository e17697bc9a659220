"""SCDnn (Li et al. 2024): the network and its blocks."""

from __future__ import annotations

from scdnn.models.scdnn.blocks import (
    ASPC,
    ASPP,
    ConvolutionBlock,
    MRconvBlock,
    MRconvDownsamplingBlock,
    MRmaxpoolDownsamplingBlock,
    PixelClassification,
    PoolingBatchNorm2d,
    TransposedConvUpsamplingBlock,
)
from scdnn.models.scdnn.model import SCDnn

__all__ = [
    "SCDnn",
    "ConvolutionBlock",
    "MRmaxpoolDownsamplingBlock",
    "MRconvDownsamplingBlock",
    "MRconvBlock",
    "ASPC",
    "ASPP",
    "PoolingBatchNorm2d",
    "TransposedConvUpsamplingBlock",
    "PixelClassification",
]
