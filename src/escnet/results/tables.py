"""``results.md``'s tables: per data set the paper-shaped table with the paper's claims beside,
every run in detail, where training stopped, each policy against a baseline fold by fold, and the
leakage study (leaky minus honest accuracy of the same model, policy and data)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from escnet.results.convergence import convergence_table
from escnet.results.rows import DATASET_TITLES, PAPER_CLAIMS, RunRow, row_order

__all__ = ["markdown_tables"]


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
    out = io.StringIO()
    out.write(
        "# Results\n\nTest accuracy (%) and loss, mean ± sample std over the test folds. "
        "Rows marked **(leaky)** come from a protocol that lets near-copies of test clips into "
        "training, on purpose: never compare them with published fold-respecting figures.\n"
    )
    for dataset in sorted({r.dataset for r in rows}):
        mine = sorted((r for r in rows if r.dataset == dataset), key=row_order)
        title = DATASET_TITLES.get(dataset, dataset)
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
    by_column = sorted(rows, key=lambda r: (r.leaky, r.protocol, *row_order(r)[4:]))
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
        "| machine | data | commit |\n|---|---|---|---|---:|---|---:|---:|---|---|---|\n"
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
            f"| {r.data or '–'} | {_commit(r.commit)} |\n"
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
