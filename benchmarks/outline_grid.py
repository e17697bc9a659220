"""Do a network's outlines follow a 4-pixel grid? Where predicted class changes fall, per run.

SCDnn's last upsampling block is a transposed convolution whose kernel equals its stride (4):
every 4x4 block of output pixels is computed from one feature vector at 1/4 scale, with no
spatial mixing at full resolution. If that makes outlines step along the block edges, the
places where the predicted mask changes class (between columns x-1 and x, rows y-1 and y)
pile up where x (or y) is a multiple of 4. A network whose outlines do not feel a grid, and
the true masks, put about 25 % of their changes on each of the 4 phases (x mod 4).

For each run of a ``scdnn benchmark`` folder of an image dataset, predicts its test images
with the run's weights (``weights.safetensors``, the validation-picked epoch) and counts the
class changes of the predicted and the true masks by phase.

    .venv/bin/python benchmarks/outline_grid.py runs/paper-sichuan ../shared/data/sichuan-aerial \
        --out benchmarks/results/paper-sichuan/outline_grid

Writes OUT.json and OUT.md; runs already in OUT.json (a finished run's weights do not change)
are not predicted again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from scdnn.datasets import open_dataset, read_image, read_mask
from scdnn.inference import landslide_probability
from scdnn.runs import atomic_write, provenance, write_json
from scdnn.weights import load_model

PERIOD = 4


def changes_by_phase(mask: np.ndarray, period: int = PERIOD) -> np.ndarray:
    """Counts of class changes between neighbouring pixels, by the phase (coordinate mod
    ``period``) of the second pixel of each pair; rows and columns together."""
    counts = np.zeros(period, dtype=np.int64)
    cols = np.nonzero(mask[:, 1:] != mask[:, :-1])[1] + 1
    rows = np.nonzero(mask[1:, :] != mask[:-1, :])[0] + 1
    for where in (cols, rows):
        counts += np.bincount(where % period, minlength=period)
    return counts


def share(counts: np.ndarray) -> list[float]:
    total = int(counts.sum())
    return [round(float(c) / total, 4) if total else 0.0 for c in counts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", type=Path, help="a scdnn benchmark folder (runs/<name>-seed<k>)")
    parser.add_argument("data", type=Path, help="the image dataset it was run on")
    parser.add_argument("--out", type=Path, required=True, help="prefix of OUT.json and OUT.md")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    dataset = open_dataset(args.data)
    samples = {s.name: s for s in dataset.samples}
    test = json.loads((args.bench / "split.json").read_text())["test"]
    truth = np.zeros(PERIOD, dtype=np.int64)
    for name in test:
        truth += changes_by_phase(read_mask(samples[name].mask_path) > 0)
    rows = {"truth": {"changes": int(truth.sum()), "share_by_phase": share(truth)}}
    done = {}
    if args.out.with_suffix(".json").is_file():
        done = json.loads(args.out.with_suffix(".json").read_text())["runs"]
    for run in sorted(p for p in (args.bench / "runs").iterdir()
                      if (p / "weights.safetensors").is_file()):
        if run.name in done:
            rows[run.name] = done[run.name]
            continue
        model, card = load_model(run / "weights.safetensors")
        model.eval()
        norm = card.normalization
        counts = np.zeros(PERIOD, dtype=np.int64)
        for name in test:
            prob = landslide_probability(model, read_image(samples[name].image_path), norm)
            counts += changes_by_phase(prob >= 0.5)
        rows[run.name] = {"changes": int(counts.sum()), "share_by_phase": share(counts)}
        print(run.name, rows[run.name], flush=True)

    result = {"benchmark": str(args.bench), "data": str(args.data), "test_images": test,
              "period": PERIOD, "runs": rows, "provenance": provenance()}
    write_json(args.out.with_suffix(".json"), result)
    lines = [f"# Where outlines change class, by x (or y) mod {PERIOD}",
             "", f"`benchmarks/outline_grid.py {args.bench} {args.data}`: class changes between "
             f"neighbouring pixels of the {len(test)} test images' masks, by the phase of the "
             "second pixel. Even spread: 25 % each.", "",
             "| masks | changes | " + " | ".join(f"phase {k}" for k in range(PERIOD)) + " |",
             "|---|---:|" + "---:|" * PERIOD]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['changes']:,} | "
                     + " | ".join(f"{100 * s:.1f} %" for s in row["share_by_phase"]) + " |")
    with atomic_write(args.out.with_suffix(".md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
