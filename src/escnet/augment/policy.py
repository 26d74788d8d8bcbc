"""Augmentation policies by name: the one option training uses to choose augmentation.

========================  ==============================================================
policy                    what happens to the *training* clips (test clips: nothing)
========================  ==============================================================
``none``                  nothing
``taa``                   the paper's TAA (Keras ImageDataGenerator) on each batch of images
``naa``                   the paper's offline NAA: originals + 6 cached variants (7x)
``naa-online``            a random NAA chain on each clip's audio, drawn anew every epoch
``naa+taa``               offline NAA expansion, then TAA on each batch
``naa+mixup``             offline NAA expansion, then mixup of each batch
``specaug``               SpecAugment time and frequency masks on each batch
``specaug+mixup``         SpecAugment, then mixup of each batch
========================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from escnet.augment.audio import Compose, random_naa_chain
from escnet.augment.image import TAA, Mixup, SpecAugment
from escnet.errors import ParameterError


@dataclass(frozen=True)
class AugmentPolicy:
    """Which augmentation stages a policy switches on."""

    name: str
    offline_naa: bool = False
    online_naa: bool = False
    taa: bool = False
    specaug: bool = False
    mixup: bool = False

    def audio_transform(self, seed: int | None = None) -> Compose | None:
        """The per-clip waveform transform of the online mode (``None`` for other policies)."""
        return random_naa_chain(seed=seed) if self.online_naa else None

    def image_transform(
        self, seed: int | None = None
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The per-batch image transform (TAA and/or SpecAugment), or ``None``."""
        steps: list[Any] = []
        if self.taa:
            steps.append(TAA(seed=seed))
        if self.specaug:
            steps.append(SpecAugment(seed=None if seed is None else seed + 1))
        if not steps:
            return None

        def apply(images: torch.Tensor) -> torch.Tensor:
            for step in steps:
                images = step(images)
            return images

        return apply

    def mixup_transform(self, num_classes: int, seed: int | None = None) -> Mixup | None:
        return Mixup(num_classes=num_classes, seed=seed) if self.mixup else None


POLICIES: dict[str, AugmentPolicy] = {
    "none": AugmentPolicy("none"),
    "taa": AugmentPolicy("taa", taa=True),
    "naa": AugmentPolicy("naa", offline_naa=True),
    "naa-online": AugmentPolicy("naa-online", online_naa=True),
    "naa+taa": AugmentPolicy("naa+taa", offline_naa=True, taa=True),
    "naa+mixup": AugmentPolicy("naa+mixup", offline_naa=True, mixup=True),
    "specaug": AugmentPolicy("specaug", specaug=True),
    "specaug+mixup": AugmentPolicy("specaug+mixup", specaug=True, mixup=True),
}


def get_policy(name: str) -> AugmentPolicy:
    """The policy called ``name``; ValueError listing the choices otherwise."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ParameterError(
            f"unknown augmentation policy {name!r}; choose one of {', '.join(POLICIES)}"
        ) from None
