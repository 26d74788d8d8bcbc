"""Audio loading: decode, mix to mono, resample, pad or crop to a fixed duration.

Every data set and every prediction goes through :func:`load_audio`, so a clip is always turned
into the same samples whether it is trained on, evaluated or classified later.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from escnet.errors import AudioError, ParameterError

#: File extensions searched for a clip, in this order (re-encoded copies of data sets are common).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg")

#: Longest clip length :class:`AudioConfig` accepts (one hour): more is a typo, and would need
#: gigabytes of memory per clip.
MAX_DURATION_S = 3600.0

#: Longest stretch of audio one spectrogram picture shows (:mod:`escnet.features.plotting`): beyond
#: it
#: the picture is unreadable and the waveform, image and plot take gigabytes, so a longer file
#: is refused unless a duration picks its start.
MAX_SPECTROGRAM_S = 600.0

#: Seconds decoded past a clip's duration: resampling then gives exactly the samples it gives
#: from the whole file (soxr looks ahead by milliseconds), while a long file is never read whole.
READ_MARGIN_S = 0.25

# Frames per read: a file is decoded in blocks of at most ~4 MB, so that a header that declares
# more frames than the file holds cannot make escnet allocate memory for them.
_BLOCK_SAMPLES = 1 << 20


@dataclass(frozen=True)
class AudioConfig:
    """How a file becomes a fixed-length mono waveform.

    Attributes:
        sample_rate: rate every clip is resampled to (Hz).
        duration: clip length in seconds; shorter clips are zero-padded at the end, longer ones
            cropped to their start. ``None`` keeps the file's length.
        resample_quality: soxr quality, ``"HQ"`` (librosa's default ``soxr_hq``) or ``"VHQ"``.
    """

    sample_rate: int = 22050
    duration: float | None = 5.0
    resample_quality: str = "HQ"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ParameterError(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION_S:
            raise ParameterError(
                f"duration must be a number of seconds in (0, {MAX_DURATION_S:g}] or None, "
                f"got {self.duration}"
            )
        if self.resample_quality not in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
            raise ParameterError(
                "resample_quality must be one of QQ, LQ, MQ, HQ, VHQ; "
                f"got {self.resample_quality!r}"
            )

    @property
    def num_samples(self) -> int | None:
        """Samples per clip, or ``None`` when clips keep their own length."""
        if self.duration is None:
            return None
        return int(round(self.duration * self.sample_rate))


def os_error_reason(exc: OSError) -> str:
    """What an :class:`OSError` from opening or reading an audio file means for the user."""
    if exc.errno == errno.ENOENT:
        return "file not found"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: escnet may not read it; fix its permissions or owner"
    if exc.errno == errno.EISDIR:
        return "is a directory, not an audio file"
    return f"cannot read the file ({exc.strerror or exc})"


def _check_readable(p: Path) -> None:
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(p, "is a directory, not an audio file")
        if not stat.S_ISREG(st.st_mode):
            raise AudioError(p, "is not a regular file (a device, pipe or socket)")
        if st.st_size == 0:
            raise AudioError(
                p, "file is empty (0 bytes); replace it with a valid copy or delete it"
            )
        with open(p, "rb") as f:
            shortfall = _wav_shortfall(f, st.st_size)
    except OSError as exc:
        raise AudioError(p, os_error_reason(exc)) from None
    if shortfall is not None:
        declared, held = shortfall
        raise AudioError(
            p,
            f"truncated: its WAV header declares {declared} bytes of audio but the file holds "
            f"{held}; replace it with a complete copy",
        )


def _wav_shortfall(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, held) bytes of a WAV file's ``data`` chunk when the file holds fewer bytes
    than its header declares; ``None`` otherwise, and for files that are not RIFF/WAVE.

    libsndfile quietly shortens such a file to what is there, so loading would pad the missing
    part with silence: a truncated copy would pass for a short clip.
    """
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return None
    order = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    for _ in range(1000):  # a WAV file has a handful of chunks; stop on garbage
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        (length,) = struct.unpack(order + "I", chunk[4:])
        if chunk[:4] == b"data":
            held = size - pos - 8
            # 0 and 0xFFFFFFFF: a streaming writer that could not go back to fill in the length.
            if length in (0, 0xFFFFFFFF) or length <= held:
                return None
            return length, held
        pos += 8 + length + (length & 1)
    return None


def _read_frames(p: Path, f: sf.SoundFile, limit: int) -> np.ndarray:
    block = max(1, _BLOCK_SAMPLES // max(1, f.channels))
    parts: list[np.ndarray] = []
    got = 0
    while got < limit:
        try:
            part = f.read(min(block, limit - got), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(
                p,
                f"truncated or damaged: the decoder failed ({exc}) before the "
                f"{f.frames / f.samplerate:.2f} s its header declares were read; replace it with "
                "a complete copy",
            ) from None
        if len(part) == 0:
            break
        parts.append(part)
        got += len(part)
    if not parts:
        return np.zeros((0, max(1, f.channels)), np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def read_audio(
    path: str | os.PathLike[str], *, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode a file to ``(samples, sample_rate)``, samples float32 of shape (frames, channels).

    Args:
        path: the audio file (any format libsndfile reads: WAV, FLAC, OGG, ...).
        max_seconds: decode only the file's first ``max_seconds`` (memory stays bounded however
            long the file is); ``None`` decodes it all.

    Raises:
        AudioError: the file is missing, a directory, unreadable (permission denied), empty,
            undecodable, truncated (holds fewer samples than its header declares), has no
            samples, or holds NaN/inf; the reason says which.
    """
    p = Path(path)
    _check_readable(p)
    try:
        with sf.SoundFile(p) as f:
            sr, declared = int(f.samplerate), int(f.frames)
            limit = declared
            if max_seconds is not None:
                limit = min(declared, math.ceil(max_seconds * sr))
            data = _read_frames(p, f, limit)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            p, f"cannot decode as audio ({exc}); the file is corrupt or not a WAV/FLAC/OGG file"
        ) from None
    except OSError as exc:
        raise AudioError(p, os_error_reason(exc)) from None
    except MemoryError:
        raise AudioError(p, "too large to decode in memory") from None
    if data.shape[0] == 0:
        raise AudioError(p, "file decodes to zero samples")
    if data.shape[0] < limit:
        raise AudioError(
            p,
            f"truncated: it holds {data.shape[0] / sr:.2f} s of the {declared / sr:.2f} s its "
            "header declares; replace it with a complete copy",
        )
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(p, f"{bad} of {data.size} samples are NaN or infinite")
    return data, sr


def audio_duration(path: str | os.PathLike[str]) -> float:
    """The file's length in seconds, from its header (nothing is decoded).

    Raises:
        AudioError: as :func:`read_audio`, for a file that cannot be opened as audio.
    """
    p = Path(path)
    _check_readable(p)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            p, f"cannot decode as audio ({exc}); the file is corrupt or not a WAV/FLAC/OGG file"
        ) from None
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array into one channel."""
    if samples.ndim == 1:
        return samples
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample a mono float32 signal with soxr (band-limited, as librosa's default)."""
    if orig_sr == target_sr:
        return samples
    return soxr.resample(samples, orig_sr, target_sr, quality=quality).astype(
        np.float32, copy=False
    )


def fix_length(samples: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or crop to the first ``num_samples`` samples."""
    n = samples.shape[-1]
    if n == num_samples:
        return samples
    if n > num_samples:
        return samples[..., :num_samples]
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, num_samples - n)]
    return np.pad(samples, pad)


def load_audio(path: str | os.PathLike[str], config: AudioConfig | None = None) -> np.ndarray:
    """Load a file as a mono float32 waveform at ``config.sample_rate``, fixed to its duration.

    Examples:
        >>> from escnet.data.audio import AudioConfig, load_audio
        >>> cfg = AudioConfig(sample_rate=22050, duration=5.0)
        >>> y = load_audio("dog.wav", cfg)  # doctest: +SKIP
        >>> y.shape  # doctest: +SKIP
        (110250,)

    Raises:
        AudioError: naming the file, when it cannot be used (see :func:`read_audio`).
    """
    cfg = config or AudioConfig()
    keep = None if cfg.duration is None else cfg.duration + READ_MARGIN_S
    data, sr = read_audio(path, max_seconds=keep)
    y = resample(to_mono(data), sr, cfg.sample_rate, cfg.resample_quality)
    if not np.any(y):
        # Digital silence is valid audio but usually a broken recording; keep it, say so.
        warnings.warn(f"{path}: the clip is completely silent", stacklevel=2)
    if cfg.num_samples is not None:
        y = fix_length(y, cfg.num_samples)
    return np.ascontiguousarray(y, dtype=np.float32)


def find_audio_file(directory: Path, stem: str) -> Path | None:
    """The first ``directory/stem{ext}`` that exists for ext in :data:`AUDIO_EXTENSIONS`."""
    for ext in AUDIO_EXTENSIONS:
        candidate = directory / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None
