"""glibc's malloc defaults vs the setting the scdnn program makes (``scdnn.runtime``).

Side by side in one run, interleaved: fresh processes, each loading the weights and timing
``--passes`` forward passes of SCDnn over one ``--size`` px window on the CPU (after one
warm-up pass), with glibc's defaults or after :func:`scdnn.runtime.keep_freed_memory`; each
records its seconds a pass and its peak RSS (VmHWM).

    .venv/bin/python benchmarks/allocator.py [--weights W] [--size 2048] [--repeats 2]

Writes benchmarks/results/allocator.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, save

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "scdnn" / "data" / "scdnn-sichuan.safetensors"

CHILD = r"""
import json, sys, time
a = json.loads(sys.argv[1])
if a["tuned"]:
    from scdnn.runtime import keep_freed_memory
    assert keep_freed_memory()
import torch
from scdnn import Predictor
model = Predictor.from_file(a["weights"]).model
x = torch.randn(1, 3, a["size"], a["size"])
with torch.inference_mode():
    model(x)
    start = time.perf_counter()
    for _ in range(a["passes"]):
        model(x)
seconds = (time.perf_counter() - start) / a["passes"]
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds_per_pass": seconds, "peak_rss_mib": int(hwm.split()[1]) / 1024}))
"""


def child(args, tuned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    spec = {"tuned": tuned, "weights": str(args.weights), "size": args.size,
            "passes": args.passes}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=BUNDLED)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="processes of each kind")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = {"defaults": [], "kept": []}
    for r in range(args.repeats):
        for name in runs:
            runs[name].append(child(args, tuned=name == "kept"))
            print(f"  repeat {r + 1}: {name} {runs[name][-1]}", flush=True)
    med = {name: {"seconds_per_pass": statistics.median(x["seconds_per_pass"] for x in rows),
                  "peak_rss_mib": statistics.median(x["peak_rss_mib"] for x in rows)}
           for name, rows in runs.items()}
    ratio = med["kept"]["seconds_per_pass"] / med["defaults"]["seconds_per_pass"]
    results = {"size": args.size, "passes": args.passes, "repeats": args.repeats,
               "weights": str(args.weights), "runs": runs, "medians": med,
               "time_ratio_kept_over_defaults": round(ratio, 4)}
    md = "\n".join([
        "# glibc's malloc defaults vs freed memory kept (benchmarks/allocator.py)", "",
        f"SCDnn forward pass over one {args.size} px window on the CPU, {args.passes} timed "
        f"passes per process after a warm-up, {args.repeats} fresh processes of each kind, "
        "interleaved (medians).", "",
        "| allocator | s a pass | peak RSS (MiB) |", "|---|---:|---:|",
        *[f"| {name} | {m['seconds_per_pass']:.2f} | {m['peak_rss_mib']:.0f} |"
          for name, m in med.items()], "",
        f"Time with freed memory kept ÷ with glibc's defaults: **{ratio:.3f}**. Peak RSS of "
        "a forward pass alone; mapping a whole scene keeps more (benchmarks/results/"
        "mapping.md)."])
    save("allocator", results, md, args.out)
    print(md)


if __name__ == "__main__":
    main()
