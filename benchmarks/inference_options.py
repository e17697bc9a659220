"""Inference-only options on the same weights: raw vs cleaned outlines, test-time augmentation.

For every finished run of a benchmark folder (``runs/<model>-seed<k>/weights.safetensors``),
scores the run's own test part again with ``scdnn evaluate``'s code under each variant:

- ``raw``: the thresholded mask, as the benchmark scores it;
- ``cleaned``: the default outline cleaning (:class:`scdnn.outlines.OutlineCleaning`);
- ``cleaned+flips`` / ``cleaned+d4``: cleaning after test-time augmentation.

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

VARIANTS = {
    "raw": {"cleaning": None, "tta": "none"},
    "cleaned": {"cleaning": OutlineCleaning(), "tta": "none"},
    "cleaned+flips": {"cleaning": OutlineCleaning(), "tta": "flips"},
    "cleaned+d4": {"cleaning": OutlineCleaning(), "tta": "d4"},
}
KEYS = ("miou", "landslide_f1", "object_f1", "object_count_ratio", "boundary_f1_2px",
        "boundary_f1_8px")


def scores(metrics: dict) -> dict:
    flat = {"miou": metrics["miou"], "landslide_f1": metrics.get("landslide_f1"),
            **outline_scores(metrics)}
    return {key: flat.get(key) for key in KEYS}


def run_variant(weights: Path, data: str, out: Path, variant: str) -> tuple[dict, float | None]:
    """metrics.json of one evaluation (made unless it exists) and the seconds it took
    (None when it was made by an earlier invocation: it then took a stored time)."""
    done = out / "metrics.json"
    if done.is_file():
        stored = json.loads((out / "seconds.json").read_text()) if (
            out / "seconds.json").is_file() else {}
        return json.loads(done.read_text()), stored.get("seconds")
    start = time.perf_counter()
    metrics = evaluate(data, out, weights=str(weights), overwrite=True, **VARIANTS[variant])
    seconds = time.perf_counter() - start
    (out / "seconds.json").write_text(json.dumps({"seconds": seconds}))
    return metrics, seconds


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
            metrics, seconds = run_variant(run / "weights.safetensors", args.data,
                                           args.bench / "inference" / run.name / variant,
                                           variant)
            per_run[run.name][variant] = {"scores": scores(metrics), "seconds": seconds}
            print(run.name, variant, per_run[run.name][variant], flush=True)

    models = sorted({name.rsplit("-seed", 1)[0] for name in per_run})
    table: dict[str, dict] = {}
    for model in models:
        mine = {n: v for n, v in per_run.items() if n.rsplit("-seed", 1)[0] == model}
        table[model] = {}
        for variant in args.variants:
            rows = [v[variant] for v in mine.values()]
            ratios = [r["seconds"] / v["raw"]["seconds"]
                      for r, v in zip(rows, mine.values(), strict=True)
                      if r["seconds"] and v.get("raw", {}).get("seconds")]
            table[model][variant] = {
                "seeds": len(rows),
                "scores": {k: summarize(r["scores"][k] for r in rows) for k in KEYS},
                "time_ratio_to_raw": summarize(ratios)}

    lines = [f"# Inference options on the same weights ({args.name})", "",
             f"Benchmark folder `{args.bench}`, data `{args.data}`: each run's own test part. "
             "Mean ± SD over seeds, in %; predicted ÷ true is a ratio; time ÷ raw from the same "
             "invocation (– when the variant was evaluated by an earlier one).", "",
             "| network | variant | seeds | MIoU | landslide F1 | object F1 | predicted ÷ true "
             "| boundary F1 @2 px | @8 px | time ÷ raw |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, variants in table.items():
        for variant, row in variants.items():
            s = row["scores"]
            ratio = row["time_ratio_to_raw"]
            lines.append(
                f"| {model} | {variant} | {row['seeds']} | {_cell(s['miou'])} | "
                f"{_cell(s['landslide_f1'])} | {_cell(s['object_f1'])} | "
                f"{_cell(s['object_count_ratio'], 1.0)} | {_cell(s['boundary_f1_2px'])} | "
                f"{_cell(s['boundary_f1_8px'])} | {_cell(ratio, 1.0)} |")
    save(f"{args.name}-inference", {"bench": str(args.bench), "data": args.data,
                                    "variants": {k: {"cleaning": None if v["cleaning"] is None
                                                     else "default", "tta": v["tta"]}
                                                 for k, v in VARIANTS.items()
                                                 if k in args.variants},
                                    "runs": per_run, "table": table},
         "\n".join(lines), RESULTS / "recipes")


if __name__ == "__main__":
    main()
