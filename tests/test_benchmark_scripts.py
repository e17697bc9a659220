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


def _recipe_results(folder: Path, recipe: str, models: dict, seeds=(0, 1, 2),
                    dataset: str = "sichuan-aerial", commit: str = "abc123") -> None:
    """A results.json as ``scdnn benchmark`` writes it, reduced to what the recipes summary
    reads: per network its seeds and the summaries of per-seed scores (mean, sample SD)."""
    import json
    import statistics

    def summary(values):
        return {"mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values), "max": max(values), "n": len(values)}

    folder.mkdir(parents=True)
    results = {
        "config": {"dataset": {"kind": "dataset", "data": f"/data/{dataset}"},
                   "budget": "cpu", "train": {"recipe": recipe, "max_steps": 1000},
                   "seeds": list(seeds)},
        "provenance": {"git_commit": commit, "created": "2026-12-03T10:00:00+00:00"},
        "models": {name: {"label": name.upper(), "seeds": list(seeds)[:len(scores["miou"])],
                          "scores": {k: summary(v) for k, v in scores.items()}}
                   for name, scores in models.items()},
    }
    (folder / "results.json").write_text(json.dumps(results))


def test_recipes_summary_welch_by_hand_incomplete_and_ablation(tmp_path):
    import json
    import math

    summary = _script("recipes_summary")
    res = tmp_path / "recipes"
    _recipe_results(res / "paper-sichuan", "paper",
                    {"scdnn": {"miou": [0.55, 0.56, 0.57], "object_f1": [0.30, 0.40, 0.50]}})
    _recipe_results(res / "default-sichuan", "default",
                    {"scdnn": {"miou": [0.60, 0.62, 0.64], "object_f1": [0.40, 0.40, 0.40],
                               "boundary_f1_2px": [0.2, 0.3, 0.4],
                               "boundary_f1_1m": [0.5, 0.5, 0.5]},
                     "sssn": {"miou": [0.50, 0.50, 0.50]}})
    _recipe_results(res / "default-loss-ce-sichuan", "default:loss=ce",
                    {"scdnn": {"miou": [0.60, 0.61]}}, seeds=(0, 1))
    (res / "broken-sichuan").mkdir()
    (res / "broken-sichuan" / "results.json").write_text("{not json")
    # inference options: raw 0.60/0.62/0.64, cleaned 0.61/0.64/0.64 on the same weights
    runs = {f"scdnn-seed{k}": {v: {"scores": {"miou": m, "object_f1": None}, "seconds": 1.0}
                               for v, m in (("raw", raw), ("cleaned", clean))}
            for k, (raw, clean) in enumerate(((0.60, 0.61), (0.62, 0.64), (0.64, 0.64)))}
    table = {"scdnn": {v: {"seeds": 3, "scores": {"miou": {"mean": 0.62, "std": 0.02, "n": 3}}}
                       for v in ("raw", "cleaned")}}
    (res / "default-sichuan-inference.json").write_text(json.dumps(
        {"bench": "runs/recipe-default-sichuan", "runs": runs, "table": table}))

    out = tmp_path / "out"
    assert summary.main(["--results", str(res), "--out", str(out)]) == 0
    data = json.loads((out / "summary.json").read_text())
    readme = (out / "README.md").read_text()

    rows = {(r["label"], r["network"]): r for r in data["datasets"]["sichuan"]["rows"]}
    assert [(r["label"], r["network"]) for r in data["datasets"]["sichuan"]["rows"]] == [
        ("paper", "scdnn"), ("default", "scdnn"), ("default", "sssn"),
        ("default-loss-ce", "scdnn")]
    assert rows[("default-loss-ce", "scdnn")]["incomplete"] is True
    assert rows[("default-loss-ce", "scdnn")]["n"] == 2
    assert rows[("default", "scdnn")]["incomplete"] is False
    assert len(data["unreadable"]) == 1 and data["unreadable"][0].startswith("broken-sichuan")

    comps = {(c["what"], c["network"] or c["recipe"]): c
             for c in data["datasets"]["sichuan"]["comparisons"]}
    assert set(comps) == {("default − paper", "SCDNN"), ("default-loss-ce − paper", "SCDNN"),
                          ("default-loss-ce − default", "SCDNN"), ("SCDNN − SSSN", "default")}
    # default − paper, MIoU: diff 0.62 − 0.56; SE sqrt(0.02²/3 + 0.01²/3) = sqrt(0.0005/3);
    # df (0.0005/3)² / (((0.0004/3)² + (0.0001/3)²) / 2) = 2.5e-7 / 8.5e-8
    w = comps[("default − paper", "SCDNN")]["metrics"]["miou"]
    assert math.isclose(w["diff"], 0.06, abs_tol=1e-12)
    assert math.isclose(w["se"], math.sqrt(0.0005 / 3), rel_tol=1e-9)
    assert math.isclose(w["t"], 0.06 / math.sqrt(0.0005 / 3), rel_tol=1e-9)  # 4.648
    assert math.isclose(w["df"], 2.5e-7 / 8.5e-8, rel_tol=1e-9)  # 2.94
    assert w["verdict"] == "beyond noise" and w["n"] == [3, 3]
    # object F1: 0.40 vs 0.40 ± 0.10: diff 0, SE sqrt(0.01/3)
    o = comps[("default − paper", "SCDNN")]["metrics"]["object_f1"]
    assert math.isclose(o["diff"], 0.0, abs_tol=1e-12) and o["verdict"] == "within noise"
    assert math.isclose(o["se"], math.sqrt(0.01 / 3), rel_tol=1e-9)
    assert comps[("default − paper", "SCDNN")]["metrics"]["boundary_f1_2px"] is None
    # the ablation, 2 seeds (0.605 ± 0.00707) against default: diff −0.015,
    # SE sqrt(0.00005/2 + 0.0004/3) = 0.01258 > 0.015 / 2: within noise
    a = comps[("default-loss-ce − default", "SCDNN")]
    assert a["kind"] == "ablation" and a["seeds"] == [2, 3] and "incomplete" in a["notes"]
    assert math.isclose(a["metrics"]["miou"]["diff"], -0.015, abs_tol=1e-12)
    assert math.isclose(a["metrics"]["miou"]["se"], math.sqrt(0.00005 / 2 + 0.0004 / 3),
                        rel_tol=1e-9)
    assert a["metrics"]["miou"]["verdict"] == "within noise"
    # SCDnn − SSSN under default: SSSN's SD is 0, so SE = 0.02/√3 and df = n1 − 1 = 2
    n = comps[("SCDNN − SSSN", "default")]["metrics"]["miou"]
    assert math.isclose(n["se"], 0.02 / math.sqrt(3), rel_tol=1e-9)
    assert math.isclose(n["t"], 0.12 / (0.02 / math.sqrt(3)), rel_tol=1e-9)  # 10.39
    assert math.isclose(n["df"], 2.0, rel_tol=1e-9)

    # inference: paired differences 0.01, 0.02, 0.00: mean 0.01, SE 0.01/√3 (t 1.73, df 2)
    inf = data["inference"][0]
    assert inf["name"] == "default-sichuan"
    p = inf["networks"]["scdnn"]["cleaned"]["against_raw"]["miou"]
    assert math.isclose(p["diff"], 0.01, abs_tol=1e-12) and p["df"] == 2
    assert math.isclose(p["se"], 0.01 / math.sqrt(3), rel_tol=1e-9)
    assert p["verdict"] == "within noise"
    assert inf["networks"]["scdnn"]["cleaned"]["against_raw"]["object_f1"] is None

    assert readme.startswith("# Training recipes: summary")
    assert "Generated by `benchmarks/recipes_summary.py`" in readme
    assert f"--results {res.resolve()} --out {out.resolve()}" in readme
    assert ("- default − paper on sichuan, SCDNN: +6.00 ± 1.29 MIoU points (3 vs 3 seeds): "
            "beyond noise; +0.00 ± 5.77 object F1 points: within noise") in readme
    assert ("- default-loss-ce − default on sichuan, SCDNN: -1.50 ± 1.26 MIoU points "
            "(2 vs 3 seeds; incomplete): within noise") in readme
    assert "| `default` | SCDNN | 3 (0, 1, 2) | 62.00 ± 2.00 |" in readme
    assert "| `default-loss-ce` | SCDNN | 2 (0, 1) **incomplete** | 60.50 ± 0.71 |" in readme
    assert "boundary F1 1 m (%)" in readme and "boundary F1 0.5 m (%)" not in readme
    assert "| +6.00 | 1.29 | 4.65 | 2.9 | beyond noise |" in readme
    assert "cleaned − raw, MIoU: +1.00 ± 0.58 points (3 runs, t = 1.73, df 2): within noise" \
        in readme
    assert "**not read**: broken-sichuan" in readme


def test_recipes_summary_one_seed_and_empty_folder(tmp_path):
    import json

    summary = _script("recipes_summary")
    assert summary.main(["--results", str(tmp_path / "none")]) == 0
    assert "No finished benchmark yet" in (tmp_path / "none" / "README.md").read_text()
    res = tmp_path / "res"
    _recipe_results(res / "default-jinsha", "default", {"scdnn": {"miou": [0.6]}}, seeds=(0,))
    _recipe_results(res / "paper-jinsha", "paper", {"scdnn": {"miou": [0.5, 0.7]}},
                    seeds=(0, 1))
    assert summary.main(["--results", str(res)]) == 0
    data = json.loads((res / "summary.json").read_text())
    (c,) = data["datasets"]["jinsha"]["comparisons"]
    assert c["metrics"]["miou"]["se"] is None and c["metrics"]["miou"]["t"] is None
    assert c["metrics"]["miou"]["verdict"].startswith("cannot tell")
    assert "1 (0) **incomplete**" in (res / "README.md").read_text()


def test_bundle_says_which_mapping_unit_the_card_carries(monkeypatch):
    from scdnn.records import MappingUnit, ModelCard, Normalization

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its own imports (_common)
    bundle = _script("bundle")
    card = ModelCard(model="scdnn", in_channels=3, split={"val": ["a", "b", "c", "d"]},
                     normalization=Normalization(mean=[0.0] * 3, std=[1.0] * 3))
    assert "no minimum mapping unit" in bundle.mapping_unit(card)
    card.mapping_unit = MappingUnit(area_px=8000, scores={
        "400": {"object_f1": 0.2, "miou": 0.7}, "8000": {"object_f1": 0.5, "miou": 0.75}})
    text = bundle.mapping_unit(card)
    assert "8,000 px" in text and "4 validation images" in text
    assert "object F1 0.5000" in text and "best of 2 units" in text


def test_bundle_scores_the_weights_elsewhere_and_writes_what_it_measured(
        monkeypatch, tmp_path, folder_dataset):
    from conftest import random_rgb, spread_weights

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bundle = _script("bundle")
    assert "not been scored on other imagery" in bundle.elsewhere_section([])
    weights = spread_weights(tmp_path / "w.safetensors", random_rgb(40, 48, seed=0))
    row = bundle.score_elsewhere(weights, str(folder_dataset), tmp_path / "elsewhere")
    assert row["dataset"] == "folder-ds" and row["images"] == 5
    assert (tmp_path / "elsewhere" / "folder-ds" / "metrics.json").is_file()
    for key in ("miou", "landslide_iou", "landslide_f1"):
        assert 0.0 <= row[key] <= 1.0
    text = bundle.elsewhere_section([row])
    assert f"| folder-ds | {row['scored']} | {100 * row['miou']:.2f} |" in text
    assert "not fit to map landslides there" in text


def test_bundle_readme_text_names_the_command_scores_and_mapping_unit(monkeypatch, tmp_path):
    from scdnn.records import MappingUnit, ModelCard, Normalization

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bundle = _script("bundle")
    command = "scdnn train data --out run --model scdnn --steps 30 --input-scale 0.25"
    card = ModelCard(model="scdnn", in_channels=3, split={"val": ["a"]},
                     normalization=Normalization(mean=[0.0] * 3, std=[1.0] * 3),
                     provenance={"command": command})
    metrics = {"images": 11, "miou": 0.7512, "pa": 0.9, "class_iou": {"landslide": 0.6},
               "landslide_f1": 0.75, "boundary_f1": 0.2, "boundary_tolerance_px": 2,
               "objects": {"f1": 0.5, "count_ratio": 0.8},
               "cleaning": {"pixels": {"min_area": 16000}}}
    text = bundle.readme_text(card, metrics, tmp_path / "metrics.json")
    assert f"`{command}`" in text and "11 held-back test images" in text
    assert "under 16,000 px" in text and "MIoU 75.12 %" in text
    assert "object F1 50.00 % (predicted ÷ true landslides 0.80)" in text
    assert "mapping unit" not in text
    card.mapping_unit = MappingUnit(area_px=32000, scores={"32000": {"object_f1": 0.5}})
    assert "minimum mapping unit of 32,000 px" in bundle.readme_text(card, metrics,
                                                                     tmp_path / "m.json")
    del metrics["objects"], metrics["cleaning"]
    assert "object F1" not in bundle.readme_text(card, metrics, tmp_path / "m.json")
    assert "int8" not in bundle.readme_text(card, metrics, tmp_path / "m.json")
    card.dtype = "int8"
    assert "int8" in bundle.readme_text(card, metrics, tmp_path / "m.json")


def test_inference_options_takes_the_mapping_unit_the_card_carries(monkeypatch, tmp_path):
    import json

    from conftest import random_rgb, spread_weights

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    options = _script("inference_options")
    sample = random_rgb(16, 16, seed=0)
    run = tmp_path / "scdnn-seed0"
    run.mkdir()
    unit = {"area_px": 4000, "scores": {"4000": {"object_f1": 0.5, "miou": 0.7}}}
    spread_weights(run / "weights.safetensors", sample, mapping_unit=unit)
    choice = options.validation_mmu(run, "unused", tmp_path / "out")
    assert choice["mmu_px"] == 4000 and choice["source"] == "model card"
    assert json.loads((tmp_path / "out" / "choice.json").read_text()) == choice
    # no unit on the card and no validation images (a scene split): nothing to choose with
    bare = tmp_path / "scdnn-seed1"
    bare.mkdir()
    spread_weights(bare / "weights.safetensors", sample)
    (bare / "split.json").write_text(json.dumps({"train": ["scene-a"], "val": None}))
    assert options.validation_mmu(bare, "unused", tmp_path / "bare") is None


def test_bundle_end_to_end_on_a_tiny_run(monkeypatch, tmp_path, folder_dataset):
    """bundle.py from a weights file and its evaluation to the package files (it once failed
    on the typed model card: 'ModelCard' object is not a mapping)."""
    import json

    from conftest import random_rgb, spread_weights
    from scdnn.evaluation import evaluate
    from scdnn.weights import read_card

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.chdir(tmp_path)  # main() changes into the repository; restored afterwards
    bundle = _script("bundle")
    split = {"seed": 0, "train": ["b", "c"], "val": ["d"], "test": ["a", "e"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    weights = spread_weights(tmp_path / "run" / "weights.safetensors",
                             random_rgb(40, 48, seed=0), split=split, config={"image_size": 32},
                             provenance={"created": "2000-01-01T00:00:00+00:00",
                                         "command": "scdnn train data --out run"})
    evaluate(folder_dataset, tmp_path / "eval", weights=str(weights),
             split=str(tmp_path / "split.json"))
    pkg, res = tmp_path / "pkg", tmp_path / "res"
    monkeypatch.setattr("sys.argv", [
        "bundle.py", "--weights", str(weights), "--data", str(folder_dataset),
        "--metrics", str(tmp_path / "eval" / "metrics.json"), "--images", "1", "--crop", "20",
        "--min-agreement", "0.9", "--no-demo", "--package-data", str(pkg),
        "--results", str(res), "--elsewhere", str(folder_dataset)])
    assert bundle.main() == 0
    card = read_card(pkg / "scdnn-sichuan.safetensors")
    assert card.dtype == "int8"  # SCDnn's 8x8 kernels make float16 12 MB, over 10 MB
    assert (pkg / "scdnn-sichuan.safetensors").stat().st_size <= bundle.MAX_WEIGHTS_BYTES
    assert card.extra["demo_sample"]["images"] == ["a"]  # 7.5 % landslide in its centre
    assert card.extra["converted_from"]["sha256"] == bundle.sha256(weights)
    assert json.loads((pkg / "model.json").read_text())["dtype"] == "int8"
    assert "| folder-ds |" in (pkg / "WEIGHTS.md").read_text()
    results = json.loads((res / "bundle.json").read_text())
    assert results["elsewhere"][0]["images"] == 5 and results["demo"] is None
    assert results["weights"]["dtype"] == "int8"
    assert "int8" in (pkg / "WEIGHTS.md").read_text()
