"""The archive options of ``escnet predict`` and ``escnet detect``, declared once.

``escnet predict``: ``--output`` and what goes with it run :func:`escnet.batch.label` (worker
processes, a table, ``--resume``, ``--ray``) instead of labelling files one after another to
standard output. ``escnet detect``: ``--files-from``, ``--resume``, ``--workers``,
``--decode-timeout`` or a ``.parquet`` output run :func:`escnet.batch.detect` (the same job,
writing events) instead of detecting file after file and writing them all at the end.

Kept apart from :mod:`escnet.cli.inference` so that the options of the two ways of predicting
stay readable; nothing here imports torch or Ray when it loads.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from escnet.cli._common import seconds, whole_number
from escnet.errors import ParameterError

__all__ = [
    "add_archive_args",
    "archive_requested",
    "detect_job_requested",
    "run_archive",
    "run_detect_job",
]

#: Options of any archive job, by their attribute and their flag.
_JOB = {
    "files_from": "--files-from",
    "resume": "--resume",
    "workers": "--workers",
    "decode_timeout": "--decode-timeout",
}
#: Options that only a job writing a table takes, by their attribute and their flag.
_TABLE_ONLY = {**_JOB, "ray": "--ray", "ray_actors": "--ray-actors"}

_PREDICT_GROUP = (
    "with --output, files are decoded in worker processes and each file's row is appended to a "
    "table as it finishes (one row per file: its top-k labels, or its error)"
)
_DETECT_GROUP = (
    "with any of these (or an --output FILE.parquet), files are decoded in worker processes "
    "and each file's events are written as it finishes: to --output FILE.csv|.parquet, one row "
    "per event (a file without events or skipped: one row, its duration or its error), or with "
    "--output DIR/ or a --format other than csv, one file per recording in DIR (named after its "
    "path) and DIR/escnet-detect.csv, the index --resume reads"
)


def add_archive_args(p: argparse.ArgumentParser, *, detect: bool = False) -> None:
    """Add the archive options to ``escnet predict``'s parser, or (``detect``) those of an
    archive job to ``escnet detect``'s, which has its own ``--output`` and no ``--ray``."""
    from escnet.batch.workers import DEFAULT_TIME_LIMIT

    g = p.add_argument_group("archives", _DETECT_GROUP if detect else _PREDICT_GROUP)
    if not detect:
        g.add_argument(
            "--output",
            metavar="FILE",
            help="the table: FILE.csv, or FILE.parquet (pyarrow); refused if it exists, unless "
            "--resume",
        )
    g.add_argument(
        "--files-from",
        metavar="LIST",
        help="also the paths listed in LIST, one per line; - reads them from standard input",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue --output: skip the files already in it (a killed run loses at most the "
        "files it was decoding)",
    )
    g.add_argument(
        "--workers",
        type=whole_number(0, 256),
        metavar="N",
        help="decoding processes beside the model (default: the usable cores; 0: decode in "
        "the main process)",
    )
    g.add_argument(
        "--decode-timeout",
        type=seconds(86400.0),
        metavar="SECONDS",
        default=None,
        help=f"skip a file whose decoder makes no progress for this many seconds "
        f"({DEFAULT_TIME_LIMIT:g}) and replace its worker",
    )
    if detect:
        return
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on a Ray cluster (ray start --head; needs escnet[distributed]); without "
        "ADDRESS: RAY_ADDRESS, else a Ray instance on this machine",
    )
    g.add_argument(
        "--ray-actors",
        type=whole_number(1, 100_000),
        metavar="N",
        help="--ray: actors holding the model, one CPU each (default: the cluster's CPUs)",
    )


def archive_requested(args: argparse.Namespace) -> bool:
    """Whether ``escnet predict`` was asked for a table (``--output``); an archive option
    without it is refused, naming the option."""
    if args.output is not None:
        return True
    given = [flag for name, flag in _TABLE_ONLY.items() if getattr(args, name) not in (None, False)]
    if given:
        raise ParameterError(f"{', '.join(given)}: only a job with --output FILE takes this")
    if not args.inputs:
        raise ParameterError("no files to label: name files or folders, or --files-from LIST")
    return False


def run_archive(args: argparse.Namespace) -> int:
    """``escnet predict ... --output FILE``: the job, its progress bar and its summary."""
    from escnet.batch.label import label
    from escnet.batch.workers import DEFAULT_TIME_LIMIT

    _need_files(args)
    if args.format != "table":
        raise ParameterError(
            "--format: with --output the table's format is its name's (.csv or .parquet)"
        )
    summary = label(
        args.model,
        args.inputs,
        output=args.output,
        files_from=args.files_from,
        resume=args.resume,
        workers=args.workers,
        backend=args.backend,
        threads=args.threads,
        window=args.window,
        hop=args.hop,
        aggregate=args.aggregate,
        batch_size=args.batch_size,
        top_k=args.top_k,
        decode_timeout=args.decode_timeout or DEFAULT_TIME_LIMIT,
        progress=not args.quiet,
        ray=args.ray,
        ray_actors=args.ray_actors,
    )
    return _finish(args, summary, "escnet predict")


def detect_job_requested(args: argparse.Namespace) -> bool:
    """Whether ``escnet detect`` was asked for an archive job (an option of :data:`_JOB`, or
    a Parquet ``--output``); such a job needs ``--output`` and cannot ``--plot``."""
    given = [flag for name, flag in _JOB.items() if getattr(args, name) not in (None, False)]
    parquet = args.output is not None and args.output.lower().endswith(".parquet")
    if not given and not parquet:
        if not args.inputs:
            raise ParameterError("no files to process: name files or folders")
        return False
    flags = ", ".join(given) or "--output FILE.parquet"
    if args.output is None:
        raise ParameterError(
            f"{flags}: an archive job writes --output FILE.csv|FILE.parquet (a row per event) "
            "or --output DIR/ (a file per recording)"
        )
    if args.plot:
        raise ParameterError(f"--plot: not with an archive job ({flags}); drop one of them")
    return True


def run_detect_job(args: argparse.Namespace, predictor: Any, params: Any) -> int:
    """``escnet detect ... --workers N`` (or another option of :data:`_JOB`): the job with
    ``predictor`` and detection ``params``, its progress bar and its summary."""
    from escnet.batch.events import detect
    from escnet.batch.workers import DEFAULT_TIME_LIMIT

    _need_files(args)
    out = args.output
    per_file = args.format != "csv" or out.endswith(("/", os.sep)) or Path(out).is_dir()
    if per_file and out.lower().endswith(".parquet"):
        raise ParameterError(
            f"--output {out}: a Parquet table holds --format csv's rows; drop --format "
            f"{args.format}, or name a directory for a file per recording"
        )
    summary = detect(
        predictor,
        args.inputs,
        output=out,
        format=args.format if per_file else None,
        files_from=args.files_from,
        resume=args.resume,
        workers=args.workers,
        hop=args.hop,
        params=params,
        decode_timeout=args.decode_timeout or DEFAULT_TIME_LIMIT,
        progress=not args.quiet,
    )
    return _finish(args, summary, "escnet detect")


def _need_files(args: argparse.Namespace) -> None:
    if not args.inputs and args.files_from is None:
        raise ParameterError("no files to process: name files or folders, or --files-from LIST")


def _finish(args: argparse.Namespace, summary: Any, command: str) -> int:
    """Print the summary (only the skips with ``-q``); the exit status of ``escnet predict``
    and ``escnet detect``: 2 when a file was skipped and ``--strict``, or none was done."""
    from escnet.batch.label import print_summary

    if not args.quiet or summary.skip_count:
        print_summary(summary, command)
    done = summary.labelled + summary.already
    if summary.skip_count and (args.strict or not done):
        return 2
    return 0
