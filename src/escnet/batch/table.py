"""The output table of an archive job: rows appended as files finish, safe to resume.

A :class:`Table` takes rows (dicts keyed by its columns), a group of rows per file, and appends
each group to a CSV file with one ``write`` call as soon as the file is labelled; nothing is held
back, so a killed run keeps every group it wrote. On ``resume`` it reads the file names already
there (as 8-byte hashes: a million names cost 8 MB), drops a last line that a kill cut short, and
:meth:`Table.done` tells the job which files to skip.

A ``.parquet`` output is journalled as CSV beside it (``OUTPUT.journal.csv``) while the job runs
and converted with pyarrow when it ends, because a Parquet file is only readable once its footer
is written: the journal is what survives a kill, and ``resume`` reads it (and a finished Parquet
file, whose rows the next conversion keeps).

The rows of a prediction are made by :func:`prediction_row`; another per-file result (sound
events, say) brings its own columns and rows and uses the same :class:`Table`.
"""

from __future__ import annotations

import array
import csv
import errno
import hashlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from escnet.errors import EscnetError, ParameterError

__all__ = [
    "OutputError",
    "Table",
    "error_row",
    "prediction_columns",
    "prediction_row",
    "prediction_types",
]

#: The suffix of the CSV journal of a Parquet output.
JOURNAL_SUFFIX = ".journal.csv"


class OutputError(EscnetError):
    """The output table cannot be written (a full disk, say); what was written before is kept."""


def prediction_columns(k: int) -> list[str]:
    """The columns of a prediction table with the ``k`` most probable labels per file."""
    ranked = [name for i in range(1, k + 1) for name in (f"label_{i}", f"probability_{i}")]
    return ["file", "duration", "windows", *ranked, "warning", "error"]


def prediction_types(k: int) -> dict[str, str]:
    """The pyarrow type of each column of :func:`prediction_columns` (for Parquet)."""
    types = {"file": "string", "duration": "float64", "windows": "int64"}
    for i in range(1, k + 1):
        types[f"label_{i}"] = "string"
        types[f"probability_{i}"] = "float64"
    return {**types, "warning": "string", "error": "string"}


def prediction_row(prediction: Any, path: str, k: int) -> dict[str, Any]:
    """The row of a labelled file: its duration, window count, ``k`` best labels (probabilities
    rounded to 6 decimals, as every output of ``escnet predict``) and its warnings."""
    summary = prediction.to_dict(k, windows=False)
    row: dict[str, Any] = {
        "file": path,
        "duration": summary["duration"],
        "windows": len(prediction.windows),
    }
    for i, item in enumerate(summary["top_k"], start=1):
        row[f"label_{i}"] = item["label"]
        row[f"probability_{i}"] = item["probability"]
    row["warning"] = "; ".join(summary.get("warnings", []))
    return row


def error_row(path: str, reason: str) -> dict[str, Any]:
    """The row of a skipped file: its name and why (the other cells empty)."""
    return {"file": path, "error": reason}


def cell(value: Any) -> str:
    """A value as the table writes it: ``None`` as an empty cell, everything else ``str``."""
    return "" if value is None else str(value)


def _need_pyarrow(path: Path) -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ParameterError(
            f"--output {path}: a Parquet table needs pyarrow, which is not installed: "
            "pip install 'escnet[parquet]' (or name the output .csv)"
        ) from None


def _key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little"
    )


class Table:
    """An output table that rows are appended to as files finish.

    Args:
        path: ``.csv`` (or any other name: CSV) or ``.parquet``.
        columns: the header; every row is a dict whose missing keys are empty cells.
        types: pyarrow type names per column (``"string"``, ``"float64"``, ``"int64"``), for
            Parquet; default: every column a string.
        resume: continue an existing table (else an existing one is refused).

    Raises:
        ParameterError: naming the output, when it exists without ``resume``, or its columns
            are not ``columns`` (another ``--top-k``, another command).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str],
        *,
        types: Mapping[str, str] | None = None,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.types = dict(types or {})
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.journal = (
            self.path.with_name(self.path.name + JOURNAL_SUFFIX) if self.parquet else self.path
        )
        self.written = 0  # groups written by this run
        self._done = np.zeros(0, np.uint64)
        self._size = 0
        existing = [p for p in {self.path, self.journal} if p.exists()]
        if existing and not resume:
            raise ParameterError(
                f"--output {self.path}: {existing[0]} already exists; pass --resume to continue "
                "it (files already in it are skipped), or remove it"
            )
        if self.parquet:
            _need_pyarrow(self.path)
        keys = array.array("Q")
        if self.parquet and self.path.exists():
            self._read_parquet_names(keys)
        self._fd = self._open_journal(keys)
        self._done = np.sort(np.frombuffer(keys, dtype=np.uint64)) if keys else self._done
        self.resumed = len(self._done)

    def done(self, name: str) -> bool:
        """Whether ``name`` (a file column value) was already in the table when it was opened."""
        if not self._done.size:
            return False
        key = np.uint64(_key(name))
        i = int(np.searchsorted(self._done, key))
        return i < self._done.size and self._done[i] == key

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append one file's rows with one ``write`` call.

        Raises:
            OutputError: naming the output, when it cannot be written (the disk is full); the
                table is cut back to the groups written before, which are kept.
        """
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for row in rows:
            writer.writerow([cell(row.get(c)) for c in self.columns])
        self._append(text.getvalue().encode("utf-8", "surrogateescape"))
        self.written += 1

    def close(self) -> None:
        """Close the table; a Parquet output is written now from its journal (and the rows of
        the Parquet file it resumed), and the journal removed."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if self.parquet:
            self._convert()

    def abandon(self) -> None:
        """Close without converting: an interrupted Parquet job keeps its journal to resume."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            os.ftruncate(self._fd, self._size)  # the rows already there stay whole
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            reason = "the disk is full" if full else (exc.strerror or str(exc))
            raise OutputError(
                f"--output {self.journal}: cannot write ({reason}); the {self.written} file(s) "
                f"written by this run and those before are kept: "
                f"{'free some space' if full else 'fix it'} and run again with --resume"
            ) from None
        self._size += len(data)

    def _open_journal(self, keys: array.array[int]) -> int:
        header = ",".join(self.columns) + "\n"
        fd = os.open(self.journal, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                os.write(fd, header.encode())
                self._size = len(header)
                return fd
            end = self._read_names(fd, header, keys)
            if end < size:  # a line a kill cut short: its file is labelled again
                os.ftruncate(fd, end)
            self._size = end
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _read_names(self, fd: int, header: str, keys: array.array[int]) -> int:
        with open(os.dup(fd), "rb") as f:
            f.seek(0)
            first = f.readline().decode("utf-8", "replace")
            if first != header:
                raise ParameterError(
                    f"--output {self.journal}: its columns ({first.strip()[:200]}) are not this "
                    f"run's ({header.strip()[:200]}); resume with the same options (--top-k), or "
                    "write to a new --output"
                )
            end = len(first.encode())
            for line in f:
                if not line.endswith(b"\n"):
                    break
                end += len(line)
                text = line.decode("utf-8", "surrogateescape")
                name = (
                    next(csv.reader([text]))[0] if text.startswith('"') else text.split(",", 1)[0]
                )
                keys.append(_key(name))
        return end

    def _read_parquet_names(self, keys: array.array[int]) -> None:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path)
        if list(table.schema_arrow.names) != self.columns:
            raise ParameterError(
                f"--output {self.path}: its columns are not this run's; resume with the same "
                "options (--top-k), or write to a new --output"
            )
        for batch in table.iter_batches(columns=["file"]):
            keys.extend(_key(name) for name in batch.column(0).to_pylist())

    def _convert(self) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        schema = pa.schema(
            [(c, pa.type_for_alias(self.types.get(c, "string"))) for c in self.columns]
        )
        options = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=False)
        partial = self.path.with_name(self.path.name + ".partial")
        with pq.ParquetWriter(partial, schema) as out:
            if self.path.exists():  # the rows of the table this run resumed
                for batch in pq.ParquetFile(self.path).iter_batches():
                    out.write_batch(batch)
            reader = pacsv.open_csv(self.journal, convert_options=options)
            for batch in reader:
                out.write_batch(batch)
        os.replace(partial, self.path)
        self.journal.unlink()
