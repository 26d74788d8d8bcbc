"""The work on a list of files, wherever it runs: a model opened once, the files' windows batched
together, each finished file as a table row. :func:`escnet.batch.label` runs it on this
machine, :mod:`escnet.batch.ray_job`'s actors on a cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from escnet.batch.engine import FileResult, WindowBatcher
from escnet.batch.table import error_row, prediction_row
from escnet.batch.workers import Decoders, InlineDecoder
from escnet.inference import Predictor, load

__all__ = ["drive", "label_files", "open_predictor", "result_row"]


def open_predictor(
    model: str | os.PathLike[str] | Predictor, backend: str = "auto", **options: Any
) -> Predictor:
    """``model`` loaded with :func:`escnet.inference.load`; ``backend="auto"`` is ONNX Runtime
    when the directory holds an exported ``model.onnx``, PyTorch otherwise. A
    :class:`~escnet.inference.Predictor` is used as it is."""
    if isinstance(model, Predictor):
        return model
    if backend == "auto":
        backend = "onnx" if (Path(model) / "model.onnx").is_file() else "torch"
    return load(model, backend=backend, **options)


def result_row(result: FileResult, k: int) -> dict[str, Any]:
    """The table row of a finished file (:func:`escnet.batch.table.prediction_row`, or
    :func:`escnet.batch.table.error_row` for a skipped one)."""
    if result.prediction is None:
        return error_row(result.path, result.error or "")
    return prediction_row(result.prediction, result.path, k)


def label_files(
    predictor: Predictor,
    paths: list[str],
    *,
    window: float | None = None,
    hop: float | None = None,
    aggregate: str = "mean",
    pool: Decoders | None = None,
) -> list[FileResult]:
    """The results of ``paths``, in their order, with their windows batched together: a Ray
    actor's work, and a small job's. Decoded by ``pool`` (kept open for the next call), or in
    this process."""
    batcher = WindowBatcher(predictor, window=window, hop=hop, aggregate=aggregate)
    decoders = pool or InlineDecoder(predictor.sample_rate)
    results = list(drive(batcher, iter(paths), decoders))
    return sorted(results, key=lambda r: r.key)  # keys count up in the order of paths


def drive(batcher: WindowBatcher, files: Iterator[str], pool: Decoders) -> Iterator[FileResult]:
    """Feed ``files`` to ``pool`` and its events to ``batcher``; the files as they finish."""
    key, exhausted = 0, False
    while True:
        while not exhausted and pool.has_room():
            path = next(files, None)
            if path is None:
                exhausted = True
                break
            batcher.start(key, path)
            pool.submit(key, path)
            key += 1
        if exhausted and not pool.busy:
            batcher.flush()
            yield from batcher.results()
            return
        # With windows waiting, only take what is ready: the model never idles on a decoder.
        events = pool.poll(0.0 if batcher.pending else 0.5)
        if not events and batcher.pending:
            batcher.flush()
        for file_key, event in events:
            batcher.handle(file_key, event)
        yield from batcher.results()
