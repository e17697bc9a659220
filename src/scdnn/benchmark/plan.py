"""What a benchmark is, and how far a benchmark folder has got: configuration, identity,
the out-folder check, run states, seeds.

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

The data is a :class:`scdnn.datasets.source.DataSource` of one of two kinds:

- ``dataset``: one dataset folder (images/ + masks/, or the Bijie layout) split once into
  train/val/test images (:func:`scdnn.datasets.make_split`);
- ``scenes``: georeferenced scene folders (``rgb.tif`` + ``mask.tif`` [+ ``dsm.tif``], e.g.
  ``jinsha-uav/`` with ``scene-a/`` and ``scene-b/``): the ``test_scenes`` are held out whole
  and scored on every valid labelled pixel (:func:`scdnn.evaluation.evaluate`), and 10 % of
  the other scenes' valid labelled pixels are held out as validation blocks
  (:func:`scdnn.datasets.scenes.make_scene_split`); an epoch is a number of random windows
  (:data:`.budgets.SCENE_OVERRIDES`). ``use_dsm`` gives every network the terrain channels.

Per-image figures on scenes: with one test scene, per-image MIoU would be a single number. So
on scenes the test scenes are cut into square tiles (``scene_tile`` pixels, 512 by default,
from the top-left corner); every tile with at least :data:`scdnn.metrics.TILE_MIN_VALID` of a
full tile's area valid and labelled is scored on its own from the run's predicted mask
(``eval/masks/<scene>.tif``) and the label raster (``eval/per_tile.csv``, the columns of
per_image.csv). Fig. 8 bins SCDnn's per-tile MIoUs, and Table 4 / Fig. 9 show the
:data:`.results.EXAMPLE_IMAGES` tiles with the most landslide pixels among those where each
class holds at least :data:`scdnn.datasets.pieces.TILE_MIN_CLASS` of the valid labelled pixels
(then any tile; ties by scene, row, column): the same tiles for every network
(:mod:`scdnn.datasets.pieces`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from ..datasets.source import SCENE_TILE
from ..errors import InputFileError, InvalidValueError, param
from ..records import Split
from .budgets import ModelSpec, resolve_models

__all__ = ["BenchmarkConfig", "SCENE_TILE", "benchmark_identity", "check_out", "run_state",
           "other_seed_runs", "check_seeds", "RUN_STATES"]

#: TrainConfig fields that differ per run (or per machine) and are not part of the benchmark.
PER_RUN = ("data", "out", "model", "seed", "model_kwargs", "split", "workers")
#: Fields ignored when checking that an existing run folder belongs to this benchmark.
RUN_IGNORED = ("out", "split", "workers")
#: What :func:`run_state` finds a run folder in, from most to least finished.
RUN_STATES = ("done", "evaluate", "resume", "fresh")


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What a benchmark compares and how it runs; every value is checked on creation.

    Attributes
    ----------
    models : ``"all"`` (the paper's five networks) or names from
        :data:`scdnn.benchmark.budgets.ALL_MODELS`
    budget : ``smoke``, ``cpu`` or ``paper`` (:mod:`scdnn.benchmark.budgets`)
    seeds : one run per model and seed; finished runs of other seeds in the folder (from an
        earlier request) are reported too
    split_seed : seed of the one split all runs share
    ablations : add the rows of :data:`~scdnn.benchmark.budgets.ABLATIONS`
    tolerance : boundary F1 tolerance in pixels
    test_scenes : scenes only, required there: the scenes held out for testing (the others
        are trained on and give the validation blocks)
    use_dsm : scenes only: every network also gets the terrain channels of the scenes' DSMs
    scene_tile : scenes only: side in pixels of the tiles scored one by one for Fig. 8 and
        shown in Table 4 / Fig. 9; only the report depends on it
    overwrite : allow a non-benchmark or differently configured folder; redo every requested
        run
    device : where to score and predict (None: cuda when available, else cpu); training uses
        Lightning's ``auto`` accelerator
    recipe : the training recipe of every run, ``paper`` (the paper's comparison) or
        ``default``, or either with parts changed (``default:loss=ce``;
        :class:`scdnn.trainers.recipes.Recipe`), kept in its shortest form
    workers : data-loading workers for training (None: as ``scdnn train``)

    Raises
    ------
    ScdnnError
        Unknown model or budget, bad seeds, split seed, tolerance or tile size.
    """

    models: str | tuple[str, ...] = "all"
    budget: str = "cpu"
    seeds: tuple[int, ...] = (0,)
    split_seed: int = 0
    ablations: bool = False
    tolerance: int = 2
    test_scenes: tuple[str, ...] | None = None
    use_dsm: bool = False
    scene_tile: int = SCENE_TILE
    overwrite: bool = False
    device: str | None = None
    workers: int | None = None
    recipe: str = "paper"

    def __post_init__(self) -> None:
        from .budgets import budget_overrides

        set_ = object.__setattr__  # frozen: normalise the sequences once
        set_(self, "models", self.models if isinstance(self.models, str)
             else tuple(self.models))
        resolve_models(self._model_names(), self.ablations)  # an unknown model fails here
        budget_overrides(self.budget)  # an unknown budget fails before the data is read
        from ..trainers.recipes import Recipe

        set_(self, "recipe", Recipe.parse(self.recipe).text)  # refused here if unknown
        set_(self, "seeds", tuple(check_seeds(self.seeds)))
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int):
            raise InvalidValueError(f"split seed must be an integer, got {self.split_seed!r}")
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int) \
                or self.tolerance < 0:
            raise InvalidValueError(f"tolerance must be an integer >= 0, got {self.tolerance!r}")
        if isinstance(self.scene_tile, bool) or not isinstance(self.scene_tile, int) \
                or self.scene_tile < 16:
            raise InvalidValueError(f"scene tile must be an integer >= 16 pixels, got "
                                    f"{self.scene_tile!r}")
        if self.test_scenes is not None:
            set_(self, "test_scenes", tuple(str(n) for n in self.test_scenes))

    def _model_names(self) -> str | list[str]:
        return self.models if isinstance(self.models, str) else list(self.models)

    @property
    def specs(self) -> list[ModelSpec]:
        """The model rows, in table order."""
        return resolve_models(self._model_names(), self.ablations)

    def request(self) -> dict[str, Any]:
        """What benchmark.json records of the latest request."""
        return {"models": [s.name for s in self.specs], "seeds": list(self.seeds),
                "ablations": self.ablations, "recipe": self.recipe}


def check_seeds(seeds: int | Sequence[int]) -> list[int]:
    """The seeds as a list: at least one, integers >= 0, none twice (ScdnnError)."""
    if isinstance(seeds, int):
        seeds = [seeds]
    seeds = list(seeds)
    if not seeds:
        raise InvalidValueError(f"no seed given ({param('seeds')})")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise InvalidValueError(f"seeds must be integers >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        dup = next(s for s in seeds if seeds.count(s) > 1)
        raise InvalidValueError(f"seed {dup} is given twice ({param('seeds')})")
    return seeds


#: TrainConfig fields added after benchmarks were first written, with the value a config
#: without them had: such a config is read as having these.
ADDED_FIELDS: dict[str, Any] = {"recipe": "paper", "max_steps": None, "encoder_weights": None,
                                "num_nodes": 1}


def upgrade_train(config: dict[str, Any]) -> dict[str, Any]:
    """A TrainConfig dict with the :data:`ADDED_FIELDS` it lacks filled in."""
    return {**ADDED_FIELDS, **config}


def _old_cpu_budget(old: dict[str, Any]) -> bool:
    """Whether a saved identity is of the ``cpu`` budget as it was before it counted
    optimiser steps (20 minutes of wall clock per network)."""
    train = old.get("train")
    return (old.get("budget") == "cpu" and isinstance(train, dict)
            and train.get("max_minutes") is not None and train.get("max_steps") is None)


def normal(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))


def benchmark_identity(dataset: dict[str, Any], budget: str, train: dict[str, Any],
                       split_seed: int, tolerance: int) -> dict[str, Any]:
    """What must match for a rerun to continue a benchmark: the data's identity
    (:meth:`~scdnn.datasets.source.DataSource.identity`), the budget, the TrainConfig fields
    every run shares (``train``: a TrainConfig as a dict; the per-run fields are dropped),
    the split seed and the tolerance, as JSON reads them back."""
    return normal({
        "dataset": dataset,
        "budget": budget,
        "train": {k: v for k, v in train.items() if k not in PER_RUN},
        "split_seed": split_seed,
        "tolerance": tolerance,
    })


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


def check_out(out: Path, identity: dict[str, Any], overwrite: bool) -> bool:
    """Whether DIR holds this very benchmark (to be continued); refuse anything else.

    Nothing is written here.
    """
    from ..runs import read_json

    if out.exists() and not out.is_dir():
        raise InputFileError("output path exists and is not a folder", out)
    marker = out / "benchmark.json"
    if marker.is_file() and not overwrite:
        saved = read_json(marker)
        old = saved.get("benchmark") if isinstance(saved, dict) else None
        if isinstance(old, dict) and isinstance(old.get("train"), dict):
            old = {**old, "train": upgrade_train(old["train"])}
        if old == identity:
            return True
        if isinstance(old, dict) and identity.get("budget") == "cpu" and _old_cpu_budget(old):
            raise InvalidValueError(f"was made under the old cpu budget (20 minutes of wall "
                                    f"clock per network); the cpu budget is now "
                                    f"{identity['train'].get('max_steps')} optimiser steps, "
                                    f"and runs of the two are not mixed: use a new "
                                    f"{param('out')}, or {param('overwrite')} to redo it",
                                    marker)
        diff = _differences(old, identity) if isinstance(old, dict) else ["(unreadable)"]
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise InvalidValueError(f"holds a benchmark with another configuration ({shown}); use "
                                f"a new {param('out')}, the same options, or "
                                f"{param('overwrite')} to redo it",
                                marker)
    if out.is_dir() and any(out.iterdir()) and not overwrite and not marker.is_file():
        raise InputFileError("output folder exists, is not empty and holds no benchmark.json "
                             f"(use a new folder or {param('overwrite')})", out)
    return False


def other_seed_runs(runs_dir: Path, model: str, seeds: Sequence[int]
                    ) -> list[tuple[int, Path]]:
    """``(seed, folder)`` of ``runs_dir/<model>-seed<k>/`` for every k not in ``seeds``."""
    found = []
    prefix = f"{model}-seed"
    for path in runs_dir.glob(f"{prefix}*"):
        tail = path.name[len(prefix):]
        if path.is_dir() and tail.isdigit() and int(tail) not in seeds:
            found.append((int(tail), path))
    return sorted(found)


def run_state(run_dir: Path, expected: dict[str, Any], split: Split,
              eval_outputs: Sequence[str] = ("metrics.json", "per_image.csv")) -> str:
    """``done``, ``evaluate``, ``resume`` or ``fresh`` for one run folder (``expected``: its
    TrainConfig as a dict; ``eval_outputs``: the files of a complete eval/, relative to it)."""
    config_file, split_file = run_dir / "config.json", run_dir / "split.json"
    if not (config_file.is_file() and split_file.is_file()):
        return "fresh"
    try:
        saved = json.loads(config_file.read_text())["config"]
        saved_split = json.loads(split_file.read_text())
        want = {k: v for k, v in normal(expected).items() if k not in RUN_IGNORED}
        have = {k: v for k, v in upgrade_train(saved).items() if k not in RUN_IGNORED}
        same_split = all(sorted(saved_split.get(p, [])) == sorted(getattr(split, p))
                         for p in ("train", "val", "test")) \
            and normal(saved_split.get("val_blocks")) == normal(split.val_blocks)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "fresh"
    if want != have or not same_split:
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
