"""The report's figures: matplotlib (Agg canvas) PNGs returned as ``data:image/png;base64`` URIs.

The functions take plain numbers and arrays; the section modules read the run folders.
Colours follow the benchmark's Fig. 9: true boundary yellow, predicted boundary red.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..benchmark.figures import agg_subplots
from ..metrics import MIOU_BINS, miou_bins
from ..overlay import boundary_overlay, display_rgb
from ..records import IGNORE_INDEX

__all__ = ["png_uri", "file_uri", "figure_uri", "confusion_heatmap", "miou_histogram",
           "overlay_figure", "scene_overview", "probability_overview", "display_rgb",
           "NEUTRAL", "HEATMAP_CMAP"]

#: Colour of masked / no-data / ignored areas in every figure.
NEUTRAL = (0.82, 0.82, 0.82)
#: Colour map of the confusion matrix heat map (0 = white, 1 = dark blue).
HEATMAP_CMAP = "Blues"
_OUTLINE = (1.0, 0.1, 0.75)  # landslide polygons on the scene overview: magenta


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def png_uri(data: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def file_uri(path: str | os.PathLike) -> str:
    """The data URI of a PNG file."""
    return png_uri(Path(path).read_bytes())


def figure_uri(fig, dpi: int = 100) -> str:
    """Render a matplotlib figure as PNG, close it (if pyplot holds it), and return its
    data URI."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt = sys.modules.get("matplotlib.pyplot")  # only a pyplot figure needs closing
        if plt is not None:
            plt.close(fig)
    return png_uri(buffer.getvalue())


def confusion_heatmap(normalized: Sequence[Sequence[float | None]],
                      counts: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """Heat map of the row-normalised confusion matrix (rows = truth), each cell annotated
    with its percentage and pixel count; an undefined row (no truth pixels) is grey."""
    values = np.array([[np.nan if v is None else float(v) for v in row] for row in normalized])
    k = len(classes)
    fig, ax = agg_subplots(figsize=(5.2, 4.2))
    cmap = _colormap(HEATMAP_CMAP).with_extremes(bad=NEUTRAL)
    shown = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            text = "n/a" if np.isnan(v) else f"{100 * v:.2f} %"
            text += f"\n{int(counts[i][j]):,} px"
            ax.text(j, i, text, ha="center", va="center", fontsize=10,
                    color="white" if not np.isnan(v) and v > 0.55 else "black")
    ax.set_xticks(range(k), [f"→ {c}" for c in classes])
    ax.set_yticks(range(k), list(classes))
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title("Confusion matrix, normalised by truth row")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the truth row")
    fig.tight_layout()
    return figure_uri(fig)


def miou_histogram(values: Sequence[float | None]) -> str:
    """Per-image MIoU: images per Fig. 8 bin (``scdnn.metrics.MIOU_BINS``, low to high) and a
    finer histogram in steps of 0.05. Images without an MIoU (nothing scored) are left out."""
    scored = [float(v) for v in values if v is not None]
    bins = miou_bins(scored)
    labels = list(reversed(MIOU_BINS))  # low to high, left to right
    counts = [bins[label]["count"] for label in labels]
    fig, (left, right) = agg_subplots(1, 2, figsize=(10, 3.6))
    bars = left.bar(range(len(labels)), counts, color="#4c72b0")
    for bar, label in zip(bars, labels, strict=False):
        fraction = bins[label]["fraction"]
        text = f"{bar.get_height():.0f}" + ("" if fraction is None else f"\n{100 * fraction:.1f} %")
        left.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=8)
    left.set_xticks(range(len(labels)), labels)
    left.set_ylim(0, max(counts + [1]) * 1.3)
    left.yaxis.get_major_locator().set_params(integer=True)
    left.set_xlabel("per-image MIoU (the paper's Fig. 8 bins)")
    left.set_ylabel("images")
    left.set_title(f"{len(scored)} images")
    right.hist(scored, bins=np.linspace(0, 1, 21), color="#55a868", edgecolor="white")
    right.set_xlim(0, 1)
    right.yaxis.get_major_locator().set_params(integer=True)
    right.set_xlabel("per-image MIoU")
    right.set_ylabel("images")
    right.set_title("histogram, bins of 0.05")
    fig.tight_layout()
    return figure_uri(fig)


def _mask_rgb(mask: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    rgb = np.zeros((*mask.shape, 3), np.float32)
    rgb[mask.astype(bool)] = 1.0
    if ignore is not None:
        rgb[ignore] = NEUTRAL
    return rgb


def overlay_figure(image: np.ndarray, truth: np.ndarray, pred: np.ndarray | None,
                   title: str) -> str:
    """Three panels: the image with the true boundary (yellow) and predicted boundary (red),
    the true mask and the predicted mask (white = landslide; grey = ignored, label 255).

    ``truth`` holds 0/1/255, ``pred`` 0/1 (or None when no prediction is at hand: the
    prediction panel then says so).
    """
    truth = np.asarray(truth)
    keep = truth != IGNORE_INDEX
    width = max(1, round(max(truth.shape) / 320))  # about 1 screen pixel at panel size
    rgb = boundary_overlay(image, truth, pred, width=width)
    if pred is not None:
        pred = np.asarray(pred).astype(bool)
    h, w = truth.shape
    panel = 3.3
    fig, axes = agg_subplots(1, 3, figsize=(3 * panel, min(8.0, panel * h / w) + 0.7))
    panels = [("image, true (yellow) and predicted (red) boundary", rgb),
              ("truth", _mask_rgb(truth == 1, ~keep)),
              ("prediction", None if pred is None else _mask_rgb(pred))]
    for ax, (name, picture) in zip(axes, panels, strict=False):
        if picture is None:
            ax.text(0.5, 0.5, "no prediction", ha="center", va="center")
        else:
            ax.imshow(picture, interpolation="antialiased")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_uri(fig)


def _map_figure(height: int, width: int):
    aspect = height / max(width, 1)
    fig_w = 11.0 if aspect <= 1.2 else max(4.0, 13.0 / aspect)
    fig_h = min(13.0, fig_w * aspect) + 0.8
    return agg_subplots(figsize=(fig_w, fig_h))


def scene_overview(background: np.ndarray, shape: tuple[int, int],
                   rings: Sequence[np.ndarray], labels: Sequence[tuple[float, float, str]],
                   title: str) -> str:
    """The scene (``background``: decimated ``h x w x 3`` float RGB, no-data already
    painted :data:`NEUTRAL`) with landslide outlines drawn over it.

    ``shape`` is the full scene's ``(height, width)``; ``rings`` and ``labels`` are in its
    pixel coordinates (x = column, y = row): polygon rings as ``N x 2`` arrays, and text
    labels (the ids of the largest landslides).
    """
    from matplotlib.collections import LineCollection

    height, width = shape
    fig, ax = _map_figure(height, width)
    ax.imshow(background, extent=(0, width, height, 0), interpolation="antialiased")
    if rings:
        ax.add_collection(LineCollection(rings, colors=[_OUTLINE], linewidths=0.9))
    for x, y, text in labels:
        ax.annotate(text, (x, y), color="black", fontsize=8, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=_OUTLINE, lw=0.6,
                              alpha=0.85))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_uri(fig, dpi=120)


def probability_overview(probability: np.ma.MaskedArray, shape: tuple[int, int],
                         threshold: float | None, title: str) -> str:
    """The decimated landslide probability (masked = no data, shown :data:`NEUTRAL`), with
    a colour bar; ``threshold`` is marked on the bar."""
    height, width = shape
    fig, ax = _map_figure(height, width)
    cmap = _colormap("magma").with_extremes(bad=NEUTRAL)
    shown = ax.imshow(probability, cmap=cmap, vmin=0.0, vmax=1.0,
                      extent=(0, width, height, 0), interpolation="antialiased")
    bar = fig.colorbar(shown, ax=ax, fraction=0.035, pad=0.02, label="landslide probability")
    if threshold is not None:
        bar.ax.axhline(threshold, color="#2ca02c", lw=2)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_uri(fig, dpi=120)
