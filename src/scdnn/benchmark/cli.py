"""The ``scdnn benchmark`` subcommand: ``add_parser(sub)`` adds it to the ``scdnn`` parser's
subparsers, ``run(args)`` carries it out (``COMMANDS["benchmark"] = run``).

Progress lines go to stderr through rich; the result paths and Table 2 to stdout.
"""

from __future__ import annotations

import argparse

from .budgets import ALL_MODELS, BUDGETS, BUDGET_NAMES


def add_parser(sub) -> None:
    """Add the ``benchmark`` subcommand to ``sub`` (an argparse subparsers action)."""
    from ..cli import _non_negative_int

    budgets = "; ".join(f"{b.name}: {b.description}" for b in BUDGETS.values())
    p = sub.add_parser(
        "benchmark", help="reproduce the paper's comparison: train and score every network",
        description="Train every network on DATA with one split, one budget and the paper's "
        "optimizer, score each on the split's test images, and write DIR/results.md and "
        "results.json (the paper's Tables 1-4 and Figs. 8-9 with its published numbers "
        "beside ours, plus boundary F1, parameters, GFLOPs, training time and curves). "
        "Runs go to DIR/runs/<model>-seed<k>/. Rerunning with the same DIR and options "
        "carries on after a kill: finished runs are skipped, interrupted ones resumed.")
    p.add_argument("data", help="dataset folder (images/ + masks/, or the Bijie layout)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="benchmark folder (new, or this benchmark's)")
    p.add_argument("--models", nargs="+", default=["all"], metavar="MODEL",
                   help=f"networks: all (the paper's five) or any of {', '.join(ALL_MODELS)} "
                   "(all)")
    p.add_argument("--budget", choices=BUDGET_NAMES, default="cpu",
                   help=f"training budget (cpu). {budgets}")
    p.add_argument("--seeds", nargs="+", type=_non_negative_int, default=[0], metavar="SEED",
                   help="one run per network and seed; seeds vary weight initialisation and "
                   "sampling, never the split (0)")
    p.add_argument("--split-seed", type=_non_negative_int, default=0,
                   help="seed of the one train/val/test split all runs share (0)")
    p.add_argument("--ablations", action="store_true",
                   help="add scdnn-aspp (ASPP instead of ASPC) and scdnn-noskip (no skip "
                   "connection) under the same budget")
    p.add_argument("--tolerance", type=_non_negative_int, default=2,
                   help="boundary F1 tolerance in pixels (2)")
    p.add_argument("--workers", type=_non_negative_int, default=None,
                   help="data-loading workers (0 on ≤ 2 cores, else 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow a DIR holding something else; redo every requested run")


def run(args: argparse.Namespace) -> None:
    """Run ``scdnn benchmark`` from parsed arguments; print progress and where results are."""
    from rich.console import Console

    from .runner import run_benchmark

    console = Console(stderr=True, highlight=False)
    results = run_benchmark(args.data, args.out, models=args.models, budget=args.budget,
                            seeds=args.seeds, split_seed=args.split_seed,
                            ablations=args.ablations, overwrite=args.overwrite,
                            tolerance=args.tolerance, workers=args.workers,
                            progress=lambda e: console.print(f"{e.message} ...", style="bold",
                                                           markup=False))
    print(f"{'model':<32}{'seeds':>6}{'PA':>9}{'MPA':>9}{'MIoU':>9}{'FWIoU':>9}")
    for name, m in results["models"].items():
        cells = "".join("      n/a" if m["scores"][k]["mean"] is None
                        else f"{100 * m['scores'][k]['mean']:>9.2f}"
                        for k in ("pa", "mpa", "miou", "fwiou"))
        print(f"{m['label']:<32}{len(m['seeds']):>6}{cells}")
    print(f"results: {args.out}/results.md and {args.out}/results.json")
