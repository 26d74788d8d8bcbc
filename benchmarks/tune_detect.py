"""Detection settings compared on validation soundscapes only: how escnet's defaults were chosen.

The validation soundscapes of ``bench_soundscapes.py`` (built from the validation clips of fold
``--fold``'s split, never from the test fold) are scored by each model (``--model NAME=DIR``, as
there; ``DIR:one-view`` included) at one hop. For each setting of :data:`SETTINGS`, per-class
thresholds are chosen on half of the soundscapes (every other one) and scored on the other
half, and the other way round (:func:`escnet.events.thresholds.choose_thresholds`); the table
gives the event-based and segment-based F1 (sed_eval; collars as in the benchmark) over both
halves. The model runs once per soundscape: the settings only change how its score tracks
become events.

    python benchmarks/tune_detect.py --model recipe=RUNS/recipe \\
        --model one-pass=RUNS/b12-16-shift-tta:one-view [--fold 1] [--val 10] [--hop 1] \\
        [--work DIR] [--out docs/benchmarks/detect-settings.md]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402
from bench_soundscapes import (  # noqa: E402
    _config_dir,
    detect_all,
    load_model,
    soundscape_args,
    soundscape_sets,
)
from escnet.cache import atomic_write_text  # noqa: E402
from escnet.events.detect import DEFAULTS, Detection, DetectionParams, extract_events  # noqa: E402
from escnet.events.evaluate import score_events  # noqa: E402
from escnet.events.soundscape import read_reference  # noqa: E402
from escnet.events.thresholds import choose_thresholds  # noqa: E402

#: The settings compared: (what the table calls it, the detection options).
SETTINGS: tuple[tuple[str, DetectionParams], ...] = (
    ("the tracks' edges (`--level-edges 0`)", replace(DEFAULTS, level_edges=0.0)),
    ("the tracks' edges, `--relative`", replace(DEFAULTS, level_edges=0.0, relative=True)),
    ("edges from the sound: 2 dB, margin 1 s (the defaults)", DEFAULTS),
    ("3 dB, margin 1 s", replace(DEFAULTS, level_edges=3.0)),
    ("4 dB, margin 1 s", replace(DEFAULTS, level_edges=4.0)),
    ("6 dB, margin 1 s", replace(DEFAULTS, level_edges=6.0)),
    ("2 dB, margin 0.5 s", replace(DEFAULTS, level_margin=0.5)),
    ("2 dB, margin 2 s", replace(DEFAULTS, level_margin=2.0)),
    ("2 dB, margin 3 s", replace(DEFAULTS, level_margin=3.0)),
)


def cross_scores(
    detections: list[Detection], references: list[list], params: DetectionParams
) -> tuple[float, float]:
    """Event and segment F1 with thresholds chosen on one half and scored on the other."""
    halves = [list(range(0, len(detections), 2)), list(range(1, len(detections), 2))]
    estimates, truth, durations = [], [], []
    for chosen_on, scored in (halves, halves[::-1]):
        chosen = choose_thresholds(
            [detections[i] for i in chosen_on], [references[i] for i in chosen_on], params=params
        )
        for i in scored:
            estimates.append(extract_events(detections[i].tracks, chosen))
            truth.append(references[i])
            durations.append(detections[i].duration)
    s = score_events(truth, estimates, durations, detections[0].tracks.classes)
    return s.event_f1, s.segment_f1


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    soundscape_args(p, val=10)
    p.add_argument("--hop", type=float, default=1.0)
    args = p.parse_args()
    args.test = 0  # no test soundscape is made or read here
    models = [m.split("=", 1) for m in args.model]
    before = load_average()
    files = soundscape_sets(args, _config_dir(Path(models[0][1].removesuffix(":one-view"))))["val"]
    references = [read_reference(f) for f in files]
    columns = {}
    for name, path in models:
        detections, _, _ = detect_all(load_model(Path(path), args), files, args.hop)
        columns[name] = [cross_scores(detections, references, s) for _, s in SETTINGS]
        print(f"{name}: done", file=sys.stderr)
    lines = [
        f"Detection settings on {len(files)} validation soundscapes (fold {args.fold}'s split: "
        f"{sum(map(len, references))} true events; {args.duration:g} s at {args.snr[0]:g}-"
        f"{args.snr[1]:g} dB over pink noise), hop {args.hop:g} s, fold-{args.fold} models; "
        "thresholds chosen on every other soundscape and scored on the rest, both ways. "
        f"Machine: {describe(('numpy', 'torch', 'sed_eval'))}; load average before {before}, "
        f"after {load_average()}.",
        "",
        f"Command: `{command_line(sys.argv)}`",
        "",
        "| setting | " + " | ".join(f"{n} event F1 / segment F1" for n in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for i, (label, _) in enumerate(SETTINGS):
        cells = [f"{columns[n][i][0]:.3f} / {columns[n][i][1]:.3f}" for n in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
