"""Shared helpers for the benchmark scripts: machine description, results writing."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scdnn.runs import cpu_name, provenance, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """The machine, and how busy it was when the results were saved: ``load_average`` (1, 5
    and 15 minutes; about the core count means something else was running, and times taken
    then are not those of a quiet machine)."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {"cpu": cpu_name() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": load}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul FLOP/s of this machine right now (best of ``repeats``), in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def save(name: str, results: dict, markdown: str, out: Path = RESULTS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "machine": machine(), "provenance": provenance()}
    write_json(out / f"{name}.json", results)
    (out / f"{name}.md").write_text(markdown + "\n\nMachine: " + json.dumps(results["machine"])
                                        + f"\n\nCommit: {results['provenance']['git_commit']}, "
                                        f"{results['provenance']['created']}\n")
