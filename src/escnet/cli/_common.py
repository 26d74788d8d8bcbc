"""Pieces that several sub-commands share: data set options, skipped-file and result lines."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from escnet.datasets import Dataset


def dataset_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required, help="esc50, esc10, us8k or folder")
    p.add_argument("--root", help="the data set's own directory (for 'folder': required)")
    p.add_argument("--folds", help="use only these folds, e.g. '1-5' or '1,2'")
    p.add_argument("--folds-csv", help="folder data sets: CSV with columns filename, fold")
    p.add_argument("--group-pattern", help="folder data sets: regex whose match is a file's group")


def load_dataset(args: argparse.Namespace) -> Dataset:
    from escnet.datasets import get_dataset
    from escnet.folds import parse_folds

    kwargs: dict[str, object] = {"root": args.root}
    if args.dataset != "folder":
        kwargs["data_dir"] = args.data_dir
    if args.folds:
        kwargs["folds"] = parse_folds(args.folds)
    if args.dataset == "folder":
        kwargs["folds_csv"] = args.folds_csv
        kwargs["group_pattern"] = args.group_pattern
    return get_dataset(args.dataset, **kwargs)


def print_skipped(skipped: Sequence[tuple[Path, str]]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} file(s) that could not be loaded:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")


def print_results(results: dict[str, Any], run_dir: Path) -> None:
    folds = results.get("folds") or []
    for f in folds:
        print(
            f"  fold {f['test_fold']}: accuracy {100 * f['accuracy']:.2f} %, "
            f"macro F1 {100 * f['macro_f1']:.2f} %, loss {f['loss']:.4f}"
            + (f", best epoch {f['best_epoch']}" if f.get("best_epoch") is not None else "")
        )
    acc = results["summary"]["accuracy"]
    std = acc["std"]
    print(
        f"accuracy over {len(folds)} fold(s): {100 * acc['mean']:.2f} %"
        + (f" +- {100 * std:.2f}" if std is not None and len(folds) > 1 else "")
    )
    print(f"report: {run_dir / 'report.md'}")
