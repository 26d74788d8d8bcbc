"""Decoding in worker processes, in parallel with inference, with a time limit and restarts.

:class:`DecoderPool` keeps ``workers`` processes, each given up to ``depth`` files at a time
through its own pipe; a worker runs the job's decoder (:func:`escnet.batch.engine.decode_file`)
and sends its events back as it goes. The pipe is the memory bound: a worker waits while its
pipe is full, so a job holds a few blocks per worker however fast decoding runs.

Faults stay with one file: a worker that sends nothing for ``time_limit`` seconds while its pipe
is empty (a decoder hung on a file) is killed, and a worker that dies (a decoder crash) is
noticed; either way the file it was decoding gets an ``("error", reason)`` event, a new worker
starts, and the files queued behind it are handed to the new one. :class:`InlineDecoder` is the
same interface decoding in the caller's process (no time limit: nothing can stop it).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from escnet.batch.engine import Decoder, Event, decode_file
from escnet.errors import ParameterError

__all__ = ["DEFAULT_TIME_LIMIT", "DecoderPool", "Decoders", "InlineDecoder"]

#: Seconds a decoder may go without producing a block (``--decode-timeout``): a 10-s block of
#: any format decodes in well under a second, so this only catches a decoder that hangs.
DEFAULT_TIME_LIMIT = 120.0

#: Messages read from one worker per poll, so that one fast worker cannot starve the others.
_DRAIN = 32


def _serve(conn: Connection, sample_rate: int, decoder: Decoder) -> None:
    """A worker's loop: decode the files it is sent until it is sent ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the job's to handle: it stops us
    while True:
        job = conn.recv()
        if job is None:
            return
        key, path = job
        for event in decoder(path, sample_rate):
            conn.send((key, event))


class _Worker:
    def __init__(self, context: Any, sample_rate: int, decoder: Decoder) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, sample_rate, decoder), daemon=True
        )
        self.process.start()
        child.close()
        self.jobs: deque[tuple[int, str]] = deque()
        self.last = time.monotonic()

    def send(self, key: int, path: str) -> None:
        if not self.jobs:
            self.last = time.monotonic()  # its clock starts with its work
        self.jobs.append((key, path))
        # A worker that has just died (a decoder crash on its previous file) has a broken pipe;
        # the file stays queued here and :meth:`DecoderPool.poll` hands it to the replacement.
        with contextlib.suppress(OSError):
            self.conn.send((key, path))

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class DecoderPool:
    """Worker processes that decode files (see the module).

    Args:
        workers: how many processes.
        sample_rate: the model's rate, which the workers resample to.
        decoder: what a worker runs per file (a top-level function).
        time_limit: seconds without progress after which a worker is stopped.
        depth: files given to a worker at once (one decoding, the others queued).
    """

    def __init__(
        self,
        workers: int,
        sample_rate: int,
        *,
        decoder: Decoder = decode_file,
        time_limit: float = DEFAULT_TIME_LIMIT,
        depth: int = 2,
    ) -> None:
        if workers < 1:
            raise ParameterError(f"workers must be >= 1, got {workers}")
        if not time_limit > 0:
            raise ParameterError(f"time_limit must be > 0 seconds, got {time_limit}")
        # spawn, not fork: the job's process may hold torch's thread pools, which fork breaks.
        self._context = multiprocessing.get_context("spawn")
        self.sample_rate, self.decoder = sample_rate, decoder
        self.time_limit, self.depth = time_limit, depth
        self.restarts = 0
        self._workers = [self._start() for _ in range(workers)]

    def _start(self) -> _Worker:
        return _Worker(self._context, self.sample_rate, self.decoder)

    def has_room(self) -> bool:
        """Whether a worker can take another file now."""
        return any(len(w.jobs) < self.depth for w in self._workers)

    @property
    def busy(self) -> bool:
        """Whether any file is being decoded or queued."""
        return any(w.jobs for w in self._workers)

    def submit(self, key: int, path: str) -> None:
        """Give ``path`` to the least busy worker; its events come back under ``key``."""
        worker = min(self._workers, key=lambda w: len(w.jobs))
        if not worker.jobs and not worker.process.is_alive():
            # Died idle (killed from outside): no file of ours to blame, so just start another.
            worker.stop(kill=True)
            fresh = self._start()
            self._workers[self._workers.index(worker)] = fresh
            self.restarts += 1
            worker = fresh
        worker.send(key, path)

    def poll(self, timeout: float) -> list[tuple[int, Event]]:
        """The events ready now, waiting up to ``timeout`` seconds for the first; a stopped or
        dead worker's file gets its ``("error", reason)`` here."""
        active = {w.conn: w for w in self._workers if w.jobs}
        events: list[tuple[int, Event]] = []
        ready = wait(list(active), timeout) if active else []
        for conn in ready:
            worker = active[conn]
            try:
                for _ in range(_DRAIN):
                    key, event = worker.conn.recv()
                    worker.last = time.monotonic()
                    events.append((key, event))
                    if event[0] in ("end", "error"):
                        worker.jobs.popleft()
                    if not worker.jobs or not worker.conn.poll():
                        break
            except (EOFError, OSError):
                events.append(self._replace(worker, kill=False))
        now = time.monotonic()
        for worker in list(self._workers):
            if not worker.jobs or worker.conn in ready:
                continue
            if not worker.process.is_alive() and not worker.conn.poll():
                events.append(self._replace(worker, kill=False))
            elif now - worker.last > self.time_limit and not worker.conn.poll():
                events.append(self._replace(worker, kill=True))
        return events

    def _replace(self, worker: _Worker, kill: bool) -> tuple[int, Event]:
        """Stop ``worker``, start another with its queued files; the event of its file."""
        key, _ = worker.jobs.popleft()
        if kill:
            reason = (
                f"the decoder made no progress for {self.time_limit:g} s (--decode-timeout): "
                "its worker was stopped and replaced"
            )
        else:
            worker.process.join(timeout=5)
            reason = (
                f"the decoding worker died on it ({_exit(worker.process.exitcode)}); "
                "a new worker took over"
            )
        worker.stop(kill=True)
        fresh = self._start()
        for queued in worker.jobs:
            fresh.send(*queued)
        self._workers[self._workers.index(worker)] = fresh
        self.restarts += 1
        return key, ("error", reason)

    def close(self) -> None:
        """Stop every worker (a file still queued is abandoned)."""
        for worker in self._workers:
            worker.stop(kill=bool(worker.jobs))
        self._workers = []


def _exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class InlineDecoder:
    """The :class:`DecoderPool` interface, decoding in the caller's process, one file at a time
    (``workers=0``: the reference the pool is measured against)."""

    def __init__(self, sample_rate: int, *, decoder: Decoder = decode_file) -> None:
        self.sample_rate, self.decoder = sample_rate, decoder
        self.restarts = 0
        self._jobs: deque[tuple[int, str]] = deque()
        self._current: tuple[int, Iterator[Event]] | None = None

    def has_room(self) -> bool:
        return not self._jobs

    @property
    def busy(self) -> bool:
        return bool(self._jobs) or self._current is not None

    def submit(self, key: int, path: str) -> None:
        self._jobs.append((key, path))

    def poll(self, timeout: float) -> list[tuple[int, Event]]:
        if self._current is None:
            if not self._jobs:
                return []
            key, path = self._jobs.popleft()
            self._current = (key, self.decoder(path, self.sample_rate))
        key, events = self._current
        event = next(events, None)
        if event is None or event[0] in ("end", "error"):
            self._current = None
        return [] if event is None else [(key, event)]

    def close(self) -> None:
        self._jobs.clear()
        self._current = None


#: Either way of decoding a job's files.
Decoders = DecoderPool | InlineDecoder
