"""Sub-commands that put a trained model to work: predict, export, serve.

``escnet predict --backend onnx`` must not import torch: what this module imports when it loads
(the bounds in :mod:`escnet.inference.limits`) is torch-free, every other import is inside the
function that needs it, and :mod:`escnet.inference` imports torch only for the torch backend.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

from escnet.cli._common import bounded, path_text, seconds, whole_number
from escnet.cli.archive import add_archive_args, archive_requested, run_archive
from escnet.inference.limits import (
    LONG_UPLOAD_SECONDS,
    MAX_BATCH,
    MAX_DURATION_SECONDS,
    MAX_OVERLAP,
    MAX_UPLOAD_MB,
    MAX_WINDOW_SECONDS,
)
from escnet.machine import usable_cores

#: Exit statuses of ``escnet predict`` (documented in its ``--help`` epilog).
PREDICT_EXIT_STATUS = """exit status:
  0    every file was labelled, or some were and the others were skipped (without --strict);
       warnings (a silent recording) do not change it
  1    an unexpected failure (a bug: please report it with its traceback)
  2    a bad argument or model, no file could be labelled, or --strict and a file was skipped
  130  interrupted (Ctrl-C)"""
#: What the scores are, by the head's activation, for the output.
_SCORES = {
    "softmax": "softmax probabilities",
    "sigmoid": "sigmoid scores, multi-label: each label 0-1 on its own",
}


def shown(text: object) -> str:
    """``text`` safe to print on a line of its own: control and formatting characters (a
    newline, ESC, U+202E right-to-left override) escaped as ``\\n``, ``\\x1b``, ``\\u202e``, so
    that a file name can neither split a row nor reorder or recolour the terminal's text. CSV
    and JSON quote such names themselves.

    Examples:
        >>> print(shown("a\\nb\\u202e.wav"))
        a\\nb\\u202e.wav
    """
    out = []
    for c in str(text):
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c == "\\":
            out.append(ascii(c)[1:-1] if c != "\\" else "\\\\")
        else:
            out.append(c)
    return "".join(out)


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from escnet.errors import AudioError, EscnetError
    from escnet.inference import load
    from escnet.inference.stream import find_audio_files

    if archive_requested(args):
        return run_archive(args)
    predictor = load(
        args.model,
        backend=args.backend,
        fold=args.fold,
        threads=args.threads,
        window=args.window,
        hop=args.hop,
        batch_size=args.batch_size,
    )
    files = find_audio_files(args.inputs)
    if not files:
        raise EscnetError(
            f"no audio files in {', '.join(args.inputs)} (looked for the extensions soundfile "
            "reads: wav, flac, ogg, mp3, aiff, ...)"
        )
    if not args.quiet:  # which model labels the files: a run's refitted one, a fold's, ...
        scores = _SCORES[predictor.spec.activation]
        print(
            f"escnet predict: model {predictor.spec.path} ({predictor.spec.name}; {scores})",
            file=sys.stderr,
        )
    writer = _Writer(args.format, args.top_k, predictor.classes)
    skipped: list[tuple[Path, str]] = []
    progress = not args.quiet
    for path in tqdm(files, unit="file", disable=not progress or len(files) < 2, leave=False):
        try:
            prediction = predictor.predict_file(path, aggregate=args.aggregate, progress=progress)
        except AudioError as exc:
            skipped.append((path, exc.reason))
            writer.error(path, exc.reason)
            continue
        for warning in prediction.warnings:
            print(f"escnet predict: warning: {shown(path)}: {warning}", file=sys.stderr)
        writer.write(prediction)
    writer.close()
    for path, reason in skipped:
        print(f"escnet predict: skipped {shown(path)}: {reason}", file=sys.stderr)
    if skipped:
        print(
            f"escnet predict: {len(files) - len(skipped)} of {len(files)} file(s) labelled, "
            f"{len(skipped)} skipped" + (" (--strict: exit status 2)" if args.strict else ""),
            file=sys.stderr,
        )
    return 2 if skipped and (args.strict or len(skipped) == len(files)) else 0


class _Writer:
    """Prints predictions as they come, in one of the output formats; a skipped file is a row
    of its own in the machine-readable ones (json, csv), with its reason in ``error``."""

    CSV_COLUMNS = ("file", "scope", "start", "end", "rank", "label", "probability", "warning")

    def __init__(self, fmt: str, k: int, classes: list[str]) -> None:
        self.fmt = fmt
        self.k = min(k, len(classes))
        self.items: list[dict[str, Any]] = []
        self.csv = None
        if fmt == "csv":
            self.csv = csv.writer(sys.stdout, lineterminator="\n")
            self.csv.writerow([*self.CSV_COLUMNS, "error"])

    def write(self, prediction: Any) -> None:
        summary = prediction.to_dict(self.k)
        if self.fmt == "json":
            self.items.append(summary)
        elif self.csv is not None:
            self._csv_rows(summary)
        elif self.fmt == "labels":
            print(f"{shown(summary['source'])}\t{summary['top_k'][0]['label']}", flush=True)
        else:
            self._table(summary)

    def error(self, path: Path, reason: str) -> None:
        """A file that was skipped: json and csv get a row naming it, with the reason."""
        if self.fmt == "json":
            self.items.append({"source": str(path), "error": reason})
        elif self.csv is not None:
            self.csv.writerow([str(path), "file", "", "", "", "", "", "", reason])

    def _csv_rows(self, s: dict[str, Any]) -> None:
        assert self.csv is not None
        warning = "; ".join(s.get("warnings", []))  # on the file's rows, not each window's
        spans = [("file", 0.0, s["duration"], s["top_k"])]
        spans += [("window", w["start"], w["end"], w["top_k"]) for w in s.get("windows", [])]
        for scope, start, end, top in spans:
            for rank, item in enumerate(top, start=1):
                self.csv.writerow(
                    [s["source"], scope, start, end, rank, item["label"], item["probability"]]
                    + [warning if scope == "file" else "", ""]
                )

    def _table(self, s: dict[str, Any]) -> None:
        windows = s.get("windows", [])

        def labels(top: list[dict[str, Any]]) -> str:
            return "  ".join(f"{t['label']} {t['probability']:.3f}" for t in top)

        note = f", {len(windows)} windows, {s['aggregate']} over windows" if windows else ""
        if s.get("activation") == "sigmoid":
            note += ", sigmoid scores"
        print(f"{shown(s['source'])}  ({s['duration']:.2f} s{note})")
        print(f"  {labels(s['top_k'])}")
        for w in windows:
            print(f"    {w['start']:8.2f} - {w['end']:8.2f} s  {labels(w['top_k'][:1])}")

    def close(self) -> None:
        if self.fmt == "json":
            print(json.dumps(self.items, indent=2))


def cmd_export(args: argparse.Namespace) -> int:
    from escnet.export.onnx import export_model

    options = {"max_accuracy_drop": args.max_accuracy_drop / 100}
    if args.calibration_audio:
        options["calibration_audio"] = args.calibration_audio
    result = export_model(
        args.model,
        args.out,
        fold=args.fold,
        onnx=args.onnx,
        check_audio=args.check_audio,
        check_clips=args.check_clips,
        quantize=args.quantize,
        quantize_options=options,
    )
    print(f"model directory {result.directory} (from {result.source})")
    record = result.onnx
    if record:
        print(
            f"  {record['file']}: waveform (batch, samples) -> {record['output'].split(': ')[1]}; "
            f"onnxruntime vs PyTorch max |diff| {record['max_abs_diff_vs_torch']:.1e}"
        )
        check = record.get("check")
        if check:
            print(
                f"  checked on {check['clips']} clips of {check['audio']}: top-1 equal on "
                f"{check['top1_equal']}, max |diff| {check['max_abs_diff']:.1e}"
            )
        else:
            print("  checked on synthetic waveforms only (no --check-audio, no ESC-50 found)")
        quantized = record.get("quantized")
        if quantized:
            print(f"  int8: {quantized['summary']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from escnet.serve import ServeConfig, serve

    config = ServeConfig(
        max_upload_bytes=int(args.max_upload_mb * 1_000_000),
        max_duration=args.max_duration,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        top_k=args.top_k,
        max_long_uploads=args.max_long_uploads,
        upload_timeout=args.upload_timeout,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
    )
    serve(
        args.model,
        host=args.host,
        port=args.port,
        backend=args.backend,
        fold=args.fold,
        threads=args.threads,
        config=config,
    )
    return 0


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        type=path_text("MODEL"),
        help="a model directory, a run directory (its refitted model RUN/final, else its best "
        "fold), or an ensemble (escnet ensemble's directory, or a refitted one)",
    )
    p.add_argument("--fold", type=int, help="with a run or ensemble directory: this test fold's")


def backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="torch (default) or onnx (onnxruntime only; needs `escnet export --onnx` first, "
        "which takes ensembles too)",
    )
    cores = usable_cores()
    p.add_argument(
        "--threads",
        type=whole_number(1, cores, "the CPU cores this process may use"),
        help=f"CPU threads, at most {cores} here (default: the backend's choice)",
    )


def _export_args(p: argparse.ArgumentParser) -> None:
    """``escnet export``'s options for the graph's check and its int8 version."""
    p.add_argument(
        "--check-audio",
        metavar="DIR",
        help="clips to check the graph on against PyTorch (default: ESC-50 in the data "
        "directory, when there)",
    )
    p.add_argument(
        "--check-clips",
        type=whole_number(0),
        default=100,
        help="how many of them, first by name (100; 0: synthetic waveforms only)",
    )
    p.add_argument(
        "--quantize",
        action="store_true",
        help="int8 graph (onnxruntime static quantisation, calibrated on training clips); "
        "refused when it loses more accuracy than --max-accuracy-drop",
    )
    p.add_argument(
        "--calibration-audio",
        metavar="DIR",
        help="--quantize: training clips to calibrate on (default: the model's own training "
        "folds, from its training configuration)",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=bounded(100.0, "percentage points", zero=True),
        default=0.5,
        help="--quantize: the most accuracy, in percentage points, the int8 graph may lose (0.5)",
    )


def inputs_arg(p: argparse.ArgumentParser, nargs: str = "+") -> None:
    """The audio to process: files, or folders searched recursively (``predict``, ``detect``)."""
    p.add_argument(
        "inputs",
        nargs=nargs,
        type=path_text("FILE|DIR"),
        metavar="FILE|DIR",
        help="files, or folders (recursive)",
    )


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``escnet`` parser."""
    p = sub.add_parser(
        "predict",
        help="label audio files with a trained model",
        epilog=PREDICT_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(p)
    inputs_arg(p, nargs="*")  # none with --files-from
    p.add_argument(
        "--top-k", type=whole_number(1), default=5, help="labels per file and window (5)"
    )
    p.add_argument(
        "--format",
        choices=("table", "json", "csv", "labels"),
        default="table",
        help="table (default); json or csv (a skipped file is a row with its error); labels: "
        "one line per labelled file, FILE<tab>LABEL",
    )
    p.add_argument(
        "--window",
        type=seconds(MAX_WINDOW_SECONDS),
        help="window in seconds (default: the clip length)",
    )
    p.add_argument(
        "--hop",
        type=seconds(MAX_WINDOW_SECONDS),
        help=f"hop between windows in s (default: window / 2; at least window / {MAX_OVERLAP})",
    )
    p.add_argument(
        "--aggregate",
        choices=("mean", "max"),
        default="mean",
        help="file probabilities from its windows' (mean)",
    )
    p.add_argument(
        "--batch-size",
        type=whole_number(1, MAX_BATCH),
        help="windows per model call (default: torch 8, onnx 1)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 2 when any file was skipped (default: only when all were)",
    )
    backend_args(p)
    add_archive_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a self-contained model directory, optionally ONNX")
    model_args(p)
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument(
        "--onnx",
        action="store_true",
        help="also model.onnx: waveform -> probabilities with the front end in the graph "
        "(an ensemble: all its members in one graph)",
    )
    _export_args(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="an HTTP service and web page for a trained model")
    model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=whole_number(0, 65535), default=8000, help="port (8000)")
    p.add_argument("--top-k", type=whole_number(1), default=5, help="labels per answer (5)")
    p.add_argument(
        "--max-upload-mb",
        type=bounded(MAX_UPLOAD_MB, "a number of MB"),
        default=20.0,
        help="upload limit in MB (20)",
    )
    p.add_argument(
        "--max-duration",
        type=seconds(MAX_DURATION_SECONDS),
        default=600.0,
        help="longest accepted recording in seconds (600)",
    )
    p.add_argument(
        "--max-batch",
        type=whole_number(1, MAX_BATCH),
        default=16,
        help="windows batched into one model call (16; 1 turns batching off)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=bounded(1000.0, "a number of milliseconds", zero=True),
        default=0.0,
        help="how long a batch waits for more requests (0: it takes what is already queued)",
    )
    p.add_argument(
        "--max-long-uploads",
        type=whole_number(1, 64),
        default=2,
        help=f"recordings over {LONG_UPLOAD_SECONDS:g} s labelled at once (2); more are "
        "answered 503 with Retry-After",
    )
    p.add_argument(
        "--upload-timeout",
        type=seconds(3600.0),
        default=60.0,
        help="seconds a client may take to send its upload (60); 408 after",
    )
    p.add_argument(
        "--header-timeout",
        type=seconds(3600.0),
        default=10.0,
        help="seconds a client may take to send a request's headers (10); 408 and closed after",
    )
    p.add_argument(
        "--max-connections",
        type=whole_number(1, 100_000),
        default=100,
        help="connections open at once (100); more are answered 503 and closed",
    )
    backend_args(p)
    p.set_defaults(func=cmd_serve)
