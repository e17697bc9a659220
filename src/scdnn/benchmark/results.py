"""A benchmark's results: the finished runs collected, the examples chosen, the tables and
figures drawn, ``results.json`` and ``results.md`` written.

Everything here reads the run folders (log.csv, model.json, eval/) and the data; nothing is
trained. Per-piece scores (Fig. 8, Table 4) come from the data source's test pieces
(:mod:`scdnn.datasets.pieces`): the test images, or tiles of the test scenes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

from ..metrics.evaluator import optional_float
from ..records import FORMAT_VERSION, EvaluationRecord, ModelCard, Split
from ..runs import atomic_write, provenance, read_json, write_json
from .budgets import BUDGETS, ModelSpec, budget_notes
from .figures import curves_png, examples_png, fig8_png
from .tables import (
    FIG9_MODELS,
    PAPER_FIG8_COUNTS,
    PAPER_FIG8_TOTAL,
    build_tables,
    paper_reference,
    render_markdown,
    run_scores,
)

__all__ = ["EXAMPLE_IMAGES", "FIGURES", "GFLOPS_SIZE", "collect_run", "write_results"]

GFLOPS_SIZE = 256
#: Table 4 / Fig. 9: how many test images (or tiles) are shown.
EXAMPLE_IMAGES = 4
FIGURES = {"fig8": "fig8_miou_bins.png", "fig9": "fig9_examples.png",
           "curves": "training_curves.png"}


# ----------------------------------------------------------------------------- reading runs

def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir/log.csv`` (``epoch`` an int, the rest floats or None)."""
    path = run_dir / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{"epoch": int(float(row["epoch"])),
                 **{k: optional_float(v) for k, v in row.items() if k != "epoch"}}
                for row in csv.DictReader(handle)]


def collect_run(run_dir: Path, name: str, spec: ModelSpec, seed: int, out: Path
                ) -> dict[str, Any]:
    """One finished run as results.json lists it (plus its ``log``): its card, training time
    and epochs, and the scores of its eval/metrics.json."""
    path = run_dir / "eval" / "metrics.json"
    metrics = EvaluationRecord.from_dict(read_json(path), path).to_dict()
    metrics = {k: v for k, v in metrics.items()
               if k not in ("provenance", "source", "format_version")}
    card = ModelCard.from_dict(read_json(run_dir / "model.json"), run_dir / "model.json")
    log = read_log(run_dir)
    epochs = max((r["epoch"] for r in log), default=0)
    seconds = float(sum(r.get("seconds") or 0.0 for r in log))
    return {"name": name, "model": spec.name, "network": spec.network,
            "model_kwargs": card.model_kwargs, "seed": seed,
            "dir": str(run_dir.relative_to(out)), "in_channels": card.in_channels,
            "epochs": epochs, "train_seconds": round(seconds, 2),
            "best_epoch": card.best_epoch, "best_val_miou": card.best_val_miou,
            "machine": card.provenance.get("machine"),
            "scores": run_scores(metrics, epochs, seconds), "metrics": metrics, "log": log}


# ----------------------------------------------------------------------------- report

def _complexity(specs: Sequence[ModelSpec], runs: Sequence[dict[str, Any]]
                ) -> dict[str, dict[str, Any]]:
    from ..models import count_parameters, create_model, gflops

    found = {}
    for spec in specs:
        in_channels = next(r["in_channels"] for r in runs if r["model"] == spec.name)
        model = create_model(spec.network, in_channels=in_channels, **spec.model_kwargs)
        found[spec.name] = {"parameters": count_parameters(model),
                            "gflops": round(gflops(model, in_channels, GFLOPS_SIZE), 4),
                            "gflops_size": GFLOPS_SIZE}
    return found


def fig9_columns(specs: Sequence[ModelSpec]) -> list[str]:
    """The model columns of Table 4 / Fig. 9: the paper's Fig. 9 networks that were run
    (DeepLab v3+ ResNet50, DeepLab v3+ MobileNetV2, SCDnn); when none of them was, every
    model row."""
    run_names = [s.name for s in specs]
    return [m for m in FIG9_MODELS if m in run_names] or run_names


def _examples(pieces, scored: dict[str, Any], specs: Sequence[ModelSpec],
              runs: Sequence[dict[str, Any]], seed: int, out: Path, device: str
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Table 4 / Fig. 9: the chosen test pieces (``pieces.examples``), each model's scores
    (from ``scored``: run name -> its per-piece scores) and predictions (for the figure)."""
    chosen = pieces.examples(EXAMPLE_IMAGES)
    columns = fig9_columns(specs)
    first = {r["model"]: r for r in runs if r["seed"] == seed}
    labels = {s.name: s.label for s in specs}
    preds = {m: pieces.predictions(chosen, out / first[m]["dir"], device) for m in columns}
    table = {"seed": seed, "models": columns, "images": []}
    drawn = []
    for piece in chosen:
        image, truth = pieces.read(piece)
        scores = {}
        for m in columns:
            row = scored[first[m]["name"]].rows.get(piece.name, {})
            scores[m] = {k: row.get(k) for k in ("landslide_pa", "background_pa", "miou")}
        table["images"].append({"name": piece.name, "landslide_share": piece.landslide_share,
                                "scores": scores})
        drawn.append({"name": piece.name, "image": image, "truth": truth,
                      "preds": {labels[m]: (preds[m][piece.name], scores[m]["miou"])
                                for m in columns}})
    return table, drawn, [labels[m] for m in columns]


def write_results(out: Path, source, specs: Sequence[ModelSpec], seeds: list[int],
                  runs: list[dict[str, Any]], split: Split, identity: dict[str, Any],
                  budget: str, ablations: bool, device: str, tolerance: int = 2,
                  tile: int = 512) -> dict[str, Any]:
    """Score the runs' test pieces, draw the figures, write results.json and results.md.

    Parameters
    ----------
    source : the benchmark's :class:`~scdnn.datasets.source.DataSource`
    seeds : the seeds reported, the requested ones first (Fig. 8 and Fig. 9 show the first)
    runs : :func:`collect_run` of every reported run
    identity : the benchmark's identity (:func:`.plan.benchmark_identity`)
    tile : scenes: side of the tiles scored one by one (Fig. 8, Table 4 / Fig. 9)

    Returns
    -------
    dict
        The content of results.json.
    """
    first_seed = seeds[0]
    complexity = _complexity(specs, runs)
    pieces = source.test_pieces(split, tile)
    scored = {r["name"]: pieces.scores(out / r["dir"] / "eval", tolerance) for r in runs}
    examples, drawn, columns = _examples(pieces, scored, specs, runs, first_seed, out, device)
    fig8_source = {name: s.fig8 for name, s in scored.items()} \
        if all(s.fig8 is not None for s in scored.values()) else None
    tables = build_tables(specs, runs, complexity, examples, first_seed, fig8_source)

    figures: dict[str, str | None] = dict.fromkeys(FIGURES)
    if tables["fig8"] is not None:
        fig8 = tables["fig8"]
        fig8_png(out / FIGURES["fig8"], fig8["bins"],
                 f"SCDnn ({fig8['run']}, {fig8['images']} {pieces.label})", PAPER_FIG8_COUNTS,
                 PAPER_FIG8_TOTAL, unit=f"test {pieces.unit}")
        figures["fig8"] = FIGURES["fig8"]
    if drawn:
        examples_png(out / FIGURES["fig9"], drawn, columns, what=pieces.title)
        figures["fig9"] = FIGURES["fig9"]
    curves_png(out / FIGURES["curves"], {r["name"]: r["log"] for r in runs},
               {r["name"]: r["model"] for r in runs})
    figures["curves"] = FIGURES["curves"]

    config = {**identity, "budget_description": BUDGETS[budget].description,
              "models": [s.name for s in specs], "seeds": seeds, "ablations": ablations,
              "device": device, **budget_notes(budget, source.kind), **pieces.config()}
    results = {
        "format_version": FORMAT_VERSION,
        "config": config,
        "split": split.to_dict(),
        "provenance": provenance(),
        "paper": paper_reference(),
        "runs": [{k: v for k, v in r.items() if k != "log"} for r in runs],
        **tables,
        "figures": figures,
    }
    write_json(out / "results.json", results)
    with atomic_write(out / "results.md", "w") as handle:
        handle.write(render_markdown(results) + "\n")
    return results
