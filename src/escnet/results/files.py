"""The aggregation's data files, ``results.csv`` and ``curves.csv``: writing them, and reading
them back as rows, so that a later ``escnet results`` can carry an earlier aggregation forward.

Run directories stay out of git and do not outlive the machine that trained them; the committed
``results/`` does. So ``results/results.csv`` (one row per run) and ``results/curves.csv``
(every fold's epochs: the figures' curves) hold all a table or figure needs, and ``escnet results
results/results.csv runs/paper --out results`` adds new cells to the committed ones without
their run directories. A run directory of the same cell replaces its carried row.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from escnet.cache import atomic_write_text
from escnet.errors import EscnetError
from escnet.results.rows import CSV_COLUMNS, RunRow

__all__ = ["CURVE_COLUMNS", "is_results_csv", "read_results_csv", "write_csv", "write_curves"]

#: Columns of ``results.csv`` added after its first release: an older file may lack them.
_LATER_COLUMNS = frozenset({"planned_folds", "data"})
#: The first columns of ``curves.csv``, then the folds' ``metrics.csv`` columns in their order.
CURVE_COLUMNS = ("run_dir", "test_fold")


def is_results_csv(path: str | os.PathLike[str]) -> bool:
    """Whether an input of ``escnet results`` is an earlier aggregation's CSV (a file named
    ``*.csv``) rather than a run directory or a grid's run root."""
    p = Path(path)
    return p.suffix == ".csv" and not p.is_dir()


def write_csv(rows: Sequence[RunRow], path: Path) -> Path:
    """``results.csv``: :data:`~escnet.results.rows.CSV_COLUMNS`, one row per run, fractions."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r.csv_row())
    atomic_write_text(path, buf.getvalue())
    return path


def write_curves(rows: Sequence[RunRow], path: Path) -> Path:
    """``curves.csv``: every epoch of every fold of every row that has its curves, keyed by the
    row's ``run_dir`` and test fold (empty cells: not measured)."""
    columns: dict[str, None] = dict.fromkeys(CURVE_COLUMNS)
    for r in rows:
        for epochs in r.curves.values():
            for epoch in epochs:
                columns |= dict.fromkeys(epoch)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        for fold, epochs in sorted(r.curves.items()):
            for epoch in epochs:
                cells = {k: "" if math.isnan(v) else repr(float(v)) for k, v in epoch.items()}
                writer.writerow({"run_dir": str(r.run_dir), "test_fold": fold, **cells})
    atomic_write_text(path, buf.getvalue())
    return path


def read_results_csv(path: str | os.PathLike[str]) -> list[RunRow]:
    """The rows of an earlier aggregation's ``results.csv``, with their curves from the
    ``curves.csv`` beside it where it has them (a row without: its figures cannot be redrawn).

    Raises:
        EscnetError: the file is missing, unreadable, or not a ``results.csv`` of escnet.
    """
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
            header = list(table[0]) if table else []
    except (OSError, UnicodeDecodeError) as exc:
        raise EscnetError(f"{p}: cannot read an earlier results.csv ({exc})") from exc
    missing = [c for c in CSV_COLUMNS if c not in header and c not in _LATER_COLUMNS]
    if missing:
        raise EscnetError(
            f"{p}: not a results.csv written by escnet results (no {', '.join(missing)}); "
            "pass run directories, a grid's run root or an earlier results/results.csv"
        )
    curves = _read_curves(p.parent / "curves.csv")
    try:
        return [_row(r, curves.get(r["run_dir"], {})) for r in table]
    except (ValueError, KeyError) as exc:
        raise EscnetError(f"{p}: a row does not parse ({exc}); was the file edited?") from exc


def _row(r: dict[str, str], curves: dict[int, list[dict[str, float]]]) -> RunRow:
    folds = [int(f) for f in r["folds"].split()]
    return RunRow(
        dataset=r["dataset"],
        model=r["model"],
        augment=r["augment"],
        protocol=r["protocol"],
        folds=folds,
        complete=r["complete"] == "True",
        accuracy=(_float(r["accuracy_mean"]), _float(r["accuracy_std"])),
        loss=(_float(r["loss_mean"]), _float(r["loss_std"])),
        macro_f1=(_float(r["macro_f1_mean"]), _float(r["macro_f1_std"])),
        fold_accuracies=[_float(a) for a in r["fold_accuracies"].split()],
        seconds=float(r["seconds"]) if r["seconds"] else None,
        seconds_source=r["seconds_source"],
        commit=r["commit"],
        run_dir=Path(r["run_dir"]),
        curves={k: v for k, v in curves.items() if k in folds},
        planned_folds=[int(f) for f in (r.get("planned_folds") or "").split()],
        random_init=r["random_init"] == "True",
        machine=r["machine"],
        data=r.get("data") or "",
    )


def _float(text: str) -> float:
    return float(text) if text else math.nan


def _read_curves(path: Path) -> dict[str, dict[int, list[dict[str, float]]]]:
    """``curves.csv`` as run_dir -> test fold -> epochs (an absent file: no curves)."""
    out: dict[str, dict[int, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                epoch = {k: _float(v) for k, v in row.items() if k not in CURVE_COLUMNS}
                out[row["run_dir"]][int(row["test_fold"])].append(epoch)
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise EscnetError(
            f"{path}: cannot read the curves of an earlier aggregation ({exc})"
        ) from exc
    return {k: dict(v) for k, v in out.items()}
