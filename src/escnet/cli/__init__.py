"""The ``escnet`` command: a thin layer over the Python API, one sub-command per function.

Each module of this package registers the sub-commands of one stage (``register(sub)``) and
holds their ``cmd_*`` functions; :data:`COMMAND_MODULES` lists them in help order.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from escnet.errors import EscnetError

log = logging.getLogger("escnet")

#: Modules of this package that add sub-commands, in the order ``escnet --help`` lists them.
COMMAND_MODULES = ("data", "training", "ensemble", "experiment", "inference", "detect", "listen")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other escnet error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The options every sub-command shares. After the sub-command they default to "not given"
    (SUPPRESS), so that ``escnet --data-dir D info`` and ``escnet info --data-dir D`` agree."""
    kw: dict[str, object] = {"default": argparse.SUPPRESS} if after_command else {}
    options: list[tuple[tuple[str, ...], dict[str, object]]] = [
        (("--data-dir",), {"help": "directory holding esc50/, us8k/ (default $ESCNET_DATA_DIR)"}),
        (
            ("--cache-dir",),
            {"help": "cache directory (default $ESCNET_CACHE_DIR or ~/.cache/escnet)"},
        ),
        (("--weights-dir",), {"help": "pretrained weights (default $ESCNET_WEIGHTS_DIR)"}),
        (("-q", "--quiet"), {"action": "store_true", "help": "no progress bars"}),
    ]
    for flags, options_kw in options:
        # A sub-command with an option of that name itself keeps its own.
        with contextlib.suppress(argparse.ArgumentError):
            parser.add_argument(*flags, **options_kw, **kw)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="escnet", description="Environmental sound classification with spectral images."
    )
    _global_options(parser, after_command=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"escnet.cli.{name}").register(sub)
    for command in set(sub.choices.values()):
        _global_options(command, after_command=True)
    return parser


def _check_cache_dir(args: argparse.Namespace) -> None:
    """A cache directory that is a file or not writable fails now, naming where it came from,
    not after minutes of work with a traceback."""
    from escnet.cache import check_writable_dir
    from escnet.settings import CACHE_DIR_ENV

    if args.cache_dir:
        check_writable_dir(args.cache_dir, "--cache-dir")
    elif os.environ.get(CACHE_DIR_ENV) and Path(os.environ[CACHE_DIR_ENV]).expanduser().exists():
        check_writable_dir(os.environ[CACHE_DIR_ENV], f"${CACHE_DIR_ENV}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an option the sub-command does not know is refused by the sub-command's
    own parser, so that the message names it (``escnet predict: error: ...``), not ``escnet``."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = subs.choices.get(getattr(args, "command", None) or "", parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (``escnet models | head``): stop quietly, as Unix tools
    do, with the status a shell gives a process that SIGPIPE ended."""
    # Python would report the pipe again when it flushes stdout at exit: point stdout at
    # /dev/null first.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13  # SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    logging.basicConfig(level=logging.WARNING, format="escnet: %(message)s", stream=sys.stderr)
    if args.weights_dir:
        os.environ["ESCNET_WEIGHTS_DIR"] = str(Path(args.weights_dir).expanduser())
    try:
        _check_cache_dir(args)
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe is found here, not at exit with a traceback
        return status
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (EscnetError, ValueError) as exc:
        print(f"escnet {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The last resort for a file escnet could not read or write: one line naming it.
        where = f"{exc.filename}: " if exc.filename else ""
        reason = _one_line(exc.strerror or str(exc))
        print(f"escnet {args.command}: error: {where}{reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"escnet {args.command}: interrupted; completed work is cached", file=sys.stderr)
        return 130
