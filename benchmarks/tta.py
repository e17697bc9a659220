"""Test-time augmentation: what ``--tta flips`` and ``--tta d4`` cost and what they change,
on the bundled weights and the bundled demo sample (4 held-back test images of the weights'
split, 640 x 640).

For each mode (none, flips, d4) every image is predicted whole (:meth:`scdnn.Predictor.
probability`, batch 1, on the CPU) and thresholded at 0.5; the masks are scored against the
sample's truth with the package's evaluator (MIoU, landslide IoU and F1, boundary F1 at 2 px)
and compared with the masks of ``none`` (share of pixels that change). Time: the modes run
interleaved, one pass over all images each, in ``--rounds`` rounds with the order rotated
each round (after one untimed warm-up image per mode); each figure is the median over rounds
of the seconds for one pass over the images, and the ratio to ``none``'s median is the cost.

    .venv/bin/python benchmarks/tta.py [--rounds 2] [--images N]

Writes benchmarks/results/tta-cost.json and tta-cost.md (machine and settings included).
Four images are far too few to rank the modes by score: the scores say whether TTA moves
the masks, not whether it improves them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from _common import save
from scdnn.datasets import open_dataset, read_image, read_mask
from scdnn.demo import bundled_sample, bundled_weights
from scdnn.metrics import Evaluator
from scdnn.predictor import TTA_MODES, Predictor


def scores(metrics: dict) -> dict:
    return {"miou": round(metrics["miou"], 4),
            "landslide_iou": round(metrics["class_iou"]["landslide"], 4),
            "landslide_f1": round(metrics["landslide_f1"], 4),
            "boundary_f1_2px": round(metrics["boundary_f1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=None,
                        help="only the first N images of the sample (all 4)")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()

    load_start = round(os.getloadavg()[0], 2)
    samples = open_dataset(bundled_sample()).samples[:args.images]
    images = [read_image(s.image_path) for s in samples]
    truths = [read_mask(s.mask_path) for s in samples]
    predictors = {tta: Predictor.from_file(bundled_weights(), tta=tta) for tta in TTA_MODES}
    for predictor in predictors.values():  # warm-up, untimed
        predictor.probability(images[0][:256, :256])

    seconds: dict[str, list[float]] = {tta: [] for tta in TTA_MODES}
    probabilities: dict[str, list[np.ndarray]] = {}
    for k in range(args.rounds):
        order = list(TTA_MODES[k % 3:] + TTA_MODES[:k % 3])
        for tta in order:
            start = time.perf_counter()
            out = [predictors[tta].probability(image) for image in images]
            seconds[tta].append(time.perf_counter() - start)
            probabilities[tta] = out

    results: dict = {"modes": {}}
    masks = {tta: [p >= args.threshold for p in probabilities[tta]] for tta in TTA_MODES}
    base = statistics.median(seconds["none"])
    for tta in TTA_MODES:
        evaluator = Evaluator(tolerance=2)
        for sample, mask, truth in zip(samples, masks[tta], truths, strict=True):
            evaluator.update(mask.astype(np.uint8), truth, sample.name)
        changed = sum(int((m != n).sum()) for m, n in zip(masks[tta], masks["none"],
                                                         strict=True))
        total = sum(m.size for m in masks[tta])
        median = statistics.median(seconds[tta])
        results["modes"][tta] = {
            "passes": {"none": 1, "flips": 3, "d4": 8}[tta],
            "seconds_per_pass_over_images": [round(s, 3) for s in seconds[tta]],
            "median_seconds": round(median, 3),
            "seconds_per_image": round(median / len(images), 3),
            "time_ratio_to_none": round(median / base, 2),
            "mask_pixels_changed_vs_none": round(changed / total, 5),
            "max_probability_change_vs_none": round(float(max(
                np.abs(p - q).max() for p, q in zip(probabilities[tta], probabilities["none"],
                                                    strict=True))), 4),
            "scores": scores(evaluator.compute()),
        }
    results["settings"] = {
        "weights": "src/scdnn/data/scdnn-sichuan.safetensors (bundled; "
                   f"{predictors['none'].card.dtype or 'float32'} on disk, float32 network)",
        "upsampling_kernel": predictors["none"].card.model_kwargs.get("upsampling_kernel"),
        "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "images": [s.name for s in samples],
        "image_size": list(images[0].shape[:2]),
        "sample": "src/scdnn/data/sample (bundled demo sample)",
        "rounds": args.rounds, "threshold": args.threshold, "device": "cpu", "batch": 1,
        "torch_threads": torch.get_num_threads(),
    }

    rows = ["| tta | passes | s per image (median) | time ÷ none | mask pixels changed vs none "
            "| MIoU | landslide IoU | landslide F1 | boundary F1 (2 px) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for tta, r in results["modes"].items():
        s = r["scores"]
        changed = 100 * r["mask_pixels_changed_vs_none"]
        rows.append(f"| {tta} | {r['passes']} | {r['seconds_per_image']:.2f} | "
                    f"{r['time_ratio_to_none']:.2f} | {changed:.2f} % | {100 * s['miou']:.2f} | "
                    f"{100 * s['landslide_iou']:.2f} | "
                    f"{100 * s['landslide_f1']:.2f} | {100 * s['boundary_f1_2px']:.2f} |")
    st = results["settings"]
    markdown = "\n".join([
        "# Test-time augmentation: cost and effect (`benchmarks/tta.py`)", "",
        f"Bundled weights on the bundled demo sample ({len(images)} images, "
        f"{st['image_size'][0]} x {st['image_size'][1]}: {', '.join(st['images'])}), whole "
        f"images, batch 1, CPU, {st['torch_threads']} torch threads, threshold "
        f"{st['threshold']}; time = median over {st['rounds']} interleaved rounds of one pass "
        "over the images (1-minute load average "
        f"{st['load_average_1min']['start']} at the start, {st['load_average_1min']['end']} at "
        "the end: the machine was shared, so the ratios are the figures to read); scores in %.",
        "",
        *rows, "",
        "Time grows with the number of forward passes (3 for flips, 8 for d4). "
        f"{len(images)} images are far too few to rank the modes by score: the scores show "
        "how much TTA moves the masks, not whether it improves them."])
    save("tta-cost", results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
