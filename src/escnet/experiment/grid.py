"""Experiment grids: data sets x models x augmentation policies x protocols, one run per cell.

A grid is a TOML file (read with :mod:`tomllib`)::

    [grid]
    name = "paper"
    out = "runs/paper"           # run root; each cell gets <out>/<cell name>/
    budget = "equal-images"      # or "equal-epochs" (see below)

    [defaults]                   # TrainConfig fields of every cell
    folds = [1, 2, 3, 4, 5]
    seed = 0

    [models.cnn7]                # TrainConfig fields of every cell of this model
    epochs = 84
    lr = 1e-3

    [[cells]]                    # a block: every combination of its four lists is a cell
    datasets = ["esc10"]
    models = ["cnn7", "cnn9"]
    augment = ["taa", "naa"]
    protocols = ["official-folds"]     # default: ["official-folds"]
    # other keys: TrainConfig fields of this block's cells (override the model's)

Each cell is one :func:`escnet.training.cross_validate` call (all its folds) in its own run
directory, named ``<dataset>-<model>-<augment>-<protocol>``, with ``-leaky`` appended for a leaky
protocol (:func:`escnet.data.folds.is_leaky`). A cell whose ``results.json`` says it is complete is
skipped on a rerun; an unfinished one resumes (folds done are kept, a fold cut short continues
from its last checkpoint), so a killed grid resumes where it stopped. Each finished cell gets a
``cell.json`` beside its results: its name, the wall time, the commit of the code that ran it.

**Budget.** With ``budget = "equal-epochs"`` every cell trains the ``epochs`` it is given. With
``"equal-images"`` the ``epochs`` (and ``warmup_epochs``, ``early_stopping_patience``) of a
cell are counted in passes over its *unexpanded* training clips: a cell whose training set is
expanded 7x by offline NAA trains a seventh as many epochs (rounded, at least one), so that
every policy sees the same number of training images.

Examples:
    >>> from escnet.experiment.grid import load_grid, run_grid
    >>> grid = load_grid("experiments/paper.toml")  # doctest: +SKIP
    >>> [c.name for c in grid.cells][:2]  # doctest: +SKIP
    ['esc10-cnn7-none-official-folds', 'esc10-cnn7-taa-official-folds']
    >>> outcomes = run_grid("experiments/paper.toml")  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escnet.augment.policy import get_policy
from escnet.cache import atomic_write_json
from escnet.data.datasets import DATASETS, Dataset
from escnet.data.folds import NAA_IMAGES_PER_CLIP, check_protocol, is_leaky, protocol_label
from escnet.errors import EscnetError, ParameterError, WeightsError
from escnet.models import get_model_info
from escnet.results.files import read_results_csv
from escnet.results.rows import is_random_init, shown_model
from escnet.training import TrainConfig, cross_validate

__all__ = [
    "BUDGETS",
    "Cell",
    "CellOutcome",
    "Grid",
    "cell_name",
    "code_commit",
    "load_grid",
    "recorded_cells",
    "run_grid",
]

#: How policies are made comparable: the same epochs, or the same training images seen.
BUDGETS = ("equal-images", "equal-epochs")
#: TrainConfig fields counted in epochs, scaled down for expanded training sets (equal-images).
_EPOCH_FIELDS = ("epochs", "warmup_epochs", "early_stopping_patience")
_GRID_KEYS = {"name", "out", "budget"}
_BLOCK_LISTS = ("datasets", "models", "augment", "protocols")


def cell_name(dataset: str, model: str, augment: str, protocol: str) -> str:
    """A cell's run directory name; a leaky protocol's cells end in ``-leaky``."""
    name = f"{dataset}-{model}-{augment}-{protocol}"
    return f"{name}-leaky" if is_leaky(protocol) else name


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a :class:`~escnet.training.TrainConfig` and its run directory.

    Attributes:
        name: :func:`cell_name` of its four coordinates.
        dataset, model, augment, protocol: the coordinates (``protocol`` a name of
            :data:`escnet.data.folds.PROTOCOLS`).
        config: the TrainConfig's fields, budget applied.
        run_dir: ``<grid out>/<name>``.
        expansion: training images per training clip (7 with offline NAA, else 1).
    """

    name: str
    dataset: str
    model: str
    augment: str
    protocol: str
    config: dict[str, Any]
    run_dir: Path
    expansion: int = 1

    @property
    def leaky(self) -> bool:
        return is_leaky(self.protocol)

    @property
    def label(self) -> str:
        """The protocol as tables show it: ``random-split (leaky)``."""
        return protocol_label(self.protocol)

    def train_config(self) -> TrainConfig:
        """The cell's TrainConfig (validated by its constructor)."""
        return TrainConfig.from_dict(self.config, source=f"cell {self.name}")

    @property
    def table_key(self) -> tuple[str, str, str, str]:
        """The :attr:`escnet.results.rows.RunRow.cell` of this cell's row in ``escnet results``."""
        model = shown_model(self.model, random_init=is_random_init(self.config, self.model))
        return (self.dataset, model, self.augment, self.label)

    def cell_json(self) -> dict[str, Any] | None:
        """The cell's ``cell.json`` (wall time, commit), ``None`` before it finished."""
        return _read_json(self.run_dir / "cell.json")

    def is_complete(self) -> bool:
        """Whether the cell's ``results.json`` covers every planned fold -- the folds the grid
        asks for now (a grid edited to more folds makes the cell incomplete again)."""
        results = _read_json(self.run_dir / "results.json")
        if not (results and results.get("complete")):
            return False
        wanted = self.config.get("folds")
        return wanted is None or sorted(results.get("planned_folds", [])) == sorted(wanted)


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: its name, run root, budget and cells in file order."""

    path: Path
    name: str
    out: Path
    budget: str
    cells: tuple[Cell, ...]

    def select(self, patterns: Sequence[str] | None) -> list[Cell]:
        """The cells whose names match any of the shell ``patterns`` (all cells for none)."""
        if not patterns:
            return list(self.cells)
        chosen = [c for c in self.cells if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
        if not chosen:
            raise ParameterError(
                f"--only {' '.join(patterns)}: no cell of {self.path} matches; cells are named "
                f"like {self.cells[0].name!r}"
            )
        return chosen


@dataclass
class CellOutcome:
    """What running (or skipping) one cell gave."""

    cell: Cell
    #: "done" (ran now), "skipped" (complete before), "recorded", "failed", or "no-weights"
    #: (its pretrained weights are not on this machine and cannot be downloaded: left for later)
    status: str
    seconds: float = 0.0
    accuracy: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def line(self, index: int, total: int) -> str:
        """The progress line of this cell: position, name, result and time."""
        head = f"[{index}/{total}] {self.cell.name}"
        if self.status == "failed":
            return f"{head}: FAILED after {self.seconds:.0f} s: {self.error}"
        if self.status == "no-weights":
            return f"{head}: skipped, its pretrained weights are not at hand: {self.error}"
        mean, std = self.accuracy.get("mean"), self.accuracy.get("std")
        acc = "accuracy –" if mean is None else f"accuracy {100 * mean:.2f} %"
        if mean is not None and std is not None:
            acc += f" +- {100 * std:.2f}"
        if self.status == "skipped":
            return f"{head}: complete already, skipped ({acc})"
        if self.status == "recorded":
            return f"{head}: in the results given already, skipped ({acc})"
        return f"{head}: {acc} ({self.cell.label}) in {self.seconds:.0f} s"


def recorded_cells(
    results_csv: str | os.PathLike[str] | None, cells: Sequence[Cell]
) -> dict[str, dict[str, float]]:
    """The cells among ``cells`` that an earlier ``escnet results`` recorded complete in
    ``results_csv`` with the folds the grid asks for, by name, with their accuracy (mean, std):
    on a machine without their run directories they count as done (none for ``None``).

    Raises:
        EscnetError: ``results_csv`` is not a readable results.csv of escnet.
    """
    if results_csv is None:
        return {}
    rows = {r.cell: r for r in read_results_csv(results_csv) if r.complete}
    done = {}
    for cell in cells:
        row = rows.get(cell.table_key)
        wanted = cell.config.get("folds")
        if row is not None and (wanted is None or sorted(row.folds) == sorted(wanted)):
            done[cell.name] = {"mean": row.accuracy[0], "std": row.accuracy[1]}
    return done


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _str_list(
    block: Mapping[str, Any], key: str, where: str, default: list[str] | None
) -> list[str]:
    value = block.get(key, default)
    if value is None:
        raise ParameterError(f"{where}: missing {key} = [...]")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"{where}: {key} must be a non-empty list of names, got {value!r}")
    return list(value)


def _expansion(augment: str, protocol: str) -> int:
    """Training images per training clip: 7 with offline NAA (or augment-then-split), else 1."""
    expanded = get_policy(augment).offline_naa or protocol == "augment-then-split"
    return NAA_IMAGES_PER_CLIP if expanded else 1


def _apply_budget(values: dict[str, Any], budget: str, expansion: int) -> dict[str, Any]:
    """Scale the epoch-counted fields for an expanded training set under equal-images."""
    if budget == "equal-epochs" or expansion == 1:
        return values
    out = dict(values)
    if "epochs" in out:
        out["epochs"] = max(1, round(out["epochs"] / expansion))
    if out.get("warmup_epochs") is not None:
        out["warmup_epochs"] = out["warmup_epochs"] / expansion
    if out.get("early_stopping_patience") is not None:
        out["early_stopping_patience"] = max(
            1, math.ceil(out["early_stopping_patience"] / expansion)
        )
    return out


def _block_cells(
    block: Mapping[str, Any],
    where: str,
    defaults: Mapping[str, Any],
    models: Mapping[str, Any],
    budget: str,
    out: Path,
) -> list[Cell]:
    datasets = _str_list(block, "datasets", where, None)
    model_names = _str_list(block, "models", where, None)
    policies = _str_list(block, "augment", where, None)
    protocols = _str_list(block, "protocols", where, ["official-folds"])
    overrides = {k: v for k, v in block.items() if k not in _BLOCK_LISTS}
    for d in datasets:
        if d not in DATASETS:
            raise ParameterError(
                f"{where}: unknown dataset {d!r}; choose one of {', '.join(DATASETS)}"
            )
    try:
        for m in model_names:
            get_model_info(m)  # ValueError listing the models
        for a in policies:
            get_policy(a)
        for p in protocols:
            check_protocol(p)
    except ValueError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    cells = []
    for d in datasets:
        for m in model_names:
            per_model = models.get(m, {})
            for a in policies:
                for p in protocols:
                    expansion = _expansion(a, p)
                    values = {**defaults, **per_model, **overrides}
                    values = _apply_budget(values, budget, expansion)
                    values.update(dataset=d, model=m, augment=a, protocol=p)
                    name = cell_name(d, m, a, p)
                    cells.append(Cell(name, d, m, a, p, values, out / name, expansion))
    return cells


def load_grid(path: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None) -> Grid:
    """Read and check a grid file; every cell's TrainConfig is built once to validate it.

    Args:
        path: the TOML file.
        out: run root overriding the file's ``[grid] out`` (default: ``runs/<name>``).

    Raises:
        ValueError: the file is not valid TOML, a key is unknown, a name (data set, model,
            policy, protocol, TrainConfig field) does not exist, or two cells share a name;
            the message names the file and the table at fault.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such grid file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{p}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"grid", "defaults", "models", "cells"})
    if unknown:
        raise ParameterError(
            f"{p}: unknown table(s) {', '.join(unknown)}; expected grid, defaults, models, cells"
        )
    head = doc.get("grid", {})
    bad = sorted(set(head) - _GRID_KEYS)
    if bad:
        raise ParameterError(
            f"{p}: [grid] has unknown key(s) {', '.join(bad)}; known: name, out, budget"
        )
    name = str(head.get("name", p.stem))
    budget = head.get("budget", "equal-epochs")
    if budget not in BUDGETS:
        raise ParameterError(
            f"{p}: [grid] budget must be one of {', '.join(BUDGETS)}, got {budget!r}"
        )
    root = Path(out) if out is not None else Path(head.get("out", f"runs/{name}"))
    blocks = doc.get("cells")
    if not isinstance(blocks, list) or not blocks:
        raise ParameterError(f"{p}: no [[cells]] block; add one with datasets, models, augment")
    cells: list[Cell] = []
    for k, block in enumerate(blocks, start=1):
        cells += _block_cells(
            block,
            f"{p}, [[cells]] block {k}",
            doc.get("defaults", {}),
            doc.get("models", {}),
            budget,
            root,
        )
    seen: set[str] = set()
    for cell in cells:
        if cell.name in seen:
            raise ParameterError(f"{p}: cell {cell.name} is listed twice; remove one of them")
        seen.add(cell.name)
        try:
            cell.train_config()
        except ValueError as exc:
            raise ParameterError(f"{p}: {exc}") from None
    return Grid(p, name, root, budget, tuple(cells))


def code_commit() -> str:
    """The git commit of the escnet source that runs (``-dirty`` when tracked files differ), or
    ``"unknown"`` outside a git checkout. ``$ESCNET_COMMIT``, when set, wins: a tree copied to
    another machine may carry no ``.git``, or an older one (the lent GPU machine's copy said
    7e15a5b-dirty for a tree at 373cd90), so whoever copies it names its commit."""
    override = os.environ.get("ESCNET_COMMIT")
    if override:
        return override
    src = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=src, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", str(src))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _run_cell(
    cell: Cell, *, progress: bool, overrides: Mapping[str, Any], dataset: Dataset | None = None
) -> CellOutcome:
    config = TrainConfig.from_dict(
        {**cell.config, **{k: v for k, v in overrides.items() if v is not None}},
        source=f"cell {cell.name}",
    )
    resumed = (cell.run_dir / "config.json").is_file()
    commit = code_commit()  # the code that starts the attempt, not what the tree holds at its end
    start = time.perf_counter()
    given = dataset if dataset is not None and dataset.name == cell.dataset else None
    results = cross_validate(config, cell.run_dir, dataset=given, resume=True, progress=progress)
    seconds = time.perf_counter() - start
    atomic_write_json(
        cell.run_dir / "cell.json",
        {
            "cell": cell.name,
            "dataset": cell.dataset,
            "model": cell.model,
            "augment": cell.augment,
            "protocol": cell.label,
            "leaky": cell.leaky,
            "expansion": cell.expansion,
            # Wall time of the attempt that finished the cell: a resumed cell's earlier
            # attempts are not counted (``resumed`` says so, and escnet.results.rows then sums the
            # epochs' seconds of every attempt instead).
            "seconds": seconds,
            "resumed": resumed,
            "commit": commit,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return CellOutcome(cell, "done", seconds, dict(results["summary"]["accuracy"]))


def run_grid(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
    progress: bool = True,
    keep_going: bool = False,
    report: Callable[[str], None] = print,
    overrides: Mapping[str, Any] | None = None,
    recorded: str | os.PathLike[str] | None = None,
    dataset: Dataset | None = None,
) -> list[CellOutcome]:
    """Run every cell of the grid at ``path`` that is not complete yet, in file order.

    Args:
        path: the grid file (:func:`load_grid`).
        out: run root overriding the file's.
        only: run only cells whose names match these shell patterns (e.g. ``"esc10-cnn7-*"``).
        progress: progress bars inside each cell.
        keep_going: after a cell fails, go on with the next (default: raise).
        report: called with one line per cell (default: print).
        overrides: TrainConfig fields for every cell that do not change its results
            (``data_dir``, ``cache_dir``, ``device``, ``workers``); ``None`` values are ignored.
        recorded: an earlier aggregation's ``results.csv``: cells it holds complete are not
            run again (:func:`recorded_cells`), e.g. the committed ``results/results.csv`` on a
            machine without their run directories.
        dataset: a loaded data set (any loader, e.g. a folder with its ``group_pattern``) that
            the cells naming its data set (``dataset.name``) train on, instead of the one their
            name loads.

    Returns:
        One :class:`CellOutcome` per selected cell.
    """
    grid = load_grid(path, out=out)
    cells = grid.select(only)
    elsewhere = recorded_cells(recorded, cells)
    outcomes: list[CellOutcome] = []
    for k, cell in enumerate(cells, start=1):
        if cell.is_complete():
            results = _read_json(cell.run_dir / "results.json") or {}
            acc = dict(results.get("summary", {}).get("accuracy", {}))
            outcome = CellOutcome(cell, "skipped", 0.0, acc)
        elif cell.name in elsewhere:
            outcome = CellOutcome(cell, "recorded", 0.0, elsewhere[cell.name])
        else:
            start = time.perf_counter()
            try:
                outcome = _run_cell(
                    cell, progress=progress, overrides=overrides or {}, dataset=dataset
                )
            except WeightsError as exc:
                # Offline without the weights (ImageNet's, AudioSet's): the cell cannot run
                # here, the others can; it is listed at the end and runs once they are there.
                outcome = CellOutcome(cell, "no-weights", error=str(exc))
            except (EscnetError, ValueError, RuntimeError, OSError) as exc:
                if not keep_going:
                    raise
                outcome = CellOutcome(cell, "failed", time.perf_counter() - start, error=str(exc))
        report(outcome.line(k, len(cells)))
        outcomes.append(outcome)
    return outcomes
