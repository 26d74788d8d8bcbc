"""Audio-level augmentation: the paper's NAA ("meaningful") transforms.

Each transform is a small class in the style of audiomentations: named, validated constructor
parameters, a probability ``p``, randomness kept apart from the work
(:meth:`BaseTransform.randomize_parameters` draws, :meth:`BaseTransform.apply` is deterministic
given what was drawn), and a call ``t(samples, sample_rate, rng=None)`` that returns *new*
float32 samples of the input's length and never changes the input.

The paper's six variants (see ``docs/method.md``) and their defaults, as built by
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

Layout: this module holds the paper's variants (:func:`naa_transform`, :func:`naa_variants`,
:func:`variant_rng`) and the online chain (:func:`random_naa_chain`), and re-exports the rest,
so every name is imported from here:

- :mod:`escnet.augment.audio_transforms`: :class:`BaseTransform` and the transforms;
- :mod:`escnet.augment.audio_chains`: :class:`Compose` and :class:`OneOf`;
- :mod:`escnet.augment.audio_dsp`: :func:`pitch_shift` and :func:`time_stretch` on plain arrays,
  their back-ends (:data:`DSP_BACKENDS`; why librosa is the default is told there) and the
  measurements :func:`peak_frequency` and :func:`active_duration`.

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

import zlib
from collections.abc import Sequence

import numpy as np

from escnet.augment.audio_chains import Compose, OneOf
from escnet.augment.audio_checks import Range, check_choice, check_probability, check_seed
from escnet.augment.audio_dsp import (
    DEFAULT_PITCH_BACKEND,
    DEFAULT_STRETCH_BACKEND,
    DSP_BACKENDS,
    active_duration,
    peak_frequency,
    pitch_shift,
    time_stretch,
)
from escnet.augment.audio_transforms import (
    AddNoise,
    BaseTransform,
    PitchShift,
    TimeShift,
    TimeStretch,
    TrimSilence,
)
from escnet.errors import ParameterError

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

#: The paper's NAA variants, in the order :func:`naa_variants` returns them.
NAA_VARIANTS: tuple[str, ...] = ("shift", "pps", "nps", "sts", "fts", "ts")


# --------------------------------------------------------------------------------------------
# the paper's variants


def naa_transform(name: str) -> BaseTransform:
    """A new transform for one of :data:`NAA_VARIANTS`, with the defaults of the module docstring.

    Raises:
        ValueError: ``name`` is not one of :data:`NAA_VARIANTS`.
    """
    check_choice(name, "name", NAA_VARIANTS)
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
    entropy = [check_seed(seed) or 0, zlib.crc32(name.encode("utf-8"))]
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
    if check_seed(seed) is None:
        raise ParameterError("seed must be a non-negative integer, got None")
    for name in names:
        check_choice(name, "names", NAA_VARIANTS)
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
        check_probability(value, name)
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
