"""Window scores to events: one sound gives one event, not one per overlapping window.

Windows overlap (a 5-s window at a 1.25-s hop hears each instant four times), so a naive
labeller repeats a sound once per window. :class:`EventTracker` keeps at most one open event per
class and decides with hysteresis: an event starts when its class's score reaches the onset
threshold and lasts while the score stays at or above the (lower) offset threshold, so a score
wavering around one threshold does not split a sound in two. A window that the silence gate
found silent scores nothing and ends every open event; a window whose new part (what no earlier
window held) is silent starts none, since any sound in it was in the windows before.

An event is confirmed (reported) once it has lasted ``min_duration`` and either one of its
windows scored at least ``confident`` or a second window heard it too; one that ends sooner is
dropped. A sure detection is thus reported from its first window, while an unsure one waits a
hop for corroboration: the window in which a sound first appears may hold only its first
fraction of a second, and a model can mistake such a fragment for something else (an ESC-50
probe called a bark's first 60 ms a pig at 0.72, then the whole bark a dog at 1.00). At the end
of the stream, an event that had no next window to confirm it is reported if it has lasted
``min_duration``.

Times come from windows, so they are known to within a window: an event's onset is where the
new part of the first window that heard it begins (the end of the window before it, or its own
start if there was none), its offset the start of the first window that no longer does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from escnet.errors import ParameterError

__all__ = ["Event", "EventTracker", "TrackerConfig"]


@dataclass(frozen=True)
class TrackerConfig:
    """The rules that turn window scores into events.

    Attributes:
        onset: score at which an event starts (0-1, default 0.5).
        offset: score under which it ends (0-1, at most ``onset``; default 0.3).
        min_duration: seconds an event must last to be reported (0: from its first window).
        confident: a score at which one window is enough to report an event (0.9); under it, a
            second window must hear it too (1: always a second window; ``onset``: never).
        silence_db: a window whose loudest 50-ms frame is quieter than this (dB relative to
            full scale) is silent: not scored, and it ends every open event (-60).
        per_class: ``{class: (onset, offset)}`` for classes whose thresholds differ from the
            defaults, e.g. thresholds tuned per class on validation data.
    """

    onset: float = 0.5
    offset: float = 0.3
    min_duration: float = 0.0
    confident: float = 0.9
    silence_db: float = -60.0
    per_class: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_pair("onset/offset", self.onset, self.offset)
        for name, (on, off) in self.per_class.items():
            _check_pair(f"per_class[{name!r}]", on, off)
        if not 0 <= self.min_duration <= 3600:  # also refuses nan
            raise ParameterError(
                f"min_duration must be a number of seconds in [0, 3600], got {self.min_duration}"
            )
        if not 0 < self.confident <= 1:
            raise ParameterError(f"confident must be a score in (0, 1], got {self.confident}")
        if not -200 <= self.silence_db <= 0:
            raise ParameterError(
                f"silence_db must be in [-200, 0] dB relative to full scale, got {self.silence_db}"
            )

    def thresholds(self, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(onset, offset) thresholds per class, in the order of ``classes``.

        Raises:
            ParameterError: ``per_class`` names a class the model does not have.
        """
        unknown = sorted(set(self.per_class) - set(classes))
        if unknown:
            raise ParameterError(
                f"per-class thresholds for {', '.join(unknown)}: not classes of this model"
            )
        onsets = np.array([self.per_class.get(c, (self.onset, self.offset))[0] for c in classes])
        offsets = np.array([self.per_class.get(c, (self.onset, self.offset))[1] for c in classes])
        return onsets, offsets


def _check_pair(name: str, onset: float, offset: float) -> None:
    if not (0 < onset <= 1 and 0 < offset <= onset):  # also refuses nan
        raise ParameterError(
            f"{name} thresholds must satisfy 0 < offset <= onset <= 1, got onset {onset}, "
            f"offset {offset}"
        )


@dataclass(frozen=True)
class Event:
    """One sound: its class, onset and offset in seconds from the start of the stream, and its
    highest window score. ``offset`` is ``None`` while the sound lasts."""

    label: str
    onset: float
    offset: float | None
    score: float

    @property
    def ongoing(self) -> bool:
        """Whether this is the notice of an event that has started and not yet ended."""
        return self.offset is None

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "onset": round(self.onset, 3),
            "offset": None if self.offset is None else round(self.offset, 3),
            "score": round(self.score, 4),
        }


@dataclass
class _Open:
    onset: float
    score: float
    last_end: float
    windows: int = 0
    confirmed: bool = False


class EventTracker:
    """Events from a stream of window scores, in time order (see the module docstring).

    Args:
        classes: class names, in the order of the score vectors.
        config: thresholds, minimum duration.

    Examples:
        >>> t = EventTracker(["dog", "siren"])
        >>> t.update(0.0, 2.0, np.array([0.1, 0.2]))
        []
        >>> t.update(1.0, 3.0, np.array([0.9, 0.1]))  # new since the last window: 2-3 s
        [Event(label='dog', onset=2.0, offset=None, score=0.9)]
        >>> t.update(2.0, 4.0, np.array([0.8, 0.2]))  # the same sound: nothing new
        []
        >>> t.update(3.0, 5.0, None)  # a silent window ends it
        [Event(label='dog', onset=2.0, offset=3.0, score=0.9)]
    """

    def __init__(self, classes: Sequence[str], config: TrackerConfig | None = None) -> None:
        self.classes = list(classes)
        self.config = config or TrackerConfig()
        self._onsets, self._offsets = self.config.thresholds(self.classes)
        self._open: dict[int, _Open] = {}
        self._last_end = -np.inf  # end of the previous window
        self.reported = 0  # events confirmed so far

    def update(
        self, start: float, end: float, scores: np.ndarray | None, *, fresh: bool = True
    ) -> list[Event]:
        """Take the next window (``start``, ``end`` in seconds; ``scores`` per class, or
        ``None`` for a silent window; ``fresh=False``: its new part is silent, so it starts no
        event). Returns the events it ended (with their offset), then those it confirmed
        (``offset=None``)."""
        new_from = max(start, self._last_end)  # what no earlier window heard
        self._last_end = end
        ended: list[Event] = []
        for c in sorted(self._open):
            if scores is None or scores[c] < self._offsets[c]:
                ended.extend(self._end(c, start))
        if scores is None:
            return ended
        started: list[Event] = []
        for c in np.flatnonzero(scores >= self._onsets).tolist() if fresh else []:
            if c not in self._open:  # the new part of this window is where it can have begun
                self._open[c] = _Open(new_from, 0.0, end)
        for c, event in self._open.items():
            event.score = max(event.score, float(scores[c]))
            event.last_end = end
            event.windows += 1
            sure = event.score >= self.config.confident or event.windows >= 2
            if sure and not event.confirmed and self._long_enough(event):
                started.append(self._confirm(c, event))
        return ended + sorted(started, key=lambda e: -e.score)

    def _long_enough(self, event: _Open) -> bool:
        return event.last_end - event.onset >= self.config.min_duration

    def _confirm(self, c: int, event: _Open) -> Event:
        event.confirmed = True
        self.reported += 1
        return Event(self.classes[c], event.onset, None, event.score)

    def close(self, time: float) -> list[Event]:
        """End every open event at ``time`` (the end of the stream). Returns the notices of
        those long enough that no window was left to confirm (``offset=None``), then every
        reported event's end."""
        started = [
            self._confirm(c, event)
            for c, event in sorted(self._open.items())
            if not event.confirmed and self._long_enough(event)
        ]
        ended: list[Event] = []
        for c in sorted(self._open):
            ended.extend(self._end(c, time))
        return started + ended

    def _end(self, c: int, time: float) -> list[Event]:
        event = self._open.pop(c)
        if not event.confirmed:
            return []  # too short, or unsure and not heard again: never reported
        offset = max(event.onset, min(time, event.last_end))
        return [Event(self.classes[c], event.onset, offset, event.score)]
