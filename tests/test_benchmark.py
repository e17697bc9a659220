"""``scdnn benchmark``: the smoke budget on a tiny generated dataset, end to end.

Each benchmark here trains 1 epoch of one 32 px crop per image on 6 generated 40 x 40 images
(3 train, 1 validation, 2 test), so the scores mean nothing; the tests check that the tables are
built from the runs' own files, agree with each other, and that reruns skip, resume and refuse
as documented.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_and_kill, write_ellipse_scene
from scdnn.benchmark import ProgressEvent, run_benchmark
from scdnn.benchmark.budgets import BUDGETS, COMMON, budget_overrides, resolve_models
from scdnn.benchmark.tables import PAPER_TABLE2, PAPER_TABLE3, summarize
from scdnn.datasets.synthetic import write_synthetic_dataset
from scdnn.errors import UserError

MODELS = ["sssn", "scdnn", "deeplabv3plus-mobilenetv2"]
PNGS = ("fig8_miou_bins.png", "fig9_examples.png", "training_curves.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("bench-data") / "d", count=6,
                                   size=40, seed=3)


@pytest.fixture(scope="module")
def bench(data, tmp_path_factory):
    """Three networks, seed 0, smoke budget: (folder, results, progress events)."""
    out = tmp_path_factory.mktemp("bench") / "b"
    events: list[ProgressEvent] = []
    results = run_benchmark(data, out, models=MODELS, budget="smoke", seeds=[0],
                            progress=events.append)
    return out, results, events


def _json(path: Path):
    return json.loads(path.read_text())


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run_of(results, name):
    return next(r for r in results["runs"] if r["name"] == name)


# ----------------------------------------------------------------------------- budgets

def test_budgets_are_train_config_overrides():
    from scdnn.trainers.fit import TrainConfig

    assert budget_overrides("smoke") == {**COMMON, "epochs": 1, "max_minutes": None,
                                         "image_size": 32, "crops_per_image": 1,
                                         "batch_size": 2}
    cpu = budget_overrides("cpu")
    assert (cpu["max_minutes"], cpu["epochs"], cpu["max_steps"], cpu["image_size"],
            cpu["crops_per_image"], cpu["batch_size"]) == (None, None, 1000, 256, 8, 8)
    paper = budget_overrides("paper")
    assert (paper["epochs"], paper["max_minutes"]) == (100, None)
    # the paper's optimizer (Section 4) in every budget
    for name in BUDGETS:
        o = budget_overrides(name)
        assert (o["lr"], o["beta1"], o["beta2"], o["eps"]) == (1e-3, 0.9, 0.999, 1e-8)
        TrainConfig(data="d", out="o", **o)  # every key is a TrainConfig field
    with pytest.raises(UserError, match="unknown budget 'fast'"):
        budget_overrides("fast")


def test_benchmark_config_groups_and_checks_the_settings():
    import dataclasses

    from scdnn.benchmark import BenchmarkConfig

    config = BenchmarkConfig(models=["scdnn", "sssn"], budget="smoke", seeds=[1, 0],
                             test_scenes=["b"])
    assert (config.models, config.seeds, config.test_scenes) == (("scdnn", "sssn"), (1, 0),
                                                                 ("b",))
    assert [s.name for s in config.specs] == ["sssn", "scdnn"]
    assert config.request() == {"models": ["sssn", "scdnn"], "seeds": [1, 0],
                                "ablations": False, "recipe": "paper"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.budget = "cpu"
    for kwargs, message in [({"models": ["unet"]}, "unknown model 'unet'"),
                            ({"budget": "huge"}, "unknown budget 'huge'"),
                            ({"seeds": [2, 2]}, "seed 2 is given twice"),
                            ({"tolerance": -1}, "tolerance must be an integer >= 0"),
                            ({"scene_tile": 8}, "scene tile must be an integer >= 16"),
                            ({"recipe": "fancy"}, "unknown recipe 'fancy'")]:
        with pytest.raises(UserError, match=message):
            BenchmarkConfig(**kwargs)
    with pytest.raises(TypeError, match="not both"):
        run_benchmark("d", "o", config, budget="cpu")


def test_resolve_models_table_order_all_and_ablations():
    assert [s.name for s in resolve_models("all")] == [
        "sssn", "segnet", "deeplabv3plus-resnet50", "deeplabv3plus-mobilenetv2", "scdnn"]
    specs = resolve_models(["scdnn", "sssn", "scdnn"], ablations=True)
    assert [s.name for s in specs] == ["sssn", "scdnn", "scdnn-aspp", "scdnn-noskip",
                                       "scdnn-disjoint"]
    assert specs[2].network == "scdnn" and specs[2].model_kwargs == {"context": "aspp"}
    assert specs[3].model_kwargs == {"skip": False}
    assert specs[4].model_kwargs == {"upsampling_kernel": 4}


# ----------------------------------------------------------------------------- outputs

def assert_every_output(out, results) -> None:
    """Every file a benchmark writes is there, and every figure is a valid PNG."""
    for name in ("benchmark.json", "split.json", "results.md", "results.json", *PNGS):
        assert (out / name).is_file(), name
    for name in PNGS:
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            image.verify()
    assert results["figures"] == {"fig8": PNGS[0], "fig9": PNGS[1], "curves": PNGS[2]}


@pytest.mark.slow
def test_every_file_is_written_and_every_png_is_valid(bench):
    out, results, _ = bench
    assert_every_output(out, results)
    assert _json(out / "results.json") == json.loads(json.dumps(results))
    for model in MODELS:
        run = out / "runs" / f"{model}-seed0"
        for name in ("weights.safetensors", "log.csv", "model.json", "split.json",
                     "checkpoints/last.ckpt", "eval/metrics.json", "eval/per_image.csv"):
            assert (run / name).is_file(), f"{model}: {name}"


@pytest.mark.slow
def test_results_json_carries_config_split_and_provenance(bench):
    out, results, _ = bench
    cfg = results["config"]
    assert cfg["budget"] == "smoke" and cfg["seeds"] == [0] and cfg["split_seed"] == 0
    assert cfg["models"] == ["sssn", "deeplabv3plus-mobilenetv2", "scdnn"]  # table order
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["image_size"] == 32
    assert results["provenance"]["scdnn_version"] == "0.1.0"
    assert "git_commit" in results["provenance"]
    split = _json(out / "split.json")
    assert results["split"] == split
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (3, 1, 2)
    # one split for every run
    for model in MODELS:
        assert _json(out / "runs" / f"{model}-seed0" / "split.json")["test"] == split["test"]
        card = _json(out / "runs" / f"{model}-seed0" / "model.json")
        assert card["config"]["epochs"] == 1 and card["config"]["image_size"] == 32
        assert card["config"]["seed"] == 0


@pytest.mark.slow
def test_table2_and_table3_come_from_each_runs_metrics_and_agree(bench):
    out, results, _ = bench
    md = (out / "results.md").read_text()
    for model in MODELS:
        metrics = _json(out / "runs" / f"{model}-seed0" / "eval" / "metrics.json")
        t2, t3 = results["table2"][model], results["table3"][model]
        for key in ("pa", "mpa", "miou", "fwiou"):
            assert t2[key]["mean"] == pytest.approx(metrics[key])
            assert t2[key]["n"] == 1 and t2[key]["std"] is None
        for cls in ("landslide", "background"):
            assert t3[cls]["pa"]["mean"] == pytest.approx(metrics["class_pa"][cls])
            assert t3[cls]["iou"]["mean"] == pytest.approx(metrics["class_iou"][cls])
        # Eq. 23: MIoU is the mean of the two classes' IoUs
        assert t2["miou"]["mean"] == pytest.approx(
            (t3["landslide"]["iou"]["mean"] + t3["background"]["iou"]["mean"]) / 2)
        # the markdown row: ours in percent with 2 decimals, then the paper's
        label = results["models"][model]["label"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} | 1 |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:6] == [f"{100 * metrics[k]:.2f}" for k in ("pa", "mpa", "miou", "fwiou")]
        assert cells[6:10] == [f"{100 * PAPER_TABLE2[model][k]:.2f}"
                               for k in ("pa", "mpa", "miou", "fwiou")]
    # the paper's own Table 2 and 3 obey Eq. 23 too (to its rounding)
    for model, t3 in PAPER_TABLE3.items():
        assert PAPER_TABLE2[model]["miou"] == pytest.approx(
            (t3["landslide"]["iou"] + t3["background"]["iou"]) / 2, abs=6e-5)


@pytest.mark.slow
def test_table1_is_scdnns_normalized_confusion_rows_sum_to_one(bench):
    out, results, _ = bench
    metrics = _json(out / "runs" / "scdnn-seed0" / "eval" / "metrics.json")
    cm = np.asarray(metrics["confusion"], float)  # rows = truth: background, landslide
    rows = results["table1"]["rows"]
    assert rows["landslide"]["landslide"] == pytest.approx(cm[1, 1] / cm[1].sum())
    assert rows["background"]["landslide"] == pytest.approx(cm[0, 1] / cm[0].sum())
    for truth in ("landslide", "background"):
        assert sum(rows[truth].values()) == pytest.approx(1.0)
    md = (out / "results.md").read_text()
    assert "| landslide | " in md and "0.7411 | 0.2589 |" in md  # the paper's beside ours


@pytest.mark.slow
def test_fig8_table_is_scdnns_per_image_bins(bench):
    out, results, _ = bench
    metrics = _json(out / "runs" / "scdnn-seed0" / "eval" / "metrics.json")
    per_image = _csv(out / "runs" / "scdnn-seed0" / "eval" / "per_image.csv")
    assert results["fig8"]["run"] == "scdnn-seed0"
    assert results["fig8"]["bins"] == metrics["miou_bins"]
    assert sum(b["count"] for b in results["fig8"]["bins"].values()) == len(per_image) == 2
    assert "| > 0.9 |" in (out / "results.md").read_text()


@pytest.mark.slow
def test_table4_images_have_the_largest_landslide_share_and_their_per_image_scores(bench, data):
    out, results, _ = bench
    t4 = results["table4"]
    test = _json(out / "split.json")["test"]
    share = {}
    for name in test:  # masks are 0/255 PNGs
        mask = np.asarray(Image.open(data / "masks" / f"{name}.png"))
        share[name] = float((mask == 255).mean())
    expected = sorted(test, key=lambda n: (-share[n], n))[:4]
    assert [im["name"] for im in t4["images"]] == expected
    assert t4["models"] == ["deeplabv3plus-mobilenetv2", "scdnn"]  # the Fig. 9 networks run
    for model in t4["models"]:
        rows = {r["name"]: r for r in _csv(out / "runs" / f"{model}-seed0" / "eval"
                                           / "per_image.csv")}
        for im in t4["images"]:
            assert im["landslide_share"] == pytest.approx(share[im["name"]])
            for key in ("landslide_pa", "background_pa", "miou"):
                assert im["scores"][model][key] == pytest.approx(float(rows[im["name"]][key]))


@pytest.mark.slow
def test_extra_columns_params_gflops_time_epochs(bench):
    from scdnn.models import count_parameters, create_model

    out, results, _ = bench
    for model in MODELS:
        e = results["extra"][model]
        assert e["parameters"] == count_parameters(create_model(model))
        assert e["gflops"] > 0 and e["gflops_size"] == 256
        log = _csv(out / "runs" / f"{model}-seed0" / "log.csv")
        assert e["epochs"]["mean"] == len(log) == 1
        assert e["train_seconds"]["mean"] == pytest.approx(sum(float(r["seconds"]) for r in log))
        metrics = _json(out / "runs" / f"{model}-seed0" / "eval" / "metrics.json")
        assert e["boundary_f1"]["mean"] == metrics["boundary_f1"]
        assert e["landslide_f1"]["mean"] == metrics["landslide_f1"]


def test_objects_and_outlines_come_from_each_runs_metrics(bench):
    """Object F1, predicted ÷ true count and boundary F1 at 1–8 px: each run's metrics.json
    values, in results.json and in results.md's "Objects and outlines" table."""
    out, results, _ = bench
    md = (out / "results.md").read_text()
    assert "## Objects and outlines" in md
    for model in MODELS:
        metrics = _json(out / "runs" / f"{model}-seed0" / "eval" / "metrics.json")
        scores = results["models"][model]["scores"]
        assert scores["object_f1"]["mean"] == metrics["objects"]["f1"]
        assert scores["object_count_ratio"]["mean"] == metrics["objects"]["count_ratio"]
        for tol in ("1", "2", "4", "8"):
            assert scores[f"boundary_f1_{tol}px"]["mean"] == metrics["boundary_f1_at"][tol]["f1"]
        label = results["models"][model]["label"]
        row = next(line for line in md.splitlines()[md.splitlines().index(
            "## Objects and outlines"):] if line.startswith(f"| {label} |"))
        assert f"{100 * metrics['boundary_f1_at']['8']['f1']:.2f}" in row


def test_outline_scores_of_older_metrics_are_none():
    from scdnn.benchmark.tables import outline_scores

    old = outline_scores({"miou": 0.5})  # a metrics.json written before object scores
    assert set(old) == {"object_precision", "object_recall", "object_f1", "object_count_ratio",
                        "boundary_f1_1px", "boundary_f1_2px", "boundary_f1_4px",
                        "boundary_f1_8px", "boundary_f1_0.5m", "boundary_f1_1m",
                        "boundary_f1_2m", "boundary_f1_4m"}
    assert all(value is None for value in old.values())
    new = outline_scores({"objects": {"precision": 0.5, "recall": 0.25, "f1": 1 / 3,
                                      "count_ratio": 0.5},
                          "boundary_f1_at": {"1": {"f1": 0.1}, "2": {"f1": 0.2},
                                             "4": None, "8": {"f1": 0.4}}})
    assert new["object_f1"] == 1 / 3 and new["object_count_ratio"] == 0.5
    assert new["boundary_f1_2px"] == 0.2 and new["boundary_f1_4px"] is None


def test_outline_table_has_metre_columns_only_when_a_run_has_metre_scores():
    """Boundary F1 at 0.5-4 m (scenes in metres) comes from each run's
    ``boundary_f1_at_m``; runs on images (``None``) or written before it (absent) leave the
    table as it was."""
    from scdnn.benchmark.tables import SCORE_KEYS, _outline_table, outline_scores, summarize

    base = {"objects": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "count_ratio": 1.0},
            "boundary_f1_at": {t: {"f1": 0.5} for t in ("1", "2", "4", "8")}}
    scenes = {**base, "boundary_f1_at_m": {"0.5": {"f1": 0.125}, "1": {"f1": 0.25},
                                           "2": {"f1": 0.5}, "4": {"f1": 0.75}}}

    def models(*metrics: dict) -> dict:
        out = {}
        for i, m in enumerate(metrics):
            flat = outline_scores(m)
            out[f"m{i}"] = {"label": f"M{i}", "seeds": [0], "scores": {
                key: summarize([flat.get(key)]) for key in SCORE_KEYS}}
        return out

    assert outline_scores(scenes)["boundary_f1_0.5m"] == 0.125
    table = _outline_table(models(scenes, {**base, "boundary_f1_at_m": None}))
    header = next(line for line in table if line.startswith("| model |"))
    assert header.endswith("| boundary F1 (%, 8 px) | boundary F1 (%, 0.5 m) | "
                           "boundary F1 (%, 1 m) | boundary F1 (%, 2 m) | boundary F1 (%, 4 m) |")
    assert next(line for line in table if line.startswith("| M0 |")).endswith(
        "| 12.50 | 25.00 | 50.00 | 75.00 |")
    assert next(line for line in table if line.startswith("| M1 |")).endswith(
        "| n/a | n/a | n/a | n/a |")
    assert any("converted to pixels with each scene's pixel size" in line for line in table)
    # images only, or results of older runs: no metre columns
    for other in ({**base, "boundary_f1_at_m": None}, base):
        table = _outline_table(models(other))
        assert not any(" m)" in line for line in table)
        assert next(line for line in table if line.startswith("| model |")).endswith(
            "| boundary F1 (%, 8 px) |")
    # a results.json written before the metre keys existed renders as before
    old = models(base)
    for model in old.values():
        for tol in ("0.5", "1", "2", "4"):
            del model["scores"][f"boundary_f1_{tol}m"]
    assert _outline_table(old) == _outline_table(models(base))


@pytest.mark.slow
def test_results_md_mentions_every_run_and_model(bench):
    out, results, _ = bench
    md = (out / "results.md").read_text()
    assert ("- recipe: `paper` (adam, constant learning rate, loss ce, basic augmentation, "
            "best validation epoch)") in md
    for model in MODELS:
        assert f"`{model}-seed0`" in md
        assert results["models"][model]["label"] in md
    for heading in ("Table 1", "Table 2", "Table 3", "Fig. 8", "Table 4 / Fig. 9",
                    "Beyond the paper"):
        assert f"## {heading}" in md
    for png in PNGS:
        assert f"]({png})" in md
    assert "Spread over seeds" not in md  # one seed: no spread


@pytest.mark.slow
def test_progress_events_one_line_per_step(bench):
    _, _, events = bench
    messages = [e.message for e in events]
    assert messages[0] == "[1/3] training sssn (seed 0)"
    assert messages[1] == "[1/3] evaluating sssn (seed 0) on the test images"
    assert "[3/3] training scdnn (seed 0)" in messages
    assert messages[-1] == "[3/3] writing tables and figures"


@pytest.mark.slow
def test_two_seeds_give_mean_std_and_range(data, tmp_path):
    out = tmp_path / "b"
    results = run_benchmark(data, out, models=["scdnn"], budget="smoke", seeds=[0, 1])
    per_seed = [_json(out / "runs" / f"scdnn-seed{s}" / "eval" / "metrics.json")
                for s in (0, 1)]
    for key in ("pa", "miou", "fwiou"):
        values = [m[key] for m in per_seed]
        s = results["table2"]["scdnn"][key]
        assert s["n"] == 2
        assert s["mean"] == pytest.approx(sum(values) / 2)
        assert s["std"] == pytest.approx(statistics.stdev(values))
        assert (s["min"], s["max"]) == (min(values), max(values))
    t2, t3 = results["table2"]["scdnn"], results["table3"]["scdnn"]
    assert t2["miou"]["mean"] == pytest.approx(
        (t3["landslide"]["iou"]["mean"] + t3["background"]["iou"]["mean"]) / 2)
    for truth in ("landslide", "background"):
        assert sum(results["table1"]["rows"][truth].values()) == pytest.approx(1.0)
    md = (out / "results.md").read_text()
    assert "## Spread over seeds" in md and " ± " in md
    assert "`scdnn-seed0`" in md and "`scdnn-seed1`" in md
    # the same split for both seeds
    assert (_json(out / "runs" / "scdnn-seed0" / "split.json")["test"]
            == _json(out / "runs" / "scdnn-seed1" / "split.json")["test"])


@pytest.mark.slow
def test_finished_runs_of_other_seeds_are_reported_never_retrained(data, tmp_path):
    """A second seed added for one network by an earlier request shows up in the report of a
    later one-seed request; an unfinished run of another seed is left out."""
    out = tmp_path / "b"
    run_benchmark(data, out, models=["scdnn"], budget="smoke", seeds=[1, 2])
    (out / "runs" / "scdnn-seed2" / "eval" / "metrics.json").unlink()  # unfinished
    events: list[ProgressEvent] = []
    results = run_benchmark(data, out, models=["sssn", "scdnn"], budget="smoke", seeds=[0],
                            progress=events.append)
    assert [(e.action, e.run) for e in events if e.run] == [
        ("train", "sssn-seed0"), ("evaluate", "sssn-seed0"),
        ("train", "scdnn-seed0"), ("evaluate", "scdnn-seed0")]
    assert results["models"]["scdnn"]["seeds"] == [0, 1]
    assert results["models"]["sssn"]["seeds"] == [0]
    assert results["table2"]["scdnn"]["miou"]["n"] == 2
    assert results["config"]["seeds"] == [0, 1]
    assert sorted(r["name"] for r in results["runs"]) == ["scdnn-seed0", "scdnn-seed1",
                                                          "sssn-seed0"]
    md = (out / "results.md").read_text()
    assert "`scdnn-seed1`" in md and "`scdnn-seed2`" not in md


@pytest.mark.slow
def test_runs_from_different_machines_are_flagged(data, tmp_path, bench):
    """A seed added later on another host reached a different number of epochs in the same
    time budget: results.md says which runs came from which machine."""
    bench_md = (bench[0] / "results.md").read_text()
    assert "different machines" not in bench_md  # one machine: no note
    out = tmp_path / "b"
    run_benchmark(data, out, models=["scdnn"], budget="smoke", seeds=[1])
    card_path = out / "runs" / "scdnn-seed1" / "model.json"
    card = _json(card_path)
    card["provenance"]["machine"] = "x86_64, Some Other CPU, 2 CPUs"
    card_path.write_text(json.dumps(card))
    results = run_benchmark(data, out, models=["scdnn"], budget="smoke", seeds=[0])
    assert _run_of(results, "scdnn-seed1")["machine"] == "x86_64, Some Other CPU, 2 CPUs"
    here = _run_of(results, "scdnn-seed0")["machine"]
    assert here and here != "x86_64, Some Other CPU, 2 CPUs"
    md = (out / "results.md").read_text()
    assert "**These runs were trained on different machines**" in md
    assert "x86_64, Some Other CPU, 2 CPUs: `scdnn-seed1`" in md
    assert f"{here}: `scdnn-seed0`" in md


def test_summarize_hand_computed():
    s = summarize([0.5, None, 0.7, 0.9])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.7)
    assert s["std"] == pytest.approx(0.2)  # sqrt((0.04 + 0 + 0.04) / 2)
    assert (s["min"], s["max"]) == (0.5, 0.9)
    assert summarize([None])["mean"] is None


@pytest.mark.slow
def test_ablations_are_extra_scdnn_rows(data, tmp_path):
    from scdnn.models import count_parameters, create_model

    out = tmp_path / "b"
    results = run_benchmark(data, out, models=["scdnn"], budget="smoke", ablations=True)
    assert list(results["models"]) == ["scdnn", "scdnn-aspp", "scdnn-noskip", "scdnn-disjoint"]
    card = _json(out / "runs" / "scdnn-aspp-seed0" / "model.json")
    assert card["model"] == "scdnn" and card["model_kwargs"] == {"context": "aspp",
                                                                 "upsampling_kernel": 8}
    assert _json(out / "runs" / "scdnn-noskip-seed0" / "model.json")["model_kwargs"] == {
        "skip": False, "upsampling_kernel": 8}
    assert _json(out / "runs" / "scdnn-disjoint-seed0" / "config.json")["config"][
        "model_kwargs"] == {"upsampling_kernel": 4}
    assert results["extra"]["scdnn-aspp"]["parameters"] == count_parameters(
        create_model("scdnn", context="aspp"))
    assert results["extra"]["scdnn-noskip"]["parameters"] == count_parameters(
        create_model("scdnn", skip=False))
    assert results["extra"]["scdnn-disjoint"]["parameters"] == count_parameters(
        create_model("scdnn", upsampling_kernel=4))
    assert len({results["extra"][m]["parameters"] for m in results["models"]}) == 4
    md = (out / "results.md").read_text()
    assert "SCDnn with ASPP (ablation)" in md and "`scdnn-noskip-seed0`" in md


# ----------------------------------------------------------------------------- reruns

def _rerun_sssn_and_scdnn(data, out) -> tuple[list[tuple[str, str]], dict]:
    """Run the smoke benchmark of SSSN and SCDnn into ``out``: the (model, action) progress
    events and the results."""
    events: list[ProgressEvent] = []
    results = run_benchmark(data, out, models=["sssn", "scdnn"], budget="smoke",
                            progress=events.append)
    return [(e.model, e.action) for e in events], results


@pytest.mark.slow
def test_a_benchmark_killed_mid_run_resumes_at_the_network_it_was_on(data, tmp_path):
    """kill -9 while the second network trains; the same command then skips the first
    network, finishes the second, and scores both."""
    import os
    import sys

    out = tmp_path / "b"
    argv = [sys.executable, "-m", "scdnn.cli", "benchmark", str(data), "--out", str(out),
            "--models", "sssn", "scdnn", "--budget", "smoke"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    second = out / "runs" / "scdnn-seed0"
    run_and_kill(argv, (second / "config.json").exists, env=env)
    first = out / "runs" / "sssn-seed0" / "eval" / "metrics.json"
    assert first.is_file() and not (second / "eval" / "metrics.json").exists()
    stamp = first.stat().st_mtime_ns

    actions, results = _rerun_sssn_and_scdnn(data, out)
    assert ("sssn", "skip") in actions and ("sssn", "train") not in actions
    assert ("scdnn", "train") in actions or ("scdnn", "resume") in actions
    assert first.stat().st_mtime_ns == stamp
    assert set(results["models"]) == {"sssn", "scdnn"}
    assert len(_csv(second / "log.csv")) == 1  # one row per epoch, none twice


@pytest.mark.slow
def test_rerun_skips_finished_runs_and_resumes_interrupted_ones(data, tmp_path):
    out = tmp_path / "b"
    run_benchmark(data, out, models=["sssn"], budget="smoke")
    sssn_metrics = out / "runs" / "sssn-seed0" / "eval" / "metrics.json"
    stamp = sssn_metrics.stat().st_mtime_ns

    actions, results = _rerun_sssn_and_scdnn(data, out)
    assert ("sssn", "skip") in actions and ("sssn", "train") not in actions
    assert ("scdnn", "train") in actions
    assert sssn_metrics.stat().st_mtime_ns == stamp
    assert set(results["models"]) == {"sssn", "scdnn"}

    # killed after the last checkpoint, before the weights: resumed, not restarted
    scdnn = out / "runs" / "scdnn-seed0"
    (scdnn / "weights.safetensors").unlink()
    shutil.rmtree(scdnn / "eval")  # metrics.json, per_image.csv, masks/
    actions, _ = _rerun_sssn_and_scdnn(data, out)
    assert ("scdnn", "resume") in actions and ("scdnn", "train") not in actions
    assert (scdnn / "weights.safetensors").is_file()
    assert (scdnn / "eval" / "metrics.json").is_file()
    assert len(_csv(scdnn / "log.csv")) == 1  # no epoch logged twice
    assert sssn_metrics.stat().st_mtime_ns == stamp

    # killed during its first epoch (no checkpoint yet): trained afresh
    for name in ("weights.safetensors", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        (scdnn / name).unlink()
    events: list[ProgressEvent] = []
    run_benchmark(data, out, models=["scdnn"], budget="smoke", progress=events.append)
    assert [e.action for e in events] == ["train", "evaluate", "report"]
    assert (scdnn / "weights.safetensors").is_file()

    # weights but no scores: only scored
    (scdnn / "eval" / "metrics.json").unlink()
    events.clear()
    run_benchmark(data, out, models=["scdnn"], budget="smoke", progress=events.append)
    assert [e.action for e in events] == ["evaluate", "report"]


@pytest.mark.slow
def test_another_configuration_in_the_folder_is_refused(data, tmp_path):
    out = tmp_path / "b"
    run_benchmark(data, out, models=["sssn"], budget="smoke")
    before = (out / "benchmark.json").read_text()
    with pytest.raises(UserError, match="split_seed: 0 -> 1") as info:
        run_benchmark(data, out, models=["sssn"], budget="smoke", split_seed=1)
    assert info.value.path == str(out / "benchmark.json")
    with pytest.raises(UserError, match="another configuration"):
        run_benchmark(data, out, models=["sssn"], budget="cpu")
    assert (out / "benchmark.json").read_text() == before

    # --overwrite redoes the run under the new configuration
    events: list[ProgressEvent] = []
    results = run_benchmark(data, out, models=["sssn"], budget="smoke", split_seed=1,
                            overwrite=True, progress=events.append)
    assert [e.action for e in events] == ["train", "evaluate", "report"]
    assert results["config"]["split_seed"] == 1
    assert _json(out / "runs" / "sssn-seed0" / "split.json")["test"] == results["split"]["test"]


def test_a_folder_holding_something_else_is_refused(data, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no benchmark.json"):
        run_benchmark(data, out, models=["sssn"], budget="smoke")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("kwargs, message", [
    ({"models": ["sssn", "unet"]}, "unknown model 'unet'"),
    ({"models": []}, "no model"),
    ({"budget": "huge"}, "unknown budget 'huge'"),
    ({"seeds": [0, 0]}, "seed 0 is given twice"),
    ({"seeds": [-1]}, "seeds must be integers >= 0"),
])
def test_bad_options_fail_before_anything_is_written(data, tmp_path, kwargs, message):
    out = tmp_path / "new"
    options = {"models": ["sssn"], "budget": "smoke", **kwargs}
    with pytest.raises(UserError, match=message):
        run_benchmark(data, out, **options)
    assert not out.exists()


def test_missing_data_fails_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="dataset folder does not exist"):
        run_benchmark(tmp_path / "nowhere", tmp_path / "new", models=["sssn"], budget="smoke")
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- command line

def _parser():
    from scdnn.benchmark.cli import add_parser

    parser = argparse.ArgumentParser(prog="scdnn")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.slow
def test_add_parser_and_run(data, tmp_path, capsys):
    from scdnn.benchmark.cli import run

    out = tmp_path / "b"
    args = _parser().parse_args(["benchmark", str(data), "--out", str(out), "--models", "sssn",
                                 "--budget", "smoke", "--seeds", "0"])
    assert (args.models, args.budget, args.seeds, args.split_seed, args.ablations,
            args.overwrite) == (["sssn"], "smoke", [0], 0, False, False)
    run(args)
    captured = capsys.readouterr()
    assert "[1/1] training sssn (seed 0) ..." in captured.err
    assert f"results: {out}/results.md" in captured.out
    assert "SSSN" in captured.out
    assert (out / "results.md").is_file()


def test_parser_defaults_and_bad_values():
    args = _parser().parse_args(["benchmark", "d", "--out", "o"])
    assert (args.models, args.budget, args.seeds, args.tolerance, args.recipe) == (
        ["all"], "cpu", [0], 2, "paper")
    for bad in (["--budget", "huge"], ["--seeds", "-1"], ["--seeds", "x"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["benchmark", "d", "--out", "o", *bad])


def _wired() -> bool:
    from scdnn.cli import build_parser

    return "benchmark" in build_parser()._subparsers._group_actions[0].choices


@pytest.mark.slow
def test_scdnn_benchmark_command(data, tmp_path, capsys):
    if not _wired():
        pytest.skip("`benchmark` is not yet a subcommand of scdnn.cli (wired in by the lead)")
    from scdnn.cli import main

    out = tmp_path / "b"
    assert main(["benchmark", str(data), "--out", str(out), "--models", "sssn",
                 "--budget", "smoke"]) == 0
    assert (out / "results.json").is_file()
    capsys.readouterr()
    assert main(["benchmark", str(data), "--out", str(tmp_path / "c"), "--models",
                 "unet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'unet'" in err[0]
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- scenes
#
# Two tiny georeferenced scenes (96 x 128 px, 0.5 m, an internal mask band, a DSM), trained on
# scene-a and tested on scene-b with the DSM's terrain channels, smoke budget, two networks.

SH, SW = 96, 128
SROWS, SCOLS = np.mgrid[0:SH, 0:SW]
#: valid data: not the first 20 columns, nor a corner at the bottom right (so one 32 px tile
#: of scene-b has less than 10 % of its area valid and is not scored)
SVALID = (SCOLS >= 20) & ~((SROWS >= 64) & (SCOLS >= 98))
SCENE_MODELS = ["deeplabv3plus-mobilenetv2", "scdnn"]
TILE = 32


def _write_scene(root: Path, centre: tuple[int, int], seed: int) -> Path:
    """rgb.tif (internal mask band), mask.tif (0/1/255), dsm.tif (float32, nodata -9999)."""
    return write_ellipse_scene(root, SVALID, centre, (20, 25), seed, dsm=(0.15, 4.0))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench-scenes") / "jinsha"
    _write_scene(root / "scene-a", (40, 60), 0)
    _write_scene(root / "scene-b", (52, 80), 1)
    return root


@pytest.fixture(scope="module")
def scene_bench(scenes, tmp_path_factory):
    """(folder, results, progress events) of the two networks on the scenes."""
    out = tmp_path_factory.mktemp("scene-bench") / "b"
    events: list[ProgressEvent] = []
    results = run_benchmark(scenes, out, models=SCENE_MODELS, budget="smoke",
                            test_scenes=["scene-b"], use_dsm=True, scene_tile=TILE,
                            progress=events.append)
    return out, results, events


def _scene_label(scenes: Path, name: str) -> np.ndarray:
    import rasterio

    with rasterio.open(scenes / name / "mask.tif") as src:
        return src.read(1)


def _expected_tiles(label: np.ndarray) -> list[tuple[int, int]]:
    """(row, col) of the tiles with >= 10 % of a full tile valid and labelled."""
    return [(r, c) for r in range(0, SH, TILE) for c in range(0, SW, TILE)
            if (label[r:r + TILE, c:c + TILE] != 255).sum() >= 0.1 * TILE * TILE]


def test_scene_budgets_count_windows_per_epoch():
    from scdnn.trainers.fit import TrainConfig

    cpu = budget_overrides("cpu", "scenes")
    assert cpu == {**budget_overrides("cpu"), "windows_per_epoch": 160, "val_block": 256}
    assert cpu["max_steps"] == 1000 and cpu["batch_size"] == 8 and cpu["image_size"] == 256
    smoke = budget_overrides("smoke", "scenes")
    assert (smoke["windows_per_epoch"], smoke["val_block"], smoke["epochs"]) == (4, 64, 1)
    for name in BUDGETS:
        TrainConfig(data="d", out="o", **budget_overrides(name, "scenes"))


@pytest.mark.slow
def test_scene_benchmark_writes_every_file_and_one_split(scene_bench, scenes):
    out, results, _ = scene_bench
    assert_every_output(out, results)
    split = _json(out / "split.json")
    assert (split["train"], split["test"]) == (["scene-a"], ["scene-b"])
    assert split["val_blocks"]["scene-a"] and split["block_size"] == 64
    cfg = results["config"]
    assert cfg["dataset"] == {"kind": "scenes", "data": str(scenes.resolve()),
                              "test_scenes": ["scene-b"], "use_dsm": True}
    assert cfg["train"]["windows_per_epoch"] == 4 and cfg["train"]["use_dsm"] is True
    for model in SCENE_MODELS:
        run = out / "runs" / f"{model}-seed0"
        assert _json(run / "split.json") == split  # the benchmark's split, validation blocks too
        card = _json(run / "model.json")
        assert card["in_channels"] == 5 and card["inputs"][-2:] == ["slope",
                                                                    "relative_elevation"]
        assert card["config"]["test_scenes"] == ["scene-b"]
        assert card["config"]["windows_per_epoch"] == 4 and card["config"]["val_block"] == 64
        for name in ("weights.safetensors", "eval/metrics.json", "eval/per_image.csv",
                     "eval/masks/scene-b.tif", "eval/per_tile.csv"):
            assert (run / name).is_file(), f"{model}: {name}"


@pytest.mark.slow
def test_scene_tables_score_every_valid_pixel_and_agree(scene_bench, scenes):
    out, results, _ = scene_bench
    label = _scene_label(scenes, "scene-b")
    for model in SCENE_MODELS:
        metrics = _json(out / "runs" / f"{model}-seed0" / "eval" / "metrics.json")
        assert metrics["source"]["scenes"] == ["scene-b"]
        assert sum(map(sum, metrics["confusion"])) == int((label != 255).sum())
        t2, t3 = results["table2"][model], results["table3"][model]
        assert t2["miou"]["mean"] == pytest.approx(metrics["miou"])
        # Eq. 23: Table 2's MIoU is the mean of Table 3's two IoUs
        assert t2["miou"]["mean"] == pytest.approx(
            (t3["landslide"]["iou"]["mean"] + t3["background"]["iou"]["mean"]) / 2)


@pytest.mark.slow
def test_scene_fig8_bins_scdnns_per_tile_miou(scene_bench, scenes):
    import rasterio

    from scdnn.metrics import Evaluator, miou_bins

    out, results, _ = scene_bench
    run = out / "runs" / "scdnn-seed0"
    rows = _csv(run / "eval" / "per_tile.csv")
    label = _scene_label(scenes, "scene-b")
    tiles = _expected_tiles(label)
    assert len(tiles) == SH // TILE * SW // TILE - 1  # the bottom-right corner tile is left out
    assert [r["name"] for r in rows] == [f"scene-b:{r},{c}" for r, c in tiles]
    with rasterio.open(run / "eval" / "masks" / "scene-b.tif") as src:
        pred = src.read(1)
    evaluator = Evaluator(tolerance=2)
    # each tile scored as an image, from the saved mask
    for row, (r, c) in zip(rows, tiles, strict=False):
        cut = (slice(r, r + TILE), slice(c, c + TILE))
        expected = evaluator.update((pred[cut] == 1).astype(np.uint8), label[cut], "tile")
        assert int(row["pixels"]) == expected["pixels"] == int((label[cut] != 255).sum())
        for key in ("miou", "landslide_pa", "background_pa", "landslide_iou", "boundary_f1"):
            if expected[key] is None:
                assert row[key] == ""
            else:
                assert float(row[key]) == pytest.approx(expected[key], abs=1e-6)
    f8 = results["fig8"]
    assert (f8["run"], f8["images"], f8["unit"], f8["tile"]) == ("scdnn-seed0", len(tiles),
                                                                 "tiles", TILE)
    assert f8["bins"] == miou_bins(_float(r["miou"]) for r in rows)
    md = (out / "results.md").read_text()
    assert "## Fig. 8: SCDnn's per-tile MIoU" in md
    assert f"{len(tiles)} tiles of {TILE} x {TILE} px" in md and "per_tile.csv" in md


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


@pytest.mark.slow
def test_scene_table4_shows_the_same_tiles_with_most_landslide_for_every_network(scene_bench,
                                                                                  scenes):
    out, results, _ = scene_bench
    label = _scene_label(scenes, "scene-b")
    ranked = []
    for r, c in _expected_tiles(label):
        cut = label[r:r + TILE, c:c + TILE]
        valid, slide = int((cut != 255).sum()), int((cut == 1).sum())
        balanced = min(slide, valid - slide) >= 0.1 * valid
        ranked.append(((not balanced, -slide, r, c), f"scene-b:{r},{c}", slide / valid))
    expected = [(name, share) for _, name, share in sorted(ranked)[:4]]
    t4 = results["table4"]
    assert t4["models"] == SCENE_MODELS  # both are Fig. 9 networks, in its column order
    assert [(im["name"], pytest.approx(im["landslide_share"])) for im in t4["images"]] == \
        [(name, share) for name, share in expected]
    for model in SCENE_MODELS:
        rows = {r["name"]: r for r in _csv(out / "runs" / f"{model}-seed0" / "eval"
                                           / "per_tile.csv")}
        for im in t4["images"]:
            for key in ("landslide_pa", "background_pa", "miou"):
                assert im["scores"][model][key] == pytest.approx(_float(rows[im["name"]][key]),
                                                                 abs=1e-6)
    md = (out / "results.md").read_text()
    assert f"| `{expected[0][0]}` |" in md and "most landslide pixels" in md


@pytest.mark.slow
def test_scene_rerun_skips_finished_runs_rescores_and_resumes(scene_bench, scenes):
    out, _, _ = scene_bench
    options = dict(models=SCENE_MODELS, budget="smoke", test_scenes=["scene-b"], use_dsm=True,
                   scene_tile=TILE)
    stamp = (out / "runs" / "scdnn-seed0" / "eval" / "metrics.json").stat().st_mtime_ns
    events: list[ProgressEvent] = []
    run_benchmark(scenes, out, progress=events.append, **options)
    assert [e.action for e in events] == ["skip", "skip", "report"]
    assert (out / "runs" / "scdnn-seed0" / "eval" / "metrics.json").stat().st_mtime_ns == stamp

    # a predicted test scene missing: only scored again
    scdnn = out / "runs" / "scdnn-seed0"
    (scdnn / "eval" / "masks" / "scene-b.tif").unlink()
    events.clear()
    run_benchmark(scenes, out, progress=events.append, **options)
    assert [(e.model, e.action) for e in events] == [
        ("deeplabv3plus-mobilenetv2", "skip"), ("scdnn", "evaluate"), ("", "report")]
    assert (scdnn / "eval" / "masks" / "scene-b.tif").is_file()

    # killed after the last checkpoint, before the weights: resumed
    (scdnn / "weights.safetensors").unlink()
    events.clear()
    run_benchmark(scenes, out, progress=events.append, **options)
    assert ("scdnn", "resume") in [(e.model, e.action) for e in events]
    assert len(_csv(scdnn / "log.csv")) == 1

    # another test scene, or no DSM, is another benchmark
    with pytest.raises(UserError, match="use_dsm: true -> false"):
        run_benchmark(scenes, out, **{**options, "use_dsm": False})


@pytest.mark.parametrize("kwargs, message", [
    ({}, "name the ones to test on with test_scenes"),
    ({"test_scenes": ["scene-c"]}, "no scene 'scene-c' \\(scenes: scene-a, scene-b\\)"),
    ({"test_scenes": ["scene-a", "scene-b"]}, "nothing is left to train on"),
    ({"test_scenes": ["scene-b", "scene-b"]}, "names 'scene-b' twice"),
])
def test_bad_scene_options_fail_before_anything_is_written(scenes, tmp_path, kwargs, message):
    out = tmp_path / "new"
    with pytest.raises(UserError, match=message):
        run_benchmark(scenes, out, models=["sssn"], budget="smoke", **kwargs)
    assert not out.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"test_scenes": ["x"]}, "test_scenes applies to scene folders"),
    ({"use_dsm": True}, "use_dsm applies to scene folders"),
])
def test_scene_options_on_an_image_dataset_are_refused(data, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        run_benchmark(data, tmp_path / "new", models=["sssn"], budget="smoke", **kwargs)
    assert not (tmp_path / "new").exists()


def test_parser_scene_options():
    args = _parser().parse_args(["benchmark", "d", "--out", "o", "--test-scenes", "scene-b",
                                 "--use-dsm", "--scene-tile", "256"])
    assert (args.test_scenes, args.use_dsm, args.scene_tile) == (["scene-b"], True, 256)
    args = _parser().parse_args(["benchmark", "d", "--out", "o"])
    assert (args.test_scenes, args.use_dsm, args.scene_tile) == (None, False, 512)
    with pytest.raises(SystemExit):
        _parser().parse_args(["benchmark", "d", "--out", "o", "--scene-tile", "8"])
