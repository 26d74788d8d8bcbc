"""Where live samples come from: raw 16-bit PCM (a pipe, standard input) or a microphone.

Both give mono float32 blocks (full scale +-1) as soon as they arrive, for
:meth:`escnet.live.Listener.feed`. The microphone needs the optional ``sounddevice`` package and
the PortAudio library (``pip install 'escnet[live]'``; Debian: ``apt-get install
libportaudio2``); nothing else here does.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from escnet.errors import EscnetError, ParameterError

__all__ = ["Microphone", "pcm16_blocks", "pcm16_to_float"]

#: What to install for the microphone, in every error that asks for it.
_INSTALL = "pip install 'escnet[live]' (and on Debian: apt-get install libportaudio2)"

#: How audio files begin: a file given where raw PCM is expected is refused, not played as
#: noise (its header and compressed bytes read as samples).
_FILE_MAGIC = {b"RIFF": "WAV", b"OggS": "Ogg", b"fLaC": "FLAC", b"ID3": "MP3", b"FORM": "AIFF"}

#: Seconds of microphone audio held while the model catches up; past that, blocks are dropped
#: (and counted) so that a model slower than real time does not fall ever further behind.
MAX_BACKLOG_SECONDS = 10.0


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit samples as float32 in [-1, 1).

    Examples:
        >>> pcm16_to_float(bytes([0, 0x40, 0, 0xC0])).tolist()
        [0.5, -0.5]
    """
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def pcm16_blocks(
    stream: BinaryIO, block_bytes: int = 65536, name: str = "the input"
) -> Iterator[np.ndarray]:
    """Blocks of raw little-endian 16-bit mono PCM from ``stream``, each as soon as it arrives
    (up to ``block_bytes`` at a time: a pipe's data is not held back to fill a block). A sample
    split between two reads is joined; an odd byte at the very end is dropped.

    Raises:
        ParameterError: naming ``name``, when the stream begins like an audio file (WAV, Ogg,
            FLAC, MP3, AIFF), not raw PCM.
    """
    read = getattr(stream, "read1", stream.read)  # read1: what is there, without waiting for more
    rest = b""
    first = True
    while True:
        data = read(block_bytes)
        if not data:
            return
        data = rest + data
        if first and len(data) < 4:
            rest = data  # too short to tell yet
            continue
        if first:
            _check_raw(data, name)
            first = False
        whole = len(data) - len(data) % 2
        rest = data[whole:]
        if whole:
            yield pcm16_to_float(data[:whole])


class Microphone:
    """A microphone (or any PortAudio input device) as a source of blocks.

    Args:
        device: a device index or a substring of its name (default: the system's input).
        sample_rate: Hz (default: the device's own rate).
        block_seconds: seconds per block (0.1).

    Use as a context manager; :meth:`blocks` yields until the device stops or the caller does.

    Raises:
        EscnetError: ``sounddevice`` or PortAudio is missing, there is no such input device, or
            it cannot be opened at this rate; each names the fix.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        block_seconds: float = 0.1,
    ) -> None:
        sd = _sounddevice()
        self._sd = sd
        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            where = f"--device {device}" if device is not None else "the default input"
            raise EscnetError(
                f"no microphone: {where}: {_reason(exc)}; list the devices with "
                "`python -m sounddevice`, pass --device, or read PCM from standard input with "
                "--input - --rate R"
            ) from None
        self.name = str(info["name"])
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        blocks = max(1, int(MAX_BACKLOG_SECONDS / block_seconds))
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=blocks)
        self.dropped = 0  # blocks lost because this process was too slow
        try:
            self._stream = sd.InputStream(
                device=device,
                samplerate=self.sample_rate,
                channels=1,
                dtype="float32",
                blocksize=max(1, int(block_seconds * self.sample_rate)),
                callback=self._callback,
            )
        except (ValueError, sd.PortAudioError) as exc:
            raise EscnetError(
                f"cannot open the microphone {self.name!r} at {self.sample_rate} Hz: "
                f"{_reason(exc)}; pass another --rate or --device"
            ) from None

    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        # PortAudio's thread: copy and hand over, nothing slow here.
        if status.input_overflow:
            self.dropped += 1
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.dropped += 1

    def __enter__(self) -> Microphone:
        self._stream.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stream.stop()
        self._stream.close()

    def blocks(self) -> Iterator[np.ndarray]:
        """Blocks as the device delivers them, until it stops."""
        while self._stream.active or not self._queue.empty():
            try:
                yield self._queue.get(timeout=0.5)
            except queue.Empty:
                continue


def _check_raw(data: bytes, name: str) -> None:
    kind = next((k for magic, k in _FILE_MAGIC.items() if data.startswith(magic)), None)
    if kind:
        raise ParameterError(
            f"{name} begins like a {kind} file, not raw PCM: convert it (ffmpeg -i FILE -f s16le "
            "-ac 1 -ar 32000 -) or label files with escnet predict"
        )


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError:
        raise EscnetError(
            f"listening to a microphone needs the sounddevice package: {_INSTALL}; or read PCM "
            "from standard input with --input - --rate R"
        ) from None
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise EscnetError(
            f"the PortAudio library cannot be loaded ({_reason(exc)}): {_INSTALL}"
        ) from None
    return sounddevice
