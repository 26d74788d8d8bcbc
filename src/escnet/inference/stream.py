"""Audio for prediction: decoded and resampled block by block, then cut into model windows.

A recording of any length goes through the same two steps, so memory stays flat whether it lasts
five seconds or an hour:

1. :func:`iter_blocks` decodes a file a block at a time (``soundfile``), mixes each block to mono
   and resamples it with a streaming resampler (``soxr.ResampleStream``, the same filter as
   :func:`escnet.data.audio.resample`, which gives the same samples as resampling the whole file).
2. :class:`Windower` turns the stream of samples into windows of the model's clip length.

Window placement (:func:`window_starts` states it as a pure function): windows start at 0, hop,
2 hop, ... as long as they fit; when they do not reach the end of the recording, one more window
ends exactly at the end (a full window of real audio, not a mostly padded one). A recording no
longer than one window gives one window, zero-padded at the end as training padded short clips
(:func:`escnet.data.audio.fix_length`). Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from escnet.data.audio import block_frames, decode_blocks, open_sound
from escnet.errors import AudioError, ParameterError

__all__ = [
    "AudioSource",
    "audio_extensions",
    "find_audio_files",
    "Windower",
    "iter_blocks",
    "open_audio",
    "read_blocks",
    "resample_blocks",
    "window_count",
    "window_starts",
]

#: Seconds of audio decoded per block: large enough for soxr and soundfile to run at full speed,
#: small enough that a block is a few MB at most.
BLOCK_SECONDS = 10.0


#: File name extensions of soundfile's formats that are not their format's name in lower case.
_EXTRA_EXTENSIONS = {
    "AIFF": (".aif", ".aifc"),
    "OGG": (".oga", ".opus"),
    "IRCAM": (".sf",),
    "MAT4": (".mat",),
    "MAT5": (".mat",),
    "NIST": (".nist", ".sph"),
    "WAVEX": (".wav",),
    "SVX": (".iff", ".8svx"),
    "AU": (".snd",),
}


def audio_extensions() -> tuple[str, ...]:
    """Lower-case file extensions of every format this soundfile (libsndfile) reads, except
    header-less RAW (it needs its parameters given)."""
    found: set[str] = set()
    for name in sf.available_formats():
        if name == "RAW":
            continue
        found.add("." + name.lower())
        found.update(_EXTRA_EXTENSIONS.get(name, ()))
    return tuple(sorted(found))


def find_audio_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named in ``paths``, with directories walked recursively for the extensions of
    :func:`audio_extensions` (any case), sorted per directory; files named directly are kept
    whatever their extension, and so are paths that do not exist, dangling symbolic links and
    entries that are no regular file (a FIFO, a socket, a device): decoding then names each as a
    bad file (:func:`open_audio`, before opening it) rather than dropping it. A path found twice
    is listed once.
    """
    extensions = set(audio_extensions())
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files.extend(
                sorted(f for f in p.rglob("*") if f.suffix.lower() in extensions and not f.is_dir())
            )
        else:
            files.append(p)
    return list(dict.fromkeys(files))  # a file named twice (or inside a folder named) once


def tail_slack(window: int) -> int:
    """Samples past the last regular window that get no window of their own: 1 % of a window.
    A decoder's padding (an Opus 5-s clip decodes to 5.001 s) is not worth a second window
    that repeats the first; anything longer is covered by a window ending at the end."""
    return window // 100


def window_starts(total: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows :class:`Windower` emits for ``total`` samples.

    Examples:
        >>> window_starts(10, 4, 2)
        [0, 2, 4, 6]
        >>> window_starts(11, 4, 2)
        [0, 2, 4, 6, 7]
        >>> window_starts(3, 4, 2)
        [0]
        >>> window_starts(160_032, 160_000, 80_000)  # 1 ms past a 5-s window at 32 kHz
        [0]
    """
    _check_window(window, hop)
    if total <= window:
        return [0]
    starts = list(range(0, total - window + 1, hop))
    if total - (starts[-1] + window) > tail_slack(window):
        starts.append(total - window)
    return starts


def window_count(total: int, window: int, hop: int) -> int:
    """How many windows :func:`window_starts` gives, without listing them.

    Examples:
        >>> window_count(11, 4, 2), window_count(3, 4, 2), window_count(10**12, 4, 2)
        (5, 1, 499999999999)
    """
    _check_window(window, hop)
    if total <= window:
        return 1
    regular = (total - window) // hop + 1
    return regular + (1 if total - ((regular - 1) * hop + window) > tail_slack(window) else 0)


def _check_window(window: int, hop: int) -> None:
    if window <= 0:
        raise ParameterError(f"window must be > 0 samples, got {window}")
    if hop <= 0:
        raise ParameterError(f"hop must be > 0 samples, got {hop}")


class Windower:
    """Cuts a stream of samples into windows, holding at most about ``window + block`` samples.

    Feed blocks with :meth:`push` and end with :meth:`finish`; both return lists of
    ``(start, samples)`` pairs, ``start`` in samples from the beginning of the stream and
    ``samples`` a read-only float32 array of exactly ``window`` samples: a view of the buffer,
    so that the windows of a block (thousands at a small hop) cost no memory of their own. The
    windows are those of :func:`window_starts`.

    Examples:
        >>> w = Windower(window=4, hop=2)
        >>> [start for start, _ in w.push(np.arange(5, dtype=np.float32))]
        [0]
        >>> [start for start, _ in w.finish()]
        [1]
    """

    def __init__(self, window: int, hop: int) -> None:
        _check_window(window, hop)
        self.window = window
        self.hop = hop
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # stream position of self._buffer[0]
        self._next = 0  # start of the next regular window
        self._last_end = 0  # end of the last window emitted
        self.total = 0  # samples pushed so far

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Append ``samples`` (1-D); return every regular window that is now complete."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ParameterError(f"Windower takes 1-D sample blocks, got shape {x.shape}")
        # A new buffer each time, never changed in place: the views handed out stay valid.
        self._buffer = np.concatenate([self._buffer, x]) if self._buffer.size else x.copy()
        self._buffer.flags.writeable = False
        self.total += x.size
        windows = []
        while self._next + self.window <= self.total:
            windows.append((self._next, self._slice(self._next)))
            self._last_end = self._next + self.window
            self._next += self.hop
        # Keep what the next regular window needs, and the last full window for the one that
        # may have to end at the end of the stream.
        keep_from = min(self._next, max(0, self.total - self.window))
        drop = keep_from - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:].copy()
            self._buffer.flags.writeable = False
            self._buffer_start = keep_from
        return windows

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The last window, if any: the padded only one of a short stream, or the one that ends
        at the end of the stream when the regular windows stop short of it by more than
        :func:`tail_slack`."""
        if self.total <= self.window:
            if self._last_end > 0:
                return []  # exactly one window's worth, already emitted
            padded = np.zeros(self.window, np.float32)
            padded[: self.total] = self._buffer[: self.total]
            self._last_end = self.window
            return [(0, padded)]
        if self.total - self._last_end <= tail_slack(self.window):
            return []
        start = self.total - self.window
        self._last_end = self.total
        return [(start, self._slice(start))]

    def _slice(self, start: int) -> np.ndarray:
        offset = start - self._buffer_start
        return self._buffer[offset : offset + self.window]


@dataclass(frozen=True)
class AudioSource:
    """What :func:`open_audio` learnt from a file's header.

    Attributes:
        path: the file.
        sample_rate: its own rate (Hz).
        channels: its channel count (mixed to mono on reading).
        frames: its length in samples at its own rate.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def open_audio(path: str | os.PathLike[str]) -> AudioSource:
    """Read a file's header, after the checks every reader makes
    (:func:`escnet.data.audio.open_sound`).

    Raises:
        AudioError: the file is missing (or a dangling link), empty, not audio that soundfile
            reads, truncated (a WAV file), of unknown length, or has no samples.
    """
    p = Path(path)
    with open_sound(p) as f:
        return AudioSource(p, int(f.samplerate), int(f.channels), int(f.frames))


def resample_blocks(
    blocks: Iterator[np.ndarray], orig_sr: int, target_sr: int, quality: str = "HQ"
) -> Iterator[np.ndarray]:
    """Resample a stream of mono float32 blocks from ``orig_sr`` to ``target_sr``.

    Gives the same samples as :func:`escnet.data.audio.resample` of the concatenated blocks.
    """
    if orig_sr == target_sr:
        yield from blocks
        return
    stream = soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality=quality)
    for block in blocks:
        out = stream.resample_chunk(block, last=False)
        if out.size:
            yield out
    tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
    if tail.size:
        yield tail


def read_blocks(f: sf.SoundFile, name: str | Path, block_frames: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block_frames`` samples from an open file, at its own rate.

    Raises:
        AudioError: naming ``name``, on a decoding error, a file that ends before the length its
            header declares (:func:`escnet.data.audio.decode_blocks`), or NaN/infinite samples.
    """
    position = 0
    for data in decode_blocks(f, name, block_frames):
        if not np.isfinite(data).all():
            seconds = position / f.samplerate
            raise AudioError(name, f"NaN or infinite samples near {seconds:.1f} s")
        position += data.shape[0]
        yield data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def _decoded_blocks(source: AudioSource, block_frames: int) -> Iterator[np.ndarray]:
    with open_sound(source.path) as f:
        yield from read_blocks(f, source.path, block_frames)


def iter_blocks(
    path: str | os.PathLike[str] | AudioSource,
    sample_rate: int,
    *,
    block_seconds: float = BLOCK_SECONDS,
    quality: str = "HQ",
) -> Iterator[np.ndarray]:
    """Mono float32 blocks of a file at ``sample_rate``, decoded and resampled as they are read.

    Raises:
        AudioError: naming the file, when it cannot be opened or decoded (possibly after some
            blocks were yielded: a file damaged in the middle).
    """
    source = path if isinstance(path, AudioSource) else open_audio(path)
    frames = block_frames(source.sample_rate, source.channels, block_seconds)
    yield from resample_blocks(
        _decoded_blocks(source, frames), source.sample_rate, sample_rate, quality
    )
