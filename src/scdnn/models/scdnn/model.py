"""SCDnn, the Skip Connection DeepLab neural network (Li et al. 2024, Section 3.1, Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scdnn.errors import InvalidValueError
from scdnn.models._padding import PaddedSegmentationModel
from scdnn.models.scdnn.blocks import (
    ASPC,
    ASPP,
    ConvolutionBlock,
    MRconvBlock,
    MRconvDownsamplingBlock,
    MRmaxpoolDownsamplingBlock,
    PixelClassification,
    TransposedConvUpsamplingBlock,
)

__all__ = ["SCDnn", "CONTEXTS"]

CONTEXTS = ("aspc", "aspp")


class SCDnn(PaddedSegmentationModel):
    """Skip Connection DeepLab neural network (Li et al. 2024, China Geology), Fig. 3.

    Layout, output stride 16, with the default ``widths=(32, 64, 128, 256)``,
    ``aspc_channels=128``, ``decoder_channels=64``:

    ========== ========================================================== ======= =======
    module     blocks                                                     scale   ch
    ========== ========================================================== ======= =======
    stem       ConvolutionBlock(in_channels -> 32)                        1       32
    group1     MRmaxpoolDownsamplingBlock(32) + MRconvBlock(32)           1/2     32
    group2     MRconvDownsamplingBlock(32 -> 64) + MRconvBlock(64)        1/4     64
    group3     MRconvDownsamplingBlock(64 -> 128) + MRconvBlock(128)      1/8     128
    group4     MRconvDownsamplingBlock(128 -> 256) + MRconvBlock(256)     1/16    256
    context    ASPC(256, 128): 1x1 + atrous 3x3 at rates 6, 12, 18        1/16    512
    up1        TransposedConvUpsamplingBlock(512 -> 64, x4)               1/4     64
    skip       concatenate [up1, group2]                                  1/4     128
    fuse       ConvolutionBlock(128 -> 64), ConvolutionBlock(64 -> 64)    1/4     64
    up2        TransposedConvUpsamplingBlock(64 -> 32, x4)                1       32
    classifier PixelClassification(32 -> num_classes)                     1       classes
    ========== ========================================================== ======= =======

    The forward pass zero-pads the input at the bottom and right to a multiple of 16 and crops
    the logits back (:mod:`scdnn.models._padding`); it returns logits, no softmax (the paper's
    softmax belongs to the loss and to inference).

    Choices the paper leaves open (its text gives the blocks and their equations; the widths,
    the stem and where the skip joins come from Fig. 3 only, which the text does not carry):

    - stem: one ConvolutionBlock at full resolution before group 1, so that the first
      MRmaxpool block's identity residual has a learned feature map (not raw bands) to add to;
    - widths 32/64/128/256 for stem+group 1 and groups 2, 3, 4 (doubling at each MRconv
      Downsampling Block, as ResNet does), one MRconv Block after the downsampling block of
      each group. (The paper says SCDnn's encoder is about half as deep as ResNet50's and
      MobileNetV2's; with one MRconv Block per group it has 17 convolutions on its longest
      path, 58 layers counted MATLAB's way, vs. 49 / 177 for ResNet50: about a third. Two
      per group would be about half, at 6.77 M parameters.);
    - stride 2 on the first 3x3 convolution of the MRconv Downsampling Block's F1 branch;
    - ASPC branch width 128 (4 x 128 = 512 channels) and **no 1x1 projection** after it,
      because Eq. 13 is a plain concatenation;
    - the skip joins the group-2 output (1/4 scale, the only encoder map with the size of the
      first x4 upsampling's output) by channel concatenation, followed by two
      ConvolutionBlocks of width ``decoder_channels`` (the first upsampling block also outputs
      ``decoder_channels``), and the second upsampling block outputs ``widths[0]`` channels.
      The decoder is 64 wide, not 128: at 1/4 scale a 128-wide decoder dominated the
      compute (benchmarks/results/README.md, "Networks: size and speed"), and the paper
      gives no width;
    - 8x8 kernels at stride 4, cropped by 2 (output size unchanged), in both upsampling
      blocks (the paper gives no size; MATLAB's DeepLab v3+ decoder, and the paper's Eq. 17,
      overlap their kernels). With 4x4 kernels, equal to the stride (``upsampling_kernel=4``,
      this package's default until weights cards recorded the option), each 4x4 output tile
      comes from one input vector and outlines step along a 4 px grid; the two scored within
      noise of each other at the ``cpu`` budget on jinsha-uav and sichuan-aerial
      (benchmarks/results/README.md), so the default is the one without the staircase.
      Cards that do not name the option load as 4 (:data:`scdnn.records.LEGACY_MODEL_KWARGS`);
    - no ReLU after the residual sums (Eqs. 2, 8, 19 have none); PyTorch's default
      initialization.

    Parameters
    ----------
    in_channels : int
        Input bands (3 for RGB).
    num_classes : int
        Output classes (2: background, landslide).
    widths : sequence of 4 int
        Channels of stem/group 1, group 2, group 3, group 4.
    aspc_channels : int
        Channels of each context branch (ASPC / ASPP).
    decoder_channels : int
        Channels of the first upsampling block and the fuse ConvolutionBlocks.
    context : {"aspc", "aspp"}
        "aspc": the paper's ASPC (no pooling branch). "aspp": DeepLab's ASPP with its
        image-pooling branch instead (ablation).
    skip : bool
        False drops the skip connection from group 2 (ablation); the first fuse block then
        takes ``decoder_channels`` inputs.
    upsampling_kernel : int, optional
        Kernel size of both Transposed Convolutional Upsampling Blocks (stride 4). Default 8,
        cropped by 2 (MATLAB's DeepLab v3+ upsampling layer): neighbouring inputs overlap and
        outlines have no 4 px grid. 4, the stride: no overlap, each 4x4 output tile comes from
        one input pixel (the ablation row ``scdnn-disjoint``; weights whose card does not
        name the option).
    """

    output_stride = 16

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        aspc_channels: int = 128,
        decoder_channels: int = 64,
        context: str = "aspc",
        skip: bool = True,
        upsampling_kernel: int = 8,
    ):
        super().__init__()
        if context not in CONTEXTS:
            raise InvalidValueError(f"unknown context '{context}'; choose from: "
                                    f"{', '.join(CONTEXTS)}")
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4:
            raise InvalidValueError(f"widths must have 4 entries (stem/group 1 to group 4), got "
                                    f"{widths}")
        w1, w2, w3, w4 = widths
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.context_name = context
        self.skip = bool(skip)

        self.stem = ConvolutionBlock(self.in_channels, w1)
        self.group1 = nn.Sequential(MRmaxpoolDownsamplingBlock(w1), MRconvBlock(w1))
        self.group2 = nn.Sequential(MRconvDownsamplingBlock(w1, w2), MRconvBlock(w2))
        self.group3 = nn.Sequential(MRconvDownsamplingBlock(w2, w3), MRconvBlock(w3))
        self.group4 = nn.Sequential(MRconvDownsamplingBlock(w3, w4), MRconvBlock(w4))
        self.context = (ASPC if context == "aspc" else ASPP)(w4, aspc_channels)
        d = int(decoder_channels)
        k = self.upsampling_kernel = int(upsampling_kernel)
        self.up1 = TransposedConvUpsamplingBlock(self.context.out_channels, d, 4, k)
        fuse_in = d + (w2 if self.skip else 0)
        self.fuse = nn.Sequential(ConvolutionBlock(fuse_in, d), ConvolutionBlock(d, d))
        self.up2 = TransposedConvUpsamplingBlock(d, w1, 4, k)
        self.classifier = PixelClassification(w1, self.num_classes)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 16."""
        x = self.group1(self.stem(x))
        low = self.group2(x)
        x = self.context(self.group4(self.group3(low)))
        x = self.up1(x)
        if self.skip:
            x = torch.cat([x, low], dim=1)
        x = self.up2(self.fuse(x))
        return self.classifier(x)
