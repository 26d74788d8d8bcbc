"""Sub-commands after cross-validation: ``escnet ensemble RUN_DIR... --out DIR`` and
``escnet refit RUN|ENSEMBLE [--out DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from escnet.cli._common import path_text, print_results
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


def print_refit(final: Path) -> None:
    """What a refit wrote, from its ``model.json``: where, on what, and what it stands for."""
    import json

    meta = json.loads((final / "model.json").read_text(encoding="utf-8"))
    on = meta.get("trained_on") or {}
    cv = (meta.get("cross_validation") or {}).get("accuracy") or {}
    stands = ""
    if cv.get("mean") is not None:  # one fold has no std; a diverged one no mean
        std = f" +- {100 * cv['std']:.2f}" if cv.get("std") is not None else ""
        stands = f"; cross-validated accuracy {100 * cv['mean']:.2f} %{std}"
    print(
        f"final model: {final} ({meta.get('model')}), trained on {on.get('clips')} clips of "
        f"{on.get('dataset')} folds {on.get('folds')} ({on.get('audio')})" + stands
    )


def cmd_refit(args: argparse.Namespace) -> int:
    from escnet.training.refit import refit

    source = Path(args.run)
    if not (source / "results.json").is_file():
        raise ParameterError(
            f"RUN {source} holds no results.json: give a finished probe run (escnet train "
            "--method probe) or ensemble (escnet ensemble)"
        )
    if args.out is not None:
        out = Path(args.out)
        if (out / "config.json").is_file() or (out / "results.json").is_file():
            # A model.json in a run directory would make `predict RUN` load it, not the run.
            raise ParameterError(
                f"--out {out} holds a run or an ensemble (config.json or results.json); give a "
                "new directory, or leave --out out to write RUN/final"
            )
    print_refit(refit(source, args.out, progress=not args.quiet))
    return 0


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``escnet`` parser."""
    p = sub.add_parser(
        "ensemble",
        help="average the calibrated probabilities of finished runs, weights chosen on validation",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs made on the same split")
    p.add_argument(
        "--out",
        required=True,
        type=path_text("--out"),
        help="directory for results.json, report.md",
    )
    p.add_argument("--folds", help="test folds (default: every fold all runs finished)")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser(
        "refit",
        help="refit a cross-validated probe run or ensemble on all its data: the final model",
    )
    p.add_argument("run", metavar="RUN|ENSEMBLE", help="a finished probe run or ensemble")
    p.add_argument(
        "--out", type=path_text("--out"), help="model directory to write (default: RUN/final)"
    )
    p.set_defaults(func=cmd_refit)
