"""The ESC-50 check of ``escnet detect``: a dog at 10 s and a siren at 40 s, found to within 1 s.

Builds 60-s soundscapes (:mod:`escnet.events.soundscape`: pink noise at -35 dBFS, each event at
``--snr`` dB, 6) from clips of the test fold (``--fold``, 1): the k-th holds the fold's k-th
``dog`` and k-th ``siren`` clip by name, for ``--pairs`` soundscapes (1; 0: every pair the fold
has). It runs the command itself on each with the fold's model (trained without that fold), once
writing a Raven selection table and a picture, once an Audacity label track, reads both files
back with crowsetta and checks that each true event has a detected event of its class with its
onset within 1 s. With ``--choose-thresholds DIR`` the first run chooses per-class thresholds on
the validation soundscapes in DIR and saves them in the fold's model exported as a model
directory (``escnet export MODEL --fold K``: for a cross-validation ensemble, its members' fold
models with that fold's weights and temperatures), which every later run uses (the documented
workflow). Prints (and writes to ``--out``) a Markdown record; with ``--picture FILE`` the first
soundscape's PNG is also copied there. Exits 1 unless every soundscape passes.

    python benchmarks/check_detect_esc50.py --model RUNS/recipe [--fold 1] [--snr 6] \
        [--pairs 1] [--work DIR] [--out docs/benchmarks/detect-esc50-check.md] \
        [--picture docs/x.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402
from escnet.cache import atomic_write_text  # noqa: E402
from escnet.data.datasets import get_dataset  # noqa: E402
from escnet.events.formats import read_audacity, read_raven  # noqa: E402
from escnet.events.soundscape import SoundscapeConfig, synthesize, write_soundscape  # noqa: E402

TRUE = (("dog", 10.0), ("siren", 40.0))
PNG = b"\x89PNG\r\n\x1a\n"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True)
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--snr", type=float, default=6.0)
    p.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="soundscapes to check: the k-th has the fold's k-th dog and k-th siren clip by name "
        "(1: the first pair only; 0: every pair the fold has)",
    )
    p.add_argument("--work", type=Path, default=Path("runs/detect-check"))
    p.add_argument("--out", type=Path)
    p.add_argument("--picture", type=Path)
    p.add_argument(
        "--choose-thresholds",
        type=Path,
        metavar="DIR",
        help="validation soundscapes (bench_soundscapes.py's val/): thresholds chosen on them "
        "and saved in the fold's model, exported as a model directory, which both runs then use",
    )
    args = p.parse_args()
    before = load_average()
    ds = get_dataset("esc50", data_dir=os.environ.get("ESCNET_DATA_DIR"))
    by_label = [
        sorted(
            (c for c in ds.clips if c.fold == args.fold and ds.classes[c.label] == label),
            key=lambda c: c.path.name,
        )
        for label, _ in TRUE
    ]
    count = min(len(clips) for clips in by_label)
    count = count if args.pairs <= 0 else min(count, args.pairs)
    scapes = []
    for k in range(count):
        placements = [
            (str(clips[k].path), label, onset, args.snr)
            for clips, (label, onset) in zip(by_label, TRUE, strict=True)
        ]
        config = SoundscapeConfig(duration=60.0)
        scapes.append(synthesize([], config, seed=7, placements=placements))
    names = ["dog-siren" if k == 0 else f"dog-siren-{k + 1}" for k in range(count)]
    wavs = [write_soundscape(s, args.work / n) for s, n in zip(scapes, names, strict=True)]
    out = args.work / "out"
    command = [sys.executable, "-m", "escnet", "-q", "detect", args.model, "--fold", str(args.fold)]
    choose: list[str] = []
    if args.choose_thresholds:
        # The fold's model as a model directory of its own (a run's fold model, or a
        # cross-validation ensemble's members at that fold with its weights and temperatures),
        # so that the thresholds can be saved in its model.json.
        copy = args.work / "model"
        if not (copy / "model.json").is_file():
            export = [*command[:4], "export", args.model, "--fold", str(args.fold)]
            subprocess.run([*export, "--out", str(copy)], check=True)
        command = [*command[:5], str(copy)]
        choose = ["--choose-thresholds", str(args.choose_thresholds), "--save-thresholds"]
    rows, found_both, seconds, pictures, others = [], 0, 0.0, [], []
    for k, (scape, wav) in enumerate(zip(scapes, wavs, strict=True)):
        out = args.work / "out" / wav.stem
        started = time.perf_counter()
        # The first run chooses and saves the thresholds; the others use the saved ones.
        subprocess.run([*command, str(wav), "--format", "raven", "--output", f"{out}/", "--plot",
                        str(out), *(choose if k == 0 else [])], check=True)  # fmt: skip
        seconds = seconds or time.perf_counter() - started
        subprocess.run(
            [*command, str(wav), "--format", "audacity", "--output", str(out)], check=True
        )
        raven = read_raven(out / "events.selections.txt")
        labels = read_audacity(out / f"{wav.stem}.txt")
        png = out / f"{wav.stem}.png"
        pictures.append(png if png.is_file() and png.read_bytes()[:8] == PNG else None)
        cells, ok = [], True
        for (label, onset), placed in zip(TRUE, scape.placements, strict=True):
            found = [e for e in raven if e.label == label and abs(e.onset - onset) <= 1.0]
            back = [e for e in labels if e.label == label and abs(e.onset - onset) <= 1.0]
            ok &= bool(found) and bool(back)
            span = f"{onset:.1f}-{onset + placed.duration:.1f} s"
            got = f"{found[0].onset:.1f}-{found[0].offset:.1f} s" if found else "not found"
            cells.append(f"{Path(placed.source).name}, {span} | {got}{'' if back else ' *'}")
        found_both += ok
        rows.append(f"| {wav.stem} | {' | '.join(cells)} | {'yes' if ok else 'no'} |")
        others += [
            f"{e.label} {e.onset:.1f}-{e.offset:.1f} s ({wav.stem})"
            for e in raven
            if e.label not in dict(TRUE)
        ]
    text = "\n".join(
        [
            f"{len(rows)} 60-s soundscape(s), pink noise at -35 dBFS, each a dog at 10 s and a "
            f"siren at 40 s from "
            f"ESC-50 fold {args.fold} at {args.snr:g} dB; model: the fold-{args.fold} model of "
            f"`{Path(args.model).name}` (trained without fold {args.fold}), hop 1 s, "
            + (
                f"thresholds chosen on the soundscapes of `{args.choose_thresholds.name}/` "
                "(validation clips) and saved with the model"
                if args.choose_thresholds
                else "default options"
            )
            + f". Machine: {describe(('numpy', 'torch', 'crowsetta'))}; load average before "
            f"{before}, after {load_average()}.",
            "",
            f"Command: `{command_line(sys.argv)}`",
            "",
            "| soundscape | dog: clip, true span | dog detected (Raven table, read back) "
            "| siren: clip, true span | siren detected | both within 1 s |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Other events: {', '.join(others) or 'none'}. Pictures written: "
            f"{sum(p is not None for p in pictures)} of {len(pictures)}; the first run took "
            f"{seconds:.1f} s (wall, model loading and the choice of thresholds included). "
            f"Both events found within 1 s (and read back from the Audacity track; * where "
            f"not): {found_both} of {len(rows)} soundscape(s).",
        ]
    )
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    if args.picture and pictures[0] is not None:
        shutil.copyfile(pictures[0], args.picture)
    return 0 if found_both == len(rows) and all(pictures) else 1


if __name__ == "__main__":
    sys.exit(main())
