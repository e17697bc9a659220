"""Mapping whole scenes (``scdnn map``): speed, memory, seams, no data (issue 4, §4).

Four figures, measured side by side in one run on this machine, each a ratio of two
measurements made in the same run (the machine is noisy):

1. throughput: ``map_scene``'s pixels/s end to end (reading, network, blending, writing,
   COGs, polygons) ÷ the bare network's forward pixels/s over the same windows (same count,
   size and batch size, random tensors); pixels = windows run × window area. Repeats are
   interleaved (one map, one forward pass, again); medians. Target ≥ 0.90.
2. memory: peak RSS of a fresh process mapping a 2x2 mosaic of the scene (4x its area, a
   GeoTIFF written with the scene's mask, so no-data windows are skipped as in the scene)
   ÷ peak RSS of a fresh process mapping the scene. Target ≤ 1.1. Also the peak of a process
   that only imports scdnn and loads the model, to show what mapping adds.
3. agreement: share of valid pixels where the blended tiled mask (``--overlap``) equals a
   one-pass prediction of the whole scene (or of the largest centred crop whose estimated
   memory fits, then mapped as a scene of its own); target ≥ 99.5 %. The same figure for
   plain tiling (``--overlap 0``) beside it. Draws ``mapping-seams.png``: a crop where plain
   tiling shows a seam that blending removes, if the run finds one.
4. no data: time an all-no-data region adds to a map ÷ time an equally large valid region
   adds. A scene with no valid pixel at all is refused by design, so each region is put
   beside the same base scene (a valid strip, then a no-data gap one tile wide so that no
   window straddles the strip and the region), and the base mapped alone is subtracted;
   medians of interleaved repeats. Target ≤ 0.05.

    .venv/bin/python benchmarks/mapping.py --weights W.safetensors [--repeats 3]
    .venv/bin/python benchmarks/mapping.py --weights W.safetensors --quick --out /tmp/check

``--quick`` checks that the script works (a 768x768 crop of the scene, tile 256, one
repeat); its numbers are not measurements. Writes OUT/mapping.json, OUT/mapping.md and
OUT/mapping-seams.png (OUT: benchmarks/results).

``--only memory`` (or ``throughput``, ``nodata``, ``agreement``; repeatable) runs only those
parts and prints their results as JSON, writing nothing under OUT: a check of one figure
while working on it, not a result to commit (the full run measures them side by side)::

    .venv/bin/python benchmarks/mapping.py --weights W.safetensors --only memory
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from _common import RESULTS, save
from scdnn.mapping import Tiling, map_scene, open_scene, plan_windows, read_probability
from scdnn.mapping.tiling import window_offsets
from scdnn.predictor import Predictor
from scdnn.runs import atomic_path
from scdnn.runtime import keep_freed_memory
from scdnn.weights import read_card

ROOT = Path(__file__).resolve().parents[1]
SCENE_B = ROOT.parent / "shared" / "data" / "jinsha-uav" / "scene-b" / "rgb.tif"
STRIP = 256  # rows per strip when composing scenes
TARGETS = {"throughput": 0.90, "memory": 1.1, "agreement": 0.995, "nodata": 0.05}

#: Run in a fresh interpreter for each memory measurement: ``what`` is ``baseline`` (import
#: scdnn, load the model), ``map`` (map_scene), ``probe`` / ``onepass`` (one forward pass of
#: a whole window, see :func:`one_pass`). Prints the process's peak RSS as JSON.
CHILD = r"""
import json, sys
a = json.loads(sys.argv[1])
import numpy as np
from scdnn.mapping import Tiling, map_scene
from scdnn.predictor import Predictor
predictor = Predictor.from_file(a["weights"], device=a["device"])
result = {}
if a["what"] == "map":
    map_scene(a["scene"], predictor, a["out"], overwrite=True,
              tiling=Tiling(a["tile"], a["overlap"], a["batch_size"]))
elif a["what"] in ("probe", "onepass"):
    from rasterio.windows import Window
    from scdnn.mapping import open_scene
    from scdnn.mapping.core import model_input
    with open_scene(a["scene"], predictor.in_channels, predictor.inputs) as sc:
        x = model_input(sc, Window(*a["window"]), predictor.normalization)
    def rss(key):
        return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
    result["rss_before_forward_bytes"] = rss("VmRSS:") * 1024
    result["hwm_before_forward_bytes"] = rss("VmHWM:") * 1024
    p = predictor.probabilities(x[None])[0]
    if a["what"] == "onepass":
        np.save(a["save"], p)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
result["vmhwm_bytes"] = int(hwm.split()[1]) * 1024
print(json.dumps(result))
"""


# --- scenes the benchmark builds ------------------------------------------------------------

def compose(dst: Path, src_path: Path, height: int, width: int, pieces: list, transform=None
            ) -> Path:
    """Write a tiled, deflate GeoTIFF with an internal mask band from pieces of ``src_path``.

    ``pieces``: ``(src window, dst row, dst col, mask)``, ``mask`` None (copy the source's
    dataset mask), True (all valid) or False (all no data); pixels no piece covers are no
    data. Written strip by strip of full-width rows (every compressed block once).
    """
    with rasterio.open(src_path) as src, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        profile = dict(driver="GTiff", width=width, height=height, count=src.count,
                       dtype=src.dtypes[0], crs=src.crs, transform=transform or src.transform,
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                       interleave="pixel")
        with rasterio.open(dst, "w", **profile) as out:
            out.colorinterp = src.colorinterp
            for r0 in range(0, height, STRIP):
                rows = min(STRIP, height - r0)
                data = np.zeros((src.count, rows, width), src.dtypes[0])
                mask = np.zeros((rows, width), np.uint8)
                for win, row, col, valid in pieces:
                    top, bottom = max(r0, row), min(r0 + rows, row + int(win.height))
                    if top >= bottom:
                        continue
                    w = int(win.width)
                    sw = Window(win.col_off, win.row_off + top - row, w, bottom - top)
                    data[:, top - r0:bottom - r0, col:col + w] = src.read(window=sw)
                    mask[top - r0:bottom - r0, col:col + w] = (
                        src.dataset_mask(window=sw) if valid is None else 255 if valid else 0)
                out.write(data, window=Window(0, r0, width, rows))
                out.write_mask(mask, window=Window(0, r0, width, rows))
    return dst


def crop(dst: Path, src_path: Path, window: Window) -> Path:
    """``window`` of ``src_path`` as a scene of its own (georeferenced, with its mask)."""
    with rasterio.open(src_path) as src:
        transform = src.window_transform(window)
    return compose(dst, src_path, int(window.height), int(window.width),
                   [(window, 0, 0, None)], transform)


def generated_scene(dst: Path, size: int) -> Path:
    """A random RGB scene with a mask band (left quarter no data), for --quick without data."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, size, size), dtype=np.uint8)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(dst, "w", driver="GTiff", width=size, height=size, count=3,
                           dtype="uint8", crs="EPSG:32647", tiled=True,
                           transform=rasterio.Affine(0.5, 0, 470000, 0, -0.5, 3445000)) as out:
            out.write(image)
            mask = np.full((size, size), 255, np.uint8)
            mask[:, : size // 4] = 0
            out.write_mask(mask)
    return dst


def centred(height: int, width: int, h: int, w: int) -> Window:
    return Window((width - w) // 2, (height - h) // 2, w, h)


# --- measurements ---------------------------------------------------------------------------

def timed_map(scene: Path, weights: Path, out: Path, args, overlap: int | None = None,
              tile: int | None = None) -> float:
    """Seconds map_scene takes from the weights file (loading included) to its outputs."""
    shutil.rmtree(out, ignore_errors=True)
    tiling = Tiling(args.tile if tile is None else tile,
                    args.overlap if overlap is None else overlap, args.batch_size)
    start = time.perf_counter()
    map_scene(scene, Predictor.from_file(weights, device=args.device), out, tiling=tiling)
    return time.perf_counter() - start


def windows_run(scene: Path, predictor: Predictor, tiling: Tiling) -> list[Window]:
    """The windows map_scene runs: the aligned grid less those without a valid pixel."""
    with open_scene(scene, predictor.in_channels, predictor.inputs) as sc:
        return list(plan_windows(predictor, sc, tiling).to_run)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(scene: Path, weights: Path, work: Path, args, card: dict) -> dict:
    """(1) map_scene end to end vs the bare forward pass over the same windows."""
    predictor = Predictor.from_file(weights, device=args.device)
    windows = windows_run(scene, predictor, Tiling(args.tile, args.overlap, args.batch_size))
    h, w = int(windows[0].height), int(windows[0].width)
    pixels = len(windows) * h * w
    model = predictor.model
    sizes = [args.batch_size] * (len(windows) // args.batch_size)
    sizes += [len(windows) % args.batch_size] if len(windows) % args.batch_size else []
    batches = {n: torch.randn(n, card.in_channels, h, w).to(args.device)
               for n in set(sizes)}

    def forward() -> float:
        sync(args.device)
        start = time.perf_counter()
        with torch.inference_mode():
            for n in sizes:
                model(batches[n])
        sync(args.device)
        return time.perf_counter() - start

    timed_map(scene, weights, work / "t-map", args)  # warm-up: kernels, caches
    forward()
    t_map, t_fwd = [], []
    for r in range(args.repeats):
        t_map.append(timed_map(scene, weights, work / "t-map", args))
        t_fwd.append(forward())
        print(f"  throughput repeat {r + 1}/{args.repeats}: map {t_map[-1]:.2f} s, "
              f"forward {t_fwd[-1]:.2f} s", flush=True)
    map_s, fwd_s = statistics.median(t_map), statistics.median(t_fwd)
    return {"windows_run": len(windows), "window": [h, w], "pixels": pixels,
            "map_seconds": [round(t, 3) for t in t_map],
            "forward_seconds": [round(t, 3) for t in t_fwd],
            "map_pixels_per_s": round(pixels / map_s, 1),
            "forward_pixels_per_s": round(pixels / fwd_s, 1),
            "ratio": round(fwd_s / map_s, 4)}


def child(args_json: dict, work: Path, name: str) -> dict:
    """Run :data:`CHILD` in a fresh interpreter; its peak RSS and what it printed.

    The peak is the child's own VmHWM (read by the child at its end). ``ru_maxrss`` from
    wait4 is kept for reference but not used: Linux carries the high-water mark of the
    memory the child had *before* exec over into it, and with subprocess's vfork that is
    the parent's (this benchmark's, torch loaded), so every child reported the parent's
    1.9 GiB."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    err_path = work / f"{name}.stderr"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args_json)],
                                stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child '{name}' failed ({proc.returncode}): "
                           f"{err_path.read_text()[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["ru_maxrss_bytes"] = usage.ru_maxrss * 1024
    return result


def memory(scene: Path, weights: Path, work: Path, args) -> dict:
    """(2) peak RSS of fresh processes: model only, scene, 2x2 mosaic of the scene."""
    with rasterio.open(scene) as src:
        h, w = src.height, src.width
    full = Window(0, 0, w, h)
    mosaic = compose(work / "mosaic.tif", scene, 2 * h, 2 * w,
                     [(full, r, c, None) for r in (0, h) for c in (0, w)])
    common = {"weights": str(weights), "tile": args.tile, "overlap": args.overlap,
              "batch_size": args.batch_size, "device": args.device}
    peaks: dict[str, list[int]] = {"baseline": [], "scene": [], "mosaic": []}
    for r in range(args.rss_repeats):
        peaks["baseline"].append(child({**common, "what": "baseline"}, work,
                                       "baseline")["vmhwm_bytes"])
        for key, path in (("scene", scene), ("mosaic", mosaic)):
            peaks[key].append(child({**common, "what": "map", "scene": str(path),
                                     "out": str(work / f"rss-{key}")}, work,
                                    f"rss-{key}")["vmhwm_bytes"])
        print(f"  memory repeat {r + 1}/{args.rss_repeats}: "
              + ", ".join(f"{k} {v[-1] / 2**20:.0f} MiB" for k, v in peaks.items()), flush=True)
    med = {k: statistics.median(v) for k, v in peaks.items()}
    with_valid = [json.loads((work / f"rss-{k}" / "map.json").read_text())["windows"]
                  for k in ("scene", "mosaic")]
    return {"scene_size": [h, w], "mosaic_size": [2 * h, 2 * w],
            "windows": {"scene": with_valid[0], "mosaic": with_valid[1]},
            "peak_rss_mib": {k: [round(x / 2**20, 1) for x in v] for k, v in peaks.items()},
            "added_by_mapping_mib": {k: round((med[k] - med["baseline"]) / 2**20, 1)
                                     for k in ("scene", "mosaic")},
            "ratio": round(med["mosaic"] / med["scene"], 4)}


def mem_available() -> int:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def one_pass(scene: Path, weights: Path, work: Path, args) -> tuple[Path, np.ndarray, dict]:
    """The model on the whole scene at once, or on the largest centred crop whose memory,
    estimated from a probe on a smaller centred window, fits in the budget. Returns the
    scene that was predicted (the crop written as a scene of its own), the probabilities
    and a record."""
    with rasterio.open(scene) as src:
        h, w = src.height, src.width
    common = {"weights": str(weights), "device": args.device, "scene": str(scene)}
    side = min(args.probe, h, w)
    probe = child({**common, "what": "probe", "window": _win(centred(h, w, side, side))},
                  work, "probe")
    per_pixel = (probe["vmhwm_bytes"] - probe["rss_before_forward_bytes"]) / side**2
    base = probe["rss_before_forward_bytes"]
    budget = min(args.one_pass_gib * 2**30, 0.7 * mem_available())
    need = base + per_pixel * h * w * 1.15
    if need <= budget:
        ch, cw = h, w
    else:
        k = ((budget - base) / (per_pixel * h * w * 1.15)) ** 0.5
        ch, cw = int(h * k) // 16 * 16, int(w * k) // 16 * 16
    window = centred(h, w, ch, cw)
    target = scene if (ch, cw) == (h, w) else crop(work / "onepass-crop.tif", scene, window)
    t0 = time.perf_counter()
    run = child({**common, "what": "onepass", "scene": str(target),
                 "window": [0, 0, cw, ch], "save": str(work / "onepass.npy")}, work, "onepass")
    seconds = time.perf_counter() - t0
    record = {"whole_scene": (ch, cw) == (h, w), "size": [ch, cw],
              "crop_window_col_row_width_height": _win(window),
              "probe_side": side, "estimated_bytes_per_pixel": round(per_pixel, 1),
              "estimated_peak_gib": round((base + per_pixel * ch * cw) / 2**30, 2),
              "budget_gib": round(budget / 2**30, 2),
              "measured_peak_gib": round(run["ru_maxrss_bytes"] / 2**30, 2),
              "seconds_incl_startup": round(seconds, 1)}
    return target, np.load(work / "onepass.npy"), record


def _win(window: Window) -> list[int]:
    return [int(window.col_off), int(window.row_off), int(window.width), int(window.height)]


def read1(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def agreement(scene: Path, weights: Path, work: Path, args, card: dict) -> tuple[dict, dict]:
    """(3) blended and plain tiled masks against one pass over the same (cropped) scene."""
    target, reference, record = one_pass(scene, weights, work, args)
    with open_scene(target, card.in_channels, card.inputs) as sc:
        valid = sc.valid_mask(Window(0, 0, sc.width, sc.height))
    ref_mask = reference >= 0.5
    out = {"one_pass": record, "valid_pixels": int(valid.sum())}
    maps = {}
    smaller = [(t, o) for t, o in ((512, 64), (1024, 256)) if t < args.tile]
    settings = [("blended", args.tile, args.overlap), ("plain", args.tile, 0),
                *((f"tile {t}, overlap {o}", t, o) for t, o in smaller)]
    for name, tile, overlap in settings:
        seconds = timed_map(target, weights, work / f"agree-{name}", args, overlap=overlap,
                            tile=tile)
        with rasterio.open(work / f"agree-{name}" / "probability.tif") as src:
            prob = read_probability(src).filled(np.nan)  # stored in percent
        mask = read1(work / f"agree-{name}" / "mask.tif")
        maps[name] = mask
        same = (mask == 1) == ref_mask
        out[name] = {"tile": tile, "overlap": overlap, "seconds": round(seconds, 2),
                     "share_equal": round(float(same[valid].mean()), 6),
                     "pixels_different": int((~same & valid).sum()),
                     "mean_abs_probability_difference":
                         round(float(np.abs(prob - reference)[valid].mean()), 6)}
    out["one_pass_landslide_share"] = round(float(ref_mask[valid].mean()), 6)
    figure = {"target": target, "valid": valid, "reference": ref_mask, **maps}
    return out, figure


def seams(size: int, tile: int, align: int = 1) -> list[int]:
    """Where plain tiling (overlap 0) switches from one window to the next along an axis:
    each window's start (and, on an unaligned grid, the end of the one before the last,
    which is moved back to end on the scene's edge)."""
    offsets = window_offsets(size, tile, 0, align)
    return sorted(({*offsets[1:]} | {o + tile for o in offsets[:-1]}) - {size}
                  if align <= 1 else [o for o in offsets[1:] if o < size])


def seam_figure(fig: dict, args, path: Path) -> dict | None:
    """Find a crop, centred where plain tiling's tile seams cross, where plain tiling's mask
    differs from one pass along the seams and the blended mask does not; draw it (pixels
    that differ from one pass in red). None when there is no such crop."""
    valid, ref = fig["valid"], fig["reference"]
    h, w = ref.shape
    rows, cols = seams(h, args.tile, args.align), seams(w, args.tile, args.align)
    if not rows and not cols:
        return None
    band = np.zeros((h, w), bool)
    for r in rows:
        band[max(r - 4, 0):r + 4] = True
    for c in cols:
        band[:, max(c - 4, 0):c + 4] = True
    wrong = {name: ((fig[name] == 1) != ref) & valid for name in ("plain", "blended")}
    size = min(256, h, w)
    best = None
    for rc in rows or [h // 2]:
        for cc in cols or [w // 2]:
            r0 = min(max(rc - size // 2, 0), h - size)
            c0 = min(max(cc - size // 2, 0), w - size)
            sl = (slice(r0, r0 + size), slice(c0, c0 + size))
            plain = int((wrong["plain"][sl] & band[sl]).sum())
            blended = int((wrong["blended"][sl] & band[sl]).sum())
            if plain >= 20 and 4 * blended <= plain and (
                    best is None or plain - 4 * blended > best[0]):
                best = (plain - 4 * blended, r0, c0, plain, blended)
    if best is None:
        return None
    _, r0, c0, plain, blended = best
    window = Window(c0, r0, size, size)
    sl = (slice(r0, r0 + size), slice(c0, c0 + size))
    with rasterio.open(fig["target"]) as src:
        rgb = np.moveaxis(src.read([1, 2, 3], window=window), 0, -1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def colour(mask: np.ndarray, differ: np.ndarray | None) -> np.ndarray:
        image = np.where(mask[..., None], [1.0, 1.0, 1.0], [0.2, 0.2, 0.2])
        image[~valid[sl]] = [0.7, 0.75, 0.85]
        if differ is not None:
            image[differ] = [0.9, 0.1, 0.1]
        return image

    panels = [("scene", rgb), ("one pass (white: landslide)", colour(ref[sl], None)),
              (f"plain tiling, overlap 0: {plain} px on seams differ (red)",
               colour(fig["plain"][sl] == 1, wrong["plain"][sl])),
              (f"blended, overlap {args.overlap}: {blended} px on seams differ (red)",
               colour(fig["blended"][sl] == 1, wrong["blended"][sl]))]
    figure, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (title, image) in zip(axes, panels, strict=False):
        ax.imshow(image, interpolation="nearest")
        for r in rows:
            if r0 <= r < r0 + size:
                ax.axhline(r - r0 - 0.5, color="orange", ls="--", lw=0.8)
        for c in cols:
            if c0 <= c < c0 + size:
                ax.axvline(c - c0 - 0.5, color="orange", ls="--", lw=0.8)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"landslide masks at rows {r0}–{r0 + size - 1}, columns "
                    f"{c0}–{c0 + size - 1} (dashed: plain tiling's tile edges, tile "
                    f"{args.tile}; blue-grey: no data)", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return {"file": path.name, "window_col_row_width_height": _win(window),
            "plain_pixels_different_on_seams": plain,
            "blended_pixels_different_on_seams": blended}


def nodata_cost(scene: Path, weights: Path, work: Path, args) -> dict:
    """(4) time an all-no-data region adds to a map vs an equally large valid region.

    Three scenes of the same height: ``base`` = a valid strip one tile wide, then a no-data
    gap one tile wide (so that no window holds pixels of both the strip and what follows);
    ``valid`` = base + the region, all valid; ``nodata`` = base + the same region, all no
    data. Time added by a region = its scene's time - base's time (medians).
    """
    with rasterio.open(scene) as src:
        h, w = src.height, src.width
    side = min(args.region, h, w)
    region = centred(h, w, side, side)
    strip = Window(region.col_off, region.row_off, args.tile, side)
    base = [(strip, 0, 0, True)]
    pieces = {"base": (base, 2 * args.tile),
              "valid": ([*base, (region, 0, 2 * args.tile, True)], 2 * args.tile + side),
              "nodata": ([*base, (region, 0, 2 * args.tile, False)], 2 * args.tile + side)}
    with rasterio.open(scene) as src:
        transform = src.window_transform(strip)
    scenes = {name: compose(work / f"region-{name}.tif", scene, side, width, parts, transform)
              for name, (parts, width) in pieces.items()}
    for name in scenes:  # warm-up
        timed_map(scenes[name], weights, work / f"r-{name}", args)
    times: dict[str, list[float]] = {name: [] for name in scenes}
    for r in range(args.repeats):
        for name in scenes:
            times[name].append(timed_map(scenes[name], weights, work / f"r-{name}", args))
        print(f"  no-data repeat {r + 1}/{args.repeats}: "
              + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    windows = {k: json.loads((work / f"r-{k}" / "map.json").read_text())["windows"]
               for k in scenes}
    added_valid, added_nodata = med["valid"] - med["base"], med["nodata"] - med["base"]
    return {"region": [side, side], "base": [side, 2 * args.tile], "windows": windows,
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "added_seconds": {"valid": round(added_valid, 3), "nodata": round(added_nodata, 3)},
            "ratio": round(added_nodata / added_valid, 4),
            "ratio_whole_scenes": round(med["nodata"] / med["valid"], 4)}


# --- report ---------------------------------------------------------------------------------

def card_summary(weights: Path) -> dict:
    card = read_card(weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    prov = card.provenance
    return {"file": str(weights), "sha256_16": digest,
            **{k: getattr(card, k) for k in ("model", "in_channels", "inputs", "model_kwargs",
                                             "classes")},
            "provenance": {k: prov[k] for k in ("git_commit", "created", "scdnn_version")
                           if k in prov}}


def markdown(results: dict) -> str:
    s, t, m, a, n = (results[k] for k in ("settings", "throughput", "memory", "agreement",
                                          "nodata"))
    c = results["checks"]
    quick = ["**`--quick`: a check that the script runs, not a measurement.**", ""] \
        if s["quick"] else []
    lines = ["# Mapping whole scenes (benchmarks/mapping.py)", "", *quick,
             f"Scene `{s['scene']}` ({s['scene_size'][0]} x {s['scene_size'][1]} px), "
             f"tile {s['tile']}, overlap {s['overlap']}, batch {s['batch_size']}, "
             f"device {s['device']}, {s['repeats']} interleaved repeat(s) (medians); weights "
             f"`{results['weights']['file']}` ({results['weights'].get('model')}, sha256 "
             f"{results['weights']['sha256_16']}…).", "",
             "| check | measured | target | met |", "|---|---:|---:|---|"]
    for key, label, fmt, op in (
            ("throughput", "map px/s ÷ bare forward px/s, same windows", "{:.3f}", "≥"),
            ("memory", "peak RSS, 2x2 mosaic ÷ scene", "{:.3f}", "≤"),
            ("agreement", "blended tiled mask = one pass (share of valid px)", "{:.2%}", "≥"),
            ("nodata", "time added: no-data region ÷ valid region", "{:.3f}", "≤")):
        target = fmt.format(TARGETS[key]) if key != "agreement" else "99.5 %"
        lines.append(f"| {label} | {fmt.format(c[key]['measured'])} | {op} {target} | "
                     f"{c[key]['met']} |")
    lines += ["", f"Plain tiling (overlap 0) beside blending: {a['plain']['share_equal']:.2%} of "
              f"valid pixels equal to one pass ({a['plain']['pixels_different']:,} differ) vs "
              f"{a['blended']['share_equal']:.2%} ({a['blended']['pixels_different']:,}); mean "
              f"|Δp| {a['plain']['mean_abs_probability_difference']:.4f} vs "
              f"{a['blended']['mean_abs_probability_difference']:.4f}.", "",
              "## 1. Throughput", "",
              f"{t['windows_run']} windows of {t['window'][0]} x {t['window'][1]} "
              f"({t['pixels']:,} px): map_scene end to end {t['map_pixels_per_s']:,.0f} px/s "
              f"(seconds: {t['map_seconds']}), bare forward {t['forward_pixels_per_s']:,.0f} "
              f"px/s (seconds: {t['forward_seconds']}).", "",
              "## 2. Peak memory (fresh process each)", "",
              f"Scene {m['scene_size'][0]} x {m['scene_size'][1]}, mosaic "
              f"{m['mosaic_size'][0]} x {m['mosaic_size'][1]} (windows run: "
              f"{m['windows']['scene']['run']} vs {m['windows']['mosaic']['run']}).", "",
              "| process | peak RSS (MiB) | added over import + model (MiB) |",
              "|---|---:|---:|",
              f"| import scdnn, load model | {m['peak_rss_mib']['baseline']} | |",
              f"| map the scene | {m['peak_rss_mib']['scene']} | "
              f"{m['added_by_mapping_mib']['scene']} |",
              f"| map the 2x2 mosaic | {m['peak_rss_mib']['mosaic']} | "
              f"{m['added_by_mapping_mib']['mosaic']} |", "",
              "## 3. Agreement with one pass", ""]
    op = a["one_pass"]
    where = ("the whole scene" if op["whole_scene"] else
             f"the centred crop {op['size'][0]} x {op['size'][1]} (col, row, width, height "
             f"{op['crop_window_col_row_width_height']}), the largest whose estimated memory "
             f"fits the budget of {op['budget_gib']} GiB (whole scene estimated from a "
             f"{op['probe_side']}² probe at {op['estimated_bytes_per_pixel']:.0f} B/px)")
    lines += [f"One pass over {where}; its process peaked at {op['measured_peak_gib']} GiB "
              f"(estimated {op['estimated_peak_gib']} GiB). Tiled maps of the same "
              f"{'scene' if op['whole_scene'] else 'crop'}; {a['valid_pixels']:,} valid pixels, "
              f"{a['one_pass_landslide_share']:.2%} landslide in one pass.", "",
              "probability.tif stores percent, so the mean abs Δ probability includes its "
              "rounding (about 0.0025 alone).", "",
              "| tiling | mask equal to one pass | pixels differing | mean abs Δ probability |",
              "|---|---:|---:|---:|"]
    for name in [k for k in a if isinstance(a[k], dict) and "share_equal" in a[k]]:
        r = a[name]
        lines.append(f"| {name} (tile {r.get('tile', s['tile'])}, overlap {r['overlap']}; "
                     f"{r.get('seconds', '?')} s) | {r['share_equal']:.3%} | "
                     f"{r['pixels_different']:,} | {r['mean_abs_probability_difference']:.5f} |")
    drawn = results.get("seams")
    lines += ["", (f"`{drawn['file']}`: crop at (col, row, width, height) "
                   f"{drawn['window_col_row_width_height']}: "
                   f"{drawn['plain_pixels_different_on_seams']} px within 4 px of plain "
                   f"tiling's seams differ from one pass, "
                   f"{drawn['blended_pixels_different_on_seams']} blended."
                   if drawn else "No crop found where plain tiling shows a seam (≥ 20 px "
                   "differing within 4 px of its tile edges) that blending removes; no figure.")]
    lines += ["", "## 4. No-data regions", "",
              f"Region {n['region'][0]} x {n['region'][1]} to the right of a base scene "
              f"{n['base'][0]} x {n['base'][1]} (a valid strip one tile wide, then a no-data "
              f"gap one tile wide); windows run: base {n['windows']['base']['run']}, base + "
              f"valid region {n['windows']['valid']['run']}, base + no-data region "
              f"{n['windows']['nodata']['run']} (of {n['windows']['nodata']['total']}). "
              f"Seconds: {n['seconds']}. Time added by the region: valid "
              f"{n['added_seconds']['valid']} s, no data {n['added_seconds']['nodata']} s. "
              f"Whole-scene times (base included), no data ÷ valid: "
              f"{n['ratio_whole_scenes']:.3f}."]
    return "\n".join(lines)


#: The parts ``--only`` can run, as their results are keyed.
SECTIONS = ("throughput", "nodata", "agreement", "memory")


def _scene(args, work: Path) -> Path:
    """The scene measured: ``--scene``, or its centred 768x768 crop with ``--quick`` (a
    generated scene where it is absent)."""
    if not args.quick:
        return args.scene
    if args.scene.is_file():
        with rasterio.open(args.scene) as src:
            h, w = src.height, src.width
        return crop(work / "quick.tif", args.scene, centred(h, w, min(768, h), min(768, w)))
    return generated_scene(work / "quick.tif", 768)


def run_only(sections: list[str], scene: Path, work: Path, args, card) -> dict:
    """``--only``: the chosen parts, in the full run's order, results keyed by part."""
    results = {}
    for name in [s for s in SECTIONS if s in sections]:
        print(f"({name})", flush=True)
        if name == "throughput":
            results[name] = throughput(scene, args.weights, work, args, card)
        elif name == "nodata":
            results[name] = nodata_cost(scene, args.weights, work, args)
        elif name == "agreement":
            results[name] = agreement(scene, args.weights, work, args, card)[0]
        else:
            results[name] = memory(scene, args.weights, work, args)
    return results


def main() -> None:
    # as the scdnn program does (scdnn.runtime): the map and the bare forward pass alike, and
    # the fresh processes of the memory part through the environment
    keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True,
                        help=".safetensors with an scdnn model card")
    parser.add_argument("--scene", type=Path, default=SCENE_B, help=f"scene ({SCENE_B})")
    parser.add_argument("--tile", type=int, default=2048, help="window size (2048, as scdnn map)")
    parser.add_argument("--overlap", type=int, default=512, help="overlap (512, as scdnn map)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="windows per batch (1, as scdnn map)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, (1) and (4)")
    parser.add_argument("--rss-repeats", type=int, default=1, help="fresh processes per (2) figure")
    parser.add_argument("--region", type=int, default=2048, help="side of the (4) regions")
    parser.add_argument("--probe", type=int, default=1024,
                        help="side of the window whose one-pass memory is measured first")
    parser.add_argument("--one-pass-gib", type=float, default=16.0,
                        help="memory budget of the one-pass prediction (also ≤ 70 %% of "
                        "available memory)")
    parser.add_argument("--quick", action="store_true",
                        help="check the script: 768x768 crop, tile 256, one repeat")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, help="folder for generated scenes and maps "
                        "(default: a temporary folder, deleted)")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this part (repeatable) and print its results as JSON; "
                        "nothing is written under --out")
    args = parser.parse_args()
    if args.quick:
        args.tile, args.overlap, args.repeats, args.rss_repeats = 256, 32, 1, 1
        args.region, args.probe = 512, 256
    torch.manual_seed(0)
    card = read_card(args.weights)
    args.align = Predictor.from_file(args.weights).output_stride
    with tempfile.TemporaryDirectory(prefix="scdnn-mapping-", dir=args.work) as tmp:
        work = Path(tmp)
        scene = _scene(args, work)
        with rasterio.open(scene) as src:
            size = [src.height, src.width]
        if args.only:
            settings = {"scene": str(args.scene), "scene_size": size,
                        **{k: getattr(args, k) for k in ("tile", "overlap", "batch_size",
                                                         "device", "repeats", "rss_repeats",
                                                         "quick")}}
            print(json.dumps({"settings": settings, "weights": card_summary(args.weights),
                              **run_only(args.only, scene, work, args, card)}, indent=1))
            return
        print("(1) throughput", flush=True)
        tp = throughput(scene, args.weights, work, args, card)
        print("(4) no-data regions", flush=True)
        nd = nodata_cost(scene, args.weights, work, args)
        print("(3) agreement with one pass", flush=True)
        ag, fig = agreement(scene, args.weights, work, args, card)
        args.out.mkdir(parents=True, exist_ok=True)
        seams = seam_figure(fig, args, args.out / "mapping-seams.png")
        del fig
        print("(2) peak memory", flush=True)
        mem = memory(scene, args.weights, work, args)
    checks = {
        "throughput": {"measured": tp["ratio"], "target_min": TARGETS["throughput"],
                       "met": tp["ratio"] >= TARGETS["throughput"]},
        "memory": {"measured": mem["ratio"], "target_max": TARGETS["memory"],
                   "met": mem["ratio"] <= TARGETS["memory"]},
        "agreement": {"measured": ag["blended"]["share_equal"],
                      "target_min": TARGETS["agreement"],
                      "met": ag["blended"]["share_equal"] >= TARGETS["agreement"],
                      "plain_tiling": ag["plain"]["share_equal"]},
        "nodata": {"measured": nd["ratio"], "target_max": TARGETS["nodata"],
                   "met": nd["ratio"] <= TARGETS["nodata"]},
    }
    settings = {"scene": str(args.scene) + (" (768x768 centred crop)" if args.quick else ""),
                "scene_size": size, "tile": args.tile, "overlap": args.overlap,
                "batch_size": args.batch_size, "device": args.device, "repeats": args.repeats,
                "rss_repeats": args.rss_repeats, "quick": args.quick,
                "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__}
    results = {"settings": settings, "weights": card_summary(args.weights), "throughput": tp,
               "memory": mem, "agreement": ag, "seams": seams, "nodata": nd, "checks": checks}
    text = markdown(results)
    save("mapping", results, text, out=args.out)
    print(text)


if __name__ == "__main__":
    main()
