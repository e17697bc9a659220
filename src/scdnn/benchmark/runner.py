"""``scdnn benchmark``: train and score every network under one budget, then tabulate.

Benchmark folder layout::

    DIR/
      benchmark.json          what defines the benchmark (dataset, budget, training settings,
                              split seed, tolerance), the last request and its provenance
      split.json              the one train/val/test split every run uses
      runs/<model>-seed<k>/   a run folder of ``scdnn train`` (config.json, log.csv, weights...)
        eval/                 ``scdnn evaluate`` on the split's test images (metrics.json,
                              per_image.csv)
      results.md, results.json, fig8_miou_bins.png, fig9_examples.png, training_curves.png

What is held fixed: one split for the whole benchmark (drawn with ``split_seed``), the same
augmentation, optimizer and budget for every network (:mod:`.budgets`). Seeds vary only the
weight initialisation and the sampling.

Kill and rerun: rerunning with the same DIR and the same configuration carries on. A run whose
eval/ is complete (and newer than its weights) is skipped; one with weights but no complete
eval/ is only scored; one with ``checkpoints/last.ckpt`` but no weights is resumed
(``train(..., resume=True)``); any other (or one whose config.json or split.json is not this
benchmark's) is trained afresh, its folder replaced. A different configuration in DIR is
refused unless ``overwrite``, which redoes every requested run from scratch. The models and
seeds requested may change between reruns; the results cover those of the latest request.

The dataset is described by a :class:`DatasetSpec`: today one dataset folder split once. A
later kind (a train scene and a test scene) would supply its own names, split and training
fields through the same three methods.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import UserError
from ..runs import atomic_write, provenance, read_json, write_json
from .budgets import BUDGETS, ModelSpec, budget_overrides, resolve_models
from .figures import curves_png, examples_png, fig8_png, require_matplotlib
from .tables import (FIG9_MODELS, PAPER_FIG8_COUNTS, PAPER_FIG8_TOTAL, build_tables,
                     paper_reference, render_markdown, run_scores)

__all__ = ["DatasetSpec", "ProgressEvent", "run_benchmark", "GFLOPS_SIZE", "EXAMPLE_IMAGES"]

GFLOPS_SIZE = 256
EXAMPLE_IMAGES = 4
FIGURES = {"fig8": "fig8_miou_bins.png", "fig9": "fig9_examples.png",
           "curves": "training_curves.png"}
#: TrainConfig fields that differ per run (or per machine) and are not part of the benchmark.
_PER_RUN = ("data", "out", "model", "seed", "model_kwargs", "split", "workers")
#: Fields ignored when checking that an existing run folder belongs to this benchmark.
_RUN_IGNORED = ("out", "split", "workers")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the networks are trained and scored on.

    ``kind="dataset"``: one dataset folder (images/ + masks/, or the Bijie layout), split once
    into train/val/test by :func:`scdnn.datasets.make_split`.
    """

    data: str
    kind: str = "dataset"

    @classmethod
    def from_path(cls, data: str | os.PathLike) -> "DatasetSpec":
        return cls(data=str(Path(data).resolve()))

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to continue a benchmark."""
        return {"kind": self.kind, "data": self.data}

    def open(self):
        """The dataset reader, validated (every file read once, so bad data fails early)."""
        from ..datasets import open_dataset

        dataset = open_dataset(self.data)
        dataset.validate()
        return dataset

    def train_fields(self, split_path: Path) -> dict[str, Any]:
        """TrainConfig fields that point a run at this data and the benchmark's split."""
        return {"data": self.data, "split": str(split_path)}


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """One step of a benchmark, for a progress display (the library itself prints nothing).

    ``action`` is one of ``train``, ``resume``, ``evaluate``, ``skip`` (finished earlier) and
    ``report`` (writing tables and figures; ``run`` and ``model`` are empty then).
    """

    index: int
    total: int
    action: str
    run: str = ""
    model: str = ""
    seed: int | None = None

    @property
    def message(self) -> str:
        what = f"{self.model} (seed {self.seed})"
        text = {"train": f"training {what}",
                "resume": f"resuming {what} from its last checkpoint",
                "evaluate": f"evaluating {what} on the test images",
                "skip": f"{what} is finished, skipping",
                "report": "writing tables and figures"}.get(self.action, self.action)
        return f"[{self.index}/{self.total}] {text}"


def run_benchmark(data: str | os.PathLike, out: str | os.PathLike,
                  models: str | Sequence[str] = "all", budget: str = "cpu",
                  seeds: Sequence[int] = (0,), split_seed: int = 0, ablations: bool = False,
                  overwrite: bool = False, tolerance: int = 2, device: str | None = None,
                  workers: int | None = None,
                  progress: Callable[[ProgressEvent], None] | None = None) -> dict[str, Any]:
    """Train every model on one split under one budget, score each, write the tables.

    Parameters
    ----------
    data : dataset folder (images/ + masks/, or the Bijie layout)
    out : the benchmark folder (layout in the module docstring)
    models : ``"all"`` (the paper's five networks) or a list of names from
        :data:`scdnn.benchmark.budgets.ALL_MODELS`
    budget : ``smoke``, ``cpu`` or ``paper`` (:mod:`scdnn.benchmark.budgets`)
    seeds : one run per model and seed
    split_seed : seed of the one split all runs share
    ablations : add the rows ``scdnn-aspp`` and ``scdnn-noskip``
    overwrite : allow a non-benchmark or differently configured DIR; redo every requested run
    tolerance : boundary F1 tolerance in pixels
    device : where to score and predict (default: cuda when available, else cpu); training
        uses Lightning's ``auto`` accelerator
    workers : data-loading workers for training (default: as ``scdnn train``)
    progress : called with a :class:`ProgressEvent` before each step

    Returns
    -------
    dict
        The content of DIR/results.json: ``config``, ``split``, ``provenance``, ``paper``,
        ``runs``, ``models``, ``table1``–``table4``, ``fig8``, ``extra`` and ``figures``
        (PNG file names relative to DIR, None for a figure not drawn).

    Raises
    ------
    UserError
        Unknown model or budget, bad seeds, unreadable data, or DIR holding something else;
        all of these before anything is written.
    """
    from ..datasets import load_split, make_split, save_split
    from ..trainers.fit import TrainConfig, env_workers

    specs = resolve_models(models, ablations)
    overrides = budget_overrides(budget)
    seeds = _check_seeds(seeds)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise UserError(f"split seed must be an integer, got {split_seed!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise UserError(f"tolerance must be an integer >= 0, got {tolerance!r}")
    require_matplotlib()
    dataset_spec = DatasetSpec.from_path(data)
    dataset = dataset_spec.open()
    names = [s.name for s in dataset.samples]
    out = Path(out)

    template = TrainConfig(data="", out="", **overrides).to_dict()
    identity = {
        "dataset": dataset_spec.identity(),
        "budget": budget,
        "train": {k: v for k, v in template.items() if k not in _PER_RUN},
        "split_seed": split_seed,
        "tolerance": tolerance,
    }
    identity = json.loads(json.dumps(identity))
    resuming = _check_out(out, identity, overwrite)
    split_path = out / "split.json"
    if resuming and split_path.is_file():
        split = load_split(split_path, names)
    else:
        split = make_split(names, test_fraction=overrides["test_fraction"],
                           val_fraction=overrides["val_fraction"], seed=split_seed)

    # ---- from here on, files are written
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the benchmark folder: {exc.strerror}", out) from None
    if not (resuming and split_path.is_file()):
        save_split(split, split_path)
    request = {"models": [s.name for s in specs], "seeds": seeds, "ablations": ablations}
    write_json(out / "benchmark.json", {"benchmark": identity, "request": request,
                                        "provenance": provenance()})

    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = env_workers() if workers is None else workers
    notify = progress or (lambda event: None)
    plan = [(spec, seed) for seed in seeds for spec in specs]
    runs: list[dict[str, Any]] = []
    for index, (spec, seed) in enumerate(plan, start=1):
        name = f"{spec.name}-seed{seed}"
        run_dir = out / "runs" / name
        config = TrainConfig(out=str(run_dir), model=spec.network,
                             model_kwargs=spec.model_kwargs, seed=seed, workers=workers,
                             **dataset_spec.train_fields(split_path), **overrides)
        state = "fresh" if overwrite else _run_state(run_dir, config.to_dict(), split)

        def step(action: str) -> None:
            notify(ProgressEvent(index, len(plan), action, name, spec.name, seed))

        if state == "done":
            step("skip")
        else:
            if state == "fresh":
                step("train")
                _train_fresh(config, run_dir)
            elif state == "resume":
                step("resume")
                _train_resume(config)
            step("evaluate")
            from ..inference import evaluate

            evaluate(dataset_spec.data, run_dir / "eval",
                     weights=str(run_dir / "weights.safetensors"), split=str(split_path),
                     tolerance=tolerance, overwrite=True, device=device)
        runs.append(_collect_run(run_dir, name, spec, seed, out))

    notify(ProgressEvent(len(plan), len(plan), "report"))
    results = _report(out, dataset, dataset_spec, specs, seeds, runs, split, identity,
                      budget, ablations, device)
    return results


# ----------------------------------------------------------------------------- checks

def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        seeds = [seeds]
    seeds = list(seeds)
    if not seeds:
        raise UserError("no seed given (--seeds)")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise UserError(f"seeds must be integers >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        dup = next(s for s in seeds if seeds.count(s) > 1)
        raise UserError(f"seed {dup} is given twice (--seeds)")
    return seeds


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """'key: old -> new' for the leaves where two JSON objects differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    if old != new:
        return [f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"]
    return []


def _check_out(out: Path, identity: dict[str, Any], overwrite: bool) -> bool:
    """Whether DIR holds this very benchmark (to be continued); refuse anything else.

    Nothing is written here.
    """
    if out.exists() and not out.is_dir():
        raise UserError("output path exists and is not a folder", out)
    marker = out / "benchmark.json"
    if marker.is_file() and not overwrite:
        saved = read_json(marker)
        old = saved.get("benchmark") if isinstance(saved, dict) else None
        if old == identity:
            return True
        diff = _differences(old, identity) if isinstance(old, dict) else ["(unreadable)"]
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise UserError(f"holds a benchmark with another configuration ({shown}); use a new "
                        "--out, the same options, or --overwrite to redo it", marker)
    if out.is_dir() and any(out.iterdir()) and not overwrite and not marker.is_file():
        raise UserError("output folder exists, is not empty and holds no benchmark.json "
                        "(use a new folder or --overwrite)", out)
    return False


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _run_state(run_dir: Path, expected: dict[str, Any], split: dict[str, Any]) -> str:
    """``done``, ``evaluate``, ``resume`` or ``fresh`` for one run folder."""
    config_file, split_file = run_dir / "config.json", run_dir / "split.json"
    if not (config_file.is_file() and split_file.is_file()):
        return "fresh"
    try:
        saved = json.loads(config_file.read_text())["config"]
        saved_split = json.loads(split_file.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return "fresh"
    want = {k: v for k, v in _normal(expected).items() if k not in _RUN_IGNORED}
    have = {k: v for k, v in saved.items() if k not in _RUN_IGNORED}
    if want != have or any(sorted(saved_split.get(p, [])) != sorted(split.get(p, []))
                           for p in ("train", "val", "test")):
        return "fresh"
    weights = run_dir / "weights.safetensors"
    if weights.is_file():
        metrics, per_image = run_dir / "eval" / "metrics.json", run_dir / "eval" / "per_image.csv"
        if (metrics.is_file() and per_image.is_file()
                and metrics.stat().st_mtime >= weights.stat().st_mtime):
            return "done"
        return "evaluate"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return "resume"
    return "fresh"


def _train_resume(config) -> None:
    from ..trainers.fit import train

    with warnings.catch_warnings():  # resuming into its own checkpoints/ is the point
        warnings.filterwarnings("ignore", ".*exists and is not empty.*")
        train(config, resume=True)


def _train_fresh(config, run_dir: Path) -> None:
    from ..trainers.fit import train

    if run_dir.exists():  # a partial or stale run of this benchmark: replaced
        shutil.rmtree(run_dir)
    train(config)


# ----------------------------------------------------------------------------- reading runs

def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _read_log(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for row in _read_csv(run_dir / "log.csv"):
        rows.append({"epoch": int(float(row["epoch"])),
                     **{k: _float(v) for k, v in row.items() if k != "epoch"}})
    return rows


def _collect_run(run_dir: Path, name: str, spec: ModelSpec, seed: int, out: Path
                 ) -> dict[str, Any]:
    metrics = read_json(run_dir / "eval" / "metrics.json")
    metrics = {k: v for k, v in metrics.items() if k not in ("provenance", "source")}
    card = read_json(run_dir / "model.json")
    log = _read_log(run_dir)
    epochs = max((r["epoch"] for r in log), default=0)
    seconds = float(sum(r.get("seconds") or 0.0 for r in log))
    return {"name": name, "model": spec.name, "network": spec.network,
            "model_kwargs": spec.model_kwargs, "seed": seed,
            "dir": str(run_dir.relative_to(out)), "in_channels": int(card["in_channels"]),
            "epochs": epochs, "train_seconds": round(seconds, 2),
            "best_epoch": card.get("best_epoch"), "best_val_miou": card.get("best_val_miou"),
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


def _examples(dataset, split: dict[str, Any], specs: Sequence[ModelSpec],
              runs: Sequence[dict[str, Any]], seed: int, out: Path, device: str
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Table 4 / Fig. 9: the test images with the largest landslide share (ties by name), each
    model's scores (from its eval/per_image.csv) and predictions (for the figure).

    The model columns are the paper's Fig. 9 networks that were run (DeepLab v3+ ResNet50,
    DeepLab v3+ MobileNetV2, SCDnn); when none of them was, every model row.
    """
    import numpy as np

    from ..datasets import Normalization
    from ..inference import landslide_probability
    from ..weights import load_model

    names = [s.name for s in dataset.samples]
    index = {n: i for i, n in enumerate(names)}
    shares = []
    for name in split["test"]:
        mask = np.asarray(dataset[index[name]]["mask"])
        valid = int((mask != 255).sum())
        shares.append((float((mask == 1).sum()) / valid if valid else 0.0, name))
    chosen = [name for _, name in sorted(shares, key=lambda t: (-t[0], t[1]))[:EXAMPLE_IMAGES]]
    share_of = {name: share for share, name in shares}

    run_names = [s.name for s in specs]
    columns = [m for m in FIG9_MODELS if m in run_names] or run_names
    first = {r["model"]: r for r in runs if r["seed"] == seed}
    per_image = {m: {row["name"]: row for row in _read_csv(out / first[m]["dir"] / "eval"
                                                           / "per_image.csv")}
                 for m in columns}
    items = {name: dataset[index[name]] for name in chosen}
    preds: dict[str, dict[str, Any]] = {name: {} for name in chosen}
    for m in columns:
        model, card = load_model(out / first[m]["dir"] / "weights.safetensors")
        model.to(device)
        normalization = Normalization.from_dict(card["normalization"])
        for name in chosen:
            prob = landslide_probability(model, items[name]["image"], normalization, device)
            preds[name][m] = prob >= 0.5
        del model

    table = {"seed": seed, "models": columns, "images": []}
    drawn = []
    labels = {s.name: s.label for s in specs}
    for name in chosen:
        scores = {}
        for m in columns:
            row = per_image[m].get(name, {})
            scores[m] = {k: _float(row.get(k)) for k in ("landslide_pa", "background_pa", "miou")}
        table["images"].append({"name": name, "landslide_share": share_of[name],
                                "scores": scores})
        drawn.append({"name": name, "image": items[name]["image"], "truth": items[name]["mask"],
                      "preds": {labels[m]: (preds[name][m], scores[m]["miou"])
                                for m in columns}})
    return table, drawn, [labels[m] for m in columns]


def _report(out: Path, dataset, dataset_spec: DatasetSpec, specs: Sequence[ModelSpec],
            seeds: list[int], runs: list[dict[str, Any]], split: dict[str, Any],
            identity: dict[str, Any], budget: str, ablations: bool, device: str
            ) -> dict[str, Any]:
    first_seed = seeds[0]
    complexity = _complexity(specs, runs)
    examples, drawn, columns = _examples(dataset, split, specs, runs, first_seed, out, device)
    tables = build_tables(specs, runs, complexity, examples, first_seed)

    figures: dict[str, str | None] = dict.fromkeys(FIGURES)
    if tables["fig8"] is not None:
        fig8 = tables["fig8"]
        fig8_png(out / FIGURES["fig8"], fig8["bins"],
                 f"SCDnn ({fig8['run']}, {fig8['images']} images)", PAPER_FIG8_COUNTS,
                 PAPER_FIG8_TOTAL)
        figures["fig8"] = FIGURES["fig8"]
    if drawn:
        examples_png(out / FIGURES["fig9"], drawn, columns)
        figures["fig9"] = FIGURES["fig9"]
    curves_png(out / FIGURES["curves"], {r["name"]: r["log"] for r in runs},
               {r["name"]: r["model"] for r in runs})
    figures["curves"] = FIGURES["curves"]

    config = {**identity, "budget_description": BUDGETS[budget].description,
              "models": [s.name for s in specs], "seeds": seeds, "ablations": ablations,
              "device": device}
    results = {
        "config": config,
        "split": split,
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
