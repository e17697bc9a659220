"""``scdnn benchmark``: the paper's comparison (Tables 1–4, Figs. 8–9) on any dataset:
images/ + masks/ folders, the Bijie layout, or georeferenced scenes (a training scene and a
test scene, ``test_scenes=[...]``; Fig. 8 and Fig. 9 then use tiles of the test scene).

>>> from scdnn.benchmark import run_benchmark
>>> results = run_benchmark("data/", "bench/", models=["sssn", "scdnn"], budget="smoke")

- :mod:`.budgets`: the training budgets (``smoke``, ``cpu``, ``paper``) and the model rows;
- :mod:`.runner`: :func:`run_benchmark`, training, scoring, resuming;
- :mod:`.tables`: the tables, with the paper's published numbers;
- :mod:`.figures`: Fig. 8, Fig. 9 and the training curves as PNG;
- :mod:`.cli`: the ``scdnn benchmark`` subcommand (``add_parser``, ``run``).

Importing this package is cheap; torch and Lightning load when :func:`run_benchmark` is first
used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProgressEvent", "run_benchmark"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
