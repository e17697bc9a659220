"""Simple mistakes are answered at once, and commands import only what they need.

A missing input or an output the command refuses ends with exit status 2 and the command's
one-line message before torch is imported (torch alone takes seconds); mapping, prediction
and export never import Lightning or torchmetrics (training and evaluation need them).
Each case runs ``scdnn.cli.main`` in a fresh interpreter, which reports what it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, random_rgb, spread_weights, write_image

SRC = Path(__file__).resolve().parents[1] / "src"

#: main(argv) in a clean interpreter; prints the exit status and what was imported.
RUN_MAIN = r"""
import json, sys
from scdnn.cli import main

codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes,
                  "imported": sorted(m for m in ("torch", "lightning", "lightning_utilities",
                                                 "torchmetrics") if m in sys.modules)}))
"""


def run_main(*argvs: list[str]) -> tuple[dict, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    result = subprocess.run([sys.executable, "-c", RUN_MAIN, json.dumps(list(argvs))],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def write_scene(path: Path, sample: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import Affine

    height, width = sample.shape[:2]
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3,
                       dtype="uint8", crs="EPSG:32647",
                       transform=Affine(0.5, 0, 500000.0, 0, -0.5, 3400000.0)) as dst:
        dst.write(np.moveaxis(sample, -1, 0))
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Valid inputs of every kind, so that each case below has exactly one mistake."""
    from scdnn.datasets.synthetic import write_synthetic_dataset

    sample = random_rgb(40, 48, seed=3)
    full = tmp_path / "full"
    full.mkdir()
    (full / "precious.txt").write_text("keep me")
    return {"data": write_synthetic_dataset(tmp_path / "data", count=2, size=40, seed=1),
            "weights": spread_weights(tmp_path / "weights.safetensors", sample, TINY),
            "scene": write_scene(tmp_path / "scene.tif", sample),
            "full": full, "missing": tmp_path / "missing", "o": tmp_path / "o"}


def cases(p: dict[str, Path]) -> list[tuple[list[str], str]]:
    """(argv with one mistake, the expected stderr line) for each command."""
    data, weights, scene, full, missing, o = (str(p[k]) for k in ("data", "weights", "scene",
                                                                   "full", "missing", "o"))
    images = str(p["data"] / "images")
    not_empty = f"{full}: output folder exists and is not empty (use --overwrite)"
    return [
        (["train", missing, "--out", o],
         f"scdnn train: error: {missing}: dataset folder does not exist"),
        (["train", weights, "--out", o],
         f"scdnn train: error: {weights}: dataset path is not a folder"),
        (["train", data, "--out", full], f"scdnn train: error: {not_empty}"),
        (["train", data, "--out", full, "--resume"],
         f"scdnn train: error: {full}: --resume: no checkpoint to resume from "
         f"(checkpoints/last.ckpt)"),
        (["evaluate", missing, "--weights", weights, "--out", o],
         f"scdnn evaluate: error: {missing}: dataset folder does not exist"),
        (["evaluate", data, "--weights", missing, "--out", o],
         f"scdnn evaluate: error: {missing}: weights file does not exist"),
        (["evaluate", data, "--weights", weights, "--out", full],
         f"scdnn evaluate: error: {not_empty}"),
        (["predict", missing, "--weights", weights, "--out", o],
         f"scdnn predict: error: {missing}: image folder does not exist"),
        (["predict", images, "--weights", missing, "--out", o],
         f"scdnn predict: error: {missing}: weights file does not exist"),
        (["predict", images, "--weights", missing, "--engine", "onnxruntime", "--out", o],
         f"scdnn predict: error: {missing}: model file does not exist"),
        (["predict", images, "--weights", weights, "--out", full],
         f"scdnn predict: error: {not_empty}"),
        (["map", missing, "--weights", weights, "--out", o],
         f"scdnn map: error: {missing}: scene file does not exist"),
        (["map", scene, "--weights", missing, "--out", o],
         f"scdnn map: error: {missing}: weights file does not exist"),
        (["map", scene, "--weights", weights, "--out", weights],
         f"scdnn map: error: {weights}: output path exists and is not a folder"),
        (["map", scene, "--weights", weights, "--out", full], f"scdnn map: error: {not_empty}"),
        (["export", "--weights", missing, "--out", o],
         f"scdnn export: error: {missing}: weights file does not exist"),
        (["export", "--weights", weights, "--out", full],
         f"scdnn export: error: {full}: output path is a folder; give the .onnx file to "
         f"write"),
        (["export", "--weights", weights, "--out", str(p["full"] / "precious.txt")],
         f"scdnn export: error: {p['full'] / 'precious.txt'}: output file exists (use "
         f"--overwrite)"),
    ]


def test_bad_paths_are_refused_before_torch_is_imported(inputs: dict[str, Path]) -> None:
    missing = str(inputs["missing"])
    more = [  # two mistakes: the input named first is reported; a DSM is a path too
        (["map", missing, "--weights", missing, "--out", str(inputs["o"])],
         f"scdnn map: error: {missing}: scene file does not exist"),
        (["map", str(inputs["scene"]), "--dsm", missing, "--weights", str(inputs["weights"]),
          "--out", str(inputs["o"])], f"scdnn map: error: {missing}: DSM file does not exist"),
    ]
    every = cases(inputs) + more
    report, stderr = run_main(*(argv for argv, _ in every))
    assert report["codes"] == [2] * len(every), stderr
    assert stderr.splitlines() == [line for _, line in every]
    assert report["imported"] == []  # torch was never imported
    assert not inputs["o"].exists() and not inputs["missing"].exists()
    assert [p.name for p in inputs["full"].iterdir()] == ["precious.txt"]


def test_the_commands_themselves_give_the_same_messages(inputs: dict[str, Path], monkeypatch,
                                                        capsys) -> None:
    """With the early check switched off, each case reaches the command's own check, which
    must end in the same line: the early check only answers sooner."""
    from scdnn import cli

    monkeypatch.setattr(cli, "_check_paths", lambda args: None)
    for argv, line in cases(inputs):
        code = cli.main(argv)
        assert (code, capsys.readouterr().err.strip()) == (2, line), argv


@pytest.mark.slow
def test_map_predict_and_export_do_not_import_lightning(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    sample = random_rgb(48, 56, seed=3)
    weights = spread_weights(tmp_path / "weights.safetensors", sample, TINY)
    write_image(tmp_path / "images" / "a.png", sample)
    scene = write_scene(tmp_path / "scene.tif", sample)
    report, stderr = run_main(
        ["map", str(scene), "--weights", str(weights), "--out", str(tmp_path / "map"),
         "--tile", "32", "--overlap", "8"],
        ["predict", str(tmp_path / "images"), "--weights", str(weights), "--out",
         str(tmp_path / "pred")],
        ["export", "--weights", str(weights), "--out", str(tmp_path / "model.onnx")])
    assert report["codes"] == [0, 0, 0], stderr
    assert (tmp_path / "map" / "mask.tif").is_file()
    assert (tmp_path / "pred" / "masks" / "a.png").is_file()
    assert (tmp_path / "model.onnx").is_file()
    assert report["imported"] == ["torch"]  # no lightning, lightning_utilities, torchmetrics
