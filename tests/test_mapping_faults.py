"""``scdnn map`` under faults: a run killed with SIGKILL, and the files it leaves behind.

The bad-input faults (not a raster, truncated GeoTIFF, band count, no valid pixel, non-empty
output folder, tile < 2 x overlap, scene smaller than one tile) are in tests/test_mapping.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from scdnn.cli import main
from scdnn.datasets import Normalization
from scdnn.models import create_model
from scdnn.records import ModelCard
from scdnn.weights import save_weights

FINAL_NAMES = ["landslides.gpkg", "map.json", "mask.tif", "probability.tif"]
SMALL = ["--tile", "64", "--overlap", "16"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny SCDnn with random weights and a model card (fast on CPU)."""
    torch.manual_seed(0)
    kwargs = {"widths": [4, 8, 8, 8], "aspc_channels": 8, "decoder_channels": 8}
    model = create_model("scdnn", in_channels=3, **kwargs).eval()
    card = ModelCard.from_dict({
        "model": "scdnn", "in_channels": 3, "num_classes": 2, "model_kwargs": kwargs,
        "classes": ["background", "landslide"], "inputs": ["red", "green", "blue"],
        "normalization": Normalization(mean=[128.0] * 3, std=[60.0] * 3).to_dict()})
    path = tmp_path_factory.mktemp("weights") / "weights.safetensors"
    save_weights(model, path, card)
    return path


def write_scene(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` RGB GeoTIFF with an internal mask band (left eighth no data)."""
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (3, size, size), dtype=np.uint8)
    valid = np.ones((size, size), bool)
    valid[:, : size // 8] = False
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3,
                           dtype="uint8", crs="EPSG:32647", tiled=True,
                           transform=Affine(0.5, 0, 500000, 0, -0.5, 3400000)) as dst:
            dst.write(image)
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    return path


def map_command(scene: Path, weights: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scdnn.cli", "map", str(scene), "--weights", str(weights),
            "--out", str(out), *SMALL]


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_sigkill_leaves_no_final_file_and_the_same_command_then_completes(
        tmp_path: Path, weights: Path) -> None:
    scene = write_scene(tmp_path / "scene.tif", 640)  # 156 windows to run: a few seconds
    out = tmp_path / "out"
    command = map_command(scene, weights, out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob(".scratch-*"))):  # staging files: mid-run
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no staging file appeared"
        time.sleep(0.005)
    assert run.poll() is None, "the run finished before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.communicate()
    assert run.returncode == -signal.SIGKILL
    left = sorted(p.name for p in out.iterdir())
    assert not set(left) & set(FINAL_NAMES), left
    assert left and all(name.startswith(".") and ".part" in name for name in left), left

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "error" not in rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == FINAL_NAMES  # leftovers cleaned up
    summary = json.loads((out / "map.json").read_text())
    assert summary["windows"] == {"total": 169, "run": 156, "skipped_no_valid_pixel": 13,
                                  "masks_read": 169}
    with rasterio.open(out / "mask.tif") as src:
        mask = src.read(1)
    assert mask.shape == (640, 640) and np.all(mask[:, :80] == 255)
    assert set(np.unique(mask[:, 80:])) <= {0, 1}


@pytest.mark.slow
def test_leftovers_of_a_dead_run_are_cleaned_but_never_other_files(tmp_path: Path,
                                                                    weights: Path,
                                                                    capsys) -> None:
    scene = write_scene(tmp_path / "scene.tif", 96)
    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    stale = [f".scratch-mask.tif.{pid}.part.tif", f".probability.tif.{pid}.part.tif.ovr.tmp",
             f".landslides.gpkg.{pid}.part.gpkg-journal", f".map.json.{pid}.k3_x9q0z.part"]
    for name in stale:
        (out / name).write_bytes(b"half a file")
    (out / "notes.txt").write_text("mine")
    (out / ".hidden.part").write_text("not an scdnn temporary name: no process id")
    args = ["map", str(scene), "--weights", str(weights), "--out", str(out), *SMALL]
    assert main(args) == 2  # a file of the user's: refused, and nothing deleted
    assert "not empty (use --overwrite)" in capsys.readouterr().err
    assert len(list(out.iterdir())) == len(stale) + 2
    assert main([*args, "--overwrite"]) == 0  # the dead run's leftovers go, the rest stays
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".hidden.part", *FINAL_NAMES, "notes.txt"])


def test_temporary_files_of_a_running_process_count_as_content(tmp_path: Path, weights: Path,
                                                               capsys) -> None:
    # another run still writing into the folder (a process that is alive): refused, and its
    # files are left alone, even with --overwrite
    scene = write_scene(tmp_path / "scene.tif", 96)
    out = tmp_path / "out"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = out / f".scratch-mask.tif.{other.pid}.part.tif"
        live.write_bytes(b"being written")
        args = ["map", str(scene), "--weights", str(weights), "--out", str(out), *SMALL]
        assert main(args) == 2
        assert "not empty" in capsys.readouterr().err
        assert live.read_bytes() == b"being written"
        assert main([*args, "--overwrite"]) == 0
        assert live.read_bytes() == b"being written"
    finally:
        other.kill()
        other.wait()
