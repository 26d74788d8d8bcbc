"""Image-level augmentation of spectral images: TAA, SpecAugment and mixup, batched in torch.

Every transform works on a batch of spectral images of shape ``(B, C, H, W)`` (escnet's are
``(B, 1, n_mels, frames)`` in dB) and returns a new tensor of the same shape, dtype and device.
Each sample of the batch gets its own random parameters. Randomness is separated from the work:
``sample(...)`` draws the parameters, ``apply(images, params)`` is deterministic given them, and
``__call__`` does both. A ``torch.Generator`` passed to ``__call__`` (or the transform's own one,
made from ``seed``) makes a run repeatable; with neither, torch's global RNG is used.

Image axes: **height = mel axis** (rows, ``H = n_mels``), **width = time axis** (columns,
``W = frames``). A "horizontal" flip therefore reverses time, a "width" shift moves along time and
a "height" shift moves along frequency.

Layout: this module re-exports every name, so callers import them from here:

- :mod:`escnet.augment.image_taa`: :class:`TAA`, the paper's Keras ``ImageDataGenerator``
  (:class:`TAAConfig`, :class:`TAAParams`); its docstring maps each Keras parameter to what TAA
  does;
- :mod:`escnet.augment.image_specaugment`: :class:`SpecAugment` (:class:`SpecAugmentParams`);
- :mod:`escnet.augment.image_mixup`: :func:`mixup` and :class:`Mixup`.

SpecAugment and mixup
---------------------
:class:`SpecAugment` (Park et al., 2019: frequency and time masking; time warping is omitted) and
:func:`mixup` / :class:`Mixup` (Zhang et al., 2018) are opt-in modern baselines, not part of the
paper.

Examples:
    >>> import torch
    >>> from escnet.augment.image import TAA, TAAConfig
    >>> taa = TAA(TAAConfig(), seed=0)
    >>> images = torch.randn(4, 1, 128, 216) * 20 - 40
    >>> tuple(taa(images).shape)
    (4, 1, 128, 216)
"""

from __future__ import annotations

from escnet.augment.image_mixup import Mixup, mixup
from escnet.augment.image_specaugment import SpecAugment, SpecAugmentParams
from escnet.augment.image_taa import TAA, TAAConfig, TAAParams
from escnet.augment.image_taa import FillMode as FillMode  # TAAConfig.fill_mode's type

__all__ = [
    "TAA",
    "Mixup",
    "SpecAugment",
    "SpecAugmentParams",
    "TAAConfig",
    "TAAParams",
    "mixup",
]
