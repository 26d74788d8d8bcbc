"""Augmentation: audio level (NAA, :mod:`escnet.augment.audio`), image level (TAA, SpecAugment,
mixup, :mod:`escnet.augment.image`), offline NAA expansion (:mod:`escnet.features.offline_naa`) and
policies by name (:mod:`escnet.augment.policy`), online NAA's per-draw waveform set
(:mod:`escnet.augment.online`)."""

from escnet.augment.audio import (
    NAA_VARIANTS,
    AddNoise,
    Compose,
    OneOf,
    PitchShift,
    TimeShift,
    TimeStretch,
    TrimSilence,
    naa_transform,
    naa_variants,
    random_naa_chain,
)
from escnet.augment.image import TAA, Mixup, SpecAugment, TAAConfig, mixup
from escnet.augment.online import WaveformDataset
from escnet.augment.policy import POLICIES, AugmentPolicy, get_policy

__all__ = [
    "NAA_VARIANTS",
    "POLICIES",
    "TAA",
    "AddNoise",
    "AugmentPolicy",
    "Compose",
    "Mixup",
    "OneOf",
    "PitchShift",
    "SpecAugment",
    "TAAConfig",
    "TimeShift",
    "TimeStretch",
    "TrimSilence",
    "WaveformDataset",
    "get_policy",
    "mixup",
    "naa_transform",
    "naa_variants",
    "random_naa_chain",
]
