"""SSSN: MATLAB's "simple semantic segmentation network" (the paper's first baseline)."""

from __future__ import annotations

import torch
from torch import nn

from scdnn.models._padding import PaddedSegmentationModel

__all__ = ["SSSN"]


class SSSN(PaddedSegmentationModel):
    """Simple semantic segmentation network of MATLAB's documentation example.

    From the MATLAB Computer Vision Toolbox example "Create a Semantic Segmentation Network"
    (Getting Started with Semantic Segmentation Using Deep Learning), the SSSN of Li et al.
    (2024)::

        convolution2dLayer(3, 32, 'Padding', 1)  reluLayer  maxPooling2dLayer(2, 'Stride', 2)
        convolution2dLayer(3, 32, 'Padding', 1)  reluLayer  maxPooling2dLayer(2, 'Stride', 2)
        transposedConv2dLayer(4, 32, 'Stride', 2, 'Cropping', 1)  reluLayer
        transposedConv2dLayer(4, 32, 'Stride', 2, 'Cropping', 1)  reluLayer
        convolution2dLayer(1, numClasses)  softmaxLayer  pixelClassificationLayer

    In PyTorch: ``Conv2d(k=3, padding=1)``, ``ConvTranspose2d(32, 32, 4, stride=2,
    padding=1)`` (MATLAB's cropping 1 is PyTorch's padding 1), all with bias and no
    normalization, as in MATLAB. Output stride 4: the input is zero-padded at the bottom and
    right to a multiple of 4 and the logits cropped back. Returns logits; the softmax is
    applied by the loss / at inference.

    Parameters
    ----------
    in_channels : int
        Input bands.
    num_classes : int
        Output classes.
    width : int
        Filters per layer (32 in the MATLAB example).
    """

    output_stride = 4

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 32):
        super().__init__()
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.layers = nn.Sequential(
            nn.Conv2d(self.in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, self.num_classes, 1),
        )

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 4."""
        return self.layers(x)
