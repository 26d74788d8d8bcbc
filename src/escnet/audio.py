"""Audio loading: decode, mix to mono, resample, pad or crop to a fixed duration.

Every data set and every prediction goes through :func:`load_audio`, so a clip is always turned
into the same samples whether it is trained on, evaluated or classified later.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from escnet.errors import AudioError

#: File extensions searched for a clip, in this order (re-encoded copies of data sets are common).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg")


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
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration must be > 0 seconds or None, got {self.duration}")
        if self.resample_quality not in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
            raise ValueError(
                "resample_quality must be one of QQ, LQ, MQ, HQ, VHQ; "
                f"got {self.resample_quality!r}"
            )

    @property
    def num_samples(self) -> int | None:
        """Samples per clip, or ``None`` when clips keep their own length."""
        if self.duration is None:
            return None
        return int(round(self.duration * self.sample_rate))


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Decode a file to ``(samples, sample_rate)``, samples float32 of shape (frames, channels).

    Raises:
        AudioError: the file is missing, empty, undecodable, has no samples, or holds NaN/inf.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise AudioError(p, "file not found") from None
    if size == 0:
        raise AudioError(p, "file is empty (0 bytes); replace it with a valid copy or delete it")
    try:
        data, sr = sf.read(p, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            p, f"cannot decode as audio ({exc}); the file is corrupt or not a WAV/FLAC/OGG file"
        ) from None
    if data.shape[0] == 0:
        raise AudioError(p, "file decodes to zero samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(p, f"{bad} of {data.size} samples are NaN or infinite")
    return data, int(sr)


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
        >>> from escnet.audio import AudioConfig, load_audio
        >>> cfg = AudioConfig(sample_rate=22050, duration=5.0)
        >>> y = load_audio("dog.wav", cfg)  # doctest: +SKIP
        >>> y.shape  # doctest: +SKIP
        (110250,)

    Raises:
        AudioError: naming the file, when it cannot be used (see :func:`read_audio`).
    """
    cfg = config or AudioConfig()
    data, sr = read_audio(path)
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
