"""Bundle trained SCDnn weights into the package, and choose the demo's sample images
(issue 6: ``make demo`` out of the box). Run once, after the weights are trained and scored:

    benchmarks/sichuan_scdnn.sh        # trains runs/sichuan-scdnn, writes its test metrics
    .venv/bin/python benchmarks/bundle.py --weights runs/sichuan-scdnn/weights.safetensors \\
        --data ../shared/data/sichuan-aerial

1. Converts the weights to float16 safetensors at ``src/scdnn/data/scdnn-sichuan.safetensors``,
   or where that is over 10 MB to int8 (large kernels int8 with per-channel scales, the rest
   float16; :mod:`scdnn.weights`), the model card kept with its ``"dtype"`` (``model.json``
   beside it), after checking that the file, loaded into the float32 network as ``scdnn``
   loads it, gives the same
   masks as the float32 weights on at least ``--min-agreement`` (99.9 %) of the pixels of the
   held-back test images of the weights' own split. Below that it writes nothing, exit 1.
2. Chooses the demo sample: ``--images`` (4) test images of that split, never a training or
   validation image, whose central ``--crop`` x ``--crop`` (640) crop (of the data at its
   native resolution; a network with an ``input_scale`` resamples it itself) holds 5–60 %
   landslide. Their names and the crop go into the bundled card (``demo_sample``);
   ``benchmarks/bundle_sample.py`` then writes those crops into ``src/scdnn/data/sample/``,
   which ``scdnn demo`` maps.
3. Writes ``src/scdnn/data/WEIGHTS.md`` (data, command, test scores from ``--metrics``,
   licence) and ``benchmarks/results/bundle.json`` (agreement, sizes, demo time).
4. Times ``scdnn demo`` on the bundled files (``--no-demo`` skips it).
5. With ``--elsewhere DATA ...``: scores the float32 weights on every sample of other
   datasets (``scdnn evaluate --all``, the card's cleaning) and writes the scores into
   WEIGHTS.md and bundle.json, so that what the weights do on imagery they were not trained
   for is measured, not guessed (``--elsewhere ../shared/data/hokkaido-iburi``).

``--metrics`` (benchmarks/results/sichuan-scdnn/metrics.json) must be the evaluation of these
very weights on their test split (checked: same weights file, written after the weights,
same test images); exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, machine
from scdnn.benchmark.tables import outline_scores
from scdnn.datasets import open_dataset, read_image, read_mask
from scdnn.errors import UserError
from scdnn.evaluation import evaluate
from scdnn.inference import landslide_probability
from scdnn.runs import atomic_path, atomic_write, provenance, read_json, write_json
from scdnn.weights import load_model, read_card, save_weights

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "src" / "scdnn" / "data"
BUNDLED = DATA_DIR / "scdnn-sichuan.safetensors"
MAX_WEIGHTS_BYTES = 10_000_000
#: Storage tried in order; the first under MAX_WEIGHTS_BYTES is bundled (scdnn.weights).
STORAGE = ("float16", "int8")

DATASET_CITATION = ("Zeng et al. 2021, landslide aerial image dataset for Sichuan, Science "
                    "Data Bank, doi:10.11922/sciencedb.j00001.00222")
LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"


class Refused(Exception):
    """A check failed: print the message, exit 1, nothing bundled."""


def main() -> int:
    global DATA_DIR, BUNDLED, RESULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="float32 weights of an scdnn train run")
    parser.add_argument("--data", required=True, help="the dataset the weights were trained on")
    parser.add_argument("--metrics", default=str(RESULTS / "sichuan-scdnn" / "metrics.json"),
                        help="scdnn evaluate's metrics.json of these weights on their test split")
    parser.add_argument("--images", type=int, default=4, help="sample images (4)")
    parser.add_argument("--crop", type=int, default=640, help="sample crop size in pixels (640)")
    parser.add_argument("--min-agreement", type=float, default=0.999,
                        help="least share of equal mask pixels, bundled vs float32 (0.999)")
    parser.add_argument("--no-demo", action="store_true", help="do not time scdnn demo")
    parser.add_argument("--elsewhere", nargs="*", default=[], metavar="DATA",
                        help="other datasets to score the weights on (every sample)")
    parser.add_argument("--package-data", default=str(DATA_DIR),
                        help="where to write the weights (src/scdnn/data; another "
                        "folder for a trial run)")
    parser.add_argument("--results", default=str(RESULTS), help="where bundle.json goes")
    args = parser.parse_args()
    DATA_DIR = Path(args.package_data).resolve()
    BUNDLED = DATA_DIR / BUNDLED.name
    RESULTS = Path(args.results).resolve()
    os.chdir(ROOT)  # paths in the evaluation's metrics.json are relative to the repository
    try:
        bundle(args)
    except (Refused, UserError) as exc:
        print(f"bundle.py: refused: {exc}", file=sys.stderr)
        return 1
    return 0


def bundle(args: argparse.Namespace) -> None:
    weights = Path(args.weights)
    card = read_card(weights)
    model32, _ = load_model(weights)
    split = card.split
    test = list(split.get("test") or [])
    seen = set(split.get("train") or []) | set(split.get("val") or [])
    if card.model != "scdnn" or card.inputs != ["red", "green", "blue"]:
        raise Refused(f"{weights}: not RGB SCDnn weights (model {card.model}, inputs "
                      f"{card.inputs})")
    if not test or seen & set(test):
        raise Refused(f"{weights}: the model card has no held-back test split apart from the "
                      f"training and validation images")
    metrics = check_metrics(Path(args.metrics), weights, card, test)
    dataset = open_dataset(args.data)
    by_name = {s.name: s for s in dataset.samples}
    if missing := [n for n in test if n not in by_name]:
        raise Refused(f"{args.data} lacks the test image {missing[0]} of the weights' split")

    # the demo sample: test images only, recorded in the card (not copied: see the docstring)
    names = pick_sample(dataset, by_name, test, args.images, args.crop)
    assert not seen & set(names), "a sample image is a training or validation image"
    assert set(names) <= set(test)

    # 1. float16, or int8 where float16 is over MAX_WEIGHTS_BYTES; checked on the test
    # images before anything is written into the package
    converted_from = {"path": str(weights), "sha256": sha256(weights), "dtype": "float32"}
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / BUNDLED.name
        for dtype in STORAGE:
            bundled_card = dataclasses.replace(card, dtype=dtype, extra={
                **card.extra, "converted_from": converted_from,
                "demo_sample": {"dataset": "sichuan-aerial", "images": names,
                                "crop": args.crop}})
            save_weights(model32, candidate, bundled_card)
            size = candidate.stat().st_size
            print(f"{dtype}: {size / 1e6:.2f} MB")
            if size <= MAX_WEIGHTS_BYTES:
                break
        else:
            raise Refused(f"{dtype} weights are {size / 1e6:.2f} MB, over 10 MB")
        reloaded, _ = load_model(candidate)  # as scdnn loads it: back to float32
        agreement = mask_agreement(model32, reloaded, card, [by_name[n] for n in test])
        print(f"{dtype} vs float32 masks on {len(test)} test images: "
              f"{100 * agreement['agreement']:.4f} % of pixels equal "
              f"(worst image {100 * agreement['worst_image']:.4f} %)")
        if agreement["agreement"] < args.min_agreement:
            raise Refused(f"{dtype} masks agree on {100 * agreement['agreement']:.4f} % of "
                          f"pixels, below {100 * args.min_agreement:.2f} %; not bundled")
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        with atomic_path(BUNDLED) as final:
            shutil.copyfile(candidate, final)
        write_json(DATA_DIR / "model.json", bundled_card.to_dict())
    print(f"weights: {BUNDLED} ({size / 1e6:.2f} MB)")

    print(f"demo sample: {', '.join(names)} (central {args.crop} px crops, cut at run time)")

    # 5. other datasets, before the documentation that reports them
    other = [score_elsewhere(weights, data, weights.parent / "elsewhere")
             for data in args.elsewhere]

    # 3. documentation and the results file
    write_weights_md(bundled_card, metrics, Path(args.metrics), weights, size, agreement, other)
    default = DATA_DIR == (ROOT / "src" / "scdnn" / "data")
    if default:  # a trial run into another folder leaves the README alone
        update_readme(bundled_card, metrics, Path(args.metrics))
    demo = None if args.no_demo else time_demo([] if default else ["--weights", str(BUNDLED)])
    results = {
        "weights": {"source": str(weights), "source_sha256": converted_from["sha256"],
                    "source_bytes": weights.stat().st_size, "bundled": _rel(BUNDLED),
                    "bundled_bytes": size, "bundled_sha256": sha256(BUNDLED),
                    "dtype": dtype},
        "agreement": {**agreement, "threshold": 0.5, "min_agreement": args.min_agreement,
                      "test_images": test},
        "sample": {"images": names, "crop": args.crop,
                   "source": "../shared/data/sichuan-aerial, cropped at run time"},
        "test_metrics": {"file": str(Path(args.metrics)),
                         **{k: metrics[k] for k in ("pa", "mpa", "miou", "fwiou",
                                                    "landslide_f1", "boundary_f1", "images")},
                         "landslide_iou": metrics["class_iou"]["landslide"]},
        "demo": demo,
        "elsewhere": other,
        "machine": machine(),
        "provenance": provenance(),
    }
    write_json(RESULTS / "bundle.json", results)
    print(f"results: {RESULTS / 'bundle.json'}")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_metrics(path: Path, weights: Path, card: dict, test: list[str]) -> dict:
    """The test metrics of ``weights``: refused unless they are of this very file."""
    metrics = read_json(path)
    source = (metrics.get("source") or {}).get("weights")
    if not source or os.path.realpath(source) != os.path.realpath(weights):
        raise Refused(f"{path} scores {source}, not {weights}; rerun benchmarks/sichuan_scdnn.sh")
    trained = card.provenance.get("created", "")
    scored = (metrics.get("provenance") or {}).get("created", "")
    if not scored or scored < trained:
        raise Refused(f"{path} was written ({scored or 'at an unknown time'}) before the "
                      f"weights were trained ({trained}): it scores an earlier run; rerun "
                      f"benchmarks/sichuan_scdnn.sh")
    if metrics.get("images") != len(test) or "test part" not in str(metrics.get("scored")):
        raise Refused(f"{path} does not score the {len(test)} test images of the weights' "
                      f"split (it scores {metrics.get('images')}: {metrics.get('scored')})")
    return metrics


def mask_agreement(model32, bundled, card, samples) -> dict:
    """Share of pixels whose mask (probability ≥ 0.5) is the same with both models, over the
    whole test images at native size (as scdnn evaluate predicts them)."""
    normalization = card.normalization
    equal = total = 0
    worst, max_diff, per_image = 1.0, 0.0, {}
    for s in samples:
        image = read_image(s.image_path)
        p32 = landslide_probability(model32, image, normalization)
        pb = landslide_probability(bundled, image, normalization)
        same = int(((p32 >= 0.5) == (pb >= 0.5)).sum())
        equal, total = equal + same, total + p32.size
        per_image[s.name] = same / p32.size
        worst = min(worst, same / p32.size)
        max_diff = max(max_diff, float(np.abs(p32 - pb).max()))
    return {"agreement": equal / total, "worst_image": worst, "pixels": total,
            "differing_pixels": total - equal, "max_probability_difference": max_diff,
            "per_image": per_image}


def central(array: np.ndarray, crop: int) -> np.ndarray:
    h, w = array.shape[:2]
    if h < crop or w < crop:
        raise Refused(f"images are {h}x{w}, smaller than --crop {crop}")
    top, left = (h - crop) // 2, (w - crop) // 2
    return array[top:top + crop, left:left + crop]


def pick_sample(dataset, by_name, test: list[str], count: int, crop: int) -> list[str]:
    """``count`` test images whose central crop holds 5–60 % landslide pixels (something to
    find, and background around it), first by name; refused when too few qualify."""
    chosen = []
    for name in sorted(test):
        share = float(central(read_mask(by_name[name].mask_path), crop).mean())
        if 0.05 <= share <= 0.60:
            chosen.append(name)
        if len(chosen) == count:
            return chosen
    raise Refused(f"only {len(chosen)} test images have 5–60 % landslide pixels in their "
                  f"central {crop}x{crop} crop; lower --images")


def train_command(card: dict) -> str:
    """The ``scdnn train`` command that made the weights: as recorded in the card, or rebuilt
    from its config when the recorded one was a ``--resume``."""
    recorded = card.provenance.get("command", "")
    if recorded.startswith("scdnn train") and "--resume" not in recorded.split():
        return recorded
    c = card.config
    length = (f"--steps {c['max_steps']}" if c.get("max_steps") is not None
              else f"--epochs {c['epochs']}")
    scale = card.model_kwargs.get("input_scale", 1.0)
    return (f"scdnn train {c['data']} --out {c['out']} --model {c['model']} --recipe "
            f"{c.get('recipe', 'paper')} {length} --crops-per-image {c['crops_per_image']} "
            f"--batch-size {c['batch_size']} --image-size {c['image_size']}"
            + ("" if scale == 1 else f" --input-scale {scale:g}") + f" --seed {c['seed']}")


def kept_weights(card: dict) -> str:
    """Which weights the run kept, in words: the final averaged ones or the best epoch's."""
    from scdnn.trainers.recipes import Recipe

    recipe = Recipe.parse(card.config.get("recipe", "paper"))
    if recipe.weights == "final":
        ema = " exponential moving average of the" if recipe.ema else ""
        return f"the final{ema} weights were kept (no pick by validation)"
    return (f"the best epoch by validation MIoU was kept (epoch {card.best_epoch}, validation "
            f"MIoU {_number(card.best_val_miou)})")


def training_crops(card: dict) -> str:
    from scdnn.models.rescaled import data_crop_size

    size = card.config["image_size"]
    scale = card.model_kwargs.get("input_scale", 1.0)
    if scale == 1:
        return f"Training crops: {size} x {size} at native resolution."
    data = data_crop_size(size, scale)
    return (f"Training crops: {data} x {data} of the data, seen by the network at 1/"
            f"{round(1 / scale)} of the resolution ({size} x {size}; `input_scale` {scale:g}, "
            f"which the card carries: every command resamples the same way).")


def mapping_unit(card) -> str:
    """The card's minimum mapping unit, in words (or that it has none)."""
    unit = card.mapping_unit
    if unit is None:
        return ("The card carries no minimum mapping unit: outline cleaning uses its defaults "
                "(400 px on images).")
    score = unit.scores.get(f"{unit.area_px:g}", {})
    return (f"Minimum mapping unit {unit.area_px:,.0f} px, chosen on the "
            f"{len(card.split['val'])} validation images (object F1 "
            f"{_number(score.get('object_f1'))}, MIoU {_number(score.get('miou'))} there, the "
            f"best of {len(unit.scores)} units tried); `map`, `predict`, `evaluate` and `demo` "
            f"clean with it unless given `--min-area`/`--max-hole`.")


def cleaned_under(metrics: dict) -> str | None:
    """The smallest landslide (and hole) an evaluation's cleaning kept, in words; None for
    raw masks."""
    cleaning = metrics.get("cleaning")
    return None if not cleaning else f"{cleaning['pixels']['min_area']:,.0f} px"


def storage(dtype: str) -> str:
    """How the bundled tensors are stored, in words."""
    if dtype == "int8":
        return ("Stored compactly: the large convolution kernels as int8 with one float32 "
                "scale per output slice, the other tensors in float16 (`scdnn.weights`)")
    return "Stored in half precision (float16)"


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def score_elsewhere(weights: Path, data: str, out: Path) -> dict:
    """Scores of ``weights`` on every sample of ``data`` (``scdnn evaluate --all``, the
    outlines cleaned as ``scdnn evaluate`` cleans them by default), kept in
    ``out/<dataset>/``."""
    name = Path(data).resolve().name
    start = time.perf_counter()
    m = evaluate(data, out / name, weights=str(weights), use_all=True, overwrite=True)
    seconds = time.perf_counter() - start
    row = {"dataset": name, "data": str(data), "scored": m.get("scored"),
           "images": m.get("images"), "seconds": seconds, "miou": m["miou"],
           "landslide_iou": m["class_iou"]["landslide"], "landslide_f1": m["landslide_f1"],
           **outline_scores(m)}
    print(f"elsewhere: {name}: MIoU {_pct(row['miou'])} %, landslide IoU "
          f"{_pct(row['landslide_iou'])} %, object F1 {_pct(row.get('object_f1'))} %")
    return row


def elsewhere_section(rows: list[dict]) -> str:
    """WEIGHTS.md's paragraph on other data: the measured scores, or that none were taken."""
    if not rows:
        return ("These are weights for a demonstration, trained on one dataset's images on a "
                "CPU; they have not been scored on other imagery.")
    lines = ["Scored on imagery they were not trained on (`benchmarks/bundle.py "
             "--elsewhere`, every sample, outlines cleaned as by default), in %:", "",
             "| dataset | scored | MIoU | landslide IoU | landslide F1 | object F1 | "
             "boundary F1 (2 px) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['scored']} | {_pct(r['miou'])} | "
                     f"{_pct(r['landslide_iou'])} | {_pct(r['landslide_f1'])} | "
                     f"{_pct(r.get('object_f1'))} | {_pct(r.get('boundary_f1_2px'))} |")
    lines += ["", "Where these scores are low the weights are not fit to map landslides "
              "there: train on labelled images of the region (`scdnn train`)."]
    return "\n".join(lines)


def write_weights_md(card, metrics: dict, metrics_path: Path, weights: Path, size: int,
                     agreement: dict, elsewhere: list[dict] | None = None) -> None:
    split = card.split
    log = weights.parent / "log.csv"
    timing = ""
    if log.is_file():
        import csv
        import statistics

        with open(log, newline="") as handle:
            seconds = [float(r["seconds"]) for r in csv.DictReader(handle) if r.get("seconds")]
        if seconds:  # the median: an epoch that spanned a pause or a resume says nothing
            timing = (f" ({len(seconds)} epochs of a median {statistics.median(seconds):.0f} s "
                       f"on {card.provenance.get('machine')})")
    m = metrics
    objects = m.get("objects") or {}
    under = cleaned_under(m)
    outlines = ("raw thresholded masks" if under is None else
                f"outlines cleaned as by default: landslides and holes under {under}")
    text = f"""# Bundled weights: `scdnn-sichuan.safetensors`

SCDnn (Li et al. 2024, as implemented in this package) trained by this project's own
`scdnn train` on the aerial images of Sichuan in `../shared/data/sichuan-aerial`
(36 images, 1024 x 1024;
{DATASET_CITATION}; {LICENCE}).

Trained with{timing}:

    {train_command(card)}

Seeded split (seed {split['seed']}): {len(split['train'])} training, {len(split['val'])} \
validation and {len(split['test'])} held-back test images; {kept_weights(card)}.
{training_crops(card)}
{mapping_unit(card)}
The split, the training configuration, the normalisation and the provenance are in the model
card inside the file (`scdnn.weights.read_card`), also written out as `model.json`.

{storage(card.dtype)} ({size / 1e6:.2f} MB); `scdnn` converts them to float32 on
loading. On the {len(split['test'])} test images, they give the same masks as the
float32 weights on {100 * agreement['agreement']:.4f} % of the pixels \
(`benchmarks/results/bundle.json`).

Scores on the {m['images']} held-back test images at native size (`scdnn evaluate`, \
{outlines}, `{_rel(metrics_path.resolve())}`, float32 weights), in % (landslides as
objects: matched one to one at IoU ≥ 0.5):

| PA | MPA | MIoU | FWIoU | landslide IoU | landslide F1 | \
boundary F1 ({m['boundary_tolerance_px']} px) | object F1 | predicted ÷ true landslides |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| {_pct(m['pa'])} | {_pct(m['mpa'])} | {_pct(m['miou'])} | {_pct(m['fwiou'])} | \
{_pct(m['class_iou']['landslide'])} | {_pct(m['landslide_f1'])} | {_pct(m['boundary_f1'])} | \
{_pct(objects.get('f1'))} | {_ratio(objects.get('count_ratio'))} |

{elsewhere_section(elsewhere or [])}

Licence: the weights are derived from the dataset above and are distributed under
{LICENCE}. Attribution: "SCDnn weights trained by the scdnn project on the
landslide aerial image dataset for Sichuan (Zeng et al. 2021, Science Data Bank,
doi:10.11922/sciencedb.j00001.00222, CC BY 4.0)".
"""
    with atomic_write(DATA_DIR / "WEIGHTS.md", "w") as handle:
        handle.write(text)


README_SCORES = ("<!-- bundle.py: scores -->", "<!-- /bundle.py -->")


def readme_text(card, metrics: dict, metrics_path: Path) -> str:
    """The README's account of the bundled weights: how they were trained and their test
    scores (written between the ``README_SCORES`` markers)."""
    m = metrics
    objects = m.get("objects") or {}
    unit = card.mapping_unit
    under = cleaned_under(m)
    cleaned = ("raw masks" if under is None else
               f"outlines cleaned with landslides and holes under {under}")
    unit_text = ("" if unit is None else
                 f" The card carries a minimum mapping unit of {unit.area_px:,.0f} px, chosen "
                 f"on the validation images, which `map`, `predict`, `evaluate` and `demo` "
                 f"clean with by default.")
    object_text = ("" if objects.get("f1") is None else
                   f", object F1 {_pct(objects['f1'])} % (predicted ÷ true landslides "
                   f"{_ratio(objects.get('count_ratio'))})")
    return (f"with `{train_command(card)}`. Scores on the "
            f"{m['images']} held-back test images ({cleaned}; "
            f"`{_rel(metrics_path.resolve())}`): MIoU {_pct(m['miou'])} %, PA {_pct(m['pa'])} %, "
            f"landslide IoU {_pct(m['class_iou']['landslide'])} %, landslide F1 "
            f"{_pct(m['landslide_f1'])} %{object_text}, boundary F1 "
            f"{_pct(m['boundary_f1'])} % ({m['boundary_tolerance_px']} px).{unit_text}"
            + ("" if not card.dtype else f" {storage(card.dtype)}, converted to float32 on "
               "loading."))


def update_readme(card, metrics: dict, metrics_path: Path) -> None:
    """Write :func:`readme_text` between the README's ``README_SCORES`` markers."""
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = README_SCORES
    if start not in text or end not in text:
        print(f"note: {readme} has no {start} ... {end} markers; scores not written there")
        return
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    with atomic_write(readme, "w") as handle:
        handle.write(f"{head}{start}{readme_text(card, metrics, metrics_path)}{end}{tail}")


def time_demo(options: list[str]) -> dict:
    """Wall time of ``scdnn demo`` on the bundled files, in a fresh process (``options``
    name them when they are not in the package)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "scdnn.cli", "demo", "--out",
                               str(Path(tmp) / "demo-output"), *options],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise Refused(f"scdnn demo failed on the bundled files: {done.stderr.strip()}")
    print(f"scdnn demo: {seconds:.1f} s")
    return {"seconds": seconds, "torch_threads": torch.get_num_threads(),
            "cores": os.cpu_count()}


if __name__ == "__main__":
    sys.exit(main())
