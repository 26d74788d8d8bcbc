"""An upload's way through the service: the body read under a size limit and a time limit, the
file taken out of a multipart form, its name made safe to echo, then decoded and labelled window
by window.

Decoding goes through :func:`escnet.data.audio.open_sound` and
:func:`escnet.inference.stream.read_blocks`, as ``escnet predict`` and training do, so a file is
refused with the same words everywhere; only the status code is the service's own: 415 for
content that is not audio (:class:`~escnet.errors.NotAudioError`), 422 for every other unusable
file. A recording is labelled a block at a time (:class:`~escnet.inference.StreamLabeller`), so
an upload costs its bytes and a few blocks of samples, not its decoded length; recordings over
``long_upload_seconds`` take one of ``max_long_uploads`` slots, and when none is free the answer
is 503 with ``Retry-After`` before anything is decoded.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import AsyncGenerator
from pathlib import Path

import soundfile as sf
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from escnet.data.audio import block_frames, open_sound
from escnet.errors import AudioError, ModelOutputError, NotAudioError, ParameterError
from escnet.events.tracks import FrameLevels
from escnet.inference import Prediction, Predictor, StreamLabeller
from escnet.inference.stream import BLOCK_SECONDS, read_blocks, resample_blocks
from escnet.serve.batcher import Batcher

__all__ = ["LongUploads", "extract_upload", "label_upload", "read_body", "safe_name"]

log = logging.getLogger(__name__)

#: Longest file name echoed back (characters); a longer one keeps its start and its extension.
MAX_NAME = 100

#: Seconds a client refused for want of a long-upload slot is told to wait (``Retry-After``).
RETRY_AFTER_S = 10


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes (413 past it, on the declared length and again
    while reading, so a lying client cannot get past it), arriving within ``timeout`` seconds
    (408 after: a client that trickles its body holds the memory it has sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {int(declared)} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload exceeds the {limit}-byte limit")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(
            408,
            f"the upload did not arrive within {timeout:g} s ({size} bytes came); send it again",
        ) from None
    return b"".join(chunks)


async def extract_upload(request: Request, body: bytes) -> tuple[bytes, str]:
    """The uploaded file's bytes and its :func:`safe_name`, from a multipart form or a raw
    body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return body, "upload"

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=8)
    # Starlette spools a file part over 1 MB to a temporary file; the body is in memory and
    # bounded already, so its file stays there too: nothing of an upload touches the disk.
    parser.spool_max_size = len(body) + 1
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "no file in the form: send the audio in a field named 'file'")
        return await upload.read(), safe_name(upload.filename)
    finally:
        await form.close()


def safe_name(name: str | None) -> str:
    """What the service calls an upload: the base name of the name the client gave, without
    control or formatting characters (no terminal escapes, no right-to-left overrides), at most
    :data:`MAX_NAME` characters; ``"upload"`` when nothing is left.

    Examples:
        >>> safe_name("../../etc/passwd"), safe_name("a\\x1b[31m.wav"), safe_name("..")
        ('passwd', 'a[31m.wav', 'upload')
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    if base in ("", ".", ".."):
        return "upload"
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        tail = f".{ext}" if dot and len(ext) <= 10 else ""
        base = base[: MAX_NAME - len(tail) - 3] + "..." + tail
    return base


class LongUploads:
    """Slots for recordings over ``seconds`` long: at most ``limit`` are labelled at once.

    Used from the event loop only, so a counter is enough (no lock).
    """

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.active = 0
        self.refused = 0

    def acquire(self, name: str, duration: float) -> None:
        """Take a slot, or answer 503 with ``Retry-After``."""
        if self.active >= self.limit:
            self.refused += 1
            raise HTTPException(
                503,
                f"{name}: {duration:.1f} s of audio, and the {self.limit} recording(s) over "
                f"{self.seconds:g} s this service labels at once are being labelled; retry in "
                f"{RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.active += 1

    def release(self) -> None:
        self.active -= 1


def _open(data: bytes, name: str) -> sf.SoundFile:
    try:
        return open_sound(data, name)
    except NotAudioError as exc:
        raise HTTPException(415, f"{name}: {exc.reason}") from None
    except AudioError as exc:
        raise HTTPException(422, f"{name}: {exc.reason}") from None


async def label_upload(
    predictor: Predictor,
    batcher: Batcher,
    data: bytes,
    name: str,
    *,
    max_duration: float,
    slots: LongUploads,
    how: str = "mean",
    hop: float | None = None,
    meter: FrameLevels | None = None,
) -> Prediction:
    """Decode and label an upload block by block, its windows batched with other requests'.
    ``hop`` (seconds) places windows of the model's clip length (default: the predictor's
    window and hop); a ``meter`` measures the frame levels on the way (for ``/detect``).

    Raises:
        HTTPException: 415, 422 or 503 (see the module docstring).
    """
    f = await run_in_threadpool(_open, data, name)
    held = False
    try:
        duration = f.frames / f.samplerate
        if duration > max_duration:
            raise HTTPException(
                422, f"{name}: {duration:.1f} s of audio exceeds the {max_duration:g}-s limit"
            )
        if duration > slots.seconds:
            slots.acquire(name, duration)
            held = True
        window = None if hop is None else predictor.window
        labeller = StreamLabeller(
            predictor, window, hop, how, batch_size=batcher.max_batch, meter=meter
        )
        frames = block_frames(int(f.samplerate), int(f.channels), BLOCK_SECONDS)
        blocks = resample_blocks(
            read_blocks(f, Path(name), frames), int(f.samplerate), predictor.sample_rate
        )
        while (block := await run_in_threadpool(next, blocks, None)) is not None:
            for starts, batch in labeller.push(block):
                labeller.record(starts, await batcher.submit(batch))
        for starts, batch in labeller.finish():
            labeller.record(starts, await batcher.submit(batch))
        return labeller.result()
    except AudioError as exc:
        raise HTTPException(422, f"{name}: {exc.reason}") from None
    except ParameterError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None
    except ModelOutputError as exc:  # the model's fault, not the upload's: no score goes out
        log.error("%s: %s", name, exc)  # the operator's log names the model; the client not
        raise HTTPException(
            500,
            "the model gave unusable scores (NaN, infinite or not one per class); the "
            "service's model must be re-exported",
        ) from None
    finally:
        if held:
            slots.release()
        f.close()
