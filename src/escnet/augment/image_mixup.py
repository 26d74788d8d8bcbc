"""mixup (Zhang et al., 2018) of a batch of images and their targets: :func:`mixup` and the
training-loop step :class:`Mixup`; an opt-in modern baseline, not part of the paper. The public
names are re-exported by :mod:`escnet.augment.image`, where callers import them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from escnet.augment.image_checks import check_probability, is_int, make_generator, uniform
from escnet.errors import ParameterError

__all__ = ["Mixup", "mixup"]


def _soft_targets(
    targets: Tensor, batch_size: int, num_classes: int | None, dtype: torch.dtype
) -> Tensor:
    if not isinstance(targets, Tensor):
        raise ParameterError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.shape[:1] != (batch_size,):
        raise ParameterError(
            f"targets must have one row per image ({batch_size}), got shape {tuple(targets.shape)}"
        )
    if targets.ndim == 1 and not targets.is_floating_point():
        if num_classes is None:
            raise ParameterError("num_classes is required when targets are class indices")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            raise ParameterError(
                f"targets must be class indices in [0, {num_classes}), "
                f"got values in [{int(targets.min())}, {int(targets.max())}]"
            )
        return F.one_hot(targets.long(), num_classes).to(dtype)
    if targets.ndim == 2 and targets.is_floating_point():
        if num_classes is not None and targets.shape[1] != num_classes:
            raise ParameterError(
                f"targets have {targets.shape[1]} columns but num_classes is {num_classes}"
            )
        return targets.to(dtype)
    raise ParameterError(
        "targets must be class indices of shape (B,) or float (soft/one-hot) targets of shape "
        f"(B, num_classes), got {targets.dtype} of shape {tuple(targets.shape)}"
    )


def _check_mixup_args(alpha: float, num_classes: int | None) -> None:
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
        raise ParameterError(f"alpha must be a finite number > 0, got {alpha!r}")
    if num_classes is not None and (not is_int(num_classes) or num_classes < 1):
        raise ParameterError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    # torch's Beta sampler takes no generator: seed a NumPy one from the torch stream instead.
    device = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(
    images: Tensor,
    targets: Tensor,
    *,
    alpha: float = 0.2,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Mix each image and its target with another of the batch (mixup, Zhang et al. 2018).

    One ``lam ~ Beta(alpha, alpha)`` for the whole batch and a random permutation ``perm`` give
    ``lam * images + (1 - lam) * images[perm]`` and the same mix of the one-hot targets.

    Args:
        images: batch ``(B, ...)`` of floating-point images.
        targets: class indices ``(B,)`` (needs ``num_classes``) or float targets
            ``(B, num_classes)`` (one-hot or already soft).
        alpha: Beta concentration, ``> 0`` (0.2 is common; 1.0 gives a uniform ``lam``).
        num_classes: number of classes, to one-hot class indices.
        generator: source of randomness (torch's global RNG when ``None``).

    Returns:
        ``(mixed_images, soft_targets)``: same shape, dtype and device as ``images``; soft
        targets ``(B, num_classes)`` in the images' dtype, each row summing to 1 when the inputs do.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import mixup
        >>> x, y = mixup(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 1]), num_classes=3)
        >>> torch.allclose(y.sum(1), torch.ones(4))
        True
    """
    _check_mixup_args(alpha, num_classes)
    if not isinstance(images, Tensor) or not images.is_floating_point() or images.ndim < 1:
        raise ParameterError("images must be a floating-point torch.Tensor with a batch axis")
    b = images.shape[0]
    soft = _soft_targets(targets, b, num_classes, images.dtype).to(images.device)
    lam = _beta(alpha, generator)
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(b, generator=generator, device=device).to(images.device)
    mixed = images * lam + images[perm] * (1.0 - lam)
    return mixed, soft * lam + soft[perm] * (1.0 - lam)


class Mixup:
    """:func:`mixup` as a training-loop step with its own seed and a probability ``p``.

    Args:
        alpha: Beta concentration, ``> 0``.
        num_classes: number of classes, to one-hot class-index targets.
        p: probability that a batch is mixed; otherwise it passes with one-hot targets.
        seed: seed of this object's own generator, used when ``__call__`` gets none.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import Mixup
        >>> step = Mixup(alpha=0.2, num_classes=10, seed=0)
        >>> x, y = step(torch.randn(8, 1, 128, 216), torch.randint(0, 10, (8,)))
        >>> tuple(y.shape)
        (8, 10)
    """

    def __init__(
        self,
        alpha: float = 0.2,
        num_classes: int | None = None,
        p: float = 1.0,
        seed: int | None = None,
    ):
        _check_mixup_args(alpha, num_classes)
        check_probability("p", p)
        self.alpha = alpha
        self.num_classes = num_classes
        self.p = p
        self.seed = seed
        self._generator = make_generator(seed)

    def __repr__(self) -> str:
        return (
            f"Mixup(alpha={self.alpha}, num_classes={self.num_classes}, p={self.p}, "
            f"seed={self.seed})"
        )

    def __call__(
        self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(mixed_images, soft_targets)`` for one batch; see :func:`mixup`."""
        g = generator if generator is not None else self._generator
        if self.p < 1.0 and float(uniform((1,), g)) >= self.p:
            if not isinstance(images, Tensor) or not images.is_floating_point():
                raise ParameterError(
                    "images must be a floating-point torch.Tensor with a batch axis"
                )
            soft = _soft_targets(targets, images.shape[0], self.num_classes, images.dtype)
            return images, soft.to(images.device)
        return mixup(images, targets, alpha=self.alpha, num_classes=self.num_classes, generator=g)
