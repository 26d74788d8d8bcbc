"""Sub-command of the ensembling stage: ``escnet ensemble RUN_DIR... --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from escnet.cli._common import print_results
from escnet.errors import ParameterError


def cmd_ensemble(args: argparse.Namespace) -> int:
    from escnet.data.folds import parse_folds
    from escnet.training.ensemble import ensemble_runs

    for run in args.run_dirs:
        if not (Path(run) / "config.json").is_file():
            raise ParameterError(
                f"RUN_DIR {run} holds no config.json: it is not a run directory written by "
                "escnet train"
            )
    results = ensemble_runs(
        args.run_dirs,
        args.out,
        folds=parse_folds(args.folds) if args.folds else None,
        progress=not args.quiet,
    )
    print(f"ensemble of {len(args.run_dirs)} run(s), weights chosen on validation:")
    for record in results["ensemble"]["folds"]:
        weights = ", ".join(f"{w:.2f}" for w in record["weights"])
        print(f"  fold {record['test_fold']}: weights [{weights}]")
    print_results(results, Path(args.out))
    return 0


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``escnet`` parser."""
    p = sub.add_parser(
        "ensemble",
        help="average the calibrated probabilities of finished runs, weights chosen on validation",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs made on the same split")
    p.add_argument("--out", required=True, help="directory for results.json, report.md")
    p.add_argument("--folds", help="test folds (default: every fold all runs finished)")
    p.set_defaults(func=cmd_ensemble)
