"""The dry run of an experiment grid: each cell's time estimate, what is complete already, and
the pretrained weights a cell would download (``escnet experiment GRID --dry-run``).

Estimates come from the rate of the grid's completed cells on this machine
(:func:`measured_rates`), else from :mod:`escnet.experiment.throughput`'s measured table; they are
labelled
estimates, never measurements.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from escnet.experiment.grid import Cell, load_grid, recorded_cells
from escnet.experiment.throughput import MACHINE, Estimate, estimate_cell_seconds
from escnet.models import get_model_info

__all__ = ["PlannedCell", "format_plan", "measured_rates", "plan_grid"]


def measured_rates(cells: Sequence[Cell]) -> dict[str, float]:
    """Training images per second of whole runs, by model, from the completed cells among
    ``cells``: the images their epochs trained on (``metrics.csv``) over their wall time
    (``cell.json``; evaluation included, as in a cell yet to run). Resumed cells are left
    out: their wall time covers the last attempt only."""
    images: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for cell in cells:
        record = cell.cell_json()
        if not record or record.get("resumed") or not cell.is_complete():
            continue
        seen = 0.0
        for metrics in cell.run_dir.glob("fold*/metrics.csv"):
            with open(metrics, newline="", encoding="utf-8") as f:
                seen += sum(float(row.get("train_samples") or 0) for row in csv.DictReader(f))
        if seen > 0 and float(record.get("seconds", 0)) > 0:
            images[cell.model] = images.get(cell.model, 0.0) + seen
            seconds[cell.model] = seconds.get(cell.model, 0.0) + float(record["seconds"])
    return {model: images[model] / seconds[model] for model in images}


class PlannedCell(NamedTuple):
    """One cell of a plan.

    Attributes:
        cell: the cell.
        estimate: its time, or ``None`` when its model has no measured rate.
        done: complete already (then it costs nothing): in its run directory, or ``recorded``.
        missing_weights: for a cell yet to run that starts from pretrained weights not on this
            machine, the line of :meth:`escnet.models.ModelInfo.missing_weights` (the run
            downloads them first, and stops when offline); else ``None``.
        recorded: done according to the earlier ``results.csv`` given, not a run directory.
    """

    cell: Cell
    estimate: Estimate | None
    done: bool
    missing_weights: str | None = None
    recorded: bool = False


def plan_grid(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
    recorded: str | os.PathLike[str] | None = None,
) -> list[PlannedCell]:
    """The cells a :func:`run_grid` would run, each a :class:`PlannedCell`: its time estimate,
    whether it is complete already, and the pretrained weights it would have to download. The
    cold-cache NAA expansion of a data set at a front end is counted once, for the first cell
    that needs it. A model with completed cells in the grid is estimated from their rate on
    this machine (:func:`measured_rates`), others from :mod:`escnet.experiment.throughput`. Cells
    that
    ``recorded``, an earlier ``results.csv``, holds complete count as done (as for
    :func:`~escnet.experiment.grid.run_grid`)."""
    grid = load_grid(path, out=out)
    measured = measured_rates(grid.cells)
    cells = grid.select(only)
    elsewhere = recorded_cells(recorded, cells)
    expanded: set[tuple[str, str, Any]] = set()
    copies: dict[str, tuple[dict[int, int] | None, float | None]] = {}
    plan = []
    for cell in cells:
        complete = cell.is_complete()
        on_record = not complete and cell.name in elsewhere
        done = complete or on_record
        key = (cell.dataset, repr(get_model_info(cell.model).front_end), cell.config.get("seed"))
        cold = cell.expansion > 1 and not done and key not in expanded
        if cold:
            expanded.add(key)
        sizes, clip_seconds = _copy_sizes(cell, copies)
        estimate = estimate_cell_seconds(
            cell.config,
            expansion=cell.expansion,
            protocol=cell.protocol,
            naa_cold=cold,
            measured=measured,
            fold_sizes=sizes,
            clip_seconds=clip_seconds,
        )
        missing = None
        if not done and cell.config.get("pretrained"):
            missing = get_model_info(cell.model).missing_weights()
        plan.append(PlannedCell(cell, estimate, done, missing, on_record))
    return plan


def _copy_sizes(
    cell: Cell, copies: dict[str, tuple[dict[int, int] | None, float | None]]
) -> tuple[dict[int, int] | None, float | None]:
    """The fold sizes and clip length of the copy a cell will read, once per data set; a copy
    that cannot be read here gives ``(None, None)``: the complete data set's sizes are assumed."""
    if cell.dataset not in copies:
        from escnet.data.datasets import get_dataset
        from escnet.errors import EscnetError

        try:
            ds = get_dataset(cell.dataset)
            copies[cell.dataset] = (ds.fold_sizes(), ds.duration)
        except (EscnetError, OSError):
            copies[cell.dataset] = (None, None)
    return copies[cell.dataset]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: Sequence[PlannedCell]) -> list[str]:
    """The dry-run's lines: one per cell (folds, epochs, images, estimated time; under it, the
    pretrained weights it would download), then totals."""
    lines = []
    total, unknown, complete = 0.0, [], 0
    width = max((len(p.cell.name) for p in plan), default=0)
    for k, (cell, est, done, missing, recorded) in enumerate(plan, start=1):
        head = f"[{k:>{len(str(len(plan)))}}/{len(plan)}] {cell.name:<{width}}"
        folds = cell.config.get("folds")
        n_folds = f"{len(folds)} fold{'s' if len(folds) > 1 else ''}" if folds else "all folds"
        if done:
            where = "in the results given" if recorded else "complete"
            lines.append(f"{head}  {where} already: skipped")
            complete += 1
        elif est is None:
            lines.append(
                f"{head}  no measured rate for {cell.model} on this machine: not estimated"
            )
            unknown.append(cell.name)
        else:
            total += est.seconds
            naa = f", incl. NAA expansion {_duration(est.naa_seconds)}" if est.naa_seconds else ""
            lines.append(
                f"{head}  {n_folds} x {est.epochs} epochs x {est.train_images} images  "
                f"~{_duration(est.seconds)}{naa}"
            )
        if missing:
            lines.append(f"{' ' * len(head)}  needs weights: {missing}; offline it stops")
    to_run = len(plan) - complete - len(unknown)
    lines.append(
        f"estimated total: {_duration(total)} for {to_run} cell(s)"
        + (f"; {complete} complete already" if complete else "")
        + (f"; {len(unknown)} without a measured rate (not estimated)" if unknown else "")
    )
    downloads = sum(1 for p in plan if p.missing_weights)
    if downloads:
        lines.append(
            f"{downloads} cell(s) need pretrained weights that are not on this machine "
            "(named above): they download them first, and stop with one line when offline"
        )
    grid_rates = {
        f"{c.model} {e.rate:.1f}"
        for c, e, done, *_ in plan
        if e is not None and not done and e.source == "this grid's completed cells"
    }
    source = f"on {MACHINE}, escnet.experiment.throughput"
    if grid_rates:
        source = (
            f"this machine's completed cells of the grid ({', '.join(sorted(grid_rates))} "
            f"images/s), else {source}"
        )
    lines.append(f"(an ESTIMATE from measured training rates: {source}; not a measurement)")
    return lines
