"""Sub-commands of training and evaluation on a data set's folds."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from escnet.cli._common import print_results


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from escnet.folds import parse_folds
    from escnet.train import TrainConfig, cross_validate

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    overrides: dict[str, Any] = {"data_dir": args.data_dir, "cache_dir": args.cache_dir}
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            overrides[field.name] = value
    if args.folds:
        overrides["folds"] = parse_folds(args.folds)
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    run_dir = (
        Path(args.run_dir)
        if args.run_dir
        else Path("runs")
        / (f"{config.dataset}-{config.model}-{config.augment}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    start = time.perf_counter()
    results = cross_validate(config, run_dir, resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun every rank returns the same results; rank 0 reports them
    print(
        f"{config.model} on {config.dataset}, augmentation {config.augment!r}, "
        f"official folds, {time.perf_counter() - start:.0f} s; run directory {run_dir}"
    )
    print_results(results, run_dir)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from escnet.train import evaluate_run

    run_dir = Path(args.run_dir)
    results = evaluate_run(run_dir, fold=args.fold, progress=not args.quiet)
    print(f"test metrics recomputed from the checkpoints in {run_dir}:")
    print_results(results, run_dir)
    match = results.get("matches_results")
    if match is not None:
        print("matches results.json" if match else "DIFFERS from results.json")
    return 0


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``escnet`` parser."""
    p = sub.add_parser("train", help="train and test on the official folds, leave-one-fold-out")
    p.add_argument("--dataset", help="esc50, esc10, us8k or folder")
    p.add_argument("--root", help="the data set's own directory (for 'folder')")
    p.add_argument("--model", help="registered model (see `escnet models`)")
    p.add_argument(
        "--augment",
        help="augmentation policy: none, taa, naa, naa-online, naa+taa, naa+mixup, specaug, "
        "specaug+mixup",
    )
    p.add_argument("--folds", help="test folds, e.g. '1-5' or '1' (default: every fold)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    p.add_argument(
        "--head-lr", type=float, help="peak learning rate of the new output layer (default: --lr)"
    )
    p.add_argument(
        "--linear-probe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the new output layer on frozen features before fine-tuning (LP-FT)",
    )
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--val-fraction", type=float, help="validation share of the training folds")
    p.add_argument("--early-stopping-patience", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the model's pretrained weights",
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory order (default: on; faster on CPUs and GPUs alike)",
    )
    p.add_argument("--config", help="a config.json to start from (options override it)")
    p.add_argument("--run-dir", help="where to write the run (default runs/<name>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="recompute a run's test metrics from its checkpoints")
    p.add_argument("run_dir")
    p.add_argument("--fold", type=int, help="only this test fold")
    p.set_defaults(func=cmd_evaluate)
