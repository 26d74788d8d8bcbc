"""Chains of audio transforms: :class:`Compose` (all in order) and :class:`OneOf` (one at random).

Both draw every random value of a call from one Generator, so a chain called with the same
``rng`` (or built with the same ``seed``) repeats its output. The public names are re-exported by
:mod:`escnet.augment.audio`, where callers import them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from escnet.augment.audio_checks import (
    as_mono_float32,
    check_number,
    check_probability,
    check_sample_rate,
    check_seed,
)
from escnet.augment.audio_transforms import BaseTransform
from escnet.errors import ParameterError

__all__ = ["Compose", "OneOf"]


class _Chain:
    """Shared code of :class:`Compose` and :class:`OneOf`."""

    def __init__(self, transforms: Sequence[Any], *, p: float, seed: int | None) -> None:
        if isinstance(transforms, BaseTransform | _Chain) or not isinstance(transforms, Sequence):
            raise ParameterError(f"transforms must be a list of transforms, got {transforms!r}")
        if len(transforms) == 0:
            raise ParameterError("transforms must not be empty")
        for t in transforms:
            if not isinstance(t, BaseTransform | _Chain):
                raise ParameterError(f"transforms must hold transforms, got {t!r}")
        self.transforms = list(transforms)
        self.p = check_probability(p)
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    def __call__(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Apply with probability ``p``, drawing everything from one Generator.

        ``rng=None`` uses the chain's own Generator (see ``seed``); the members' own Generators
        are not used.
        """
        x = as_mono_float32(samples)
        sr = check_sample_rate(sample_rate)
        gen = self._rng if rng is None else rng
        if self.p < 1.0 and gen.random() >= self.p:
            return x.copy()
        return self._run(x, sr, gen)

    def _run(self, x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def reseed(self, seed: int | None) -> None:
        """Restart the chain's Generator from ``seed`` (e.g. in a data-loader worker)."""
        self.seed = check_seed(seed)
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
            w = [check_number(v, "weights", low=0.0, strict=False) for v in weights]
            if len(w) != len(self.transforms):
                raise ParameterError(
                    f"weights must have one value per transform ({len(self.transforms)}), "
                    f"got {len(w)}"
                )
            if sum(w) <= 0:
                raise ParameterError(f"weights must not all be zero, got {list(weights)!r}")
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
