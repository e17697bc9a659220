"""The Python API a library user sees: ``import scdnn`` (cheap, lazy), its names, and
``evaluate_masks`` (scores of masks held in memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import scdnn
from conftest import write_image
from scdnn.errors import InvalidValueError, ScdnnError
from scdnn.evaluation import evaluate
from scdnn.mapping import map_scene
from scdnn.metrics import Evaluator, evaluate_masks
from scdnn.predictor import Predictor

# --- evaluate_masks --------------------------------------------------------------------------

def test_evaluate_masks_gives_the_metrics_of_scdnn_evaluate(folder_dataset: Path,
                                                            tmp_path: Path) -> None:
    from scdnn.datasets import open_dataset

    dataset = open_dataset(folder_dataset)
    truths = [dataset[i]["mask"] for i in range(len(dataset))]
    rng = np.random.default_rng(0)
    predictions = [np.where(rng.random(t.shape) < 0.1, 1 - t, t).astype(np.uint8)
                   for t in truths]
    for sample, pred in zip(dataset.samples, predictions, strict=True):
        write_image(tmp_path / "pred" / f"{sample.name}.png", pred * np.uint8(255))
    written = evaluate(folder_dataset, tmp_path / "eval", predictions=str(tmp_path / "pred"),
                       use_all=True)
    metrics = evaluate_masks(predictions, truths, tolerance=2,
                             names=[s.name for s in dataset.samples])
    assert written.pop("cleaning") is None  # predictions are scored as given
    assert written.pop("tta") == "none"
    for key in ("scored", "source", "provenance", "format_version"):
        written.pop(key)
    assert json.loads(json.dumps(metrics)) == json.loads(json.dumps(written))
    assert scdnn.evaluate_masks is evaluate_masks


def test_evaluate_masks_in_memory() -> None:
    truth = np.zeros((20, 20), np.uint8)
    truth[5:15, 5:15] = 1
    truth[0, :] = 255  # not scored
    metrics = evaluate_masks([truth == 1], [truth])
    assert metrics["miou"] == 1.0 and metrics["boundary_f1"] == 1.0
    assert metrics["images"] == 1 and metrics["confusion"][1][1] == 100
    evaluator = Evaluator()
    evaluator.update((truth == 1).astype(np.uint8), truth, "0")
    assert evaluate_masks(torch.from_numpy((truth == 1).astype(np.uint8)),
                          truth) == evaluator.compute()  # one 2-D mask, a tensor
    with pytest.raises(InvalidValueError, match="1 prediction"):
        evaluate_masks([truth], [truth, truth])
    with pytest.raises(InvalidValueError, match=r"predictions\[0\] is \(20, 19\)"):
        evaluate_masks([truth[:, :19]], [truth])
    with pytest.raises(InvalidValueError, match=r"predictions\[0\] holds values other than"):
        evaluate_masks([truth], [truth])  # 255 in a prediction
    with pytest.raises(InvalidValueError, match=r"truths\[0\] holds values"):
        evaluate_masks([truth == 1], [truth * 2])


# --- the package -----------------------------------------------------------------------------

def test_import_scdnn_is_cheap_and_names_resolve_on_use() -> None:
    code = ("import sys, scdnn\n"
            "assert 'torch' not in sys.modules, 'import scdnn imported torch'\n"
            "assert scdnn.__version__\n"
            "assert scdnn.InvalidValueError and scdnn.ModelCard\n"
            "assert 'torch' not in sys.modules, 'errors or records imported torch'\n"
            "names = [getattr(scdnn, n) for n in scdnn.__all__]\n"
            "assert 'torch' in sys.modules\n"
            "assert set(scdnn.__all__) <= set(dir(scdnn))\n"
            "assert scdnn.demo.bundled_weights().name.endswith('.safetensors')\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert scdnn.Predictor is Predictor and scdnn.map_scene is map_scene
    assert issubclass(scdnn.InvalidValueError, (ScdnnError, ValueError))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        scdnn.nope  # noqa: B018


def test_evaluate_masks_in_metres() -> None:
    """Masks with a pixel size in metres are also scored at 0.5-4 m on the ground: an edge
    2 px off at 0.5 m pixels is 1 m off."""
    cols = np.arange(30)
    truth = np.broadcast_to(cols < 15, (10, 30)).astype(np.uint8)
    pred = np.broadcast_to(cols < 17, (10, 30)).astype(np.uint8)
    m = evaluate_masks([pred], [truth], pixel_size_m=0.5)
    assert {k: v["f1"] for k, v in m["boundary_f1_at_m"].items()} == {
        "0.5": 0.0, "1": 1.0, "2": 1.0, "4": 1.0}
    assert evaluate_masks([pred, pred], [truth, truth], pixel_size_m=[0.5, None]
                          )["boundary_images_m"] == 1
    assert evaluate_masks([pred], [truth])["boundary_f1_at_m"] is None
    with pytest.raises(InvalidValueError, match="pixel size"):
        evaluate_masks([pred], [truth], pixel_size_m=-1.0)


def test_the_package_is_typed() -> None:
    assert (Path(scdnn.__file__).parent / "py.typed").is_file()
