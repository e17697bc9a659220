"""The ``scdnn benchmark`` subcommand: ``add_parser(sub)`` adds it to the ``scdnn`` parser's
subparsers, ``run(args)`` carries it out (``COMMANDS["benchmark"] = run``).

Progress lines go to stderr through rich; the result paths and Table 2 to stdout.
"""

from __future__ import annotations

import argparse

from .budgets import ALL_MODELS, BUDGET_NAMES, BUDGETS, SCENE_DESCRIPTIONS


def add_parser(sub) -> None:
    """Add the ``benchmark`` subcommand to ``sub`` (an argparse subparsers action)."""
    from ..cli_options import non_negative_int, number, seed

    tile_size = number(int, lambda v: v >= 16, "must be an integer ≥ 16")

    budgets = "; ".join(f"{b.name}: {b.description}" for b in BUDGETS.values())
    p = sub.add_parser(
        "benchmark", help="reproduce the paper's comparison: train and score every network",
        description="Train every network on DATA with one split, one budget and one recipe "
        "(the paper's unless --recipe default), score each on the split's test images, and "
        "write DIR/results.md and "
        "results.json (the paper's Tables 1-4 and Figs. 8-9 with its published numbers "
        "beside ours, plus boundary F1, parameters, GFLOPs, training time and curves). "
        "Runs go to DIR/runs/<model>-seed<k>/. Rerunning with the same DIR and options "
        "carries on after a kill: finished runs are skipped, interrupted ones resumed. "
        "On georeferenced scenes (e.g. jinsha-uav: train scene-a, test scene-b with "
        "--test-scenes scene-b) the test scenes are scored on every valid labelled pixel, "
        "validation blocks are held out of the training scenes, and Fig. 8 and Fig. 9 use "
        "tiles of the test scenes (--scene-tile).")
    p.add_argument("data", help="dataset folder (images/ + masks/, or the Bijie layout), or "
                   "georeferenced scenes: a folder of scene folders with rgb.tif + mask.tif "
                   "[+ dsm.tif] each")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="benchmark folder (new, or this benchmark's)")
    p.add_argument("--models", nargs="+", default=["all"], metavar="MODEL",
                   help=f"networks: all (the paper's five) or any of {', '.join(ALL_MODELS)} "
                   "(all)")
    scene_budgets = "; ".join(f"{k}: {v}" for k, v in SCENE_DESCRIPTIONS.items())
    p.add_argument("--budget", choices=BUDGET_NAMES, default="cpu",
                   help=f"training budget (cpu). {budgets}. On scenes: {scene_budgets}")
    p.add_argument("--recipe", default="paper",
                   help="training recipe of every network: paper (Adam at a constant rate, "
                   "cross-entropy, the best validation epoch: the paper's comparison) or "
                   "default (AdamW, warm-up + cosine decay, cross-entropy + Dice, stronger "
                   "augmentation, final averaged weights; see scdnn train --help), or "
                   "either with parts changed, NAME:part=value,... (paper)")
    p.add_argument("--seeds", nargs="+", type=seed, default=[0], metavar="SEED",
                   help="one run per network and seed; seeds vary weight initialisation and "
                   "sampling, never the split. Finished runs of other seeds already in DIR "
                   "are reported too, so a second seed can be added for some networks only "
                   "(0)")
    p.add_argument("--split-seed", type=seed, default=0,
                   help="seed of the one train/val/test split all runs share (0)")
    p.add_argument("--ablations", action="store_true",
                   help="add scdnn-aspp (ASPP instead of ASPC), scdnn-noskip (no skip "
                   "connection) and scdnn-disjoint (4x4 disjoint instead of 8x8 upsampling "
                   "kernels) under the same budget")
    p.add_argument("--tolerance", type=non_negative_int, default=2,
                   help="boundary F1 tolerance in pixels (2)")
    p.add_argument("--test-scenes", nargs="+", default=None, metavar="NAME",
                   help="scenes only, required there: the scene folders held out whole for "
                   "testing (e.g. scene-b); the others are trained on, less 10 %% of their "
                   "valid labelled pixels held out as validation blocks")
    p.add_argument("--use-dsm", action="store_true",
                   help="scenes only: give every network the terrain channels (slope, relative "
                   "elevation) of each scene's dsm.tif as well")
    p.add_argument("--scene-tile", type=tile_size, default=512, metavar="PX",
                   help="scenes only: side of the square tiles of the test scenes scored one "
                   "by one for Fig. 8 (per-tile MIoU) and shown in Table 4 / Fig. 9; a tile "
                   "counts when at least 10 %% of its area is valid and labelled (512)")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="data-loading workers (0 on ≤ 2 cores, else 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow a DIR holding something else; redo every requested run")


def run(args: argparse.Namespace) -> None:
    """Run ``scdnn benchmark`` from parsed arguments; print progress and where results are."""
    from rich.console import Console

    from .plan import BenchmarkConfig
    from .runner import run_benchmark

    console = Console(stderr=True, highlight=False)
    config = BenchmarkConfig(models=tuple(args.models), budget=args.budget,
                             seeds=tuple(args.seeds), split_seed=args.split_seed,
                             ablations=args.ablations, tolerance=args.tolerance,
                             test_scenes=args.test_scenes, use_dsm=args.use_dsm,
                             scene_tile=args.scene_tile, overwrite=args.overwrite,
                             workers=args.workers, recipe=args.recipe)
    results = run_benchmark(args.data, args.out, config,
                            progress=lambda e: console.print(f"{e.message} ...", style="bold",
                                                           markup=False))
    print(f"{'model':<32}{'seeds':>6}{'PA':>9}{'MPA':>9}{'MIoU':>9}{'FWIoU':>9}")
    for m in results["models"].values():
        cells = "".join("      n/a" if m["scores"][k]["mean"] is None
                        else f"{100 * m['scores'][k]['mean']:>9.2f}"
                        for k in ("pa", "mpa", "miou", "fwiou"))
        print(f"{m['label']:<32}{len(m['seeds']):>6}{cells}")
    print(f"results: {args.out}/results.md and {args.out}/results.json")
