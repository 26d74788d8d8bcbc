"""Aggregation of finished runs into the paper's tables and figures: ``escnet results``.

:func:`aggregate` reads each run directory's ``results.json`` (the numbers), ``config.json``
through it (the protocol), ``cell.json`` when a grid ran it (wall time, commit) and the folds'
``metrics.csv`` (curves), and writes to one output directory:

* ``results.csv`` -- one row per run: data set, model, policy, protocol, folds, accuracy / loss /
  macro F1 mean and std over folds, per-fold accuracies, seconds, commit, the paper's claim,
  whether a pretrained model was trained from random weights, the machine;
* ``curves.csv`` -- every epoch of every fold (the curves' data), keyed by run and test fold:
  with ``results.csv``, what a later aggregation needs to carry these rows forward without their
  run directories (:mod:`escnet.results_files`);
* ``results.md`` -- per data set, the paper-shaped table (models x policies, accuracy and loss
  mean ± std over folds) with the paper's claimed figures beside, every run in detail, where
  each run's training stopped (:mod:`escnet.results_convergence`), each policy against TAA and
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

import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escnet.cache import atomic_write_text
from escnet.errors import EscnetError
from escnet.folds import is_leaky, protocol_label

__all__ = [
    "CSV_COLUMNS",
    "PAPER_CLAIMS",
    "Aggregate",
    "RunRow",
    "aggregate",
    "find_runs",
    "is_random_init",
    "markdown_tables",
    "read_run",
    "shown_model",
]

#: The paper's claimed test accuracies (docs/paper.md), keyed by (data set, model); ``augment``
#: is the policy the paper names for the figure (``None``: not stated in the notes).
PAPER_CLAIMS: dict[tuple[str, str], dict[str, Any]] = {
    ("esc10", "resnet152"): {"accuracy": 0.9904, "augment": None, "loss": None},
    ("esc50", "densenet161"): {"accuracy": 0.9757, "augment": "naa", "loss": 0.0835},
    ("us8k", "resnet152"): {"accuracy": 0.9949, "augment": None, "loss": None},
}
_DATASET_TITLES = {"esc10": "ESC-10", "esc50": "ESC-50", "us8k": "UrbanSound8K"}
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
    from escnet.report import read_metrics_csv

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


def _order(row: RunRow) -> tuple[Any, ...]:
    return (row.dataset, row.leaky, row.protocol, row.name, policy_rank(row.augment), row.augment)


def _pct(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if not math.isnan(std) else f"{100 * mean:.2f}"


def _accuracy(row: RunRow) -> str:
    """A run's accuracy as the tables show it, with how far a partial run got."""
    text = _pct(*row.accuracy)
    return f"{text} ({row.progress})" if row.progress else text


def _loss(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if not math.isnan(std) else f"{mean:.3f}"


def _label(row: RunRow) -> str:
    """A row's policy as a table shows it, with ``(leaky)`` for a leaky protocol."""
    return f"{row.augment}, {row.protocol}" if row.leaky else row.augment


def markdown_tables(
    rows: Sequence[RunRow], figures: Mapping[str, Sequence[tuple[str, str]]]
) -> str:
    """``results.md``: per data set the paper-shaped table, every run in detail, where each
    run's training stopped, each policy against TAA and against no augmentation fold by fold,
    the leakage study and the figures (``figures``: data set ->
    ``(PNG file name in the same directory, what it shows)``, the second the image's alt
    text)."""
    from escnet.results_convergence import convergence_table

    out = io.StringIO()
    out.write(
        "# Results\n\nTest accuracy (%) and loss, mean ± sample std over the test folds. "
        "Rows marked **(leaky)** come from a protocol that lets near-copies of test clips into "
        "training, on purpose: never compare them with published fold-respecting figures.\n"
    )
    for dataset in sorted({r.dataset for r in rows}):
        mine = sorted((r for r in rows if r.dataset == dataset), key=_order)
        title = _DATASET_TITLES.get(dataset, dataset)
        out.write(f"\n## {title}\n\n")
        claims = [(m, c) for (d, m), c in PAPER_CLAIMS.items() if d == dataset]
        for model, claim in claims:
            out.write(
                f"The paper claims {100 * claim['accuracy']:.2f} % with {model}"
                + (f" + {claim['augment'].upper()}" if claim["augment"] else "")
                + (f" (lowest loss {claim['loss']})" if claim["loss"] else "")
                + ".\n"
            )
        if any(r.random_init for r in mine):
            out.write(
                "Rows marked **(random init)** trained from random weights a model the paper "
                "fine-tunes from ImageNet: no claim of the paper is beside them.\n"
            )
        _paper_table(out, mine)
        _detail_table(out, mine)
        convergence_table(out, mine)
        for baseline in _BASELINES:
            _against_table(out, mine, baseline)
        _leakage_table(out, mine)
        for name, alt in figures.get(dataset, ()):
            out.write(f"\n![{alt}]({name})\n")
    return out.getvalue()


def _paper_table(out: io.StringIO, rows: Sequence[RunRow]) -> None:
    """Two tables shaped like the paper's, models x policies: test accuracy, then test loss;
    leaky protocols as their own, labelled columns; the paper's claim beside the accuracy."""
    # Columns in the policies' order whichever model ran which (not the first model's order).
    by_column = sorted(rows, key=lambda r: (r.leaky, r.protocol, *_order(r)[4:]))
    columns = list(dict.fromkeys(_label(r) for r in by_column))
    models = list(dict.fromkeys(r.name for r in rows))
    by_key = {(r.name, _label(r)): r for r in rows}
    for what in ("accuracy (%)", "loss"):
        claim_head = " paper's claim (%) |" if what != "loss" else ""
        out.write(f"\n| test {what} | " + " | ".join(columns) + f" |{claim_head}\n")
        out.write("|---|" + "---:|" * (len(columns) + (what != "loss")) + "\n")
        for model in models:
            cells = [by_key.get((model, c)) for c in columns]
            if what == "loss":
                values = [_loss(*r.loss) if r else "" for r in cells]
                out.write(f"| {model} | " + " | ".join(values) + " |\n")
                continue
            values = [_accuracy(r) if r else "" for r in cells]
            claim = PAPER_CLAIMS.get((rows[0].dataset, model))  # none for "(random init)"
            paper = f"{100 * claim['accuracy']:.2f}" if claim else "–"
            out.write(f"| {model} | " + " | ".join(values) + f" | {paper} |\n")


def _detail_table(out: io.StringIO, rows: Sequence[RunRow]) -> None:
    out.write(
        "\n| model | policy | protocol | folds | accuracy (%) | per fold (%) | loss | seconds "
        "| machine | commit |\n|---|---|---|---|---:|---|---:|---:|---|---|\n"
    )
    for r in rows:
        folds = ",".join(str(f) for f in r.folds) + (f" ({r.progress})" if r.progress else "")
        per_fold = " ".join(f"{100 * a:.2f}" for a in r.fold_accuracies)
        secs = "–" if r.seconds is None else f"{r.seconds:.0f}"
        if r.seconds_source == "epochs":
            secs += " (epochs only)"
        protocol = f"**{r.protocol}**" if r.leaky else r.protocol
        out.write(
            f"| {r.name} | {r.augment} | {protocol} | {folds} | {_pct(*r.accuracy)} "
            f"| {per_fold} | {_loss(*r.loss)} | {secs} | {r.machine or '–'} "
            f"| {_commit(r.commit)} |\n"
        )


def _points(difference: float) -> str:
    """A difference of two accuracies (fractions) in signed points, with a mean of equal
    accuracies shown as +0.00, not the -0.00 that its rounding error would print."""
    return f"{round(100 * difference, 6) + 0.0:+.2f}"


def _commit(commit: str) -> str:
    """A git commit shortened to 12 digits (``-dirty`` kept); anything else as it is."""
    head, _, rest = commit.partition("-")
    if len(head) == 40 and all(c in "0123456789abcdef" for c in head):
        return f"`{head[:12]}{'-' + rest if rest else ''}`"
    return commit


#: The baselines every other policy is paired with, fold by fold: TAA (the paper's) and none,
#: each with its table's title and the heading of its accuracy column.
_BASELINES = {"taa": ("TAA", "TAA"), "none": ("no augmentation", "none")}


def _against_table(out: io.StringIO, rows: Sequence[RunRow], baseline: str) -> None:
    """Each policy against ``baseline`` for the same model and data: complete runs on the
    official folds with the same test folds, so the differences pair up fold by fold (the same
    test clips), which says more than two means and their spreads."""
    honest = [r for r in rows if not r.leaky and r.complete]
    base_of = {r.name: r for r in honest if r.augment == baseline}
    pairs = [
        (r, base_of[r.name])
        for r in honest
        if r.augment != baseline and r.name in base_of and r.folds == base_of[r.name].folds
    ]
    if not pairs:
        return
    title, head = _BASELINES[baseline]
    out.write(
        f"\n### Against {title}: same model, data and test folds\n\n"
        f"| model | policy | {head} (%) | policy (%) | difference (points) | folds won "
        "| per fold (points) |\n|---|---|---:|---:|---:|---|---|\n"
    )
    for r, base in pairs:
        diffs = [a - b for a, b in zip(r.fold_accuracies, base.fold_accuracies, strict=True)]
        # Accuracies are clip counts over the same fold: equal ones differ by rounding at most.
        won, tied = sum(d > 1e-11 for d in diffs), sum(abs(d) <= 1e-11 for d in diffs)
        wins = f"{won} of {len(diffs)}" + (f" ({tied} tied)" if tied else "")
        out.write(
            f"| {r.name} | {r.augment} | {_accuracy(base)} | {_accuracy(r)} "
            f"| {_points(r.accuracy[0] - base.accuracy[0])} | {wins} "
            f"| {' '.join(_points(d) for d in diffs)} |\n"
        )


def _leakage_table(out: io.StringIO, rows: Sequence[RunRow]) -> None:
    honest = {(r.name, r.augment): r for r in rows if not r.leaky}
    pairs = [(r, honest.get((r.name, r.augment))) for r in rows if r.leaky]
    if not pairs:
        return
    out.write(
        "\n### Leakage: leaky minus official folds, same model, policy and data\n\n"
        "| model | policy | protocol | official folds (%) | leaky (%) | inflation (points) |\n"
        "|---|---|---|---:|---:|---:|\n"
    )
    for leaky, base in pairs:
        if base is None:
            base_cell, delta = "not run", "–"
        else:
            base_cell = _accuracy(base)
            delta = _points(leaky.accuracy[0] - base.accuracy[0])
        out.write(
            f"| {leaky.name} | {leaky.augment} | {leaky.protocol} | {base_cell} "
            f"| {_accuracy(leaky)} | {delta} |\n"
        )


@dataclass
class Aggregate:
    """What :func:`aggregate` wrote: the rows and the files, under ``out``."""

    out: Path
    rows: list[RunRow]
    files: list[Path]
    left_out: int = 0  # incomplete runs left out (``complete_only``)
    kept: list[Path] = field(default_factory=list)  # figures kept as drawn, not rewritten


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
    inputs is of the same cell (:attr:`RunRow.cell`), which replaces the carried row.

    Raises:
        EscnetError: a path is missing or holds no run, or ``complete_only`` leaves none.
    """
    from escnet.results_figures import bar_charts, curve_figures
    from escnet.results_files import is_results_csv, read_results_csv, write_csv, write_curves

    target = Path(out)
    paths = list(run_dirs)
    earlier = [Path(p) for p in paths if is_results_csv(p)]
    dirs = [p for p in paths if not is_results_csv(p)]
    # Read everything before writing: ``out`` may be where the earlier results.csv lives.
    found = [read_run(r) for r in find_runs(dirs)]
    fresh = {r.cell for r in found}
    found += [r for p in earlier for r in read_results_csv(p) if r.cell not in fresh]
    rows = sorted((r for r in found if r.complete or not complete_only), key=_order)
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
        title = _DATASET_TITLES.get(dataset, dataset)
        written = bar_charts(mine, target, dataset, title)
        written += curve_figures(mine, target, dataset, title)
        figures[dataset] = [(f.path.name, f.alt) for f in written]
        files += [f.path for f in written if not f.kept]
        kept += [f.path for f in written if f.kept]
    md = target / "results.md"
    atomic_write_text(md, markdown_tables(rows, figures))
    files.insert(1, md)
    return Aggregate(target, rows, files, left_out=len(found) - len(rows), kept=kept)
