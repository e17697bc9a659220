"""SegNet (Badrinarayanan, Kendall & Cipolla 2015/2017), the paper's second baseline."""

from __future__ import annotations

import torch
from torch import nn

from scdnn.models._padding import PaddedSegmentationModel

__all__ = ["SegNet"]

#: VGG16 convolution widths per encoder stage (13 convolutions).
VGG16_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)


def _cbr(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class SegNet(PaddedSegmentationModel):
    """SegNet: encoder-decoder with pooling-index unpooling.

    Badrinarayanan V, Kendall A, Cipolla R. 2017. SegNet: A deep convolutional encoder-decoder
    architecture for image segmentation. IEEE TPAMI 39(12), 2481-2495 (arXiv:1511.00561, 2015).

    Encoder: the 13 convolutions of VGG16 with batch normalization (64, 64 | 128, 128 |
    256, 256, 256 | 512, 512, 512 | 512, 512, 512; each Conv3x3-BN-ReLU), a
    ``MaxPool2d(2, return_indices=True)`` after each of the 5 stages. Decoder: the mirror
    image; each stage starts with ``MaxUnpool2d(2)`` using the indices of the matching encoder
    pooling, then Conv3x3-BN-ReLU layers whose last one narrows to the next stage's width
    (512, 512, 512 | 512, 512, 256 | 256, 256, 128 | 128, 64 | 64), then a final 3x3
    convolution to the classes (as the original Caffe ``conv1_1_D``), with bias, no BN/ReLU.
    Trained from scratch (no VGG16 ImageNet weights). Output stride 32: the input is
    zero-padded at the bottom and right to a multiple of 32 and the logits cropped back.
    Returns logits; the softmax is applied by the loss / at inference.

    Parameters
    ----------
    in_channels : int
        Input bands.
    num_classes : int
        Output classes.
    """

    output_stride = 32

    def __init__(self, in_channels: int = 3, num_classes: int = 2):
        super().__init__()
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)

        encoders = []
        prev = self.in_channels
        for stage in VGG16_STAGES:
            layers: list[nn.Module] = []
            for ch in stage:
                layers += _cbr(prev, ch)
                prev = ch
            encoders.append(nn.Sequential(*layers))
        self.encoders = nn.ModuleList(encoders)
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)

        decoders = []
        for i in reversed(range(len(VGG16_STAGES))):
            stage = VGG16_STAGES[i]
            # Mirror of stage i: its widths, the last one narrowed to stage i-1's width; the
            # first stage's last convolution is the classifier below (Caffe's conv1_1_D).
            widths = stage[:-1] + ((VGG16_STAGES[i - 1][-1],) if i > 0 else ())
            layers = []
            prev = stage[-1]
            for ch in widths:
                layers += _cbr(prev, ch)
                prev = ch
            decoders.append(nn.Sequential(*layers))
        self.decoders = nn.ModuleList(decoders)
        self.classifier = nn.Conv2d(VGG16_STAGES[0][0], self.num_classes, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 32."""
        indices = []
        sizes = []
        for enc in self.encoders:
            x = enc(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        for dec, idx, size in zip(self.decoders, reversed(indices), reversed(sizes), strict=False):
            x = self.unpool(x, idx, output_size=size)
            x = dec(x)
        return self.classifier(x)
