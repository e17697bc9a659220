"""``scdnn demo`` without ../shared/data: the generated-data path, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scdnn.demo
from scdnn.cli import main


def test_demo_falls_back_to_generated_data(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(scdnn.demo, "SHARED_SICHUAN", tmp_path / "no-shared-data")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "generated data" in printed and "MIoU" in printed
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["images"] == 7  # 30 % of the 24 generated images
    assert (out / "run" / "weights.safetensors").is_file()


def test_demo_replaces_its_own_output_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(scdnn.demo, "SHARED_SICHUAN", tmp_path / "no-shared-data")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    assert main(["demo", "--out", str(out), "--epochs", "1"]) == 0
    assert not (out / "stale.txt").exists()


@pytest.mark.realdata
def test_demo_uses_sichuan_aerial_when_present(shared_data: Path) -> None:
    assert (shared_data / "sichuan-aerial" / "images").is_dir()
    assert scdnn.demo.SHARED_SICHUAN.parts[-3:] == ("shared", "data", "sichuan-aerial")
