"""Speed and size of the five networks, side by side in one run (issue: networks, §6).

For each network at 256x256, batch 8, on this machine: parameters, forward GFLOPs per image,
training images/s (forward + backward + Adam step), inference images/s, and the inference
FLOP/s achieved as a share of the fp32 matmul peak measured in the same run. Models are timed in
interleaved rounds (one step of each, then again) so drift in machine load hits all alike;
each figure is the median over rounds.

    .venv/bin/python benchmarks/models.py [--rounds 3] [--batch-size 8] [--size 256]

Writes benchmarks/results/models.json and models.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import matmul_peak_gflops, save
from scdnn.models import MODEL_NAMES, count_parameters, create_model, gflops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--models", nargs="*", default=list(MODEL_NAMES))
    args = parser.parse_args()
    torch.manual_seed(0)
    n, s = args.batch_size, args.size
    x = torch.randn(n, 3, s, s)
    y = torch.randint(0, 2, (n, s, s))
    nets = {name: create_model(name) for name in args.models}
    optims = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in nets.items()}
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step(name: str) -> float:
        model, opt = nets[name], optims[name]
        model.train()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    def infer_step(name: str) -> float:
        model = nets[name]
        model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            model(x)
        return time.perf_counter() - start

    for name in nets:  # warm-up: allocator, oneDNN kernels
        train_step(name)
        infer_step(name)
    train_t = {name: [] for name in nets}
    infer_t = {name: [] for name in nets}
    peaks = [matmul_peak_gflops()]
    for r in range(args.rounds):
        for name in nets:
            train_t[name].append(train_step(name))
            infer_t[name].append(infer_step(name))
        peaks.append(matmul_peak_gflops())
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    peak = statistics.median(peaks)

    rows = {}
    for name, model in nets.items():
        g = gflops(model, in_channels=3, size=s)
        infer_ips = n / statistics.median(infer_t[name])
        rows[name] = {
            "parameters": count_parameters(model),
            "gflops_per_image": round(g, 3),
            "train_images_per_s": round(n / statistics.median(train_t[name]), 3),
            "inference_images_per_s": round(infer_ips, 3),
            "inference_gflops_per_s": round(g * infer_ips, 2),
            "share_of_matmul_peak": round(g * infer_ips / peak, 4),
        }
    ref = rows.get("deeplabv3plus-resnet50")
    checks = {}
    if ref and "scdnn" in rows:
        sc = rows["scdnn"]
        checks = {
            "params_ratio_scdnn_over_resnet50": round(sc["parameters"] / ref["parameters"], 4),
            "params_target_max": 0.25,
            "train_speed_ratio_scdnn_over_resnet50":
                round(sc["train_images_per_s"] / ref["train_images_per_s"], 3),
            "train_speed_target_min": 2.5,
            "scdnn_inference_share_of_peak": sc["share_of_matmul_peak"],
            "inference_share_target_min": 0.5,
        }
    settings = {"batch_size": n, "size": s, "rounds": args.rounds, "dtype": "float32",
                "matmul_peak_gflops": round(peak, 2), "matmul_peaks": [round(p, 2) for p in peaks]}
    lines = ["# Networks: size and speed (benchmarks/models.py)", "",
             f"Batch {n}, {s}x{s}, fp32, median of {args.rounds} interleaved rounds; "
             f"fp32 matmul peak measured in the same run: {peak:.1f} GFLOP/s.", "",
             "| model | parameters | GFLOPs/image | train img/s | inference img/s | "
             "inference GFLOP/s | share of matmul peak |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['gflops_per_image']:.2f} | "
                     f"{r['train_images_per_s']:.2f} | {r['inference_images_per_s']:.2f} | "
                     f"{r['inference_gflops_per_s']:.1f} | {r['share_of_matmul_peak']:.1%} |")
    if checks:
        lines += ["", "| check | measured | target | met |", "|---|---:|---:|---|",
                  f"| SCDnn params / DLv3+ ResNet50 params | "
                  f"{checks['params_ratio_scdnn_over_resnet50']:.3f} | ≤ 0.25 | "
                  f"{checks['params_ratio_scdnn_over_resnet50'] <= 0.25} |",
                  f"| SCDnn train img/s / DLv3+ ResNet50 train img/s | "
                  f"{checks['train_speed_ratio_scdnn_over_resnet50']:.2f} | ≥ 2.5 | "
                  f"{checks['train_speed_ratio_scdnn_over_resnet50'] >= 2.5} |",
                  f"| SCDnn inference FLOP/s / matmul peak | "
                  f"{checks['scdnn_inference_share_of_peak']:.1%} | ≥ 50 % | "
                  f"{checks['scdnn_inference_share_of_peak'] >= 0.5} |"]
    save("models", {"settings": settings, "models": rows, "checks": checks}, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
