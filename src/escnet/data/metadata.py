"""Strict reading of data set metadata (CSV files): wrong metadata is refused, never guessed at.

A metadata table decides every clip's label and fold, so a mistake in it gives wrong data
silently: a file listed twice lands in two folds with two labels (a train/test leak), a target of
``5000`` makes 5001 classes, a fold of ``0`` or ``x`` makes a fold nobody asked for. The readers
here refuse such tables with a :class:`~escnet.errors.MetadataError` that names the file, the
line and the column, and says what would be accepted.

Encoding: UTF-8, with or without a byte-order mark. Any other encoding is refused with the reason
(a UTF-16 byte-order mark, or the first byte that is not UTF-8), because guessing one would turn
non-ASCII class or file names into different names.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from escnet.errors import MetadataError

#: Largest fold number a table may use; folds are small numbers (5 for ESC-50, 10 for US8K).
MAX_FOLD = 1000
#: Largest class id a table may use before the gap check (ids must run 0..K-1 anyway).
MAX_CLASS_ID = 100_000

_INTEGER = re.compile(r"[+-]?\d{1,18}")
_OTHER_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass(frozen=True)
class Row:
    """One record of a metadata table, with where it came from for error messages."""

    path: Path
    line: int
    values: dict[str, str]

    def error(self, column: str, problem: str) -> MetadataError:
        """An error naming this row's file, line and ``column``."""
        return MetadataError(self.path, problem, line=self.line, column=column)

    def text(self, column: str) -> str:
        """The column's value, stripped; empty values are refused."""
        value = self.values[column].strip()
        if not value:
            raise self.error(column, "is empty; every row needs a value here")
        return value

    def integer(self, column: str, minimum: int, maximum: int) -> int:
        """The column's value as a whole number in [minimum, maximum]."""
        value = self.text(column)
        if not _INTEGER.fullmatch(value):
            raise self.error(
                column, f"{value!r} is not a whole number (expected {minimum}..{maximum})"
            )
        number = int(value)
        if not minimum <= number <= maximum:
            raise self.error(column, f"{number} is out of range (expected {minimum}..{maximum})")
        return number

    def boolean(self, column: str) -> bool:
        """``True``/``False`` in any letter case."""
        value = self.text(column).lower()
        if value not in ("true", "false"):
            raise self.error(column, f"{self.values[column]!r} is not True or False")
        return value == "true"


def _decode(path: Path, data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    else:
        for bom, name in _OTHER_BOMS:
            if data.startswith(bom):
                raise MetadataError(
                    path,
                    f"is {name} (it starts with a {name} byte-order mark); escnet reads UTF-8: "
                    "save it as UTF-8",
                )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MetadataError(
            path,
            f"is not UTF-8: byte 0x{data[exc.start]:02X} at offset {exc.start} cannot be decoded "
            "(Latin-1 or Windows-1252 perhaps); save it as UTF-8",
            line=line,
        ) from None


def read_rows(path: str | Path, required: Sequence[str]) -> list[Row]:
    """Read a CSV table with a header row; every row must have every ``required`` column.

    Raises:
        MetadataError: the file is missing or unreadable, not UTF-8, has no header, lacks a
            required column, or a row has missing or surplus fields or a NUL byte.
    """
    p = Path(path)
    if p.is_dir():
        raise MetadataError(p, "is a directory, not a CSV file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise MetadataError(p, "metadata file not found") from None
    except OSError as exc:
        raise MetadataError(p, f"cannot be read ({exc.strerror or exc})") from None
    text = _decode(p, data)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MetadataError(p, "holds a NUL byte: it is binary or damaged, not CSV", line=line)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[Row] = []
    try:
        header = next(reader, None)
        if not header:
            raise MetadataError(p, f"is empty; expected a header row with {', '.join(required)}")
        header = [c.strip() for c in header]
        duplicated = sorted({c for c in header if header.count(c) > 1})
        missing = [c for c in required if c not in header]
        if missing or duplicated:
            problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                [f"column(s) {', '.join(duplicated)} appear twice"] if duplicated else []
            )
            raise MetadataError(
                p, f"{'; '.join(problems)}; the header is {','.join(header)}", line=1
            )
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                raise MetadataError(
                    p,
                    f"the row has {len(fields)} field(s) but the header {len(header)}"
                    + (
                        "; quote values that contain commas"
                        if len(fields) > len(header)
                        else f"; {header[len(fields)]!r} and after are missing"
                    ),
                    line=reader.line_num,
                )
            rows.append(Row(p, reader.line_num, dict(zip(header, fields, strict=True))))
    except csv.Error as exc:
        raise MetadataError(p, f"is not valid CSV ({exc})", line=reader.line_num) from None
    return rows


def check_unique(rows: Iterable[Row], column: str, key: Callable[[str], str] = str) -> None:
    """Refuse two rows whose ``column`` has the same ``key`` (e.g. the same file stem): the same
    clip twice would sit in two folds, or carry two labels."""
    first: dict[str, Row] = {}
    for row in rows:
        k = key(row.text(column))
        if k in first:
            raise row.error(
                column,
                f"{row.values[column].strip()!r} is listed twice (also on line "
                f"{first[k].line}); a clip must appear once, or it would be in two folds or "
                "carry two labels",
            )
        first[k] = row


def class_table(
    rows: Iterable[Row], id_column: str, name_column: str
) -> dict[int, tuple[str, Row]]:
    """Class id -> (name, first row) over ``rows``, refusing an id with two names or a name with
    two ids."""
    names: dict[int, tuple[str, Row]] = {}
    ids: dict[str, tuple[int, Row]] = {}
    for row in rows:
        cid = row.integer(id_column, 0, MAX_CLASS_ID)
        name = row.text(name_column)
        if cid in names and names[cid][0] != name:
            raise row.error(
                name_column,
                f"class {cid} is called {name!r} here but {names[cid][0]!r} on line "
                f"{names[cid][1].line}",
            )
        if name in ids and ids[name][0] != cid:
            raise row.error(
                id_column,
                f"class {name!r} has id {cid} here but {ids[name][0]} on line {ids[name][1].line}",
            )
        names.setdefault(cid, (name, row))
        ids.setdefault(name, (cid, row))
    return names


def contiguous_classes(table: dict[int, tuple[str, Row]], id_column: str) -> list[str]:
    """Class names in id order (``table`` from :func:`class_table`); ids must run 0..K-1
    without a gap, or the model would get an output per absent class (a stray id of 5000 would
    make 5001 classes)."""
    if not table:
        return []
    top = max(table)
    absent = top + 1 - len(table)
    if absent:
        gaps = [i for i in range(min(top, 10_000)) if i not in table][:5]
        raise table[top][1].error(
            id_column,
            f"class id {top} leaves {absent} id(s) without a row "
            f"(e.g. {', '.join(map(str, gaps))}); ids must run 0..K-1 without gaps: fix the "
            "id, or remove the rows of the stray class",
        )
    return [table[i][0] for i in range(top + 1)]
