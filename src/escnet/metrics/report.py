"""The report of a cross-validation run: ``results.json``, figures and ``report.md``.

Everything here works from files, so a report can be (re)drawn from a run directory alone:

* ``results.json`` -- per test fold and mean ± std over folds: accuracy, macro F1, loss,
  per-class accuracy; the evaluation protocol, where augmentation was applied, how the tested
  epoch was chosen, the configuration (:func:`build_results`, :func:`write_results`);
* ``confusion_matrix.png`` -- test predictions summed over folds, class names on both axes;
* ``curves_fold{k}.png`` -- training vs validation accuracy and loss per epoch, as the
  paper's figures, from ``fold{k}/metrics.csv``;
* ``report.md`` -- a results table, per-class accuracy, and the figures (:func:`write_report`).

Examples:
    >>> from escnet.metrics.report import write_report
    >>> write_report("runs/esc10-cnn7")  # doctest: +SKIP
    PosixPath('runs/esc10-cnn7/report.md')
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from escnet.cache import atomic_write_json, atomic_write_text
from escnet.errors import ParameterError
from escnet.features.plotting import plt, save_figure
from escnet.metrics.classification import mean_std

__all__ = [
    "METRIC_COLUMNS",
    "PROTOCOL",
    "build_results",
    "log_tensorboard",
    "plot_confusion_matrix",
    "plot_curves",
    "read_metrics_csv",
    "tensorboard_writer",
    "write_report",
    "write_metrics_csv",
    "write_results",
]

#: Columns of ``fold{k}/metrics.csv``, one row per epoch. Losses are means per clip: the
#: training loss is the objective optimised (with label smoothing and mixup targets when on), the
#: validation loss plain cross-entropy. ``lr`` is the rate of the epoch's last step;
#: ``train_samples`` / ``val_samples`` are totals over all ranks.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "train_samples",
    "val_samples",
)

#: The evaluation protocol of every cross-validation run.
PROTOCOL = "official folds, leave-one-fold-out"


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _per_class_list(value: Any, classes: Sequence[str]) -> list[float | None]:
    if isinstance(value, Mapping):
        return [value.get(c) for c in classes]
    return list(value)


def _stat(values: Sequence[float | None]) -> dict[str, float]:
    mean, std = mean_std([math.nan if v is None else float(v) for v in values])
    return {"mean": mean, "std": std}


def _protocol(config: Mapping[str, Any]) -> str:
    """:data:`PROTOCOL`, or the leaky protocol's label and what it does."""
    from escnet.data.folds import is_leaky, protocol_label

    name = str(config.get("protocol") or "official-folds")
    if not is_leaky(name):
        return PROTOCOL
    how = {
        "random-split": "clips dealt into folds at random, ignoring official folds and recordings",
        "augment-then-split": "every clip expanded with NAA first, the images then split at random",
    }
    return f"{protocol_label(name)}: {how[name.removesuffix(' (leaky)')]}"


def _sorted_entries(
    folds: Sequence[Mapping[str, Any]], classes: Sequence[str]
) -> list[dict[str, Any]]:
    """The folds by test fold, each with its per-class accuracy as a list by label."""
    return sorted(
        (
            {**f, "per_class_accuracy": _per_class_list(f["per_class_accuracy"], classes)}
            for f in folds
        ),
        key=lambda f: int(f["test_fold"]),
    )


def _model_selection(config: Mapping[str, Any]) -> str:
    """How the tested epoch (or the probe's / ensemble's settings) was chosen, in words."""
    val_fraction = float(config.get("val_fraction", 0.0) or 0.0)
    if val_fraction > 0:
        selection = (
            f"the epoch with the best validation accuracy, on a validation split of "
            f"{val_fraction:.0%} of the training folds' recordings (grouped by recording, never "
            f"the test fold); the test fold is evaluated once, with that epoch's checkpoint"
        )
    else:
        selection = (
            "the last epoch (val_fraction = 0: no validation split); the test fold is "
            "evaluated once, with the last epoch's weights"
        )
    method = config.get("method", "finetune")
    if method in ("probe", "ensemble") and val_fraction > 0:
        chosen = (
            "the probe head's regularisation (L2 penalty, or weight decay for an MLP head)"
            if method == "probe"
            else "each member's temperature and the members' weights"
        )
        selection = (
            f"{chosen}, on a validation split of {val_fraction:.0%} of the training folds' "
            "recordings (grouped by recording, never the test fold); the test fold is evaluated "
            "once"
        )
    return selection


def _summary(entries: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Mean and sample std over folds of accuracy, macro F1, loss and each class's accuracy."""
    per_class = np.array(
        [[math.nan if v is None else v for v in f["per_class_accuracy"]] for f in entries],
        dtype=np.float64,
    ).reshape(len(entries), len(classes))
    summary: dict[str, Any] = {
        key: _stat([f.get(key) for f in entries]) for key in ("accuracy", "macro_f1", "loss")
    }
    summary["per_class_accuracy"] = {c: _stat(list(per_class[:, j])) for j, c in enumerate(classes)}
    summary["folds"] = len(entries)
    return summary


def _confusion_total(entries: Sequence[Mapping[str, Any]], num_classes: int) -> np.ndarray:
    """The folds' confusion matrices summed (folds without one add nothing)."""
    cm_total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for f in entries:
        if "confusion_matrix" in f:
            cm_total += np.asarray(f["confusion_matrix"], dtype=np.int64)
    return cm_total


def build_results(
    config: Mapping[str, Any],
    folds: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    *,
    planned_folds: Sequence[int] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``results.json`` from the run's config and its per-fold test metrics.

    Args:
        config: the run's :class:`~escnet.training.TrainConfig` as a dict.
        folds: one mapping per finished fold with ``test_fold``, ``accuracy``, ``macro_f1``,
            ``loss``, ``per_class_accuracy`` (a list by label, or a mapping by class name),
            ``confusion_matrix``, ``best_epoch`` and optionally the other fields of
            :class:`~escnet.metrics.fold.FoldResult`.
        classes: class names, by label.
        planned_folds: the folds the run is meant to cover (``complete`` says whether all are
            done); default: those in ``folds``.
        data: which copy of the data set the run read
            (:meth:`~escnet.data.clips.Dataset.copy_info`), kept as ``data`` so that every
            figure made from the run can say what it was measured on.

    Returns:
        A JSON-ready dict; NaN values are ``None``. ``summary`` holds mean and sample standard
        deviation over folds of ``accuracy``, ``macro_f1``, ``loss`` and of each class's
        accuracy.
    """
    entries = _sorted_entries(folds, classes)
    augment = config.get("augment", "none")
    selection = _model_selection(config)
    summary = _summary(entries, classes)
    planned = [int(f) for f in (planned_folds or [f["test_fold"] for f in entries])]
    cm_total = _confusion_total(entries, len(classes))
    folds_out = [
        {**f, "per_class_accuracy": dict(zip(classes, f["per_class_accuracy"], strict=True))}
        for f in entries
    ]
    return _clean(
        {
            "dataset": config.get("dataset"),
            "model": config.get("model"),
            "augment": augment,
            "protocol": _protocol(config),
            "augmentation": (
                f"policy '{augment}', applied to the training folds only; validation and test "
                "clips are never augmented"
            ),
            "model_selection": selection,
            "classes": list(classes),
            "planned_folds": planned,
            "complete": sorted(planned) == sorted(int(f["test_fold"]) for f in entries),
            "folds": folds_out,
            "summary": summary,
            "confusion_matrix_total": cm_total.tolist(),
            "config": dict(config),
            **({"data": dict(data)} if data else {}),
        }
    )


def write_results(run_dir: str | os.PathLike[str], results: Mapping[str, Any]) -> Path:
    """Write ``results`` as ``run_dir/results.json`` (atomically)."""
    path = Path(run_dir) / "results.json"
    atomic_write_json(path, _clean(results))
    return path


def write_metrics_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """``fold{k}/metrics.csv`` of a fold's ``history`` (rows of :data:`METRIC_COLUMNS`); NaN
    is an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in history:
        cells = []
        for col in METRIC_COLUMNS:
            v = row[col]
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:.6g}")
            else:
                cells.append(str(v))
        writer.writerow(cells)
    atomic_write_text(path, buf.getvalue())


def tensorboard_writer(log_dir: Path, purge_step: int) -> Any:
    """A SummaryWriter for the epochs' figures when tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def log_tensorboard(writer: Any, row: Mapping[str, Any]) -> None:
    """One epoch's row of ``metrics.csv`` to ``writer`` (nothing when it is None)."""
    if writer is None:
        return
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "lr"):
        group, _, name = key.partition("_")
        writer.add_scalar(f"{name}/{group}" if name else key, row[key], row["epoch"])
    writer.flush()


def read_metrics_csv(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a ``fold{k}/metrics.csv`` as floats (empty cells -> NaN)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) if v not in ("", None) else math.nan for k, v in row.items()})
    return rows


def plot_confusion_matrix(
    cm: Any,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Save a confusion matrix (rows = true class) as PNG, class names on both axes.

    Colours show each row's share (recall); cells hold the counts. Figure size and fonts scale
    with the number of classes so that 50 classes stay readable.
    """
    m = np.asarray(cm, dtype=np.int64)
    n = len(classes)
    if m.shape != (n, n):
        raise ParameterError(f"cm has shape {m.shape}, expected ({n}, {n}) for {n} classes")
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    side = max(5.0, 0.3 * n + 2.5)
    label_size = 10 if n <= 12 else 8 if n <= 25 else 6.5
    cell_size = 10 if n <= 12 else 7 if n <= 25 else 5.5
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(n)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    if n <= 12:
        ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=label_size)
    else:
        ax.set_xticklabels(classes, rotation=90, fontsize=label_size)
    ax.set_yticklabels(classes, fontsize=label_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\n{int(m.sum())} clips; colour: share of the true class (recall)")
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=cell_size,
                    color="white" if share[i, j] > 0.55 else "black",
                )
    # Thin grid between cells helps follow a row across 50 columns.
    ax.set_xticks(ticks - 0.5, minor=True)
    ax.set_yticks(ticks - 0.5, minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of true class")
    return save_figure(fig, path, dpi=150 if n > 25 else 120)


def plot_curves(
    history: Sequence[Mapping[str, float]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    best_epoch: int | None = None,
) -> Path:
    """Save training vs validation accuracy and loss per epoch (two panels) as PNG."""
    epochs = [int(r["epoch"]) for r in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    marker = "o" if len(epochs) <= 30 else None
    panels = (
        (ax_acc, "acc", "accuracy (%)", 100.0),
        (ax_loss, "loss", "loss (cross-entropy)", 1.0),
    )
    for ax, key, label, scale in panels:
        train = [r[f"train_{key}"] * scale for r in history]
        val = [r[f"val_{key}"] * scale for r in history]
        ax.plot(epochs, train, marker=marker, markersize=3, label="training")
        if not all(math.isnan(v) for v in val):
            ax.plot(epochs, val, marker=marker, markersize=3, label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="0.4", linestyle="--", linewidth=1, label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        if len(epochs) <= 15:
            ax.set_xticks(epochs)
    ax_acc.set_ylim(0, 102)
    ax_acc.set_title("model accuracy")
    ax_loss.set_title("model loss")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _fmt(value: Any, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def _mean_std_cell(stat: Mapping[str, Any], percent: bool = True) -> str:
    return f"{_fmt(stat.get('mean'), percent)} ± {_fmt(stat.get('std'), percent)}"


def _report_title(results: Mapping[str, Any]) -> str:
    """Model, data set and augmentation; a leaky protocol is named in it too."""
    title = f"{results['model']} on {results['dataset']}, augmentation '{results['augment']}'"
    if "(leaky)" in str(results.get("protocol")):  # a leaky run says so in every title
        title += f", {str(results['protocol']).split(':')[0]}"
    return title


def _draw_figures(run: Path, results: Mapping[str, Any], title: str) -> list[tuple[int, str]]:
    """Draw ``confusion_matrix.png`` and ``curves_fold{k}.png`` for each fold that has a
    ``fold{k}/metrics.csv``; returns ``(k, file name)`` of the curves drawn."""
    classes: list[str] = results["classes"]
    folds: list[dict[str, Any]] = results["folds"]
    plot_confusion_matrix(
        results["confusion_matrix_total"],
        classes,
        run / "confusion_matrix.png",
        title=f"Test fold{'s' if len(folds) > 1 else ''} "
        f"{', '.join(str(f['test_fold']) for f in folds)}: {title}",
    )
    curves: list[tuple[int, str]] = []
    for f in folds:
        k = int(f["test_fold"])
        metrics = run / f"fold{k}" / "metrics.csv"
        if not metrics.is_file():
            continue
        name = f"curves_fold{k}.png"
        plot_curves(
            read_metrics_csv(metrics),
            run / name,
            title=f"{title} -- test fold {k} (test accuracy {_fmt(f['accuracy'])} %)",
            best_epoch=f.get("best_epoch"),
        )
        curves.append((k, name))
    return curves


def _results_table(folds: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> list[str]:
    """Markdown rows: one per test fold, then the mean ± std over folds."""
    lines = [
        "| test fold | accuracy (%) | macro F1 (%) | loss | best epoch | epochs run "
        "| train images (clips) | val clips | test clips |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in folds:
        lines.append(
            f"| {f['test_fold']} | {_fmt(f['accuracy'])} | {_fmt(f['macro_f1'])} "
            f"| {_fmt(f['loss'], False)} | {f.get('best_epoch', '–')} "
            f"| {f.get('epochs_run', '–')}{' (stopped early)' if f.get('stopped_early') else ''} "
            f"| {f.get('train_images', '–')} ({f.get('train_clips', '–')}) "
            f"| {f.get('val_clips', '–')} | {f.get('test_clips', '–')} |"
        )
    lines.append(
        f"| **mean ± std** | **{_mean_std_cell(summary['accuracy'])}** "
        f"| {_mean_std_cell(summary['macro_f1'])} | {_mean_std_cell(summary['loss'], False)} "
        "| | | | | |"
    )
    return lines


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Draw the figures and write ``report.md`` from ``run_dir/results.json`` and the folds'
    ``metrics.csv``; returns the path of ``report.md``."""
    run = Path(run_dir)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    classes: list[str] = results["classes"]
    folds: list[dict[str, Any]] = results["folds"]
    summary = results["summary"]
    title = _report_title(results)
    curves = _draw_figures(run, results, title)

    lines = [
        f"# {title}",
        "",
        f"- Protocol: **{results['protocol']}**; test folds: "
        f"{', '.join(str(f['test_fold']) for f in folds)}"
        + ("" if results.get("complete", True) else " (run incomplete)"),
        f"- Augmentation: {results['augmentation']}.",
        f"- Model selection: {results['model_selection']}.",
        "",
        "## Results",
        "",
        *_results_table(folds, summary),
        "",
        "Standard deviations are sample standard deviations over the test folds.",
        "",
        "## Per-class accuracy (test folds, mean ± std)",
        "",
        "| class | accuracy (%) |",
        "|---|---:|",
    ]
    per_class = summary["per_class_accuracy"]
    for c in classes:
        lines.append(f"| {c} | {_mean_std_cell(per_class[c])} |")
    lines += [
        "",
        "## Confusion matrix (summed over the test folds)",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Training and validation curves",
        "",
    ]
    for k, name in curves:
        lines += [f"### Test fold {k}", "", f"![curves of fold {k}]({name})", ""]
    lines += [
        "## Configuration",
        "",
        "```json",
        json.dumps(results.get("config", {}), indent=2, sort_keys=True),
        "```",
        "",
    ]
    path = run / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
