"""The measuring helpers of the scripts in benchmarks/ (their numbers go into results files)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_outline_grid_counts_class_changes_by_phase_hand_computed():
    outline_grid = _script("outline_grid")
    mask = np.zeros((6, 9), dtype=bool)
    mask[1:5, 4:7] = True  # columns 4-6, rows 1-4
    # column changes: at x = 4 (phase 0) and x = 7 (phase 3) on 4 rows each;
    # row changes: at y = 1 (phase 1) and y = 5 (phase 1) on 3 columns each
    counts = outline_grid.changes_by_phase(mask)
    assert counts.tolist() == [4, 6, 0, 4]
    assert outline_grid.share(counts) == [0.2857, 0.4286, 0.0, 0.2857]
    assert outline_grid.share(np.zeros(4, dtype=np.int64)) == [0.0] * 4


def test_same_outputs_ignores_provenance_and_finds_changed_pixels_and_values(tmp_path):
    import json

    import rasterio

    same_outputs = _script("same_outputs")
    for side, value in (("a", 1), ("b", 1)):
        folder = tmp_path / side
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(
            {"miou": 0.5, "provenance": {"created": side}, "source": {"data": side}}))
        with rasterio.open(folder / "mask.tif", "w", driver="GTiff", width=3, height=2,
                           count=1, dtype="uint8") as dst:
            dst.write(np.full((1, 2, 3), value, np.uint8))
    assert same_outputs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    with rasterio.open(tmp_path / "b" / "mask.tif", "r+") as dst:
        dst.write(np.zeros((1, 2, 3), np.uint8))
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"miou": 0.6}))
    assert same_outputs.differences(tmp_path / "a", tmp_path / "b") == [
        "pixels differ: mask.tif", "values differ: metrics.json (miou)"]
    assert same_outputs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
