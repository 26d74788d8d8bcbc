"""The service: a real uvicorn process on a free loopback port, its limits, and batching."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from _inference_helpers import (  # noqa: E402
    CLASSES,
    Server,
    synth,
    three_segment_signal,
    train_tiny_model,
)
from escnet.serve.batcher import Batcher  # noqa: E402

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
MAX_UPLOAD_MB = 1.5
MAX_DURATION = 30.0


def _wav(samples: np.ndarray, sr: int, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, the server's TMPDIR) of `escnet serve` on the tiny model."""
    root = tmp_path_factory.mktemp("serve")
    model = train_tiny_model(root / "model")
    tmpdir = root / "server-tmp"
    tmpdir.mkdir()
    args = ["--threads", "1", "--max-batch", "16", "--max-wait-ms", "20"]
    args += ["--max-upload-mb", str(MAX_UPLOAD_MB), "--max-duration", str(MAX_DURATION)]
    with Server(model, args, tmpdir, root / "server.log") as running:
        yield running.url, tmpdir


def test_health_classes_page_and_docs(server: tuple[str, Path]) -> None:
    url, _ = server
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok"
    assert health["model"]["name"] == "tiny_test_cnn" and health["model"]["classes"] == 3
    assert health["limits"] == {"max_upload_bytes": 1_500_000, "max_duration": MAX_DURATION}
    assert httpx.get(f"{url}/classes").json() == {"classes": list(CLASSES)}
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="spectrogram"' in page.text and 'id="record"' in page.text
    assert httpx.get(f"{url}/docs").status_code == 200
    assert "/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_predict_labels_uploads(server: tuple[str, Path]) -> None:
    url, _ = server
    rng = np.random.default_rng(9)
    for kind in CLASSES:
        data = _wav(synth(kind, 1.0, 16000, rng), 16000, "FLAC")
        r = httpx.post(f"{url}/predict", files={"file": (f"{kind}.flac", data)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["top_k"][0]["label"] == kind and body["source"] == f"{kind}.flac"
        assert len(body["top_k"]) == 3 and "windows" not in body
        assert body["model"]["name"] == "tiny_test_cnn"
    # The raw file as the body works too, and top_k is honoured.
    raw = _wav(synth("noise", 1.0, 8000, rng), 8000)
    r = httpx.post(f"{url}/predict?top_k=1", content=raw, headers={"content-type": "audio/wav"})
    assert r.status_code == 200 and [t["label"] for t in r.json()["top_k"]] == ["noise"]


def test_long_upload_gets_windows(server: tuple[str, Path]) -> None:
    url, _ = server
    data = _wav(three_segment_signal(8000, 6.0), 8000, "OGG")
    r = httpx.post(f"{url}/predict", files={"file": ("three.ogg", data)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duration"] == pytest.approx(18.0)
    windows = body["windows"]
    assert len(windows) == 35  # 1-s windows every 0.5 s
    assert windows[0]["top_k"][0]["label"] == CLASSES[0]
    assert windows[17]["top_k"][0]["label"] == CLASSES[1]  # 8.5-9.5 s
    assert windows[-1]["top_k"][0]["label"] == CLASSES[2]


def test_limits_answer_4xx_json(server: tuple[str, Path]) -> None:
    url, _ = server
    predict = f"{url}/predict"
    too_big = b"\0" * int(MAX_UPLOAD_MB * 1_000_000 + 10)
    r = httpx.post(predict, files={"file": ("big.wav", too_big)})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(40):
            yield b"\0" * 50_000

    r = httpx.post(predict, content=chunks(), headers={"content-type": "audio/wav"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    long = _wav(np.zeros(int(8000 * (MAX_DURATION + 5)), np.float32) + 0.1, 8000)
    r = httpx.post(predict, files={"file": ("long.wav", long)})
    assert r.status_code == 422 and "30-s limit" in r.json()["detail"]
    r = httpx.post(predict, files={"file": ("notes.txt", b"these are not samples")})
    assert r.status_code == 415 and "not audio" in r.json()["detail"]
    r = httpx.post(predict, files={"file": ("empty.wav", b"")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = httpx.post(predict, files={"other": ("x.wav", b"abc")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = httpx.post(f"{predict}?aggregate=median", files={"file": ("x.wav", long[:5000])})
    assert r.status_code == 422


def test_nothing_is_left_on_disk(server: tuple[str, Path]) -> None:
    url, tmpdir = server
    # Over a megabyte: the multipart parser spools such parts to a temporary file.
    big = _wav(synth("noise", 80.0, 8000, np.random.default_rng(2)) * 0.5, 8000)
    assert 1_000_000 < len(big) < MAX_UPLOAD_MB * 1_000_000
    r = httpx.post(f"{url}/predict", files={"file": ("big.wav", big)})
    assert r.status_code == 422  # 80 s > the duration limit, after a full upload
    small = _wav(synth("low_tone", 1.0, 8000, np.random.default_rng(3)), 8000)
    assert httpx.post(f"{url}/predict", files={"file": ("s.wav", small)}).status_code == 200
    assert list(tmpdir.iterdir()) == []


def test_bounded_load_is_answered_correctly_and_batched(server: tuple[str, Path]) -> None:
    url, _ = server
    rng = np.random.default_rng(4)
    uploads = [(k, _wav(synth(k, 1.0, 8000, rng), 8000)) for k in CLASSES for _ in range(4)]
    before = httpx.get(f"{url}/health").json()["batching"]

    def client(worker: int) -> list[tuple[str, int, str]]:
        results = []
        with httpx.Client(timeout=60) as session:
            for i in range(25):
                kind, data = uploads[(worker * 25 + i) % len(uploads)]
                r = session.post(f"{url}/predict", files={"file": ("c.wav", data)})
                label = r.json()["top_k"][0]["label"] if r.status_code == 200 else r.text
                results.append((kind, r.status_code, label))
        return results

    with ThreadPoolExecutor(8) as pool:
        results = [item for part in pool.map(client, range(8)) for item in part]
    assert len(results) == 200
    assert all(status == 200 for _, status, _ in results), results[:3]
    assert all(kind == label for kind, _, label in results)
    after = httpx.get(f"{url}/health").json()["batching"]
    assert after["windows"] - before["windows"] == 200
    assert after["largest_batch"] > 1  # concurrent requests shared model calls
    assert after["batches"] - before["batches"] < 200


# --------------------------------------------------------------------------------------------
# The batcher alone
# --------------------------------------------------------------------------------------------


def test_batcher_batches_concurrent_callers_and_reports_errors() -> None:
    calls: list[int] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if (batch < 0).any():
            raise RuntimeError("negative window")
        return batch[:, :2] * 2

    async def scenario(max_batch: int) -> list[np.ndarray]:
        batcher = Batcher(fn, max_batch=max_batch, max_wait_ms=50)
        await batcher.start()
        try:
            windows = [np.full((1, 4), i, np.float32) for i in range(10)]
            results = await asyncio.gather(*(batcher.submit(w) for w in windows))
            with pytest.raises(RuntimeError, match="negative"):
                await batcher.submit(np.full((2, 4), -1, np.float32))
            return results
        finally:
            await batcher.stop()

    results = asyncio.run(scenario(max_batch=4))
    assert [float(r[0, 0]) for r in results] == [2.0 * i for i in range(10)]
    assert calls[:3] == [4, 4, 2] and calls[3] == 2
    calls.clear()
    asyncio.run(scenario(max_batch=1))
    assert calls[:10] == [1] * 10


def test_batcher_by_default_takes_what_is_queued_without_waiting() -> None:
    calls: list[int] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch[:, :1]

    async def scenario(max_wait_ms: float | None) -> None:
        default = max_wait_ms is None  # the default wait, whatever it is, must be none
        batcher = Batcher(fn, 4) if default else Batcher(fn, 4, max_wait_ms=max_wait_ms or 0.0)
        await batcher.start()
        try:
            # Ten windows queued before the worker runs: batches of what is queued.
            await asyncio.gather(
                *(batcher.submit(np.full((1, 2), i, np.float32)) for i in range(10))
            )

            async def late() -> np.ndarray:
                await asyncio.sleep(0.01)
                return await batcher.submit(np.ones((1, 2), np.float32))

            # A window and a second one 10 ms later: without a wait the first does not wait
            # for the second; with a 200 ms wait they share one call.
            await asyncio.gather(batcher.submit(np.zeros((1, 2), np.float32)), late())
        finally:
            await batcher.stop()

    asyncio.run(scenario(None))
    assert calls == [4, 4, 2, 1, 1]
    calls.clear()
    asyncio.run(scenario(200.0))
    assert calls == [4, 4, 2, 2]
