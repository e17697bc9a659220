"""Inference-only options on the same weights: raw vs cleaned outlines, test-time augmentation.

For every finished run of a benchmark folder (``runs/<model>-seed<k>/weights.safetensors``),
scores the run's own test part again with ``scdnn evaluate``'s code under each variant:

- ``raw``: the thresholded mask, as the benchmark scores it;
- ``cleaned``: the data's default outline cleaning (:class:`scdnn.outlines.OutlineCleaning`;
  400 px units on images), even for a model whose card carries its own mapping unit;
- ``cleaned+flips`` / ``cleaned+d4``: cleaning after test-time augmentation;
- ``cleaned+val-mmu``: cleaning with the minimum mapping unit (smallest landslide kept and
  largest hole filled, one value) chosen on the run's own *validation* samples, never the
  test ones: the unit its model card carries (``scdnn train`` chose it on the validation
  images, or on a scene split's held-out validation windows, of
  :data:`scdnn.outlines.MAPPING_UNITS_PX`), else, for runs trained before cards carried one,
  chosen here on the validation images of :data:`MMU_CANDIDATES_PX` by the same rule (the
  best object F1 there; ties: the better MIoU, then the smaller unit);
- ``cleaned+d4+val-mmu``: the same unit (chosen without augmentation), after d4 test-time
  augmentation.

and writes, per network and variant, mean ± SD over seeds of MIoU, landslide F1, object F1,
predicted ÷ true landslides and boundary F1 at 2 and 8 px, with the time each variant took
(ratio to ``raw``, same run). Variants change nothing but inference, so differences are the
option's alone. Run after ``benchmarks/recipes.sh``:

    .venv/bin/python benchmarks/inference_options.py runs/recipe-default-sichuan \\
        --data ../shared/data/sichuan-aerial --name default-sichuan

Resumable: each (run, variant) evaluation is kept in ``<bench>/inference/<run>/<variant>/``
and skipped when its metrics.json exists. Results: ``benchmarks/results/recipes/
<name>-inference.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import RESULTS, save
from scdnn.benchmark.tables import outline_scores, summarize
from scdnn.evaluation import evaluate
from scdnn.outlines import OutlineCleaning
from scdnn.trainers.mapping_unit import best_unit
from scdnn.weights import read_card

#: Minimum mapping units tried on the validation images (px², images have no pixel size).
MMU_CANDIDATES_PX = (400, 1000, 2000, 4000, 8000, 16000, 32000)
VAL_MMU = "cleaned+val-mmu"
VAL_MMU_D4 = "cleaned+d4+val-mmu"
#: The variants whose cleaning is the unit chosen on the run's validation images.
VAL_MMU_VARIANTS = (VAL_MMU, VAL_MMU_D4)
#: The data's default cleaning, also for a model whose card carries a mapping unit.
DEFAULTS = OutlineCleaning(use_model_unit=False)
VARIANTS = {
    "raw": {"cleaning": None, "tta": "none"},
    "cleaned": {"cleaning": DEFAULTS, "tta": "none"},
    "cleaned+flips": {"cleaning": DEFAULTS, "tta": "flips"},
    "cleaned+d4": {"cleaning": DEFAULTS, "tta": "d4"},
    VAL_MMU: {"cleaning": None, "tta": "none"},  # the cleaning is chosen per run
    VAL_MMU_D4: {"cleaning": None, "tta": "d4"},  # the same unit, after d4 augmentation
}
KEYS = ("miou", "landslide_f1", "object_f1", "object_count_ratio", "boundary_f1_2px",
        "boundary_f1_8px")


def scores(metrics: dict) -> dict:
    flat = {"miou": metrics["miou"], "landslide_f1": metrics.get("landslide_f1"),
            **outline_scores(metrics)}
    return {key: flat.get(key) for key in KEYS}


def run_variant(weights: Path, data: str, out: Path, variant: str,
                **options) -> tuple[dict, float | None]:
    """metrics.json of one evaluation (made unless it exists) and the seconds it took
    (None when it was made by an earlier invocation: it then took a stored time).
    ``options`` replace the variant's (a cleaning chosen for the run)."""
    done = out / "metrics.json"
    if done.is_file():
        stored = json.loads((out / "seconds.json").read_text()) if (
            out / "seconds.json").is_file() else {}
        return json.loads(done.read_text()), stored.get("seconds")
    start = time.perf_counter()
    metrics = evaluate(data, out, weights=str(weights), overwrite=True,
                       **{**VARIANTS[variant], **options})
    seconds = time.perf_counter() - start
    (out / "seconds.json").write_text(json.dumps({"seconds": seconds}))
    return metrics, seconds


def mmu_cleaning(size: float) -> OutlineCleaning:
    return OutlineCleaning(min_area=size, max_hole=size, units="px")


def validation_mmu(run: Path, data: str, out: Path) -> dict | None:
    """The minimum mapping unit chosen on ``run``'s validation samples (see the module
    docstring), with each candidate's validation scores; None when there is none (a card
    without a unit and no validation images). Kept in ``out/choice.json``."""
    done = out / "choice.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    unit = read_card(run / "weights.safetensors").mapping_unit
    if unit is not None:
        choice = {"mmu_px": unit.area_px, "source": "model card", "chosen_on": unit.chosen_on,
                  "tried": unit.scores}
    else:
        choice = _choose_on_validation_images(run, data, out)
    if choice is not None:
        done.write_text(json.dumps(choice, indent=1))
    return choice


def _choose_on_validation_images(run: Path, data: str, out: Path) -> dict | None:
    """:func:`validation_mmu` for a card without a unit: every candidate scored on the
    run's validation images; None without validation images (a scene split)."""
    split = json.loads((run / "split.json").read_text())
    if not all(isinstance(split.get(k), list) for k in ("train", "val")) or not split["val"]:
        return None
    val_split = out / "val-as-test.json"
    val_split.write_text(json.dumps({**split, "test": split["val"], "val": []}))
    tried = {}
    for size in MMU_CANDIDATES_PX:
        metrics = evaluate(data, out / f"mmu-{size}", weights=str(run / "weights.safetensors"),
                           split=str(val_split), cleaning=mmu_cleaning(size), overwrite=True)
        tried[size] = {"object_f1": metrics["objects"]["f1"], "miou": metrics["miou"]}
    best = best_unit(tried)
    return {"mmu_px": best, "source": "validation images", "validation_images": split["val"],
            "tried": tried}


def _cell(s: dict, scale: float = 100.0) -> str:
    if s["mean"] is None:
        return "–"
    sd = "" if s["std"] is None else f" ± {s['std'] * scale:.2f}"
    return f"{s['mean'] * scale:.2f}{sd}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", type=Path, help="benchmark folder (runs/<model>-seed<k>/)")
    parser.add_argument("--data", required=True, help="the benchmark's dataset folder")
    parser.add_argument("--name", required=True, help="results name, e.g. default-sichuan")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()

    runs = sorted(p for p in (args.bench / "runs").iterdir()
                  if (p / "weights.safetensors").is_file() and (p / "eval").is_dir())
    per_run: dict[str, dict] = {}
    for run in runs:
        per_run[run.name] = {}
        for variant in args.variants:
            where = args.bench / "inference" / run.name / variant
            options = {}
            if variant in VAL_MMU_VARIANTS:  # the unit is chosen without augmentation
                choice = validation_mmu(run, args.data, where / "validation")
                if choice is None:
                    continue
                options = {"cleaning": mmu_cleaning(choice["mmu_px"])}
            metrics, seconds = run_variant(run / "weights.safetensors", args.data, where,
                                           variant, **options)
            per_run[run.name][variant] = {"scores": scores(metrics), "seconds": seconds}
            if variant in VAL_MMU_VARIANTS:
                per_run[run.name][variant]["mmu_px"] = choice["mmu_px"]
            print(run.name, variant, per_run[run.name][variant], flush=True)

    models = sorted({name.rsplit("-seed", 1)[0] for name in per_run})
    table: dict[str, dict] = {}
    for model in models:
        mine = {n: v for n, v in per_run.items() if n.rsplit("-seed", 1)[0] == model}
        table[model] = {}
        for variant in args.variants:
            rows = [v[variant] for v in mine.values() if variant in v]
            if not rows:
                continue
            ratios = [v[variant]["seconds"] / v["raw"]["seconds"] for v in mine.values()
                      if v.get(variant, {}).get("seconds") and v.get("raw", {}).get("seconds")]
            table[model][variant] = {
                "seeds": len(rows),
                "mmu_px": [r["mmu_px"] for r in rows if "mmu_px" in r] or None,
                "scores": {k: summarize(r["scores"][k] for r in rows) for k in KEYS},
                "time_ratio_to_raw": summarize(ratios)}

    lines = [f"# Inference options on the same weights ({args.name})", "",
             f"Benchmark folder `{args.bench}`, data `{args.data}`: each run's own test part. "
             "Mean ± SD over seeds, in %; predicted ÷ true is a ratio; time ÷ raw from the same "
             "invocation (– when the variant was evaluated by an earlier one). "
             f"`{VAL_MMU}`: the minimum mapping unit chosen on each run's validation samples "
             "(by `scdnn train`, in the model card, or for runs without one on the validation "
             f"images of {', '.join(map(str, MMU_CANDIDATES_PX))} px), in brackets.", "",
             "| network | variant | seeds | MIoU | landslide F1 | object F1 | predicted ÷ true "
             "| boundary F1 @2 px | @8 px | time ÷ raw |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, variants in table.items():
        for variant, row in variants.items():
            s = row["scores"]
            ratio = row["time_ratio_to_raw"]
            label = variant if not row.get("mmu_px") else (
                f"{variant} ({', '.join(f'{a:,}' for a in row['mmu_px'])} px)")
            lines.append(
                f"| {model} | {label} | {row['seeds']} | {_cell(s['miou'])} | "
                f"{_cell(s['landslide_f1'])} | {_cell(s['object_f1'])} | "
                f"{_cell(s['object_count_ratio'], 1.0)} | {_cell(s['boundary_f1_2px'])} | "
                f"{_cell(s['boundary_f1_8px'])} | {_cell(ratio, 1.0)} |")
    save(f"{args.name}-inference", {"bench": str(args.bench), "data": args.data,
                                    "variants": {k: {"cleaning": "validation mmu"
                                                     if k in VAL_MMU_VARIANTS else None
                                                     if v["cleaning"] is None else "default",
                                                     "tta": v["tta"]}
                                                 for k, v in VARIANTS.items()
                                                 if k in args.variants},
                                    "runs": per_run, "table": table},
         "\n".join(lines), RESULTS / "recipes")


if __name__ == "__main__":
    main()
