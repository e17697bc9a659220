"""Importing or using scdnn leaves the process's global state alone: umask, matplotlib's
backend, warning filters, logger levels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Run in a clean interpreter. The libraries scdnn imports are imported first, so that what
#: they configure on import themselves (Lightning sets its loggers' levels) is the baseline;
#: then every scdnn module is imported, with os.umask watched, and the state compared.
IMPORT_EVERYTHING = r"""
import importlib, json, logging, os, pkgutil, sys, warnings

for name in ["torch", "torchvision", "lightning", "lightning.pytorch", "lightning.fabric",
             "torchmetrics", "segmentation_models_pytorch", "albumentations", "cv2",
             "rasterio", "rasterio.features", "rasterio.warp", "matplotlib", "scipy.ndimage",
             "safetensors.torch", "PIL.Image", "rich.progress", "shapely", "geopandas",
             "pyogrio", "onnx", "onnxruntime"]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass

real_umask = os.umask
real_umask(0o027)
LOGGERS = ["", "lightning", "lightning.pytorch", "lightning.fabric"]


def state():
    import matplotlib

    mask = real_umask(0)
    real_umask(mask)
    return {"umask": mask, "backend": matplotlib.get_backend(),
            "filters": [repr(f) for f in warnings.filters],
            "levels": {n: logging.getLogger(n).level for n in LOGGERS}}


before = state()
calls = []
os.umask = lambda mask: calls.append(mask) or real_umask(mask)
import scdnn

names = [m.name for m in pkgutil.walk_packages(scdnn.__path__, "scdnn.")]
for name in names:
    importlib.import_module(name)
os.umask = real_umask
print(json.dumps({"before": before, "after": state(), "umask_calls": calls, "modules": names}))
"""


def _clean_env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="svg")  # not Agg, so that a switch to Agg shows
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.slow
def test_importing_every_module_changes_no_global_state() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True,
                            text=True, timeout=300, env=_clean_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["modules"]) > 40 and "scdnn.trainers.fit" in report["modules"]
    assert report["umask_calls"] == []  # not even set and restored
    before, after = report["before"], report["after"]
    assert before["backend"] == "svg"
    for key in ("umask", "backend", "levels", "filters"):
        assert after[key] == before[key], key


def test_outputs_follow_the_umask_in_force_when_written(tmp_path: Path) -> None:
    """The umask is asked for at write time: one set after import applies."""
    from scdnn.runs import atomic_path, atomic_write

    old = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "a.json", "w") as handle:
            handle.write("{}")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_figure_functions_leave_the_backend_alone(tmp_path: Path, monkeypatch) -> None:
    """Figures are drawn on their own Agg canvas: no backend switch, nothing left in pyplot."""
    import matplotlib

    from scdnn.benchmark import figures as bench
    from scdnn.metrics import MIOU_BINS
    from scdnn.report import figures as report

    switches = []
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: switches.append(a))
    backend = matplotlib.get_backend()
    pyplot = sys.modules.get("matplotlib.pyplot")
    open_figures = pyplot.get_fignums() if pyplot else []

    truth = np.zeros((20, 30), np.uint8)
    truth[5:10, 5:12] = 1
    image = np.full((20, 30, 3), 90, np.uint8)
    uris = [report.confusion_heatmap([[0.9, 0.1], [None, None]], [[9, 1], [0, 0]],
                                     ["background", "landslide"]),
            report.miou_histogram([0.5, 0.95, None]),
            report.overlay_figure(image, truth, truth, "one image"),
            report.scene_overview(np.zeros((20, 30, 3)), (20, 30),
                                  [np.array([[1.0, 1.0], [5.0, 5.0], [1.0, 5.0]])],
                                  [(3.0, 3.0, "1")], "scene"),
            report.probability_overview(np.ma.masked_array(np.linspace(0, 1, 600)
                                                           .reshape(20, 30)), (20, 30), 0.5,
                                        "probability")]
    bins = {b: {"count": 1, "fraction": 0.2} for b in MIOU_BINS}
    pngs = [bench.fig8_png(tmp_path / "fig8.png", bins, "ours", {b: 1 for b in MIOU_BINS}, 5),
            bench.curves_png(tmp_path / "curves.png",
                             {"run": [{"epoch": 1, "val_miou": 0.5, "train_loss": 1.0}]}),
            bench.examples_png(tmp_path / "fig9.png",
                               [{"name": "n", "image": image, "truth": truth,
                                 "preds": {"m": (truth.astype(bool), 0.5)}}], ["m"])]

    assert all(u.startswith("data:image/png;base64,") and len(u) > 1000 for u in uris)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert switches == []
    assert matplotlib.get_backend() == backend
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert (pyplot.get_fignums() if pyplot else []) == open_figures
