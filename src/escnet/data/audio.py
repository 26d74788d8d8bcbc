"""Audio loading: decode, mix to mono, resample, pad or crop to a fixed duration.

Every data set and every prediction goes through :func:`load_audio`, so a clip is always turned
into the same samples whether it is trained on, evaluated or classified later.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from escnet.errors import AudioError, NotAudioError, ParameterError

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

#: What libsndfile reports as the length of a file whose header does not state it (a FLAC
#: stream with total samples 0): SF_COUNT_MAX.
UNKNOWN_FRAMES = 2**63 - 1

# Frames per read: a file is decoded in blocks of at most ~4 MB, so that a header that declares
# more frames than the file holds cannot make escnet allocate memory for them.
_BLOCK_SAMPLES = 1 << 20

#: Sample rates a file may declare (Hz). Telephone audio is 8 kHz and ultrasound recorders stay
#: at or below 1 MHz; a header outside is damaged or hostile (2 147 483 647 Hz made 1 000 samples
#: resample to none, and the run stopped there).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 1_000_000

#: Shortest recording a file may hold (seconds): less is no sound to label, and resamples to no
#: sample at all at some rates.
MIN_RECORDING_S = 0.001


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


def check_audio_file(path: str | os.PathLike[str]) -> None:
    """The checks every reader makes before decoding a file: it exists (a dangling symbolic link
    is named as one), is a regular, readable, non-empty file, and a WAV file holds the bytes its
    header declares.

    Raises:
        AudioError: naming the file and the reason.
    """
    p = Path(path)
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
            check_complete(f, st.st_size, p)
    except OSError as exc:
        if exc.errno == errno.ENOENT and p.is_symlink():
            raise AudioError(
                p, f"dangling symbolic link to {os.readlink(p)} (no such file); fix or remove it"
            ) from None
        raise AudioError(p, os_error_reason(exc)) from None


def check_complete(f: BinaryIO, size: int, name: str | Path) -> None:
    """Refuse a WAV file (on disk or in memory) that holds fewer bytes than its header declares.

    libsndfile quietly shortens such a file to what is there, so decoding would label (or pad
    with silence) a part and pass a truncated copy for a short clip.

    Raises:
        AudioError: naming ``name``, with the declared and the held byte counts.
    """
    shortfall = wav_shortfall(f, size)
    if shortfall is not None:
        declared, held = shortfall
        raise AudioError(
            name,
            f"truncated: its WAV header declares {declared} bytes of audio but the file holds "
            f"{held}; replace it with a complete copy",
        )


def wav_shortfall(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, held) bytes of a WAV file's ``data`` chunk when the file holds fewer bytes
    than its header declares; ``None`` otherwise, and for files that are not RIFF/WAVE."""
    f.seek(0)
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


def open_sound(source: str | os.PathLike[str] | bytes, name: str | None = None) -> sf.SoundFile:
    """Open a file, or an upload's bytes, for decoding: the one way in for training, prediction,
    the service and ``escnet spectrogram``, so that each refuses the same files with the same
    words. Decode it with :func:`decode_blocks`, and close it.

    Args:
        source: a path, or a whole file's bytes (an upload).
        name: what messages call it (default: the path, or ``"upload"``).

    Raises:
        NotAudioError: soundfile cannot decode the content as audio.
        AudioError: every other unusable file, see :func:`check_audio_file`; also a file with
            no samples, or whose header does not state its length (libsndfile then fails
            before the end).
    """
    if isinstance(source, bytes):
        label = Path(name or "upload")
        if not source:
            raise AudioError(label, "the upload is empty (0 bytes)")
        buffer = io.BytesIO(source)  # shares the bytes: no copy
        check_complete(buffer, len(source), label)
        buffer.seek(0)
        target: str | io.BytesIO = buffer
    else:
        label = Path(source) if name is None else Path(name)
        check_audio_file(source)
        target = str(source)
    try:
        f = sf.SoundFile(target)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).rsplit(": ", 1)[-1]  # drop "Error opening <file>: "
        raise NotAudioError(
            label,
            f"cannot decode as audio ({reason}); the file is corrupt or not audio that "
            "soundfile reads (wav, flac, ogg, mp3, ...)",
        ) from None
    except OSError as exc:
        raise AudioError(label, os_error_reason(exc)) from None
    if f.frames >= UNKNOWN_FRAMES:
        f.close()
        raise AudioError(
            label,
            "its header does not state its length (as a streaming encoder writes a FLAC: total "
            "samples 0), and libsndfile cannot decode such a file to its end; re-encode it to a "
            "file, not a pipe (flac, sox or ffmpeg write the length then)",
        )
    if f.frames <= 0:
        f.close()
        raise AudioError(label, "file decodes to zero samples")
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        f.close()
        raise AudioError(
            label,
            f"its header declares a sample rate of {f.samplerate} Hz, outside the "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz of real recordings; the header is damaged: "
            "replace it with a good copy",
        )
    if f.frames < MIN_RECORDING_S * f.samplerate:
        frames = f.frames
        f.close()
        raise AudioError(
            label,
            f"holds {frames} sample(s) at {f.samplerate} Hz, less than {MIN_RECORDING_S * 1000:g} "
            "ms: too short to label; replace it with a longer recording",
        )
    return f


def block_frames(sample_rate: int, channels: int, seconds: float) -> int:
    """Frames per decoded block: ``seconds`` of audio, but never more than about a million
    samples over all channels (4 MB of float32), so that a many-channel, high-rate file (8
    channels at 384 kHz) is decoded and mixed down in blocks as small as a mono one's."""
    frames = _BLOCK_SAMPLES // max(1, channels)
    if math.isfinite(seconds):
        frames = min(frames, int(seconds * sample_rate))
    return max(1, frames)


def decode_blocks(
    f: sf.SoundFile, name: str | Path, block_frames: int, limit: int | None = None
) -> Iterator[np.ndarray]:
    """Float32 blocks (frames, channels) of an open file, at most ``block_frames`` each, up to
    ``limit`` frames (default: the length its header declares).

    Raises:
        AudioError: naming ``name``, when the decoder fails or the file ends early (truncated
            or damaged), possibly after some blocks were yielded.
    """
    declared = int(f.frames)
    want = declared if limit is None else min(limit, declared)
    got = 0
    while got < want:
        try:
            part = f.read(min(block_frames, want - got), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError):
            # libsndfile's own words differ between a file and the same bytes in memory ("lost
            # sync" / "psf_fseek() failed"): left out, so that every reader says the same.
            raise AudioError(
                name,
                f"truncated or damaged: the decoder failed before the "
                f"{declared / f.samplerate:.2f} s its header declares were read; replace it "
                "with a complete copy",
            ) from None
        if len(part) == 0:
            break
        got += len(part)
        yield part
    if got < want:
        raise AudioError(
            name,
            f"truncated: it holds {got / f.samplerate:.2f} s of the "
            f"{declared / f.samplerate:.2f} s its header declares; replace it with a complete "
            "copy",
        )


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
    try:
        with open_sound(p) as f:
            sr = int(f.samplerate)
            limit = None if max_seconds is None else math.ceil(max_seconds * sr)
            block = block_frames(sr, f.channels, math.inf)
            parts = list(decode_blocks(f, p, block, limit))
    except OSError as exc:
        raise AudioError(p, os_error_reason(exc)) from None
    except MemoryError:
        raise AudioError(p, "too large to decode in memory") from None
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(p, f"{bad} of {data.size} samples are NaN or infinite")
    return data, sr


def audio_duration(path: str | os.PathLike[str]) -> float:
    """The file's length in seconds, from its header (nothing is decoded).

    Raises:
        AudioError: as :func:`open_sound`, for a file that cannot be opened as audio.
    """
    with open_sound(path) as f:
        return float(f.frames) / float(f.samplerate)


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
