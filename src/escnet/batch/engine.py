"""The work of an archive job, apart from its scheduling: decode a file into events, and turn the
events of many files into predictions with batches that mix their windows.

:func:`decode_file` is what a decoding worker runs for one file (in a worker process, in the
job's own process, or in a Ray actor): it yields ``("begin", frames, rate)``, then
``("block", samples)`` at the model's rate (:func:`escnet.inference.stream.iter_blocks`, the same
blocks :meth:`escnet.inference.Predictor.predict_file` reads), then ``("end",)``; or
``("error", reason)`` when the file cannot be used.

:class:`WindowBatcher` takes those events for any number of files at once, in any interleaving,
cuts each file into windows with its own :class:`escnet.inference.StreamLabeller` and fills
each model call with windows of whichever files have them, so that the windows of short files
are batched together; a file is done when its last window is classified. Its memory is that of
the files in flight (a window and a block each) and one batch, however many files the job has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from escnet.errors import AudioError, EscnetError
from escnet.inference import Prediction, Predictor, StreamLabeller
from escnet.inference.stream import iter_blocks, open_audio

__all__ = ["Decoder", "FileResult", "WindowBatcher", "decode_file"]

#: An event of :func:`decode_file`.
Event = tuple[Any, ...]
#: What decodes a file: ``(path, sample_rate) -> events``; a top-level function, so that a
#: worker process can be given it by name.
Decoder = Callable[[str, int], Iterator[Event]]


def decode_file(path: str, sample_rate: int) -> Iterator[Event]:
    """The events of one file at ``sample_rate``; a file that cannot be used ends them with
    ``("error", reason)`` (after some blocks when it is damaged in the middle)."""
    try:
        source = open_audio(path)
        yield ("begin", source.frames, source.sample_rate)
        for block in iter_blocks(source, sample_rate):
            yield ("block", block)
        yield ("end",)
    except AudioError as exc:
        yield ("error", exc.reason)
    except (OSError, RuntimeError, ValueError, MemoryError) as exc:
        # A decoder's own failure on a strange file: the job goes on with the next one.
        yield ("error", f"decoding failed ({type(exc).__name__}: {exc})")


@dataclass
class FileResult:
    """A finished file: its prediction, or why it was skipped.

    Attributes:
        key: the job's number for it.
        path: the file as the job named it.
        prediction: the labels, or ``None`` when skipped.
        error: the reason it was skipped.
        seconds: its length in seconds (0 when unknown).
        levels: its frame levels (:class:`~escnet.events.tracks.FrameLevels`), when the
            batcher measures them (``levels=True``: event detection needs them).
    """

    key: int
    path: str
    prediction: Prediction | None = None
    error: str | None = None
    seconds: float = 0.0
    levels: np.ndarray | None = None


@dataclass
class _File:
    key: int
    path: str
    labeller: StreamLabeller
    seconds: float = 0.0
    waiting: int = 0  # windows in the batch not yet classified
    ended: bool = False
    failed: bool = False


class WindowBatcher:
    """Windows of many files in flight, classified in shared batches (see the module).

    Args:
        predictor: the model; its :attr:`~escnet.inference.Predictor.batch_size` is the number of
            windows per model call.
        window, hop, aggregate: as :meth:`escnet.inference.Predictor.predict_file`.
        levels: also measure each file's frame levels on the way, for
            :func:`escnet.events.detect.detect_prediction` (:attr:`FileResult.levels`).
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
        levels: bool = False,
    ) -> None:
        self.predictor = predictor
        self.window, self.hop, self.aggregate = window, hop, aggregate
        self.levels = levels
        StreamLabeller(predictor, window, hop, aggregate)  # refuses bad values before any file
        self._files: dict[int, _File] = {}
        self._pending: list[tuple[_File, list[int], np.ndarray]] = []
        self._finished: list[FileResult] = []

    @property
    def pending(self) -> int:
        """Windows waiting for a model call."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Files begun and not yet finished."""
        return len(self._files)

    def start(self, key: int, path: str) -> None:
        """A file the job hands to a decoder; its events follow under ``key``."""
        meter = None
        if self.levels:
            # Imported here: a decoding worker imports this module and needs none of it.
            from escnet.events.tracks import FrameLevels

            meter = FrameLevels(self.predictor.sample_rate)
        labeller = StreamLabeller(
            self.predictor, self.window, self.hop, self.aggregate, batch_size=1, meter=meter
        )
        self._files[key] = _File(key, path, labeller)

    def handle(self, key: int, event: Event) -> None:
        """One event of :func:`decode_file` for the file started as ``key``."""
        f = self._files.get(key)
        if f is None or f.failed:
            return  # the rest of a file already skipped (too long, or its decoder timed out)
        kind = event[0]
        if kind == "begin":
            frames, rate = int(event[1]), int(event[2])
            f.seconds = frames / rate
            too_many = self.predictor.check_length(
                int(round(frames * self.predictor.sample_rate / rate)), self.window, self.hop
            )
            if too_many:
                self.fail(key, too_many)
        elif kind == "block":
            try:
                for starts, batch in f.labeller.push(event[1]):
                    self._add(f, starts, batch)
            except EscnetError as exc:
                self.fail(key, str(exc))
        elif kind == "end":
            for starts, batch in f.labeller.finish():
                self._add(f, starts, batch)
            f.ended = True
            self._maybe_done(f)
        elif kind == "error":
            self.fail(key, str(event[1]))
        else:
            raise EscnetError(f"unknown decoder event {kind!r}")

    def fail(self, key: int, reason: str) -> None:
        """Skip the file ``key`` with ``reason``; its windows still in the batch are dropped."""
        f = self._files.pop(key, None)
        if f is None:
            return
        f.failed = True
        self._finished.append(FileResult(key, f.path, error=reason, seconds=f.seconds))

    def flush(self) -> None:
        """Classify the windows waiting, whether or not they fill a batch."""
        while self._pending:
            batch = self._pending[: self.predictor.batch_size]
            del self._pending[: len(batch)]
            live = [(f, starts, w) for f, starts, w in batch if not f.failed]
            if not live:
                continue
            probabilities = self.predictor.probabilities(np.stack([w for _, _, w in live]))
            for (f, starts, _), p in zip(live, probabilities, strict=True):
                f.labeller.record(starts, p[None, :])
                f.waiting -= 1
                self._maybe_done(f)

    def results(self) -> list[FileResult]:
        """The files finished since the last call, labelled or skipped."""
        out, self._finished = self._finished, []
        return out

    def _add(self, f: _File, starts: list[int], batch: np.ndarray) -> None:
        self._pending.append((f, starts, batch[0]))
        f.waiting += 1
        if len(self._pending) >= self.predictor.batch_size:
            self.flush()

    def _maybe_done(self, f: _File) -> None:
        if not f.ended or f.waiting or f.failed:
            return
        del self._files[f.key]
        try:
            prediction = f.labeller.result()
        except EscnetError as exc:  # no samples at all
            self._finished.append(FileResult(f.key, f.path, error=str(exc), seconds=f.seconds))
            return
        prediction.source = f.path
        meter = f.labeller.meter
        levels = None if meter is None else meter.levels()
        done = FileResult(f.key, f.path, prediction, seconds=f.seconds, levels=levels)
        self._finished.append(done)
