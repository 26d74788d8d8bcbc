"""Figures of :mod:`escnet.results.rows`: bar charts with fold error bars and the paper's curves.

Each function takes the rows of one data set (:class:`escnet.results.rows.RunRow`) and writes PNGs
a person can read: titles say what and how many folds, axes carry units, leaky protocols are
labelled ``(leaky)`` in the legend and ``leaky`` in the file name, and the bar of a run that has
not finished all its folds is faded and says how many it has ("2/5 folds").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.ticker import MaxNLocator

from escnet.features.plotting import plt, save_figure
from escnet.results.rows import PAPER_CLAIMS, RunRow, policy_rank

#: Models whose training curves the paper shows (its Results 1 and 2).
CURVE_MODELS = ("cnn7", "cnn9")


class Figure(NamedTuple):
    """A PNG written here (or kept as an earlier aggregation drew it, ``kept``) and what it
    shows, in words (the Markdown's alt text)."""

    path: Path
    alt: str
    kept: bool = False


def _file_part(text: str) -> str:
    return text.replace(" (leaky)", "").replace(" ", "-").replace("/", "-")


def _bars(ax: plt.Axes, groups: list[str], series: list[tuple[str, list[RunRow | None]]]) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series, fold error bars and
    each fold's accuracy as a dot."""
    # At most 0.8 of a group wide, and no bar wider than a third of that (one policy so far).
    width = 0.8 / max(3, len(series))
    x = np.arange(len(groups))
    for k, (label, rows) in enumerate(series):
        pos = x - width * len(series) / 2 + width * (k + 0.5)
        means = [100 * r.accuracy[0] if r else math.nan for r in rows]
        stds = [100 * r.accuracy[1] if r and not math.isnan(r.accuracy[1]) else 0.0 for r in rows]
        bars = ax.bar(pos, means, width * 0.9, yerr=stds, capsize=3, label=label)
        for p, r, bar in zip(pos, rows, bars.patches, strict=True):
            if r is None:
                continue
            folds = [100 * a for a in r.fold_accuracies if not math.isnan(a)]
            ax.plot([p] * len(folds), folds, "k.", markersize=3, alpha=0.6)
            if r.leaky:
                bar.set_hatch("//")
            if r.progress:  # a partial run: faded, and saying how many folds it has
                bar.set_alpha(0.45)
                ax.annotate(
                    f"{len(r.folds)}/{r.n_planned} folds",
                    (p, bar.get_height()),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(x)
    ax.set_xlim(-0.5, len(groups) - 0.5)  # a group's width, however few bars it has
    # A qualifier goes on its own line ("resnet152\n(random init)"); long rows of names slant.
    labels = [g.replace(" (", "\n(") for g in groups]
    rotate = len(groups) > 4 and not any("\n" in g for g in labels)
    ax.set_xticklabels(labels, rotation=20 if rotate else 0, ha="right" if rotate else "center")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)


def _legend_below(ax: plt.Axes, title: str, n: int) -> None:
    """The legend under the axes and their tick labels, so that it never hides a bar or a
    name (lower for tick labels of three lines or more)."""
    lines = max((t.get_text().count("\n") + 1 for t in ax.get_xticklabels()), default=1)
    below = -0.14 - 0.07 * max(0, lines - 2)
    ax.legend(
        title=title, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, below), ncol=min(n, 5)
    )


def leaky_pairs(leaky: Sequence[RunRow]) -> list[tuple[str, str]]:
    """The (model, policy) groups of the leakage chart: models in the rows' order, each model's
    policies in the tables' order, so that a model's groups stand together."""

    models = list(dict.fromkeys(r.name for r in leaky))
    pairs = dict.fromkeys((r.name, r.augment) for r in leaky)
    return sorted(pairs, key=lambda p: (models.index(p[0]), policy_rank(p[1])))


def bar_charts(rows: Sequence[RunRow], out: Path, dataset: str, title: str) -> list[Figure]:
    """``accuracy-<dataset>.png`` (official folds, model x policy) and, when leaky runs exist,
    ``accuracy-<dataset>-leakage-leaky.png`` (each leaky run beside its honest twin)."""

    figures: list[Figure] = []
    honest = [r for r in rows if not r.leaky]
    if honest:
        models = list(dict.fromkeys(r.name for r in honest))
        # The policies' order whichever model ran which, as in the tables.
        policies = sorted(dict.fromkeys(r.augment for r in honest), key=policy_rank)
        by_key = {(r.name, r.augment): r for r in honest}
        series = [(p, [by_key.get((m, p)) for m in models]) for p in policies]
        fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(models) + 2), 4.5))
        _bars(ax, models, series)
        claims = [(m, c) for (d, m), c in PAPER_CLAIMS.items() if d == dataset]
        for model, claim in claims:
            # In the legend, not as text on the axes, where it collided with the tallest bars.
            ax.axhline(
                100 * claim["accuracy"],
                color="crimson",
                linestyle="--",
                linewidth=1,
                # The paper fine-tunes its transfer models from ImageNet; say so, since a bar
                # of the same name may be a random-init run.
                label=f"paper's claim ({model}, ImageNet): {100 * claim['accuracy']:.2f} %",
            )
        n_folds = max(len(r.folds) for r in honest)
        folds = f"{n_folds} test fold{'s' if n_folds > 1 else ''}"
        ax.set_title(f"{title}, official folds: mean ± std over {folds} (dots: folds)")
        _legend_below(ax, "augmentation", len(series) + len(claims))
        fig.tight_layout()
        alt = f"{title}: test accuracy per model and policy, official folds, with the folds' spread"
        figures.append(Figure(save_figure(fig, out / f"accuracy-{dataset}.png"), alt))
    leaky = [r for r in rows if r.leaky]
    if leaky:
        pairs = leaky_pairs(leaky)
        protocols = ["official-folds", *dict.fromkeys(r.protocol for r in leaky)]
        by_run = {(r.name, r.augment, r.protocol): r for r in rows}
        series = [(p, [by_run.get((m, a, p)) for m, a in pairs]) for p in protocols]
        fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(pairs) + 2), 4.5))
        _bars(ax, [f"{m}\n{a}" for m, a in pairs], series)
        ax.set_title(f"{title}: official folds vs leaky protocols (hatched, leaky)")
        _legend_below(ax, "protocol", len(series))
        fig.tight_layout()
        alt = f"{title}: each leaky protocol beside the official folds, same model and policy"
        figures.append(Figure(save_figure(fig, out / f"accuracy-{dataset}-leakage-leaky.png"), alt))
    return figures


def _curve_panel(ax: plt.Axes, row: RunRow) -> None:
    """Mean training and validation accuracy per epoch over the folds, the folds' range shaded."""
    for key, label in (("train_acc", "training"), ("val_acc", "validation")):
        runs = [[100 * r[key] for r in rows] for rows in row.curves.values()]
        n = min(len(r) for r in runs)
        values = np.array([r[:n] for r in runs])
        if np.isnan(values).all():
            continue
        epochs = np.arange(1, n + 1)
        mean_label = (
            f"{label} (mean of {len(runs)} folds; shaded: their range)"
            if len(runs) > 1
            else f"{label} (test fold {next(iter(row.curves))})"
        )
        ax.plot(epochs, np.nanmean(values, axis=0), label=mean_label)
        ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    leaky = " (leaky)" if row.leaky else ""
    ax.set_title(f"{row.name}, {row.augment}{leaky}: test {100 * row.accuracy[0]:.2f} %")


def curve_figures(rows: Sequence[RunRow], out: Path, dataset: str, title: str) -> list[Figure]:
    """``curves-<dataset>-<policy>[-<protocol>-leaky].png``: training vs validation accuracy
    of cnn7 and cnn9 side by side, one figure per policy and protocol they ran with.

    A row carried from an earlier ``results.csv`` without its curves cannot be drawn again: where
    one of a figure's rows lacks them and ``out`` already holds that figure (drawn when the curves
    were there), the figure is kept as it is rather than redrawn with a panel missing.
    """
    figures: list[Figure] = []
    mine = [r for r in rows if r.model in CURVE_MODELS]
    for augment, protocol in dict.fromkeys((r.augment, r.protocol) for r in mine):
        group = [r for r in mine if r.augment == augment and r.protocol == protocol]
        leaky = f"-{_file_part(protocol)}-leaky" if group[0].leaky else ""
        path = out / f"curves-{dataset}-{_file_part(augment)}{leaky}.png"
        what = f"{augment}, {protocol}" if group[0].leaky else augment
        alt = f"{title}, {what}: training and validation accuracy per epoch"
        panels = sorted((r for r in group if r.curves), key=lambda r: CURVE_MODELS.index(r.model))
        if len(panels) < len(group) and path.is_file():
            figures.append(Figure(path, alt, kept=True))
            continue
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
        for ax, row in zip(axes[0], panels, strict=True):
            _curve_panel(ax, row)
        fig.suptitle(f"{title}, {protocol}: training vs validation accuracy")
        fig.tight_layout()
        figures.append(Figure(save_figure(fig, path), alt))
    return figures
