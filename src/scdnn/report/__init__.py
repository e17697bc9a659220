"""``scdnn report``: one self-contained ``report.html`` for a run folder.

:func:`write_report` recognises the folder by its files:

- **evaluation** (``scdnn evaluate``): ``metrics.json`` + ``per_image.csv``;
- **mapping** (``scdnn map``): ``map.json``;
- **benchmark** (``scdnn benchmark``): ``results.json`` or ``results.md``.

The page needs nothing else to be viewed: CSS inline, no script, every figure a
``data:image/png;base64`` URI, no link to the network. Sections per kind are described in
:mod:`.evaluation`, :mod:`.mapping` and :mod:`.benchmark`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputFileError, InputFileNotFoundError
from ..runs import atomic_write
from .html import page

__all__ = ["write_report", "build_report", "run_kind", "RUN_KINDS"]

RUN_KINDS = ("evaluation", "mapping", "benchmark")


def run_kind(run_dir: str | os.PathLike) -> str:
    """``"evaluation"``, ``"mapping"`` or ``"benchmark"``, from the files in ``run_dir``.

    Raises
    ------
    ScdnnError
        The folder does not exist, or is none of the three kinds.
    """
    root = Path(run_dir)
    if not root.exists():
        raise InputFileNotFoundError("run folder does not exist", root)
    if not root.is_dir():
        raise InputFileError("is not a folder (give a run folder)", root)
    if (root / "metrics.json").is_file() and (root / "per_image.csv").is_file():
        return "evaluation"
    if (root / "map.json").is_file():
        return "mapping"
    if (root / "results.json").is_file() or (root / "results.md").is_file():
        return "benchmark"
    raise InputFileError("not an evaluation, mapping or benchmark run folder (expected "
                    "metrics.json + per_image.csv, map.json, or results.json)", root)


def build_report(run_dir: str | os.PathLike) -> str:
    """The report of ``run_dir`` as one HTML document (a string)."""
    root = Path(run_dir)
    kind = run_kind(root)
    if kind == "evaluation":
        from .evaluation import evaluation_report as make
    elif kind == "mapping":
        from .mapping import mapping_report as make
    else:
        from .benchmark import benchmark_report as make
    return page(make(root))


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` and return its path.

    Parameters
    ----------
    run_dir : an evaluation, mapping or benchmark folder (see the module docstring)
    out : the HTML file to write; default ``run_dir/report.html``. An existing folder gets
        ``report.html`` inside it. The file is written under a temporary name and renamed
        when complete.

    Raises
    ------
    ScdnnError
        ``run_dir`` is missing or no run folder, its files are not what the kind needs, or
        ``out`` cannot be written.
    """
    root = Path(run_dir)
    text = build_report(root)
    target = root / "report.html" if out is None else Path(out)
    if target.is_dir():
        target = target / "report.html"
    try:
        with atomic_write(target, "wb") as handle:
            handle.write(text.encode("utf-8"))
    except OSError as exc:
        raise InputFileError(f"cannot write the report: {exc.strerror or exc}", target) from None
    return target
