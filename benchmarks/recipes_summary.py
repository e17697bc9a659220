"""Summary of the training-recipe benchmarks: every network under every recipe, and which
differences are beyond seed-to-seed noise.

Reads each ``benchmarks/results/recipes/<label>-<name>/results.json`` written by
``benchmarks/recipes.sh NAME RECIPE`` (and ``<name>-inference.json`` of
``benchmarks/inference_options.py`` where present) and writes ``README.md`` and
``summary.json`` beside them:

    .venv/bin/python benchmarks/recipes_summary.py
    .venv/bin/python benchmarks/recipes_summary.py --results DIR --out DIR

1. one table per dataset: rows (recipe, network), mean ± sample SD (n − 1) over seeds of
   MIoU, landslide F1, object F1, predicted ÷ true landslides, boundary F1 at 2 and 8 px (and
   in metres where the results have it), with the step budget and commit;
2. comparisons: for each dataset and network, each recipe against ``paper`` and each
   ablation (``default:loss=ce``, folder ``default-loss-ce``) against the recipe it changes;
   under one recipe, SCDnn against each other network. Difference of means, its standard
   error sqrt(s1²/n1 + s2²/n2), Welch's t and degrees of freedom; "beyond noise" only when
   |difference| > 2 SE;
3. inference options (raw vs cleaned vs test-time augmentation): the same weights, so each
   variant is compared to ``raw`` run by run (paired differences).

Runs with fewer than 3 seeds are flagged "incomplete". Standard library only: it reads JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "recipes"
#: Seeds a finished run has (``benchmarks/recipes.sh``: 0 1 2).
FULL_SEEDS = 3
DATASET_ORDER = ("sichuan", "jinsha")
#: Row columns: results.json score key, header, scale (100: percent points).
COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("miou", "MIoU (%)", 100.0),
    ("landslide_f1", "landslide F1 (%)", 100.0),
    ("object_f1", "object F1 (%)", 100.0),
    ("object_count_ratio", "predicted ÷ true landslides", 1.0),
    ("boundary_f1_2px", "boundary F1 2 px (%)", 100.0),
    ("boundary_f1_8px", "boundary F1 8 px (%)", 100.0),
)
#: Boundary F1 in metres (results.json's ``boundary_f1_<tol>m``), shown when some row has it.
METRES = ("0.5", "1", "2", "4")
#: What the comparisons compare: key, words, scale.
COMPARED: tuple[tuple[str, str, float], ...] = (
    ("miou", "MIoU", 100.0),
    ("object_f1", "object F1", 100.0),
    ("boundary_f1_2px", "boundary F1 (2 px)", 100.0),
)
INFERENCE_KEYS = ("miou", "landslide_f1", "object_f1", "object_count_ratio",
                  "boundary_f1_2px", "boundary_f1_8px")


# ----------------------------------------------------------------------------- numbers

def stats(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean, sample SD (n − 1; None below 2 values) and n of the values that are not None."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if not n:
        return {"mean": None, "sd": None, "n": 0}
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "n": n}


def verdict(diff: float, se: float | None) -> str:
    """``beyond noise`` only when |diff| > 2 SE; ``cannot tell`` without an SE."""
    if se is None:
        return "cannot tell (one seed on a side)"
    return "beyond noise" if abs(diff) > 2 * se else "within noise"


def welch(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """a − b: difference of means, its standard error sqrt(sa²/na + sb²/nb), Welch's t and
    its Welch–Satterthwaite degrees of freedom (None where a side has under 2 values; t and
    df None too when both SDs are 0). None when a side has no value."""
    if a["mean"] is None or b["mean"] is None:
        return None
    diff = a["mean"] - b["mean"]
    se = t = df = None
    if a["n"] > 1 and b["n"] > 1:
        va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
        se = math.sqrt(va + vb)
        if se > 0:
            t = diff / se
            df = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1))
    return {"diff": diff, "se": se, "t": t, "df": df, "n": [a["n"], b["n"]],
            "verdict": verdict(diff, se)}


def paired(diffs: Sequence[float]) -> dict[str, Any] | None:
    """Mean of paired differences, its SE (sd/√n), t and df = n − 1 (None below 2 pairs)."""
    s = stats(diffs)
    if not s["n"]:
        return None
    se = t = df = None
    if s["n"] > 1:
        se = s["sd"] / math.sqrt(s["n"])
        df = s["n"] - 1
        t = s["mean"] / se if se > 0 else None
    return {"diff": s["mean"], "se": se, "t": t, "df": df, "n": s["n"],
            "verdict": verdict(s["mean"], se)}


# ----------------------------------------------------------------------------- reading

def recipe_label(recipe: str) -> str:
    """The folder label ``benchmarks/recipes.sh`` gives a recipe (default:loss=ce ->
    default-loss-ce)."""
    label = recipe.replace("+", "plus")
    for ch in ":,=":
        label = label.replace(ch, "-")
    return label


def _summary(stored: dict[str, Any] | None) -> dict[str, Any]:
    """results.json's summary (mean, std, n) as :func:`stats` gives it."""
    if not stored or stored.get("mean") is None:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": stored["mean"], "sd": stored.get("std"), "n": stored.get("n", 0)}


def read_benchmark(path: Path) -> dict[str, Any]:
    """One ``<label>-<name>/results.json``: where, what recipe, budget and commit, and per
    network its seeds and score summaries."""
    results = json.loads(path.read_text())
    folder = path.parent.name
    config = results.get("config", {})
    train = config.get("train") or {}
    recipe = train.get("recipe") or "paper"  # results from before recipes: the paper's
    label, _, name = folder.rpartition("-")
    if not label:
        label, name = recipe_label(recipe), folder
    dataset = config.get("dataset") or {}
    prov = results.get("provenance") or {}
    models = {}
    for key, m in (results.get("models") or {}).items():
        scores = m.get("scores") or {}
        models[key] = {
            "label": m.get("label", key), "seeds": list(m.get("seeds") or []),
            "scores": {k: _summary(scores.get(k))
                       for k in [c[0] for c in COLUMNS] + [f"boundary_f1_{t}m" for t in METRES]},
        }
    return {"folder": folder, "label": label, "dataset": name, "recipe": recipe,
            "data": dataset.get("data"), "test_scenes": dataset.get("test_scenes"),
            "budget": config.get("budget"), "max_steps": train.get("max_steps"),
            "epochs": train.get("epochs"), "max_minutes": train.get("max_minutes"),
            "requested_seeds": config.get("seeds"), "commit": prov.get("git_commit"),
            "created": prov.get("created"), "models": models}


def read_all(results: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The benchmarks, the inference-option results and what could not be read."""
    benchmarks, inference, unreadable = [], [], []
    for path in sorted(results.glob("*/results.json")):
        try:
            benchmarks.append(read_benchmark(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            unreadable.append(f"{path.parent.name}/results.json ({type(err).__name__}: {err})")
    for path in sorted(results.glob("*-inference.json")):
        try:
            inference.append(read_inference(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            unreadable.append(f"{path.name} ({type(err).__name__}: {err})")
    return benchmarks, inference, unreadable


# ----------------------------------------------------------------------------- rows, comparisons

def _dataset_key(name: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER), name)


def _recipe_key(bench: dict[str, Any]) -> tuple[int, str]:
    base = bench["recipe"].split(":")[0]
    rank = {"paper": 0, "default": 2}.get(base, 4) + (":" in bench["recipe"])
    return (rank, bench["label"])


def _network_key(name: str, order: Sequence[str]) -> tuple[int, int]:
    return (0 if name == "scdnn" else 1, order.index(name))


def build_rows(benchmarks: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per dataset, in order, the (recipe, network) rows."""
    out: dict[str, list[dict[str, Any]]] = {}
    for bench in sorted(benchmarks, key=lambda b: (_dataset_key(b["dataset"]), _recipe_key(b))):
        order = list(bench["models"])
        for net in sorted(order, key=lambda n: _network_key(n, order)):
            m = bench["models"][net]
            n = len(m["seeds"])
            out.setdefault(bench["dataset"], []).append({
                "folder": bench["folder"], "recipe": bench["recipe"], "label": bench["label"],
                "network": net, "network_label": m["label"], "seeds": m["seeds"], "n": n,
                "incomplete": n < FULL_SEEDS, "budget": bench["budget"],
                "max_steps": bench["max_steps"], "max_minutes": bench["max_minutes"],
                "commit": bench["commit"],
                "data": bench["data"], "scores": m["scores"]})
    return out


def _budget(row: dict[str, Any]) -> str:
    steps = f", {row['max_steps']} steps" if row.get("max_steps") else ""
    minutes = f", {row['max_minutes']:g} min" if row.get("max_minutes") else ""
    return f"{row.get('budget') or '?'}{steps}{minutes}"


def compare(dataset: str, a: dict[str, Any], b: dict[str, Any], kind: str
            ) -> dict[str, Any]:
    """Row a against row b on :data:`COMPARED`, with the caveats a reader needs."""
    notes = []
    if a["incomplete"] or b["incomplete"]:
        notes.append("incomplete")
    if _budget(a) != _budget(b):
        notes.append(f"different budgets ({_budget(a)} vs {_budget(b)})")
    if a["data"] != b["data"]:
        notes.append(f"different data ({a['data']} vs {b['data']})")
    return {"dataset": dataset, "kind": kind, "a": _row_id(a), "b": _row_id(b),
            "what": (f"{a['label']} − {b['label']}" if kind != "network"
                     else f"{a['network_label']} − {b['network_label']}"),
            "network": a["network_label"] if kind != "network" else None,
            "recipe": a["label"] if kind == "network" else None,
            "seeds": [a["n"], b["n"]], "notes": notes,
            "metrics": {key: welch(a["scores"][key], b["scores"][key])
                        for key, _, _ in COMPARED}}


def _row_id(row: dict[str, Any]) -> dict[str, str]:
    return {"folder": row["folder"], "recipe": row["recipe"], "network": row["network"]}


def build_comparisons(dataset: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each recipe against ``paper`` and each ablation against its base recipe, network by
    network; under each recipe SCDnn against every other network."""
    by = {(r["label"], r["network"]): r for r in rows}
    found = []
    for r in rows:
        bases = []
        if r["label"] != "paper":
            bases.append(("recipe", "paper"))
        base = recipe_label(r["recipe"].split(":")[0])
        if ":" in r["recipe"] and base != "paper":
            bases.append(("ablation", base))
        for kind, label in bases:
            other = by.get((label, r["network"]))
            if other is not None:
                found.append(compare(dataset, r, other, kind))
    for r in rows:
        if r["network"] != "scdnn":
            continue
        for other in rows:
            if other["label"] == r["label"] and other["network"] != "scdnn":
                found.append(compare(dataset, r, other, "network"))
    return found


# ----------------------------------------------------------------------------- inference

def read_inference(path: Path) -> dict[str, Any]:
    """``<name>-inference.json``: per network and variant the summaries, and the paired
    differences of each variant from ``raw`` (same weights, run by run)."""
    data = json.loads(path.read_text())
    name = path.name[: -len("-inference.json")]
    per_run = data.get("runs") or {}
    networks: dict[str, Any] = {}
    for net, variants in (data.get("table") or {}).items():
        runs = {run: v for run, v in per_run.items() if run.rsplit("-seed", 1)[0] == net}
        networks[net] = {}
        for variant, row in variants.items():
            entry = {"seeds": row.get("seeds"),
                     "scores": {k: _summary(row["scores"].get(k)) for k in INFERENCE_KEYS},
                     "against_raw": None}
            if variant != "raw":
                entry["against_raw"] = {
                    key: paired([v[variant]["scores"][key] - v["raw"]["scores"][key]
                                 for v in runs.values()
                                 if variant in v and "raw" in v
                                 and v[variant]["scores"].get(key) is not None
                                 and v["raw"]["scores"].get(key) is not None])
                    for key, _, _ in COMPARED}
            networks[net][variant] = entry
    return {"name": name, "file": path.name, "bench": data.get("bench"),
            "commit": (data.get("provenance") or {}).get("git_commit"), "networks": networks}


# ----------------------------------------------------------------------------- markdown

def _cell(s: dict[str, Any], scale: float) -> str:
    if s["mean"] is None:
        return "–"
    text = f"{scale * s['mean']:.2f}"
    if s["sd"] is not None:
        text += f" ± {scale * s['sd']:.2f}"
    return text


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _seeds(row: dict[str, Any]) -> str:
    text = f"{row['n']} ({', '.join(map(str, row['seeds']))})" if row["seeds"] else "0"
    return text + (" **incomplete**" if row["incomplete"] else "")


def sentence(c: dict[str, Any]) -> str:
    """One comparison in words, e.g. "default − paper on sichuan, SCDnn: +1.80 ± 2.10 MIoU
    points (3 vs 3 seeds): within noise; ..." (object F1 and boundary F1 after MIoU)."""
    where = c["network"] if c["kind"] != "network" else f"under {c['recipe']}"
    n1, n2 = c["seeds"]
    seeds = f" ({n1} vs {n2} seeds{''.join('; ' + n for n in c['notes'])})"
    parts = []
    for key, words, scale in COMPARED:
        w = c["metrics"][key]
        if w is None:
            continue
        se = "" if w["se"] is None else f" ± {scale * w['se']:.2f}"
        parts.append(f"{scale * w['diff']:+.2f}{se} {words} points"
                     f"{seeds if not parts else ''}: {w['verdict']}")
    if not parts:
        return f"{c['what']} on {c['dataset']}, {where}{seeds}: no score on both sides"
    return f"{c['what']} on {c['dataset']}, {where}: " + "; ".join(parts)


def _comparison_rows(comparisons: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for c in comparisons:
        where = c["network"] if c["kind"] != "network" else c["recipe"]
        for key, words, scale in COMPARED:
            w = c["metrics"][key]
            if w is None:
                continue
            rows.append([c["what"], where, words, f"{c['seeds'][0]} vs {c['seeds'][1]}",
                         f"{scale * w['diff']:+.2f}",
                         _num(None if w["se"] is None else scale * w["se"], ".2f"),
                         _num(w["t"], ".2f"), _num(w["df"], ".1f"), w["verdict"]
                         + (f" ({', '.join(c['notes'])})" if c["notes"] else "")])
    return rows


def regenerate_command(results: Path, out: Path) -> str:
    def rel(p: Path) -> str:
        p = p.resolve()
        return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)

    command = ".venv/bin/python benchmarks/recipes_summary.py"
    if results.resolve() != RESULTS:
        command += f" --results {rel(results)}"
    if out.resolve() != results.resolve():
        command += f" --out {rel(out)}"
    return command


def render(summary: dict[str, Any]) -> str:
    out = ["# Training recipes: summary", "",
           "<!-- Generated by benchmarks/recipes_summary.py: do not edit by hand. -->", "",
           "Generated by `benchmarks/recipes_summary.py` from the `*/results.json` (and "
           "`*-inference.json`) files of this folder; every number below is read from them. "
           "Do not edit: regenerate with", "", f"    {summary['command']}", ""]
    sources = summary["sources"]
    if not sources:
        out += ["No finished benchmark yet: no `<recipe>-<dataset>/results.json` here "
                "(`benchmarks/recipes.sh NAME RECIPE` writes them).", ""]
    else:
        out += ["## Sources", ""]
        out += _table(["folder", "recipe", "dataset", "data", "budget", "seeds requested",
                       "commit", "written"],
                      [[f"`{s['folder']}`", f"`{s['recipe']}`", s["dataset"],
                        f"`{s['data']}`" + (f" (test {', '.join(s['test_scenes'])})"
                                            if s.get("test_scenes") else ""),
                        _budget(s), ", ".join(map(str, s.get("requested_seeds") or [])) or "–",
                        (s["commit"] or "–")[:10], s["created"] or "–"] for s in sources])
        out += [""]
    for bad in summary["unreadable"]:
        out += [f"- **not read**: {bad}"]
    if summary["unreadable"]:
        out += [""]

    for dataset, block in summary["datasets"].items():
        rows = block["rows"]
        metres = [t for t in METRES if any(r["scores"][f"boundary_f1_{t}m"]["n"] for r in rows)]
        out += [f"## {dataset}", ""]
        out += _table(["recipe", "network", "seeds"] + [c[1] for c in COLUMNS]
                      + [f"boundary F1 {t} m (%)" for t in metres] + ["budget", "commit"],
                      [[f"`{r['label']}`", r["network_label"], _seeds(r)]
                       + [_cell(r["scores"][k], scale) for k, _, scale in COLUMNS]
                       + [_cell(r["scores"][f"boundary_f1_{t}m"], 100.0) for t in metres]
                       + [_budget(r), (r["commit"] or "–")[:10]] for r in rows])
        out += ["", "Mean ± sample SD (n − 1) over the seeds (no ± with one seed); "
                f"**incomplete**: fewer than {FULL_SEEDS} finished seeds. Commit: the "
                "results.json's provenance (when its tables were written).", ""]
        comparisons = block["comparisons"]
        if comparisons:
            out += [f"### {dataset}: comparisons", ""]
            out += [f"- {sentence(c)}" for c in comparisons]
            out += [""]
            out += _table(["comparison", "network / recipe", "score", "seeds",
                           "difference (points)", "SE", "Welch t", "df", "verdict"],
                          _comparison_rows(comparisons))
            out += [""]
        else:
            out += ["No comparison yet (one row, or no `paper` / base recipe / second "
                    "network to compare with).", ""]

    if summary["inference"]:
        out += ["## Inference options on the same weights", "",
                "From `<name>-inference.json` (`benchmarks/inference_options.py`): each run's "
                "weights scored raw, cleaned, and cleaned after test-time augmentation. The "
                "weights are the same, so each variant is compared to `raw` run by run: mean "
                "of the per-run differences ± its SE (SD/√n), t with n − 1 df.", ""]
        for inf in summary["inference"]:
            out += [f"### {inf['name']}", ""]
            rows = []
            for net, variants in inf["networks"].items():
                for variant, e in variants.items():
                    rows.append([net, variant, _num(e["seeds"], "d")]
                                + [_cell(e["scores"][k], 1.0 if k == "object_count_ratio"
                                         else 100.0) for k in INFERENCE_KEYS])
            out += _table(["network", "variant", "seeds", "MIoU (%)", "landslide F1 (%)",
                           "object F1 (%)", "predicted ÷ true", "boundary F1 2 px (%)",
                           "boundary F1 8 px (%)"], rows)
            out += [""]
            lines = []
            for net, variants in inf["networks"].items():
                for variant, e in variants.items():
                    for key, words, scale in COMPARED:
                        p = (e["against_raw"] or {}).get(key)
                        if p is None:
                            continue
                        se = "" if p["se"] is None else f" ± {scale * p['se']:.2f}"
                        t = "" if p["t"] is None else f", t = {p['t']:.2f}, df {p['df']}"
                        lines.append(f"- {inf['name']}, {net}: {variant} − raw, {words}: "
                                     f"{scale * p['diff']:+.2f}{se} points ({p['n']} runs"
                                     f"{t}): {p['verdict']}")
            out += lines + ([""] if lines else [])

    out += ["## How to read the comparisons", "",
            "Difference of the means, a − b, in percentage points; SE = sqrt(s₁²/n₁ + s₂²/n₂) "
            "with the sample SDs; Welch's t = difference ÷ SE with the Welch–Satterthwaite "
            "degrees of freedom. A difference is called **beyond noise** only when |difference| "
            "> 2 SE; with one seed on a side there is no SE and nothing can be told. This is a "
            "loose bar: with 3 seeds a side (df ≈ 4) |t| > 2 happens by chance about 12 % of "
            "the time (two-sided), and many comparisons are listed, so a single \"beyond "
            "noise\" is a lead, not a result. Seeds change the weight initialisation and "
            "sampling, not the split: the SD is seed-to-seed spread on one test set.", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def summarize_folder(results: Path) -> dict[str, Any]:
    benchmarks, inference, unreadable = read_all(results)
    rows = build_rows(benchmarks)
    datasets = {name: {"rows": r, "comparisons": build_comparisons(name, r)}
                for name, r in rows.items()}
    sources = [{k: v for k, v in b.items() if k != "models"}
               for b in sorted(benchmarks,
                               key=lambda b: (_dataset_key(b["dataset"]), _recipe_key(b)))]
    return {"generated_by": "benchmarks/recipes_summary.py", "units": "fractions (0-1); "
            "object_count_ratio a ratio; differences and SEs in the same units",
            "full_seeds": FULL_SEEDS, "sources": sources, "unreadable": unreadable,
            "datasets": datasets, "inference": inference}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of <label>-<name>/results.json (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where README.md and summary.json go (default: --results)")
    args = parser.parse_args(argv)
    out = args.out or args.results
    summary = summarize_folder(args.results)
    summary["command"] = regenerate_command(args.results, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(render(summary) + "\n")
    n = sum(len(d["rows"]) for d in summary["datasets"].values())
    print(f"{out / 'README.md'}: {len(summary['sources'])} benchmark(s), {n} row(s), "
          f"{sum(len(d['comparisons']) for d in summary['datasets'].values())} comparison(s)"
          + (f"; not read: {len(summary['unreadable'])}" if summary["unreadable"] else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
