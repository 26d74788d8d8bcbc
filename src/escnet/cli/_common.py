"""Pieces that several sub-commands share: data set options, argument types that refuse bad
values with one line naming the argument, skipped-file and result lines."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from escnet.data.datasets import Dataset
from escnet.errors import ParameterError


def whole_number(minimum: int, maximum: int | None = None, note: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number >= ``minimum`` (and <= ``maximum``; ``note`` says
    where the maximum comes from)."""
    wanted = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
    wanted += f" ({note})" if note else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a whole number {wanted}, got {text!r}")
        return value

    return parse


def finite_number(text: str) -> float:
    """An argparse ``type``: a finite number (``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seconds(maximum: float, *, zero: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a number of seconds in (0, ``maximum``] (``zero``: [0, ...])."""
    return bounded(maximum, "a number of seconds", zero=zero)


def bounded(
    maximum: float, what: str = "a number", *, zero: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a number in (0, ``maximum``] (``zero``: [0, ``maximum``]); ``inf``
    and ``nan`` are refused."""
    low = "[0" if zero else "(0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = (value >= 0 if zero else value > 0) and value <= maximum  # also refuses nan
        if not ok:
            raise argparse.ArgumentTypeError(
                f"expected {what} in {low}, {maximum:g}], got {text!r}"
            )
        return value

    return parse


def dataset_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required, help="esc50, esc10, us8k or folder")
    p.add_argument("--root", help="the data set's own directory (for 'folder': required)")
    p.add_argument(
        "--folds",
        help="use only these folds, e.g. '1-5' or '1,2' (default: every fold the copy holds)",
    )
    p.add_argument("--folds-csv", help="folder data sets: CSV with columns filename, fold")
    p.add_argument("--group-pattern", help="folder data sets: regex whose match is a file's group")
    p.add_argument(
        "--num-folds",
        type=whole_number(2),
        help="folder data sets without --folds-csv: folds of the grouped split (default 5)",
    )


#: Options of ``dataset_args`` that only a folder data set takes.
_FOLDER_ONLY = ("folds_csv", "group_pattern", "num_folds")


def load_dataset(args: argparse.Namespace) -> Dataset:
    from escnet.data.datasets import get_dataset
    from escnet.data.folds import parse_folds

    kwargs: dict[str, object] = {"root": args.root}
    folder_options = {k: getattr(args, k, None) for k in _FOLDER_ONLY}
    if args.dataset != "folder":
        given = [f"--{k.replace('_', '-')}" for k, v in folder_options.items() if v is not None]
        if given:
            raise ParameterError(
                f"{', '.join(given)}: only --dataset folder takes this; {args.dataset} has "
                "official folds (pick some with --folds)"
            )
        kwargs["data_dir"] = args.data_dir
    if args.folds:
        kwargs["folds"] = parse_folds(args.folds)
    if args.dataset == "folder":
        kwargs.update({k: v for k, v in folder_options.items() if v is not None})
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
