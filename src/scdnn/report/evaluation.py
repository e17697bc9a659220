"""The report of an evaluation folder (``scdnn evaluate``: metrics.json + per_image.csv).

Sections: the metrics tables, the confusion matrix heat map, the per-image MIoU histogram and
a table of every image, and overlays of a few images (the worst, median and best by MIoU)
drawn from the dataset named in metrics.json and the predicted masks (``masks/`` of the
evaluation with ``--weights``, the ``--predictions`` folder otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..datasets import IMAGE_EXTENSIONS, BijieLandslide, open_dataset, read_mask
from ..errors import InvalidValueError, ScdnnError
from ..metrics import CLASS_NAMES, MIOU_BINS, read_rows
from ..records import EvaluationRecord
from ..runs import read_json
from . import figures
from .html import Report, Section, escape, fmt_number, fmt_pct, image, note, table

__all__ = ["evaluation_report", "pick_examples", "MAX_EXAMPLES", "MAX_TABLE_ROWS"]

#: At most this many images are drawn (two worst, two median, two best).
MAX_EXAMPLES = 6
#: The per-image table lists at most this many images.
MAX_TABLE_ROWS = 5000
_REQUIRED = ("pa", "mpa", "miou", "fwiou", "class_pa", "class_iou", "confusion",
             "confusion_normalized")


def resolve(path: str | None, run_dir: Path) -> Path | None:
    """A path recorded in a run's JSON: as written when it exists (absolute, or relative to
    the current folder), else relative to the run folder; None when it is found nowhere."""
    if not path:
        return None
    candidates = [Path(path)]
    if not Path(path).is_absolute():
        candidates.append(run_dir / path)
    return next((c for c in candidates if c.exists()), None)


def pick_examples(rows: list[dict[str, Any]], k: int = MAX_EXAMPLES
                  ) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``k`` images to draw, as ``(group, row)``: the worst, the median and the best by
    per-image MIoU (ties by name), in that order; every scored image when there are ≤ k."""
    scored = sorted((r for r in rows if r.get("miou") is not None),
                    key=lambda r: (r["miou"], r["name"]))
    n = len(scored)
    if n == 0:
        return []
    if n <= k:
        indices = list(range(n))
    else:
        per = max(1, k // 3)
        mid = (n - per) // 2
        indices = [*range(per), *range(mid, mid + per), *range(n - per, n)]
        indices = sorted(dict.fromkeys(indices))[:k]

    def group(i: int) -> str:
        if n == 1:
            return "only image"
        if i == 0:
            return "worst"
        if i == n - 1:
            return "best"
        if i < n / 3:
            return "worst"
        if i >= n - n / 3:
            return "best"
        return "median"

    return [(group(i), scored[i]) for i in indices]


def _check_metrics(metrics: Any, path: Path) -> dict[str, Any]:
    if not isinstance(metrics, dict) or any(key not in metrics for key in _REQUIRED):
        raise InvalidValueError("not a metrics.json of scdnn evaluate (missing PA/MIoU/confusion "
                        "keys)", path)
    return EvaluationRecord.from_dict(metrics, path).to_dict()


def _metrics_tables(m: dict[str, Any]) -> str:
    parts = ["<h3>Whole set (%)</h3>",
             table(["PA", "MPA", "MIoU", "FWIoU"],
                   [[fmt_pct(m.get(k)) for k in ("pa", "mpa", "miou", "fwiou")]]),
             "<h3>Per class (%)</h3>",
             table(["class", "PA", "IoU"],
                   [[name, fmt_pct(m["class_pa"].get(name)), fmt_pct(m["class_iou"].get(name))]
                    for name in CLASS_NAMES])]
    rows = [["landslide pixels", *(fmt_pct(m.get(f"landslide_{k}"))
                                   for k in ("precision", "recall", "f1"))]]
    if "boundary_f1" in m:
        rows.append([f"boundary (tolerance {m.get('boundary_tolerance_px', '?')} px)",
                     *(fmt_pct(m.get(f"boundary_{k}")) for k in ("precision", "recall", "f1"))])
    objects = m.get("objects")
    if objects:
        rows.append([f"landslides as objects ({objects['matched']} of "
                     f"{objects['true_objects']} true matched at IoU ≥ 0.5, "
                     f"{objects['pred_objects']} predicted)",
                     *(fmt_pct(objects.get(k)) for k in ("precision", "recall", "f1"))])
    parts += ["<h3>Precision, recall, F1 (%)</h3>",
              table(["", "precision", "recall", "F1"], rows)]
    at = {k: v for k, v in (m.get("boundary_f1_at") or {}).items() if v}
    if at:
        metres = m.get("boundary_tolerances_m") or {}
        parts += ["<h3>Boundary F1 by tolerance (%)</h3>",
                  table([f"{k} px" + (f" ({metres[k]:.2f} m)" if k in metres else "")
                         for k in at], [[fmt_pct(v.get("f1")) for v in at.values()]])]
    at_m = {k: v for k, v in (m.get("boundary_f1_at_m") or {}).items() if v}
    if at_m:
        n_m, n = m.get("boundary_images_m"), m.get("images")
        partial = (f" Only {n_m} of the {n} scored images have a pixel size in metres; the "
                   "others are left out of these scores." if isinstance(n_m, int)
                   and isinstance(n, int) and n_m < n else "")
        parts += ["<h3>Boundary F1 by ground tolerance (%)</h3>",
                  table([f"{k} m" for k in at_m],
                        [[fmt_pct(v.get("f1")) for v in at_m.values()]]),
                  "<p>" + escape("Each tolerance in metres is converted to pixels with each "
                                 "image's own pixel size (the mean of its width and "
                                 "height)." + partial) + "</p>"]
    extra = [(key, m[key]) for key in sorted(m) if key not in _SHOWN and
             isinstance(m[key], (int, float)) and not isinstance(m[key], bool)]
    if extra:
        parts += ["<h3>Other numbers in metrics.json</h3>",
                  table(["key", "value"], [[k, fmt_number(v, 6)] for k, v in extra])]
    return "\n".join(parts)


_SHOWN = {"pa", "mpa", "miou", "fwiou", "landslide_precision", "landslide_recall",
          "landslide_f1", "boundary_f1", "boundary_precision", "boundary_recall",
          "boundary_tolerance_px", "pixels", "images", "boundary_images_m"}


def _confusion_section(m: dict[str, Any]) -> str:
    counts = m["confusion"]
    normalized = m["confusion_normalized"]
    uri = figures.confusion_heatmap(normalized, counts, CLASS_NAMES)
    rows = [[truth, *(f"{int(c):,}" for c in counts[i])] for i, truth in enumerate(CLASS_NAMES)]
    return "\n".join([
        image(uri, "confusion matrix heat map",
              "Rows are the truth, columns the prediction; each row sums to 100 %."),
        "<h3>Pixel counts (rows = truth)</h3>",
        table(["truth", *(f"→ {c}" for c in CLASS_NAMES)], rows)])


def _per_image_section(m: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    values = [r.get("miou") for r in rows]
    parts = [image(figures.miou_histogram(values), "per-image MIoU histogram",
                   "Left: images per bin of the paper's Fig. 8; right: the same MIoUs in "
                   "steps of 0.05. Images with nothing scored have no MIoU and are left out.")]
    bins = m.get("miou_bins")
    if isinstance(bins, dict):
        parts.append(table(["per-image MIoU", "images", "%"],
                           [[label, bins[label]["count"], fmt_pct(bins[label]["fraction"])]
                            for label in MIOU_BINS if label in bins]))
    columns = [("miou", "MIoU"), ("landslide_pa", "landslide PA (%)"),
               ("background_pa", "background PA (%)"), ("landslide_iou", "landslide IoU (%)"),
               ("boundary_f1", "boundary F1 (%)")]
    shown = rows[:MAX_TABLE_ROWS]
    body = table(["image", *(label for _, label in columns), "pixels"],
                 [[r["name"], *(("n/a" if r.get(key) is None else f"{r[key]:.4f}")
                                if key == "miou" else fmt_pct(r.get(key)) for key, _ in columns),
                   fmt_number(r.get("pixels"))] for r in shown])
    more = (f" (the first {MAX_TABLE_ROWS} of {len(rows)})" if len(rows) > MAX_TABLE_ROWS
            else "")
    parts.append(f"<details><summary>Every image, in scoring order{escape(more)}</summary>"
                 f"{body}</details>")
    return "\n".join(parts)


def _open_data(data: Path, names: list[str]):
    dataset = open_dataset(data)
    present = {s.name for s in dataset.samples}
    if isinstance(dataset, BijieLandslide) and not set(names) <= present:
        try:
            dataset = open_dataset(data, include_non_landslide=True)
        except ScdnnError:
            pass
    return dataset


def _prediction_file(name: str, run_dir: Path, source: dict[str, Any]) -> Path | None:
    if source.get("predictions"):
        root = resolve(source["predictions"], run_dir)
        if root is None:
            return None
        if (root / "masks").is_dir():
            root = root / "masks"
        stem = Path(name).name
        return next((p for p in sorted(root.glob(f"{stem}.*"))
                     if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem == stem), None)
    path = run_dir / "masks" / f"{name}.png"
    return path if path.is_file() else None


def _examples_section(rows: list[dict[str, Any]], m: dict[str, Any], run_dir: Path) -> str:
    source = m.get("source") or {}
    picks = pick_examples(rows)
    if not picks:
        return note("No image has a per-image MIoU: there is nothing to draw.")
    if source.get("scenes"):
        return note("An evaluation on georeferenced scenes: whole scenes are not drawn here "
                    "(scdnn report of a scdnn map folder shows a scene); the scores above are "
                    "complete.")
    data = resolve(source.get("data"), run_dir)
    if data is None:
        return note(f"The dataset folder {source.get('data')!s} is not available, so the "
                    "images cannot be drawn; the scores above are complete.")
    try:
        dataset = _open_data(data, [row["name"] for _, row in picks])
    except ScdnnError as exc:
        return note(f"The dataset cannot be opened ({exc}), so the images cannot be drawn.")
    index = {s.name: i for i, s in enumerate(dataset.samples)}
    parts = ["<p>The image with the true boundary in yellow and the predicted boundary in "
             "red, beside the true and the predicted mask (white: landslide). Chosen by "
             "per-image MIoU: the worst, the median and the best.</p>"]
    missing_pred = []
    for group, row in picks:
        name = row["name"]
        if name not in index:
            parts.append(note(f"Image {name} is no longer in {data}."))
            continue
        try:
            item = dataset[index[name]]
        except ScdnnError as exc:
            parts.append(note(f"Image {name} cannot be read: {exc}"))
            continue
        pred = None
        pred_file = _prediction_file(name, run_dir, source)
        if pred_file is not None:
            try:
                pred = read_mask(pred_file)
            except ScdnnError:
                pred = None
            if pred is not None and pred.shape != item["mask"].shape:
                pred = None
        if pred is None:
            missing_pred.append(name)
        title = f"{group}: {name}, MIoU {row['miou']:.4f}"
        parts.append(image(figures.overlay_figure(item["image"], item["mask"], pred, title),
                           f"overlay of {name}"))
    if missing_pred:
        where = ("the predictions folder " + str(source.get("predictions"))
                 if source.get("predictions") else "masks/ of this folder (evaluations made "
                 "before scdnn evaluate wrote the predicted masks have none; rerun it)")
        parts.insert(1, note(f"No predicted mask for {', '.join(missing_pred)} in {where}."))
    return "\n".join(parts)


def evaluation_report(run_dir: Path) -> Report:
    """The :class:`~scdnn.report.html.Report` of an evaluation folder."""
    metrics = _check_metrics(read_json(run_dir / "metrics.json"), run_dir / "metrics.json")
    rows = read_rows(run_dir / "per_image.csv")
    source = metrics.get("source") or {}
    facts = [("images scored", f"{metrics.get('images', len(rows))} "
              f"({metrics.get('scored', 'n/a')})"),
             ("pixels scored", fmt_number(metrics.get("pixels"))),
             ("dataset", source.get("data") or "n/a")]
    if source.get("weights"):
        facts.append(("weights", source["weights"]))
    if source.get("predictions"):
        facts.append(("predictions", source["predictions"]))
    sections = [
        Section("Metrics", _metrics_tables(metrics)),
        Section("Confusion matrix", _confusion_section(metrics)),
        Section("Per-image MIoU", _per_image_section(metrics, rows)),
        Section("Examples", _examples_section(rows, metrics, run_dir)),
    ]
    return Report(title=f"Evaluation report: {run_dir.resolve().name}", run_dir=str(run_dir),
                  kind="evaluation", facts=facts, sections=sections,
                  provenance=metrics.get("provenance"))
