"""One run's numbers as a row: :class:`RunRow`, read from a run directory (:func:`read_run`).

Every other module of :mod:`escnet.results` builds on these rows; nothing here imports them back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escnet.data.datasets import describe_copy
from escnet.data.folds import is_leaky, protocol_label
from escnet.errors import EscnetError

__all__ = [
    "CSV_COLUMNS",
    "DATASET_TITLES",
    "PAPER_CLAIMS",
    "RunRow",
    "find_runs",
    "is_random_init",
    "policy_rank",
    "read_run",
    "row_order",
    "shown_model",
]

#: The paper's claimed test accuracies (docs/method.md), keyed by (data set, model); ``augment``
#: is the policy the paper names for the figure (``None``: not stated in the notes).
PAPER_CLAIMS: dict[tuple[str, str], dict[str, Any]] = {
    ("esc10", "resnet152"): {"accuracy": 0.9904, "augment": None, "loss": None},
    ("esc50", "densenet161"): {"accuracy": 0.9757, "augment": "naa", "loss": 0.0835},
    ("us8k", "resnet152"): {"accuracy": 0.9949, "augment": None, "loss": None},
}
#: How tables and figures title each data set.
DATASET_TITLES = {"esc10": "ESC-10", "esc50": "ESC-50", "us8k": "UrbanSound8K"}
_POLICY_ORDER = ("none", "taa", "naa", "naa+taa", "naa-online", "naa+mixup", "specaug")

#: Columns of ``results.csv``.
CSV_COLUMNS = (
    "dataset",
    "model",
    "augment",
    "protocol",
    "leaky",
    "folds",
    "planned_folds",
    "complete",
    "accuracy_mean",
    "accuracy_std",
    "loss_mean",
    "loss_std",
    "macro_f1_mean",
    "macro_f1_std",
    "fold_accuracies",
    "seconds",
    "seconds_source",
    "commit",
    "paper_accuracy",
    "random_init",
    "machine",
    "data",
    "run_dir",
)


@dataclass
class RunRow:
    """One run's figures, as the tables show them (fractions, not percent)."""

    dataset: str
    model: str
    augment: str
    protocol: str  # the label: "official-folds" or "<name> (leaky)"
    folds: list[int]
    complete: bool
    accuracy: tuple[float, float]
    loss: tuple[float, float]
    macro_f1: tuple[float, float]
    fold_accuracies: list[float]
    seconds: float | None
    seconds_source: str
    commit: str
    run_dir: Path
    curves: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    planned_folds: list[int] = field(default_factory=list)  # empty: the folds it has
    random_init: bool = False  # a model with pretrained weights, trained from random ones
    machine: str = ""  # where it trained: "CPU" or the GPU's name ("": not recorded)
    #: The data copy it read (:func:`~escnet.data.datasets.describe_copy`; "": not recorded).
    data: str = ""

    @property
    def name(self) -> str:
        """The model as tables and figures show and group it: ``"resnet152 (random init)"``
        for a model trained from random weights that escnet could have started pretrained, so
        that such a row never sits under the paper's figure for the pretrained model."""
        return shown_model(self.model, random_init=self.random_init)

    @property
    def cell(self) -> tuple[str, str, str, str]:
        """What makes two rows the same experiment: data set, model as shown, policy and
        protocol (a rerun of a cell replaces the carried row of its earlier run)."""
        return (self.dataset, self.name, self.augment, self.protocol)

    @property
    def leaky(self) -> bool:
        return is_leaky(self.protocol)

    @property
    def progress(self) -> str:
        """``""`` for a complete run, else how far it got (``"incomplete: 2 of 5 folds"``): a
        partial run's mean is not comparable with a complete one's, so every table and chart
        says so."""
        if self.complete:
            return ""
        return f"incomplete: {len(self.folds)} of {self.n_planned} folds"

    @property
    def n_planned(self) -> int:
        """Folds the run was asked for (the folds it has, where that was not recorded)."""
        return max(len(self.planned_folds), len(self.folds))

    @property
    def paper_accuracy(self) -> float | None:
        claim = None if self.random_init else PAPER_CLAIMS.get((self.dataset, self.model))
        if claim is None or claim["augment"] not in (None, self.augment):
            return None
        return float(claim["accuracy"])

    def csv_row(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "augment": self.augment,
            "protocol": self.protocol,
            "leaky": self.leaky,
            "folds": " ".join(str(f) for f in self.folds),
            "planned_folds": " ".join(str(f) for f in self.planned_folds),
            "complete": self.complete,
            "accuracy_mean": _num(self.accuracy[0]),
            "accuracy_std": _num(self.accuracy[1]),
            "loss_mean": _num(self.loss[0]),
            "loss_std": _num(self.loss[1]),
            "macro_f1_mean": _num(self.macro_f1[0]),
            "macro_f1_std": _num(self.macro_f1[1]),
            "fold_accuracies": " ".join(_num(a) for a in self.fold_accuracies),
            "seconds": "" if self.seconds is None else f"{self.seconds:.1f}",
            "seconds_source": self.seconds_source,
            "commit": self.commit,
            "paper_accuracy": _num(self.paper_accuracy),
            "random_init": self.random_init,
            "machine": self.machine,
            "data": self.data,
            "run_dir": str(self.run_dir),
        }


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))


def _pair(stat: Mapping[str, Any] | None) -> tuple[float, float]:
    stat = stat or {}
    mean, std = stat.get("mean"), stat.get("std")
    return (
        math.nan if mean is None else float(mean),
        math.nan if std is None else float(std),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return value if isinstance(value, dict) else None


def _read_metrics(path: Path) -> list[dict[str, float]]:
    from escnet.metrics.report import read_metrics_csv

    return read_metrics_csv(path) if path.is_file() else []


def read_run(run_dir: str | os.PathLike[str]) -> RunRow:
    """One run directory's row: numbers from ``results.json``, the protocol from its config,
    seconds and commit from ``cell.json`` (a grid's) or else the escnet version. Seconds are the
    cell's wall time, or the sum of the epochs' seconds in the folds' ``metrics.csv`` (training
    time only, labelled so) where there is no wall time of the whole run: no ``cell.json``, or a
    cell resumed after an interruption, whose ``cell.json`` times only its last attempt.

    Raises:
        EscnetError: no ``results.json`` in ``run_dir``.
    """
    run = Path(run_dir)
    results = _read_json(run / "results.json")
    if results is None:
        raise EscnetError(f"{run / 'results.json'}: no results; is {run} a run directory?")
    config = results.get("config") or _read_json(run / "config.json") or {}
    protocol = protocol_label(str(config.get("protocol") or "official-folds"))
    folds = results.get("folds") or []
    summary = results.get("summary") or {}
    curves = {
        int(f["test_fold"]): _read_metrics(run / f"fold{int(f['test_fold'])}" / "metrics.csv")
        for f in folds
    }
    cell = _read_json(run / "cell.json")
    seconds: float | None
    if cell is not None and not cell.get("resumed"):
        seconds, source = float(cell["seconds"]), "wall"
    else:
        times = [r.get("seconds", math.nan) for rows in curves.values() for r in rows]
        seconds = float(sum(times)) if times and not any(math.isnan(t) for t in times) else None
        source = "epochs" if seconds is not None else ""
    # results.json's config is the run's settings; the machine is in config.json's alone.
    env = config.get("environment") or (_read_json(run / "config.json") or {}).get("environment")
    env = env if isinstance(env, dict) else {}
    if cell is not None:
        commit = str(cell.get("commit", "unknown"))
    else:
        commit = f"escnet {env.get('escnet', 'unknown')}"
    model = str(results.get("model") or config.get("model"))
    return RunRow(
        dataset=str(results.get("dataset") or config.get("dataset")),
        model=model,
        augment=str(results.get("augment") or config.get("augment")),
        protocol=protocol,
        folds=[int(f["test_fold"]) for f in folds],
        complete=bool(results.get("complete", True)),
        accuracy=_pair(summary.get("accuracy")),
        loss=_pair(summary.get("loss")),
        macro_f1=_pair(summary.get("macro_f1")),
        fold_accuracies=[math.nan if f.get("accuracy") is None else f["accuracy"] for f in folds],
        seconds=seconds,
        seconds_source=source,
        commit=commit,
        run_dir=run,
        curves={k: v for k, v in curves.items() if v},
        planned_folds=[int(f) for f in results.get("planned_folds") or []],
        random_init=is_random_init(config, model),
        machine=_machine(env),
        data=describe_copy(results["data"]) if isinstance(results.get("data"), dict) else "",
    )


def shown_model(model: str, *, random_init: bool) -> str:
    """A model's name as tables show it: ``"resnet152 (random init)"`` for one trained from
    random weights that escnet could have started pretrained (:attr:`RunRow.name`)."""
    return f"{model} (random init)" if random_init else model


def is_random_init(config: Mapping[str, Any], model: str) -> bool:
    """Whether a run of ``config`` trains ``model`` from random weights where escnet knows
    pretrained ones. ``pretrained`` false, not absent: a config that does not say is not."""
    from escnet.models import get_model_info

    if config.get("pretrained") is not False:
        return False
    try:
        return get_model_info(model).weights is not None
    except ValueError:  # not registered (a run of a model from a plug-in not imported here)
        return False


def _machine(env: Mapping[str, Any]) -> str:
    if env.get("device_name"):
        return str(env["device_name"])
    if env.get("device_type") != "cpu":
        return ""
    # The CPU's model where the run recorded it (from 2026-11-28): seconds compare only on one.
    return f"CPU ({env['cpu']})" if env.get("cpu") else "CPU"


def find_runs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Run directories among ``paths``: each path that holds a ``results.json``, or else every
    directory below it that does (a grid's run root); in a stable, sorted order.

    Raises:
        EscnetError: a path does not exist or holds no run.
    """
    runs: list[Path] = []
    for p in (Path(x) for x in paths):
        if not p.exists():
            raise EscnetError(f"{p}: no such run directory")
        if (p / "results.json").is_file():
            runs.append(p)
            continue
        found = sorted(r.parent for r in p.rglob("results.json"))
        if not found:
            raise EscnetError(f"{p}: holds no results.json; pass run directories of a grid")
        runs += found
    return list(dict.fromkeys(runs))


def policy_rank(augment: str) -> int:
    """Where a policy goes in tables and charts: the paper's order (none, taa, naa, naa+taa),
    then the other named policies, then anything else."""
    return _POLICY_ORDER.index(augment) if augment in _POLICY_ORDER else len(_POLICY_ORDER)


def row_order(row: RunRow) -> tuple[Any, ...]:
    """The order of rows in every table: data set, honest before leaky, model, policy."""
    return (row.dataset, row.leaky, row.protocol, row.name, policy_rank(row.augment), row.augment)
