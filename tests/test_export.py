"""``scdnn export`` and ``--engine onnxruntime``: ONNX models that match the PyTorch network.

A tiny seeded SCDnn is exported once; ``scdnn predict`` and ``scdnn map`` then run with both
engines on the same inputs and must agree, the ONNX graph must take any batch, height and
width (odd sizes included: the network pads to its output stride inside the graph), and every
wrong input must end in exit status 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.transform import Affine

from conftest import TINY, random_rgb, spread_weights, write_image
from scdnn.cli import ENGINE_CHOICES, main
from scdnn.engines import ENGINES, OnnxModel
from scdnn.errors import InputFileError, InvalidValueError, UserError
from scdnn.export import export_onnx
from scdnn.predictor import Predictor
from scdnn.weights import read_card

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Tiny SCDnn weights with a full card, probabilities spread over (0, 1) (a fresh network
    sits near 0.5, where any rounding flips the mask)."""
    return spread_weights(tmp_path_factory.mktemp("weights") / "weights.safetensors",
                          random_rgb(64, 64, seed=1), TINY,
                          config={"epochs": 3, "note": "Wenchuan 汶川"},
                          split={"test": ["a.png"]}, provenance={"git_commit": None})


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, weights) -> Path:
    return export_onnx(weights, tmp_path_factory.mktemp("onnx") / "model.onnx")


def assert_user_error(code: int, capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


# --------------------------------------------------------------------------- export


@pytest.mark.slow
def test_cli_export_writes_a_checked_self_describing_model(tmp_path: Path, weights: Path,
                                                           capsys) -> None:
    out = tmp_path / "sub" / "scdnn.onnx"
    out.parent.mkdir()
    out.write_bytes(b"keep me")
    code = main(["export", "--weights", str(weights), "--format", "onnx", "--out", str(out)])
    assert_user_error(code, capsys, str(out), "exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    code = main(["export", "--weights", str(weights), "--format", "onnx", "--out", str(out),
                 "--overwrite"])
    printed = capsys.readouterr().out.strip()
    assert code == 0
    assert printed == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["scdnn.onnx"]  # no temporary left
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert dims(model.graph.input[0]) == ["batch", 3, "height", "width"]
    assert dims(model.graph.output[0]) == ["batch", 2, "height", "width"]
    assert {o.domain: o.version for o in model.opset_import}[""] == 18


@pytest.mark.slow
def test_card_round_trips(weights: Path, onnx_path: Path) -> None:
    card = read_card(weights)
    props = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert json.loads(props["scdnn"]) == card.to_dict()
    predictor = Predictor.from_file(onnx_path, "onnxruntime")
    assert predictor.card == card and predictor.model.card == card
    assert predictor.engine == "onnxruntime" and predictor.output_stride == 16
    assert card.config["note"] == "Wenchuan 汶川"


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(3, 3, 67, 45), (1, 3, 33, 100), (2, 3, 1, 1),
                                   (5, 3, 48, 80)])
def test_dynamic_batch_height_and_width(weights: Path, onnx_path: Path, shape) -> None:
    # The example the graph was recorded with is 2 x 3 x 64 x 64; none of these is that.
    torch_model = Predictor.from_file(weights, "torch").model
    onnx_model = Predictor.from_file(onnx_path, "onnxruntime").model
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.inference_mode():
        expected = torch_model(x)
    got = onnx_model.to(torch.device("cpu")).eval()(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.shape == expected.shape == (shape[0], 2, shape[2], shape[3])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- engines agree


@pytest.mark.slow
def test_predict_with_onnxruntime_matches_pytorch(tmp_path: Path, weights: Path,
                                                  onnx_path: Path, capsys) -> None:
    images = tmp_path / "images"
    for i, (h, w) in enumerate([(67, 45), (64, 64), (50, 91)]):
        write_image(images / f"img{i}.png", random_rgb(h, w, seed=10 + i))
    # --raw: the engines are compared on the network's own masks, not on cleaned ones
    assert main(["predict", str(images), "--weights", str(weights),
                 "--out", str(tmp_path / "torch"), "--raw"]) == 0
    assert main(["predict", str(images), "--weights", str(onnx_path), "--engine", "onnxruntime",
                 "--out", str(tmp_path / "ort"), "--raw"]) == 0
    capsys.readouterr()
    total = equal = 0
    for stem in ("img0", "img1", "img2"):
        a = np.asarray(Image.open(tmp_path / "torch" / "masks" / f"{stem}.png"))
        b = np.asarray(Image.open(tmp_path / "ort" / "masks" / f"{stem}.png"))
        assert a.shape == b.shape
        total, equal = total + a.size, equal + int((a == b).sum())
        pa = np.asarray(Image.open(tmp_path / "torch" / "probabilities" / f"{stem}.png"))
        pb = np.asarray(Image.open(tmp_path / "ort" / "probabilities" / f"{stem}.png"))
        assert np.abs(pa.astype(int) - pb).max() <= 1
    assert 0.1 < np.mean(a == 255) < 0.9  # the masks are not trivially all one class
    assert equal / total >= 0.999


def write_geotiff(path: Path, height: int = 90, width: int = 130) -> Path:
    """A 3-band uint8 scene with a CRS and nodata 0 in its left quarter."""
    image = np.moveaxis(random_rgb(height, width, seed=5), -1, 0).clip(1, 255)
    image[:, :, : width // 4] = 0
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3,
                       dtype="uint8", crs="EPSG:32647", nodata=0,
                       transform=Affine(0.5, 0, 500000.0, 0, -0.5, 3400000.0)) as dst:
        dst.write(image)
    return path


@pytest.mark.slow
def test_map_with_onnxruntime_matches_pytorch(tmp_path: Path, weights: Path, onnx_path: Path,
                                              capsys) -> None:
    scene = write_geotiff(tmp_path / "scene.tif")
    small = ["--tile", "64", "--overlap", "16", "--batch-size", "3", "--raw"]  # raw masks
    assert main(["map", str(scene), "--weights", str(weights), "--out", str(tmp_path / "torch"),
                 *small]) == 0
    assert main(["map", str(scene), "--weights", str(onnx_path), "--engine", "onnxruntime",
                 "--out", str(tmp_path / "ort"), *small]) == 0
    capsys.readouterr()
    with rasterio.open(tmp_path / "torch" / "mask.tif") as a, \
            rasterio.open(tmp_path / "ort" / "mask.tif") as b:
        ma, mb = a.read(1), b.read(1)
        assert b.crs == a.crs and b.transform == a.transform
    assert (ma == 255).sum() == 90 * (130 // 4)  # the nodata quarter
    assert 0.1 < np.mean(ma[ma != 255] == 1) < 0.9
    assert np.mean(ma == mb) >= 0.999
    summary = json.loads((tmp_path / "ort" / "map.json").read_text())
    assert summary["engine"] == "onnxruntime"


# --------------------------------------------------------------------------- mistakes


def test_corrupt_onnx_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not an ONNX model" * 10)
    write_image(tmp_path / "images" / "a.png", random_rgb(20, 20, seed=0))
    code = main(["predict", str(tmp_path / "images"), "--weights", str(bad),
                 "--engine", "onnxruntime", "--out", str(tmp_path / "out")])
    assert_user_error(code, capsys, str(bad), "not an ONNX model")
    assert not (tmp_path / "out").exists()


def test_safetensors_with_engine_onnxruntime(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_geotiff(tmp_path / "scene.tif")
    code = main(["map", str(scene), "--weights", str(weights), "--engine", "onnxruntime",
                 "--out", str(tmp_path / "out")])
    assert_user_error(code, capsys, str(weights), "safetensors", "scdnn export")


@pytest.mark.slow
def test_onnx_with_engine_torch(tmp_path: Path, onnx_path: Path, capsys) -> None:
    write_image(tmp_path / "images" / "a.png", random_rgb(20, 20, seed=0))
    code = main(["predict", str(tmp_path / "images"), "--weights", str(onnx_path),
                 "--out", str(tmp_path / "out")])
    assert_user_error(code, capsys, str(onnx_path), "is an ONNX model", "--engine onnxruntime")


@pytest.mark.slow
def test_onnx_model_without_the_card(tmp_path: Path, onnx_path: Path, capsys) -> None:
    model = onnx.load(onnx_path)
    del model.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(model, plain)
    write_image(tmp_path / "images" / "a.png", random_rgb(20, 20, seed=0))
    code = main(["predict", str(tmp_path / "images"), "--weights", str(plain),
                 "--engine", "onnxruntime", "--out", str(tmp_path / "out")])
    assert_user_error(code, capsys, str(plain), "no scdnn model card", "scdnn export")


def test_export_of_a_missing_weights_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "model.onnx"
    code = main(["export", "--weights", str(tmp_path / "nope.safetensors"), "--out", str(out)])
    assert_user_error(code, capsys, "nope.safetensors", "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_corrupt_weights_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    code = main(["export", "--weights", str(bad), "--out", str(tmp_path / "model.onnx")])
    assert_user_error(code, capsys, str(bad), "not a safetensors weights file")
    assert not (tmp_path / "model.onnx").exists()


def test_export_refuses_an_opset_below_18(tmp_path: Path, weights: Path, capsys) -> None:
    code = main(["export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"),
                 "--opset", "17"])  # argparse refuses it
    assert_user_error(code, capsys, "--opset", "18")
    with pytest.raises(UserError, match="opset"):
        export_onnx(weights, tmp_path / "m.onnx", opset=17)


@pytest.mark.slow
def test_onnx_model_runs_on_the_cpu_only(onnx_path: Path) -> None:
    model = OnnxModel(onnx_path)
    assert model.to("cpu") is model and model.to(torch.device("cpu")) is model
    with pytest.raises(UserError, match="onnxruntime runs on the CPU only"):
        model.to("cuda")
    with pytest.raises(UserError, match="onnxruntime runs on the CPU only"):
        model.to(torch.device("cuda", 0))


@pytest.mark.slow
def test_wrong_input_and_unknown_engine(onnx_path: Path) -> None:
    with pytest.raises(UserError, match=r"\(N, 3, H, W\)"):
        OnnxModel(onnx_path)(torch.zeros(1, 4, 8, 8))
    with pytest.raises(UserError, match="unknown engine 'tensorrt'"):
        Predictor.from_file(onnx_path, "tensorrt")
    assert ENGINE_CHOICES == ENGINES


def test_predictor_with_either_engine_agrees(weights: Path, onnx_path: Path) -> None:
    by_torch = Predictor.from_file(weights)
    by_onnx = Predictor.from_file(onnx_path, engine="onnxruntime")
    assert by_onnx.engine == "onnxruntime" and by_onnx.inputs == by_torch.inputs
    image = random_rgb(45, 67, seed=3)
    np.testing.assert_allclose(by_onnx.probability(image), by_torch.probability(image),
                               atol=1e-4)
    for tta in ("flips", "d4"):  # test-time augmentation runs around either engine alike
        augmented = Predictor.from_file(onnx_path, engine="onnxruntime", tta=tta)
        np.testing.assert_allclose(augmented.probability(image),
                                   Predictor.from_file(weights, tta=tta).probability(image),
                                   atol=1e-4)
    with pytest.raises(InvalidValueError, match=r"image has 1 band\(s\) but the model takes 3"):
        by_onnx.probability(image[:, :, 0])
    with pytest.raises(InvalidValueError, match="runs on the CPU only"):
        Predictor.from_file(onnx_path, engine="onnxruntime", device="cuda")
    with pytest.raises(InputFileError, match="is an ONNX model, not a weights file; use "
                                             "engine onnxruntime"):
        Predictor.from_file(onnx_path)
