"""The service's limits that a slow or greedy client meets: the long-upload slots (exactly the
surplus is refused while the slots are held), the header deadline and the connection bound,
uploads kept in memory (never spooled to disk), and decoding in blocks bounded in samples."""

from __future__ import annotations

import asyncio
import io
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
import escnet  # noqa: E402
from _inference_helpers import free_port, synth, train_tiny_model  # noqa: E402
from escnet.inference import Predictor  # noqa: E402
from escnet.inference.backend import ModelSpec  # noqa: E402
from escnet.serve import ServeConfig, create_app  # noqa: E402

CLASSES = ["a", "b", "c"]


def _flac(seconds: float, sr: int = 8000, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", sr, channels, format="FLAC") as f:
        for _ in range(int(seconds)):
            f.write(np.full((sr, channels), 0.01, np.float32))
    return buffer.getvalue()


def test_while_two_long_uploads_hold_their_slots_exactly_the_others_get_503() -> None:
    """The model blocks until released, so the first two long uploads hold both slots for as
    long as the test wants; the next two must then be refused, each with Retry-After."""
    gate = threading.Event()

    def backend(batch: np.ndarray) -> np.ndarray:
        gate.wait(60)
        return np.full((len(batch), len(CLASSES)), 1 / len(CLASSES), np.float32)

    spec = ModelSpec(name="gated", classes=CLASSES, sample_rate=8000, clip_seconds=1.0)
    app = create_app(Predictor(spec, backend, batch_size=4), ServeConfig(max_long_uploads=2))
    long = _flac(70.0)  # over the 60 s that make an upload long

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response], dict[str, int]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

                def post(i: int) -> asyncio.Task[httpx.Response]:
                    files = {"file": (f"{i}.flac", long)}
                    return asyncio.create_task(client.post("/predict", files=files, timeout=60))

                first = [post(0), post(1)]
                deadline = time.monotonic() + 30
                while (await client.get("/health")).json()["long_uploads"]["active"] < 2:
                    assert time.monotonic() < deadline, "the two uploads never took their slots"
                    await asyncio.sleep(0.05)
                refused = await asyncio.gather(post(2), post(3))
                gate.set()
                held = await asyncio.gather(*first)
                health = (await client.get("/health")).json()["long_uploads"]
        return list(held), list(refused), health

    try:
        held, refused, health = asyncio.run(scenario())
    finally:
        gate.set()
    assert [r.status_code for r in refused] == [503, 503], [r.text for r in refused]
    for r in refused:
        assert r.headers["retry-after"] == "10" and "retry in 10 s" in r.json()["detail"]
    assert [r.status_code for r in held] == [200, 200], [r.text for r in held]
    assert all(r.json()["duration"] == pytest.approx(70.0) for r in held)
    assert health == {"active": 0, "refused": 2}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny") / "model", epochs=1)


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return escnet.load(model_dir)


def test_a_multipart_upload_is_never_spooled_to_disk(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette spools a file part over 1 MB to an anonymous temporary file (nothing shows in
    TMPDIR): every temporary file is refused here, and a 1.3-MB upload is still labelled."""

    def no_disk(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    buffer = io.BytesIO()
    noise = synth("noise", 80.0, 8000, np.random.default_rng(2)) * 0.5
    sf.write(buffer, noise, 8000, format="WAV", subtype="PCM_16")
    assert len(buffer.getvalue()) > 1_100_000
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", files={"file": ("big.wav", buffer.getvalue())})
    assert r.status_code == 200 and r.json()["duration"] == pytest.approx(80.0), r.text


def test_a_many_channel_high_rate_upload_is_decoded_in_bounded_blocks(
    predictor: Predictor,
) -> None:
    """11 s of 8 channels at 384 kHz (a 36-KB FLAC of silence): ten seconds of it at once are
    123 MB of float32; decoded and mixed down in blocks of a million samples, the service's
    peak stays a small part of that (tracemalloc counts numpy's buffers)."""
    upload = _flac(11.0, 384_000, 8)
    with TestClient(create_app(predictor)) as client:
        tracemalloc.start()
        try:
            r = client.post("/predict", files={"file": ("x.flac", upload)})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert r.status_code == 200 and r.json()["duration"] == pytest.approx(11.0), r.text
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"


@pytest.fixture(scope="module")
def bounded_server(predictor: Predictor) -> Iterator[str]:
    """uvicorn with the service's bounded protocol (1-s header deadline, 4 connections), in a
    thread of this process: what :func:`escnet.serve.serve` runs, without a second interpreter
    to start (``test_serve_wires_the_bounds_into_uvicorn`` checks that it passes them)."""
    import uvicorn

    from escnet.serve.connections import bounded_protocol

    port = free_port()
    config = uvicorn.Config(
        create_app(predictor), host="127.0.0.1", port=port, log_level="warning",
        http=bounded_protocol(1.0, 4),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_serve_wires_the_bounds_into_uvicorn(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from escnet.serve import serve

    seen: dict[str, object] = {}

    def run(self: uvicorn.Server, sockets: object = None) -> None:
        seen["http"] = self.config.http

    monkeypatch.setattr(uvicorn.Server, "run", run)
    config = ServeConfig(header_timeout=3.0, max_connections=7)
    serve(model_dir, port=0, threads=1, config=config)
    protocol = seen["http"]
    assert vars(protocol)["header_timeout"] == 3.0
    assert vars(protocol)["max_connections"] == 7


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_slow_headers_are_answered_408_and_closed(bounded_server: str) -> None:
    socks = [_connect(bounded_server) for _ in range(3)]
    try:
        started = time.monotonic()
        for sock in socks:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the headers never end
        answers = [_answer(sock) for sock in socks]  # recv times out after 10 s otherwise
        waited = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers
    assert waited < 8, f"closed after {waited:.1f} s, not after the 1-s header deadline"
    assert httpx.get(f"{bounded_server}/health").status_code == 200


def test_connections_past_the_bound_get_503(bounded_server: str) -> None:
    socks = [_connect(bounded_server) for _ in range(4)]  # the bound: 4 open at once
    try:
        time.sleep(0.3)  # the server has accepted them
        extra = _connect(bounded_server)
        with extra:
            assert _answer(extra).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{bounded_server}/health").status_code == 200  # room again


def test_the_header_deadline_leaves_a_request_whose_headers_came(bounded_server: str) -> None:
    """Headers complete at once, the body over 2 s (past the 1-s header deadline, within the
    upload timeout): answered 200, and a second request on the same connection too."""
    buffer = io.BytesIO()
    sf.write(buffer, synth("noise", 1.0, 8000, np.random.default_rng(4)), 8000, format="WAV")
    body = buffer.getvalue()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with _connect(bounded_server) as sock:
        for _ in range(2):
            sock.sendall(head + body[:100])
            time.sleep(2.0)
            sock.sendall(body[100:])
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            while b'"model"' not in answer:  # the rest of the JSON answer
                answer += sock.recv(65536)
