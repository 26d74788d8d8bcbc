"""Aggregation of finished runs into the paper's tables and figures: ``escnet results``.

:func:`aggregate` reads each run directory's ``results.json`` (the numbers), ``config.json``
through it (the protocol), ``cell.json`` when a grid ran it (wall time, commit) and the folds'
``metrics.csv`` (curves), and writes to one output directory:

* ``results.csv`` -- one row per run: data set, model, policy, protocol, folds, accuracy / loss /
  macro F1 mean and std over folds, per-fold accuracies, seconds, commit, the paper's claim,
  whether a pretrained model was trained from random weights, the machine;
* ``curves.csv`` -- every epoch of every fold (the curves' data), keyed by run and test fold:
  with ``results.csv``, what a later aggregation needs to carry these rows forward without their
  run directories (:mod:`escnet.results.files`);
* ``results.md`` -- per data set, the paper-shaped table (models x policies, accuracy and loss
  mean ± std over folds) with the paper's claimed figures beside, every run in detail, where
  each run's training stopped (:mod:`escnet.results.convergence`), each policy against TAA and
  against no augmentation fold by fold (same model, data and test folds), and the leakage study
  (leaky minus honest accuracy of the same model, policy and data);
* ``accuracy-<dataset>.png`` -- bars of model x policy with fold error bars (official folds);
* ``accuracy-<dataset>-leakage-leaky.png`` -- honest and leaky bars side by side;
* ``curves-<dataset>-<policy>.png`` -- training vs validation accuracy of cnn7 and cnn9 per
  epoch (the paper's Results 1 and 2), mean over folds with the folds' range.

Every figure of a leaky protocol carries ``(leaky)`` in its table row and plot label and
``leaky`` in its file name. Standard deviations are sample standard deviations over folds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from escnet.cache import atomic_write_text
from escnet.errors import EscnetError
from escnet.results.figures import bar_charts, curve_figures
from escnet.results.files import is_results_csv, read_results_csv, write_csv, write_curves
from escnet.results.rows import DATASET_TITLES, RunRow, find_runs, read_run, row_order
from escnet.results.tables import markdown_tables

__all__ = ["Aggregate", "aggregate"]


@dataclass
class Aggregate:
    """What :func:`aggregate` wrote: the rows and the files, under ``out``."""

    out: Path
    rows: list[RunRow]
    files: list[Path]
    left_out: int = 0  # incomplete runs left out (``complete_only``)
    kept: list[Path] = field(default_factory=list)  # figures kept as drawn, not rewritten
    #: Run roots given beside an earlier results.csv that hold no run (yet): nothing to add.
    empty: list[Path] = field(default_factory=list)


def aggregate(
    run_dirs: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str] = "results",
    *,
    complete_only: bool = False,
) -> Aggregate:
    """Aggregate runs (or grid run roots) into ``out``: ``results.csv``, ``curves.csv``,
    ``results.md`` and the PNG figures (see the module docstring). Existing files of the same
    names are replaced. A run that has not finished its planned folds is shown marked as such
    (:attr:`RunRow.progress`), or left out with ``complete_only``.

    An input may also be an earlier aggregation's ``results.csv``: its rows are carried (with
    their curves from the ``curves.csv`` beside it), except where a run directory among the
    inputs is of the same cell (:attr:`RunRow.cell`), which replaces the carried row. Beside
    one, a run root that is missing or holds no run yet (a new machine that has run no cell) adds
    nothing and is listed in :attr:`Aggregate.empty`.

    Raises:
        EscnetError: a path is missing or holds no run (with no earlier ``results.csv`` given),
            or ``complete_only`` leaves none.
    """
    target = Path(out)
    paths = list(run_dirs)
    earlier = [Path(p) for p in paths if is_results_csv(p)]
    dirs = [p for p in paths if not is_results_csv(p)]
    empty = [Path(p) for p in dirs if earlier and not _holds_runs(Path(p))]
    dirs = [p for p in dirs if Path(p) not in empty]
    # Read everything before writing: ``out`` may be where the earlier results.csv lives.
    found = [read_run(r) for r in find_runs(dirs)]
    fresh = {r.cell for r in found}
    found += [r for p in earlier for r in read_results_csv(p) if r.cell not in fresh]
    rows = sorted((r for r in found if r.complete or not complete_only), key=row_order)
    if not rows:
        raise EscnetError(
            f"none of the {len(found)} run(s) has finished its planned folds; leave out "
            "--complete-only (complete_only) to see them marked as incomplete"
        )
    target.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[tuple[str, str]]] = {}
    kept: list[Path] = []
    files = [write_csv(rows, target / "results.csv"), write_curves(rows, target / "curves.csv")]
    for dataset in sorted({r.dataset for r in rows}):
        mine = [r for r in rows if r.dataset == dataset]
        title = DATASET_TITLES.get(dataset, dataset)
        written = bar_charts(mine, target, dataset, title)
        written += curve_figures(mine, target, dataset, title)
        figures[dataset] = [(f.path.name, f.alt) for f in written]
        files += [f.path for f in written if not f.kept]
        kept += [f.path for f in written if f.kept]
    md = target / "results.md"
    atomic_write_text(md, markdown_tables(rows, figures))
    files.insert(1, md)
    return Aggregate(target, rows, files, left_out=len(found) - len(rows), kept=kept, empty=empty)


def _holds_runs(path: Path) -> bool:
    return path.is_dir() and next(path.rglob("results.json"), None) is not None
