"""Every network of scdnn.models through the same checks (shape, gradients, determinism, ...)."""

from __future__ import annotations

import pytest
import torch

from scdnn.errors import UserError
from scdnn.models import MODEL_NAMES, count_parameters, create_model, gflops
from scdnn.models._padding import crop, pad_to_multiple
from scdnn.models.scdnn import ASPC, ASPP, SCDnn

#: The full-size networks take one to several seconds per check on a CPU: marked slow, so
#: that `make test-fast` runs every check on SSSN (SCDnn's blocks are checked on small
#: configurations in test_scdnn_blocks.py) and `make test` on all five networks.
HEAVY = ("scdnn", "segnet", "deeplabv3plus-resnet50", "deeplabv3plus-mobilenetv2")
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in MODEL_NAMES]

#: A tiny SCDnn (same blocks, few channels).
TINY_SCDNN = {"widths": (4, 8, 8, 8), "aspc_channels": 8, "decoder_channels": 8}

STRIDES = {
    "scdnn": 16,
    "sssn": 4,
    "segnet": 32,
    "deeplabv3plus-resnet50": 16,
    "deeplabv3plus-mobilenetv2": 16,
}


def test_model_names() -> None:
    assert MODEL_NAMES == (
        "scdnn",
        "sssn",
        "segnet",
        "deeplabv3plus-resnet50",
        "deeplabv3plus-mobilenetv2",
    )


# --------------------------------------------------------------------------- padding helper


def test_pad_to_multiple_pads_zeros_bottom_right() -> None:
    x = torch.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    padded, (h, w) = pad_to_multiple(x, 4)
    assert (h, w) == (2, 3)
    assert padded.shape == (1, 1, 4, 4)
    expected = torch.tensor(
        [[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    assert torch.equal(padded[0, 0], expected)
    assert torch.equal(crop(padded, h, w), x)


def test_pad_to_multiple_leaves_multiples_alone() -> None:
    x = torch.randn(2, 3, 32, 16)
    padded, size = pad_to_multiple(x, 16)
    assert padded is x and size == (32, 16)
    one, size = pad_to_multiple(torch.ones(1, 1, 1, 1), 16)
    assert one.shape == (1, 1, 16, 16) and size == (1, 1) and one.sum() == 1


@pytest.mark.parametrize("name", MODELS)
def test_output_stride_attribute(name: str) -> None:
    assert create_model(name).output_stride == STRIDES[name]


def test_scdnn_upsampling_kernel_default_8_and_4_selectable() -> None:
    default, disjoint = (create_model("scdnn", **TINY_SCDNN, upsampling_kernel=k)
                         for k in (8, 4))
    assert create_model("scdnn", **TINY_SCDNN).up2[0].kernel_size == (8, 8)
    assert default.upsampling_kernel == 8 and disjoint.upsampling_kernel == 4
    assert default.up1[0].padding == (2, 2) and disjoint.up1[0].padding == (0, 0)
    assert disjoint.up1[0].kernel_size == disjoint.up2[0].kernel_size == (4, 4)


# --------------------------------------------------------------------------- all architectures


#: The architectures checked for shapes: every network, plus SCDnn with its 4x4 disjoint
#: upsampling kernels (its default is 8x8 cropped by 2), plus a tiny SCDnn with each kernel
#: (fast, so that `make test-fast` checks both kernels too).
ARCHITECTURES = [pytest.param(n, {}, id=n, marks=pytest.mark.slow if n in HEAVY else ())
                 for n in MODEL_NAMES] + [
    pytest.param("scdnn", {"upsampling_kernel": 4}, id="scdnn-disjoint",
                 marks=pytest.mark.slow),
    pytest.param("scdnn", {**TINY_SCDNN, "upsampling_kernel": 8}, id="tiny-scdnn-k8"),
    pytest.param("scdnn", {**TINY_SCDNN, "upsampling_kernel": 4}, id="tiny-scdnn-k4"),
    pytest.param("scdnn", {**TINY_SCDNN, "input_scale": 0.5}, id="tiny-scdnn-half"),
    pytest.param("sssn", {"input_scale": 0.25}, id="sssn-quarter"),
]


@pytest.mark.parametrize(("name", "kwargs"), ARCHITECTURES)
def test_output_shape_any_size(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    with torch.no_grad():
        for h, w in [(64, 64), (37, 53), (17, 23), (1, 1), (1, 5), (33, 2)]:
            out = model(torch.randn(2, 3, h, w))
            assert out.shape == (2, 2, h, w), (h, w)
            assert out.dtype == torch.float32
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("in_channels", [1, 4])
def test_in_channels_and_classes(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, in_channels, 37, 53))
    assert out.shape == (1, 3, 37, 53)


@pytest.mark.parametrize("name", MODELS)
def test_wrong_channel_count_is_a_value_error(name: str) -> None:
    model = create_model(name, in_channels=4).eval()
    with pytest.raises(ValueError, match="4"):  # a caller's bug: a plain ValueError, as torch
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("name", MODELS)
def test_backward_gives_finite_grads_on_all_parameters(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).train()
    x = torch.randn(2, 3, 64, 64)
    target = torch.randint(0, 3, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    # at least most parameters receive a non-zero gradient (no detached branch)
    nonzero = sum(int(p.grad.abs().sum() > 0) for p in model.parameters())
    assert nonzero >= 0.9 * len(list(model.parameters()))


@pytest.mark.parametrize("name", MODELS)
def test_eval_mode_is_deterministic(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        a = model(x)
        b = model(x)
        c = model(x[:1])
    assert torch.equal(a, b)
    # eval mode: one image's output does not depend on the other images of the batch
    torch.testing.assert_close(c, a[:1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_batch_size_one_in_train_mode(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).train()
    out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 2, 64, 64)
    out.sum().backward()


@pytest.mark.parametrize("name", MODELS)
def test_output_is_cropped_not_resampled(name: str) -> None:
    # The logits of a padded-size input, cropped, equal the logits of the input zero-padded
    # by hand: padding is zeros at the bottom/right and the crop is the top-left window.
    torch.manual_seed(0)
    model = create_model(name).eval()
    stride = STRIDES[name]
    x = torch.randn(1, 3, 2 * stride - 3, stride + 1)
    by_hand = torch.zeros(1, 3, 2 * stride, 2 * stride)
    by_hand[..., : x.shape[-2], : x.shape[-1]] = x
    with torch.no_grad():
        out = model(x)
        full = model(by_hand)
    torch.testing.assert_close(out, full[..., : x.shape[-2], : x.shape[-1]])


@pytest.mark.parametrize("name", MODELS)
def test_no_pretrained_weights(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    torch.manual_seed(1)
    a = create_model(name).state_dict()
    torch.manual_seed(1)
    b = create_model(name).state_dict()
    torch.manual_seed(2)
    c = create_model(name).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [k for k in a if a[k].is_floating_point() and a[k].dim() >= 2]
    assert weights
    assert all(not torch.equal(a[k], c[k]) for k in weights)


# --------------------------------------------------------------------------- registry


def test_unknown_name_raises_user_error() -> None:
    with pytest.raises(UserError, match=r"unknown model 'unet'; choose from: scdnn, sssn"):
        create_model("unet")


def test_unknown_option_raises_user_error() -> None:
    with pytest.raises(UserError, match="no option 'depth'"):
        create_model("scdnn", depth=3)
    with pytest.raises(UserError, match="context"):
        create_model("scdnn", context="psp")
    with pytest.raises(UserError, match="num_classes"):
        create_model("sssn", num_classes=0)


def test_registry_passes_kwargs() -> None:
    aspp = create_model("scdnn", context="aspp")
    assert isinstance(aspp, SCDnn) and isinstance(aspp.context, ASPP)
    assert isinstance(create_model("scdnn").context, ASPC)
    assert create_model("scdnn", skip=False).skip is False
    assert create_model("sssn", width=8).layers[0].out_channels == 8
    dl = create_model("deeplabv3plus-mobilenetv2", decoder_channels=64)
    assert dl.net.segmentation_head[0].in_channels == 64


def test_deeplab_uses_rates_6_12_18_and_pooling_branch() -> None:
    from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPPPooling

    model = create_model("deeplabv3plus-resnet50")
    dilations = sorted(
        m.dilation[0]
        for m in model.net.decoder.aspp.modules()
        if isinstance(m, torch.nn.Conv2d) and m.dilation[0] > 1
    )
    assert dilations == [6, 12, 18]
    assert any(isinstance(m, ASPPPooling) for m in model.modules())
    assert model.net.encoder.output_stride == 16


# --------------------------------------------------------------------------- size and compute


def test_count_parameters_counts_trainable_only() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1, bias=False))
    assert count_parameters(model) == 3 * 2 + 2 + 2
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 2 + 2


def test_gflops_of_one_conv_by_hand() -> None:
    conv = torch.nn.Conv2d(2, 5, 3, padding=1, bias=False)
    # 2 FLOPs per multiply-add: 2 * (8*8 pixels) * 5 outputs * (2*3*3) inputs
    assert gflops(conv, in_channels=2, size=8) == pytest.approx(2 * 64 * 5 * 18 / 1e9)


def test_gflops_restores_training_mode() -> None:
    model = create_model("sssn").train()
    assert gflops(model, size=32) > 0
    assert model.training
    model.eval()
    gflops(model, size=32)
    assert not model.training


@pytest.mark.slow
def test_scdnn_is_smaller_and_cheaper_than_deeplab_resnet50() -> None:
    scdnn = create_model("scdnn")
    resnet = create_model("deeplabv3plus-resnet50")
    assert count_parameters(scdnn) <= 0.25 * count_parameters(resnet)
    g_scdnn = gflops(scdnn, size=64)
    g_resnet = gflops(resnet, size=64)
    assert 0 < g_scdnn < g_resnet


@pytest.mark.parametrize("name", MODELS)
def test_gflops_positive(name: str) -> None:
    assert gflops(create_model(name), size=32) > 0


@pytest.mark.parametrize("name", MODELS)
def test_weights_are_channels_last_and_results_unchanged(name: str) -> None:
    """create_model hands out channels-last weights (faster on CPU); outputs are the same as
    with the default layout, to float rounding."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    x = torch.randn(1, 3, 40, 36)
    with torch.no_grad():
        fast = model(x)
        slow = model.to(memory_format=torch.contiguous_format)(x)
    assert torch.allclose(fast, slow, atol=1e-4)
