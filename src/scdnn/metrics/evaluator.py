"""Accumulate scores over a dataset: one confusion matrix, boundary counts, per-image rows."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from ..runs import atomic_write
from .boundary import boundary_counts, boundary_f1_from_counts
from .confusion import CLASS_NAMES, scores_from_confusion
from .per_image import miou_bins, per_image_scores

CSV_COLUMNS = ("name", "miou", "landslide_pa", "background_pa", "landslide_iou", "boundary_f1",
               "pixels")


class Evaluator:
    """Scores predictions image by image and over all pixels together.

    The dataset metrics come from one confusion matrix summed over every scored pixel
    (torchmetrics ``MulticlassConfusionMatrix``, label 255 ignored), as the paper's Eqs. 20–24
    are defined over the whole test set; boundary F1 from boundary counts summed the same way.
    """

    def __init__(self, tolerance: float = 2) -> None:
        self.tolerance = tolerance
        self.confusion = MulticlassConfusionMatrix(num_classes=len(CLASS_NAMES), ignore_index=255)
        self.boundary = {"pred_boundary": 0, "pred_matched": 0, "true_boundary": 0,
                         "true_matched": 0}
        self.rows: list[dict[str, Any]] = []

    def update(self, pred: Any, target: Any, name: str, valid: Any = None) -> dict[str, Any]:
        """Score one image: ``pred`` in {0, 1}, ``target`` in {0, 1, 255}; ``valid`` (optional
        bool array) marks the pixels to score. Returns the image's row."""
        pred = np.asarray(pred.cpu() if torch.is_tensor(pred) else pred).astype(np.int64)
        target = np.asarray(target.cpu() if torch.is_tensor(target) else target).astype(np.int64)
        if valid is not None:
            valid = np.asarray(valid).astype(bool)
            target = np.where(valid, target, 255)
        self.confusion.update(torch.from_numpy(pred).reshape(-1),
                              torch.from_numpy(target).reshape(-1))
        counts = boundary_counts(pred, target, self.tolerance)
        for key, value in counts.items():
            self.boundary[key] += value
        scores = per_image_scores(pred, target)
        row = {"name": name, "miou": scores["miou"], "landslide_pa": scores["landslide_pa"],
               "background_pa": scores["background_pa"],
               "landslide_iou": scores["landslide_iou"],
               "boundary_f1": boundary_f1_from_counts(counts)["f1"],
               "pixels": int((target != 255).sum())}
        self.rows.append(row)
        return row

    def compute(self) -> dict[str, Any]:
        """Dataset metrics: :func:`scores_from_confusion` keys plus boundary and bin figures."""
        metrics = scores_from_confusion(self.confusion.compute().numpy())
        boundary = boundary_f1_from_counts(self.boundary)
        metrics.update({
            "boundary_f1": boundary["f1"],
            "boundary_precision": boundary["precision"],
            "boundary_recall": boundary["recall"],
            "boundary_tolerance_px": self.tolerance,
            "boundary_counts": dict(self.boundary),
            "miou_bins": miou_bins(r["miou"] for r in self.rows),
            "images": len(self.rows),
        })
        return metrics

    def write_csv(self, path: Any) -> None:
        """``per_image.csv``: one row per image; undefined values are empty cells."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if row[k] is None else
                                 (f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]))
                             for k in CSV_COLUMNS})
        with atomic_write(path, "w") as handle:
            handle.write(buffer.getvalue())


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:6.2f}"


def format_table(metrics: dict[str, Any]) -> str:
    """The paper's Tables 1–3 for one model as plain text (percent)."""
    cn = metrics["confusion_normalized"]
    lines = [
        "   PA    MPA   MIoU  FWIoU   (%, paper Table 2)",
        " ".join(_pct(metrics[k]) for k in ("pa", "mpa", "miou", "fwiou")),
        "",
        "class          PA     IoU   (paper Table 3)",
    ]
    for name in CLASS_NAMES:
        lines.append(f"{name:<12}{_pct(metrics['class_pa'][name])}  {_pct(metrics['class_iou'][name])}")
    lines += ["", "normalized confusion (rows = truth)   -> background  -> landslide"]
    for i, name in enumerate(CLASS_NAMES):
        lines.append(f"{name:<38}{_pct(cn[i][0])}      {_pct(cn[i][1])}")
    lines += ["", f"landslide precision {_pct(metrics['landslide_precision'])}  recall "
                  f"{_pct(metrics['landslide_recall'])}  F1 {_pct(metrics['landslide_f1'])}"]
    if "boundary_f1" in metrics:
        lines.append(f"boundary F1 {_pct(metrics['boundary_f1'])}  (tolerance "
                     f"{metrics['boundary_tolerance_px']} px)")
    if "miou_bins" in metrics:
        bins = "  ".join(f"{k}: {v['count']}" for k, v in metrics["miou_bins"].items())
        lines.append(f"per-image MIoU bins  {bins}")
    return "\n".join(lines)
