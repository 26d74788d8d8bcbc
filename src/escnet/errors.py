"""Exception types. Every message names the file or argument at fault and, where there is one,
the fix."""

from __future__ import annotations

from pathlib import Path


class EscnetError(Exception):
    """Base class of every error escnet raises on purpose."""


class AudioError(EscnetError):
    """An audio file cannot be used: unreadable, empty, silent-by-NaN, zero length, ..."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(EscnetError):
    """A data set is missing, incomplete or laid out in a way escnet does not understand."""


class DownloadError(EscnetError):
    """A download failed, was truncated or did not match its checksum."""


class WeightsError(EscnetError):
    """Pretrained weights are missing, corrupt or do not fit the model."""


class MetadataError(DatasetError):
    """A data set's metadata table (CSV) is unreadable or would give wrong data; the message
    names the file and, where they apply, the line and the column."""

    def __init__(
        self,
        path: str | Path,
        reason: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.column = column
        where = f"{self.path}" + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: " + (f"column {column!r}: " if column else "") + reason)
