"""The building blocks of SCDnn, one class per block of Li et al. (2024), Section 3.1.

Each class follows one of the paper's equations (Figs. 3-5):

============================== ========== =====================================================
block                          equations  output
============================== ========== =====================================================
ConvolutionBlock               18         ReLU(BN(Conv3x3(x)))
MRmaxpoolDownsamplingBlock     1-2        F1 + x, both on MaxPool2d(2)(x)
MRconvDownsamplingBlock        6-8        F1 + F2, each branch downsamples with stride 2
MRconvBlock                    19         F1 + x (identity residual)
ASPC                           9-13       [F1 F2 F3 F4]: 1x1 and atrous 3x3 (rates 6, 12, 18)
TransposedConvUpsamplingBlock  14-17      ReLU(BN(ConvTranspose(x))), x4 upsampling
PixelClassification            Sec 3.1.5  1x1 convolution to class scores
============================== ========== =====================================================

plus :class:`ASPP`, DeepLab v3+'s pyramid with its image-pooling branch, for the ablation
"ASPC vs ASPP". Here ``F1 = BN(Conv3x3(ReLU(BN(Conv3x3(x)))))`` is the feature-extraction
branch of Eqs. 1, 6 and 19. Every convolution followed by batch normalization has no bias (the
BN offset plays its part).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scdnn.errors import InvalidValueError

__all__ = [
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


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, 'same' padding (``padding = dilation``), no bias."""
    return nn.Conv2d(
        in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


class _FeatureBranch(nn.Sequential):
    """F1 = BN(Conv3x3(ReLU(BN(Conv3x3(x))))) (Eqs. 1, 6, 19); ``stride`` on the first conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__(
            _conv3x3(in_ch, out_ch, stride=stride),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            _conv3x3(out_ch, out_ch),
            nn.BatchNorm2d(out_ch),
        )


class ConvolutionBlock(nn.Sequential):
    """Convolution Block (Fig. 5c, Eq. 18).

    ``F_out = ReLU(BN(Conv3*3(x)))`` (Eq. 18): 3x3 convolution (padding 1, no bias), batch
    normalization, ReLU. Spatial size unchanged.

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(_conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class MRmaxpoolDownsamplingBlock(nn.Module):
    """Mixed Residual and Maximum Pooling Downsampling Block (Fig. 4, Eqs. 1-2), group 1.

    The max pooling comes first; both branches start from the pooled map x:

    ``F1 = BN(Conv3*3(ReLU(BN(Conv3*3(x)))))``   (Eq. 1)

    ``F_out = F1 + x``                           (Eq. 2)

    with x = MaxPool2d(2)(input). Height and width are halved, channels unchanged. There is
    **no ReLU after the sum**: Eq. 2 has none, so none is added.

    Parameters
    ----------
    ch : int
        Channels of input and output.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.branch = _FeatureBranch(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.branch(x) + x


class MRconvDownsamplingBlock(nn.Module):
    """Mixed Residual and Convolutional Downsampling Block (Fig. 5a, Eqs. 6-8), groups 2-4.

    Each branch downsamples on its own, with stride 2:

    ``F1 = BN(Conv3*3(ReLU(BN(Conv3*3(x)))))``  (Eq. 6; stride 2 on the first 3x3 conv)

    ``F2 = BN(Conv1*1(x))``                     (Eq. 7; stride 2)

    ``F_out = F1 + F2``                         (Eq. 8)

    Height and width are halved; channels go from ``in_ch`` to ``out_ch``. No ReLU after the
    sum (Eq. 8 has none).

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.branch = _FeatureBranch(in_ch, out_ch, stride=2)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False), nn.BatchNorm2d(out_ch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


class MRconvBlock(nn.Module):
    """Mixed Residual and Convolutional Block (Fig. 5d, Eq. 19).

    ``F_out = BN(Conv3*3(ReLU(BN(Conv3*3(x))))) + x``  (Eq. 19)

    The MRconv Downsampling Block with stride 1 and an identity residual branch (no 1x1 conv, no
    BN on it). Shape unchanged; no ReLU after the sum.

    Parameters
    ----------
    ch : int
        Channels of input and output.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.branch = _FeatureBranch(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + x


def _conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    pad = dilation if kernel_size == 3 else 0
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ASPC(nn.Module):
    """Atrous Spatial Pyramid Convolutional Block (Fig. 5b, Eqs. 9-13).

    ``F1 = ReLU(BN(Conv1*1(x)))``             (Eq. 9)

    ``F2 = ReLU(BN(Conv3*3^rate6(x)))``       (Eq. 10)

    ``F3 = ReLU(BN(Conv3*3^rate12(x)))``      (Eq. 11)

    ``F4 = ReLU(BN(Conv3*3^rate18(x)))``      (Eq. 12)

    ``F_out = [F1 F2 F3 F4]``                 (Eq. 13, channel concatenation)

    Unlike DeepLab's ASPP there is **no image-pooling branch** (and, as Eq. 13 is a plain
    concatenation, no 1x1 projection after it): each output pixel depends only on a bounded
    neighbourhood of the input (radius ``max(rates)``). Output channels ``4 * branch_ch``
    (``(1 + len(rates)) * branch_ch``); spatial size unchanged (padding = dilation).

    Parameters
    ----------
    in_ch : int
        Input channels.
    branch_ch : int
        Output channels of each branch.
    rates : sequence of int
        Dilation rates of the atrous 3x3 branches (the paper: 6, 12, 18).
    """

    def __init__(self, in_ch: int, branch_ch: int, rates: Sequence[int] = (6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(in_ch, branch_ch, 1)]
            + [_conv_bn_relu(in_ch, branch_ch, 3, dilation=int(r)) for r in rates]
        )
        self.out_channels = branch_ch * len(self.branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class PoolingBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d for a globally pooled (N, C, 1, 1) map that also trains at batch size 1.

    With batch size 1 a pooled map has a single value per channel, for which batch statistics
    do not exist (``nn.BatchNorm2d`` raises in training mode, and so does smp's ASPP). In that
    one case this layer normalizes with its running statistics, as in evaluation mode, and
    leaves them unchanged; for every other input it is exactly ``nn.BatchNorm2d`` (same
    parameters and state-dict keys).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() // x.shape[1] <= 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias,
                training=False, momentum=0.0, eps=self.eps,
            )
        return super().forward(x)


class _ImagePooling(nn.Module):
    """ASPP image-level branch: global average pool -> 1x1 conv -> BN -> ReLU -> upsample."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = PoolingBatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.conv(self.pool(x))))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """DeepLab v3+ Atrous Spatial Pyramid Pooling, for the ablation "ASPC vs ASPP" only.

    The four branches of :class:`ASPC` plus the image-pooling branch (global average pool ->
    1x1 conv -> BN -> ReLU -> bilinear upsample, as in smp's ``ASPPPooling``), concatenated:
    output channels ``5 * branch_ch``. Like :class:`ASPC`, and so that the ablation changes only
    the pooling branch, there is no 1x1 projection after the concatenation (smp's ASPP has one).

    The BN of the pooling branch is a :class:`PoolingBatchNorm2d`: smp uses a plain
    ``BatchNorm2d`` there, which fails in training mode at batch size 1; this one falls back to
    its running statistics in that case and is a plain BatchNorm2d otherwise.

    Parameters
    ----------
    in_ch : int
        Input channels.
    branch_ch : int
        Output channels of each branch.
    rates : sequence of int
        Dilation rates of the atrous 3x3 branches.
    """

    def __init__(self, in_ch: int, branch_ch: int, rates: Sequence[int] = (6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(in_ch, branch_ch, 1)]
            + [_conv_bn_relu(in_ch, branch_ch, 3, dilation=int(r)) for r in rates]
            + [_ImagePooling(in_ch, branch_ch)]
        )
        self.out_channels = branch_ch * len(self.branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class TransposedConvUpsamplingBlock(nn.Sequential):
    """2D Transposed Convolutional Upsampling Block (Section 3.1.4, Eqs. 14-17).

    A transposed convolution is the transpose of a convolution's sparse matrix ``C``
    (Eq. 14): ``Y = C^T X'`` (Eq. 17), X' the input flattened (Eqs. 15-16). Here
    ``ConvTranspose2d(kernel, stride=factor, no bias) -> BN -> ReLU``; height and width are
    multiplied by ``factor`` (4 in SCDnn, "four-fold").

    With the default ``kernel_size=factor`` the kernels do not overlap: each ``factor x
    factor`` tile of the output depends on one input pixel only. A larger even-offset
    kernel (``2 * factor``, cropped by ``factor / 2`` on each side, the upsampling layer of
    MATLAB's DeepLab v3+ decoder) makes neighbouring input pixels overlap in the output, as
    in the paper's Eq. 17 (whose 2x2 kernel at stride 1 sums up to four inputs per output).

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels.
    factor : int
        Upsampling factor (the stride).
    kernel_size : int, optional
        Kernel height and width, ``factor`` or more, ``kernel_size - factor`` even; default
        ``factor``.
    """

    def __init__(self, in_ch: int, out_ch: int, factor: int = 4, kernel_size: int | None = None):
        kernel_size = factor if kernel_size is None else int(kernel_size)
        if kernel_size < factor or (kernel_size - factor) % 2:
            raise InvalidValueError(f"upsampling kernel must be {factor} or more, by an even step "
                            f"(output = {factor} x input), got {kernel_size}")
        super().__init__(
            nn.ConvTranspose2d(in_ch, out_ch, kernel_size=kernel_size, stride=factor,
                               padding=(kernel_size - factor) // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class PixelClassification(nn.Conv2d):
    """Pixel Classification (Section 3.1.5): a 1x1 convolution (with bias) to class scores.

    It returns logits. The paper's softmax is not part of the network: the loss applies it
    (cross-entropy on logits) and inference applies ``softmax``/``argmax`` to the logits.

    Parameters
    ----------
    in_ch : int
        Input channels.
    num_classes : int
        Number of classes.
    """

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__(in_ch, num_classes, kernel_size=1, bias=True)
