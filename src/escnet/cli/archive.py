"""``escnet predict``'s archive options: ``--output`` and what goes with it run
:func:`escnet.batch.label` (worker processes, a table, ``--resume``, ``--ray``) instead of
labelling files one after another to standard output.

Kept apart from :mod:`escnet.cli.inference` so that the options of the two ways of predicting
stay readable; nothing here imports torch or Ray when it loads.
"""

from __future__ import annotations

import argparse

from escnet.cli._common import seconds, whole_number
from escnet.errors import ParameterError

__all__ = ["add_archive_args", "archive_requested", "run_archive"]

#: Options that only a job writing a table takes, by their attribute and their flag.
_TABLE_ONLY = {
    "files_from": "--files-from",
    "resume": "--resume",
    "workers": "--workers",
    "decode_timeout": "--decode-timeout",
    "ray": "--ray",
    "ray_actors": "--ray-actors",
}


def add_archive_args(p: argparse.ArgumentParser) -> None:
    """Add the archive options to ``escnet predict``'s parser."""
    from escnet.batch.workers import DEFAULT_TIME_LIMIT

    g = p.add_argument_group(
        "archives",
        "with --output, files are decoded in worker processes and each file's row is appended "
        "to a table as it finishes (one row per file: its top-k labels, or its error)",
    )
    g.add_argument(
        "--output",
        metavar="FILE",
        help="the table: FILE.csv, or FILE.parquet (pyarrow); refused if it exists, unless "
        "--resume",
    )
    g.add_argument(
        "--files-from",
        metavar="LIST",
        help="also label the paths listed in LIST, one per line; - reads them from standard input",
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
    from escnet.batch.label import label, print_summary
    from escnet.batch.workers import DEFAULT_TIME_LIMIT

    if not args.inputs and args.files_from is None:
        raise ParameterError("no files to label: name files or folders, or --files-from LIST")
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
    if not args.quiet or summary.skip_count:
        print_summary(summary)
    done = summary.labelled + summary.already
    if summary.skip_count and (args.strict or not done):
        return 2
    return 0
