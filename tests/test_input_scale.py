"""A network run at another resolution than its input (``input_scale``, scdnn.models.rescaled):
the resampling by hand, the model registry, training crops, the model card, mapping, ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from conftest import TINY, random_rgb, spread_weights
from scdnn.cli import main
from scdnn.datasets.synthetic import write_synthetic_dataset
from scdnn.errors import UserError
from scdnn.models import Rescaled, create_model
from scdnn.models.rescaled import data_crop_size
from scdnn.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")


class FirstTwoBands(nn.Module):
    """The identity on the first two bands (two 'logits'), recording the sizes it ran at."""

    output_stride = 1

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return x[:, :2]


def test_half_scale_by_hand() -> None:
    """Rows 0 0 8 8 8 8 0 0. Down by 2 (means of 2 x 2 blocks): 0 8 8 0. Back up by 2
    (bilinear on pixel centres: output column j samples j / 2 - 1/4 of the small row,
    clamped at the edges): 0, 2, 6, 8, 8, 6, 2, 0."""
    net = FirstTwoBands()
    model = Rescaled(net, 0.5)
    x = torch.tensor([0, 0, 8, 8, 8, 8, 0, 0], dtype=torch.float32).expand(1, 2, 4, 8)
    out = model(x.contiguous())
    assert net.sizes == [(2, 4)]
    assert out.shape == (1, 2, 4, 8)
    expected = torch.tensor([0, 2, 6, 8, 8, 6, 2, 0], dtype=torch.float32).expand(1, 2, 4, 8)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_a_partial_last_block_is_the_mean_of_its_pixels_and_sizes_come_back_whole() -> None:
    net = FirstTwoBands()
    model = Rescaled(net, 0.5)
    x = torch.zeros(1, 2, 1, 5)
    x[..., 4] = 6.0  # the last block holds one column
    small = []
    net.forward = lambda t: (small.append(t), t[:, :2])[1]
    out = model(x)
    assert small[0].shape == (1, 2, 1, 3) and float(small[0][0, 0, 0, 2]) == 6.0
    assert out.shape == (1, 2, 1, 5)
    constant = Rescaled(FirstTwoBands(), 0.25)(torch.full((2, 3, 37, 53), 3.0))
    assert constant.shape == (2, 2, 37, 53)
    torch.testing.assert_close(constant, torch.full_like(constant, 3.0))


def test_create_model_wraps_only_when_the_scale_is_not_one() -> None:
    assert not isinstance(create_model("sssn", input_scale=1.0), Rescaled)
    half = create_model("scdnn", input_scale=0.5, **TINY)
    assert isinstance(half, Rescaled) and half.input_scale == 0.5
    assert half.output_stride == 32  # SCDnn's 16 at half resolution
    assert create_model("sssn", input_scale=0.25).output_stride == 16  # SSSN's 4
    assert create_model("scdnn", input_scale=1 / 3, **TINY).output_stride == 48
    assert create_model("sssn", input_scale=0.333333).input_scale == 1 / 3  # 6 digits do


@pytest.mark.parametrize("value", [0, -0.5, 0.01, 0.3, 0.75, 2, float("nan"), float("inf"),
                                   True, "half"])
def test_an_input_scale_out_of_range_is_a_user_error(value) -> None:
    with pytest.raises(UserError, match="input.scale"):
        create_model("sssn", input_scale=value)


def test_training_crops_cover_image_size_over_scale_data_pixels() -> None:
    assert data_crop_size(256, 0.5) == 512
    assert data_crop_size(256, 1.0) == 256
    assert data_crop_size(100, 1 / 3) == 300


def test_gradients_reach_every_parameter_through_the_resampling() -> None:
    torch.manual_seed(0)
    model = create_model("scdnn", input_scale=0.5, **TINY).train()
    x = torch.randn(2, 3, 48, 40)
    loss = nn.functional.cross_entropy(model(x), torch.randint(0, 2, (2, 48, 40)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters())


# --- through the command line ----------------------------------------------------------------

def test_train_at_half_scale_records_it_and_every_command_reads_it(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", count=6, size=40, seed=1)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--model", "sssn", "--epochs", "1",
                 "--batch-size", "2", "--image-size", "16", "--input-scale", "0.5",
                 "--workers", "0"]) == 0
    card = json.loads((run / "model.json").read_text())
    assert card["model_kwargs"]["input_scale"] == 0.5
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["image_size"] == 16 and config["model_kwargs"] == {"input_scale": 0.5}
    predictor = Predictor.from_file(run / "weights.safetensors")
    assert isinstance(predictor.model, Rescaled) and predictor.output_stride == 8
    mask = predictor.predict(random_rgb(40, 44, seed=3))
    assert mask.shape == (40, 44) and set(np.unique(mask)) <= {0, 1}
    out = tmp_path / "eval"
    assert main(["evaluate", str(data), "--weights", str(run / "weights.safetensors"),
                 "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["images"] >= 1


def test_train_refuses_an_input_scale_out_of_range_in_one_line(tmp_path: Path,
                                                                   capsys) -> None:
    from conftest import one_line_error

    data = write_synthetic_dataset(tmp_path / "data", count=4, size=32, seed=1)
    code = main(["train", str(data), "--out", str(tmp_path / "run"), "--input-scale", "0.3",
                 "--epochs", "1", "--workers", "0"])
    one_line_error(code, capsys, "input-scale")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_map_at_half_scale_aligns_windows_to_the_working_grid(tmp_path: Path) -> None:
    """Windows start at multiples of the stride in input pixels (32 for SCDnn at 0.5), so
    tiled maps agree with one pass over the same scene about as well as at full scale."""
    from conftest import write_stripe_scene
    from scdnn.mapping import map_scene
    from scdnn.mapping.core import Tiling
    from scdnn.mapping.outputs import read_probability

    weights = spread_weights(tmp_path / "w.safetensors", random_rgb(64, 64, seed=1),
                             {**TINY, "input_scale": 0.5})
    scene = write_stripe_scene(tmp_path / "scene", 150, 170, edge=80)
    tiled = map_scene(scene / "rgb.tif", weights, tmp_path / "tiled",
                      tiling=Tiling(96, 32, 1))
    assert tiled["windows"]["run"] > 1
    one = map_scene(scene / "rgb.tif", weights, tmp_path / "one", tiling=Tiling(512, 0, 1))
    with rasterio.open(tmp_path / "tiled" / "probability.tif") as a, \
            rasterio.open(tmp_path / "one" / "probability.tif") as b:
        assert a.shape == b.shape == (150, 170)
        assert np.abs(read_probability(a) - read_probability(b)).mean() < 0.05
    assert one["windows"]["run"] == 1


@pytest.mark.slow
def test_onnx_export_keeps_height_and_width_dynamic(tmp_path: Path) -> None:
    from scdnn.export import export_onnx

    weights = spread_weights(tmp_path / "w.safetensors", random_rgb(64, 64, seed=1),
                             {**TINY, "input_scale": 0.5})
    onnx_path = export_onnx(weights, tmp_path / "model.onnx")
    torch_model = Predictor.from_file(weights, "torch").model
    onnx_model = Predictor.from_file(onnx_path, "onnxruntime").model
    for shape in [(1, 3, 67, 45), (2, 3, 32, 100)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.inference_mode():
            expected = torch_model(x)
        got = onnx_model.to(torch.device("cpu")).eval()(x)
        assert got.shape == expected.shape == (shape[0], 2, *shape[2:])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
