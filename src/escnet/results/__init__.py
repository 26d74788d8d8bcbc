"""Results: run directories gathered into the paper's tables, CSV files and figures.

* :mod:`escnet.results.rows` -- :class:`RunRow`, one run's numbers, read from its directory;
* :mod:`escnet.results.tables` -- the Markdown tables (paper-shaped, against a baseline, leakage);
* :mod:`escnet.results.convergence` -- where each run's training stopped;
* :mod:`escnet.results.files` -- ``results.csv`` and ``curves.csv``, written and read back;
* :mod:`escnet.results.figures` -- bar charts and learning curves;
* :mod:`escnet.results.aggregate` -- :func:`aggregate`, all of the above for a set of runs;
* :mod:`escnet.results.evaluate` -- :func:`evaluate_run`, a finished run tested again from its
  saved models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.results.aggregate import Aggregate, aggregate
    from escnet.results.evaluate import evaluate_run
    from escnet.results.rows import CSV_COLUMNS, PAPER_CLAIMS, RunRow, find_runs, read_run
    from escnet.results.tables import markdown_tables

_EXPORTS = {
    "RunRow": "escnet.results.rows",
    "read_run": "escnet.results.rows",
    "find_runs": "escnet.results.rows",
    "PAPER_CLAIMS": "escnet.results.rows",
    "CSV_COLUMNS": "escnet.results.rows",
    "markdown_tables": "escnet.results.tables",
    "Aggregate": "escnet.results.aggregate",
    "aggregate": "escnet.results.aggregate",
    "evaluate_run": "escnet.results.evaluate",
}
__all__ = [
    "Aggregate",
    "CSV_COLUMNS",
    "PAPER_CLAIMS",
    "RunRow",
    "aggregate",
    "evaluate_run",
    "find_runs",
    "markdown_tables",
    "read_run",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
