"""Nested choice among the probe ablation's rows: cross-validation over each fold's training folds.

The ablation (``benchmarks/ablation_probe.py``) chooses its recipe by the rows' mean accuracy on
one grouped validation split per fold, about 165 clips: two rows a clip or two apart are within
that split's noise. Here each candidate row is scored instead by leave-one-fold-out over the four
*training* folds of every outer test fold k: for k = 1..5, a partial copy of the data set holding
only the other four folds (``COPIES/without-fold{k}``: its metadata's rows of those folds, its
audio a link to the original's) and, per row, the row's own command on that copy with
``--test-folds`` the four (each inner run trains on three folds, chooses its L2 or weights on their
validation split and tests on the fourth). A row's inner score for fold k is its accuracy over
the four inner test folds (the 1600 training clips of fold k, each predicted once); fold k's
test clips take no part in it.

Two choices come out, each reported with the ablation's *outer* test accuracies (the rows' own
five-fold runs, trained on four folds each, as the ablation table shows them):

* **per fold** (the strictly nested estimate): for each k, the row with the best inner score for
  k, and that row's test accuracy on fold k; the mean over k estimates what the procedure
  "choose by inner cross-validation, then train" gives on unseen data;
* **one recipe** for the main job and the final model: the eligible row with the best mean inner
  score over the five folds (the ablation's rule, with inner cross-validation in place of the
  single validation split; ties to the earlier, cheaper row).

Features are cached by content, so the inner runs reuse the ablation's cached views: the cost is
the heads' fitting, about four times the ablation's.

Usage::

    ESCNET_DATA_DIR=... ESCNET_WEIGHTS_DIR=... ESCNET_CACHE_DIR=... \\
    .venv/bin/python benchmarks/nested_probe.py [--dataset esc50] [--runs runs/ablation/esc50]
        [--nested runs/nested/esc50] [--rows name,name] [--out docs/]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402
from ablation_probe import ESCNET, REPO, ROWS, Row, data_copy, finished, mean_std  # noqa: E402

#: Candidates unless ``--rows`` says otherwise: every eligible row, in the order they are run
#: (the main job's members and their ensembles first, so that an interrupted run has compared
#: those; an ensemble after its members).
CANDIDATES = (
    "b12-16-shift-tta",
    "b10-16-shift-tta",
    "b12-16-naa-mlp",
    "all-shift-tta",
    "ens-2",
    "ens-3",
    "ens-4",
    *(
        r.name
        for r in ROWS
        if r.eligible
        and not r.members
        and r.name
        not in {"b12-16-shift-tta", "b10-16-shift-tta", "b12-16-naa-mlp", "all-shift-tta"}
    ),
)


def partial_copy(root: Path, out: Path, keep_folds: list[int]) -> Path:
    """A copy of the ESC-50-style data set at ``root`` holding only ``keep_folds``: its metadata
    rows of those folds (written atomically) and a link to the original audio directory."""
    out.mkdir(parents=True, exist_ok=True)
    audio = out / "audio"
    if not audio.exists():
        audio.symlink_to((root / "audio").resolve(), target_is_directory=True)
    (out / "meta").mkdir(exist_ok=True)
    source = root / "meta" / f"{root.name}.csv"
    if not source.is_file():
        source = next((root / "meta").glob("*.csv"))
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if int(r["fold"]) in keep_folds]
        fields = list(reader.fieldnames or [])
    target = out / "meta" / source.name
    tmp = target.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, target)
    return out


def inner_command(row: Row, dataset: str, copy: Path, folds: list[int], run_dir: Path) -> list[str]:
    """The row's command on the partial copy: the ablation row's, ``--test-folds`` the copy's."""
    if row.members:
        members = [str(run_dir.parent / m) for m in row.members]
        return [ESCNET, "-q", "ensemble", *members, "--out", str(run_dir)]
    base = [ESCNET, "-q", "train", "--method", "probe", "--model", "mn04_as", "--dataset", dataset]
    base += ["--root", str(copy), "--test-folds", ",".join(map(str, folds))]
    if "--augment" not in row.args:
        base += ["--augment", "none"]
    return [*base, *row.args, "--run-dir", str(run_dir)]


def accuracy_over_folds(run_dir: Path) -> float:
    """A run's accuracy over all its test clips pooled (every inner fold has as many clips)."""
    folds = json.loads((run_dir / "results.json").read_text())["folds"]
    return statistics.mean(float(f["accuracy"]) for f in folds)


def run_inner(
    rows: list[Row], dataset: str, data_root: Path, nested: Path, folds: list[int]
) -> dict[str, float]:
    """Every unfinished inner run; returns each (fold, row)'s seconds (kept in timings.json)."""
    timings_path = nested / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    copies = {
        k: partial_copy(
            data_root,
            nested / "copies" / f"without-fold{k}" / dataset,
            [f for f in folds if f != k],
        )
        for k in folds
    }
    # Row by row, all folds of a row before the next: an interrupted run leaves whole rows,
    # which the table can already compare (a rerun resumes where it stopped).
    for row in rows:
        for k in folds:
            inner, copy = [f for f in folds if f != k], copies[k]
            run_dir = nested / f"fold{k}" / row.name
            if finished(run_dir):
                continue
            cmd = inner_command(row, dataset, copy, inner, run_dir)
            print(f"[fold {k}, {row.name}] {shlex.join(cmd)}", flush=True)
            started = time.perf_counter()
            subprocess.run(cmd, check=True)
            timings[f"{k}/{row.name}"] = time.perf_counter() - started
            nested.mkdir(parents=True, exist_ok=True)
            timings_path.write_text(json.dumps(timings, indent=1))
    return timings


def outer_test(runs: Path, row: str) -> dict[int, float]:
    """The row's test accuracy per outer fold, from its five-fold ablation run."""
    folds = json.loads((runs / row / "results.json").read_text())["folds"]
    return {int(f["test_fold"]): float(f["accuracy"]) for f in folds}


def tabulate(
    rows: list[Row], dataset: str, runs: Path, nested: Path, folds: list[int], timings: dict
) -> str:
    """The nested table (Markdown): inner scores per row and fold, the two choices. Rows are
    shown, and ties broken, in the ablation's order; a row without all its inner runs is left
    out."""
    rows = [
        r for r in ROWS if r in rows and all(finished(nested / f"fold{k}" / r.name) for k in folds)
    ]
    inner = {
        r.name: {k: accuracy_over_folds(nested / f"fold{k}" / r.name) for k in folds} for r in rows
    }
    test = {r.name: outer_test(runs, r.name) for r in rows}
    order = [r.name for r in rows]
    per_fold = {k: max(order, key=lambda n: (inner[n][k], -order.index(n))) for k in folds}
    eligible = [r.name for r in rows if r.eligible]
    recipe = max(eligible, key=lambda n: (statistics.mean(inner[n].values()), -order.index(n)))
    copy = data_copy(dataset, runs)
    fold_cols = " | ".join(f"fold {k}" for k in folds)
    lines = [
        f"# Nested choice among the probe rows on {dataset}",
        "",
        f"Machine: {describe(('numpy', 'torch'))}",
        f"Data: {copy}",
        "",
        "Written by `benchmarks/nested_probe.py`. Inner score: a row's accuracy under "
        "leave-one-fold-out over the four training folds of outer fold k (three folds train, "
        "with the row's own validation choice inside them; the fourth tests; the test fold k "
        "takes no part). Test: the row's accuracy on fold k in its five-fold ablation run. "
        "Seconds: the row's inner runs, all folds.",
        "",
        f"| row | inner score (%): {fold_cols} | mean inner (%) | test (%), mean ± std | seconds |",
        "|---|" + "---:|" * len(folds) + "---:|---:|---:|",
    ]
    for name in order:
        mark = "**" if name == recipe else ""
        cells = " | ".join(
            f"{'*' if per_fold[k] == name else ''}{100 * inner[name][k]:.2f}"
            f"{'*' if per_fold[k] == name else ''}"
            for k in folds
        )
        secs = sum(v for key, v in timings.items() if key.split("/", 1)[1] == name)
        tests = [test[name][k] for k in folds]
        mean_inner = 100 * statistics.mean(inner[name].values())
        lines.append(
            f"| {mark}{name}{mark} | {cells} | {mark}{mean_inner:.2f}{mark} "
            f"| {mean_std(tests)} | {secs:.0f} |"
        )
    chosen_tests = [test[per_fold[k]][k] for k in folds]
    lines += [
        "",
        "*Italics*: the row each fold's inner cross-validation chose. **Bold**: the one recipe "
        "(the eligible row with the best mean inner score).",
        "",
        "Per-fold nested choice: "
        + ", ".join(f"fold {k}: {per_fold[k]} ({100 * test[per_fold[k]][k]:.2f} %)" for k in folds)
        + f"; test accuracy of the procedure **{mean_std(chosen_tests)} %**.",
        "",
        f"One recipe: **{recipe}**, test {mean_std([test[recipe][k] for k in folds])} %.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="esc50")
    ap.add_argument("--runs", default=None, help="the ablation's runs (runs/ablation/<dataset>)")
    ap.add_argument("--nested", default=None, help="inner runs (runs/nested/<dataset>)")
    ap.add_argument("--rows", default=None, help="candidate rows, comma-separated")
    ap.add_argument("--out", default=str(REPO / "docs"))
    ap.add_argument("--no-run", action="store_true", help="only tabulate finished inner runs")
    args = ap.parse_args()
    runs = Path(args.runs or REPO / "runs" / "ablation" / args.dataset)
    nested = Path(args.nested or REPO / "runs" / "nested" / args.dataset)
    wanted = args.rows.split(",") if args.rows else list(CANDIDATES)
    by_name = {r.name: r for r in ROWS}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        ap.error(f"--rows: unknown row(s) {', '.join(unknown)}; rows: {', '.join(by_name)}")
    rows = [by_name[n] for n in wanted]
    for i, r in enumerate(rows):  # an ensemble's members must be candidates run before it
        missing = [m for m in r.members if m not in wanted[:i]]
        if missing:
            ap.error(f"--rows: {r.name} needs its members {', '.join(missing)} among the rows")
    import escnet

    data_root = escnet.get_dataset(args.dataset).root
    folds = [1, 2, 3, 4, 5]
    timings_path = nested / "timings.json"
    if args.no_run:
        timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    else:
        timings = run_inner(rows, args.dataset, data_root, nested, folds)
    out = Path(args.out) / f"ablation_{args.dataset}_nested.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(tabulate(rows, args.dataset, runs, nested, folds, timings))
    print(out)


if __name__ == "__main__":
    main()
