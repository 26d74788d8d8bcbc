"""Audio-level augmentation: the paper's NAA ("meaningful") transforms.

Each transform is a small class in the style of audiomentations: named, validated constructor
parameters, a probability ``p``, randomness kept apart from the work
(:meth:`BaseTransform.randomize_parameters` draws, :meth:`BaseTransform.apply` is deterministic
given what was drawn), and a call ``t(samples, sample_rate, rng=None)`` that returns *new*
float32 samples of the input's length and never changes the input.

The paper's six variants (see ``docs/paper.md``) and their defaults, as built by
:func:`naa_transform`:

======== ============================================================================
name     transform
======== ============================================================================
shift    ``TimeShift(max_seconds=0.5, direction="both")``
pps      ``PitchShift(semitones=+2.0)`` (positive pitch shift)
nps      ``PitchShift(semitones=-2.0)`` (negative pitch shift)
sts      ``TimeStretch(rate=0.7)`` (slow: 1/0.7 = 1.43 times longer, then cropped)
fts      ``TimeStretch(rate=1.2)`` (fast: 1/1.2 = 0.83 times as long, then zero-padded)
ts       ``TrimSilence(top_db=30.0, keep_seconds=0.2)``
======== ============================================================================

DSP backends for pitch shift and time stretch were chosen by measurement
(``benchmarks/bench_naa_dsp.py``, 40 ESC-50 clips of 5 s at 22050 Hz, one thread): ``librosa``
(STFT phase vocoder; the paper's own tool) was the fastest in two runs (55-63 clips/s, against
41-47 for python-stretch and 10-18 for pedalboard, on a shared 2-core AMD EPYC) and passes the
same pitch (1 %) and duration (2 %) checks, so it is the default. One difference the checks do
not gate: librosa's phase vocoder (no phase locking) lowers the level of a steady tone at slow
rates (-4.5 dB at rate 0.7) where python-stretch keeps it; ``backend="python-stretch"`` is there
for that, and ``backend="pedalboard"`` (Rubber Band) too, when those packages are installed.

Examples:
    >>> import numpy as np
    >>> from escnet.augment.audio import PitchShift, naa_variants
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> PitchShift.pps()(y, 22050).shape
    (22050,)
    >>> list(naa_variants(y, 22050, seed=0))
    ['shift', 'pps', 'nps', 'sts', 'fts', 'ts']
"""

from __future__ import annotations

import importlib.util
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import librosa
import numpy as np

__all__ = [
    "DSP_BACKENDS",
    "DEFAULT_PITCH_BACKEND",
    "DEFAULT_STRETCH_BACKEND",
    "NAA_VARIANTS",
    "AddNoise",
    "BaseTransform",
    "Compose",
    "OneOf",
    "PitchShift",
    "TimeShift",
    "TimeStretch",
    "TrimSilence",
    "active_duration",
    "naa_transform",
    "naa_variants",
    "peak_frequency",
    "pitch_shift",
    "random_naa_chain",
    "time_stretch",
    "variant_rng",
]

#: Pitch-shift / time-stretch implementations, by the package that provides them:
#: ``"librosa"`` (STFT phase vocoder, then soxr resampling for pitch; the paper's choice),
#: ``"python-stretch"`` (Signalsmith Stretch) and ``"pedalboard"`` (Rubber Band, offline mode).
DSP_BACKENDS: tuple[str, ...] = ("librosa", "python-stretch", "pedalboard")
#: Fastest backend passing the quality checks in ``benchmarks/bench_naa_dsp.py``.
DEFAULT_PITCH_BACKEND = "librosa"
#: Fastest backend passing the quality checks in ``benchmarks/bench_naa_dsp.py``.
DEFAULT_STRETCH_BACKEND = "librosa"

#: The paper's NAA variants, in the order :func:`naa_variants` returns them.
NAA_VARIANTS: tuple[str, ...] = ("shift", "pps", "nps", "sts", "fts", "ts")

_BACKEND_MODULES = {
    "librosa": "librosa",
    "python-stretch": "python_stretch",
    "pedalboard": "pedalboard",
}
_DIRECTIONS = ("left", "right", "both")
_COLORS = ("white", "pink")

Range = float | tuple[float, float]


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_probability(p: float, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _check_seed(seed: int | None, name: str = "seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _check_number(value: Any, name: str, *, low: float | None = None, strict: bool = True) -> float:
    """A finite real number, ``> low`` (``strict``) or ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v <= low if strict else v < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return v


def _check_range(
    value: Range, name: str, *, low: float | None = None, strict: bool = True
) -> float | tuple[float, float]:
    """A number, or a ``(low, high)`` pair with ``low <= high``, each checked as a number."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
        lo = _check_number(value[0], name, low=low, strict=strict)
        hi = _check_number(value[1], name, low=low, strict=strict)
        if lo > hi:
            raise ValueError(f"{name} range must have low <= high, got {value!r}")
        return (lo, hi)
    return _check_number(value, name, low=low, strict=strict)


def _check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


def _check_backend(backend: str, name: str = "backend") -> str:
    _check_choice(backend, name, DSP_BACKENDS)
    if importlib.util.find_spec(_BACKEND_MODULES[backend]) is None:
        raise ImportError(
            f"{name}={backend!r} needs the {backend!r} package: pip install {backend}, "
            f"or use {name}='librosa'"
        )
    return backend


def _as_mono_float32(samples: Any) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"samples must be a 1-D (mono) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"samples must be floating point, got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


def _check_sample_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    return int(sample_rate)


def _draw(value: float | tuple[float, float], rng: np.random.Generator) -> float:
    if isinstance(value, tuple):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


def _fit(y: np.ndarray, num_samples: int) -> np.ndarray:
    """float32, cropped to its first ``num_samples`` or zero-padded at the end."""
    y = np.asarray(y, dtype=np.float32)
    if y.shape[0] > num_samples:
        return y[:num_samples]
    if y.shape[0] < num_samples:
        return np.pad(y, (0, num_samples - y.shape[0]))
    return y


# --------------------------------------------------------------------------------------------
# DSP functions (librosa style: arrays in, arrays out, keyword-only options)


def pitch_shift(
    samples: np.ndarray,
    *,
    sample_rate: int,
    semitones: float,
    backend: str = DEFAULT_PITCH_BACKEND,
) -> np.ndarray:
    """Shift the pitch by ``semitones`` (frequencies times ``2 ** (semitones / 12)``), same length.

    Args:
        samples: mono signal, 1-D float.
        sample_rate: its rate in Hz.
        semitones: shift; positive is up, negative down, fractional allowed.
        backend: one of :data:`DSP_BACKENDS`.

    Returns:
        A new float32 array of the input's length.

    Examples:
        >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
        >>> round(peak_frequency(pitch_shift(y, sample_rate=22050, semitones=12), 22050))
        880
    """
    x = _as_mono_float32(samples)
    sr = _check_sample_rate(sample_rate)
    n = _check_number(semitones, "semitones")
    _check_backend(backend)
    if n == 0.0:
        return x.copy()
    if backend == "librosa":
        y = librosa.effects.pitch_shift(x, sr=sr, n_steps=n)
    elif backend == "python-stretch":
        y = _signalsmith(x, sr, semitones=n)
    else:
        import pedalboard

        y = pedalboard.time_stretch(x[np.newaxis], float(sr), 1.0, n, preserve_formants=False)[0]
    return _fit(y, x.shape[0])


def time_stretch(
    samples: np.ndarray,
    *,
    sample_rate: int,
    rate: float,
    backend: str = DEFAULT_STRETCH_BACKEND,
) -> np.ndarray:
    """Play ``rate`` times as fast without changing pitch: about ``len / rate`` samples out.

    ``rate < 1`` slows down (longer output), ``rate > 1`` speeds up (shorter output). The result
    is *not* fitted back to the input's length; :class:`TimeStretch` does that.

    Args:
        samples: mono signal, 1-D float.
        sample_rate: its rate in Hz (used by the python-stretch and pedalboard backends).
        rate: speed factor, > 0.
        backend: one of :data:`DSP_BACKENDS`.

    Returns:
        A new float32 array of ``round(len(samples) / rate)`` samples (librosa's length rule,
        applied to every backend).

    Examples:
        >>> y = np.zeros(22050, dtype=np.float32)
        >>> time_stretch(y, sample_rate=22050, rate=0.5).shape
        (44100,)
    """
    x = _as_mono_float32(samples)
    sr = _check_sample_rate(sample_rate)
    r = _check_number(rate, "rate", low=0.0)
    _check_backend(backend)
    target = int(round(x.shape[0] / r))
    if r == 1.0:
        return x.copy()
    if backend == "librosa":
        y = librosa.effects.time_stretch(x, rate=r)
    elif backend == "python-stretch":
        y = _signalsmith(x, sr, rate=r)
    else:
        import pedalboard

        y = pedalboard.time_stretch(x[np.newaxis], float(sr), r)[0]
    return _fit(y, target)


def _signalsmith(
    x: np.ndarray, sample_rate: int, *, semitones: float = 0.0, rate: float = 1.0
) -> np.ndarray:
    from python_stretch import Signalsmith

    # A fixed seed: Signalsmith Stretch has internal randomness; augmentation must be repeatable.
    stretch = Signalsmith.Stretch(0)
    stretch.preset(1, float(sample_rate))
    if semitones:
        stretch.setTransposeSemitones(semitones)
    if rate != 1.0:
        stretch.setTimeFactor(rate)
    out = np.asarray(stretch.process(np.ascontiguousarray(x[np.newaxis])))
    return out[0]


# --------------------------------------------------------------------------------------------
# measurements used by the tests and the benchmark


def peak_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency (Hz) of the strongest spectral peak, interpolated between FFT bins.

    Hann window, 4x zero-padding and a parabola through the log magnitudes around the peak:
    accurate to far below 0.1 % for a steady tone of a second or more.
    """
    x = _as_mono_float32(samples).astype(np.float64)
    n = x.shape[0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), n=4 * n))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-30)
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return float((k + offset) * sample_rate / (4 * n))


def active_duration(samples: np.ndarray, sample_rate: int, *, threshold: float = 0.5) -> float:
    """Seconds from the first to the last sample whose envelope reaches ``threshold * level``.

    The envelope is the analytic-signal magnitude smoothed over 10 ms; ``level`` is its median
    where it is above a tenth of its peak, i.e. the steady level of a tone burst. A burst thus
    measures its length between its half-level points, whatever its frequency, and a short
    overshoot at an onset (a phase vocoder's) does not move the threshold.
    """
    x = _as_mono_float32(samples).astype(np.float64)
    from scipy.signal import hilbert  # imported here: scipy.signal costs ~0.7 s to import

    envelope = np.abs(hilbert(x))
    width = max(1, int(0.01 * sample_rate))
    envelope = np.convolve(envelope, np.ones(width) / width, mode="same")
    peak = float(envelope.max()) if envelope.size else 0.0
    if peak == 0.0:
        return 0.0
    level = float(np.median(envelope[envelope >= 0.1 * peak]))
    above = np.flatnonzero(envelope >= threshold * level)
    return float(above[-1] - above[0] + 1) / sample_rate


# --------------------------------------------------------------------------------------------
# transforms


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
        self.p = _check_probability(p)
        self.seed = _check_seed(seed)
        self._rng = np.random.default_rng(self.seed)
        #: what the last :meth:`randomize_parameters` drew
        self.parameters: dict[str, Any] = {}

    def reseed(self, seed: int | None) -> None:
        """Restart the instance's own Generator from ``seed`` (e.g. in a data-loader worker)."""
        self.seed = _check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    def randomize_parameters(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        """Draw this call's parameters from ``rng``; store them in ``self.parameters`` too."""
        self.parameters = self._draw(samples, sample_rate, rng)
        return dict(self.parameters)

    def _draw(
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
        x = _as_mono_float32(samples)
        sr = _check_sample_rate(sample_rate)
        gen = self._rng if rng is None else rng
        if self.p < 1.0 and gen.random() >= self.p:
            return x.copy()
        params = self.randomize_parameters(x, sr, gen)
        y = _fit(self.apply(x, sr, **params), x.shape[0])
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
        self.max_seconds = _check_number(max_seconds, "max_seconds", low=0.0, strict=False)
        self.direction = _check_choice(direction, "direction", _DIRECTIONS)

    def _draw(
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
        self.semitones = _check_range(semitones, "semitones")
        self.backend = _check_backend(backend)

    @classmethod
    def pps(cls, semitones: float = 2.0, **kwargs: Any) -> PitchShift:
        """The paper's positive pitch shift (PPS): +2 semitones by default."""
        if _check_number(semitones, "semitones") <= 0:
            raise ValueError(f"semitones must be > 0 for PPS, got {semitones!r}")
        return cls(semitones, **kwargs)

    @classmethod
    def nps(cls, semitones: float = -2.0, **kwargs: Any) -> PitchShift:
        """The paper's negative pitch shift (NPS): -2 semitones by default."""
        if _check_number(semitones, "semitones") >= 0:
            raise ValueError(f"semitones must be < 0 for NPS, got {semitones!r}")
        return cls(semitones, **kwargs)

    def _draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {"semitones": _draw(self.semitones, rng)}

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
        self.rate = _check_range(rate, "rate", low=0.0)
        self.backend = _check_backend(backend)

    @classmethod
    def sts(cls, rate: float = 0.7, **kwargs: Any) -> TimeStretch:
        """The paper's slow time stretch (STS): rate 0.7."""
        if not 0 < _check_number(rate, "rate") < 1:
            raise ValueError(f"rate must be in (0, 1) for STS, got {rate!r}")
        return cls(rate, **kwargs)

    @classmethod
    def fts(cls, rate: float = 1.2, **kwargs: Any) -> TimeStretch:
        """The paper's fast time stretch (FTS): rate 1.2."""
        if _check_number(rate, "rate") <= 1:
            raise ValueError(f"rate must be > 1 for FTS, got {rate!r}")
        return cls(rate, **kwargs)

    def _draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {"rate": _draw(self.rate, rng)}

    def stretch(self, samples: np.ndarray, sample_rate: int, *, rate: float) -> np.ndarray:
        """The stretched signal before crop/pad: ``round(len(samples) / rate)`` samples."""
        return time_stretch(samples, sample_rate=sample_rate, rate=rate, backend=self.backend)

    def apply(self, samples: np.ndarray, sample_rate: int, *, rate: float) -> np.ndarray:
        return _fit(self.stretch(samples, sample_rate, rate=rate), np.shape(samples)[0])


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
        self.top_db = _check_number(top_db, "top_db", low=0.0)
        self.keep_seconds = _check_number(keep_seconds, "keep_seconds", low=0.0, strict=False)
        if isinstance(frame_length, bool) or not isinstance(frame_length, int) or frame_length < 1:
            raise ValueError(f"frame_length must be a positive integer, got {frame_length!r}")
        if isinstance(hop_length, bool) or not isinstance(hop_length, int) or hop_length < 1:
            raise ValueError(f"hop_length must be a positive integer, got {hop_length!r}")
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
        return _fit(kept, x.shape[0])


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
        self.snr_db = _check_range(snr_db, "snr_db")
        self.color = _check_choice(color, "color", _COLORS)

    def _draw(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        # The noise itself is drawn in apply() from this seed, so apply() stays deterministic.
        return {"snr_db": _draw(self.snr_db, rng), "noise_seed": int(rng.integers(2**63))}

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


# --------------------------------------------------------------------------------------------
# chains


class _Chain:
    """Shared code of :class:`Compose` and :class:`OneOf`."""

    def __init__(self, transforms: Sequence[Any], *, p: float, seed: int | None) -> None:
        if isinstance(transforms, BaseTransform | _Chain) or not isinstance(transforms, Sequence):
            raise ValueError(f"transforms must be a list of transforms, got {transforms!r}")
        if len(transforms) == 0:
            raise ValueError("transforms must not be empty")
        for t in transforms:
            if not isinstance(t, BaseTransform | _Chain):
                raise ValueError(f"transforms must hold transforms, got {t!r}")
        self.transforms = list(transforms)
        self.p = _check_probability(p)
        self.seed = _check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    def __call__(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Apply with probability ``p``, drawing everything from one Generator.

        ``rng=None`` uses the chain's own Generator (see ``seed``); the members' own Generators
        are not used.
        """
        x = _as_mono_float32(samples)
        sr = _check_sample_rate(sample_rate)
        gen = self._rng if rng is None else rng
        if self.p < 1.0 and gen.random() >= self.p:
            return x.copy()
        return self._run(x, sr, gen)

    def _run(self, x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def reseed(self, seed: int | None) -> None:
        """Restart the chain's Generator from ``seed`` (e.g. in a data-loader worker)."""
        self.seed = _check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    def params(self) -> dict[str, Any]:
        """Members' ``params()`` (each with its class name under ``"transform"``), p and seed."""
        members = [{"transform": type(t).__name__, **t.params()} for t in self.transforms]
        return {"transforms": members, "p": self.p, "seed": self.seed}

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"{type(self).__name__}([{inner}], p={self.p!r}, seed={self.seed!r})"


class Compose(_Chain):
    """Apply each transform in order (each with its own ``p``), all drawing from one Generator.

    Args:
        transforms: the transforms, in order.
        p: probability of applying the chain at all.
        seed: seed of the chain's Generator (used when a call passes no ``rng``).
    """

    def __init__(
        self, transforms: Sequence[Any], *, p: float = 1.0, seed: int | None = None
    ) -> None:
        super().__init__(transforms, p=p, seed=seed)

    def _run(self, x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        y = x
        for t in self.transforms:
            y = t(y, sr, rng=rng)
        return y if y is not x else x.copy()


class OneOf(_Chain):
    """Apply exactly one of the transforms, picked at random (its own ``p`` still applies).

    Args:
        transforms: the candidates.
        weights: relative chances of each candidate (normalised); ``None`` means equal.
        p: probability of applying anything at all.
        seed: seed of the chain's Generator (used when a call passes no ``rng``).
    """

    def __init__(
        self,
        transforms: Sequence[Any],
        *,
        weights: Sequence[float] | None = None,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(transforms, p=p, seed=seed)
        if weights is None:
            self.weights: list[float] | None = None
        else:
            w = [_check_number(v, "weights", low=0.0, strict=False) for v in weights]
            if len(w) != len(self.transforms):
                raise ValueError(
                    f"weights must have one value per transform ({len(self.transforms)}), "
                    f"got {len(w)}"
                )
            if sum(w) <= 0:
                raise ValueError(f"weights must not all be zero, got {list(weights)!r}")
            self.weights = w

    def _run(self, x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        if self.weights is None:
            i = int(rng.integers(len(self.transforms)))
        else:
            probs = np.asarray(self.weights) / sum(self.weights)
            i = int(rng.choice(len(self.transforms), p=probs))
        return self.transforms[i](x, sr, rng=rng)

    def params(self) -> dict[str, Any]:
        values = super().params()
        values["weights"] = self.weights
        return values


# --------------------------------------------------------------------------------------------
# the paper's variants


def naa_transform(name: str) -> BaseTransform:
    """A new transform for one of :data:`NAA_VARIANTS`, with the defaults of the module docstring.

    Raises:
        ValueError: ``name`` is not one of :data:`NAA_VARIANTS`.
    """
    _check_choice(name, "name", NAA_VARIANTS)
    if name == "shift":
        return TimeShift(max_seconds=0.5, direction="both")
    if name == "pps":
        return PitchShift.pps()
    if name == "nps":
        return PitchShift.nps()
    if name == "sts":
        return TimeStretch.sts()
    if name == "fts":
        return TimeStretch.fts()
    return TrimSilence(top_db=30.0, keep_seconds=0.2)


def variant_rng(seed: int, name: str, clip: str | None = None) -> np.random.Generator:
    """The Generator :func:`naa_variants` uses for variant ``name`` of clip ``clip`` under ``seed``.

    ``clip`` identifies the clip (the offline expansion passes its content digest), so that each
    clip gets its own random draw -- its own time shift -- as the paper's per-call shift does,
    reproducible from the seed. ``None`` gives one draw shared by every clip (the behaviour
    before per-clip draws). A variant's samples are a function of (clip, ``clip``,
    ``naa_transform(name).params()``, seed): a valid cache key when ``clip`` is the content
    digest.
    """
    entropy = [_check_seed(seed) or 0, zlib.crc32(name.encode("utf-8"))]
    if clip is not None:
        entropy.append(zlib.crc32(clip.encode("utf-8")))
    return np.random.default_rng(entropy)


def naa_variants(
    samples: np.ndarray,
    sample_rate: int,
    seed: int,
    *,
    names: Sequence[str] = NAA_VARIANTS,
    clip: str | None = None,
) -> dict[str, np.ndarray]:
    """The paper's NAA variants of one clip, in the order of ``names``.

    Args:
        samples: mono clip, 1-D float (not modified).
        sample_rate: its rate in Hz.
        seed: non-negative integer; the same seed gives the same variants.
        names: which variants, a subset of :data:`NAA_VARIANTS` (default: all six).
        clip: the clip's identity (e.g. its content digest) for a per-clip random draw (see
            :func:`variant_rng`); pass it whenever several clips are expanded, or every clip
            is shifted by the same offset.

    Returns:
        ``{name: float32 array of the clip's length}``.

    Examples:
        >>> y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
        >>> v = naa_variants(y, 22050, seed=1, names=("shift", "ts"))
        >>> [a.shape for a in v.values()]
        [(22050,), (22050,)]
    """
    if _check_seed(seed) is None:
        raise ValueError("seed must be a non-negative integer, got None")
    for name in names:
        _check_choice(name, "names", NAA_VARIANTS)
    return {
        name: naa_transform(name)(samples, sample_rate, rng=variant_rng(seed, name, clip))
        for name in names
    }


def random_naa_chain(
    *,
    p_trim: float = 0.25,
    p_stretch: float = 0.5,
    p_pitch: float = 0.5,
    p_shift: float = 0.5,
    p_noise: float = 0.0,
    noise_snr_db: Range = (10.0, 30.0),
    seed: int | None = None,
) -> Compose:
    """The online NAA mode: a fresh random combination of the paper's transforms on each call.

    The chain, in order, each step independent:

    1. ``TrimSilence()`` (ts) with probability ``p_trim`` (0.25);
    2. ``OneOf([TimeStretch.sts(), TimeStretch.fts()])`` with probability ``p_stretch`` (0.5),
       each of the two equally likely;
    3. ``OneOf([PitchShift.pps(), PitchShift.nps()])`` with probability ``p_pitch`` (0.5),
       each of the two equally likely;
    4. ``TimeShift(0.5, "both")`` with probability ``p_shift`` (0.5);
    5. ``AddNoise(noise_snr_db, "white")`` with probability ``p_noise`` (0: off, as in the paper).

    With the defaults a call returns the clip unchanged with probability
    0.75 * 0.5 * 0.5 * 0.5 = 0.094. Silence is trimmed first (before stretching moves it) and
    the shift comes last so that its zeroed part is not stretched or pitch-shifted.

    In a multi-process data loader, forked workers start with copies of one Generator and
    would draw the same augmentations: call ``chain.reseed(...)`` with a per-worker seed (in
    ``worker_init_fn``), or pass ``rng=`` on each call.

    Examples:
        >>> chain = random_naa_chain(seed=0)
        >>> chain(np.zeros(22050, dtype=np.float32), 22050).shape
        (22050,)
    """
    for name, value in (
        ("p_trim", p_trim),
        ("p_stretch", p_stretch),
        ("p_pitch", p_pitch),
        ("p_shift", p_shift),
        ("p_noise", p_noise),
    ):
        _check_probability(value, name)
    return Compose(
        [
            TrimSilence(top_db=30.0, keep_seconds=0.2, p=p_trim),
            OneOf([TimeStretch.sts(), TimeStretch.fts()], p=p_stretch),
            OneOf([PitchShift.pps(), PitchShift.nps()], p=p_pitch),
            TimeShift(max_seconds=0.5, direction="both", p=p_shift),
            AddNoise(snr_db=noise_snr_db, color="white", p=p_noise),
        ],
        seed=seed,
    )
