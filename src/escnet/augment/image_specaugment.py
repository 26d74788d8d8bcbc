"""SpecAugment's frequency and time masking (Park et al., 2019; time warping omitted), per
sample and vectorised; an opt-in modern baseline, not part of the paper. The public names are
re-exported by :mod:`escnet.augment.image`, where callers import them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from escnet.augment.image_checks import (
    check_images,
    check_probability,
    is_int,
    make_generator,
    uniform,
)
from escnet.errors import ParameterError

__all__ = ["SpecAugment", "SpecAugmentParams"]


@dataclass(frozen=True)
class SpecAugmentParams:
    """Per-sample masks: ``(B, n)`` int64 starts and widths for the mel and time masks."""

    freq_start: Tensor
    freq_width: Tensor
    time_start: Tensor
    time_width: Tensor


class SpecAugment:
    """Frequency and time masking (SpecAugment without time warping), per sample, vectorised.

    Each of the ``freq_masks`` masks has a width ``f`` uniform in ``{0, ..., freq_width}`` (capped
    at ``n_mels``) and a start uniform in ``{0, ..., n_mels - f}``; likewise along time. Masks may
    overlap. Masked cells are set to ``mask_value``.

    Defaults for 128 mels x 216 frames (5 s at 22050 Hz, hop 512): two masks of up to 15 mel bands
    (~12 % of the mel axis each, PANNs' 8 of 64 bins) and two of up to 20 frames (~0.46 s, ~9 % of
    the clip, between PANNs' ~6 % and AST's ~19 % on ESC-50).

    Args:
        freq_masks: number of frequency masks per sample, ``>= 0``.
        freq_width: largest width of a frequency mask in mel bands, ``>= 0``.
        time_masks: number of time masks per sample, ``>= 0``.
        time_width: largest width of a time mask in frames, ``>= 0``.
        mask_value: ``"mean"`` (each sample's mean, a neutral level for dB images), ``"min"``
            (each sample's floor, i.e. silence) or a number.
        p: probability that a sample is masked at all.
        seed: seed of this transform's own generator, used when ``__call__`` gets none.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import SpecAugment
        >>> masked = SpecAugment(seed=0)(torch.randn(8, 1, 128, 216))
        >>> tuple(masked.shape)
        (8, 1, 128, 216)
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 15,
        time_masks: int = 2,
        time_width: int = 20,
        mask_value: Literal["mean", "min"] | float = "mean",
        p: float = 1.0,
        seed: int | None = None,
    ):
        for name, value in (
            ("freq_masks", freq_masks),
            ("freq_width", freq_width),
            ("time_masks", time_masks),
            ("time_width", time_width),
        ):
            if not is_int(value) or value < 0:
                raise ParameterError(f"{name} must be an int >= 0, got {value!r}")
        if isinstance(mask_value, str):
            if mask_value not in ("mean", "min"):
                raise ParameterError(
                    f"mask_value must be 'mean', 'min' or a number, got {mask_value!r}"
                )
        elif isinstance(mask_value, bool) or not isinstance(mask_value, int | float):
            raise ParameterError(
                f"mask_value must be 'mean', 'min' or a number, got {mask_value!r}"
            )
        elif not math.isfinite(mask_value):
            raise ParameterError(f"mask_value must be finite, got {mask_value}")
        check_probability("p", p)
        self.freq_masks = int(freq_masks)
        self.freq_width = int(freq_width)
        self.time_masks = int(time_masks)
        self.time_width = int(time_width)
        self.mask_value = mask_value
        self.p = p
        self.seed = seed
        self._generator = make_generator(seed)

    def __repr__(self) -> str:
        return (
            f"SpecAugment(freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
            f"time_masks={self.time_masks}, time_width={self.time_width}, "
            f"mask_value={self.mask_value!r}, p={self.p}, seed={self.seed})"
        )

    def sample(
        self, batch_size: int, n_mels: int, n_frames: int, generator: torch.Generator | None = None
    ) -> SpecAugmentParams:
        """Draw mask starts and widths; a sample not selected by ``p`` gets zero-width masks."""
        g = generator if generator is not None else self._generator
        nf, nt = self.freq_masks, self.time_masks
        u = uniform((batch_size, 1 + 2 * nf + 2 * nt), g)
        active = (u[:, :1] < self.p).long()

        def draw(cols: Tensor, count: int, max_width: int, size: int) -> tuple[Tensor, Tensor]:
            cap = min(max_width, size)
            width = (cols[:, :count] * (cap + 1)).long().clamp_max(cap) * active
            start = (cols[:, count:] * (size - width + 1)).long().minimum(size - width)
            return start, width

        f_start, f_width = draw(u[:, 1 : 1 + 2 * nf], nf, self.freq_width, n_mels)
        t_start, t_width = draw(u[:, 1 + 2 * nf :], nt, self.time_width, n_frames)
        return SpecAugmentParams(f_start, f_width, t_start, t_width)

    def apply(self, images: Tensor, params: SpecAugmentParams) -> Tensor:
        """Set the given mel bands and frames of each sample to the mask value."""
        check_images(images)
        _, _, h, w = images.shape
        device = images.device
        freq = _band_mask(params.freq_start.to(device), params.freq_width.to(device), h)
        time = _band_mask(params.time_start.to(device), params.time_width.to(device), w)
        mask = freq[:, None, :, None] | time[:, None, None, :]
        if self.mask_value == "mean":
            value = images.mean(dim=(1, 2, 3), keepdim=True)
        elif self.mask_value == "min":
            value = images.amin(dim=(1, 2, 3), keepdim=True)
        else:
            value = torch.tensor(float(self.mask_value), dtype=images.dtype, device=device)
        return torch.where(mask, value, images)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mask a batch ``(B, C, n_mels, frames)`` with fresh per-sample random masks."""
        check_images(images)
        b, _, h, w = images.shape
        return self.apply(images, self.sample(b, h, w, generator))


def _band_mask(start: Tensor, width: Tensor, size: int) -> Tensor:
    """``(B, size)`` bool: positions covered by any of the ``(B, n)`` bands ``[start, start+w)``."""
    pos = torch.arange(size, device=start.device)[None, None, :]
    s, e = start[..., None], (start + width)[..., None]
    return ((pos >= s) & (pos < e)).any(dim=1)
