"""Inference engines side by side in one run: ONNX Runtime vs PyTorch fp32, and PyTorch bf16
autocast vs fp32, on the CPU, on the same inputs (issue 6).

(a) pixels/s of whole-image inference (batch 1, one ``--size`` x ``--size`` image at a time)
    of the network in ``--weights`` exported to ONNX and run by ONNX Runtime, against the same
    network in PyTorch fp32: ratio ONNX Runtime / PyTorch (target ≥ 1.0), and how many mask
    pixels (landslide where logit 1 > logit 0) the two agree on;
(b) PyTorch with ``torch.autocast("cpu", dtype=torch.bfloat16)`` against fp32: speed ratio
    and the share of mask pixels equal to fp32's.

The three are timed interleaved, image by image (fp32, ONNX Runtime, bf16, with the order
rotated every repeat so none always runs first), and each figure is the median over repeats
of the time for one pass over all images. Inputs are the ``--images`` (default
../shared/data/sichuan-aerial/images; the top-left ``--size`` square of each), or generated
random images when that folder is absent or the model does not take RGB.

    .venv/bin/python benchmarks/engines.py --weights RUN/weights.safetensors [--repeats 5]
    .venv/bin/python benchmarks/engines.py --weights W --quick   # seconds; engines-quick.*

Writes benchmarks/results/engines.json and engines.md (``--quick``: engines-quick.*).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import save
from scdnn.datasets import IMAGE_EXTENSIONS, Normalization, read_image
from scdnn.engines import OnnxModel
from scdnn.export import export_onnx
from scdnn.weights import load_model

DEFAULT_IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / \
    "sichuan-aerial" / "images"
ENGINES = ("pytorch_fp32", "onnxruntime_fp32", "pytorch_bf16_autocast")


def load_inputs(folder: Path, size: int, count: int, channels: int,
                normalization: Normalization) -> tuple[list[torch.Tensor], str]:
    """Normalised ``1 x C x size x size`` tensors and a phrase saying where they came from."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) \
        if folder.is_dir() else []
    if files and channels == 3:
        arrays = [read_image(p)[:size, :size] for p in files[:count]]
        source = f"{folder.resolve()}: top-left {size}x{size} of {len(arrays)} images"
    else:
        rng = np.random.default_rng(0)
        rows, cols = np.mgrid[0:size, 0:size]
        base = 128 + 80 * np.sin(rows / 17.0) * np.cos(cols / 23.0)
        arrays = [np.clip(base[..., None] + rng.normal(0, 30, (size, size, channels)), 0, 255)
                  .astype(np.uint8) for _ in range(count)]
        why = "model is not RGB" if files else f"{folder} not found"
        source = f"{count} generated random {size}x{size} images ({why})"
    return [torch.from_numpy(normalization.apply(a))[None] for a in arrays], source


def cpu_flags() -> list[str]:
    """The CPU's bf16 instruction flags (bf16 autocast is only fast with these)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f") if f in flags]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a .safetensors weights file")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES,
                        help="folder of images (default ../shared/data/sichuan-aerial/images; "
                        "random images when absent)")
    parser.add_argument("--repeats", type=int, help="passes over all images (5; --quick 2)")
    parser.add_argument("--size", type=int, help="image side in pixels (512; --quick 64)")
    parser.add_argument("--max-images", type=int, help="images per pass (8; --quick 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both PyTorch and ONNX Runtime (default: each "
                        "library's own choice)")
    parser.add_argument("--quick", action="store_true",
                        help="64x64, 2 images, 2 repeats unless given: checks the script "
                        "runs; writes engines-quick.* instead of engines.*")
    args = parser.parse_args()
    for name, normal, quick in (("size", 512, 64), ("max_images", 8, 2), ("repeats", 5, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, card = load_model(args.weights)
    normalization = card.normalization
    inputs, source = load_inputs(args.images, args.size, args.max_images,
                                 card.in_channels, normalization)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        onnx_path = export_onnx(args.weights, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - started
        onnx_model = OnnxModel(onnx_path, threads=args.threads)

    def pytorch_fp32(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    def pytorch_bf16(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x).float()

    run = {"pytorch_fp32": pytorch_fp32, "onnxruntime_fp32": onnx_model,
           "pytorch_bf16_autocast": pytorch_bf16}
    masks: dict[str, list[np.ndarray]] = {e: [] for e in ENGINES}
    for engine in ENGINES:  # warm-up (oneDNN kernels, ORT's first run) and the masks
        for x in inputs:
            logits = run[engine](x)
            masks[engine].append((logits[:, 1] > logits[:, 0]).numpy())

    passes: dict[str, list[float]] = {e: [] for e in ENGINES}
    for r in range(args.repeats):
        order = ENGINES[r % 3:] + ENGINES[:r % 3]
        spent = {e: 0.0 for e in ENGINES}
        for x in inputs:
            for engine in order:
                start = time.perf_counter()
                run[engine](x)
                spent[engine] += time.perf_counter() - start
        for engine in ENGINES:
            passes[engine].append(spent[engine])
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{e} {spent[e]:.2f} s" for e in ENGINES), flush=True)

    pixels = sum(int(x.shape[-2] * x.shape[-1]) for x in inputs)
    rows = {e: {"median_pass_s": round(statistics.median(passes[e]), 4),
                "passes_s": [round(t, 4) for t in passes[e]],
                "pixels_per_s": round(pixels / statistics.median(passes[e]), 1)} for e in ENGINES}

    def agreement(engine: str) -> float:
        ref = np.concatenate([m.ravel() for m in masks["pytorch_fp32"]])
        got = np.concatenate([m.ravel() for m in masks[engine]])
        return round(float(np.mean(ref == got)), 6)

    fp32 = rows["pytorch_fp32"]["pixels_per_s"]
    checks = {
        "onnxruntime_over_pytorch_speed": round(rows["onnxruntime_fp32"]["pixels_per_s"] / fp32, 3),
        "onnxruntime_speed_target_min": 1.0,
        "onnxruntime_mask_agreement": agreement("onnxruntime_fp32"),
        "bf16_over_fp32_speed": round(rows["pytorch_bf16_autocast"]["pixels_per_s"] / fp32, 3),
        "bf16_mask_agreement": agreement("pytorch_bf16_autocast"),
        "landslide_share_fp32": round(float(np.mean(np.concatenate(
            [m.ravel() for m in masks["pytorch_fp32"]]))), 4),
    }
    settings = {"weights": str(Path(args.weights).resolve()), "model": card.model,
                "inputs": source, "images": len(inputs), "size": args.size,
                "batch_size": 1, "repeats": args.repeats, "quick": args.quick,
                "torch_threads": torch.get_num_threads(),
                "onnxruntime_threads": args.threads or "onnxruntime default",
                "onnxruntime": _ort_version(), "onnx_opset": 18,
                "export_seconds": round(export_s, 2), "cpu_bf16_flags": cpu_flags()}

    met = checks["onnxruntime_over_pytorch_speed"] >= 1.0
    lines = ["# Inference engines on the CPU (benchmarks/engines.py)", "",
             f"{card.model} from `{Path(args.weights).name}`, batch 1, "
             f"{len(inputs)} images of {args.size}x{args.size} ({source}); median of "
             f"{args.repeats} interleaved passes; torch threads {torch.get_num_threads()}, "
             f"ONNX Runtime threads: {settings['onnxruntime_threads']}; CPU bf16 flags: "
             f"{', '.join(settings['cpu_bf16_flags']) or 'none'}.", "",
             "| engine | median pass (s) | pixels/s | speed vs PyTorch fp32 | mask agreement "
             "with PyTorch fp32 |", "|---|---:|---:|---:|---:|"]
    for engine in ENGINES:
        r = rows[engine]
        lines.append(f"| {engine} | {r['median_pass_s']:.3f} | {r['pixels_per_s']:,.0f} | "
                     f"{r['pixels_per_s'] / fp32:.3f} | "
                     f"{agreement(engine):.4%} |")
    lines += ["", "| check | measured | target | met |", "|---|---:|---:|---|",
              f"| ONNX Runtime / PyTorch fp32 pixels/s | "
              f"{checks['onnxruntime_over_pytorch_speed']:.3f} | ≥ 1.0 | {met} |",
              f"| bf16 autocast / fp32 pixels/s | {checks['bf16_over_fp32_speed']:.3f} | – | – |",
              f"| bf16 autocast mask agreement | {checks['bf16_mask_agreement']:.4%} | – | – |"]
    if args.quick:
        lines.insert(1, "\n**--quick run: checks the script, not a measurement.**")
    save("engines-quick" if args.quick else "engines",
         {"settings": settings, "engines": rows, "checks": checks}, "\n".join(lines))
    print("\n".join(lines))


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
