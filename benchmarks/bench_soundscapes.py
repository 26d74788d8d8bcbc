"""Sound event detection on ESC-50 soundscapes, scored with sed_eval: an honest split.

1. Soundscapes (:mod:`escnet.events.soundscape`) of ``--duration`` s with 1-4 events at
   ``--snr`` dB over a pink-noise background: ``--test`` of them from the ESC-50 clips of the
   test fold (``--fold``, 1), ``--val`` from the validation clips of that fold's split (the
   training folds' validation groups, as training drew them: ``val_fraction`` and ``seed`` of the
   model's run). The test fold's clips are never used for choosing anything.
2. Each model (``--model NAME=DIR``, the run or cross-validation ensemble directory; its
   fold-``--fold`` model, trained without the test fold, is used: for an ensemble, its members'
   fold models with that fold's weights and temperatures; ``NAME=DIR:one-view``: a probe
   run's fold model with its test-time views turned off, one pass per window) detects events
   at each hop
   (``--hops``) in both sets, with one CPU thread (``--threads``). Per-class thresholds are
   chosen on the validation soundscapes at that hop
   (:func:`escnet.events.thresholds.choose_thresholds`), then the test soundscapes are scored
   with them.
3. Printed as Markdown (and written to ``--out``): event-based F1 (onset collar 0.5 s, offset
   20 % of the length or 0.5 s) and segment-based F1 (1-s segments), overall (sed_eval's micro
   average) and per class, with each run's real-time factor (processing seconds per second of
   audio: the wall time of ``detect_file`` over the test soundscapes' total length; the CPU time
   beside it), the machine and its load before and after.

    python benchmarks/bench_soundscapes.py --model recipe=RUNS/recipe \
        --model one-pass=RUNS/b12-16-shift-tta:one-view [--fold 1] [--test 20] [--val 20] \
        [--hops 0.5 1 2.5] [--snr 6 6] [--work DIR] [--out docs/benchmarks/detect-soundscapes.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402
from escnet.cache import atomic_write_text  # noqa: E402
from escnet.data.datasets import get_dataset  # noqa: E402
from escnet.data.folds import fold_split  # noqa: E402
from escnet.events.detect import DEFAULTS, Detection, extract_events  # noqa: E402
from escnet.events.evaluate import DetectionScores, score_events  # noqa: E402
from escnet.events.soundscape import (  # noqa: E402
    SoundscapeConfig,
    esc50_sources,
    read_reference,
    write_soundscapes,
)
from escnet.events.thresholds import choose_thresholds  # noqa: E402
from escnet.inference import load  # noqa: E402
from escnet.model_dir.layout import member_run_dir, resolve_model_dir  # noqa: E402

PACKAGES = ("numpy", "torch", "sed_eval", "crowsetta")


def soundscape_sets(args: argparse.Namespace, split_of: Path) -> dict[str, list[Path]]:
    """The test and validation soundscapes (made once, kept in ``--work``)."""
    ds = get_dataset("esc50", data_dir=os.environ.get("ESCNET_DATA_DIR"))
    config = json.loads((split_of / "config.json").read_text())
    split = fold_split(
        ds, args.fold, val_fraction=float(config["val_fraction"]), seed=int(config["seed"])
    )
    scape = SoundscapeConfig(duration=args.duration, snr=(args.snr[0], args.snr[1]))
    sets = {}
    for name, indices, count, seed in (
        ("test", split.test, args.test, 1000),
        ("val", split.val, args.val, 2000),
    ):
        if not count:
            continue
        clips = [ds[i] for i in indices]
        sources = esc50_sources(clips, ds.classes)
        sets[name] = write_soundscapes(
            sources, args.work / name, count, scape, seed=seed, prefix=f"{name}-fold{args.fold}"
        )
        print(f"{name}: {count} soundscapes from {len(clips)} clips", file=sys.stderr)
    return sets


def detect_all(
    predictor: Any, files: list[Path], hop: float
) -> tuple[list[Detection], float, float]:
    """Detections of ``files`` at ``hop``, with the wall and CPU seconds they took."""
    wall, cpu = time.perf_counter(), time.process_time()
    detections = [predictor.detect_file(f, hop=hop, params=DEFAULTS) for f in files]
    return detections, time.perf_counter() - wall, time.process_time() - cpu


def one_view(path: Path, fold: int, work: Path) -> Path:
    """A copy of the fold's probe model directory that classifies each window once, in its
    unshifted view (``tta_shifts`` [0]): the same weights without test-time views."""
    source = resolve_model_dir(path, fold)
    copy = work / f"{path.name}-fold{fold}-one-view"
    shutil.copytree(source, copy, dirs_exist_ok=True)
    meta = json.loads((copy / "model.json").read_text())
    meta["model_kwargs"]["tta_shifts"] = [0]
    atomic_write_text(copy / "model.json", json.dumps(meta, indent=2))
    return copy


def load_model(path: Path, args: argparse.Namespace) -> Any:
    """The predictor of ``--model``'s fold model (``DIR:one-view``: see :func:`one_view`)."""
    if str(path).endswith(":one-view"):
        model = one_view(Path(str(path).removesuffix(":one-view")), args.fold, args.work)
        return load(model, threads=args.threads)
    return load(path, fold=args.fold, threads=args.threads)


def run_model(
    name: str, path: Path, sets: dict[str, list[Path]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    predictor = load_model(path, args)
    references = {k: [read_reference(f) for f in v] for k, v in sets.items()}
    rows = []
    for hop in args.hops:
        val, _, _ = detect_all(predictor, sets["val"], hop)
        params = choose_thresholds(val, references["val"], params=DEFAULTS)
        test, wall, cpu = detect_all(predictor, sets["test"], hop)
        estimates = [extract_events(d.tracks, params, source=d.source) for d in test]
        audio = sum(d.duration for d in test)
        scores = score_events(
            references["test"], estimates, [d.duration for d in test], predictor.classes
        )
        rows.append(
            {
                "model": name,
                "hop": hop,
                "scores": scores,
                "rtf": wall / audio,
                "cpu_rtf": cpu / audio,
                "events": sum(len(e) for e in estimates),
                "references": sum(len(r) for r in references["test"]),
                "thresholds": params.thresholds,
            }
        )
        print(
            f"{name} hop {hop:g}: event F1 {scores.event_f1:.3f}, segment F1 "
            f"{scores.segment_f1:.3f}, RTF {wall / audio:.4f}",
            file=sys.stderr,
        )
    return rows


def _f(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def table(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| model | hop (s) | event F1 | event ER | segment F1 | segment ER | events found / true "
        "| real-time factor (wall) | CPU s per audio s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s: DetectionScores = r["scores"]
        lines.append(
            f"| {r['model']} | {r['hop']:g} | {_f(s.event_f1)} | {_f(s.event_error_rate)} | "
            f"{_f(s.segment_f1)} | {_f(s.segment_error_rate)} | {r['events']} / "
            f"{r['references']} | {r['rtf']:.4f} | {r['cpu_rtf']:.4f} |"
        )
    lines += ["", "Per class (test soundscapes; classes without a true event left out):", ""]
    columns = [f"{r['model']} hop {r['hop']:g}" for r in rows]
    lines.append(
        "| class | true events | "
        + " | ".join(f"{c} event F1 / segment F1" for c in columns)
        + " |"
    )
    lines.append("|---|---:|" + "---:|" * len(rows))
    classes = sorted(rows[0]["scores"].per_class)
    for c in classes:
        n = rows[0]["scores"].per_class[c]["references"]
        if not n:
            continue
        cells = [
            f"{_f(pc['event_f1'])} / {_f(pc['segment_f1'])}"
            for pc in (r["scores"].per_class[c] for r in rows)
        ]
        lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def soundscape_args(p: argparse.ArgumentParser, val: int) -> None:
    """The options of the models and the soundscapes, shared with ``tune_detect.py``."""
    p.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--val", type=int, default=val)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--snr", type=float, nargs=2, default=(6.0, 6.0), metavar=("LOW", "HIGH"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("runs/soundscapes"))
    p.add_argument("--out", type=Path)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    soundscape_args(p, val=20)
    p.add_argument("--test", type=int, default=20)
    p.add_argument("--hops", type=float, nargs="+", default=[0.5, 1.0, 2.5])
    args = p.parse_args()
    models = [m.split("=", 1) for m in args.model]
    load_before = load_average()
    sets = soundscape_sets(args, _config_dir(Path(models[0][1].removesuffix(":one-view"))))
    rows = []
    for name, path in models:
        rows += run_model(name, Path(path), sets, args)
    snr = (
        f"{args.snr[0]:g} dB"
        if args.snr[0] == args.snr[1]
        else f"{args.snr[0]:g}-{args.snr[1]:g} dB"
    )
    header = (
        f"ESC-50 soundscapes: {args.test} test soundscapes from fold {args.fold}'s clips, "
        f"thresholds chosen per model and hop on {args.val} from the validation clips of fold "
        f"{args.fold}'s split; {args.duration:g} s each, 1-4 events at {snr} over pink noise; "
        f"fold-{args.fold} models (trained without fold {args.fold}), {args.threads} thread(s).\n\n"
        f"Machine: {describe(PACKAGES)}; load average before {load_before}, after "
        f"{load_average()}.\n\nCommand: `{command_line(sys.argv)}`"
    )
    text = table(rows, header)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


def _config_dir(model: Path) -> Path:
    """A run directory with ``config.json`` (the split's ``val_fraction`` and ``seed``): the
    model's own, or for a cross-validation ensemble its first member run's."""
    if (model / "config.json").is_file():
        return model
    members = json.loads((model / "ensemble.json").read_text())["members"]
    first = members[0] if isinstance(members[0], str) else members[0]["dir"]
    return member_run_dir(model, first)


if __name__ == "__main__":
    main()
