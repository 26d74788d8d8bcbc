"""How far each run's training got, from its per-epoch curves: the ``results.md`` table that
says whether a policy was cut short by the grid's budget or had levelled off.

Under an equal budget of training images a slow-learning policy (TAA, NAA+TAA) may stop while
its validation accuracy still rises, and a comparison of policies should say so. The figures
show it for ``cnn7`` and ``cnn9``; this table gives every row with curves the same reading in
numbers, all from the folds' ``metrics.csv`` (or the ``curves.csv`` a carried row came with):

* the epochs trained and, per fold, the epoch selected for testing, found by replaying the
  trainer's own rule (:meth:`escnet.training.checkpoint.FitState.record`: best validation
  accuracy, ties to the lower validation loss) over the recorded epochs;
* training and validation accuracy at the last epoch, mean over the folds;
* the trend: mean validation accuracy over the last quarter of the epochs minus that over the
  quarter before, in points, mean over the folds (above zero: still rising at the end).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from escnet.results.rows import RunRow

__all__ = ["Convergence", "convergence", "convergence_table"]


@dataclass(frozen=True)
class Convergence:
    """One run's training progress, read from its curves (accuracies as fractions)."""

    epochs: int  # the most epochs any fold trained
    best_epochs: list[int]  # per fold, in the row's fold order: the epoch tested
    last_train_acc: float  # mean over the folds, at each fold's last epoch
    last_val_acc: float
    trend: float  # last quarter's mean validation accuracy minus the quarter before's


def _selected_epoch(epochs: Sequence[dict[str, float]]) -> int:
    """The epoch the trainer kept, by replaying its selection over the recorded epochs."""
    from escnet.training.checkpoint import FitState

    has_val = all(math.isfinite(e.get("val_acc", math.nan)) for e in epochs)
    state = FitState()
    for e in epochs:
        state.record(e, has_val, patience=None)
    return int(state.best["epoch"]) if has_val else int(epochs[-1]["epoch"])


def _trend(val_acc: Sequence[float]) -> float:
    """Mean of the last quarter minus the mean of the quarter before (NaN under 2 epochs)."""
    q = math.ceil(len(val_acc) / 4)
    if len(val_acc) < 2 * q or q == 0:
        return math.nan
    last, before = val_acc[-q:], val_acc[-2 * q : -q]
    return sum(last) / q - sum(before) / q


def convergence(row: RunRow) -> Convergence | None:
    """``row``'s training progress, or ``None`` for a row without curves for all its folds (a
    row carried from an aggregation that predates ``curves.csv``)."""
    folds = [row.curves.get(f) for f in row.folds]
    if not folds or any(not epochs for epochs in folds):
        return None
    curves = [sorted(epochs, key=lambda e: e["epoch"]) for epochs in folds if epochs]

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    return Convergence(
        epochs=max(int(c[-1]["epoch"]) for c in curves),
        best_epochs=[_selected_epoch(c) for c in curves],
        last_train_acc=mean([c[-1].get("train_acc", math.nan) for c in curves]),
        last_val_acc=mean([c[-1].get("val_acc", math.nan) for c in curves]),
        trend=mean([_trend([e.get("val_acc", math.nan) for e in c]) for c in curves]),
    )


def convergence_table(out: io.StringIO, rows: Sequence[RunRow]) -> None:
    """The ``results.md`` table of :func:`convergence` for the rows that have curves, with a
    line naming how many rows have none."""
    read = [(r, convergence(r)) for r in rows]
    shown = [(r, c) for r, c in read if c is not None]
    if not shown:
        return
    out.write(
        "\n### Training: where each run stopped\n\n"
        "From the folds' per-epoch curves. Selected epoch: the one tested, by best validation "
        "accuracy. Trend: mean validation accuracy over the last quarter of the epochs minus the "
        "quarter before (above zero: still rising at the end). Accuracies are means over the "
        "folds.\n\n"
        "| model | policy | protocol | epochs | selected epoch per fold | training accuracy, "
        "last epoch (%) | validation accuracy, last epoch (%) | trend (points) |\n"
        "|---|---|---|---:|---|---:|---:|---:|\n"
    )
    for r, c in shown:
        protocol = f"**{r.protocol}**" if r.leaky else r.protocol
        out.write(
            f"| {r.name} | {r.augment} | {protocol} | {c.epochs} "
            f"| {' '.join(str(e) for e in c.best_epochs)} | {100 * c.last_train_acc:.1f} "
            f"| {100 * c.last_val_acc:.1f} | {100 * c.trend:+.1f} |\n"
        )
    missing = len(read) - len(shown)
    if missing:
        out.write(
            f"\n{missing} other run(s) came without their per-epoch curves (aggregated before "
            "`curves.csv` kept them), so they are not in this table.\n"
        )
