"""The benchmark's figures as PNG (matplotlib, Agg canvas): Fig. 8, Fig. 9, training curves.

Every figure is written under a temporary name beside its final one and renamed when complete.
The functions take plain numbers and arrays; the runner reads runs and predicts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidValueError
from ..metrics import MIOU_BINS
from ..overlay import boundary_overlay, display_rgb
from ..runs import atomic_path


def require_matplotlib() -> None:
    """Fail early, before any training, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidValueError("scdnn benchmark draws its figures with matplotlib, which is not "
                        "installed (pip install matplotlib)") from None


def agg_subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
                 **kwargs: Any):
    """``pyplot.subplots`` without pyplot: a ``Figure`` on its own Agg canvas, so drawing
    leaves the user's matplotlib backend alone and registers nothing with pyplot (the
    figure is freed with its last reference; nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def fig8_png(path: str | os.PathLike, bins: dict[str, dict[str, Any]], label: str,
             paper_counts: dict[str, int], paper_total: int, unit: str = "test images"
             ) -> Path:
    """Bar chart: share of test images per per-image-MIoU bin, ours beside the paper's.

    Parameters
    ----------
    bins : ``metrics["miou_bins"]``: label -> {"count", "fraction"}
    label : legend entry for ours (e.g. "SCDnn, scdnn-seed0, 4 images")
    paper_counts, paper_total : the paper's images per bin and its number of test images
    unit : what ours counts, for the y axis ("test tiles" on scenes)
    """
    x = np.arange(len(MIOU_BINS))
    ours = [100 * bins[b]["fraction"] for b in MIOU_BINS]
    paper = [100 * paper_counts[b] / paper_total for b in MIOU_BINS]
    fig, ax = agg_subplots(figsize=(7, 4))
    ax.bar(x - 0.2, ours, width=0.4, label=label, color="tab:blue")
    ax.bar(x + 0.2, paper, width=0.4, label=f"paper (Fig. 8, {paper_total} images)",
           color="tab:gray")
    for xi, value in zip(x - 0.2, ours, strict=False):
        ax.text(xi, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"MIoU {b}" for b in MIOU_BINS])
    ax.set_ylabel(f"{unit} (%)" if unit == "test images"
                  else f"{unit} (%); paper: test images (%)")
    ax.set_title("Per-image MIoU of SCDnn (Fig. 8)" if unit == "test images"
                 else "Per-tile MIoU of SCDnn (Fig. 8's bins)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))
    return Path(path)


def curves_png(path: str | os.PathLike, curves: dict[str, list[dict[str, Any]]],
               groups: dict[str, str] | None = None) -> Path:
    """Validation MIoU and training loss against epoch, one line per run.

    Parameters
    ----------
    curves : run name -> log.csv rows as dicts with ``epoch``, ``val_miou``, ``train_loss``
        (floats or None)
    groups : run name -> model name: runs of one model share a colour, seeds differ in line
        style (default: every run its own colour)
    """
    from matplotlib.ticker import MaxNLocator

    groups = groups or {name: name for name in curves}
    colours = {g: f"C{i % 10}" for i, g in enumerate(dict.fromkeys(groups.values()))}
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    fig, (left, right) = agg_subplots(1, 2, figsize=(11, 4))
    for name, rows in curves.items():
        group = groups.get(name, name)
        style = styles[seen.get(group, 0) % len(styles)]
        seen[group] = seen.get(group, 0) + 1
        for ax, key in ((left, "val_miou"), (right, "train_loss")):
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=False)
                ax.plot(xs, ys, linestyle=style, color=colours.get(group),
                        marker="o" if len(points) < 30 else None, markersize=3, label=name)
    left.set_title("validation MIoU")
    right.set_title("training loss")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylim(0, 1)
    if curves:
        right.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    _save(fig, Path(path))
    return Path(path)


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray | None) -> np.ndarray:
    """Fig. 9's cell: :func:`scdnn.overlay.boundary_overlay` about one screen pixel wide in a
    2.6 in cell, the predicted landslide tinted red (35 %) besides its boundary."""
    width = max(1, min(np.asarray(truth).shape) // 256)
    return boundary_overlay(image, truth, pred, width=width, tint=0.35)


def examples_png(path: str | os.PathLike, rows: Sequence[dict[str, Any]],
                 columns: Sequence[str], what: str = "Test images") -> Path:
    """The Fig. 9 grid: per image, the image, the truth and each model's prediction.

    Parameters
    ----------
    rows : per image ``{"name", "image" (H x W x C uint8), "truth" (H x W in {0, 1, 255}),
        "preds": {column label: (H x W bool mask, MIoU or None)}}``
    columns : the model column labels, in order
    what : the title's first words (``"Test tiles (512 px)"`` on scenes)
    """
    ncols = 2 + len(columns)
    nrows = max(1, len(rows))
    fig, axes = agg_subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows + 0.5),
                             squeeze=False)
    for r, row in enumerate(rows):
        truth = np.asarray(row["truth"])
        cells = [("image", display_rgb(row["image"])),
                 ("truth", overlay(row["image"], truth, None))]
        for label in columns:
            pred, miou = row["preds"][label]
            title = label if miou is None else f"{label}\nMIoU {miou:.4f}"
            cells.append((title, overlay(row["image"], truth, pred)))
        for c, (title, picture) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
        axes[r][0].set_ylabel(row["name"], fontsize=8)
    for r in range(len(rows), nrows):
        for ax in axes[r]:
            ax.axis("off")
    fig.suptitle(f"{what}: true boundary yellow, predicted landslide and boundary red "
                 "(Fig. 9)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, Path(path))
    return Path(path)
