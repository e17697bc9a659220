"""``scdnn demo``: map, score and report a sample with weights, on tiny generated inputs; and
the bundled weights and sample themselves when they are there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

import scdnn.demo
from scdnn.cli import main
from scdnn.datasets import Normalization
from scdnn.models import create_model
from scdnn.records import ModelCard
from scdnn.weights import load_model, read_card, save_weights

TINY = {"widths": (4, 8, 8, 8), "aspc_channels": 8, "decoder_channels": 8}
RGB = ["red", "green", "blue"]
NAMES = ("scene-a", "scene-b", "scene-c")


def tiny_weights(path: Path, in_channels: int = 3, inputs: list[str] | None = None,
                 card_kwargs: dict | None = None) -> Path:
    """Tiny SCDnn weights with a model card; ``card_kwargs`` puts other model_kwargs in the
    card than the tensors were made with (a file whose tensors belong to another network)."""
    torch.manual_seed(0)
    model = create_model("scdnn", in_channels=in_channels, **TINY).eval()
    card = {"model": "scdnn", "in_channels": in_channels, "num_classes": 2,
            "model_kwargs": card_kwargs if card_kwargs is not None else TINY,
            "classes": ["background", "landslide"], "inputs": inputs or RGB[:in_channels],
            "normalization": Normalization(mean=[128.0] * in_channels,
                                           std=[60.0] * in_channels).to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, path, ModelCard.from_dict(card))
    return path


def tiny_sample(root: Path, size: int = 48) -> Path:
    """A sample folder: images/ (RGB PNG) and masks/ (0/255 PNG), one box per mask."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(NAMES):
        image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[4 + k:20 + k, 6:30] = 255
        for sub, array in (("images", image), ("masks", mask)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / sub / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo-inputs")
    return {"weights": tiny_weights(root / "w" / "weights.safetensors"),
            "sample": tiny_sample(root / "sample")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, inputs) -> tuple[Path, str]:
    """One demo run over the tiny sample: (output folder, what it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo-run") / "demo-output"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out), "--weights", str(inputs["weights"]),
                     "--sample", str(inputs["sample"])])
    assert code == 0
    return out, printed.getvalue()


def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(["demo", *args])
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_demo_maps_scores_and_reports(demo_run, inputs) -> None:
    out, printed = demo_run
    for name in NAMES:
        maps = out / "maps" / name
        assert {"probability.tif", "mask.tif", "landslides.gpkg", "map.json"} <= \
            {p.name for p in maps.iterdir()}
        with rasterio.open(maps / "mask.tif") as src:
            mapped = src.read(1)
        saved = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        assert set(np.unique(saved)) <= {0, 255}
        np.testing.assert_array_equal(saved == 255, mapped == 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 3
    assert metrics["pixels"] == 3 * 48 * 48
    assert metrics["source"]["data"] == str(inputs["sample"].resolve())
    assert metrics["source"]["weights"] == str(inputs["weights"].resolve())
    rows = (out / "per_image.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == list(NAMES)
    html = (out / "report.html").read_text()
    assert "Evaluation report" in html and "overlay of scene-a" in html
    assert "MIoU" in printed
    assert printed.strip().splitlines()[-1] == f"report: {out / 'report.html'}"


@pytest.mark.slow
def test_demo_mask_equals_scdnn_map(demo_run, inputs, tmp_path) -> None:
    """The demo's maps are exactly what ``scdnn map`` writes for the same image."""
    out, _ = demo_run
    image = inputs["sample"] / "images" / "scene-b.png"
    assert main(["map", str(image), "--weights", str(inputs["weights"]),
                 "--out", str(tmp_path / "map")]) == 0
    for name in ("probability.tif", "mask.tif"):
        with rasterio.open(tmp_path / "map" / name) as a, \
                rasterio.open(out / "maps" / "scene-b" / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.slow
def test_demo_replaces_only_its_own_folder(inputs, tmp_path, capsys) -> None:
    args = ["--weights", str(inputs["weights"]), "--sample", str(inputs["sample"])]
    out = tmp_path / "demo"
    assert run(["--out", str(out), *args], capsys)[0] == 0
    (out / "stale.txt").write_text("from the previous run")
    assert run(["--out", str(out), *args], capsys)[0] == 0
    assert not (out / "stale.txt").exists()
    assert (out / "report.html").is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, err = run(["--out", str(mine), *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not a previous demo output" in err and str(mine) in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert run(["--out", str(mine), "--overwrite", *args], capsys)[0] == 0
    assert (mine / "notes.txt").read_text() == "keep me"
    assert (mine / "report.html").is_file()
    assert not (mine / scdnn.demo.MARKER).exists()  # still not the demo's own folder


@pytest.mark.slow
def test_demo_never_deletes_or_writes_into_its_inputs(inputs, tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    sample_args = ["--sample", str(inputs["sample"])]
    assert run(["--out", str(out), "--weights", str(inputs["weights"]), *sample_args],
               capsys)[0] == 0
    kept = out / "w.safetensors"  # weights inside a previous demo output
    kept.write_bytes(inputs["weights"].read_bytes())
    code, err = run(["--out", str(out), "--weights", str(kept), *sample_args], capsys)
    assert code == 2 and "holds or is inside the weights or the sample" in err
    assert kept.is_file() and (out / "report.html").is_file()
    before = sorted(p.relative_to(inputs["sample"]) for p in inputs["sample"].rglob("*"))
    code, err = run(["--out", str(inputs["sample"]), "--overwrite", "--weights",
                     str(inputs["weights"]), *sample_args], capsys)
    assert code == 2 and "holds or is inside the weights or the sample" in err
    assert sorted(p.relative_to(inputs["sample"]) for p in inputs["sample"].rglob("*")) == before


@pytest.mark.parametrize("kind", ["4 bands", "terrain", "other network", "not scdnn"])
def test_demo_refuses_weights_it_cannot_use(kind, inputs, tmp_path, capsys) -> None:
    path = tmp_path / "w.safetensors"
    if kind == "4 bands":
        tiny_weights(path, in_channels=4, inputs=[*RGB, "nir"])
    elif kind == "terrain":
        tiny_weights(path, in_channels=5, inputs=[*RGB, "slope", "relative_elevation"])
    elif kind == "other network":
        tiny_weights(path, card_kwargs={**TINY, "widths": (8, 8, 8, 8)})
    else:
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(2)}, str(path))
    out = tmp_path / "out"
    code, err = run(["--out", str(out), "--weights", str(path),
                     "--sample", str(inputs["sample"])], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"scdnn demo: error: {path}: ")
    assert not out.exists()


def test_demo_refuses_a_missing_sample(inputs, tmp_path, capsys) -> None:
    missing = tmp_path / "no-sample"
    code, err = run(["--out", str(tmp_path / "out"), "--weights", str(inputs["weights"]),
                     "--sample", str(missing)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{missing}: demo sample folder does not exist" in err


def test_demo_without_bundled_weights_says_so(inputs, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(scdnn.demo, "bundled_weights", lambda: tmp_path / "absent.safetensors")
    code, err = run(["--out", str(tmp_path / "out"), "--sample", str(inputs["sample"])], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "bundled weights are not in this copy" in err


BUNDLED = scdnn.demo.bundled_weights()


@pytest.mark.skipif(not BUNDLED.is_file(),
                    reason=f"no bundled weights yet: {BUNDLED} is written by "
                           "benchmarks/bundle.py once the sichuan-scdnn run is trained")
def test_bundled_weights_and_their_demo_sample() -> None:
    from safetensors import safe_open

    assert BUNDLED.stat().st_size <= 10_000_000
    card = read_card(BUNDLED)
    assert card.dtype in ("float16", "int8")
    with safe_open(str(BUNDLED), framework="pt") as handle:
        dtypes = {k: handle.get_tensor(k).dtype for k in handle.keys()}
    # float16 throughout, or int8 kernels with their float32 scales (scdnn.weights)
    assert torch.float16 in dtypes.values()
    assert all(k.endswith(".int8_scale") for k, d in dtypes.items() if d == torch.float32)
    assert (torch.int8 in dtypes.values()) == (card.dtype == "int8")
    model, _ = load_model(BUNDLED)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert card.inputs == RGB

    images = card.extra["demo_sample"]["images"]
    seen = set(card.split["train"]) | set(card.split["val"])
    assert images and not seen & set(images), "sample images were used in training"
    assert set(images) <= set(card.split["test"])
    assert (BUNDLED.parent / "WEIGHTS.md").is_file()


@pytest.mark.slow
def test_demo_without_a_sample_maps_generated_images_and_says_so(inputs, tmp_path, monkeypatch,
                                                                 capsys) -> None:
    monkeypatch.setattr(scdnn.demo, "shared_sichuan", lambda: None)
    monkeypatch.setattr(scdnn.demo, "bundled_sample", lambda: tmp_path / "no-bundled-sample")
    out = tmp_path / "out"
    code = main(["demo", "--out", str(out), "--weights", str(inputs["weights"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "generated images" in captured.err and "say nothing" in captured.err
    assert sorted(p.name for p in (out / "sample" / "images").iterdir()) == \
        sorted(p.name for p in (out / "masks").iterdir())
    assert (out / "report.html").is_file()


SAMPLE = scdnn.demo.bundled_sample()


def test_the_demo_sample_is_bundled_small_and_attributed() -> None:
    files = sorted(p for p in SAMPLE.rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in files) < 5_000_000
    names = sorted(read_card(BUNDLED).extra["demo_sample"]["images"])
    for sub in ("images", "masks"):
        assert sorted(p.stem for p in (SAMPLE / sub).iterdir()) == names
    for name in names:
        image = np.asarray(Image.open(SAMPLE / "images" / f"{name}.png"))
        mask = np.asarray(Image.open(SAMPLE / "masks" / f"{name}.png"))
        assert image.shape == (640, 640, 3) and mask.shape == (640, 640)
        assert set(np.unique(mask)) == {0, 255}  # real landslides in every crop
    attribution = (SAMPLE / "ATTRIBUTION.md").read_text()
    for needle in ("CC BY 4.0", "Zeng et al. 2021", "10.11922/sciencedb.j00001.00222",
                   "cropped", *names):
        assert needle in attribution, needle
    # the package ships it (pyproject package-data)
    assert '"data/**/*"' in (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()


def test_demo_maps_the_bundled_sample_without_shared_data(inputs, tmp_path, monkeypatch,
                                                          capsys) -> None:
    def no_shared():
        raise AssertionError("the demo looked for ../shared")

    monkeypatch.setattr(scdnn.demo, "shared_sichuan", no_shared)
    out = tmp_path / "out"
    code = main(["demo", "--out", str(out), "--weights", str(inputs["weights"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "generated" not in captured.err
    names = sorted(p.stem for p in (SAMPLE / "images").iterdir())
    assert sorted(p.stem for p in (out / "masks").iterdir()) == names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 4 and metrics["source"]["data"] == str(SAMPLE.resolve())
    assert not (out / "sample").exists()  # mapped in place, nothing cut


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED.is_file(), reason=f"no bundled weights: {BUNDLED}")
def test_demo_with_the_bundled_weights_and_sample(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(scdnn.demo, "shared_sichuan", lambda: None)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 4 and metrics["miou"] > 0.5
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out


@pytest.mark.realdata
def test_bundle_sample_script_rewrites_the_same_bytes(shared_data, tmp_path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bundle_sample.py"
    spec = importlib.util.spec_from_file_location("bundle_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "sample"
    assert module.main(["--data", str(shared_data / "sichuan-aerial"), "--out", str(out)]) == 0
    assert module.main(["--data", str(shared_data / "sichuan-aerial"), "--out", str(out)]) == 0
    ours = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert ours == sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file())
    for rel in ours:
        assert (out / rel).read_bytes() == (SAMPLE / rel).read_bytes(), rel


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not BUNDLED.is_file(), reason=f"no bundled weights: {BUNDLED}")
def test_without_the_bundled_sample_the_demo_cuts_it_from_the_shared_data(
        shared_data, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(scdnn.demo, "bundled_sample", lambda: tmp_path / "no-bundled-sample")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    card = read_card(BUNDLED)
    names = sorted(p.stem for p in (out / "sample" / "images").iterdir())
    assert names == sorted(card.extra["demo_sample"]["images"])
    for sub in ("images", "masks"):  # the same crops as the bundled ones
        for name in names:
            assert (out / "sample" / sub / f"{name}.png").read_bytes() == \
                (SAMPLE / sub / f"{name}.png").read_bytes()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == len(names) and metrics["miou"] > 0.5
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
