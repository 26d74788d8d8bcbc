"""Sound events in an archive: :func:`detect` finds the events of every file of a job, resumably.

The job is :func:`escnet.batch.label`'s (:func:`escnet.batch.label.run_job`): worker processes
decode, windows of many files share each model call (:class:`escnet.batch.engine.WindowBatcher`,
here also measuring each file's frame levels), and each finished file is written at once. Its
events are found by :func:`escnet.events.detect.detect_prediction`, the function
:meth:`escnet.inference.Predictor.detect_file` ends with, from the same windows (the model's clip
length every ``hop``) and, by default, the thresholds saved with the model.

Two outputs:

* a table (``format=None``): ``OUTPUT.csv`` or ``OUTPUT.parquet``, one row per event
  (:data:`EVENT_COLUMNS`: ``escnet detect``'s CSV columns, then the file's duration, warning and
  error); a file with no event gets one row with its duration and empty event cells, a skipped
  file one row with its reason, so that every file done is in the table and ``resume`` skips it;
* a directory of files (``format="csv"``, ``"json"``, ``"raven"`` or ``"audacity"``): one per
  recording (:func:`per_file_path`, written atomically, an empty one for a recording without
  events), and the index ``OUTPUT/escnet-detect.csv`` (:data:`INDEX_COLUMNS`), a row appended
  once a recording's file is written: what ``resume`` reads.

Examples:
    >>> from escnet.batch import detect
    >>> summary = detect("runs/esc50/final", ["archive/"], output="events.csv")  # doctest: +SKIP
    >>> summary.events  # doctest: +SKIP
    412
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from escnet.batch.engine import Decoder, FileResult, WindowBatcher, decode_file
from escnet.batch.files import open_predictor
from escnet.batch.label import LabelSummary, local_work, run_job
from escnet.batch.table import OutputError, Table, error_row
from escnet.batch.workers import DEFAULT_TIME_LIMIT
from escnet.errors import ParameterError
from escnet.events.detect import Detection, DetectionParams, detect_prediction
from escnet.events.formats import CSV_COLUMNS, FORMATS, write_events
from escnet.events.thresholds import saved_params
from escnet.inference import Predictor
from escnet.inference.predictor import DETECT_HOP

__all__ = ["EVENT_COLUMNS", "INDEX_COLUMNS", "INDEX_NAME", "SUFFIXES", "detect", "per_file_path"]

#: The columns of an events table.
EVENT_COLUMNS = [*CSV_COLUMNS, "duration", "warning", "error"]
#: The columns of a directory's index: each recording, its file there and its event count.
INDEX_COLUMNS = ["file", "output", "events", "duration", "warning", "error"]
#: The index's name in the output directory.
INDEX_NAME = "escnet-detect.csv"
#: What each format adds to a recording's name.
SUFFIXES = {"csv": ".csv", "json": ".json", "raven": ".selections.txt", "audacity": ".txt"}

_EVENT_TYPES = {"onset": "float64", "offset": "float64", "peak": "float64", "mean": "float64"}


def detect(
    model: str | os.PathLike[str] | Predictor,
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    output: str | os.PathLike[str],
    format: str | None = None,
    files_from: str | os.PathLike[str] | None = None,
    resume: bool = False,
    workers: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
    hop: float = DETECT_HOP,
    params: DetectionParams | None = None,
    batch_size: int | None = None,
    decode_timeout: float = DEFAULT_TIME_LIMIT,
    progress: bool = False,
    decoder: Decoder = decode_file,
) -> LabelSummary:
    """The sound events of every file of ``inputs`` and ``files_from``, into ``output``.

    Args:
        model: as :func:`escnet.batch.label`.
        inputs, files_from, resume, workers, backend, threads, batch_size: as
            :func:`escnet.batch.label`.
        decode_timeout, progress, decoder: as :func:`escnet.batch.label`.
        output: the events table (``format=None``: ``.parquet`` through pyarrow, anything else
            CSV), or the directory of per-recording files (a ``format``).
        format: ``None`` for a table, else one file per recording in this format
            (:data:`escnet.events.formats.FORMATS`).
        hop: seconds between windows of the model's clip length, as
            :meth:`~escnet.inference.Predictor.detect_file`.
        params: thresholds and filters (default: those saved with the model,
            :func:`escnet.events.thresholds.saved_params`).

    Returns:
        what the job did, :attr:`~escnet.batch.label.LabelSummary.events` counting the events.

    Raises:
        ParameterError: a bad argument, an ``output`` that exists without ``resume``.
        OutputError: the output cannot be written (a full disk); what was written is kept.
    """
    if workers is not None and workers < 0:
        raise ParameterError(f"workers must be >= 0, got {workers}")
    if format is not None and format not in FORMATS:
        raise ParameterError(f"format must be one of {', '.join(FORMATS)} or None; got {format!r}")
    predictor = open_predictor(model, backend, threads=threads, batch_size=batch_size)
    predictor.detect_hop_problem(hop, float("inf"))  # a hop no recording can take, at once
    chosen = params if params is not None else saved_params(predictor.spec)
    found = _Finder(predictor, hop, chosen)
    if format is None:
        types = {"duration": "float64", **_EVENT_TYPES}
        table = Table(output, EVENT_COLUMNS, types=types, resume=resume)
        write = found.event_rows
    else:
        directory = Path(output)
        if directory.exists() and not directory.is_dir():
            raise ParameterError(f"--output {directory}: a file; name a directory for --format")
        directory.mkdir(parents=True, exist_ok=True)
        table = Table(directory / INDEX_NAME, INDEX_COLUMNS, resume=resume)
        write = _PerFile(found, directory, format).rows
    summary = LabelSummary(Path(output), already=table.resumed, events=0)
    found.summary = summary
    batcher = WindowBatcher(predictor, window=predictor.window, hop=hop, levels=True)
    work = local_work(batcher, workers, decode_timeout, decoder, summary, write)
    run_job(table, summary, list(inputs), files_from, work, progress=progress)
    return summary


def per_file_path(directory: Path, path: str, format: str) -> Path:
    """Where a recording's events go in ``directory``: its path relative to the current
    directory (one outside it: its absolute path from the root), with :data:`SUFFIXES`' suffix
    added to its whole name (``a/dog.wav`` -> ``DIR/a/dog.wav.txt``), so that two recordings
    never share a file and a resumed job finds the same one."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        relative = os.path.splitdrive(absolute)[1].lstrip("/\\")
    return directory / (relative + SUFFIXES[format])


class _Finder:
    """A finished file's :class:`Detection`, counted in the job's summary."""

    def __init__(self, predictor: Predictor, hop: float, params: DetectionParams) -> None:
        self.predictor, self.hop, self.params = predictor, hop, params
        self.summary: LabelSummary | None = None

    def detection(self, result: FileResult) -> Detection | str:
        """The file's events, or why it has none to give."""
        if result.prediction is None:
            return result.error or "skipped"
        problem = self.predictor.detect_hop_problem(self.hop, result.prediction.duration)
        if problem:
            return problem
        found = detect_prediction(
            result.prediction, self.predictor.window, self.hop, self.params, result.levels
        )
        if self.summary is not None and self.summary.events is not None:
            self.summary.events += len(found.events)
        return found

    def event_rows(self, result: FileResult) -> list[dict[str, Any]]:
        """The file's rows of an events table (one per event; one without event cells)."""
        found = self.detection(result)
        if isinstance(found, str):
            return [error_row(result.path, found)]
        about = {"duration": round(found.duration, 4), "warning": "; ".join(found.warnings)}
        rows = [{**event.to_dict(), **about} for event in found.events]
        return rows or [{"file": result.path, **about}]


class _PerFile:
    """A recording's file in a directory, then its row of the directory's index."""

    def __init__(self, found: _Finder, directory: Path, format: str) -> None:
        self.found, self.directory, self.format = found, directory, format
        self.high = found.predictor.sample_rate / 2

    def rows(self, result: FileResult) -> list[dict[str, Any]]:
        found = self.found.detection(result)
        if isinstance(found, str):
            return [error_row(result.path, found)]
        target = per_file_path(self.directory, result.path, self.format)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_events([found], target, self.format, high_freq=self.high)
        except OSError as exc:
            raise OutputError(
                f"--output {self.directory}: cannot write {target} ({exc.strerror or exc}); the "
                "recordings in its index are kept: fix it and run again with --resume"
            ) from None
        return [
            {
                "file": result.path,
                "output": os.path.relpath(target, self.directory),
                "events": len(found.events),
                "duration": round(found.duration, 4),
                "warning": "; ".join(found.warnings),
            }
        ]
