"""The audio-level transforms: :class:`BaseTransform` and the NAA transforms built on it.

Each transform is a small class in the style of audiomentations: named, validated constructor
parameters, a probability ``p``, randomness kept apart from the work
(:meth:`BaseTransform.randomize_parameters` draws, :meth:`BaseTransform.apply` is deterministic
given what was drawn), and a call ``t(samples, sample_rate, rng=None)`` that returns *new*
float32 samples of the input's length and never changes the input.

The public names are re-exported by :mod:`escnet.augment.audio`, where callers import them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import librosa
import numpy as np

from escnet.augment.audio_checks import (
    Range,
    as_mono_float32,
    check_choice,
    check_number,
    check_probability,
    check_range,
    check_sample_rate,
    check_seed,
    draw,
    fit,
)
from escnet.augment.audio_dsp import (
    DEFAULT_PITCH_BACKEND,
    DEFAULT_STRETCH_BACKEND,
    check_backend,
    pitch_shift,
    time_stretch,
)
from escnet.errors import ParameterError

__all__ = [
    "AddNoise",
    "BaseTransform",
    "PitchShift",
    "TimeShift",
    "TimeStretch",
    "TrimSilence",
]

_DIRECTIONS = ("left", "right", "both")
_COLORS = ("white", "pink")


class BaseTransform:
    """Base of every transform: probability, seeding, the call protocol, ``params()``, repr.

    Subclasses list their constructor values in ``_param_names``, draw random parameters in
    :meth:`randomize_parameters` and do the deterministic work in :meth:`apply`.

    Args:
        p: probability of applying the transform on a call; otherwise a copy is returned.
        seed: seed of the instance's own Generator, used when a call passes no ``rng``. Two
            instances built with the same seed give the same sequence of outputs.
    """

    _param_names: tuple[str, ...] = ()

    def __init__(self, *, p: float = 1.0, seed: int | None = None) -> None:
        self.p = check_probability(p)
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)
        #: what the last :meth:`randomize_parameters` drew
        self.parameters: dict[str, Any] = {}

    def reseed(self, seed: int | None) -> None:
        """Restart the instance's own Generator from ``seed`` (e.g. in a data-loader worker)."""
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    def randomize_parameters(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        """Draw this call's parameters from ``rng``; store them in ``self.parameters`` too."""
        self.parameters = self.draw(samples, sample_rate, rng)
        return dict(self.parameters)

    def draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {}

    #: ``apply(samples, sample_rate, **params)``: the deterministic work. Given a 1-D float32
    #: signal and the parameters :meth:`randomize_parameters` drew, it returns new float32
    #: samples (the call fits them to the input's length). Each subclass defines it with its
    #: own keyword parameters, hence only declared here.
    apply: Callable[..., np.ndarray]

    def __call__(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Apply with probability ``p``; always returns a new float32 array of the same length.

        Args:
            samples: mono signal, 1-D float array; it is never modified.
            sample_rate: its rate in Hz.
            rng: Generator to draw from; ``None`` uses the instance's own (see ``seed``).
        """
        x = as_mono_float32(samples)
        sr = check_sample_rate(sample_rate)
        gen = self._rng if rng is None else rng
        if self.p < 1.0 and gen.random() >= self.p:
            return x.copy()
        params = self.randomize_parameters(x, sr, gen)
        y = fit(self.apply(x, sr, **params), x.shape[0])
        if np.may_share_memory(y, samples):
            y = y.copy()
        return y

    def params(self) -> dict[str, Any]:
        """Constructor values (plain, JSON-able), e.g. for a cache key."""
        values = {name: getattr(self, name) for name in self._param_names}
        values["p"] = self.p
        values["seed"] = self.seed
        return values

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class TimeShift(BaseTransform):
    """Roll the signal by a random number of samples; samples that wrap around become zero.

    The shift magnitude is drawn uniformly from the integers in ``[0, max_seconds * sr)``.
    Directions follow the paper's code, where a *positive* ``np.roll`` is called ``"left"``:

    - ``"left"``: shift >= 0, the content moves *later*; the first ``shift`` samples are zero.
    - ``"right"``: shift <= 0, the content moves *earlier*; the last ``|shift|`` samples are zero.
    - ``"both"``: either, with probability 1/2 each.

    (A shift of 0 returns the signal unchanged; the paper's code would zero all of it.)

    Args:
        max_seconds: upper bound (exclusive) of the shift in seconds, >= 0.
        direction: ``"left"``, ``"right"`` or ``"both"`` (see above).
        p, seed: see :class:`BaseTransform`.
    """

    _param_names = ("max_seconds", "direction")

    def __init__(
        self,
        max_seconds: float = 0.5,
        direction: str = "both",
        *,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.max_seconds = check_number(max_seconds, "max_seconds", low=0.0, strict=False)
        self.direction = check_choice(direction, "direction", _DIRECTIONS)

    def draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        high = int(sample_rate * self.max_seconds)
        shift = int(rng.integers(high)) if high > 0 else 0
        if self.direction == "right" or (self.direction == "both" and rng.integers(0, 2) == 1):
            shift = -shift
        return {"shift": shift}

    def apply(self, samples: np.ndarray, sample_rate: int, *, shift: int = 0) -> np.ndarray:
        """Roll by ``shift`` samples (positive: later) and zero what wrapped around."""
        x = np.asarray(samples, dtype=np.float32)
        y = np.roll(x, shift)  # a new array
        if shift > 0:
            y[:shift] = 0.0
        elif shift < 0:
            y[shift:] = 0.0
        return y


class PitchShift(BaseTransform):
    """Shift the pitch by a number of semitones, keeping the duration.

    Args:
        semitones: the shift, or a ``(low, high)`` range drawn uniformly on each call.
        backend: one of :data:`DSP_BACKENDS` (default :data:`DEFAULT_PITCH_BACKEND`).
        p, seed: see :class:`BaseTransform`.

    Presets: :meth:`pps` (+2 semitones) and :meth:`nps` (-2 semitones).
    """

    _param_names = ("semitones", "backend")

    def __init__(
        self,
        semitones: Range = 2.0,
        *,
        backend: str = DEFAULT_PITCH_BACKEND,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.semitones = check_range(semitones, "semitones")
        self.backend = check_backend(backend)

    @classmethod
    def pps(cls, semitones: float = 2.0, **kwargs: Any) -> PitchShift:
        """The paper's positive pitch shift (PPS): +2 semitones by default."""
        if check_number(semitones, "semitones") <= 0:
            raise ParameterError(f"semitones must be > 0 for PPS, got {semitones!r}")
        return cls(semitones, **kwargs)

    @classmethod
    def nps(cls, semitones: float = -2.0, **kwargs: Any) -> PitchShift:
        """The paper's negative pitch shift (NPS): -2 semitones by default."""
        if check_number(semitones, "semitones") >= 0:
            raise ParameterError(f"semitones must be < 0 for NPS, got {semitones!r}")
        return cls(semitones, **kwargs)

    def draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {"semitones": draw(self.semitones, rng)}

    def apply(self, samples: np.ndarray, sample_rate: int, *, semitones: float) -> np.ndarray:
        return pitch_shift(
            samples, sample_rate=sample_rate, semitones=semitones, backend=self.backend
        )


class TimeStretch(BaseTransform):
    """Change the speed without changing the pitch, then fit back to the input's length.

    A slow stretch (``rate < 1``) makes the signal longer and keeps its first N samples (the
    end is cut off); a fast stretch (``rate > 1``) makes it shorter and pads zeros at the end.
    :meth:`stretch` gives the signal before that crop/pad.

    Args:
        rate: speed factor > 0, or a ``(low, high)`` range drawn uniformly on each call.
        backend: one of :data:`DSP_BACKENDS` (default :data:`DEFAULT_STRETCH_BACKEND`).
        p, seed: see :class:`BaseTransform`.

    Presets: :meth:`sts` (rate 0.7, slow) and :meth:`fts` (rate 1.2, fast).
    """

    _param_names = ("rate", "backend")

    def __init__(
        self,
        rate: Range = 0.7,
        *,
        backend: str = DEFAULT_STRETCH_BACKEND,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.rate = check_range(rate, "rate", low=0.0)
        self.backend = check_backend(backend)

    @classmethod
    def sts(cls, rate: float = 0.7, **kwargs: Any) -> TimeStretch:
        """The paper's slow time stretch (STS): rate 0.7."""
        if not 0 < check_number(rate, "rate") < 1:
            raise ParameterError(f"rate must be in (0, 1) for STS, got {rate!r}")
        return cls(rate, **kwargs)

    @classmethod
    def fts(cls, rate: float = 1.2, **kwargs: Any) -> TimeStretch:
        """The paper's fast time stretch (FTS): rate 1.2."""
        if check_number(rate, "rate") <= 1:
            raise ParameterError(f"rate must be > 1 for FTS, got {rate!r}")
        return cls(rate, **kwargs)

    def draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {"rate": draw(self.rate, rng)}

    def stretch(self, samples: np.ndarray, sample_rate: int, *, rate: float) -> np.ndarray:
        """The stretched signal before crop/pad: ``round(len(samples) / rate)`` samples."""
        return time_stretch(samples, sample_rate=sample_rate, rate=rate, backend=self.backend)

    def apply(self, samples: np.ndarray, sample_rate: int, *, rate: float) -> np.ndarray:
        return fit(self.stretch(samples, sample_rate, rate=rate), np.shape(samples)[0])


class TrimSilence(BaseTransform):
    """Cut silent stretches (leading, inner, trailing), keeping some allowed silence.

    Non-silent intervals are found with ``librosa.effects.split`` (frames whose RMS is within
    ``top_db`` of the clip's loudest frame), then their ends are moved in to the first and last
    sample whose magnitude reaches that threshold, so the silence kept does not depend on the
    frame length (a frame reaches up to ``frame_length / 2`` into the silence). Each interval is
    then widened by ``keep_seconds / 2`` on both sides, so a silence between two sounds shrinks
    to at most ``keep_seconds`` (half after the first sound, half before the next; shorter
    silences are kept whole), and the leading and trailing silence to at most
    ``keep_seconds / 2``. The pieces are joined and zero-padded at the end back to the clip's
    length. A clip with no silence to cut, or with no sound at all, is
    returned unchanged.

    Args:
        top_db: threshold in dB below the loudest frame under which a frame is silent, > 0.
        keep_seconds: allowed silence kept between non-silent parts, >= 0.
        frame_length, hop_length: analysis frames of the silence detector, in samples
            (librosa's defaults, 2048 and 512).
        p, seed: see :class:`BaseTransform`.
    """

    _param_names = ("top_db", "keep_seconds", "frame_length", "hop_length")

    def __init__(
        self,
        top_db: float = 30.0,
        keep_seconds: float = 0.2,
        *,
        frame_length: int = 2048,
        hop_length: int = 512,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.top_db = check_number(top_db, "top_db", low=0.0)
        self.keep_seconds = check_number(keep_seconds, "keep_seconds", low=0.0, strict=False)
        if isinstance(frame_length, bool) or not isinstance(frame_length, int) or frame_length < 1:
            raise ParameterError(f"frame_length must be a positive integer, got {frame_length!r}")
        if isinstance(hop_length, bool) or not isinstance(hop_length, int) or hop_length < 1:
            raise ParameterError(f"hop_length must be a positive integer, got {hop_length!r}")
        self.frame_length = frame_length
        self.hop_length = hop_length

    def intervals(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Kept ``[start, end)`` sample intervals, shape (k, 2): sounds plus allowed silence."""
        x = np.asarray(samples, dtype=np.float32)
        n = x.shape[0]
        if n == 0 or not np.any(x):
            return np.array([[0, n]], dtype=np.int64)
        sound = librosa.effects.split(
            x, top_db=self.top_db, frame_length=self.frame_length, hop_length=self.hop_length
        )
        if sound.size == 0:
            return np.array([[0, n]], dtype=np.int64)
        rms = librosa.feature.rms(y=x, frame_length=self.frame_length, hop_length=self.hop_length)
        threshold = float(rms.max()) * 10.0 ** (-self.top_db / 20.0)
        half = int(round(self.keep_seconds * sample_rate / 2))
        merged: list[list[int]] = []
        for start, end in sound:
            loud = np.flatnonzero(np.abs(x[start:end]) >= threshold)
            if loud.size:
                start, end = start + loud[0], start + loud[-1] + 1
            lo, hi = max(0, int(start) - half), min(n, int(end) + half)
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return np.array(merged, dtype=np.int64)

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float32)
        kept = np.concatenate([x[a:b] for a, b in self.intervals(x, sample_rate)])
        return fit(kept, x.shape[0])


class AddNoise(BaseTransform):
    """Add white or pink Gaussian noise at a signal-to-noise ratio.

    SNR is measured on mean powers over the whole clip: the noise is scaled so that
    ``10 * log10(mean(x**2) / mean(noise**2)) == snr_db`` exactly. Pink noise has power
    density proportional to 1/f (white noise shaped in the frequency domain by 1/sqrt(f), DC
    removed). A silent clip (zero power) is returned unchanged: it has no SNR to aim at.

    Args:
        snr_db: signal-to-noise ratio in dB, or a ``(low, high)`` range drawn uniformly.
        color: ``"white"`` or ``"pink"``.
        p, seed: see :class:`BaseTransform`.
    """

    _param_names = ("snr_db", "color")

    def __init__(
        self,
        snr_db: Range = (10.0, 30.0),
        color: str = "white",
        *,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.snr_db = check_range(snr_db, "snr_db")
        self.color = check_choice(color, "color", _COLORS)

    def draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        # The noise itself is drawn in apply() from this seed, so apply() stays deterministic.
        return {"snr_db": draw(self.snr_db, rng), "noise_seed": int(rng.integers(2**63))}

    def apply(
        self, samples: np.ndarray, sample_rate: int, *, snr_db: float, noise_seed: int
    ) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float32)
        signal_power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
        if signal_power == 0.0:
            return x.copy()
        noise: np.ndarray = np.random.default_rng(noise_seed).standard_normal(size=x.shape)
        if self.color == "pink":
            spectrum = np.fft.rfft(noise)
            f = np.fft.rfftfreq(x.shape[0])
            shape = np.zeros_like(f)
            shape[1:] = 1.0 / np.sqrt(f[1:])
            noise = np.fft.irfft(spectrum * shape, n=x.shape[0])
        noise_power = float(np.mean(noise**2))
        if noise_power == 0.0:  # a 1-sample pink noise: nothing but DC, removed
            return x.copy()
        noise *= math.sqrt(signal_power / noise_power / 10.0 ** (snr_db / 10.0))
        return (x + noise).astype(np.float32)
