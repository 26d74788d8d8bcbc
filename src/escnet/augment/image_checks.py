"""Argument checks and random draws shared by the image-level augmentation modules.

Private to :mod:`escnet.augment`: every check raises ``ValueError`` with a message that names the
argument.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from escnet.errors import ParameterError


def check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ParameterError(f"{name} must be in [0, 1], got {value}")


def check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise ParameterError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ParameterError(
            f"images must have shape (B, C, H, W) = (batch, 1, n_mels, frames), "
            f"got {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ParameterError(f"images must be a floating-point tensor, got {images.dtype}")


def uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) float64 draws on the generator's device (CPU for the global RNG)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=device)


def make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ParameterError(f"seed must be an int or None, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
