"""What every inference backend is: a function from windows to probabilities, and the
:class:`ModelSpec` that says what it expects.

Both live apart from :mod:`escnet.inference.predictor`, which chooses a backend, so that each
backend imports them without importing the predictor back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Backend", "ModelSpec"]

#: A batch of windows (B, samples) float32 at the model's rate -> probabilities (B, classes).
Backend = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ModelSpec:
    """What the predictor needs to know of a model, whichever backend runs it.

    Attributes:
        name: registry name of the network.
        classes: class names, index = output.
        sample_rate: the rate the model takes (Hz).
        clip_seconds: the clip length it was trained on; the default window.
        metadata: its ``model.json``.
        path: the model directory.
    """

    name: str
    classes: list[str]
    sample_rate: int
    clip_seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def activation(self) -> str:
        """How the scores were made: ``"softmax"`` (probabilities over the classes, one label
        per clip) or ``"sigmoid"`` (multi-label: each class scored on its own, 0-1)."""
        return str(self.metadata.get("activation", "softmax"))

    @property
    def num_samples(self) -> int:
        """Samples of one training clip at :attr:`sample_rate`."""
        return int(round(self.clip_seconds * self.sample_rate))

    def describe(self) -> dict[str, Any]:
        """Name and version, for answers that say which model gave them."""
        weights = self.metadata.get("weights") or {}
        return {
            "name": self.name,
            "escnet_version": self.metadata.get("escnet_version"),
            "weights_sha256": str(weights.get("sha256", ""))[:16] or None,
            "classes": len(self.classes),
            "sample_rate": self.sample_rate,
            "clip_seconds": self.clip_seconds,
            "activation": self.activation,
        }
