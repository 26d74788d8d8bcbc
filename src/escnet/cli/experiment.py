"""Sub-commands of experiment grids and their aggregation: ``experiment`` and ``results``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_experiment(args: argparse.Namespace) -> int:
    from escnet.experiment.grid import load_grid, run_grid
    from escnet.experiment.plan import format_plan, plan_grid

    if args.dry_run:
        grid = load_grid(args.grid, out=args.out)
        plan = plan_grid(args.grid, out=args.out, only=args.only, recorded=args.recorded)
        print(
            f"grid {grid.name} ({grid.path}): {len(plan)} cell(s), budget {grid.budget}, "
            f"run directories under {grid.out}"
        )
        for line in format_plan(plan):
            print(line)
        return 0
    overrides = {
        "data_dir": args.data_dir,
        "cache_dir": args.cache_dir,
        "device": args.device,
        "workers": args.workers,
    }
    outcomes = run_grid(
        args.grid,
        out=args.out,
        only=args.only,
        progress=not args.quiet,
        keep_going=args.keep_going,
        overrides=overrides,
        recorded=args.recorded,
    )
    failed = [o.cell.name for o in outcomes if o.status == "failed"]
    unweighted = [o.cell.name for o in outcomes if o.status == "no-weights"]
    ran = sum(o.status == "done" for o in outcomes)
    recorded = sum(o.status == "recorded" for o in outcomes)
    print(
        f"{len(outcomes)} cell(s): {ran} run now, "
        f"{sum(o.status == 'skipped' for o in outcomes)} complete already, "
        + (f"{recorded} in the results given, " if recorded else "")
        + (f"{len(unweighted)} without their weights, " if unweighted else "")
        + f"{len(failed)} failed"
    )
    if unweighted:
        print(
            f"not run for want of pretrained weights ({len(unweighted)}): {', '.join(unweighted)}; "
            "put the weights in the weights directory (--weights-dir, $ESCNET_WEIGHTS_DIR) or "
            "run online, then run the same command again"
        )
    return 1 if failed else 0


def cmd_results(args: argparse.Namespace) -> int:
    from escnet.results.aggregate import aggregate

    written = aggregate(args.run_dirs, args.out, complete_only=args.complete_only)
    left = f" ({written.left_out} incomplete left out)" if written.left_out else ""
    for root in written.empty:
        print(f"{root}: no finished run there yet; the rows of the results given are kept")
    print(f"{len(written.rows)} cell(s) aggregated into {written.out}{left}:")
    for path in written.files:
        print(f"  {path}")
    if written.kept:
        print(f"kept as drawn ({len(written.kept)} figure(s) whose curves were not carried):")
        for path in written.kept:
            print(f"  {path}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "experiment",
        help="run a grid of cells (data set x model x policy x protocol), resumably",
        description="Run every cell of GRID (a TOML file, see escnet.experiment.grid) that is not "
        "complete yet, one escnet train run per cell, and print one line per cell.",
    )
    p.add_argument("grid", help="the grid file, e.g. experiments/paper.toml")
    p.add_argument(
        "--dry-run", action="store_true", help="list the cells and an estimate of their time"
    )
    p.add_argument("--out", help="run root (default: the grid's [grid] out, or runs/<name>)")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="PATTERN",
        help="only cells whose names match these shell patterns, e.g. 'esc10-cnn7-*'",
    )
    p.add_argument(
        "--keep-going", action="store_true", help="go on with the next cell after one fails"
    )
    p.add_argument(
        "--recorded",
        metavar="RESULTS_CSV",
        help="an earlier escnet results' results.csv: cells it holds complete are skipped, "
        "e.g. results/results.csv on a machine without their run directories",
    )
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, mps (default: the grid's or auto)")
    p.add_argument("--workers", type=int, help="data workers per cell (default: cores, <= 8)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser(
        "results",
        help="aggregate run directories into tables and figures",
        description="Aggregate finished runs (or a grid's run root) into OUT: results.csv, "
        "results.md (mean +- std over folds, the paper's claims beside), bar charts with fold "
        "error bars and training-vs-validation curves of cnn7 / cnn9.",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        help="run directories, directories holding them (a grid's run root), or an earlier "
        "aggregation's results.csv, whose rows are carried (with the curves.csv beside it) "
        "unless a run directory given is of the same cell",
    )
    p.add_argument("--out", type=Path, default=Path("results"), help="output directory")
    p.add_argument(
        "--complete-only",
        action="store_true",
        help="leave out runs that have not finished all their planned folds (by default they "
        "are shown, marked 'incomplete: k of n folds')",
    )
    p.set_defaults(func=cmd_results)
