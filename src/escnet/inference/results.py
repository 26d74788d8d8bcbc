"""What a prediction returns: class probabilities for a recording and for each of its windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from escnet.errors import ParameterError

__all__ = ["AGGREGATES", "SILENT_WARNING", "Prediction", "WindowPrediction", "aggregate", "top_k"]

#: How window probabilities become the recording's: their mean, or each class's maximum.
AGGREGATES = ("mean", "max")

#: The warning of a recording whose every sample is 0: a model still answers (some class with a
#: high probability), so the answer must say it describes no sound. Loading a silent clip for
#: training warns too (:func:`escnet.data.audio.load_audio`).
SILENT_WARNING = (
    "the recording is completely silent (every sample is 0): its labels describe no sound; "
    "check the recording"
)


def top_k(probabilities: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable ``(class, probability)`` pairs, most probable first (ties keep
    class order)."""
    if k < 1:
        raise ParameterError(f"top_k must be >= 1, got {k}")
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(classes[i], float(probabilities[i])) for i in order]


def aggregate(window_probabilities: np.ndarray, how: str = "mean") -> np.ndarray:
    """A recording's probabilities from its windows' (n_windows, classes): ``"mean"`` (a
    distribution again) or ``"max"`` (each class's strongest window; no longer sums to 1)."""
    if how not in AGGREGATES:
        raise ParameterError(f"aggregate must be one of {', '.join(AGGREGATES)}; got {how!r}")
    if how == "max":
        return window_probabilities.max(axis=0)
    return window_probabilities.mean(axis=0)


@dataclass(frozen=True)
class WindowPrediction:
    """One window of a recording: its span in seconds and its class probabilities."""

    start: float
    end: float
    probabilities: np.ndarray

    def label(self, classes: list[str]) -> str:
        return classes[int(np.argmax(self.probabilities))]


@dataclass
class Prediction:
    """Class probabilities of one recording.

    Attributes:
        classes: class names, index = position in the probability vectors.
        probabilities: the recording's probabilities, aggregated over its windows.
        windows: every window (one for a recording no longer than the model's clip).
        duration: the recording's length in seconds.
        aggregate: how the windows were combined (``"mean"`` or ``"max"``).
        source: the file it came from, when it came from one.
        warnings: what a reader of the labels must know (:data:`SILENT_WARNING`).
        activation: how the model scored the classes: ``"softmax"`` (probabilities that sum to
            1) or ``"sigmoid"`` (multi-label: each class on its own, they need not sum to 1).
    """

    classes: list[str]
    probabilities: np.ndarray
    windows: list[WindowPrediction]
    duration: float
    aggregate: str = "mean"
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    activation: str = "softmax"

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.classes[int(np.argmax(self.probabilities))]

    def top_k(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(class, probability)`` pairs of the recording."""
        return top_k(self.probabilities, self.classes, min(k, len(self.classes)))

    def window_labels(self) -> list[str]:
        """The most probable class of each window, in time order."""
        return [w.label(self.classes) for w in self.windows]

    def to_dict(self, k: int = 5, windows: bool | None = None) -> dict[str, Any]:
        """A JSON-ready summary: source, duration, aggregate, activation, ``top_k`` as a list of
        ``{"label", "probability"}``, ``warnings`` when there are any, and ``windows`` (start,
        end, top-k each) when the recording has more than one window or ``windows=True``."""
        k = min(k, len(self.classes))
        out: dict[str, Any] = {
            "source": self.source,
            "duration": round(self.duration, 4),
            "aggregate": self.aggregate,
            "activation": self.activation,
            "top_k": _labelled(top_k(self.probabilities, self.classes, k)),
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if windows or (windows is None and len(self.windows) > 1):
            out["windows"] = [
                {
                    "start": round(w.start, 4),
                    "end": round(w.end, 4),
                    "top_k": _labelled(top_k(w.probabilities, self.classes, k)),
                }
                for w in self.windows
            ]
        out.update(self.extra)
        return out


def _labelled(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"label": label, "probability": round(p, 6)} for label, p in pairs]
