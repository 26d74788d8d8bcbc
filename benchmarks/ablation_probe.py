"""Ablation of the probe's levers, five folds each, and the recipe chosen on validation.

Each row is one ``escnet train --method probe`` command over all five official folds (or one
``escnet ensemble`` of rows); the script runs the rows that have no finished run directory yet,
then writes the table (``docs/ablation_<dataset>.md`` and ``.csv``): per row the mean +- std
over the folds of the *validation* accuracy (the grouped validation split carved from the
training folds; what the probe's regularisation and the ensemble's weights were chosen on) and
of the *test* accuracy, the seconds of the command and the command itself.

Honest selection: the recipe is the row with the best mean validation accuracy, ties to the
cheaper row (earlier in the list); test accuracies play no part in it. (Every row's validation
accuracy is that of its own chosen L2 / weights, so all rows carry the same small optimism.)

Usage::

    ESCNET_DATA_DIR=... ESCNET_WEIGHTS_DIR=... ESCNET_CACHE_DIR=... \\
    .venv/bin/python benchmarks/ablation_probe.py [--dataset esc50] [--runs runs/ablation]
        [--rows name,name] [--out docs/]
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ESCNET = str(REPO / ".venv" / "bin" / "escnet")


@dataclass(frozen=True)
class Row:
    """One ablation row: a probe run (``args``) or an ensemble of rows (``members``: row names,
    or run directories relative to the repository, ``{dataset}`` filled in)."""

    name: str
    lever: str
    args: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    #: Whether the row may become the recipe: the main command must run it on all five folds
    #: within the main job's 20 minutes from a cold cache (a fine-tuned member does not).
    eligible: bool = True


#: The levers, alone and combined. Blocks index mn04_as.features (16: last convolution block).
_PROBE_ROWS: tuple[Row, ...] = (
    Row("emb", "embedding only (the earlier linear probe)", ("--probe-blocks", "none")),
    Row("b16", "+ block 16 mean/max", ("--probe-blocks", "16")),
    Row("b12-16", "+ blocks 12, 16 mean/max", ("--probe-blocks", "12,16")),
    Row("b10-16", "+ blocks 10, 12, 14, 16 mean/max", ("--probe-blocks", "10,12,14,16")),
    Row("b6-16", "+ blocks 6, 8, 10, 12, 14, 16 mean/max", ("--probe-blocks", "6,8,10,12,14,16")),
    Row("all", "+ every block 0-16 mean/max", ("--probe-blocks", ",".join(map(str, range(17))))),
    Row(
        "b10-16-mlp",
        "blocks 10, 12, 14, 16, MLP head",
        ("--probe-blocks", "10,12,14,16", "--probe-head", "mlp"),
    ),
    Row("b10-16-tta", "blocks 10, 12, 14, 16 + TTA", ("--probe-blocks", "10,12,14,16", "--tta")),
    Row(
        "b12-16-naa",
        "blocks 12, 16 + NAA rows (all six variants)",
        ("--probe-blocks", "12,16", "--augment", "naa"),
    ),
    Row(
        "b12-16-shift",
        "blocks 12, 16 + NAA rows (time-shift variant only)",
        ("--probe-blocks", "12,16", "--augment", "naa", "--probe-views", "shift"),
    ),
    Row(
        "b12-16-shift-ts",
        "blocks 12, 16 + NAA rows (time shift and time stretch)",
        ("--probe-blocks", "12,16", "--augment", "naa", "--probe-views", "shift,ts"),
    ),
    Row(
        "b12-16-tta",
        "blocks 12, 16 + TTA (rolls of 0, 8, 16, 24 frames)",
        ("--probe-blocks", "12,16", "--tta"),
    ),
    Row(
        "b12-16-shift-tta",
        "blocks 12, 16 + NAA shift rows + TTA",
        ("--probe-blocks", "12,16", "--augment", "naa", "--probe-views", "shift", "--tta"),
    ),
    Row(
        "b10-16-shift-tta",
        "blocks 10, 12, 14, 16 + NAA shift rows + TTA",
        ("--probe-blocks", "10,12,14,16", "--augment", "naa", "--probe-views", "shift", "--tta"),
    ),
    Row(
        "all-shift-tta",
        "every block 0-16 (the best validation block set) + NAA shift rows + TTA",
        ("--probe-blocks", ",".join(map(str, range(17))), "--augment", "naa")
        + ("--probe-views", "shift", "--tta"),
    ),
    Row(
        "b12-16-naa-mlp",
        "blocks 12, 16 + NAA rows (all six), MLP head",
        ("--probe-blocks", "12,16", "--augment", "naa", "--probe-head", "mlp"),
    ),
)

#: A fine-tuned run of the same split: `escnet experiment experiments/paper.toml --only
#: '{dataset}-mn04_as-naa-official-folds'` (same seed and validation share as the probe rows).
FINETUNED = "runs/paper/{dataset}-mn04_as-naa-official-folds"

#: The probe rows, then ensembles of them (an ensemble row's seconds exclude its members').
ROWS: tuple[Row, ...] = (
    *_PROBE_ROWS,
    Row(
        "ens-2",
        "ensemble: the two NAA shift + TTA rows (blocks 12, 16 and 10-16)",
        members=("b12-16-shift-tta", "b10-16-shift-tta"),
    ),
    Row(
        "ens-3",
        "ensemble: the two above + the MLP row",
        members=("b12-16-shift-tta", "b10-16-shift-tta", "b12-16-naa-mlp"),
    ),
    Row(
        "ens-4",
        "ensemble: ens-3 + the every-block shift + TTA row",
        members=("b12-16-shift-tta", "b10-16-shift-tta", "b12-16-naa-mlp", "all-shift-tta"),
    ),
    Row(
        "ens-all",
        "ensemble of every row above, weights chosen on validation (greedy, with replacement)",
        members=tuple(r.name for r in _PROBE_ROWS),
        # Its 16 members' own rows took 3122 s together on this CPU, with some features
        # already cached: far past the main command's 20 minutes.
        eligible=False,
    ),
    Row(
        "ens-3-ft",
        "ens-3 + mn04_as fine-tuned with NAA (the paper grid's cell: 15 min on ESC-10)",
        members=(
            "b12-16-shift-tta",
            "b10-16-shift-tta",
            "b12-16-naa-mlp",
            FINETUNED,
        ),
        eligible=False,
    ),
)


def member_dir(member: str, dataset: str, runs: Path) -> Path:
    """An ensemble member's run directory: a row of this table or a path from the repo."""
    if "/" in member:
        return REPO / member.format(dataset=dataset)
    return runs / member


def command(row: Row, dataset: str, run_dir: Path, runs: Path) -> list[str]:
    """The row's command line (``runs``: where the members of an ensemble row are)."""
    if row.members:
        dirs = [str(member_dir(m, dataset, runs)) for m in row.members]
        return [ESCNET, "-q", "ensemble", *dirs, "--out", str(run_dir)]
    base = [ESCNET, "-q", "train", "--method", "probe", "--model", "mn04_as", "--dataset", dataset]
    base += ["--test-folds", "1-5"]
    if "--augment" not in row.args:
        base += ["--augment", "none"]  # explicit: escnet train's own default is naa
    return [*base, *row.args, "--run-dir", str(run_dir)]


def finished(run_dir: Path) -> bool:
    path = run_dir / "results.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("complete"))


def val_accuracies(run_dir: Path) -> list[float]:
    """Per fold: the validation accuracy the run's choice was made on."""
    ens = run_dir / "ensemble.json"
    if ens.is_file():
        return [float(f["val_acc"]) for f in json.loads(ens.read_text())["folds"]]
    return [
        float(json.loads(p.read_text())["chosen"]["val_acc"])
        for p in sorted(run_dir.glob("fold*/probe.json"))
    ]


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def seconds(row: Row, run_dir: Path, timings: dict[str, float]) -> str:
    """The command's measured wall time; for a run made outside this script, the sum of its
    folds' own timings (``probe.json``), marked with a tilde."""
    if row.name in timings:
        return f"{timings[row.name]:.0f}"
    folds = [json.loads(p.read_text()) for p in sorted(run_dir.glob("fold*/probe.json"))]
    if folds:
        return f"~{sum(f['seconds']['total'] for f in folds):.0f}"
    return "–"


def run_rows(rows: Sequence[Row], dataset: str, runs: Path) -> dict[str, float]:
    """Run the unfinished rows; returns (and keeps in runs/timings.json) each row's seconds."""
    timings_path = runs / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for row in rows:
        run_dir = runs / row.name
        if finished(run_dir):
            continue
        missing = [m for m in row.members if not finished(member_dir(m, dataset, runs))]
        if missing:
            print(f"[{row.name}] not run: members not finished: {', '.join(missing)}")
            continue
        cmd = command(row, dataset, run_dir, runs)
        print(f"[{row.name}] {shlex.join(cmd)}", flush=True)
        started = time.perf_counter()
        subprocess.run(cmd, check=True)
        timings[row.name] = time.perf_counter() - started
        runs.mkdir(parents=True, exist_ok=True)
        timings_path.write_text(json.dumps(timings, indent=1))
    return {k: float(v) for k, v in timings.items()}


def table(
    rows: Sequence[Row], dataset: str, runs: Path, timings: dict[str, float]
) -> list[dict[str, str]]:
    """One table row per finished run: validation and test accuracy, seconds, command."""
    shown = Path(f"runs/ablation/{dataset}")  # the command as a user types it, from the repo
    out = []
    for row in rows:
        run_dir = runs / row.name
        results = json.loads((run_dir / "results.json").read_text())
        tests = [float(f["accuracy"]) for f in results["folds"]]
        vals = val_accuracies(run_dir)
        cmd = command(row, dataset, shown / row.name, shown)
        cmd = ["escnet", *(c.removeprefix(f"{REPO}/") for c in cmd[1:])]
        out.append(
            {
                "row": row.name,
                "lever": row.lever,
                "eligible": "yes" if row.eligible else "no (over the main command's 20 min)",
                "val_mean": f"{100 * statistics.mean(vals):.2f}",
                "val": mean_std(vals),
                "test": mean_std(tests),
                "test_folds": ", ".join(f"{100 * t:.2f}" for t in tests),
                "seconds": seconds(row, run_dir, timings),
                "command": shlex.join(cmd),
            }
        )
    return out


def data_copy(dataset: str, runs: Path) -> str:
    """The data copy the rows were measured on: the one their runs recorded (all must agree),
    or, for runs made before runs recorded it, the copy the data directory holds now."""
    from escnet.data.datasets import describe_copy, get_dataset

    recorded = {
        describe_copy(data)
        for path in sorted(runs.glob("*/results.json"))
        if isinstance(data := json.loads(path.read_text()).get("data"), dict)
    }
    if len(recorded) > 1:
        raise SystemExit(f"{runs}: rows measured on different data copies: {sorted(recorded)}")
    if recorded:
        return recorded.pop()
    return f"{describe_copy(get_dataset(dataset).copy_info())} (the data directory's copy)"


def write(rows: list[dict[str, str]], dataset: str, out_dir: Path, runs: Path) -> Path:
    eligible = [i for i, r in enumerate(rows) if r["eligible"] == "yes"]
    best = max(eligible, key=lambda i: (float(rows[i]["val_mean"]), -i))
    lines = [
        f"# Probe ablation on {dataset}: five official folds, choice on validation",
        "",
        f"Machine: {describe(('numpy', 'torch'))}",
        "",
        f"Data: {data_copy(dataset, runs)}",
        "",
        "Written by `benchmarks/ablation_probe.py`. Validation: the grouped validation split of "
        "each fold's training folds (what the head's regularisation and the ensemble weights "
        "were chosen on); test: the held-out official fold. Mean ± sample std over the five "
        "folds. Seconds: the command's wall time on the machine above, other jobs sharing its "
        "cores at times; features are cached, so the first row to use a view (a block set "
        "reads the same cached vectors; NAA variants and TTA rolls are new views) pays for "
        "computing them, and an ensemble row's seconds exclude its members'. "
        "The eligible row with the best mean validation accuracy (ties: the earlier, cheaper "
        "row) is the recipe (**bold**); test accuracies took no part in the choice.",
        "",
        "| row | lever | validation acc. (%) | test acc. (%) | test folds 1-5 | seconds "
        "| command |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for i, r in enumerate(rows):
        mark = "**" if i == best else ""
        lever = r["lever"] + ("" if r["eligible"] == "yes" else " (not eligible as the recipe)")
        lines.append(
            f"| {mark}{r['row']}{mark} | {lever} | {mark}{r['val']}{mark} | {r['test']} "
            f"| {r['test_folds']} | {r['seconds']} | `{r['command']}` |"
        )
    lines += ["", f"Chosen on validation: **{rows[best]['row']}** ({rows[best]['lever']}).", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"ablation_{dataset}.md"
    md.write_text("\n".join(lines))
    with open(out_dir / f"ablation_{dataset}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="esc50")
    ap.add_argument("--runs", default=None, help="default runs/ablation/<dataset>")
    ap.add_argument(
        "--rows", default=None, help="run only these rows, comma-separated (default: all)"
    )
    ap.add_argument("--out", default=str(REPO / "docs"))
    ap.add_argument("--no-run", action="store_true", help="only tabulate finished rows")
    args = ap.parse_args()
    runs = Path(args.runs or REPO / "runs" / "ablation" / args.dataset)
    wanted = set(args.rows.split(",")) if args.rows else None
    rows = [r for r in ROWS if wanted is None or r.name in wanted]
    timings = {} if args.no_run else run_rows(rows, args.dataset, runs)
    if args.no_run:
        path = runs / "timings.json"
        timings = json.loads(path.read_text()) if path.is_file() else {}
    done = [r for r in ROWS if finished(runs / r.name)]  # the table shows every finished row
    print(write(table(done, args.dataset, runs, timings), args.dataset, Path(args.out), runs))


if __name__ == "__main__":
    main()
