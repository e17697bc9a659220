"""Overview PNGs of a mapped scene: predicted boundaries and true boundaries over the image.

For each ``--run NAME=RUN_DIR`` (a run of benchmarks/jinsha_scdnn.sh: RUN_DIR/eval holds the
predicted mask of the scene, ``masks/<scene>.tif``, and metrics.json), writes
``OUT/overview-NAME.png``: the scene's image at half resolution, the true landslide
boundaries in yellow and the predicted ones in magenta (boundaries found at full resolution,
thickened to stay visible), no-data greyed, with the scene's MIoU and boundary F1 in the
title. Run from the repository root::

    .venv/bin/python benchmarks/jinsha_overview.py --data ../shared/data/jinsha-uav/scene-b \\
        --out benchmarks/results/jinsha-scdnn --run rgb=runs/jinsha-scdnn-rgb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy import ndimage  # noqa: E402

from scdnn.metrics import boundary_pixels  # noqa: E402

TRUE_COLOUR = (1.0, 0.85, 0.0)
PRED_COLOUR = (1.0, 0.0, 1.0)


def _thick_boundary(mask: np.ndarray, keep: np.ndarray, factor: int) -> np.ndarray:
    """Boundary pixels at full resolution, dilated, then reduced by ``factor`` (any-pooling)."""
    edge = ndimage.binary_dilation(boundary_pixels(mask, keep), iterations=factor)
    h, w = (edge.shape[0] // factor) * factor, (edge.shape[1] // factor) * factor
    return edge[:h, :w].reshape(h // factor, factor, w // factor, factor).any(axis=(1, 3))


def overview(data: Path, run: Path, name: str, out: Path, factor: int = 2) -> Path:
    scene = data.name
    with rasterio.open(data / "rgb.tif") as src:
        shape = (src.height // factor, src.width // factor)
        rgb = np.moveaxis(src.read(out_shape=(src.count, *shape)), 0, -1)[..., :3]
        valid = src.dataset_mask(out_shape=shape) > 0
    with rasterio.open(data / "mask.tif") as src:
        truth = src.read(1)
    with rasterio.open(run / "eval" / "masks" / f"{scene}.tif") as src:
        pred = src.read(1)
    keep = truth != 255
    true_edge = _thick_boundary(truth == 1, keep, factor)[:shape[0], :shape[1]]
    pred_edge = _thick_boundary(pred == 1, keep, factor)[:shape[0], :shape[1]]
    image = rgb.astype(np.float32) / 255.0
    image[~valid] = 0.85
    image[true_edge] = TRUE_COLOUR
    image[pred_edge] = PRED_COLOUR
    image[true_edge & pred_edge] = (1.0, 1.0, 1.0)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    card = json.loads((run / "model.json").read_text())
    dpi = 100
    fig = plt.figure(figsize=(shape[1] / dpi, shape[0] / dpi + 1.4), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, shape[0] / (shape[0] + 140)])
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(f"jinsha {scene}: SCDnn ({', '.join(card.inputs)}) trained on scene-a\n"
                 f"MIoU {100 * metrics['miou']:.1f} %, landslide IoU "
                 f"{100 * metrics['class_iou']['landslide']:.1f} %, boundary F1 "
                 f"{100 * metrics['boundary_f1']:.1f} % (±{metrics['boundary_tolerance_px']} px)",
                 fontsize=16, y=0.995)
    fig.legend(handles=[Patch(color=TRUE_COLOUR, label="true boundary"),
                        Patch(color=PRED_COLOUR, label="predicted boundary"),
                        Patch(facecolor=(1, 1, 1), edgecolor="black", label="both"),
                        Patch(color=(0.85, 0.85, 0.85), label="no data")],
               loc="upper right", fontsize=14, ncol=4, bbox_to_anchor=(1.0, 0.93))
    path = out / f"overview-{name}.png"
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="scene folder (rgb.tif, mask.tif)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR")
    parser.add_argument("--factor", type=int, default=2, help="decimation factor (2)")
    args = parser.parse_args()
    for item in args.run:
        name, run = item.split("=", 1)
        print(overview(args.data, Path(run), name, args.out, args.factor))


if __name__ == "__main__":
    main()
