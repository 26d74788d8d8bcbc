"""The HTTP service: a FastAPI app around a :class:`~escnet.inference.Predictor`.

Routes: ``POST /predict`` (an audio upload, multipart field ``file``, or the file itself as the
body), ``GET /health``, ``GET /classes``, ``GET /`` (the web page), ``GET /docs`` (OpenAPI).

Limits answer with a JSON ``{"detail": ...}`` that names the reason: 413 for an upload over
``max_upload_bytes`` (checked on the declared length and again while reading, so a lying client
cannot get past it), 422 for a recording over ``max_duration`` seconds, an empty upload or one
with NaN samples, 415 for content that is not audio soundfile can decode, 400 for a malformed
multipart body. Uploads are held in memory: the body is read into a bounded buffer and parsed
there, and decoding reads from memory, so no request leaves anything on disk.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from escnet.errors import AudioError, ParameterError
from escnet.inference import Predictor
from escnet.inference.stream import read_blocks, resample_blocks, window_starts
from escnet.serve.batcher import Batcher
from escnet.version import __version__

__all__ = ["ServeConfig", "create_app"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of the service.

    Attributes:
        max_upload_bytes: largest accepted request body (20 MB).
        max_duration: longest accepted recording in seconds (600).
        max_batch: windows per model call (16); 1 turns batching off.
        max_wait_ms: how long a batch waits for more windows (0: it takes what is queued).
        top_k: labels per answer unless the request asks for another number (5).
    """

    max_upload_bytes: int = 20_000_000
    max_duration: float = 600.0
    max_batch: int = 16
    max_wait_ms: float = 0.0
    top_k: int = 5

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ParameterError(f"max_upload_bytes must be >= 1, got {self.max_upload_bytes}")
        if not self.max_duration > 0:
            raise ParameterError(f"max_duration must be > 0 seconds, got {self.max_duration}")
        if self.max_batch < 1:
            raise ParameterError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ParameterError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.top_k < 1:
            raise ParameterError(f"top_k must be >= 1, got {self.top_k}")


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {int(declared)} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"upload exceeds the {limit}-byte limit")
    return bytes(body)


async def _extract_upload(request: Request, body: bytes) -> tuple[bytes, str]:
    """The uploaded file's bytes and name, from a multipart form or a raw body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return body, "upload"

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=8).parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "no file in the form: send the audio in a field named 'file'")
        return await upload.read(), upload.filename or "upload"
    finally:
        await form.close()


def _decode(data: bytes, name: str, sample_rate: int, max_duration: float) -> np.ndarray:
    """Mono float32 samples at ``sample_rate``; HTTPException for every unusable upload."""
    if not data:
        raise HTTPException(422, f"{name}: the upload is empty")
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).rsplit(": ", 1)[-1]  # drop "Error opening <BytesIO ...>"
        raise HTTPException(
            415, f"{name}: not audio that soundfile can decode (wav, flac, ogg, mp3, ...): {reason}"
        ) from None
    with f:
        if f.frames > 0 and f.frames / f.samplerate > max_duration:
            raise HTTPException(
                422,
                f"{name}: {f.frames / f.samplerate:.1f} s of audio exceeds the "
                f"{max_duration:g}-s limit",
            )
        limit = int(max_duration * f.samplerate) + 1
        blocks: list[np.ndarray] = []
        read = 0
        try:
            for block in read_blocks(f, Path(name), 1 << 18):
                read += block.size
                if read > limit:  # a header that understated the length
                    raise HTTPException(422, f"{name}: longer than the {max_duration:g}-s limit")
                blocks.append(block)
        except AudioError as exc:
            raise HTTPException(422, f"{name}: {exc.reason}") from None
        if not blocks:
            raise HTTPException(422, f"{name}: the file holds no samples")
        resampled = list(resample_blocks(iter(blocks), f.samplerate, sample_rate))
    return np.concatenate(resampled) if resampled else np.zeros(0, np.float32)


async def _classify(predictor: Predictor, batcher: Batcher, samples: np.ndarray, how: str) -> Any:
    window, hop = predictor.window_samples()
    total = samples.size
    starts = window_starts(total, window, hop)
    chunks = []
    # A chunk at a time: a long upload never holds all its (overlapping) windows at once.
    for i in range(0, len(starts), batcher.max_batch):
        chunk = np.zeros((len(starts[i : i + batcher.max_batch]), window), np.float32)
        for row, start in enumerate(starts[i : i + batcher.max_batch]):
            part = samples[start : start + window]
            chunk[row, : part.size] = part
        chunks.append(await batcher.submit(chunk))
    return predictor.assemble(starts, np.concatenate(chunks), total, window, how)


def _page() -> str:
    return resources.files("escnet.serve").joinpath("static/index.html").read_text("utf-8")


def create_app(predictor: Predictor, config: ServeConfig | None = None) -> FastAPI:
    """The service for ``predictor`` (see the module docstring for its routes and limits)."""
    cfg = config or ServeConfig()
    batcher = Batcher(predictor.probabilities, cfg.max_batch, cfg.max_wait_ms)
    model = {**predictor.spec.describe(), "backend": predictor.backend_name}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="escnet",
        version=__version__,
        description=f"Environmental sound classification with {predictor.spec.name}.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return _page()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Whether the service is up, which model it runs and how it has batched so far."""
        limits = {"max_upload_bytes": cfg.max_upload_bytes, "max_duration": cfg.max_duration}
        return {
            "status": "ok",
            "escnet_version": __version__,
            "model": model,
            "limits": limits,
            "batching": batcher.stats(),
        }

    @app.get("/classes")
    async def classes() -> dict[str, Any]:
        """The class names, in the model's output order."""
        return {"classes": predictor.classes}

    @app.post("/predict", openapi_extra=_UPLOAD_SCHEMA)
    async def predict(
        request: Request,
        top_k: int | None = Query(None, ge=1, description="labels per answer"),
        aggregate: str = Query("mean", pattern="^(mean|max)$", description="over windows"),
    ) -> dict[str, Any]:
        """Label an uploaded recording: top-k classes, and windows when it is longer than the
        model's clip."""
        started = time.perf_counter()
        body = await _read_body(request, cfg.max_upload_bytes)
        data, name = await _extract_upload(request, body)
        del body
        samples = await run_in_threadpool(
            _decode, data, name, predictor.sample_rate, cfg.max_duration
        )
        decoded = time.perf_counter()
        prediction = await _classify(predictor, batcher, samples, aggregate)
        answer: dict[str, Any] = prediction.to_dict(top_k or cfg.top_k)
        answer["source"] = name
        answer["model"] = model
        answer["timing_ms"] = {
            "decode": round(1000 * (decoded - started), 2),
            "total": round(1000 * (time.perf_counter() - started), 2),
        }
        return answer

    return app


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    fold: int | None = None,
    threads: int | None = None,
    config: ServeConfig | None = None,
    log_level: str = "info",
) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted."""
    import uvicorn

    from escnet.inference import load

    predictor = load(model, backend=backend, fold=fold, threads=threads)
    app = create_app(predictor, config)
    print(
        f"escnet serve: {predictor.spec.name} from {predictor.spec.path} "
        f"({len(predictor.classes)} classes, {backend}) on http://{host}:{port}/"
        "  (API docs: /docs)",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
