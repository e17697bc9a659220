"""``scdnn benchmark``: train and score every network under one budget, then tabulate.

Benchmark folder layout::

    DIR/
      benchmark.json          what defines the benchmark (dataset, budget, training settings,
                              split seed, tolerance), the last request and its provenance
      split.json              the one train/val/test split every run uses
      runs/<model>-seed<k>/   a run folder of ``scdnn train`` (config.json, log.csv, weights...)
        eval/                 ``scdnn evaluate`` on the split's test images (metrics.json,
                              per_image.csv); on scenes also masks/<scene>.tif (the predicted
                              test scenes) and per_tile.csv (the per-tile scores, see below)
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
seeds requested may change between reruns; the results cover the models of the latest request,
with every finished run of theirs in DIR, whatever its seed: a second seed for two of the
networks can be added by one request and reported by the next, which asks for all networks and
one seed. An unfinished run of an unrequested seed is neither trained nor reported.

The dataset is described by a :class:`DatasetSpec` of one of two kinds:

- ``dataset``: one dataset folder (images/ + masks/, or the Bijie layout) split once into
  train/val/test images (:func:`scdnn.datasets.make_split`);
- ``scenes``: georeferenced scene folders (``rgb.tif`` + ``mask.tif`` [+ ``dsm.tif``], e.g.
  ``jinsha-uav/`` with ``scene-a/`` and ``scene-b/``): the ``test_scenes`` are held out whole
  and scored on every valid labelled pixel (:func:`scdnn.mapping.score.evaluate_scenes`), and
  10 % of the other scenes' valid labelled pixels are held out as validation blocks
  (:func:`scdnn.datasets.scenes.make_scene_split`); an epoch is a number of random windows
  (:data:`.budgets.SCENE_OVERRIDES`). ``use_dsm`` gives every network the terrain channels.

Per-image figures on scenes: with one test scene, per-image MIoU would be a single number. So
on scenes the test scenes are cut into square tiles (``scene_tile`` pixels, 512 by default,
from the top-left corner); every tile with at least :data:`TILE_MIN_VALID` of a full tile's
area valid and labelled is scored on its own from the run's predicted mask
(``eval/masks/<scene>.tif``) and the label raster (``eval/per_tile.csv``, the columns of
per_image.csv). Fig. 8 bins SCDnn's per-tile MIoUs, and Table 4 / Fig. 9 show the
:data:`EXAMPLE_IMAGES` tiles with the most landslide pixels among those where each class holds
at least :data:`TILE_MIN_CLASS` of the valid labelled pixels (then any tile; ties by scene,
row, column): the same tiles for every network.
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
from ..records import FORMAT_VERSION, ModelCard
from ..runs import atomic_write, provenance, read_json, write_json
from .budgets import BUDGETS, SCENE_DESCRIPTIONS, ModelSpec, budget_overrides, resolve_models
from .figures import curves_png, examples_png, fig8_png, require_matplotlib
from .tables import (FIG9_MODELS, PAPER_FIG8_COUNTS, PAPER_FIG8_TOTAL, build_tables,
                     paper_reference, render_markdown, run_scores)

__all__ = ["DatasetSpec", "ProgressEvent", "run_benchmark", "GFLOPS_SIZE", "EXAMPLE_IMAGES",
           "SCENE_TILE", "TILE_MIN_VALID", "TILE_MIN_CLASS"]

GFLOPS_SIZE = 256
EXAMPLE_IMAGES = 4
#: Scenes: default side of the square tiles scored one by one (Fig. 8) and shown (Fig. 9).
SCENE_TILE = 512
#: Scenes: a tile is scored when this share of a full tile's area is valid and labelled.
TILE_MIN_VALID = 0.1
#: Scenes: Fig. 9 prefers tiles where each class holds at least this share of the valid pixels.
TILE_MIN_CLASS = 0.1
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

    ``kind="scenes"``: a scene folder or a folder of scene folders; ``test_scenes`` (sorted)
    are held out whole for testing, validation blocks are held out of the others by
    :func:`scdnn.datasets.scenes.make_scene_split`; ``use_dsm`` adds the terrain channels.
    """

    data: str
    kind: str = "dataset"
    test_scenes: tuple[str, ...] = ()
    use_dsm: bool = False

    @classmethod
    def from_path(cls, data: str | os.PathLike, test_scenes: Sequence[str] | None = None,
                  use_dsm: bool = False) -> "DatasetSpec":
        """The spec of ``data``: ``scenes`` when it holds scene folders, else ``dataset``.

        Raises
        ------
        UserError
            A missing folder; scenes without ``test_scenes`` or naming one twice;
            ``test_scenes`` or ``use_dsm`` for an image dataset.
        """
        from ..datasets.scenes import find_scenes, is_scene_data

        path = Path(data).resolve()
        if not path.exists():
            raise UserError("dataset folder does not exist", path)
        test = [str(n) for n in (test_scenes or ())]
        if is_scene_data(path):
            if not test:
                names = ", ".join(s.name for s in find_scenes(path))
                raise UserError(f"holds scenes ({names}): name the ones to test on with "
                                "--test-scenes NAME ...; the others are trained on", path)
            if len(set(test)) != len(test):
                dup = next(n for n in test if test.count(n) > 1)
                raise UserError(f"--test-scenes names '{dup}' twice", path)
            return cls(data=str(path), kind="scenes", test_scenes=tuple(sorted(test)),
                       use_dsm=bool(use_dsm))
        if test or use_dsm:
            option = "--test-scenes" if test else "--use-dsm"
            raise UserError(f"{option} applies to scene folders (rgb.tif + mask.tif); this is "
                            "an image dataset", path)
        return cls(data=str(path))

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to continue a benchmark."""
        if self.kind == "scenes":
            return {"kind": self.kind, "data": self.data, "test_scenes": list(self.test_scenes),
                    "use_dsm": self.use_dsm}
        return {"kind": self.kind, "data": self.data}

    def open(self):
        """The dataset reader, validated (every file read once, so bad data fails early):
        a dataset reader, or a :class:`~scdnn.datasets.scenes.SceneCollection` with every
        scene opened."""
        if self.kind == "scenes":
            from ..datasets.scenes import SceneCollection

            collection = SceneCollection(self.data, use_dsm=self.use_dsm)
            unknown = [n for n in self.test_scenes if n not in collection.names]
            if unknown:
                raise UserError(f"--test-scenes: no scene '{unknown[0]}' (scenes: "
                                f"{', '.join(collection.names)})", self.data)
            if len(self.test_scenes) == len(collection.names):
                raise UserError("--test-scenes holds out every scene; nothing is left to "
                                "train on", self.data)
            for name in collection.names:
                collection.open(name)
            return collection
        from ..datasets import open_dataset

        dataset = open_dataset(self.data)
        dataset.validate()
        return dataset

    def names(self, dataset) -> list[str]:
        """The sample (or scene) names of the opened dataset."""
        if self.kind == "scenes":
            return list(dataset.names)
        return [s.name for s in dataset.samples]

    def make_split(self, dataset, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
        """The benchmark's one split, drawn with ``seed``."""
        if self.kind == "scenes":
            from ..datasets.scenes import make_scene_split

            return make_scene_split(dataset, self.test_scenes, overrides["val_fraction"],
                                    overrides["val_block"], seed)
        from ..datasets import make_split

        return make_split(self.names(dataset), test_fraction=overrides["test_fraction"],
                          val_fraction=overrides["val_fraction"], seed=seed)

    def load_split(self, path: Path, dataset) -> dict[str, Any]:
        """The split saved in DIR/split.json, checked against the data."""
        if self.kind != "scenes":
            from ..datasets import load_split

            return load_split(path, self.names(dataset))
        split = read_json(path)
        known = set(self.names(dataset))
        if not (isinstance(split, dict)
                and all(isinstance(split.get(p), list) for p in ("train", "val", "test"))
                and isinstance(split.get("val_blocks"), dict)):
            raise UserError("not a scene split (train, val, test, val_blocks)", path)
        for part in ("train", "test"):
            missing = [n for n in split[part] if n not in known]
            if missing:
                raise UserError(f"split names scene '{missing[0]}' ({part}) which is not in "
                                f"{self.data}", path)
        return split

    def train_options(self) -> dict[str, Any]:
        """TrainConfig fields every run of this data gets (part of the benchmark)."""
        if self.kind == "scenes":
            return {"test_scenes": list(self.test_scenes), "use_dsm": self.use_dsm}
        return {}

    def train_fields(self, split_path: Path) -> dict[str, Any]:
        """TrainConfig fields that point a run at this data and the benchmark's split."""
        return {"data": self.data, "split": str(split_path)}

    def eval_outputs(self, split: dict[str, Any]) -> list[str]:
        """The files of a complete eval/ folder, relative to it."""
        files = ["metrics.json", "per_image.csv"]
        if self.kind == "scenes":
            files += [f"masks/{name}.tif" for name in split["test"]]
        return files

    def evaluate(self, run_dir: Path, split_path: Path, tolerance: int, device: str) -> None:
        """Score a run's weights on the split's test images (or scenes) into run_dir/eval."""
        weights = str(run_dir / "weights.safetensors")
        if self.kind == "scenes":
            from ..mapping.score import evaluate_scenes

            evaluate_scenes(self.data, run_dir / "eval", weights=weights,
                            split=str(split_path), tolerance=tolerance, overwrite=True,
                            device=device)
            return
        from ..inference import evaluate

        evaluate(self.data, run_dir / "eval", weights=weights, split=str(split_path),
                 tolerance=tolerance, overwrite=True, device=device)


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
                  progress: Callable[[ProgressEvent], None] | None = None,
                  test_scenes: Sequence[str] | None = None, use_dsm: bool = False,
                  scene_tile: int = SCENE_TILE) -> dict[str, Any]:
    """Train every model on one split under one budget, score each, write the tables.

    Parameters
    ----------
    data : dataset folder (images/ + masks/, or the Bijie layout), or georeferenced scenes (a
        scene folder or a folder of scene folders: rgb.tif + mask.tif [+ dsm.tif])
    out : the benchmark folder (layout in the module docstring)
    models : ``"all"`` (the paper's five networks) or a list of names from
        :data:`scdnn.benchmark.budgets.ALL_MODELS`
    budget : ``smoke``, ``cpu`` or ``paper`` (:mod:`scdnn.benchmark.budgets`)
    seeds : one run per model and seed; finished runs of other seeds in ``out`` (from an
        earlier request) are reported too
    split_seed : seed of the one split all runs share
    ablations : add the rows of :data:`~scdnn.benchmark.budgets.ABLATIONS`
    overwrite : allow a non-benchmark or differently configured DIR; redo every requested run
    tolerance : boundary F1 tolerance in pixels
    device : where to score and predict (default: cuda when available, else cpu); training
        uses Lightning's ``auto`` accelerator
    workers : data-loading workers for training (default: as ``scdnn train``)
    progress : called with a :class:`ProgressEvent` before each step
    test_scenes : scenes only, required there: the scenes held out for testing (the others
        are trained on and give the validation blocks)
    use_dsm : scenes only: every network also gets the terrain channels of the scenes' DSMs
    scene_tile : scenes only: side in pixels of the tiles scored one by one for Fig. 8 and
        shown in Table 4 / Fig. 9 (module docstring); only the report depends on it

    Returns
    -------
    dict
        The content of DIR/results.json: ``config``, ``split``, ``provenance``, ``paper``,
        ``runs``, ``models``, ``table1``–``table4``, ``fig8``, ``extra`` and ``figures``
        (PNG file names relative to DIR, None for a figure not drawn).

    Raises
    ------
    UserError
        Unknown model or budget, bad seeds, unreadable data (or scenes without
        ``test_scenes``), or DIR holding something else; all of these before anything is
        written.
    """
    from ..datasets import save_split
    from ..trainers.fit import TrainConfig, env_workers

    specs = resolve_models(models, ablations)
    budget_overrides(budget)  # an unknown budget fails before the data is read
    seeds = _check_seeds(seeds)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise UserError(f"split seed must be an integer, got {split_seed!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise UserError(f"tolerance must be an integer >= 0, got {tolerance!r}")
    if isinstance(scene_tile, bool) or not isinstance(scene_tile, int) or scene_tile < 16:
        raise UserError(f"scene tile must be an integer >= 16 pixels, got {scene_tile!r}")
    require_matplotlib()
    dataset_spec = DatasetSpec.from_path(data, test_scenes, use_dsm)
    overrides = budget_overrides(budget, dataset_spec.kind)
    dataset = dataset_spec.open()
    out = Path(out)

    template = TrainConfig(data="", out="", **overrides,
                           **dataset_spec.train_options()).to_dict()
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
        split = dataset_spec.load_split(split_path, dataset)
    else:
        split = dataset_spec.make_split(dataset, overrides, split_seed)

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

    def run_config(spec: ModelSpec, seed: int, run_dir: Path) -> TrainConfig:
        return TrainConfig(out=str(run_dir), model=spec.network,
                           model_kwargs=spec.model_kwargs, seed=seed, workers=workers,
                           **dataset_spec.train_fields(split_path),
                           **dataset_spec.train_options(), **overrides)

    for index, (spec, seed) in enumerate(plan, start=1):
        name = f"{spec.name}-seed{seed}"
        run_dir = out / "runs" / name
        config = run_config(spec, seed, run_dir)
        state = "fresh" if overwrite else _run_state(run_dir, config.to_dict(), split,
                                                     dataset_spec.eval_outputs(split))

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
            dataset_spec.evaluate(run_dir, split_path, tolerance, device)
        runs.append(_collect_run(run_dir, name, spec, seed, out))

    # Finished runs of the requested networks under seeds not requested this time (an
    # earlier request's, e.g. a second seed for two networks) are reported too; they are
    # never trained or rescored here, and an unfinished or foreign one is left out.
    if not overwrite:
        for spec in specs:
            for seed, run_dir in _other_seed_runs(out / "runs", spec.name, seeds):
                config = run_config(spec, seed, run_dir)
                if _run_state(run_dir, config.to_dict(), split,
                              dataset_spec.eval_outputs(split)) == "done":
                    runs.append(_collect_run(run_dir, run_dir.name, spec, seed, out))
    reported_seeds = seeds + sorted({r["seed"] for r in runs} - set(seeds))

    notify(ProgressEvent(len(plan), len(plan), "report"))
    results = _report(out, dataset, dataset_spec, specs, reported_seeds, runs, split, identity,
                      budget, ablations, device, tolerance, scene_tile)
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


def _other_seed_runs(runs_dir: Path, model: str, seeds: Sequence[int]
                    ) -> list[tuple[int, Path]]:
    """``(seed, folder)`` of ``runs_dir/<model>-seed<k>/`` for every k not in ``seeds``."""
    found = []
    prefix = f"{model}-seed"
    for path in runs_dir.glob(f"{prefix}*"):
        tail = path.name[len(prefix):]
        if path.is_dir() and tail.isdigit() and int(tail) not in seeds:
            found.append((int(tail), path))
    return sorted(found)


def _run_state(run_dir: Path, expected: dict[str, Any], split: dict[str, Any],
               eval_outputs: Sequence[str] = ("metrics.json", "per_image.csv")) -> str:
    """``done``, ``evaluate``, ``resume`` or ``fresh`` for one run folder (``eval_outputs``:
    the files of a complete eval/, relative to it)."""
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
                           for p in ("train", "val", "test")) \
            or _normal(saved_split.get("val_blocks")) != _normal(split.get("val_blocks")):
        return "fresh"
    weights = run_dir / "weights.safetensors"
    if weights.is_file():
        files = [run_dir / "eval" / name for name in eval_outputs]
        if (all(f.is_file() for f in files)
                and all(f.stat().st_mtime >= weights.stat().st_mtime for f in files)):
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
    card = ModelCard.from_dict(read_json(run_dir / "model.json"), run_dir / "model.json")
    log = _read_log(run_dir)
    epochs = max((r["epoch"] for r in log), default=0)
    seconds = float(sum(r.get("seconds") or 0.0 for r in log))
    return {"name": name, "model": spec.name, "network": spec.network,
            "model_kwargs": spec.model_kwargs, "seed": seed,
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

    columns = _fig9_columns(specs)
    first = {r["model"]: r for r in runs if r["seed"] == seed}
    per_image = {m: {row["name"]: row for row in _read_csv(out / first[m]["dir"] / "eval"
                                                           / "per_image.csv")}
                 for m in columns}
    items = {name: dataset[index[name]] for name in chosen}
    preds: dict[str, dict[str, Any]] = {name: {} for name in chosen}
    for m in columns:
        model, card = load_model(out / first[m]["dir"] / "weights.safetensors")
        model.to(device)
        normalization = card.normalization
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


def _fig9_columns(specs: Sequence[ModelSpec]) -> list[str]:
    run_names = [s.name for s in specs]
    return [m for m in FIG9_MODELS if m in run_names] or run_names


def _scene_tiles(collection, split: dict[str, Any], tile: int) -> list[dict[str, Any]]:
    """The tiles of the test scenes that are scored: ``tile`` x ``tile`` from the top-left
    corner (smaller at the right and bottom edges), kept when at least
    :data:`TILE_MIN_VALID` of ``tile * tile`` pixels are valid and labelled. Each is
    ``{"name": "scene:row,col", "scene", "row", "col", "height", "width", "valid",
    "landslide"}`` (pixel counts)."""
    from rasterio.windows import Window

    from ..datasets.io import IGNORE_INDEX

    tiles = []
    for name in split["test"]:
        scene = collection.open(name)
        for row in range(0, scene.height, tile):
            for col in range(0, scene.width, tile):
                height, width = min(tile, scene.height - row), min(tile, scene.width - col)
                label = _tile_label(scene, Window(col, row, width, height))
                valid = int((label != IGNORE_INDEX).sum())
                if valid >= TILE_MIN_VALID * tile * tile:
                    tiles.append({"name": f"{name}:{row},{col}", "scene": name, "row": row,
                                  "col": col, "height": height, "width": width,
                                  "valid": valid, "landslide": int((label == 1).sum())})
    return tiles


def _tile_label(scene, window) -> Any:
    """The label inside ``window``: 0, 1, or 255 (not labelled, or no valid data)."""
    from ..datasets.io import IGNORE_INDEX

    label = scene.read_label(window)
    label[~scene.scene.valid_mask(window)] = IGNORE_INDEX
    return label


def _score_tiles(collection, tiles: Sequence[dict[str, Any]], run_dir: Path,
                 tolerance: int) -> dict[str, Any]:
    """Score one run tile by tile from its eval/masks/<scene>.tif; writes eval/per_tile.csv.

    A tile's row has the columns of per_image.csv, computed as
    :meth:`scdnn.metrics.Evaluator.update` computes an image's (without its torchmetrics
    bookkeeping, which costs more than the scores on 512 px tiles).

    Returns ``{"rows": {tile name: row}, "bins": Fig. 8 bins, "tiles": n}``.
    """
    import io

    import numpy as np
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    from ..metrics import (CSV_COLUMNS, boundary_counts, boundary_f1_from_counts, miou_bins,
                           per_image_scores)

    rows: list[dict[str, Any]] = []
    for scene_name in dict.fromkeys(t["scene"] for t in tiles):
        scene = collection.open(scene_name)
        path = run_dir / "eval" / "masks" / f"{scene_name}.tif"
        try:
            with rasterio.open(path) as src:
                for t in (t for t in tiles if t["scene"] == scene_name):
                    window = Window(t["col"], t["row"], t["width"], t["height"])
                    pred = (src.read(1, window=window) == 1).astype(np.int64)
                    target = _tile_label(scene, window).astype(np.int64)
                    scores = per_image_scores(pred, target)
                    counts = boundary_counts(pred, target, tolerance)
                    rows.append({"name": t["name"], "miou": scores["miou"],
                                 "landslide_pa": scores["landslide_pa"],
                                 "background_pa": scores["background_pa"],
                                 "landslide_iou": scores["landslide_iou"],
                                 "boundary_f1": boundary_f1_from_counts(counts)["f1"],
                                 "pixels": int((target != 255).sum())})
        except RasterioError as exc:
            raise UserError(f"cannot read the predicted mask: {exc}", path) from None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else
                         f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]
                         for k in CSV_COLUMNS})
    with atomic_write(run_dir / "eval" / "per_tile.csv", "w") as handle:
        handle.write(buffer.getvalue())
    return {"rows": {row["name"]: row for row in rows},
            "bins": miou_bins(row["miou"] for row in rows), "tiles": len(rows)}


def _scene_examples(collection, tiles: Sequence[dict[str, Any]], specs: Sequence[ModelSpec],
                    runs: Sequence[dict[str, Any]], seed: int, out: Path,
                    per_tile: dict[str, dict[str, Any]]
                    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Table 4 / Fig. 9 on scenes: :data:`EXAMPLE_IMAGES` tiles (rule in the module
    docstring), each model's per-tile scores and its predicted mask cut from
    eval/masks/<scene>.tif."""
    import rasterio
    from rasterio.windows import Window

    def balanced(t: dict[str, Any]) -> bool:
        return min(t["landslide"], t["valid"] - t["landslide"]) >= TILE_MIN_CLASS * t["valid"]

    chosen = sorted(tiles, key=lambda t: (not balanced(t), -t["landslide"], t["scene"],
                                          t["row"], t["col"]))[:EXAMPLE_IMAGES]
    columns = _fig9_columns(specs)
    first = {r["model"]: r for r in runs if r["seed"] == seed}
    labels = {s.name: s.label for s in specs}
    table = {"seed": seed, "models": columns, "images": []}
    drawn = []
    for t in chosen:
        window = Window(t["col"], t["row"], t["width"], t["height"])
        image, truth = collection.open(t["scene"]).read(window)
        scores, preds = {}, {}
        for m in columns:
            row = per_tile[first[m]["name"]]["rows"].get(t["name"], {})
            scores[m] = {k: row.get(k) for k in ("landslide_pa", "background_pa", "miou")}
            with rasterio.open(out / first[m]["dir"] / "eval" / "masks" / f"{t['scene']}.tif") \
                    as src:
                preds[labels[m]] = (src.read(1, window=window) == 1, scores[m]["miou"])
        table["images"].append({"name": t["name"], "landslide_share": t["landslide"] / t["valid"],
                                "scores": scores})
        drawn.append({"name": t["name"], "image": image, "truth": truth, "preds": preds})
    return table, drawn, [labels[m] for m in columns]


def _report(out: Path, dataset, dataset_spec: DatasetSpec, specs: Sequence[ModelSpec],
            seeds: list[int], runs: list[dict[str, Any]], split: dict[str, Any],
            identity: dict[str, Any], budget: str, ablations: bool, device: str,
            tolerance: int = 2, scene_tile: int = SCENE_TILE) -> dict[str, Any]:
    first_seed = seeds[0]
    complexity = _complexity(specs, runs)
    scenes = dataset_spec.kind == "scenes"
    fig8_source = None
    if scenes:
        tiles = _scene_tiles(dataset, split, scene_tile)
        per_tile = {r["name"]: _score_tiles(dataset, tiles, out / r["dir"], tolerance)
                    for r in runs}
        examples, drawn, columns = _scene_examples(dataset, tiles, specs, runs, first_seed,
                                                   out, per_tile)
        fig8_source = {name: {"bins": p["bins"], "count": p["tiles"], "unit": "tiles",
                              "tile": scene_tile} for name, p in per_tile.items()}
    else:
        examples, drawn, columns = _examples(dataset, split, specs, runs, first_seed, out,
                                             device)
    tables = build_tables(specs, runs, complexity, examples, first_seed, fig8_source)

    figures: dict[str, str | None] = dict.fromkeys(FIGURES)
    if tables["fig8"] is not None:
        fig8 = tables["fig8"]
        what = f"tiles of {scene_tile} px" if scenes else "images"
        fig8_png(out / FIGURES["fig8"], fig8["bins"],
                 f"SCDnn ({fig8['run']}, {fig8['images']} {what})", PAPER_FIG8_COUNTS,
                 PAPER_FIG8_TOTAL, unit="test tiles" if scenes else "test images")
        figures["fig8"] = FIGURES["fig8"]
    if drawn:
        examples_png(out / FIGURES["fig9"], drawn, columns,
                     what=f"Test tiles ({scene_tile} px)" if scenes else "Test images")
        figures["fig9"] = FIGURES["fig9"]
    curves_png(out / FIGURES["curves"], {r["name"]: r["log"] for r in runs},
               {r["name"]: r["model"] for r in runs})
    figures["curves"] = FIGURES["curves"]

    config = {**identity, "budget_description": BUDGETS[budget].description,
              "models": [s.name for s in specs], "seeds": seeds, "ablations": ablations,
              "device": device}
    if scenes:
        config.update({"scene_description": SCENE_DESCRIPTIONS[budget],
                       "scene_tile": scene_tile, "tile_min_valid": TILE_MIN_VALID,
                       "tile_min_class": TILE_MIN_CLASS})
    results = {
        "format_version": FORMAT_VERSION,
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
