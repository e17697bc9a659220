"""SCDnn's blocks against the equations of Li et al. (2024), Section 3.1, with hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scdnn.errors import UserError
from scdnn.models import count_parameters
from scdnn.models.scdnn import (
    ASPC,
    ASPP,
    ConvolutionBlock,
    MRconvBlock,
    MRconvDownsamplingBlock,
    MRmaxpoolDownsamplingBlock,
    PixelClassification,
    PoolingBatchNorm2d,
    SCDnn,
    TransposedConvUpsamplingBlock,
)

EPS = 1e-5  # BatchNorm2d's default epsilon
BN_SCALE = 1 / math.sqrt(1 + EPS)  # BN in eval mode with default running stats (0, 1)


def _zero_last_bn(branch: nn.Sequential) -> None:
    """Zero gamma and beta of the branch's last BN: F1 = 0 for any input."""
    bn = branch[-1]
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()


def _randomize_bn(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters for every BN (eval-mode tests)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eq. 4 in eval mode, by hand: gamma (x - mu) / sqrt(var + eps) + beta."""
    shape = (1, -1, 1, 1)
    mu, var = bn.running_mean.view(shape), bn.running_var.view(shape)
    return bn.weight.view(shape) * (x - mu) / torch.sqrt(var + bn.eps) + bn.bias.view(shape)


def _f1(x: torch.Tensor, branch: nn.Sequential, stride: int = 1) -> torch.Tensor:
    """F1 = BN(Conv3x3(ReLU(BN(Conv3x3(x))))) by hand (Eqs. 1, 6, 19)."""
    y = F.conv2d(x, branch[0].weight, stride=stride, padding=1)
    y = torch.relu(_bn(y, branch[1]))
    y = F.conv2d(y, branch[3].weight, padding=1)
    return _bn(y, branch[4])


# --------------------------------------------------------------------------- Eq. 18


def test_convolution_block_hand_example() -> None:
    block = ConvolutionBlock(1, 1).eval()
    with torch.no_grad():
        block[0].weight.fill_(1.0)
        block[1].bias.fill_(-5.0)
    x = torch.ones(1, 1, 3, 3)
    # 3x3 box sum with zero padding: 4 in the corners, 6 on the edges, 9 in the middle;
    # then BN (eval, default stats) divides by sqrt(1 + eps) and adds -5; ReLU clips.
    box = torch.tensor([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]])
    expected = torch.relu(box * BN_SCALE - 5.0)
    assert expected[0, 0] == 0  # the ReLU is exercised
    torch.testing.assert_close(block(x)[0, 0], expected)


def test_convolution_block_equals_relu_bn_conv() -> None:
    torch.manual_seed(0)
    block = ConvolutionBlock(3, 5)
    _randomize_bn(block)
    block.eval()
    assert block[0].bias is None and block[0].kernel_size == (3, 3)
    x = torch.randn(2, 3, 7, 9)
    expected = torch.relu(_bn(F.conv2d(x, block[0].weight, padding=1), block[1]))
    torch.testing.assert_close(block(x), expected)


# --------------------------------------------------------------------------- Eqs. 1-2


def test_mrmaxpool_with_zero_branch_is_maxpool_hand_example() -> None:
    block = MRmaxpoolDownsamplingBlock(1).eval()
    _zero_last_bn(block.branch)
    x = torch.tensor(
        [
            [1.0, 2.0, 5.0, 0.0],
            [3.0, 4.0, -1.0, 6.0],
            [-1.0, -2.0, 7.0, 8.0],
            [-3.0, -4.0, 2.0, -4.0],
        ]
    ).view(1, 1, 4, 4)
    expected = torch.tensor([[4.0, 6.0], [-1.0, 8.0]])  # -1: no ReLU after the sum (Eq. 2)
    out = block(x)
    assert torch.equal(out[0, 0], expected)
    assert torch.equal(out, nn.MaxPool2d(2)(x))


def test_mrmaxpool_equation() -> None:
    torch.manual_seed(0)
    block = MRmaxpoolDownsamplingBlock(4)
    _randomize_bn(block)
    block.eval()
    x = torch.randn(2, 4, 8, 6)
    pooled = F.max_pool2d(x, 2)
    out = block(x)
    assert out.shape == (2, 4, 4, 3)
    torch.testing.assert_close(out, _f1(pooled, block.branch) + pooled)  # Eqs. 1-2
    assert (out < 0).any()  # no ReLU after the sum


# --------------------------------------------------------------------------- Eqs. 6-8


def test_mrconv_downsampling_with_zero_f1_and_identity_1x1_subsamples() -> None:
    block = MRconvDownsamplingBlock(3, 3).eval()
    _zero_last_bn(block.branch)
    with torch.no_grad():
        block.shortcut[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    x = torch.randn(1, 3, 6, 8)
    out = block(x)
    assert out.shape == (1, 3, 3, 4)
    # F2 = BN(Conv1x1 stride 2 (x)) = x[..., ::2, ::2] / sqrt(1 + eps)
    torch.testing.assert_close(out, x[..., ::2, ::2] * BN_SCALE)


def test_mrconv_downsampling_equation() -> None:
    torch.manual_seed(0)
    block = MRconvDownsamplingBlock(3, 5)
    _randomize_bn(block)
    block.eval()
    assert block.branch[0].stride == (2, 2) and block.branch[3].stride == (1, 1)
    x = torch.randn(2, 3, 8, 10)
    f1 = _f1(x, block.branch, stride=2)  # Eq. 6, stride 2 on the first 3x3 conv
    f2 = _bn(F.conv2d(x, block.shortcut[0].weight, stride=2), block.shortcut[1])  # Eq. 7
    out = block(x)
    assert out.shape == (2, 5, 4, 5)
    torch.testing.assert_close(out, f1 + f2)  # Eq. 8


# --------------------------------------------------------------------------- Eq. 19


def test_mrconv_block_with_zero_branch_is_identity() -> None:
    block = MRconvBlock(4).eval()
    _zero_last_bn(block.branch)
    x = torch.randn(2, 4, 5, 7)  # has negative values: no ReLU after the sum
    assert torch.equal(block(x), x)


def test_mrconv_block_equation() -> None:
    torch.manual_seed(0)
    block = MRconvBlock(4)
    _randomize_bn(block)
    block.eval()
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), _f1(x, block.branch) + x)
    # identity residual: no convolution and no BN outside the F1 branch
    assert sum(isinstance(m, nn.Conv2d) for m in block.modules()) == 2


# --------------------------------------------------------------------------- Eqs. 9-13


def test_aspc_channels_and_branches() -> None:
    aspc = ASPC(8, 3)
    assert aspc.out_channels == 12
    assert aspc(torch.randn(2, 8, 5, 5)).shape == (2, 12, 5, 5)
    convs = [b[0] for b in aspc.branches]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (3, 3), (3, 3)]
    assert [c.dilation[0] for c in convs] == [1, 6, 12, 18]
    assert [c.padding[0] for c in convs] == [0, 6, 12, 18]
    for branch in aspc.branches:
        assert isinstance(branch[1], nn.BatchNorm2d) and isinstance(branch[2], nn.ReLU)


def test_aspc_is_concatenation_of_the_four_branches() -> None:
    torch.manual_seed(0)
    aspc = ASPC(4, 2)
    _randomize_bn(aspc)
    aspc.eval()
    x = torch.randn(1, 4, 20, 20)
    out = aspc(x)
    for i, (rate, branch) in enumerate(zip([None, 6, 12, 18], aspc.branches, strict=False)):
        if rate is None:  # Eq. 9
            y = F.conv2d(x, branch[0].weight)
        else:  # Eqs. 10-12
            y = F.conv2d(x, branch[0].weight, padding=rate, dilation=rate)
        torch.testing.assert_close(out[:, 2 * i : 2 * i + 2], torch.relu(_bn(y, branch[1])))


@pytest.mark.parametrize(
    ("offset", "changes"),
    [
        ((0, 6), True),
        ((6, 6), True),
        ((12, 0), True),
        ((18, 18), True),
        ((0, 7), False),  # between the atrous taps
        ((5, 12), False),
        ((0, 19), False),  # beyond rate 18
        ((40, 40), False),  # far away: no image pooling
    ],
)
def test_aspc_output_depends_only_on_atrous_taps(offset: tuple[int, int], changes: bool) -> None:
    torch.manual_seed(0)
    aspc = ASPC(2, 4).eval()
    x = torch.randn(1, 2, 48, 48)
    y = x.clone()
    y[..., offset[0], offset[1]] += 10.0
    with torch.no_grad():
        a, b = aspc(x)[..., 0, 0], aspc(y)[..., 0, 0]
    assert (not torch.equal(a, b)) == changes


def test_aspp_has_image_pooling_branch_aspc_does_not() -> None:
    torch.manual_seed(0)
    aspc, aspp = ASPC(2, 4).eval(), ASPP(2, 4).eval()
    x = torch.randn(1, 2, 48, 48)
    y = x.clone()
    y[..., 40, 40] += 10.0
    with torch.no_grad():
        assert torch.equal(aspc(x)[..., 0, 0], aspc(y)[..., 0, 0])
        out_x, out_y = aspp(x), aspp(y)
    assert out_x.shape == (1, 20, 48, 48) and aspp.out_channels == 20
    assert torch.equal(out_x[:, :16, 0, 0], out_y[:, :16, 0, 0])  # the four ASPC branches
    assert not torch.equal(out_x[:, 16:, 0, 0], out_y[:, 16:, 0, 0])  # the pooling branch
    # the pooling branch is constant over the image
    assert torch.allclose(out_x[:, 16:], out_x[:, 16:, :1, :1].expand_as(out_x[:, 16:]))


def test_aspp_trains_with_batch_size_one() -> None:
    aspp = ASPP(3, 2).train()
    out = aspp(torch.randn(1, 3, 4, 4))
    out.sum().backward()
    assert out.shape == (1, 10, 4, 4)


def test_pooling_batchnorm() -> None:
    torch.manual_seed(0)
    safe, plain = PoolingBatchNorm2d(3), nn.BatchNorm2d(3)
    _randomize_bn(safe)
    plain.load_state_dict(safe.state_dict())
    x = torch.randn(4, 3, 1, 1)
    torch.testing.assert_close(safe.train()(x), plain.train()(x))  # batch > 1: plain BN
    torch.testing.assert_close(safe.running_mean, plain.running_mean)
    one = torch.randn(1, 3, 1, 1)
    with pytest.raises(ValueError):
        plain.train()(one)
    mean_before = safe.running_mean.clone()
    out = safe.train()(one)
    torch.testing.assert_close(out, _bn(one, safe))  # running statistics, as in eval
    assert torch.equal(safe.running_mean, mean_before)


# --------------------------------------------------------------------------- Eqs. 14-17


def test_transposed_convolution_worked_example_eq17() -> None:
    x11, x12, x21, x22 = 1.0, 2.0, 3.0, 4.0
    w11, w12, w21, w22 = 0.5, -1.0, 2.0, 3.0
    X = torch.tensor([[x11, x12], [x21, x22]]).view(1, 1, 2, 2)  # Eq. 15
    W = torch.tensor([[w11, w12], [w21, w22]]).view(1, 1, 2, 2)
    eq17 = torch.tensor(
        [
            [w11 * x11, w12 * x11 + w11 * x12, w12 * x12],
            [
                w21 * x11 + w11 * x21,
                w22 * x11 + w21 * x12 + w12 * x21 + w11 * x22,
                w22 * x12 + w12 * x22,
            ],
            [w21 * x21, w22 * x21 + w21 * x22, w22 * x22],
        ]
    )
    Y = F.conv_transpose2d(X, W, stride=1)
    torch.testing.assert_close(Y[0, 0], eq17)
    # Y = C^T X' with C the sparse matrix of Eq. 14 and X' = [x11 x12 x21 x22]^T (Eq. 16)
    C = torch.tensor(
        [
            [w11, w12, 0, w21, w22, 0, 0, 0, 0],
            [0, w11, w12, 0, w21, w22, 0, 0, 0],
            [0, 0, 0, w11, w12, 0, w21, w22, 0],
            [0, 0, 0, 0, w11, w12, 0, w21, w22],
        ]
    )
    torch.testing.assert_close((C.T @ X.flatten()).view(3, 3), eq17)
    # and C is the matrix of the ordinary 2x2 convolution of a 3x3 input
    z = torch.randn(1, 1, 3, 3)
    torch.testing.assert_close((C @ z.flatten()).view(2, 2), F.conv2d(z, W)[0, 0])


def test_transposed_conv_upsampling_block() -> None:
    torch.manual_seed(0)
    block = TransposedConvUpsamplingBlock(6, 3)
    _randomize_bn(block)
    block.eval()
    x = torch.randn(2, 6, 3, 5)
    out = block(x)
    assert out.shape == (2, 3, 12, 20)  # x4 in height and width
    expected = torch.relu(_bn(F.conv_transpose2d(x, block[0].weight, stride=4), block[1]))
    torch.testing.assert_close(out, expected)
    # kernel 4 = stride 4: each 4x4 output tile depends on one input pixel only
    y = x.clone()
    y[..., 1, 2] += 5.0
    changed = (block(y) != out).any(dim=1)[0]
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.min() >= 4 and rows.max() < 8 and cols.min() >= 8 and cols.max() < 12


def test_transposed_conv_upsampling_block_with_overlapping_kernel() -> None:
    torch.manual_seed(0)
    block = TransposedConvUpsamplingBlock(6, 3, factor=4, kernel_size=8)
    _randomize_bn(block)
    block.eval()
    x = torch.randn(2, 6, 3, 5)
    out = block(x)
    assert out.shape == (2, 3, 12, 20)  # still x4: kernel 8, stride 4, cropped by 2
    expected = torch.relu(_bn(F.conv_transpose2d(x, block[0].weight, stride=4, padding=2),
                               block[1]))
    torch.testing.assert_close(out, expected)
    # one input pixel reaches an 8x8 patch centred on its own 4x4 tile (rows 4-7, cols 8-11)
    y = x.clone()
    y[..., 1, 2] += 5.0
    changed = (block(y) != out).any(dim=1)[0]
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 9, 6, 13)


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_transposed_conv_upsampling_block_refuses_kernels_that_break_the_factor(kernel) -> None:
    with pytest.raises(UserError, match="upsampling kernel"):
        TransposedConvUpsamplingBlock(6, 3, factor=4, kernel_size=kernel)


def test_pixel_classification_is_1x1_conv_without_softmax() -> None:
    torch.manual_seed(0)
    head = PixelClassification(4, 2)
    x = torch.randn(1, 4, 3, 3)
    weight = head.weight[:, :, 0, 0]
    expected = torch.einsum("nchw,kc->nkhw", x, weight) + head.bias.view(1, 2, 1, 1)
    out = head(x)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out.sum(dim=1), torch.ones(1, 3, 3))  # logits, not probabilities


# --------------------------------------------------------------------------- the network


def test_scdnn_layout_and_scales() -> None:
    model = SCDnn().eval()
    assert isinstance(model.group1[0], MRmaxpoolDownsamplingBlock)
    groups = (model.group1, model.group2, model.group3, model.group4)
    assert all(isinstance(g[0], MRconvDownsamplingBlock) for g in groups[1:])
    assert all(isinstance(g[1], MRconvBlock) and len(g) == 2 for g in groups)
    shapes: dict[str, tuple[int, ...]] = {}
    names = ["stem", "group1", "group2", "group3", "group4"]
    names += ["context", "up1", "fuse", "up2", "classifier"]
    for name in names:
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))
        )
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert shapes == {
        "stem": (32, 64, 64),
        "group1": (32, 32, 32),
        "group2": (64, 16, 16),
        "group3": (128, 8, 8),
        "group4": (256, 4, 4),
        "context": (512, 4, 4),
        "up1": (64, 16, 16),
        "fuse": (64, 16, 16),
        "up2": (32, 64, 64),
        "classifier": (2, 64, 64),
    }


def test_scdnn_skip_connection_carries_group2_output() -> None:
    torch.manual_seed(0)
    model = SCDnn().eval()
    seen: dict[str, torch.Tensor] = {}
    model.group2.register_forward_hook(lambda m, i, o: seen.__setitem__("group2", o.clone()))
    model.fuse.register_forward_hook(lambda m, i, o: seen.__setitem__("fuse_in", i[0].clone()))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 48))
    assert seen["fuse_in"].shape[1] == 64 + 64
    assert torch.equal(seen["fuse_in"][:, 64:], seen["group2"])


def test_scdnn_without_skip() -> None:
    with_skip, without = SCDnn(), SCDnn(skip=False)
    assert without.fuse[0][0].in_channels == 64
    # the only difference: the 64 skip channels into the first 3x3 fuse convolution
    assert count_parameters(with_skip) - count_parameters(without) == 64 * 64 * 3 * 3
    seen: dict[str, torch.Tensor] = {}
    without.fuse.register_forward_hook(lambda m, i, o: seen.__setitem__("fuse_in", i[0]))
    out = without.eval()(torch.randn(1, 3, 37, 53))
    assert out.shape == (1, 2, 37, 53)
    assert seen["fuse_in"].shape[1] == 64


def test_scdnn_aspp_ablation_has_more_parameters() -> None:
    aspc, aspp = SCDnn(), SCDnn(context="aspp")
    assert isinstance(aspp.context, ASPP) and isinstance(aspc.context, ASPC)
    # pooling branch (1x1 conv 256->128, BN) + 128 more input channels into the x4 up block (->64)
    extra = 256 * 128 + 2 * 128 + 128 * 64 * 8 * 8  # the default 8x8 upsampling kernels
    assert count_parameters(aspp) - count_parameters(aspc) == extra
    assert aspp.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_scdnn_disjoint_upsampling_ablation() -> None:
    overlap, disjoint = SCDnn(), SCDnn(upsampling_kernel=4)
    assert overlap.up1[0].kernel_size == overlap.up2[0].kernel_size == (8, 8)  # the default
    assert disjoint.up1[0].kernel_size == disjoint.up2[0].kernel_size == (4, 4)
    # 8x8 instead of 4x4 kernels in up1 (512 -> 64) and up2 (64 -> 32); nothing else changes
    extra = (64 - 16) * (512 * 64 + 64 * 32)
    assert count_parameters(overlap) - count_parameters(disjoint) == extra
    assert disjoint.eval()(torch.randn(1, 3, 37, 53)).shape == (1, 2, 37, 53)


def test_scdnn_parameter_budget() -> None:
    # under 0.25 x DeepLab v3+ ResNet50 (26.7 M) = 6.7 M: 6.05 M with the default 8x8
    # upsampling kernels, 4.38 M with 4x4 ones
    assert 3_000_000 < count_parameters(SCDnn()) < 6_700_000
