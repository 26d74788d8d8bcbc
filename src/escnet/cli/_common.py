"""Pieces that several sub-commands share: data set options, argument types that refuse bad
values with one line naming the argument, skipped-file and result lines."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from escnet.data.datasets import Dataset

#: The largest seed: numpy's generators take seeds below 2**32.
MAX_SEED = 2**32 - 1


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


def dataset_args(p: argparse.ArgumentParser, required: bool = True, folds: bool = True) -> None:
    """The data-set options every command that reads a data set takes (``folds=False``: all
    but ``--folds``, for ``train``, whose ``--folds`` was once its test folds)."""
    p.add_argument("--dataset", required=required, help="esc50, esc10, us8k or folder")
    p.add_argument(
        "--root",
        type=path_text("--root"),
        help="the data set's own directory (for 'folder': required)",
    )
    if folds:
        p.add_argument(
            "--folds",
            help="use only these folds, e.g. '1-5' or '1,2' (default: every fold the copy holds)",
        )
    p.add_argument(
        "--folds-csv",
        type=path_text("--folds-csv"),
        help="folder data sets: CSV with columns filename, fold",
    )
    p.add_argument("--group-pattern", help="folder data sets: regex whose match is a file's group")
    p.add_argument(
        "--num-folds",
        type=whole_number(2),
        help="folder data sets without --folds-csv: folds of the grouped split (default 5)",
    )


def path_text(option: str) -> Callable[[str], str]:
    """An argparse ``type``: a path that is not empty (an empty one would mean the working
    directory, which no one means)."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{option}: an empty path; give a directory or file")
        return text

    return parse


def load_dataset(args: argparse.Namespace) -> Dataset:
    """The data set of the shared options (:func:`dataset_args`)."""
    from escnet.data.datasets import dataset_from_options
    from escnet.data.folds import parse_folds

    folds = getattr(args, "folds", None)  # train has none: its folds are --test-folds
    return dataset_from_options(
        args.dataset,
        root=args.root,
        data_dir=args.data_dir,
        folds=parse_folds(folds) if folds else None,
        folds_csv=args.folds_csv,
        group_pattern=args.group_pattern,
        num_folds=args.num_folds,
    )


def print_skipped(skipped: Sequence[tuple[Path, str]]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} file(s) that could not be loaded:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")


def print_results(results: dict[str, Any], run_dir: Path) -> None:
    def percent(value: float | None) -> str:
        return "not finite" if value is None else f"{100 * value:.2f} %"

    folds = results.get("folds") or []
    for f in folds:
        # A diverged fold's figures are NaN, which results.json writes as null.
        loss = "not finite (diverged)" if f.get("loss") is None else f"{f['loss']:.4f}"
        print(
            f"  fold {f['test_fold']}: accuracy {percent(f.get('accuracy'))}, "
            f"macro F1 {percent(f.get('macro_f1'))}, loss {loss}"
            + (f", best epoch {f['best_epoch']}" if f.get("best_epoch") is not None else "")
        )
    acc = results["summary"]["accuracy"]
    std = acc.get("std")
    print(
        f"accuracy over {len(folds)} fold(s): {percent(acc.get('mean'))}"
        + (f" +- {100 * std:.2f}" if std is not None and len(folds) > 1 else "")
    )
    print(f"report: {run_dir / 'report.md'}")
