"""Argument checks and small signal helpers shared by the audio-level augmentation modules.

Used by the modules of :mod:`escnet.augment`: every check raises
:class:`~escnet.errors.ParameterError` (a ``ValueError``) with a message that names the argument,
so the public constructors and functions fail early and say what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from escnet.errors import ParameterError

#: A fixed value, or a ``(low, high)`` range drawn uniformly on each call.
Range = float | tuple[float, float]


def check_probability(p: float, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ParameterError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_seed(seed: int | None, name: str = "seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def check_number(value: Any, name: str, *, low: float | None = None, strict: bool = True) -> float:
    """A finite real number, ``> low`` (``strict``) or ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    if low is not None and (v <= low if strict else v < low):
        raise ParameterError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return v


def check_range(
    value: Range, name: str, *, low: float | None = None, strict: bool = True
) -> float | tuple[float, float]:
    """A number, or a ``(low, high)`` pair with ``low <= high``, each checked as a number."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ParameterError(f"{name} must be a number or a (low, high) pair, got {value!r}")
        lo = check_number(value[0], name, low=low, strict=strict)
        hi = check_number(value[1], name, low=low, strict=strict)
        if lo > hi:
            raise ParameterError(f"{name} range must have low <= high, got {value!r}")
        return (lo, hi)
    return check_number(value, name, low=low, strict=strict)


def check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ParameterError(f"{name} must be one of {options}; got {value!r}")
    return value


def as_mono_float32(samples: Any) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ParameterError(f"samples must be a 1-D (mono) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ParameterError(f"samples must be floating point, got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


def check_sample_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ParameterError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ParameterError(f"sample_rate must be > 0, got {sample_rate}")
    return int(sample_rate)


def draw(value: float | tuple[float, float], rng: np.random.Generator) -> float:
    if isinstance(value, tuple):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


def fit(y: np.ndarray, num_samples: int) -> np.ndarray:
    """float32, cropped to its first ``num_samples`` or zero-padded at the end."""
    y = np.asarray(y, dtype=np.float32)
    if y.shape[0] > num_samples:
        return y[:num_samples]
    if y.shape[0] < num_samples:
        return np.pad(y, (0, num_samples - y.shape[0]))
    return y
