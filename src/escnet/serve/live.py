"""The service's live route: ``WebSocket /listen``, a microphone streamed from the web page.

The client opens ``/listen?rate=R`` (``R``: its sample rate in Hz; optional ``hop`` in seconds)
and sends binary messages of raw 16-bit little-endian mono PCM, the format ``escnet listen
--input -`` reads. The service labels them with :class:`escnet.live.Listener`, its windows scored
through the service's batcher together with the uploads' (one model, one queue), and answers
with JSON text messages:

* ``{"type": "ready", "rate", "window", "hop", "classes"}`` once, first;
* ``{"type": "window", "start", "end", "silent", "top_k": [{"label", "probability"}, ...]}``
  for each window (``top_k`` empty for a silent one);
* ``{"type": "event", "label", "onset", "offset", "score"}`` when a sound starts
  (``offset`` null) and when it ends;
* ``{"type": "end", "duration", "events"}`` after the client's text message ``end``, once the
  last window is labelled; the service then closes the connection.

A bad request is answered ``{"type": "error", "detail"}`` and the connection closed with code
4000 + the HTTP status it would have had: 4400 (a bad rate or hop, an odd-length or text message
other than ``end``), 4408 (no message for ``idle_timeout`` seconds: a silent client would hold
a session), 4413 (a message over ``max_message_bytes``), 4503 (``max_sessions`` live sessions
already running).

The page's side is ``static/listen.js`` (the Listen button) and ``static/listen-worklet.js``
(an AudioWorklet that turns the microphone into 16-bit PCM messages).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

from escnet.data.audio import fix_length
from escnet.errors import ParameterError
from escnet.inference import Predictor
from escnet.inference.results import top_k
from escnet.live import Listener, LiveWindow, TrackerConfig, pcm16_to_float
from escnet.serve.batcher import Batcher

__all__ = ["LiveConfig", "live_router"]

#: The page's scripts this router serves, by URL path.
_SCRIPTS = ("listen.js", "listen-worklet.js")


@dataclass(frozen=True)
class LiveConfig:
    """Limits of the live route.

    Attributes:
        max_sessions: live sessions at once (4): each costs a model call per hop.
        max_message_bytes: largest PCM message (1 MB: over 10 s of 48-kHz audio; the page
            sends about 0.1 s at a time).
        top_k: labels per window message (3).
        idle_timeout: seconds the service waits for a client's next message (30).
        tracker: the event rules (thresholds, minimum duration, silence gate).
    """

    max_sessions: int = 4
    max_message_bytes: int = 1_000_000
    top_k: int = 3
    idle_timeout: float = 30.0
    tracker: TrackerConfig = TrackerConfig()

    def __post_init__(self) -> None:
        for name, value, high in (
            ("max_sessions", self.max_sessions, 1024),
            ("max_message_bytes", self.max_message_bytes, 100_000_000),
            ("top_k", self.top_k, 1_000_000),
        ):
            if not 1 <= value <= high:
                raise ParameterError(f"{name} must be in 1..{high}, got {value}")
        if not 0 < self.idle_timeout <= 3600:  # also refuses nan
            raise ParameterError(f"idle_timeout must be in (0, 3600] s, got {self.idle_timeout}")


class _Refused(Exception):
    """A request the route turns down: ``code`` is the WebSocket close code (4000 + HTTP)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def live_router(
    predictor: Predictor, batcher: Batcher, config: LiveConfig | None = None
) -> APIRouter:
    """The ``/listen`` WebSocket and the page's scripts, for :func:`escnet.serve.create_app`."""
    cfg = config or LiveConfig()
    router = APIRouter()
    sessions = {"active": 0}

    for name in _SCRIPTS:
        router.add_api_route(
            f"/{name}", _script_route(name), methods=["GET"], include_in_schema=False
        )

    @router.websocket("/listen")
    async def listen(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            if sessions["active"] >= cfg.max_sessions:
                raise _Refused(
                    4503, f"{cfg.max_sessions} live sessions are running already; try later"
                )
            listener = _listener(predictor, websocket.query_params, cfg.tracker)
            sessions["active"] += 1
            try:
                await _session(websocket, listener, batcher, cfg)
            finally:
                sessions["active"] -= 1
        except _Refused as exc:
            await websocket.send_json({"type": "error", "detail": exc.detail})
            await websocket.close(code=exc.code)
        except WebSocketDisconnect:
            pass  # the page stopped listening

    return router


def _script_route(name: str) -> Any:
    async def script() -> Response:
        text = resources.files("escnet.serve").joinpath(f"static/{name}").read_text("utf-8")
        return Response(text, media_type="text/javascript")

    return script


def _listener(predictor: Predictor, query: Any, tracker: TrackerConfig) -> Listener:
    try:
        rate = int(query.get("rate", ""))
        hop = float(query["hop"]) if "hop" in query else None
    except ValueError:
        raise _Refused(
            4400, "/listen needs ?rate=HZ (a whole number) and optionally &hop=SECONDS"
        ) from None
    try:
        return Listener(predictor, rate, hop=hop, config=tracker)
    except ParameterError as exc:
        raise _Refused(4400, str(exc)) from None


async def _session(
    websocket: WebSocket, listener: Listener, batcher: Batcher, cfg: LiveConfig
) -> None:
    await websocket.send_json(
        {
            "type": "ready",
            "rate": listener.sample_rate,
            "window": listener.window,
            "hop": listener.hop,
            "classes": listener.predictor.classes,
        }
    )
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), cfg.idle_timeout)
        except TimeoutError:
            raise _Refused(4408, f"no audio for {cfg.idle_timeout:g} s; reconnect") from None
        if message["type"] == "websocket.disconnect":
            return
        data, text = message.get("bytes"), message.get("text")
        final = False
        if data is not None:
            if len(data) > cfg.max_message_bytes:
                raise _Refused(4413, f"a message of {len(data)} bytes is over the limit of "
                               f"{cfg.max_message_bytes}; send shorter blocks")  # fmt: skip
            if len(data) % 2:
                raise _Refused(4400, "PCM messages hold 16-bit samples: an even number of bytes")
            windows = listener.push(pcm16_to_float(data))
        elif text == "end":
            windows, final = listener.finish(), True
        else:
            raise _Refused(4400, "send binary 16-bit PCM, or the text message 'end'")
        await _score(windows, listener, batcher)
        events = listener.update(windows) + (listener.close() if final else [])
        for w in windows:
            await websocket.send_json(_window_message(w, listener, cfg.top_k))
        for event in events:
            await websocket.send_json({"type": "event", **event.to_dict()})
        if final:
            await websocket.send_json(
                {
                    "type": "end",
                    "duration": listener.duration,
                    "events": listener.tracker.reported,
                }
            )
            await websocket.close()
            return


async def _score(windows: list[LiveWindow], listener: Listener, batcher: Batcher) -> None:
    """Scores of the windows that are not silent, through the service's batcher (which takes
    windows of the model's clip length, like the uploads' windows)."""
    loud = [w for w in windows if not w.silent]
    if not loud:
        return
    n = listener.predictor.spec.num_samples
    listener.assign(loud, await batcher.submit(np.stack([fix_length(w.samples, n) for w in loud])))


def _window_message(w: LiveWindow, listener: Listener, k: int) -> dict[str, Any]:
    best = [] if w.scores is None else top_k(w.scores, listener.predictor.classes, k)
    return {
        "type": "window",
        "start": round(w.start, 3),
        "end": round(w.end, 3),
        "silent": w.silent,
        "top_k": [{"label": label, "probability": round(p, 4)} for label, p in best],
    }
