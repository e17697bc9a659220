"""Mapping a region of many scenes (``scdnn map`` of several scenes, ``--workers``).

Makes a job of ``--scenes`` scenes (20): square windows of ``--size`` px cut from the
jinsha-uav scenes (scene-a, scene-b; 0.5 m UAV imagery) and written as separate GeoTIFFs
(with the scenes' no-data mask) into a temporary folder outside the repository, then, in
the same run, on this machine:

1. maps the job in one process with one torch thread (``scdnn map FOLDER``,
   ``OMP_NUM_THREADS=1``: a worker's setting, so that the ratio is the gain of N workers over
   one, and the outputs can be compared bit for bit: torch's CPU kernels sum in another
   order with another number of threads, which moves probabilities by ~1e-7);
2. maps it on a local Dask cluster (``--workers N``, one thread each);
3. checks that both give the same outputs: every scene's mask.tif and probability.tif
   pixel for pixel, the same number of polygons per scene and in the job layer;
4. reports the wall times and their ratio, each worker's peak RSS (job.json records the
   peak of the process that ran each scene), and the per-worker throughput (valid-or-not
   scene pixels per second of a worker: the job's pixels ÷ (wall time × workers)), from
   which it extrapolates the wall time of 10,000 km² of 0.5 m imagery (4·10¹⁰ px) on 8 and
   64 such workers (linear scaling: every worker as fast as here, storage keeping up, the
   job layer's merge not counted).

Each run is a fresh ``python -m scdnn.cli map`` process, timed from start to exit (model
loading and, for Dask, starting the cluster included).

    .venv/bin/python benchmarks/region.py [--weights W.safetensors] [--workers 2]
    .venv/bin/python benchmarks/region.py --quick --out /tmp/check   # the script works

Writes OUT/region.json and OUT/region.md (OUT: benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from _common import RESULTS, save

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "jinsha-uav"
BUNDLED = ROOT / "src" / "scdnn" / "data" / "scdnn-sichuan.safetensors"
REGION_KM2 = 10_000
REGION_PX = REGION_KM2 * 1e6 / 0.5 ** 2


def cut_scenes(out: Path, count: int, size: int) -> list[Path]:
    """``count`` windows of ``size`` px from scene-a and scene-b (alternating), each at
    least half valid, written as GeoTIFFs with an internal mask."""
    sources = [DATA / "scene-a" / "rgb.tif", DATA / "scene-b" / "rgb.tif"]
    candidates: list[list[tuple[Path, Window]]] = []
    for src_path in sources:
        with rasterio.open(src_path) as src:
            step = size // 2
            found = []
            for row in range(0, src.height - size + 1, step):
                for col in range(0, src.width - size + 1, step):
                    window = Window(col, row, size, size)
                    if (src.dataset_mask(window=window) > 0).mean() >= 0.5:
                        found.append((src_path, window))
            candidates.append(found)
    picked = []
    for k in range(count):
        found = candidates[k % 2]
        picked.append(found[(k // 2) * max(1, len(found) // (count // 2 + 1)) % len(found)])
    scenes = []
    for k, (src_path, window) in enumerate(picked):
        path = out / f"{src_path.parent.name}-{k:02d}.tif"
        with rasterio.open(src_path) as src:
            profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                           crs=src.crs, transform=src.window_transform(window), tiled=True,
                           blockxsize=256, blockysize=256, compress="deflate")
            data = src.read([1, 2, 3], window=window)
            mask = src.dataset_mask(window=window)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data)
                dst.write_mask(mask)
        scenes.append(path)
    return scenes


def run_map(folder: Path, out: Path, args, workers: int | None) -> float:
    command = [sys.executable, "-m", "scdnn.cli", "map", str(folder), "--weights",
               str(args.weights), "--out", str(out), "--tile", str(args.tile), "--overlap",
               str(args.overlap)]
    if workers:
        command += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def same_outputs(a: Path, b: Path, names: list[str]) -> dict:
    import pyogrio

    differing = []
    largest = 0.0
    for name in names:
        for raster in ("mask.tif", "probability.tif"):
            with rasterio.open(a / "scenes" / name / raster) as x, \
                    rasterio.open(b / "scenes" / name / raster) as y:
                xa, ya = x.read(1), y.read(1)
                if not np.array_equal(xa, ya):
                    differing.append(f"{name}/{raster}")
                    largest = max(largest, float(np.abs(xa.astype(np.float64) - ya).max()))
        counts = [pyogrio.read_info(f / "scenes" / name / "landslides.gpkg")["features"]
                  for f in (a, b)]
        if counts[0] != counts[1]:
            differing.append(f"{name}/landslides.gpkg")
    layers = [pyogrio.read_info(f / "landslides.gpkg")["features"] for f in (a, b)]
    return {"equal": not differing and layers[0] == layers[1], "differing": differing,
            "max_abs_difference": largest, "layer_polygons": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=BUNDLED)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="scene size in px (512)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true",
                        help="4 scenes of 256 px, tile 256: checks the script works")
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.size, args.tile, args.overlap = 4, 256, 256, 64
    if not DATA.is_dir():
        sys.exit(f"needs {DATA.resolve()}")
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="scdnn-region-"))
    try:
        folder = work / "scenes"
        folder.mkdir()
        scenes = cut_scenes(folder, args.scenes, args.size)
        names = [s.stem for s in scenes]
        one = run_map(folder, work / "one", args, None)
        dask = run_map(folder, work / "dask", args, args.workers)
        check = same_outputs(work / "one", work / "dask", names)
        job = json.loads((work / "dask" / "job.json").read_text())
        peaks: dict[str, float] = {}
        for entry in job["scenes"]:
            peaks[entry["worker"]] = max(peaks.get(entry["worker"], 0.0),
                                         entry.get("peak_rss_mb") or 0.0)
        one_job = json.loads((work / "one" / "job.json").read_text())
        one_peak = max(e.get("peak_rss_mb") or 0.0 for e in one_job["scenes"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pixels = args.scenes * args.size ** 2
    per_worker = pixels / (dask * args.workers)
    task_seconds = sum(e["seconds"] for e in job["scenes"])
    per_worker_busy = pixels / task_seconds
    extrapolated = {str(n): REGION_PX / (per_worker * n) / 3600 for n in (8, 64)}
    results = {
        "scenes": args.scenes, "size": args.size, "tile": args.tile, "overlap": args.overlap,
        "pixels": pixels, "workers": args.workers, "weights": str(args.weights),
        "seconds_one_process": round(one, 2), "seconds_workers": round(dask, 2),
        "speedup": round(one / dask, 3),
        "peak_rss_mb_per_worker": peaks, "peak_rss_mb_one_process": one_peak,
        "pixels_per_second_per_worker": round(per_worker, 1),
        "pixels_per_second_per_worker_busy": round(per_worker_busy, 1),
        "region_km2": REGION_KM2, "region_pixels": REGION_PX,
        "hours_for_region": {k: round(v, 1) for k, v in extrapolated.items()},
        "same_outputs": check, "quick": args.quick,
        "pixels_per_second_one_process": round(pixels / one, 1),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
    }
    peak_text = ", ".join(f"{v:.0f}" for v in peaks.values())
    markdown = f"""# Mapping a region: {args.scenes} scenes, 1 process vs {args.workers} workers

`benchmarks/region.py{' --quick' if args.quick else ''}`: {args.scenes} scenes of {args.size}
x {args.size} px cut from jinsha-uav scene-a/scene-b (0.5 m), tile {args.tile}, overlap
{args.overlap}, {Path(args.weights).name}; each run a fresh `scdnn map FOLDER` process
(model loading and cluster start included).

| run | wall time (s) | peak RSS (MiB) |
| --- | ---: | ---: |
| 1 process (1 torch thread) | {one:.1f} | {one_peak:.0f} |
| `--workers {args.workers}` (1 thread each) | {dask:.1f} | {peak_text} (per worker) |

Ratio (1 process ÷ workers): **{one / dask:.2f}**. Same outputs (every mask.tif and
probability.tif pixel for pixel, polygon counts per scene and in the job layer):
**{check['equal']}** ({check['layer_polygons'][0]} polygons in the job layer).

Per-worker throughput: {per_worker / 1e6:.3f} Mpx/s over the job's wall time
({per_worker_busy / 1e6:.3f} Mpx/s counting only the time inside scene tasks). 10,000 km² of
0.5 m imagery is {REGION_PX:.1e} px: at the wall-time rate, about
**{extrapolated['8']:.0f} h on 8 workers** and **{extrapolated['64']:.1f} h on 64 workers**
like these (linear scaling assumed: each worker as fast as one here, storage keeping up; the
job layer's merge not counted). One process mapped {pixels / one / 1e6:.3f} Mpx/s; a worker,
inside its tasks, {per_worker_busy / 1e6:.3f} Mpx/s: below that, the workers competed for
the cores (load average {load_before:.1f} before the runs, {os.getloadavg()[0]:.1f} after,
on {os.cpu_count()} cores)."""
    save("region", results, markdown, out=args.out)
    print(markdown)


if __name__ == "__main__":
    main()
