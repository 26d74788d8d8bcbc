"""The HTTP service: a FastAPI app around a :class:`~escnet.inference.Predictor`.

Routes: ``POST /predict`` (an audio upload, multipart field ``file``, or the file itself as the
body), ``POST /detect`` (the same upload: its sound events, :mod:`escnet.events`), ``GET
/health``, ``GET /classes``, ``GET /`` (the web page), ``GET /docs`` (a page of the
routes, served from the package: no CDN, so it works offline), ``GET /openapi.json``, and
``WebSocket /listen`` (a live stream, :mod:`escnet.serve.live`).

Limits answer with a JSON ``{"detail": ...}`` that names the reason: 413 for an upload over
``max_upload_bytes`` (checked on the declared length and again while reading, so a lying client
cannot get past it), 408 for one that takes longer than ``upload_timeout`` to arrive, 422 for a
recording over ``max_duration`` seconds, an empty, truncated or damaged upload or one with NaN
samples, 415 for content that is not audio soundfile can decode, 400 for a malformed multipart
body, 503 with ``Retry-After`` when ``max_long_uploads`` long recordings are already being
labelled. Uploads are held in memory (a multipart form's file too, never spooled to a temporary
file) and decoded window by window (:mod:`escnet.serve.uploads`), so no request writes anything
to disk and a long one costs its bytes, not its decoded length. A client that does not send its
request's headers within ``header_timeout`` is answered 408 and disconnected, and connections
past ``max_connections`` get 503 (:mod:`escnet.serve.connections`).
"""

from __future__ import annotations

import errno
import math
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from escnet.errors import ParameterError
from escnet.events.detect import detect_prediction, track_summary
from escnet.events.thresholds import saved_params
from escnet.events.tracks import FrameLevels
from escnet.inference import Predictor
from escnet.inference.limits import (
    LONG_UPLOAD_SECONDS,
    MAX_BATCH,
    MAX_DURATION_SECONDS,
    MAX_UPLOAD_MB,
    MAX_WINDOW_SECONDS,
)
from escnet.inference.predictor import DETECT_HOP
from escnet.serve.batcher import Batcher
from escnet.serve.connections import bounded_protocol
from escnet.serve.live import LiveConfig, live_router
from escnet.serve.uploads import LongUploads, extract_upload, label_upload, read_body
from escnet.version import __version__

__all__ = ["ServeConfig", "create_app", "listen", "serve"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of the service.

    Attributes:
        max_upload_bytes: largest accepted request body (20 MB).
        max_duration: longest accepted recording in seconds (600; at most an hour).
        max_batch: windows per model call (16); 1 turns batching off.
        max_wait_ms: how long a batch waits for more windows (0: it takes what is queued).
        top_k: labels per answer unless the request asks for another number (5).
        max_long_uploads: recordings over ``long_upload_seconds`` labelled at once (2); more
            are answered 503 with ``Retry-After``.
        long_upload_seconds: what counts as a long recording (60 s).
        upload_timeout: seconds a client may take to send its body (60); 408 after.
        header_timeout: seconds a client may take to send a request's headers (10); after it
            the connection is answered 408 and closed.
        max_connections: connections open at once (100); more are answered 503 and closed.
    """

    max_upload_bytes: int = 20_000_000
    max_duration: float = 600.0
    max_batch: int = 16
    max_wait_ms: float = 0.0
    top_k: int = 5
    max_long_uploads: int = 2
    long_upload_seconds: float = LONG_UPLOAD_SECONDS
    upload_timeout: float = 60.0
    header_timeout: float = 10.0
    max_connections: int = 100

    def __post_init__(self) -> None:
        _check_range("max_upload_bytes", self.max_upload_bytes, 1, MAX_UPLOAD_MB * 1e6)
        _check_range("max_duration", self.max_duration, 0, MAX_DURATION_SECONDS, open_low=True)
        _check_range("max_batch", self.max_batch, 1, MAX_BATCH)
        _check_range("max_wait_ms", self.max_wait_ms, 0, 1000)
        _check_range("top_k", self.top_k, 1, math.inf)
        _check_range("max_long_uploads", self.max_long_uploads, 1, 64)
        _check_range("long_upload_seconds", self.long_upload_seconds, 0, 1e6, open_low=True)
        _check_range("upload_timeout", self.upload_timeout, 0, 3600, open_low=True)
        _check_range("header_timeout", self.header_timeout, 0, 3600, open_low=True)
        _check_range("max_connections", self.max_connections, 1, 100_000)

    def limits(self) -> dict[str, Any]:
        """The limits a client may meet, as ``/health`` reports them."""
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration": self.max_duration,
            "max_long_uploads": self.max_long_uploads,
            "long_upload_seconds": self.long_upload_seconds,
            "upload_timeout": self.upload_timeout,
            "header_timeout": self.header_timeout,
            "max_connections": self.max_connections,
        }


def _check_range(
    name: str, value: float, low: float, high: float, *, open_low: bool = False
) -> None:
    ok = (value > low if open_low else value >= low) and value <= high  # also refuses nan
    if not ok:
        bound = f"({low:g}" if open_low else f"[{low:g}"
        raise ParameterError(f"{name} must be in {bound}, {high:g}], got {value}")


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


def _static(name: str) -> str:
    return resources.files("escnet.serve").joinpath(f"static/{name}").read_text("utf-8")


def create_app(
    predictor: Predictor, config: ServeConfig | None = None, live: LiveConfig | None = None
) -> FastAPI:
    """The service for ``predictor`` (see the module docstring for its routes and limits;
    ``live``: the limits of ``WebSocket /listen``, :mod:`escnet.serve.live`)."""
    cfg = config or ServeConfig()
    batcher = Batcher(predictor.probabilities, cfg.max_batch, cfg.max_wait_ms)
    slots = LongUploads(cfg.max_long_uploads, cfg.long_upload_seconds)
    model = {**predictor.spec.describe(), "backend": predictor.backend_name}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    # FastAPI's own /docs and /redoc load their scripts from a CDN (blank on an offline
    # machine); /docs is a page of this package instead, built from /openapi.json.
    app = FastAPI(
        title="escnet",
        version=__version__,
        description=f"Environmental sound classification with {predictor.spec.name}.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.batcher = batcher

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return _static("index.html")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> str:
        return _static("docs.html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Whether the service is up, which model it runs, its limits, how many long uploads it
        is labelling and how it has batched so far."""
        return {
            "status": "ok",
            "escnet_version": __version__,
            "model": model,
            "limits": cfg.limits(),
            "long_uploads": {"active": slots.active, "refused": slots.refused},
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
        """Label an uploaded recording: top-k classes, windows when it is longer than the
        model's clip, and warnings (a silent recording)."""
        started = time.perf_counter()
        body = await read_body(request, cfg.max_upload_bytes, cfg.upload_timeout)
        data, name = await extract_upload(request, body)
        del body
        received = time.perf_counter()
        prediction = await label_upload(
            predictor,
            batcher,
            data,
            name,
            max_duration=cfg.max_duration,
            slots=slots,
            how=aggregate,
        )
        answer: dict[str, Any] = prediction.to_dict(top_k or cfg.top_k)
        answer["source"] = name
        answer["model"] = model
        answer["timing_ms"] = {
            "upload": round(1000 * (received - started), 2),
            "total": round(1000 * (time.perf_counter() - started), 2),
        }
        return answer

    @app.post("/detect", openapi_extra=_UPLOAD_SCHEMA)
    async def detect(
        request: Request,
        hop: float = Query(DETECT_HOP, gt=0, le=MAX_WINDOW_SECONDS, description="seconds"),
        threshold: float | None = Query(None, ge=0, le=1, description="every class's"),
    ) -> dict[str, Any]:
        """Sound events of an uploaded recording: onset, offset, class, peak and mean score,
        with the score tracks of the classes drawn on the page (see ``escnet detect``)."""
        started = time.perf_counter()
        try:
            predictor.detect_hop_problem(hop, math.inf)
        except ParameterError as exc:
            raise HTTPException(422, f"hop: {exc}") from None
        body = await read_body(request, cfg.max_upload_bytes, cfg.upload_timeout)
        data, name = await extract_upload(request, body)
        del body
        meter = FrameLevels(predictor.sample_rate)
        prediction = await label_upload(
            predictor, batcher, data, name, max_duration=cfg.max_duration, slots=slots,
            hop=hop, meter=meter,
        )  # fmt: skip
        problem = predictor.detect_hop_problem(hop, prediction.duration)
        if problem:
            raise HTTPException(422, f"{name}: {problem}")
        params = saved_params(predictor.spec)
        if threshold is not None:
            params = replace(params, threshold=threshold, thresholds={})
        detection = detect_prediction(prediction, predictor.window, hop, params, meter.levels())
        answer = detection.to_dict()
        answer["source"] = name
        answer["tracks"] = track_summary(detection)
        answer["model"] = model
        answer["timing_ms"] = {"total": round(1000 * (time.perf_counter() - started), 2)}
        return answer

    app.include_router(live_router(predictor, batcher, live))  # WebSocket /listen: Listen button
    return app


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (``port`` 0: a free one), for :func:`serve` to hand
    to uvicorn; binding first means a port in use is refused before any banner or model load.

    Raises:
        ParameterError: naming ``--host`` or ``--port`` and the fix.
    """
    if not 0 <= port <= 65535:
        raise ParameterError(f"--port must be a whole number in 0..65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ParameterError(
            f"--host {host}: not a name or address this machine can listen on ({exc}); pass an "
            "address such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ParameterError(_bind_error(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"--port {port}: {host}:{port} is already in use (another server?); stop it or pick "
            "another port with --port"
        )
    if exc.errno == errno.EACCES:
        return f"--port {port}: permission denied (ports below 1024 need privileges); use 1024+"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this machine; pass 127.0.0.1 or 0.0.0.0"
    return f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})"


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
    """Load ``model`` and serve it with uvicorn until interrupted.

    Raises:
        ParameterError: the address cannot be listened on (in use, not this machine's).
        EscnetError: the model cannot be loaded.
    """
    import uvicorn

    from escnet.inference import load

    sock = listen(host, port)
    try:
        predictor = load(model, backend=backend, fold=fold, threads=threads)
        app = create_app(predictor, config)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(
            f"escnet serve: {predictor.spec.name} from {predictor.spec.path} "
            f"({len(predictor.classes)} classes, {backend}) on http://{shown}:{bound}/"
            "  (API docs: /docs)",
            flush=True,
        )
        cfg = config or ServeConfig()
        protocol = bounded_protocol(cfg.header_timeout, cfg.max_connections)
        uvicorn_config = uvicorn.Config(
            app, host=host, port=bound, log_level=log_level, http=protocol
        )
        server = uvicorn.Server(uvicorn_config)
        server.run(sockets=[sock])
    finally:
        sock.close()
