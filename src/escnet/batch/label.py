"""Label an archive: :func:`label` runs a model over every file of a job into a table.

On one machine, worker processes decode (:class:`escnet.batch.workers.DecoderPool`) while this
process classifies windows of many files per model call (:class:`escnet.batch.engine.
WindowBatcher`) and appends each finished file's row to the table (:class:`escnet.batch.table.
Table`). With ``ray``, the same per-file work runs in Ray actors across machines
(:mod:`escnet.batch.ray_job`) and this process only writes the table.

Examples:
    >>> from escnet.batch import label
    >>> summary = label("runs/esc50/final", ["archive/"], output="labels.csv")  # doctest: +SKIP
    >>> summary.labelled, summary.files_per_second  # doctest: +SKIP
    (200, 41.7)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from escnet.batch.engine import Decoder, FileResult, WindowBatcher, decode_file
from escnet.batch.files import drive, open_predictor, result_row
from escnet.batch.source import count_files, iter_files
from escnet.batch.table import (
    Table,
    prediction_columns,
    prediction_types,
)
from escnet.batch.workers import DEFAULT_TIME_LIMIT, DecoderPool, Decoders, InlineDecoder
from escnet.errors import ParameterError
from escnet.inference import Predictor
from escnet.machine import usable_cores

__all__ = ["LabelSummary", "Work", "label", "local_work", "print_summary", "run_job"]

#: The work of a job: the files to do in, each finished file's table rows (at least one, the
#: first saying whether it was skipped) and its length in seconds out, as files finish.
Work = Callable[[Iterator[str]], Iterable[tuple[list[dict[str, Any]], float]]]

#: Skipped files a summary names one by one; the rest are counted (the table has them all).
MAX_NAMED_SKIPS = 1000


@dataclass
class LabelSummary:
    """What a job did.

    Attributes:
        output: the table.
        labelled: files labelled by this run.
        skipped: ``(file, reason)`` of files skipped by this run (the first
            :data:`MAX_NAMED_SKIPS`; :attr:`skip_count` counts them all).
        skip_count: files skipped by this run.
        already: files skipped because the table had them (``resume``).
        warned: labelled files with a warning (silent recordings).
        seconds: wall time of the job.
        audio_seconds: audio labelled, in seconds.
        restarts: decoding workers replaced after a hang or a crash.
        events: sound events found by this run (a detection job; ``None`` for labels).
    """

    output: Path
    labelled: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skip_count: int = 0
    already: int = 0
    warned: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    restarts: int = 0
    events: int | None = None

    @property
    def files_per_second(self) -> float:
        """Files labelled or skipped by this run per second of wall time."""
        return (self.labelled + self.skip_count) / self.seconds if self.seconds else 0.0

    def add(self, row: dict[str, Any], seconds: float) -> None:
        """Count a finished file by its (first) row (a skipped file's has its reason in
        ``error``)."""
        self.audio_seconds += seconds
        if row.get("error"):
            self.skip_count += 1
            if len(self.skipped) < MAX_NAMED_SKIPS:
                self.skipped.append((str(row["file"]), str(row["error"])))
        else:
            self.labelled += 1
            self.warned += bool(row.get("warning"))

    def lines(self) -> list[str]:
        """The summary for a person: counts, speed, and every named skip with its reason."""
        hours = self.audio_seconds / 3600
        out = [
            f"{self.labelled} file(s) labelled, {self.skip_count} skipped"
            + (f", {self.already} already in the table" if self.already else "")
            + f" in {self.seconds:.1f} s ({self.files_per_second:.1f} files/s, "
            f"{hours / max(self.seconds, 1e-9) * 3600:.0f} s of audio per s); table: {self.output}"
        ]
        if self.events is not None:
            out.append(f"{self.events} sound event(s) in the {self.labelled} file(s) labelled")
        if self.warned:
            out.append(f"{self.warned} file(s) with a warning (see the table's warning column)")
        if self.restarts:
            out.append(f"{self.restarts} decoding worker(s) replaced after a hang or a crash")
        out += [f"skipped {path}: {reason}" for path, reason in self.skipped]
        if self.skip_count > len(self.skipped):
            out.append(f"... and {self.skip_count - len(self.skipped)} more (the error column)")
        return out


def label(
    model: str | os.PathLike[str] | Predictor,
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    output: str | os.PathLike[str],
    files_from: str | os.PathLike[str] | None = None,
    resume: bool = False,
    workers: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
    window: float | None = None,
    hop: float | None = None,
    aggregate: str = "mean",
    batch_size: int | None = None,
    top_k: int = 5,
    decode_timeout: float = DEFAULT_TIME_LIMIT,
    progress: bool = False,
    ray: str | None = None,
    ray_actors: int | None = None,
    decoder: Decoder = decode_file,
) -> LabelSummary:
    """Label every file of ``inputs`` and ``files_from`` into the table ``output``.

    Args:
        model: a model, run or ensemble directory (as ``escnet predict``), or a loaded
            :class:`~escnet.inference.Predictor`.
        inputs: files and directories (walked recursively for audio files).
        output: the table: ``.parquet`` (pyarrow), anything else CSV; one row per file
            (:func:`escnet.batch.table.prediction_columns`), in the order files finish.
        files_from: a file listing one path per line, or ``"-"`` for standard input.
        resume: skip the files already in ``output`` and append the others.
        workers: decoding processes (default: the usable cores); 0 decodes in this process.
        backend: ``"auto"`` (ONNX where the directory has ``model.onnx``), ``"torch"``, ``"onnx"``.
        threads, window, hop, aggregate, batch_size: as :func:`escnet.inference.load` and
            :meth:`~escnet.inference.Predictor.predict_file`.
        top_k: labels per row.
        decode_timeout: seconds a decoder may go without producing audio before its file is
            skipped and its worker replaced.
        progress: a progress bar on standard error (files/s, audio hours per s, ETA).
        ray: run on a Ray cluster: its address, or ``"local"`` for Ray's own choice
            (``RAY_ADDRESS``, else a new local instance); needs ``escnet[distributed]``.
        ray_actors: Ray actors, each holding the model once (default: the cluster's CPUs).
        decoder: what decodes one file (a top-level function; tests hang or crash it).

    Returns:
        what the job did; a skipped file is a row with its reason in ``error``, not an error.

    Raises:
        ParameterError: a bad argument, or an ``output`` that exists without ``resume``.
        OutputError: the table cannot be written (a full disk); the rows written are kept.
    """
    if workers is not None and workers < 0:
        raise ParameterError(f"workers must be >= 0, got {workers}")
    if top_k < 1:
        raise ParameterError(f"top_k must be >= 1, got {top_k}")
    options = {"threads": threads, "window": window, "hop": hop, "batch_size": batch_size}
    predictor = open_predictor(model, backend, **options)
    k = min(top_k, len(predictor.classes))
    table = Table(output, prediction_columns(k), types=prediction_types(k), resume=resume)
    summary = LabelSummary(Path(output), already=table.resumed)
    work: Work
    if ray is not None:

        def work(files: Iterator[str]) -> Iterator[tuple[list[dict[str, Any]], float]]:
            from escnet.batch.ray_job import run_on_ray

            rows = run_on_ray(
                list(files), model, address=ray, actors=ray_actors, backend=backend,
                options=options, aggregate=aggregate, top_k=k, decode_timeout=decode_timeout,
                decoder=decoder,
            )  # fmt: skip
            return (([row], seconds) for row, seconds in rows)

    else:
        batcher = WindowBatcher(predictor, window=window, hop=hop, aggregate=aggregate)
        work = local_work(
            batcher, workers, decode_timeout, decoder, summary, lambda r: [result_row(r, k)]
        )
    run_job(table, summary, list(inputs), files_from, work, progress=progress)
    return summary


def run_job(
    table: Table,
    summary: LabelSummary,
    inputs: list[str | os.PathLike[str]],
    files_from: str | os.PathLike[str] | None,
    work: Work,
    *,
    progress: bool = False,
) -> None:
    """The frame of every archive job (``label``, :func:`escnet.batch.detect.detect`): the
    files of ``inputs`` and ``files_from`` not yet in ``table`` go to ``work``, whose rows are
    appended to ``table`` file by file as they come, counted in ``summary``, with a progress
    bar; the table is closed at the end (an interrupted Parquet job keeps its journal)."""
    todo = (p for p in iter_files(inputs, files_from) if not table.done(p))
    total = _remaining(inputs, files_from, table) if progress else None
    bar = tqdm(total=total, unit="file", disable=not progress, dynamic_ncols=True, smoothing=0.1)
    start = time.perf_counter()
    finished = False
    try:
        with bar:
            for rows, seconds in work(todo):
                _record(table, summary, bar, start, rows, seconds)
        finished = True
    finally:
        summary.seconds = time.perf_counter() - start
        if finished:
            table.close()
        else:
            table.abandon()  # a Parquet job keeps its journal for --resume


def local_work(
    batcher: WindowBatcher,
    workers: int | None,
    decode_timeout: float,
    decoder: Decoder,
    summary: LabelSummary,
    rows_of: Callable[[FileResult], list[dict[str, Any]]],
) -> Work:
    """The work of a job on this machine: ``batcher`` fed by ``workers`` decoding processes,
    each finished file turned into its table rows by ``rows_of``."""

    def work(files: Iterator[str]) -> Iterator[tuple[list[dict[str, Any]], float]]:
        for result in _run_local(batcher, files, workers, decode_timeout, decoder, summary):
            yield rows_of(result), result.seconds

    return work


def _remaining(
    inputs: list[str | os.PathLike[str]], files_from: str | os.PathLike[str] | None, table: Table
) -> int | None:
    if not table.resumed:
        return count_files(inputs, files_from)
    if files_from is not None and os.fspath(files_from) == "-":
        return None
    return sum(1 for p in iter_files(inputs, files_from) if not table.done(p))


def _record(
    table: Table,
    summary: LabelSummary,
    bar: tqdm,
    start: float,
    rows: list[dict[str, Any]],
    seconds: float,
) -> None:
    table.write(rows)
    summary.add(rows[0], seconds)
    bar.update(1)
    elapsed = max(time.perf_counter() - start, 1e-9)
    bar.set_postfix_str(
        f"{summary.audio_seconds / 3600 / elapsed:.3f} h audio/s, {summary.skip_count} skipped",
        refresh=False,
    )


def _run_local(
    batcher: WindowBatcher,
    files: Iterator[str],
    workers: int | None,
    time_limit: float,
    decoder: Decoder,
    summary: LabelSummary,
) -> Iterator[FileResult]:
    """The finished files of a job on this machine, as they finish."""
    count = usable_cores() if workers is None else workers
    rate = batcher.predictor.sample_rate
    pool: Decoders = (
        DecoderPool(count, rate, decoder=decoder, time_limit=time_limit)
        if count
        else InlineDecoder(rate, decoder=decoder)
    )
    try:
        yield from drive(batcher, files, pool)
    finally:
        summary.restarts = pool.restarts
        pool.close()


def print_summary(summary: LabelSummary, prefix: str = "escnet predict") -> None:
    """The summary's lines on standard error."""
    for line in summary.lines():
        print(f"{prefix}: {line}", file=sys.stderr)
