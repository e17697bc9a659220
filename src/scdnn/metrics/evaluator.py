"""Accumulate scores over a dataset: one confusion matrix, boundary counts, per-image rows."""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import InputFileError, InvalidValueError
from ..runs import atomic_write
from .boundary import COUNT_KEYS, boundary_counts_at, boundary_f1_from_counts
from .confusion import CLASS_NAMES, scores_from_confusion
from .objects import OBJECT_COUNT_KEYS, object_counts, object_scores
from .per_image import IGNORE_INDEX, MIOU_BINS, image_confusion, miou_bins, per_image_scores

#: The tolerances (pixels) boundary F1 is reported at besides the evaluation's own.
BOUNDARY_TOLERANCES: tuple[int, ...] = (1, 2, 4, 8)

#: The ground tolerances (metres) boundary F1 is also reported at on images whose pixel size
#: is known in metres (scenes in a projected CRS in metres), converted to pixels per image.
BOUNDARY_TOLERANCES_M: tuple[float, ...] = (0.5, 1, 2, 4)

CSV_COLUMNS = ("name", "miou", "landslide_pa", "background_pa", "landslide_iou", "boundary_f1",
               "pixels")


def _to_numpy(array: Any) -> np.ndarray:
    if torch.is_tensor(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


class Evaluator:
    """Scores predictions image by image and over all pixels together.

    The dataset scores come from one confusion matrix summed over every scored pixel of every
    image (torchmetrics ``MulticlassConfusionMatrix``, label 255 ignored), as the paper's
    Eqs. 20–24 are defined over the whole test set, not averaged over images. Boundary F1 comes
    from boundary counts summed the same way (see :mod:`scdnn.metrics.boundary`), at the
    evaluation's tolerance and at each of :data:`BOUNDARY_TOLERANCES`; object scores
    (landslides as connected components matched one to one, :mod:`scdnn.metrics.objects`)
    from object counts summed the same way.

    Images given with their pixel size in metres (``pixel_size_m``: scenes in a projected CRS
    in metres) are also scored at the ground tolerances :data:`BOUNDARY_TOLERANCES_M`, each
    converted to pixels with that image's own pixel size (:func:`metres_to_pixels`), so
    images of different resolutions are matched at one distance on the ground; their counts
    are summed over those images only (``boundary_f1_at_m``). Images without a pixel size in
    metres (PNGs, no CRS, a geographic CRS) add nothing to the metre scores.

    Parameters
    ----------
    tolerance : float
        Boundary matching distance in pixels (default 2).
    """

    def __init__(self, tolerance: float = 2) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.tolerance = tolerance
        # imported here: torchmetrics (and Lightning's utilities) take seconds to import, and
        # importing scdnn.metrics (mapping, prediction, reports) does not need them
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.confusion = MulticlassConfusionMatrix(num_classes=len(CLASS_NAMES),
                                                   ignore_index=IGNORE_INDEX)
        self._tolerances = tuple(sorted({float(tolerance), *map(float, BOUNDARY_TOLERANCES)}))
        self.boundary_at = {tol: {key: 0 for key in COUNT_KEYS} for tol in self._tolerances}
        self.boundary_at_m = {float(m): {key: 0 for key in COUNT_KEYS}
                              for m in BOUNDARY_TOLERANCES_M}
        #: how many scored images had a pixel size in metres (the metre scores cover these)
        self.images_m = 0
        self.objects = {key: 0 for key in OBJECT_COUNT_KEYS}
        self._rows: list[dict[str, Any]] = []

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Per-image rows, in update order (keys = ``CSV_COLUMNS``)."""
        return [dict(row) for row in self._rows]

    def update(self, pred: Any, target: Any, name: str, valid: Any = None,
               pixel_size_m: float | None = None) -> dict[str, Any]:
        """Score one image and add it to the totals.

        Parameters
        ----------
        pred : 2-D numpy array or tensor, values in {0, 1} (bool accepted).
        target : 2-D numpy array or tensor of the same shape, values in {0, 1, 255}.
        name : str
            The image's name, first column of per_image.csv.
        valid : 2-D bool array, optional
            ``False`` marks pixels to ignore, exactly as 255 in ``target`` does.
        pixel_size_m : float, optional
            The side of a pixel in metres (the mean of its width and height where they
            differ): the image is also scored at the ground tolerances
            :data:`BOUNDARY_TOLERANCES_M`. None (images without georeferencing, or not in
            metres): pixel tolerances only.

        Returns
        -------
        dict
            The image's row: ``name``, ``miou``, ``landslide_pa``, ``background_pa``,
            ``landslide_iou`` (``None`` where undefined), ``boundary_f1`` (from this image's
            boundary counts alone) and ``pixels`` (scored pixels).

        Raises
        ------
        ValueError
            Shapes differ or are not 2-D, or values are outside the label sets, or
            ``pixel_size_m`` is not a positive number (a programming error: masks read from
            files are checked when they are read).
        """
        _check_pixel_size(name, pixel_size_m)
        pred, target = _to_numpy(pred), _to_numpy(target)
        if pred.ndim != 2 or pred.shape != target.shape:
            raise ValueError(f"{name}: pred {pred.shape} and target {target.shape} must be 2-D "
                             "and of one shape")
        if not np.isin(pred, (0, 1)).all():
            raise ValueError(f"{name}: pred must hold only 0/1")
        if not np.isin(target, (0, 1, IGNORE_INDEX)).all():
            raise ValueError(f"{name}: target must hold only 0/1/{IGNORE_INDEX}")
        pred = pred.astype(np.int64)
        target = target.astype(np.int64)
        if valid is not None:
            valid = _to_numpy(valid).astype(bool)
            if valid.shape != target.shape:
                raise ValueError(f"{name}: valid {valid.shape} and target {target.shape} differ")
            target = np.where(valid, target, IGNORE_INDEX)
        self.confusion.update(torch.from_numpy(pred).reshape(-1),
                              torch.from_numpy(target).reshape(-1))
        counts = self._add_outlines(pred, target, None, pixel_size_m=pixel_size_m)
        scores = per_image_scores(pred, target)
        row = {"name": str(name), "miou": scores["miou"], "landslide_pa": scores["landslide_pa"],
               "background_pa": scores["background_pa"],
               "landslide_iou": scores["landslide_iou"],
               "boundary_f1": boundary_f1_from_counts(counts)["f1"],
               "pixels": int((target != IGNORE_INDEX).sum())}
        self._rows.append(row)
        return dict(row)

    def update_scene(self, pred: Any, target: Any, name: str, valid: Any = None,
                     strip_rows: int = 1024, pixel_size_m: float | None = None
                     ) -> dict[str, Any]:
        """Score one large image (a scene) strip by strip; same result as :meth:`update`.

        ``pred`` and ``target`` are 2-D numpy arrays (uint8 is enough); only strips of
        ``strip_rows`` rows are ever widened to int64 or passed to a distance transform, so
        memory beyond the inputs stays bounded. ``pixel_size_m``: as for :meth:`update`.
        """
        _check_pixel_size(name, pixel_size_m)
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.ndim != 2 or pred.shape != target.shape:
            raise ValueError(f"{name}: pred {pred.shape} and target {target.shape} must be 2-D "
                             "and of one shape")
        valid = None if valid is None else np.asarray(valid).astype(bool)
        cm = np.zeros((2, 2), np.int64)
        for top in range(0, pred.shape[0], strip_rows):
            rows = slice(top, top + strip_rows)
            p, t = pred[rows], target[rows]
            if valid is not None:
                t = np.where(valid[rows], t, IGNORE_INDEX)
            if not (np.isin(p, (0, 1)).all() and np.isin(t, (0, 1, IGNORE_INDEX)).all()):
                raise ValueError(f"{name}: pred must hold only 0/1 and target only "
                                 f"0/1/{IGNORE_INDEX}")
            cm += image_confusion(p, t)
            self.confusion.update(torch.from_numpy(p.astype(np.int64)).reshape(-1),
                                  torch.from_numpy(t.astype(np.int64)).reshape(-1))
        counts = self._add_outlines(pred, target, valid, strip_rows, pixel_size_m)
        scores = scores_from_confusion(cm)
        row = {"name": str(name), "miou": scores["miou"],
               "landslide_pa": scores["class_pa"]["landslide"],
               "background_pa": scores["class_pa"]["background"],
               "landslide_iou": scores["class_iou"]["landslide"],
               "boundary_f1": boundary_f1_from_counts(counts)["f1"],
               "pixels": int(cm.sum())}
        self._rows.append(row)
        return dict(row)

    @property
    def boundary(self) -> dict[str, int]:
        """The summed boundary counts at the evaluation's own tolerance."""
        return self.boundary_at[float(self.tolerance)]

    def tolerance_keys(self) -> list[str]:
        """The keys of ``boundary_f1_at`` in :meth:`compute`: the tolerances in pixels."""
        return [_key(tol) for tol in self._tolerances]

    def tolerance_keys_m(self) -> list[str]:
        """The keys of ``boundary_f1_at_m`` in :meth:`compute`: the tolerances in metres."""
        return [_key(m) for m in self.boundary_at_m]

    def _add_outlines(self, pred: np.ndarray, target: np.ndarray, valid: Any,
                      strip_rows: int | None = None, pixel_size_m: float | None = None
                      ) -> dict[str, int]:
        """Add one image's boundary counts (every tolerance, in pixels and, with
        ``pixel_size_m``, in metres) and object counts to the sums; return its boundary
        counts at the evaluation's tolerance."""
        in_px = {} if pixel_size_m is None else {
            m: metres_to_pixels(m, pixel_size_m) for m in self.boundary_at_m}
        at = boundary_counts_at(pred, target, tuple(sorted({*self._tolerances,
                                                            *in_px.values()})),
                                valid, strip_rows)
        for tol in self._tolerances:
            for key in COUNT_KEYS:
                self.boundary_at[tol][key] += at[tol][key]
        for m, px in in_px.items():
            for key in COUNT_KEYS:
                self.boundary_at_m[m][key] += at[px][key]
        if pixel_size_m is not None:
            self.images_m += 1
        objects = object_counts(pred, target, valid)
        for key in OBJECT_COUNT_KEYS:
            self.objects[key] += objects[key]
        return at[float(self.tolerance)]

    def compute(self) -> dict[str, Any]:
        """Dataset metrics.

        Returns
        -------
        dict
            Every key of :func:`scdnn.metrics.scores_from_confusion` over the summed confusion
            matrix, plus ``boundary_f1``, ``boundary_precision``, ``boundary_recall`` (from the
            summed boundary counts; ``None`` when no image was scored), ``boundary_tolerance_px``,
            ``boundary_counts`` (the sums), ``miou_bins`` (Fig. 8 bins over the per-image MIoUs)
            and ``images`` (number of images); ``boundary_f1_at`` (``{"1": {precision,
            recall, f1}, "2": ..., "4": ..., "8": ...}``, keys the tolerance in pixels) and
            ``objects`` (:func:`scdnn.metrics.objects.object_scores`) with their summed
            ``object_counts``; ``boundary_f1_at_m`` (``{"0.5": {precision, recall, f1},
            "1": ..., "2": ..., "4": ...}``, keys the ground tolerance in metres) with its
            summed ``boundary_counts_at_m``, over the ``boundary_images_m`` images that had a
            pixel size in metres (both None when none had). JSON-serialisable.
        """
        if self._rows:
            cm = self.confusion.compute().cpu().numpy()
            boundary: dict[str, float | None] = boundary_f1_from_counts(self.boundary)
        else:  # nothing scored: all None rather than torchmetrics' "compute before update"
            cm = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), np.int64)
            boundary = {"precision": None, "recall": None, "f1": None}
        metrics = scores_from_confusion(cm)
        metrics.update({
            "boundary_f1": boundary["f1"],
            "boundary_precision": boundary["precision"],
            "boundary_recall": boundary["recall"],
            "boundary_tolerance_px": self.tolerance,
            "boundary_counts": dict(self.boundary),
            "miou_bins": miou_bins(row["miou"] for row in self._rows),
            "images": len(self._rows),
            # outlines and objects (after the paper's scores, so older readers find theirs)
            "boundary_f1_at": {_key(tol): (boundary_f1_from_counts(counts)
                                           if self._rows else None)
                               for tol, counts in self.boundary_at.items()},
            "objects": object_scores(self.objects) if self._rows else None,
            "object_counts": dict(self.objects),
            "boundary_f1_at_m": ({_key(m): boundary_f1_from_counts(counts)
                                  for m, counts in self.boundary_at_m.items()}
                                 if self.images_m else None),
            "boundary_counts_at_m": ({_key(m): dict(counts)
                                      for m, counts in self.boundary_at_m.items()}
                                     if self.images_m else None),
            "boundary_images_m": self.images_m,
        })
        return metrics

    def write_csv(self, path: str | os.PathLike) -> None:
        """Write the per-image rows as CSV (``per_image.csv``).

        Header ``name,miou,landslide_pa,background_pa,landslide_iou,boundary_f1,pixels``;
        fractions with 6 decimals, ``None`` as an empty cell. The file is written under a
        temporary name beside ``path`` and renamed over it (``os.replace``) when complete.
        """
        write_rows(self._rows, path)


def _key(tolerance: float) -> str:
    """A tolerance as a JSON key: ``"2"``, ``"2.5"``."""
    return f"{tolerance:g}"


def metres_to_pixels(metres: float, pixel_size_m: float) -> float:
    """A ground tolerance in pixels of ``pixel_size_m`` metres: ``metres / pixel_size_m``,
    rounded to 9 decimals so that a tolerance of exactly k pixels (0.3 m at 0.1 m) is not
    lost to floating point (0.3 / 0.1 = 2.9999999999999996)."""
    return round(metres / pixel_size_m, 9)


def _check_pixel_size(name: str, pixel_size_m: float | None) -> None:
    if pixel_size_m is not None and not (np.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise ValueError(f"{name}: pixel_size_m must be a positive number, got {pixel_size_m}")


def write_rows(rows: Iterable[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write rows with the keys of :data:`CSV_COLUMNS` (others ignored) as per_image.csv
    does (:meth:`Evaluator.write_csv`), atomically: ``per_tile.csv`` of a benchmark."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row[key]) for key in CSV_COLUMNS})
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())


def optional_float(text: str | None) -> float | None:
    """A CSV cell as a float: None for an empty or non-numeric cell."""
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read what :func:`write_rows` (or :meth:`Evaluator.write_csv`) wrote: ``name`` a
    string, the scores floats (None for empty cells), ``pixels`` an int."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "name" not in reader.fieldnames \
                    or "miou" not in reader.fieldnames:
                raise InvalidValueError("not a per_image.csv of scdnn evaluate (no name/miou "
                                        "columns)", path)
            rows = []
            for raw in reader:
                row: dict[str, Any] = {k: optional_float(v) for k, v in raw.items() if k != "name"}
                row["name"] = raw["name"]
                if row.get("pixels") is not None:
                    row["pixels"] = int(row["pixels"])
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(f"cannot read per_image.csv: {exc}", path) from None
    return rows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _metre_coverage(metrics: dict[str, Any]) -> str:
    """A note after the metre scores when they cover only some of the scored images."""
    n_m, n = metrics.get("boundary_images_m"), metrics.get("images")
    if isinstance(n_m, int) and isinstance(n, int) and n_m < n:
        return f"   ({n_m} of {n} images have a pixel size in metres; the others are left out)"
    return ""


def format_table(metrics: dict[str, Any]) -> str:
    """The paper's Tables 1–3 for one model as plain text, in percent with 2 decimals.

    Parameters
    ----------
    metrics : dict
        Output of :meth:`Evaluator.compute` or :func:`scores_from_confusion` (boundary and
        bin lines appear only when their keys are present; boundary F1 in metres only when
        some image had a pixel size in metres).
    """
    def line(label: str, cells: list[str]) -> str:
        return f"{label:<16}" + "".join(f"{c:>14}" for c in cells)

    lines = [line("whole set (%)", ["PA", "MPA", "MIoU", "FWIoU"]),
             line("", [_pct(metrics[k]) for k in ("pa", "mpa", "miou", "fwiou")]),
             "", line("class (%)", ["PA", "IoU"])]
    lines += [line(name, [_pct(metrics["class_pa"][name]), _pct(metrics["class_iou"][name])])
              for name in CLASS_NAMES]
    lines += ["", line("truth (%)", [f"-> {name}" for name in CLASS_NAMES])]
    lines += [line(name, [_pct(v) for v in metrics["confusion_normalized"][i]])
              for i, name in enumerate(CLASS_NAMES)]
    lines += ["", line("(%)", ["precision", "recall", "F1"]),
              line("landslide", [_pct(metrics[f"landslide_{k}"])
                                 for k in ("precision", "recall", "f1")])]
    if "boundary_f1" in metrics:
        lines.append(line("boundary", [_pct(metrics[f"boundary_{k}"])
                                       for k in ("precision", "recall", "f1")])
                     + f"   (tolerance {metrics['boundary_tolerance_px']} px)")
    if metrics.get("objects"):
        o = metrics["objects"]
        lines.append(line("landslides", [_pct(o[k]) for k in ("precision", "recall", "f1")])
                     + f"   ({o['matched']} of {o['true_objects']} true matched at IoU ≥ 0.5;"
                     f" {o['pred_objects']} predicted)")
    if metrics.get("boundary_f1_at"):
        at = {k: v for k, v in metrics["boundary_f1_at"].items() if v is not None}
        if at:
            lines += ["", line("boundary F1 (%)", [f"{k} px" for k in at]),
                      line("", [_pct(v["f1"]) for v in at.values()])]
    if metrics.get("boundary_f1_at_m"):
        at_m = {k: v for k, v in metrics["boundary_f1_at_m"].items() if v is not None}
        if at_m:
            lines += ["", line("boundary F1 (%)", [f"{k} m" for k in at_m]),
                      line("", [_pct(v["f1"]) for v in at_m.values()])
                      + _metre_coverage(metrics)]
    if "miou_bins" in metrics:
        bins = metrics["miou_bins"]
        lines += ["", line("per-image MIoU", ["images", "%"])]
        lines += [line(f"  {label}", [str(bins[label]["count"]), _pct(bins[label]["fraction"])])
                  for label in MIOU_BINS if label in bins]
    return "\n".join(lines)
