"""Exception types. Every message names the file or argument at fault and, where there is one,
the fix."""

from __future__ import annotations

from pathlib import Path


class EscnetError(Exception):
    """Base class of every error escnet raises on purpose."""


class ParameterError(EscnetError, ValueError):
    """An argument has a value escnet cannot use; the message names the argument and the range
    it takes. A :class:`ValueError` too, so code that catches that keeps working (as librosa's
    ``ParameterError`` is)."""


class AudioError(EscnetError):
    """An audio file cannot be used: unreadable, empty, silent-by-NaN, zero length, ..."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAudioError(AudioError):
    """The content is not audio soundfile can decode (text, an image, a corrupt header): the
    service answers 415 for it, 422 for every other :class:`AudioError`."""


class DatasetError(EscnetError):
    """A data set is missing, incomplete or laid out in a way escnet does not understand."""


class DownloadError(EscnetError):
    """A download failed, was truncated or did not match its checksum."""


class ChecksumMismatchError(DownloadError):
    """A downloaded file has the wrong size or sha256; its partial download has been deleted.

    Attributes:
        url: where the file came from.
        quantity: ``"size"`` or ``"sha256"``.
        expected, actual: the two values compared.
    """

    def __init__(self, url: str, quantity: str, expected: str, actual: str) -> None:
        self.url = url
        self.quantity = quantity
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{url}: {quantity} mismatch, expected {expected}, got {actual}; the partial download "
            "was deleted. Run again to retry; if it fails again the file on the server has changed"
        )


class ModelDirError(EscnetError):
    """A model directory that cannot be loaded; the message names the file and the fix."""


class ModelOutputError(EscnetError):
    """A model gave scores that cannot be right (NaN or infinite, or not one per class): the
    model is broken, not the audio; the service answers 500 for it."""


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
