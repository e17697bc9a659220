"""Why map windows are aligned to the network's output stride (benchmarks/results/alignment.md).

One pass of the network over a whole scene, then the same network on 1024 px windows cut
from it at offsets that are, and are not, multiples of its output stride; each window's core
(its central 512 px, far from the window's own edges) is compared with the one pass. A
strided network is not shift-equivariant: only the aligned windows reproduce the one pass.

    .venv/bin/python benchmarks/alignment.py --weights runs/jinsha-scdnn-rgb/weights.safetensors
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rasterio.windows import Window

from _common import save
from scdnn.mapping import open_scene
from scdnn.mapping.core import model_input
from scdnn.predictor import landslide_softmax
from scdnn.weights import load_model

OFFSETS = (1024, 1040, 992, 1032, 1000, 1030)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--scene", default="../shared/data/jinsha-uav/scene-b/rgb.tif")
    args = parser.parse_args()
    model, card = load_model(args.weights)
    stride = int(model.output_stride)
    norm = card.normalization
    with open_scene(args.scene, card.in_channels, card.inputs) as sc:
        x = model_input(sc, Window(0, 0, sc.width, sc.height), norm)
    whole = landslide_softmax(model, torch.from_numpy(x)[None])[0]
    rows = []
    for off in OFFSETS:
        part = np.ascontiguousarray(x[:, off:off + 1024, off:off + 1024])
        p = landslide_softmax(model, torch.from_numpy(part)[None])[0][256:768, 256:768]
        q = whole[off + 256:off + 768, off + 256:off + 768]
        rows.append({"offset": off, "aligned": off % stride == 0,
                     "mask_equal": float(((p >= 0.5) == (q >= 0.5)).mean()),
                     "mean_abs_probability_difference": float(np.abs(p - q).mean())})
    lines = ["# Window offsets and one pass (benchmarks/alignment.py)", "",
             f"Scene `{args.scene}`, weights `{args.weights}` ({card.model}, output stride "
             f"{stride}). 1024 px windows at (offset, offset); their central 512 px compared "
             "with one pass over the whole scene.", "",
             "| offset | multiple of the stride | mask equal | mean abs Δ probability |",
             "|---:|---|---:|---:|"]
    lines += [f"| {r['offset']} | {'yes' if r['aligned'] else 'no'} | {r['mask_equal']:.3%} | "
              f"{r['mean_abs_probability_difference']:.5f} |" for r in rows]
    save("alignment", {"scene": args.scene, "weights": args.weights, "stride": stride,
                       "rows": rows}, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
