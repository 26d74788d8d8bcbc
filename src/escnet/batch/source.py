"""The files of an archive job, streamed: directory trees, a list file, or standard input.

An archive can hold millions of files, so nothing here builds a list of them: :func:`iter_files`
yields paths as it finds them, and :func:`count_files` walks the same sources once more for the
progress bar's total (a list on standard input cannot be read twice: its total is unknown).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

from escnet.errors import ParameterError
from escnet.inference.stream import audio_extensions

__all__ = ["STDIN", "count_files", "iter_files"]

#: The ``files_from`` value that reads the list from standard input.
STDIN = "-"


def iter_files(
    inputs: Iterable[str | os.PathLike[str]] = (), files_from: str | os.PathLike[str] | None = None
) -> Iterator[str]:
    """Every file of the job, as a path string, in a stable order.

    Args:
        inputs: files (kept whatever their extension: decoding names a file that is not audio)
            and directories, walked recursively for the extensions soundfile reads
            (:func:`escnet.inference.stream.audio_extensions`, any case), sorted per directory.
        files_from: a text file with one path per line (blank lines ignored), or ``"-"`` for
            standard input; its paths are taken as they are, like files named in ``inputs``.

    Raises:
        ParameterError: naming ``files_from`` when it cannot be read.
    """
    extensions = frozenset(audio_extensions())
    for item in inputs:
        if os.path.isdir(item):
            yield from _walk(os.fspath(item), extensions)
        else:
            yield os.fspath(item)
    if files_from is not None:
        yield from _list_lines(files_from)


def count_files(
    inputs: Iterable[str | os.PathLike[str]] = (), files_from: str | os.PathLike[str] | None = None
) -> int | None:
    """How many paths :func:`iter_files` yields for the same arguments, or ``None`` when the
    list comes from standard input (it can be read only once)."""
    if files_from is not None and os.fspath(files_from) == STDIN:
        return None
    return sum(1 for _ in iter_files(inputs, files_from))


def _walk(root: str, extensions: frozenset[str]) -> Iterator[str]:
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()  # os.walk descends in this order: the same order on every run
        for name in sorted(names):
            if os.path.splitext(name)[1].lower() in extensions:
                yield os.path.join(directory, name)


def _list_lines(files_from: str | os.PathLike[str]) -> Iterator[str]:
    if os.fspath(files_from) == STDIN:
        yield from _paths(sys.stdin)
        return
    try:
        with open(files_from, encoding="utf-8") as f:
            yield from _paths(f)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ParameterError(
            f"--files-from {files_from}: cannot read the list ({reason}); pass a UTF-8 text file "
            "with one path per line, or - for standard input"
        ) from None


def _paths(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        path = line.rstrip("\r\n")
        if path.strip():
            yield path
