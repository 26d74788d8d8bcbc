"""The ``escnet`` command: a thin layer over the Python API, one sub-command per function.

Each module of this package registers the sub-commands of one stage (``register(sub)``) and
holds their ``cmd_*`` functions; :data:`COMMAND_MODULES` lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from escnet.errors import EscnetError

log = logging.getLogger("escnet")

#: Modules of this package that add sub-commands, in the order ``escnet --help`` lists them.
COMMAND_MODULES = ("data", "training", "experiment", "inference")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escnet", description="Environmental sound classification with spectral images."
    )
    parser.add_argument(
        "--data-dir", help="directory holding esc50/, us8k/ (default $ESCNET_DATA_DIR)"
    )
    parser.add_argument(
        "--cache-dir", help="cache directory (default $ESCNET_CACHE_DIR or ~/.cache/escnet)"
    )
    parser.add_argument("--weights-dir", help="pretrained weights (default $ESCNET_WEIGHTS_DIR)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"escnet.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="escnet: %(message)s", stream=sys.stderr)
    if args.weights_dir:
        os.environ["ESCNET_WEIGHTS_DIR"] = str(Path(args.weights_dir).expanduser())
    try:
        return int(args.func(args))
    except (EscnetError, ValueError) as exc:
        print(f"escnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"escnet {args.command}: interrupted; completed work is cached", file=sys.stderr)
        return 130
