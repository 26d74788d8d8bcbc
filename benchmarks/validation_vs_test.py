"""Does the validation split predict the test fold? Per fold, every member's and the ensemble's
validation accuracy beside its test accuracy, and what the validation split holds.

The recipe chooses L2 penalties, temperatures and ensemble weights on a validation split drawn
from the training folds. Where that split holds few recordings (UrbanSound8K cuts each Freesound
recording into up to dozens of slices), it can score far from test, and its choices can be worse
than one member. This table shows whether that happens: read it from an ensemble directory that
``escnet ensemble`` (or the main job) wrote.

    python benchmarks/validation_vs_test.py RUNS/recipe [--out FILE.md]

Test accuracies are read only to report them here; nothing is chosen on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from _machine import command_line
from escnet.data.datasets import get_dataset


def _split_stats(member: Path, fold: int, groups: dict[str, str], labels: dict[str, int]) -> str:
    split = json.loads((member / f"fold{fold}" / "split.json").read_text())
    val = split["val"]
    recordings = {groups[c] for c in val}
    per_class = Counter(labels[c] for c in val)
    rec_per_class = Counter(labels[next(c for c in val if groups[c] == g)] for g in recordings)
    return (
        f"{len(val)} clips, {len(recordings)} recordings, "
        f"{min(rec_per_class.values())}-{max(rec_per_class.values())} recordings a class, "
        f"{min(per_class.values())}-{max(per_class.values())} clips a class"
    )


def table(ensemble_dir: Path) -> list[str]:
    ens = json.loads((ensemble_dir / "ensemble.json").read_text())
    results = json.loads((ensemble_dir / "results.json").read_text())
    members = [Path(m) for m in ens["members"]]
    config = json.loads((members[0] / "config.json").read_text())
    ds = get_dataset(config["dataset"])
    groups = {c.clip_id: c.group for c in ds.clips}
    labels = {c.clip_id: c.label for c in ds.clips}
    names = [m.name for m in members]
    lines = [
        f"Data: {results.get('data', {}).get('copy', '?')}; members: {', '.join(names)}.",
        "",
        "| test fold | validation split | "
        + " | ".join(f"{n} val / test" for n in names)
        + " | ensemble val / test | ensemble weights |",
        "|---|---|" + "---:|" * (len(names) + 1) + "---|",
    ]
    gaps: list[float] = []
    for rec in ens["folds"]:
        k = int(rec["test_fold"])
        cells = [
            f"{100 * v:.2f} / {100 * t:.2f}"
            for v, t in zip(rec["member_val_acc"], rec["member_test_acc"], strict=True)
        ]
        gaps.append(100 * (rec["val_acc"] - rec["test_acc"]))
        weights = ", ".join(f"{w:.2f}" for w in rec["weights"])
        lines.append(
            f"| {k} | {_split_stats(members[0], k, groups, labels)} | "
            + " | ".join(cells)
            + f" | {100 * rec['val_acc']:.2f} / {100 * rec['test_acc']:.2f} | {weights} |"
        )
    best_member = [max(r["member_test_acc"]) for r in ens["folds"]]
    chosen_val = [
        r["member_test_acc"][max(range(len(names)), key=lambda i: r["member_val_acc"][i])]
        for r in ens["folds"]
    ]
    n = len(ens["folds"])
    lines += [
        "",
        f"Mean validation - test gap of the ensemble: {sum(gaps) / n:+.2f} points "
        f"(per fold {', '.join(f'{g:+.2f}' for g in gaps)}). Ensemble test: "
        f"{100 * sum(r['test_acc'] for r in ens['folds']) / n:.2f} %; the member with the best "
        f"validation accuracy, per fold: {100 * sum(chosen_val) / n:.2f} %; the best member on "
        f"test (not a choice, hindsight): {100 * sum(best_member) / n:.2f} %.",
    ]
    return lines


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ensemble", nargs="+", type=Path, help="ensemble directories")
    p.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = p.parse_args(argv)
    out = [f"Command: `{command_line(['benchmarks/validation_vs_test.py', *argv])}`", ""]
    for e in args.ensemble:
        out += [f"### {e.name}", "", *table(e), ""]
    text = "\n".join(out)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
