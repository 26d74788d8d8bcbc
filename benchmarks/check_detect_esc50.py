"""The ESC-50 check of ``escnet detect``: a dog at 10 s and a siren at 40 s, found to within 1 s.

Builds a 60-s soundscape (:mod:`escnet.events.soundscape`: pink noise at -35 dBFS, each event at
``--snr`` dB, 6) from two clips of the test fold (``--fold``, 1; the first ``dog`` and the first
``siren`` clip of that fold by name), runs the command itself on it with the fold's model (trained
without that fold), once writing a Raven selection table and a picture, once an Audacity label
track, reads both files back with crowsetta and checks that each true event has a detected event
of its class with its onset within 1 s. With ``--choose-thresholds DIR`` the first run chooses
per-class thresholds on the validation soundscapes in DIR and saves them in the fold's model
exported as a model directory (``escnet export MODEL --fold K``: for a cross-validation ensemble,
its members' fold models with that fold's weights and temperatures), which both runs use (the
documented workflow). Prints (and writes to
``--out``) a Markdown record; with ``--picture FILE`` the PNG is also copied there.

    python benchmarks/check_detect_esc50.py --model RUNS/recipe [--fold 1] [--snr 6] \
        [--work DIR] [--out docs/benchmarks/detect-esc50-check.md] [--picture docs/x.png]
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


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True)
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--snr", type=float, default=6.0)
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
    placements = []
    for label, onset in TRUE:
        clips = sorted(
            (c for c in ds.clips if c.fold == args.fold and ds.classes[c.label] == label),
            key=lambda c: c.path.name,
        )
        placements.append((str(clips[0].path), label, onset, args.snr))
    scape = synthesize([], SoundscapeConfig(duration=60.0), seed=7, placements=placements)
    wav = write_soundscape(scape, args.work / "dog-siren")
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
    started = time.perf_counter()
    subprocess.run([*command, str(wav), "--format", "raven", "--output", f"{out}/", "--plot",
                    str(out), *choose], check=True)  # fmt: skip
    seconds = time.perf_counter() - started
    subprocess.run([*command, str(wav), "--format", "audacity", "--output", str(out)], check=True)
    raven = read_raven(out / "events.selections.txt")
    labels = read_audacity(out / "dog-siren.txt")
    png = out / "dog-siren.png"
    picture = png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows, ok = [], True
    for (label, onset), placed in zip(TRUE, scape.placements, strict=True):
        found = [e for e in raven if e.label == label and abs(e.onset - onset) <= 1.0]
        back = [e for e in labels if e.label == label and abs(e.onset - onset) <= 1.0]
        ok &= bool(found) and bool(back)
        detected = (
            f"{found[0].onset:.1f}-{found[0].offset:.1f} s, peak {found[0].peak:.2f}"
            if found
            else "not found"
        )
        rows.append(
            f"| {label} | {Path(placed.source).name} | {onset:.1f}-{onset + placed.duration:.1f} s "
            f"| {detected} | {'yes' if back else 'no'} |"
        )
    others = [
        f"{e.label} {e.onset:.1f}-{e.offset:.1f} s" for e in raven if e.label not in dict(TRUE)
    ]
    text = "\n".join(
        [
            f"60-s soundscape, pink noise at -35 dBFS, a dog at 10 s and a siren at 40 s from "
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
            "| true event | clip | true span | detected (Raven table, read back) | Audacity |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Other events: {', '.join(others) or 'none'}. Picture written: "
            f"{'yes' if picture else 'no'}; "
            f"the first run took {seconds:.1f} s (wall, model loading included). "
            f"Both found within 1 s: {'yes' if ok else 'no'}.",
        ]
    )
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    if args.picture:
        shutil.copyfile(png, args.picture)
    return 0 if ok and picture else 1


if __name__ == "__main__":
    sys.exit(main())
