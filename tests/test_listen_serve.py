"""The service's live route: WebSocket /listen, in process (FastAPI's test client), and the web
page's Listen button in headless Chromium with a fake microphone playing a known clip."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from escnet.inference import load
from escnet.serve import create_app
from escnet.serve.live import LiveConfig

sys.path.insert(0, str(Path(__file__).parent))
from _inference_helpers import Server, synth, train_tiny_model  # noqa: E402
from test_listen import a_silence_b, pcm16  # noqa: E402
from test_serve_page import _browser  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("live") / "model", epochs=80, padded=True)


@pytest.fixture(scope="module")
def client(model: Path) -> Any:
    with TestClient(create_app(load(model, threads=1))) as c:
        yield c


def session(client: TestClient, query: str, chunks: list[bytes]) -> list[dict[str, Any]]:
    """Send the chunks and ``end``; every message the service answered, up to ``end``."""
    messages = []
    with client.websocket_connect(f"/listen?{query}") as ws:
        messages.append(ws.receive_json())
        for chunk in chunks:
            ws.send_bytes(chunk)
        ws.send_text("end")
        while messages[-1]["type"] != "end":
            messages.append(ws.receive_json())
    return messages


def test_websocket_labels_a_stream_one_event_per_sound(client: TestClient) -> None:
    sr = 16000
    data = pcm16(a_silence_b(sr))
    step = 2 * sr // 10  # 0.1 s per message, as the page sends
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    messages = session(client, f"rate={sr}", chunks)
    ready, *rest, end = messages
    assert ready["type"] == "ready" and ready["rate"] == sr and ready["window"] == 1.0
    assert ready["hop"] == 0.25 and len(ready["classes"]) == 3
    started = [m["label"] for m in rest if m["type"] == "event" and m["offset"] is None]
    ended = [m for m in rest if m["type"] == "event" and m["offset"] is not None]
    assert started == ["low_tone", "high_tone"]
    assert [m["label"] for m in ended] == started
    windows = [m for m in rest if m["type"] == "window"]
    assert any(w["silent"] and w["top_k"] == [] for w in windows)
    assert windows[-1]["top_k"][0]["label"] == "high_tone"
    assert end == {"type": "end", "duration": 8.0, "events": 2}
    health = client.get("/health").json()
    assert health["batching"]["windows"] >= len([w for w in windows if not w["silent"]])


@pytest.mark.parametrize(
    ("query", "chunk", "code", "detail"),
    [
        ("rate=abc", b"", 4400, "needs ?rate=HZ"),
        ("rate=10", b"", 4400, "sample rate must be"),
        ("rate=8000&hop=0.0001", b"", 4400, "hop"),
        ("rate=8000", b"\x00\x01\x02", 4400, "even number of bytes"),
        ("rate=8000", b"\x00" * 2_000_002, 4413, "over the limit"),
    ],
)
def test_websocket_refuses_bad_requests_with_a_reason(
    client: TestClient, query: str, chunk: bytes, code: int, detail: str
) -> None:
    with client.websocket_connect(f"/listen?{query}") as ws:
        first = ws.receive_json()
        if first["type"] == "ready":
            ws.send_bytes(chunk)
            first = ws.receive_json()
        assert first["type"] == "error" and detail in first["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == code


def test_websocket_session_limit(model: Path) -> None:
    app = create_app(load(model, threads=1), live=LiveConfig(max_sessions=1))
    with TestClient(app) as client, client.websocket_connect("/listen?rate=8000") as first:
        assert first.receive_json()["type"] == "ready"
        with client.websocket_connect("/listen?rate=8000") as second:
            refused = second.receive_json()
            assert refused["type"] == "error" and "1 live sessions" in refused["detail"]
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_json()
        assert closed.value.code == 4503


def test_websocket_closes_an_idle_session(model: Path) -> None:
    app = create_app(load(model, threads=1), live=LiveConfig(idle_timeout=0.2))
    with TestClient(app) as client, client.websocket_connect("/listen?rate=8000") as ws:
        assert ws.receive_json()["type"] == "ready"
        refused = ws.receive_json()  # nothing sent
        assert refused == {"type": "error", "detail": "no audio for 0.2 s; reconnect"}
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4408


def test_page_scripts_are_served(client: TestClient) -> None:
    page = client.get("/").text
    assert 'id="listen"' in page and 'src="listen.js"' in page
    for name in ("listen.js", "listen-worklet.js"):
        r = client.get(f"/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "registerProcessor" in client.get("/listen-worklet.js").text
    assert "/listen" not in json.dumps(client.get("/openapi.json").json()["paths"])


@pytest.mark.slow
def test_page_listen_button_shows_the_fake_microphones_class(model: Path, tmp_path: Path) -> None:
    """Chromium's fake microphone plays a high tone: the page shows high_tone within seconds."""
    chromium = _browser()
    from playwright.sync_api import sync_playwright

    clip = tmp_path / "clip.wav"
    rng = np.random.default_rng(5)
    sf.write(clip, synth("high_tone", 4.0, 48000, rng), 48000, subtype="PCM_16")
    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir()
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={clip}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    log = tmp_path / "server.log"
    with Server(model, ["--threads", "1"], tmpdir, log) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.click("#listen")
            page.wait_for_selector("body[data-live=on]", timeout=30_000)
            # "Within a few seconds" of the service saying it listens.
            page.wait_for_function(
                "document.getElementById('live-events').textContent.includes('high_tone')",
                timeout=5_000,
            )
            label = page.text_content("#live-label")
            events = page.locator("#live-events li").all_text_contents()
            status = page.text_content("#live-status")
            page.click("#listen")  # stop: the page sends "end", the service answers and closes
            page.wait_for_function(
                "document.getElementById('live-status').textContent.startsWith('stopped')",
                timeout=30_000,
            )
        finally:
            browser.close()
    assert "listening:" in status, status
    assert label is not None and label.startswith("high_tone")
    # One sound, one line. The fake microphone's first fraction of a second sometimes reaches
    # the windows that still begin in the padding before the stream, and a model may name that
    # fragment for two windows: an event that ends at 0.00 s, where the tone has not begun.
    tone = [e for e in events if "high_tone" in e]
    startup = [e for e in events if e not in tone and e.startswith("0.00 – 0.00 s")]
    assert len(tone) == 1 and len(tone) + len(startup) == len(events), events
