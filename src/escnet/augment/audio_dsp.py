"""Pitch shift and time stretch on plain arrays, with a choice of DSP back-end, and the two
measurements (peak frequency, active duration) that the tests and the benchmark check them with.

Functions in the librosa style: arrays in, arrays out, keyword-only options; invalid input fails
early with a ``ValueError`` that names the argument.

Back-ends were chosen by measurement (``benchmarks/bench_naa_dsp.py``, 40 ESC-50 clips of 5 s at
22050 Hz, one thread): ``librosa`` (STFT phase vocoder; the paper's own tool) was the fastest in
two runs (55-63 clips/s, against 41-47 for python-stretch and 10-18 for pedalboard, on a shared
2-core AMD EPYC) and passes the same pitch (1 %) and duration (2 %) checks, so it is the default.
One difference the checks do not gate: librosa's phase vocoder (no phase locking) lowers the level
of a steady tone at slow rates (-4.5 dB at rate 0.7) where python-stretch keeps it;
``backend="python-stretch"`` is there for that, and ``backend="pedalboard"`` (Rubber Band) too,
when those packages are installed.

The public names are re-exported by :mod:`escnet.augment.audio`, where callers import them.
"""

from __future__ import annotations

import importlib.util

import librosa
import numpy as np

from escnet.augment.audio_checks import (
    as_mono_float32,
    check_choice,
    check_number,
    check_sample_rate,
    fit,
)

__all__ = [
    "DEFAULT_PITCH_BACKEND",
    "DEFAULT_STRETCH_BACKEND",
    "DSP_BACKENDS",
    "active_duration",
    "peak_frequency",
    "pitch_shift",
    "time_stretch",
]

#: Pitch-shift / time-stretch implementations, by the package that provides them:
#: ``"librosa"`` (STFT phase vocoder, then soxr resampling for pitch; the paper's choice),
#: ``"python-stretch"`` (Signalsmith Stretch) and ``"pedalboard"`` (Rubber Band, offline mode).
DSP_BACKENDS: tuple[str, ...] = ("librosa", "python-stretch", "pedalboard")
#: Fastest backend passing the quality checks in ``benchmarks/bench_naa_dsp.py``.
DEFAULT_PITCH_BACKEND = "librosa"
#: Fastest backend passing the quality checks in ``benchmarks/bench_naa_dsp.py``.
DEFAULT_STRETCH_BACKEND = "librosa"

_BACKEND_MODULES = {
    "librosa": "librosa",
    "python-stretch": "python_stretch",
    "pedalboard": "pedalboard",
}


def check_backend(backend: str, name: str = "backend") -> str:
    check_choice(backend, name, DSP_BACKENDS)
    if importlib.util.find_spec(_BACKEND_MODULES[backend]) is None:
        raise ImportError(
            f"{name}={backend!r} needs the {backend!r} package: pip install {backend}, "
            f"or use {name}='librosa'"
        )
    return backend


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
    x = as_mono_float32(samples)
    sr = check_sample_rate(sample_rate)
    n = check_number(semitones, "semitones")
    check_backend(backend)
    if n == 0.0:
        return x.copy()
    if backend == "librosa":
        y = librosa.effects.pitch_shift(x, sr=sr, n_steps=n)
    elif backend == "python-stretch":
        y = _signalsmith(x, sr, semitones=n)
    else:
        import pedalboard

        y = pedalboard.time_stretch(x[np.newaxis], float(sr), 1.0, n, preserve_formants=False)[0]
    return fit(y, x.shape[0])


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
    x = as_mono_float32(samples)
    sr = check_sample_rate(sample_rate)
    r = check_number(rate, "rate", low=0.0)
    check_backend(backend)
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
    return fit(y, target)


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
    x = as_mono_float32(samples).astype(np.float64)
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
    x = as_mono_float32(samples).astype(np.float64)
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
