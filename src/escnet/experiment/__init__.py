"""Experiments: grids of data sets x models x policies x protocols, run cell by cell.

* :mod:`escnet.experiment.grid` -- :func:`load_grid`, :func:`run_grid` (resumable per cell);
* :mod:`escnet.experiment.plan` -- the dry run: cells and time estimates;
* :mod:`escnet.experiment.throughput` -- measured rates behind the estimates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.experiment.grid import Cell, Grid, cell_name, load_grid, run_grid
    from escnet.experiment.plan import PlannedCell, format_plan, plan_grid

_EXPORTS = {
    "Cell": "escnet.experiment.grid",
    "Grid": "escnet.experiment.grid",
    "load_grid": "escnet.experiment.grid",
    "run_grid": "escnet.experiment.grid",
    "cell_name": "escnet.experiment.grid",
    "PlannedCell": "escnet.experiment.plan",
    "plan_grid": "escnet.experiment.plan",
    "format_plan": "escnet.experiment.plan",
}
__all__ = [
    "Cell",
    "Grid",
    "PlannedCell",
    "cell_name",
    "format_plan",
    "load_grid",
    "plan_grid",
    "run_grid",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
