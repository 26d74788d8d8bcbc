"""``escnet detect``: sound events in long recordings, as CSV, JSON, Raven or Audacity files.

A thin layer over :meth:`escnet.inference.Predictor.detect_file` and :mod:`escnet.events`. Like
``escnet predict``, what this module imports when it loads is torch-free, a file that cannot be
read is skipped and counted, and the exit status says whether any file was skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from escnet.cli._common import finite_number, seconds, whole_number
from escnet.cli.archive import add_archive_args, detect_job_requested, run_detect_job
from escnet.cli.inference import PREDICT_EXIT_STATUS, backend_args, inputs_arg, model_args
from escnet.inference.limits import MAX_BATCH, MAX_WINDOW_SECONDS

#: Where ``--output DIR`` puts the events of each format (Audacity: one file per recording).
_DIR_NAMES = {"csv": "events.csv", "json": "events.json", "raven": "events.selections.txt"}


def _unit(text: str) -> float:
    """An argparse ``type``: a number in [0, 1]."""
    value = finite_number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _decibels(text: str) -> float:
    """An argparse ``type``: a number of dB >= 0."""
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of dB >= 0, got {text!r}")
    return value


def _params(args: argparse.Namespace, predictor: Any) -> Any:
    """The detection options: those saved with the model, overridden by the options given."""
    from dataclasses import replace

    from escnet.events.thresholds import saved_params

    params = saved_params(predictor.spec)
    given = {
        k: getattr(args, k)
        for k in (
            "median_filter",
            "min_duration",
            "max_gap",
            "min_level_db",
            "edge",
            "relative",
            "level_edges",
            "level_margin",
        )
        if getattr(args, k) is not None
    }
    if args.threshold is not None:  # one threshold for every class, in place of saved ones
        given.update(threshold=args.threshold, thresholds={})
    return replace(params, **given)


def _choose(args: argparse.Namespace, predictor: Any, params: Any) -> Any:
    """Thresholds chosen on ``--choose-thresholds DIR`` (recordings with label tracks)."""
    from escnet.errors import EscnetError
    from escnet.events.soundscape import read_reference
    from escnet.events.thresholds import choose_thresholds, save_thresholds
    from escnet.inference.stream import find_audio_files

    files = find_audio_files([args.choose_thresholds])
    if not files:
        raise EscnetError(
            f"--choose-thresholds {args.choose_thresholds}: no audio files there (recordings, "
            "each with a label track NAME.txt of its true events beside it)"
        )
    references = [read_reference(f) for f in files]
    detections = [predictor.detect_file(f, hop=args.hop, params=params) for f in files]
    chosen = choose_thresholds(detections, references, params=params)
    text = ", ".join(f"{c} {t:.2f}" for c, t in sorted(chosen.thresholds.items()))
    print(
        f"escnet detect: thresholds chosen on {len(files)} recording(s) of "
        f"{args.choose_thresholds} at a {args.hop:g}-s hop: {text}; edge {chosen.edge:g}",
        file=sys.stderr,
    )
    if args.save_thresholds:
        where = save_thresholds(
            _model_dir(predictor),
            chosen,
            chosen_on=f"{len(files)} recordings of {Path(args.choose_thresholds).name}",
            hop=args.hop,
        )
        print(f"escnet detect: saved them in {where}", file=sys.stderr)
    return chosen


def _model_dir(predictor: Any) -> Path:
    from escnet.errors import EscnetError
    from escnet.model_dir.layout import MODEL_JSON

    path = predictor.spec.path
    if path is None or not (Path(path) / MODEL_JSON).is_file():
        raise EscnetError(
            f"--save-thresholds: {path} has no {MODEL_JSON} of its own (an ensemble or run "
            "directory); export a model directory first (escnet export MODEL --out DIR) and "
            "choose the thresholds for DIR"
        )
    return Path(path)


def _outputs(args: argparse.Namespace, count: int) -> tuple[Path | None, bool]:
    """(--output as a path, whether it names a directory), checked before any work."""
    from escnet.errors import ParameterError

    if args.output is None:
        if args.format == "audacity" and count > 1:
            raise ParameterError(
                "--format audacity writes one label track per recording: pass --output DIR"
            )
        return None, False
    out = Path(args.output)
    as_dir = out.is_dir() or args.output.endswith(("/", "\\")) or args.format == "audacity"
    if args.format == "audacity" and count == 1 and not out.is_dir() and out.suffix:
        as_dir = False  # one recording: --output may name its label file
    if out.exists() and not out.is_dir() and as_dir:
        raise ParameterError(f"--output {out}: a file; pass a directory for this format")
    return out, as_dir


def _label_file(out: Path, path: Path, used: set[str]) -> Path:
    """DIR/NAME.txt for a recording, NAME made unique among those already written."""
    name, k = path.stem, 1
    while name in used:
        k += 1
        name = f"{path.stem}-{k}"
    used.add(name)
    return out / f"{name}.txt"


def cmd_detect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from escnet.errors import AudioError, EscnetError
    from escnet.events.formats import WRITERS, write_events
    from escnet.inference import load
    from escnet.inference.stream import find_audio_files

    job = detect_job_requested(args)  # an archive job: checked before the model loads
    predictor = load(
        args.model,
        backend=args.backend,
        fold=args.fold,
        threads=args.threads,
        batch_size=args.batch_size,
    )
    params = _params(args, predictor)
    if args.save_thresholds and not args.choose_thresholds:
        raise EscnetError("--save-thresholds saves what --choose-thresholds DIR chose: pass both")
    if args.choose_thresholds:
        params = _choose(args, predictor, params)
    if job:
        return run_detect_job(args, predictor, params)
    files = find_audio_files(args.inputs)
    if not files:
        raise EscnetError(
            f"no audio files in {', '.join(args.inputs)} (looked for the extensions soundfile "
            "reads: wav, flac, ogg, mp3, aiff, ...)"
        )
    out, as_dir = _outputs(args, len(files))
    high = predictor.sample_rate / 2
    detections: list[Any] = []
    skipped: list[tuple[Path, str]] = []
    used: set[str] = set()
    progress = not args.quiet
    for path in tqdm(files, unit="file", disable=not progress or len(files) < 2, leave=False):
        try:
            detection = predictor.detect_file(path, hop=args.hop, params=params, progress=progress)
            if args.plot:
                from escnet.events.plot import plot_detection

                plot_detection(detection, Path(args.plot) / f"{path.stem}.png")
        except AudioError as exc:
            skipped.append((path, exc.reason))
            continue
        for warning in detection.warnings:
            print(f"escnet detect: warning: {path}: {warning}", file=sys.stderr)
        if args.format == "audacity" and out is not None:
            target = _label_file(out, path, used) if as_dir else out
            write_events([detection], target, "audacity")
        detections.append(detection)
    if args.format != "audacity" or out is None:
        if out is None:
            if detections:
                sys.stdout.write(WRITERS[args.format](detections, high_freq=high))
        else:
            write_events(detections, out / _DIR_NAMES[args.format] if as_dir else out,
                         args.format, high_freq=high)  # fmt: skip
    return _report(files, skipped, detections, args.strict)


def _report(
    files: list[Path], skipped: list[tuple[Path, str]], detections: list[Any], strict: bool
) -> int:
    for path, reason in skipped:
        print(f"escnet detect: skipped {path}: {reason}", file=sys.stderr)
    events = sum(len(d.events) for d in detections)
    print(
        f"escnet detect: {events} event(s) in {len(detections)} of {len(files)} file(s)"
        + (f", {len(skipped)} skipped" if skipped else "")
        + (" (--strict: exit status 2)" if skipped and strict else ""),
        file=sys.stderr,
    )
    return 2 if skipped and (strict or len(skipped) == len(files)) else 0


def register(sub: Any) -> None:
    """Add ``escnet detect`` to the ``escnet`` parser."""
    p = sub.add_parser(
        "detect",
        help="sound events (onset, offset, class) in recordings of any length",
        epilog=PREDICT_EXIT_STATUS.replace("labelled", "processed"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(p)
    inputs_arg(p, nargs="*")  # none with --files-from
    p.add_argument(
        "--hop",
        type=seconds(MAX_WINDOW_SECONDS),
        default=1.0,
        help="seconds between windows of the model's clip length (1; at most the window and "
        "the recording)",
    )
    p.add_argument(
        "--format",
        choices=("csv", "json", "raven", "audacity"),
        default="csv",
        help="csv (default), json, raven (one Raven Pro selection table for all files), "
        "audacity (a label track per file)",
    )
    p.add_argument(
        "--output",
        metavar="FILE|DIR",
        help="where to write (default: standard output); a directory gets events.csv, "
        "events.json, events.selections.txt or one NAME.txt per recording",
    )
    p.add_argument("--plot", metavar="DIR", help="also a PNG per recording in DIR")
    p.add_argument(
        "--threshold",
        type=_unit,
        help="score a frame needs, every class (default: the thresholds saved with the model, "
        "else 0.5)",
    )
    p.add_argument(
        "--median-filter",
        type=seconds(60.0, zero=True),
        help="median filter on the score tracks in s (1; 0: none)",
    )
    p.add_argument(
        "--min-duration",
        type=seconds(3600.0, zero=True),
        help="shortest run of a score track kept, in s (0.5)",
    )
    p.add_argument(
        "--max-gap",
        type=seconds(3600.0, zero=True),
        help="shorter gaps between events of a class are closed, s (1)",
    )
    p.add_argument(
        "--min-level-db",
        type=finite_number,
        help="quieter frames (RMS dBFS) are silence and get no events (-60)",
    )
    p.add_argument(
        "--edge",
        type=_unit,
        help="event edges where its score reaches this share of its peak (0: at the threshold)",
    )
    p.add_argument(
        "--level-edges",
        type=_decibels,
        metavar="DB",
        help="event edges where the sound is this many dB over the background's level, and "
        "no event without such a sound (2; 0: the score tracks' edges, see --edge); recordings "
        "of 30 s or more",
    )
    p.add_argument(
        "--level-margin",
        type=seconds(60.0, zero=True),
        help="how far around the scores' run its sound is looked for, s (1)",
    )
    p.add_argument(
        "--relative",
        action="store_true",
        default=None,
        help="thresholds apply to each score track minus its median over the recording (a "
        "steady background the model names sits at 0)",
    )
    p.add_argument(
        "--choose-thresholds",
        metavar="DIR",
        help="first choose per-class thresholds on the recordings in DIR (each with its true "
        "events as an Audacity label track NAME.txt beside it, as escnet's soundscapes have)",
    )
    p.add_argument(
        "--save-thresholds",
        action="store_true",
        help="with --choose-thresholds: save them in the model directory's model.json",
    )
    p.add_argument(
        "--batch-size",
        type=whole_number(1, MAX_BATCH),
        help="windows per model call (default: torch 8, onnx 1)",
    )
    p.add_argument(
        "--strict", action="store_true", help="exit with status 2 when any file was skipped"
    )
    backend_args(p)
    add_archive_args(p, detect=True)
    p.set_defaults(func=cmd_detect)
