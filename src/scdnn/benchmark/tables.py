"""The benchmark's tables: the paper's Tables 1–4 and Fig. 8 with the published figures beside
ours, and what the paper does not report (boundary F1, size, compute, time, spread).

The published numbers are constants here, copied from the paper's text:

    Li C-D, Feng P-F, Jiang X-H, Zhang S, Meng J, Li B-C. 2024. Extensive identification of
    landslide boundaries using remote sensing images and deep learning method. China Geology.
    doi:10.31035/cg2023148 (Tables 1–4, Fig. 8; Bijie landslide dataset, 231 test images).

Scores are stored as fractions (0–1) in results.json, as in metrics.json, and shown in percent
with 2 decimals in results.md (per-image MIoU in Table 4 as a fraction with 4 decimals, as the
paper prints it). Over several seeds a cell shows the mean ± the sample standard deviation
(n − 1 in the denominator); the min–max range is in its own table.

Nothing here imports torch: the runner hands over plain numbers.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from ..metrics import MIOU_BINS
from .budgets import MODEL_SPECS, ModelSpec

PAPER_CITATION = ("Li et al. 2024, China Geology, \"Extensive identification of landslide "
                  "boundaries using remote sensing images and deep learning method\", "
                  "doi:10.31035/cg2023148")

#: Table 1: SCDnn's normalized confusion matrix, rows = truth (fractions).
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "landslide": {"landslide": 0.7411, "background": 0.2589},
    "background": {"landslide": 0.0104, "background": 0.9896},
}

#: Table 2: whole test set, fractions (the paper prints percent).
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "sssn": {"pa": 0.8875, "mpa": 0.5308, "miou": 0.4764, "fwiou": 0.7946},
    "segnet": {"pa": 0.8260, "mpa": 0.7098, "miou": 0.5400, "fwiou": 0.7526},
    "deeplabv3plus-resnet50": {"pa": 0.9413, "mpa": 0.8611, "miou": 0.7641, "fwiou": 0.8972},
    "deeplabv3plus-mobilenetv2": {"pa": 0.9471, "mpa": 0.8438, "miou": 0.7722, "fwiou": 0.9042},
    "scdnn": {"pa": 0.9616, "mpa": 0.8654, "miou": 0.8214, "fwiou": 0.9274},
}

#: Table 3: per class PA and IoU, fractions (all five networks are in the paper's Table 3).
PAPER_TABLE3: dict[str, dict[str, dict[str, float]]] = {
    "sssn": {"landslide": {"pa": 0.0702, "iou": 0.0658},
             "background": {"pa": 0.9914, "iou": 0.8869}},
    "segnet": {"landslide": {"pa": 0.5599, "iou": 0.2657},
               "background": {"pa": 0.8597, "iou": 0.8143}},
    "deeplabv3plus-resnet50": {"landslide": {"pa": 0.7575, "iou": 0.5923},
                               "background": {"pa": 0.9646, "iou": 0.9359}},
    "deeplabv3plus-mobilenetv2": {"landslide": {"pa": 0.7106, "iou": 0.6019},
                                  "background": {"pa": 0.9771, "iou": 0.9425}},
    "scdnn": {"landslide": {"pa": 0.7411, "iou": 0.6848},
              "background": {"pa": 0.9896, "iou": 0.9581}},
}

#: Fig. 8: SCDnn's test images per per-image-MIoU bin (231 in all). The text states 52 (> 0.9),
#: 119 (0.8–0.9), 7.79 % = 18 below 0.7 of which 5 below 0.6; 0.7–0.8 (42) and 0.6–0.7 (13)
#: are derived from those.
PAPER_FIG8_COUNTS: dict[str, int] = {"> 0.9": 52, "0.8–0.9": 119, "0.7–0.8": 42, "0.6–0.7": 13,
                                     "< 0.6": 5}
PAPER_FIG8_DERIVED: tuple[str, ...] = ("0.7–0.8", "0.6–0.7")
PAPER_FIG8_TOTAL = 231

#: Table 4: L-PA and B-PA (fractions) and MIoU of the paper's four Fig. 9 images, copied as
#: printed (it gives SCDnn the same L-PA and B-PA in rows c and d).
PAPER_TABLE4: dict[str, dict[str, dict[str, float]]] = {
    "Fig. 9(a)": {"deeplabv3plus-resnet50": {"landslide_pa": 0.9852, "background_pa": 0.9694,
                                             "miou": 0.6861},
                  "deeplabv3plus-mobilenetv2": {"landslide_pa": 0.9963, "background_pa": 0.9593,
                                                "miou": 0.6499},
                  "scdnn": {"landslide_pa": 1.0, "background_pa": 0.9899, "miou": 0.8338}},
    "Fig. 9(b)": {"deeplabv3plus-resnet50": {"landslide_pa": 0.9406, "background_pa": 0.9294,
                                             "miou": 0.7926},
                  "deeplabv3plus-mobilenetv2": {"landslide_pa": 0.6267, "background_pa": 0.9918,
                                                "miou": 0.7652},
                  "scdnn": {"landslide_pa": 0.8603, "background_pa": 0.9935, "miou": 0.8996}},
    "Fig. 9(c)": {"deeplabv3plus-resnet50": {"landslide_pa": 0.9923, "background_pa": 0.9370,
                                             "miou": 0.6936},
                  "deeplabv3plus-mobilenetv2": {"landslide_pa": 0.9812, "background_pa": 0.9448,
                                                "miou": 0.7108},
                  "scdnn": {"landslide_pa": 0.9473, "background_pa": 0.9974, "miou": 0.9486}},
    "Fig. 9(d)": {"deeplabv3plus-resnet50": {"landslide_pa": 0.8935, "background_pa": 0.9821,
                                             "miou": 0.8546},
                  "deeplabv3plus-mobilenetv2": {"landslide_pa": 0.9518, "background_pa": 0.9911,
                                                "miou": 0.9235},
                  "scdnn": {"landslide_pa": 0.9473, "background_pa": 0.9974, "miou": 0.9626}},
}

#: The networks of the paper's Fig. 9 / Table 4, in its column order.
FIG9_MODELS: tuple[str, ...] = ("deeplabv3plus-resnet50", "deeplabv3plus-mobilenetv2", "scdnn")

#: Per-run scores summarised over seeds (keys of :func:`run_scores`).
SCORE_KEYS: tuple[str, ...] = (
    "pa", "mpa", "miou", "fwiou", "landslide_pa", "background_pa", "landslide_iou",
    "background_iou", "landslide_f1", "boundary_f1", "cm_landslide_landslide",
    "cm_landslide_background", "cm_background_landslide", "cm_background_background",
    "epochs", "train_seconds",
) + tuple(f"object_{key}" for key in ("precision", "recall", "f1", "count_ratio")) + tuple(
    f"boundary_f1_{tol}px" for tol in ("1", "2", "4", "8")) + tuple(
    f"boundary_f1_{tol}m" for tol in ("0.5", "1", "2", "4"))

#: The boundary tolerances (pixels) of the "Objects and outlines" table.
OUTLINE_TOLERANCES: tuple[str, ...] = ("1", "2", "4", "8")

#: The ground tolerances (metres) of the "Objects and outlines" table, on scenes in metres.
OUTLINE_TOLERANCES_M: tuple[str, ...] = ("0.5", "1", "2", "4")

CLASSES_PAPER_ORDER = ("landslide", "background")  # the paper's tables list landslide first


# ----------------------------------------------------------------------------- numbers

def summarize(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation, min and max of the defined values.

    ``None`` values are left out; ``n`` counts the rest. ``std`` is ``None`` for fewer than 2
    values; everything is ``None`` for none.
    """
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "min": min(xs), "max": max(xs), "n": n}


def run_scores(metrics: dict[str, Any], epochs: int, train_seconds: float) -> dict[str, Any]:
    """One run's numbers, flat, from its eval/metrics.json and its log.csv."""
    cm = metrics["confusion_normalized"]  # rows/columns in CLASS_NAMES order: background, landslide
    return {
        "pa": metrics["pa"], "mpa": metrics["mpa"], "miou": metrics["miou"],
        "fwiou": metrics["fwiou"],
        "landslide_pa": metrics["class_pa"]["landslide"],
        "background_pa": metrics["class_pa"]["background"],
        "landslide_iou": metrics["class_iou"]["landslide"],
        "background_iou": metrics["class_iou"]["background"],
        "landslide_f1": metrics.get("landslide_f1"),
        "boundary_f1": metrics.get("boundary_f1"),
        "cm_landslide_landslide": cm[1][1], "cm_landslide_background": cm[1][0],
        "cm_background_landslide": cm[0][1], "cm_background_background": cm[0][0],
        "epochs": epochs, "train_seconds": train_seconds,
        **outline_scores(metrics),
    }


def outline_scores(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Object precision, recall, F1 and predicted ÷ true count, boundary F1 at 1, 2, 4 and
    8 px and at 0.5, 1, 2 and 4 m, flat, from a metrics.json; ``None`` where it has none
    (written before these scores existed, no object to count, or no pixel size in metres:
    images, scenes without a projected CRS in metres)."""
    objects = metrics.get("objects") or {}
    at = metrics.get("boundary_f1_at") or {}
    at_m = metrics.get("boundary_f1_at_m") or {}
    flat: dict[str, float | None] = {f"object_{key}": objects.get(key)
                                     for key in ("precision", "recall", "f1", "count_ratio")}
    for tol in OUTLINE_TOLERANCES:
        scores = at.get(tol)
        flat[f"boundary_f1_{tol}px"] = None if scores is None else scores["f1"]
    for tol in OUTLINE_TOLERANCES_M:
        scores = at_m.get(tol)
        flat[f"boundary_f1_{tol}m"] = None if scores is None else scores["f1"]
    return flat


def build_tables(specs: Sequence[ModelSpec], runs: Sequence[dict[str, Any]],
                 complexity: dict[str, dict[str, Any]], examples: dict[str, Any] | None,
                 first_seed: int, fig8_source: dict[str, dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """The tables of results.json.

    Parameters
    ----------
    specs : the model rows, in table order
    runs : one dict per run with ``model`` (row name), ``seed``, ``scores`` (:func:`run_scores`)
        and ``metrics`` (its metrics.json)
    complexity : row name -> ``{"parameters": int, "gflops": float, "gflops_size": int}``
    examples : the Table 4 / Fig. 9 images and scores (:mod:`.results`), or None
    first_seed : the seed whose runs Fig. 8 and Fig. 9 show
    fig8_source : run name -> ``{"bins", "count", "unit", "tile"}``: Fig. 8 from these bins
        instead of the run's per-image ``miou_bins`` (scenes: per-tile MIoU); ``fig8`` then
        also has ``unit`` ("tiles") and ``tile`` (pixels)

    Returns
    -------
    dict with ``models`` (per row: label, seeds, complexity and every score summarised over
    seeds), ``table1`` to ``table4``, ``fig8`` and ``extra``; fractions, not percent.
    """
    models: dict[str, Any] = {}
    for spec in specs:
        mine = [r for r in runs if r["model"] == spec.name]
        models[spec.name] = {
            "label": spec.label, "network": spec.network, "model_kwargs": spec.model_kwargs,
            "paper": spec.paper, "seeds": [r["seed"] for r in mine],
            "runs": [r["name"] for r in mine],
            **complexity.get(spec.name, {}),
            "scores": {key: summarize(r["scores"][key] for r in mine) for key in SCORE_KEYS},
        }

    def mean(name: str, key: str) -> float | None:
        return models[name]["scores"][key]["mean"]

    table2 = {name: {key: m["scores"][key] for key in ("pa", "mpa", "miou", "fwiou")}
              for name, m in models.items()}
    table3 = {name: {cls: {"pa": m["scores"][f"{cls}_pa"], "iou": m["scores"][f"{cls}_iou"]}
                     for cls in CLASSES_PAPER_ORDER}
              for name, m in models.items()}
    table1 = None
    if "scdnn" in models:
        table1 = {"model": "scdnn", "seeds": models["scdnn"]["seeds"],
                  "rows": {truth: {pred: mean("scdnn", f"cm_{truth}_{pred}")
                                   for pred in CLASSES_PAPER_ORDER}
                           for truth in CLASSES_PAPER_ORDER}}
    fig8 = None
    scdnn_first = [r for r in runs if r["model"] == "scdnn" and r["seed"] == first_seed]
    if scdnn_first and fig8_source is not None:
        source = fig8_source[scdnn_first[0]["name"]]
        fig8 = {"run": scdnn_first[0]["name"], "images": source["count"],
                "bins": {label: source["bins"][label] for label in MIOU_BINS},
                "unit": source["unit"], "tile": source["tile"]}
    elif scdnn_first:
        bins = scdnn_first[0]["metrics"]["miou_bins"]
        fig8 = {"run": scdnn_first[0]["name"], "images": scdnn_first[0]["metrics"]["images"],
                "bins": {label: bins[label] for label in MIOU_BINS}}
    extra = {name: {"parameters": m.get("parameters"), "gflops": m.get("gflops"),
                    "gflops_size": m.get("gflops_size"),
                    **{key: m["scores"][key] for key in ("epochs", "train_seconds",
                                                         "landslide_f1", "boundary_f1")}}
             for name, m in models.items()}
    return {"models": models, "table1": table1, "table2": table2, "table3": table3,
            "fig8": fig8, "table4": examples, "extra": extra}


def paper_reference() -> dict[str, Any]:
    """The published figures, for results.json."""
    return {"citation": PAPER_CITATION, "table1": PAPER_TABLE1, "table2": PAPER_TABLE2,
            "table3": PAPER_TABLE3,
            "fig8": {"counts": PAPER_FIG8_COUNTS, "total": PAPER_FIG8_TOTAL,
                     "derived": list(PAPER_FIG8_DERIVED)},
            "table4": PAPER_TABLE4}


# ----------------------------------------------------------------------------- markdown

def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _cell(summary: dict[str, Any], scale: float = 100.0, digits: int = 2) -> str:
    """``mean`` or ``mean ± std`` of a summary, scaled (100: percent)."""
    if summary["mean"] is None:
        return "n/a"
    text = f"{scale * summary['mean']:.{digits}f}"
    if summary["std"] is not None:
        text += f" ± {scale * summary['std']:.{digits}f}"
    return text


def _range(summary: dict[str, Any], scale: float = 100.0, digits: int = 2) -> str:
    if summary["mean"] is None:
        return "n/a"
    return f"{scale * summary['min']:.{digits}f}–{scale * summary['max']:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _outline_table(models: dict[str, Any]) -> list[str]:
    """The "Objects and outlines" section (mean ± SD over seeds), or nothing when no run
    has these scores (results written before they existed). Boundary F1 in metres has
    columns only when some run has it (scenes in a projected CRS in metres)."""
    if not any(m["scores"]["object_f1"]["n"] or m["scores"]["boundary_f1_2px"]["n"]
               for m in models.values()):
        return []
    none = summarize(())
    metres = [tol for tol in OUTLINE_TOLERANCES_M
              if any(m["scores"].get(f"boundary_f1_{tol}m", none)["n"]
                     for m in models.values())]
    rows = [[m["label"], len(m["seeds"]), _cell(m["scores"]["object_f1"]),
             _cell(m["scores"]["object_count_ratio"], scale=1, digits=1)]
            + [_cell(m["scores"][f"boundary_f1_{tol}px"]) for tol in OUTLINE_TOLERANCES]
            + [_cell(m["scores"].get(f"boundary_f1_{tol}m", none)) for tol in metres]
            for m in models.values()]
    out = ["## Objects and outlines", ""]
    out += _table(["model", "seeds", "object F1 (%)", "predicted ÷ true landslides"]
                  + [f"boundary F1 (%, {tol} px)" for tol in OUTLINE_TOLERANCES]
                  + [f"boundary F1 (%, {tol} m)" for tol in metres], rows)
    out += ["", "Landslides are the 8-connected components of the truth and of the raw "
            "prediction (no post-processing), matched one to one at IoU ≥ 0.5; boundary F1 "
            "at each tolerance is summed over the test set"
            + (" (in metres: on the ground, converted to pixels with each scene's pixel "
               "size)." if metres else "."), ""]
    return out


def render_markdown(results: dict[str, Any]) -> str:
    """results.md from the results.json dict."""
    cfg = results["config"]
    prov = results["provenance"]
    models = results["models"]
    split = results["split"]
    several = any(len(m["seeds"]) > 1 for m in models.values())
    scenes = cfg["dataset"]["kind"] == "scenes"
    out: list[str] = ["# scdnn benchmark: the paper's comparison, reproduced", ""]
    if scenes:
        blocks = sum(len(b) for b in split.get("val_blocks", {}).values())
        dsm = " + DSM terrain channels (slope, relative elevation)" \
            if cfg["dataset"].get("use_dsm") else ""
        trained = split["train"]
        out += [f"- data: `{cfg['dataset']['data']}` (scenes; RGB{dsm})",
                f"- split: seed {cfg['split_seed']}: trained on "
                f"{', '.join(f'`{n}`' for n in trained)} less {blocks} validation "
                f"block{'s' if blocks != 1 else ''} of {split.get('block_size')} px "
                f"({100 * split.get('val_fraction', 0):.0f} % of "
                f"{'their' if len(trained) > 1 else 'its'} valid labelled pixels); "
                f"tested on {', '.join(f'`{n}`' for n in split['test'])} (split.json)",
                f"- budget: `{cfg['budget']}`: {cfg['budget_description']}; on scenes "
                f"{cfg.get('scene_description', '')}",
                f"- seeds: {', '.join(str(s) for s in cfg['seeds'])} (weight initialisation "
                "and sampling; one split for all)",
                f"- scored on every valid labelled pixel of the test scene(s), predicted as "
                f"`scdnn map` predicts them; boundary F1 tolerance {cfg['tolerance']} px"]
    else:
        out += [f"- data: `{cfg['dataset']['data']}` ({cfg['dataset']['kind']})",
                f"- split: seed {cfg['split_seed']}: {len(split['train'])} train, "
                f"{len(split['val'])} validation, {len(split['test'])} test images "
                "(split.json)",
                f"- budget: `{cfg['budget']}`: {cfg['budget_description']}",
                f"- seeds: {', '.join(str(s) for s in cfg['seeds'])} (weight initialisation "
                "and sampling; one split for all)",
                f"- scored on the test images at native size; boundary F1 tolerance "
                f"{cfg['tolerance']} px"]
    recipe = (cfg.get("train") or {}).get("recipe") or "paper"  # before recipes: the paper's
    out += [f"- recipe: `{recipe}` ({_recipe_description(recipe)})"]
    out += [
            f"- scdnn {prov['scdnn_version']}, commit {prov['git_commit']}, {prov['created']}, "
            f"{prov['machine']}, torch {prov['torch']}",
            f"- the paper's figures beside ours: {PAPER_CITATION}; its data (Bijie, 231 test "
            "images) and schedule differ from this run's, so compare orderings, not decimals.",
            ""]
    if several:
        out += ["Cells over several seeds show the mean ± the sample standard deviation; the "
                "range is under *Spread over seeds*.", ""]

    out += ["## Runs", ""]
    out += _table(["run", "network", "seed", "epochs reached", "training s", "best epoch",
                   "best val MIoU"],
                  [[f"`{r['name']}`", models[r["model"]]["label"], r["seed"], r["epochs"],
                    f"{r['train_seconds']:.1f}", r.get("best_epoch", "n/a"),
                    _pct(r.get("best_val_miou"))] for r in results["runs"]])
    out += ["", "Training seconds: the sum of log.csv's per-epoch seconds (training and "
            "validation).", ""]
    machines: dict[str, list[str]] = {}
    for r in results["runs"]:
        if r.get("machine"):
            machines.setdefault(r["machine"], []).append(f"`{r['name']}`")
    if len(machines) > 1:
        out += ["**These runs were trained on different machines**: "
                + "; ".join(f"{m}: {', '.join(names)}" for m, names in machines.items())
                + ". A time-limited budget reaches a different number of epochs on each, so "
                "compare the networks within the runs of one machine.", ""]

    out += ["## Table 1: SCDnn's normalized confusion matrix (rows = truth)", ""]
    t1 = results["table1"]
    if t1 is None:
        out += ["SCDnn was not run.", ""]
    else:
        rows = []
        for truth in CLASSES_PAPER_ORDER:
            ours = t1["rows"][truth]
            paper = PAPER_TABLE1[truth]
            rows.append([truth] + ["–" if ours[p] is None else f"{ours[p]:.4f}"
                                   for p in CLASSES_PAPER_ORDER]
                        + [f"{paper[p]:.4f}" for p in CLASSES_PAPER_ORDER])
        out += _table(["truth", "→ landslide", "→ background", "paper → landslide",
                       "paper → background"], rows)
        out += ["", f"Mean over seeds {', '.join(map(str, t1['seeds']))}.", ""]

    out += ["## Table 2: whole test set (%)", ""]
    rows = []
    for m in models.values():
        paper = PAPER_TABLE2.get(m["paper"] or "", {})
        rows.append([m["label"], len(m["seeds"])]
                    + [_cell(m["scores"][k]) for k in ("pa", "mpa", "miou", "fwiou")]
                    + [_pct(paper[k]) if paper else "–" for k in ("pa", "mpa", "miou", "fwiou")])
    out += _table(["model", "seeds", "PA", "MPA", "MIoU", "FWIoU", "paper PA", "paper MPA",
                   "paper MIoU", "paper FWIoU"], rows)
    out += [""]

    out += ["## Table 3: per class (%)", ""]
    rows = []
    for m in models.values():
        paper = PAPER_TABLE3.get(m["paper"] or "")
        for cls in CLASSES_PAPER_ORDER:
            rows.append([m["label"], cls, _cell(m["scores"][f"{cls}_pa"]),
                         _cell(m["scores"][f"{cls}_iou"]),
                         _pct(paper[cls]["pa"]) if paper else "–",
                         _pct(paper[cls]["iou"]) if paper else "–"])
    out += _table(["model", "class", "PA", "IoU", "paper PA", "paper IoU"], rows)
    out += ["", "MIoU in Table 2 is the mean of the two IoUs here (the paper's Eq. 23).", ""]

    tiles = scenes and results["fig8"] is not None and results["fig8"].get("unit") == "tiles"
    out += ["## Fig. 8: SCDnn's per-tile MIoU" if scenes else
            "## Fig. 8: SCDnn's per-image MIoU", ""]
    f8 = results["fig8"]
    if f8 is None:
        out += ["SCDnn was not run.", ""]
    else:
        rows = [[label, f8["bins"][label]["count"], _pct(f8["bins"][label]["fraction"]),
                 PAPER_FIG8_COUNTS[label]
                 if label not in PAPER_FIG8_DERIVED else f"{PAPER_FIG8_COUNTS[label]}*",
                 f"{100 * PAPER_FIG8_COUNTS[label] / PAPER_FIG8_TOTAL:.2f}"]
                for label in MIOU_BINS]
        out += _table(["MIoU", "tiles" if tiles else "images", "%", "paper images",
                       "paper %"], rows)
        if tiles:
            out += ["", f"`{f8['run']}`, {f8['images']} tiles of {f8['tile']} x {f8['tile']} "
                    "px of the test scene(s); paper: 231 images (* derived from the counts it "
                    "states). A test scene is one image, so its per-image MIoU would be a "
                    "single number: instead the test scenes are cut into tiles from their "
                    "top-left corner, and every tile with at least "
                    f"{100 * cfg.get('tile_min_valid', 0.1):.0f} % of its area valid and "
                    "labelled is scored on its own (from the predicted scene mask; "
                    "`eval/per_tile.csv` of each run). Tiles are not the paper's images: "
                    "compare the shape of the distribution, not the counts.", "",
                    f"![Fig. 8]({results['figures']['fig8']})", ""]
        else:
            out += ["", f"`{f8['run']}`, {f8['images']} test images; paper: 231 images (* "
                    "derived from the counts it states).", "",
                    f"![Fig. 8]({results['figures']['fig8']})", ""]

    out += ["## Table 4 / Fig. 9: examples", ""]
    t4 = results["table4"]
    if not t4 or not t4["images"]:
        out += ["No test image to show.", ""]
    else:
        cols = t4["models"]
        header = ["tile" if scenes else "image", "landslide share"]
        for name in cols:
            label = models[name]["label"]
            header += [f"{label} L-PA", f"{label} B-PA", f"{label} MIoU"]
        rows = []
        for image in t4["images"]:
            row = [f"`{image['name']}`", _pct(image["landslide_share"])]
            for name in cols:
                s = image["scores"].get(name) or {}
                row += [_pct(s.get("landslide_pa")), _pct(s.get("background_pa")),
                        "–" if s.get("miou") is None else f"{s['miou']:.4f}"]
            rows.append(row)
        out += _table(header, rows)
        if scenes:
            chosen = (f"The {len(t4['images'])} scored tiles (`scene:row,col`, "
                      f"{cfg.get('scene_tile')} px) of the test scene(s) with the most "
                      "landslide pixels among those where each class holds at least "
                      f"{100 * cfg.get('tile_min_class', 0.1):.0f} % of the valid labelled "
                      "pixels (then any tile; ties by scene, row, column), the same tiles for "
                      "every network; landslide share of the valid labelled pixels")
        else:
            chosen = (f"The {len(t4['images'])} test images with the largest landslide share "
                      "(ties by name)")
        out += ["", f"{chosen}, seed {t4['seed']}'s runs; L-PA and B-PA in %, MIoU as a "
                "fraction, as in the paper. In the figure the true boundary is yellow, the "
                "predicted landslide tinted red and its boundary red.", "",
                f"![Fig. 9]({results['figures']['fig9']})", "",
                "The paper's Table 4 (its own four images, not these):", ""]
        header = ["image"]
        for name in FIG9_MODELS:
            label = MODEL_SPECS[name].label
            header += [f"{label} L-PA", f"{label} B-PA", f"{label} MIoU"]
        rows = []
        for fig, by_model in PAPER_TABLE4.items():
            row = [fig]
            for name in FIG9_MODELS:
                s = by_model[name]
                row += [_pct(s["landslide_pa"]), _pct(s["background_pa"]), f"{s['miou']:.4f}"]
            rows.append(row)
        out += _table(header, rows)
        out += [""]

    out += ["## Beyond the paper", ""]
    rows = []
    for name, m in models.items():
        e = results["extra"][name]
        rows.append([m["label"],
                     "n/a" if e["parameters"] is None else f"{e['parameters']:,}",
                     "n/a" if e["gflops"] is None else f"{e['gflops']:.2f}",
                     _cell(e["epochs"], scale=1, digits=1),
                     _cell(e["train_seconds"], scale=1, digits=1),
                     _cell(e["landslide_f1"]), _cell(e["boundary_f1"])])
    size = next((e["gflops_size"] for e in results["extra"].values() if e.get("gflops_size")),
                256)
    out += _table(["model", "parameters", f"GFLOPs @{size}", "epochs reached", "training s",
                   "landslide F1 (%)", f"boundary F1 (%, {cfg['tolerance']} px)"], rows)
    out += ["", "The paper is about boundaries yet scores only area overlap; boundary F1 "
            "matches predicted and true boundary pixels within the tolerance.", "",
            f"![training curves]({results['figures']['curves']})", ""]
    out += _outline_table(models)

    if several:
        out += ["## Spread over seeds (min–max, %)", ""]
        keys = ("pa", "mpa", "miou", "fwiou", "landslide_iou", "landslide_f1", "boundary_f1")
        out += _table(["model", "seeds", "PA", "MPA", "MIoU", "FWIoU", "landslide IoU",
                       "landslide F1", "boundary F1"],
                      [[m["label"], len(m["seeds"])] + [_range(m["scores"][k]) for k in keys]
                       for m in models.values() if len(m["seeds"]) > 1])
        out += [""]
    return "\n".join(out)


def _recipe_description(text: str) -> str:
    """The parts of a recipe in words, for the results' header."""
    from ..trainers.recipes import Recipe

    try:
        r = Recipe.parse(text)
    except ValueError:
        return "unknown"
    return (f"{r.optimizer}, {r.schedule} learning rate, loss {r.loss}, {r.augmentation} "
            f"augmentation, {'EMA, ' if r.ema else ''}"
            f"{'best validation epoch' if r.weights == 'best' else 'final weights'}")
