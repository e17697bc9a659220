"""Does picking the best validation epoch pick a good test model? Best vs last, per run.

For every run of a ``scdnn benchmark`` folder, score the weights of its last epoch
(``checkpoints/last.ckpt``) on the same test split exactly as the benchmark scored the
validation-picked ones (``weights.safetensors``, its ``eval/metrics.json``), and tabulate both
beside the validation MIoU of each epoch. A large gap between the two, or a best epoch whose
validation MIoU stands far above its neighbours', says the test score hinges on checkpoint
selection rather than on the network.

    .venv/bin/python benchmarks/checkpoints.py runs/paper-jinsha ../shared/data/jinsha-uav \
        --out benchmarks/results/paper-jinsha/checkpoints

Writes OUT.json and OUT.md; runs whose last-epoch score exists (the work folder
``<benchmark>/checkpoint-eval/<run>``) are not scored again. Runs whose ``last.ckpt`` is not
their last epoch (trained before commit 2235e1f, when Lightning 2.6 wrote it only with a new
best) are left out with a note.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

from scdnn.runs import atomic_write, provenance, write_json
from scdnn.trainers.fit import checkpoint_model_state
from scdnn.weights import load_model, save_weights


def last_weights(run: Path, work: Path, state: dict, epoch: int) -> Path:
    """``run``'s last-epoch network ``state`` as a weights file (the run's card, epoch
    updated)."""
    target = work / "last.safetensors"
    if target.is_file():
        return target
    model, card = load_model(run / "weights.safetensors")
    model.load_state_dict(state)
    card = {**card, "best_epoch": epoch, "best_val_miou": None,
            "note": "last epoch's weights (benchmarks/checkpoints.py), not the best one"}
    work.mkdir(parents=True, exist_ok=True)
    save_weights(model, target, card)
    return target


def score_last(run: Path, data: Path, work: Path, state: dict, epoch: int) -> dict:
    metrics = work / "eval" / "metrics.json"
    if not metrics.is_file():
        weights = last_weights(run, work, state, epoch)
        subprocess.run([str(Path(sys.executable).with_name("scdnn")), "evaluate", str(data),
                        "--weights", str(weights), "--split", str(run / "split.json"),
                        "--out", str(work / "eval"), "--overwrite"], check=True,
                       stdout=subprocess.DEVNULL)
    return json.loads(metrics.read_text())


def val_curve(run: Path) -> list[tuple[int, float]]:
    with open(run / "log.csv", newline="") as handle:
        return [(int(r["epoch"]), float(r["val_miou"])) for r in csv.DictReader(handle)
                if r.get("val_miou")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", type=Path, help="scdnn benchmark folder")
    parser.add_argument("data", type=Path, help="the benchmark's dataset")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    args = parser.parse_args(argv)

    rows = []
    for run in sorted((args.benchmark / "runs").iterdir()):
        if not (run / "checkpoints" / "last.ckpt").is_file():
            continue
        best = json.loads((run / "eval" / "metrics.json").read_text())
        card = json.loads((run / "model.json").read_text())
        curve = val_curve(run)
        state, ckpt_epoch = checkpoint_model_state(run / "checkpoints" / "last.ckpt")
        if not curve or ckpt_epoch != curve[-1][0]:
            # runs trained before 2235e1f: Lightning 2.6 wrote last.ckpt only with a new best
            print(f"{run.name}: last.ckpt holds epoch {ckpt_epoch}, not the last one "
                  f"({curve[-1][0] if curve else '?'}): left out", file=sys.stderr)
            continue
        last = score_last(run, args.data, args.benchmark / "checkpoint-eval" / run.name,
                          state, ckpt_epoch)
        best_epoch = card.best_epoch
        near = [v for e, v in curve if 0 < abs(e - best_epoch) <= 2]
        tail = [v for _, v in curve[-10:]]
        rows.append({
            "run": run.name, "epochs": curve[-1][0],
            "best_epoch": best_epoch, "best_val_miou": card.best_val_miou,
            "val_miou_neighbours": statistics.fmean(near) if near else None,
            "val_miou_last10_mean": statistics.fmean(tail) if tail else None,
            "val_miou_last10_sd": statistics.stdev(tail) if len(tail) > 1 else None,
            "last_val_miou": curve[-1][1],
            "test_miou_best": best["miou"], "test_miou_last": last["miou"],
            "test_landslide_iou_best": best["class_iou"]["landslide"],
            "test_landslide_iou_last": last["class_iou"]["landslide"],
        })

    result = {"benchmark": str(args.benchmark), "data": str(args.data), "runs": rows,
              "provenance": provenance()}
    write_json(args.out.with_suffix(".json"), result)

    def pct(v):
        return "" if v is None else f"{100 * v:.2f}"

    lines = ["# Best-validation vs last-epoch weights, on the test split", "",
             f"`benchmarks/checkpoints.py {args.benchmark} {args.data}`; "
             f"{result['provenance'].get('git_commit', '')[:7]}. Validation MIoU of the picked "
             "epoch, the mean of its two neighbours on each side, the mean and SD of the "
             "last 10 epochs; test MIoU of the picked (benchmark) and the last weights.", "",
             "| run | epochs | best epoch | val MIoU best | val neighbours | val last 10 "
             "(mean ± SD) | test MIoU best | test MIoU last |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['run']}` | {r['epochs']} | {r['best_epoch']} | "
                     f"{pct(r['best_val_miou'])} | {pct(r['val_miou_neighbours'])} | "
                     f"{pct(r['val_miou_last10_mean'])} ± {pct(r['val_miou_last10_sd'])} | "
                     f"{pct(r['test_miou_best'])} | {pct(r['test_miou_last'])} |")
    with atomic_write(args.out.with_suffix(".md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
