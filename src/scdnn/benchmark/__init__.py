"""``scdnn benchmark``: the paper's comparison (Tables 1–4, Figs. 8–9) on any dataset:
images/ + masks/ folders, the Bijie layout, or georeferenced scenes (a training scene and a
test scene, ``test_scenes=[...]``; Fig. 8 and Fig. 9 then use tiles of the test scene).

>>> from scdnn.benchmark import BenchmarkConfig, run_benchmark
>>> config = BenchmarkConfig(models=("sssn", "scdnn"), budget="smoke")
>>> results = run_benchmark("data/", "bench/", config)

- :mod:`.budgets`: the training budgets (``smoke``, ``cpu``, ``paper``) and the model rows;
- :mod:`.plan`: :class:`BenchmarkConfig`, the folder layout, what a rerun continues (the
  benchmark's identity, the out-folder check, run states, seeds);
- :mod:`.runner`: :func:`run_benchmark`, the recipe: train, score, report;
- :mod:`.results`: collecting the runs, the examples, tables, figures, results.json/md;
- :mod:`.tables`: the tables, with the paper's published numbers;
- :mod:`.figures`: Fig. 8, Fig. 9 and the training curves as PNG;
- :mod:`.cli`: the ``scdnn benchmark`` subcommand (``add_parser``, ``run``).

The data (image folders or scenes) is a :class:`scdnn.datasets.source.DataSource`: the
recipe, the scoring and the reporting never ask which kind it is. Only the budget tables
(:mod:`.budgets`: what an epoch is on scenes) look its ``kind`` up, and :mod:`.tables` reads
the kind a results.json recorded to word results.md.

Importing this package is cheap; torch and Lightning load when :func:`run_benchmark` is first
used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BenchmarkConfig", "ProgressEvent", "run_benchmark"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
