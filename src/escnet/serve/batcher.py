"""Dynamic batching: windows from concurrent requests share one model call.

Requests put their windows on a queue and wait; one worker takes the first waiting window, then
every window already queued behind it (up to ``max_batch``), and runs the model once on all of
them in a worker thread (so the event loop keeps accepting requests). While a batch runs, new
windows queue up, so under load batches fill by themselves and a lone request never waits for
company. ``max_wait_ms > 0`` makes the first window also wait that long for more: on this
project's 2-core CPU that cost a lone client throughput (``benchmarks/bench_serve.py``: 5 ms of
waiting took ``mn04_as`` on ONNX Runtime from 55.8 to 42.8 requests/s with one client) and
gained nothing under load; it is there for models whose per-window cost falls steeply with the
batch size (accelerators), which it does not on this CPU (``bench_inference.py --batches``).
``max_batch=1`` turns batching off (the reference in ``benchmarks/bench_serve.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from escnet.errors import ParameterError

__all__ = ["Batcher"]

#: Windows (B, samples) -> probabilities (B, classes); runs in the worker thread.
BatchFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Item:
    window: np.ndarray
    future: asyncio.Future[np.ndarray]


class Batcher:
    """Collects windows from concurrent callers into batches for ``fn``.

    Args:
        fn: the model call.
        max_batch: most windows per call (>= 1).
        max_wait_ms: how long the first window of a batch waits for company (0: not at all).

    Use ``await start()`` once inside the event loop and ``await stop()`` at shutdown;
    ``await submit(windows)`` from request handlers.
    """

    def __init__(self, fn: BatchFunction, max_batch: int = 16, max_wait_ms: float = 0.0) -> None:
        if max_batch < 1:
            raise ParameterError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ParameterError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: the model runs one batch at a time, using its own intra-op threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="escnet-model")
        self.batch_sizes: Counter[int] = Counter()

    async def start(self) -> None:
        """Start the worker (inside the running event loop)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        """Stop the worker; windows still queued fail with ``RuntimeError``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the service is shutting down"))
        self._executor.shutdown(wait=False)

    async def submit(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) of ``windows`` (n, samples), batched with others'."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called")
        loop = asyncio.get_running_loop()
        items = [_Item(w, loop.create_future()) for w in windows]
        for item in items:
            self._queue.put_nowait(item)
        return np.stack(await asyncio.gather(*(item.future for item in items)))

    async def _collect(self, queue: asyncio.Queue[_Item]) -> list[_Item]:
        items = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(items) < self.max_batch:
            if not queue.empty():
                items.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return items

    async def _worker(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect(self._queue)
            live = [item for item in items if not item.future.done()]  # callers that gave up
            if not live:
                continue
            batch = np.stack([item.window for item in live])
            try:
                probabilities = await loop.run_in_executor(self._executor, self.fn, batch)
            except Exception as exc:  # the model failed: every caller of this batch hears it
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batch_sizes[len(live)] += 1
            for item, p in zip(live, probabilities, strict=True):
                if not item.future.done():
                    item.future.set_result(p)

    def stats(self) -> dict[str, Any]:
        """Batches run so far: how many, windows in them, and the distribution of their sizes."""
        batches = sum(self.batch_sizes.values())
        windows = sum(size * n for size, n in self.batch_sizes.items())
        return {
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait * 1000.0,
            "batches": batches,
            "windows": windows,
            "mean_batch_size": round(windows / batches, 3) if batches else None,
            "largest_batch": max(self.batch_sizes, default=0),
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
        }
