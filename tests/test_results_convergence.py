"""The ``results.md`` table of where each run's training stopped (escnet.results.convergence)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from escnet.results.convergence import convergence
from escnet.results.rows import RunRow
from escnet.results.tables import markdown_tables


def _epochs(val_acc: list[float], val_loss: list[float] | None = None) -> list[dict[str, float]]:
    losses = val_loss or [1.0] * len(val_acc)
    return [
        {"epoch": float(e), "train_acc": 0.5 + 0.05 * e, "val_acc": a, "val_loss": v}
        for e, (a, v) in enumerate(zip(val_acc, losses, strict=True), start=1)
    ]


def _row(
    curves: dict[int, list[dict[str, float]]], folds: list[int], augment: str = "taa"
) -> RunRow:
    return RunRow(
        dataset="esc10",
        model="cnn7",
        augment=augment,
        protocol="official-folds",
        folds=folds,
        complete=True,
        accuracy=(0.8, 0.01),
        loss=(0.5, 0.1),
        macro_f1=(0.79, 0.01),
        fold_accuracies=[0.8] * len(folds),
        seconds=10.0,
        seconds_source="wall",
        commit="abc",
        run_dir=Path("runs/x"),
        curves=curves,
    )


def test_the_selected_epoch_follows_the_trainers_rule() -> None:
    # Fold 1: accuracy peaks at epoch 3. Fold 2: epochs 2 and 4 tie on accuracy; the lower
    # validation loss (epoch 4) wins, as FitState.record decides during training.
    row = _row(
        {
            1: _epochs([0.5, 0.6, 0.9, 0.7]),
            2: _epochs([0.5, 0.8, 0.7, 0.8], val_loss=[1.0, 0.9, 0.8, 0.7]),
        },
        folds=[1, 2],
    )
    c = convergence(row)
    assert c is not None
    assert c.best_epochs == [3, 4]
    assert c.epochs == 4
    assert c.last_train_acc == pytest.approx(0.7)
    assert c.last_val_acc == pytest.approx((0.7 + 0.8) / 2)


def test_the_trend_compares_the_last_quarter_with_the_quarter_before() -> None:
    # 8 epochs: quarters of 2. Fold 1 still rising (+0.2), fold 2 flat (0).
    rising = _epochs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    flat = _epochs([0.5] * 8)
    c = convergence(_row({1: rising, 2: flat}, folds=[1, 2]))
    assert c is not None
    assert c.trend == pytest.approx((0.2 + 0.0) / 2)
    # 5 epochs: quarters of 2 (rounded up), the first epoch left out.
    c5 = convergence(_row({1: _epochs([0.0, 0.1, 0.2, 0.4, 0.6])}, folds=[1]))
    assert c5 is not None and c5.trend == pytest.approx((0.4 + 0.6) / 2 - (0.1 + 0.2) / 2)
    single = convergence(_row({1: _epochs([0.5])}, folds=[1]))
    assert single is not None and math.isnan(single.trend)


def test_rows_without_curves_are_counted_not_shown() -> None:
    with_curves = _row({1: _epochs([0.5, 0.6, 0.9, 0.7])}, folds=[1], augment="taa")
    carried = _row({}, folds=[1], augment="naa")  # from a results.csv before curves.csv
    half = _row({1: _epochs([0.5, 0.6])}, folds=[1, 2], augment="none")  # fold 2 lacks curves
    assert convergence(carried) is None and convergence(half) is None
    md = markdown_tables([with_curves, carried, half], {})
    table = md.split("### Training: where each run stopped")[1].split("###")[0]
    lines = [line for line in table.splitlines() if line.startswith("| cnn7")]
    assert lines == ["| cnn7 | taa | official-folds | 4 | 3 | 70.0 | 70.0 | -20.0 |"]
    assert "2 other run(s) came without their per-epoch curves" in table


def test_no_table_when_no_row_has_curves() -> None:
    md = markdown_tables([_row({}, folds=[1])], {})
    assert "Training: where each run stopped" not in md
