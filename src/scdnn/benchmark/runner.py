"""``scdnn benchmark``: train and score every network under one budget, then tabulate.

:func:`run_benchmark` is the recipe; the folder layout and what a rerun continues are in
:mod:`.plan` (with :class:`~.plan.BenchmarkConfig`), the tables, figures and result files in
:mod:`.results`, and everything about the data (images or scenes) in its
:class:`~scdnn.datasets.source.DataSource`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

from ..datasets.pieces import TILE_MIN_CLASS
from ..errors import InputFileError, InputFileNotFoundError
from ..metrics import TILE_MIN_VALID
from ..runs import provenance, write_json
from .budgets import budget_overrides
from .figures import require_matplotlib
from .plan import (
    SCENE_TILE,
    BenchmarkConfig,
    benchmark_identity,
    check_out,
    other_seed_runs,
    run_state,
)
from .results import EXAMPLE_IMAGES, GFLOPS_SIZE, collect_run, write_results

__all__ = ["BenchmarkConfig", "ProgressEvent", "run_benchmark", "GFLOPS_SIZE",
           "EXAMPLE_IMAGES", "SCENE_TILE", "TILE_MIN_VALID", "TILE_MIN_CLASS"]


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
                  config: BenchmarkConfig | None = None, *,
                  progress: Callable[[ProgressEvent], None] | None = None,
                  **options: Any) -> dict[str, Any]:
    """Train every model on one split under one budget, score each, write the tables.

    Parameters
    ----------
    data : dataset folder (images/ + masks/, or the Bijie layout), or georeferenced scenes (a
        scene folder or a folder of scene folders: rgb.tif + mask.tif [+ dsm.tif])
    out : the benchmark folder (layout in :mod:`.plan`)
    config : what to compare and how (:class:`~.plan.BenchmarkConfig`); or give its fields as
        keyword arguments instead: ``run_benchmark(data, out, models=["sssn", "scdnn"],
        budget="smoke")``
    progress : called with a :class:`ProgressEvent` before each step

    Returns
    -------
    dict
        The content of DIR/results.json: ``config``, ``split``, ``provenance``, ``paper``,
        ``runs``, ``models``, ``table1``–``table4``, ``fig8``, ``extra`` and ``figures``
        (PNG file names relative to DIR, None for a figure not drawn).

    Raises
    ------
    ScdnnError
        Unknown model or budget, bad seeds, unreadable data (or scenes without
        ``test_scenes``), or DIR holding something else; all of these before anything is
        written.
    """
    from ..datasets import save_split
    from ..datasets.source import open_source
    from ..models import explicit_model_kwargs
    from ..trainers.fit import TrainConfig, env_workers

    if config is None:
        config = BenchmarkConfig(**options)
    elif not isinstance(config, BenchmarkConfig):
        raise TypeError(f"run_benchmark: config must be a BenchmarkConfig, got "
                        f"{type(config).__name__} (give the other settings by keyword)")
    elif options:
        raise TypeError(f"run_benchmark: give a BenchmarkConfig or its fields, not both "
                        f"({', '.join(options)})")
    specs = config.specs
    require_matplotlib()
    path = Path(data).resolve()
    if not path.exists():
        raise InputFileNotFoundError("dataset folder does not exist", path)
    source = open_source(str(path), test_scenes=config.test_scenes, use_dsm=config.use_dsm)
    source.require_test_part()
    source.validate()  # every file read once, so bad data fails early
    overrides = {**budget_overrides(config.budget, source.kind), **source.train_options(),
                 "recipe": config.recipe}
    out = Path(out)

    template = TrainConfig(data="", out="", **overrides).to_dict()
    identity = benchmark_identity(source.identity(), config.budget, template,
                                  config.split_seed, config.tolerance)
    resuming = check_out(out, identity, config.overwrite)
    split_path = out / "split.json"
    if resuming and split_path.is_file():
        split = source.load_split(split_path)
    else:
        split = source.draw_split(seed=config.split_seed, test_fraction=template["test_fraction"],
                                  val_fraction=template["val_fraction"],
                                  val_block=template["val_block"])

    # ---- from here on, files are written
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"cannot create the benchmark folder: {exc.strerror}", out) from None
    if not (resuming and split_path.is_file()):
        save_split(split, split_path)
    write_json(out / "benchmark.json", {"benchmark": identity, "request": config.request(),
                                        "provenance": provenance()})

    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = env_workers() if config.workers is None else config.workers
    notify = progress or (lambda event: None)
    seeds = list(config.seeds)
    plan = [(spec, seed) for seed in seeds for spec in specs]
    eval_outputs = source.scoring_outputs(split.test)
    runs: list[dict[str, Any]] = []

    def run_config(spec, seed: int, run_dir: Path) -> TrainConfig:
        return TrainConfig(**{**overrides, "data": source.path, "split": str(split_path),
                              "out": str(run_dir), "model": spec.network,
                              "model_kwargs": explicit_model_kwargs(spec.network,
                                                                   spec.model_kwargs),
                              "seed": seed,
                              "workers": workers})

    for index, (spec, seed) in enumerate(plan, start=1):
        name = f"{spec.name}-seed{seed}"
        run_dir = out / "runs" / name
        train_config = run_config(spec, seed, run_dir)
        state = "fresh" if config.overwrite else run_state(run_dir, train_config.to_dict(),
                                                           split, eval_outputs)

        def step(action: str, index: int = index, name: str = name, spec=spec,
                 seed: int = seed) -> None:  # the loop's values, bound now
            notify(ProgressEvent(index, len(plan), action, name, spec.name, seed))

        if state == "done":
            step("skip")
        else:
            if state == "fresh":
                step("train")
                _train_fresh(train_config, run_dir)
            elif state == "resume":
                step("resume")
                _train_resume(train_config)
            step("evaluate")
            _evaluate(source.path, run_dir, split_path, config.tolerance, device)
        runs.append(collect_run(run_dir, name, spec, seed, out))

    # Finished runs of the requested networks under seeds not requested this time (an
    # earlier request's, e.g. a second seed for two networks) are reported too; they are
    # never trained or rescored here, and an unfinished or foreign one is left out.
    if not config.overwrite:
        for spec in specs:
            for seed, run_dir in other_seed_runs(out / "runs", spec.name, seeds):
                expected = run_config(spec, seed, run_dir).to_dict()
                if run_state(run_dir, expected, split, eval_outputs) == "done":
                    runs.append(collect_run(run_dir, run_dir.name, spec, seed, out))
    reported_seeds = seeds + sorted({r["seed"] for r in runs} - set(seeds))

    notify(ProgressEvent(len(plan), len(plan), "report"))
    return write_results(out, source, specs, reported_seeds, runs, split, identity,
                         config.budget, config.ablations, device, config.tolerance,
                         config.scene_tile)


def _evaluate(data: str, run_dir: Path, split_path: Path, tolerance: int, device: str) -> None:
    """Score a run's weights on the split's test images (or scenes) into run_dir/eval: the
    raw thresholded masks (``cleaning=None``), as the paper scores its networks."""
    from ..evaluation import evaluate

    evaluate(data, run_dir / "eval", weights=str(run_dir / "weights.safetensors"),
             split=str(split_path), tolerance=tolerance, cleaning=None, overwrite=True,
             device=device)


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
