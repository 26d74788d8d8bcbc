"""Events from score tracks: thresholds, median filtering, gap merging, edges from the sound.

:func:`extract_events` turns :class:`~escnet.events.tracks.ScoreTracks` into :class:`Event`
records, in this order, each step with a documented default (:class:`DetectionParams`):

1. each class's track is median-filtered (``median_filter`` seconds) so that a one-frame blip
   neither starts nor splits an event; with ``relative``, each track then has its median over
   the recording taken off: a steady background that the model names (pink noise as "wind")
   sits at 0 and the sounds over it stand out (but a recording that is one long sound has no
   event);
2. a frame is active for a class when its filtered score reaches the class's threshold and the
   frame is not silent (its level is at least ``min_level_db``); for a softmax model only the
   frame's highest-scoring class can be active, so its events never overlap (a softmax head
   scores one class against the others: it cannot say that two sounds are there at once);
3. gaps shorter than ``max_gap`` between two runs of the same class are closed (for a softmax
   model only where no other class is active);
4. each run's edges are set by the sound itself (``level_edges``, on by default): the event
   goes from the first to the last frame at least ``level_edges`` dB louder than the
   background's running level (:func:`~escnet.events.tracks.loud_frames`) within
   ``level_margin`` seconds of the run, widened over such frames at most :data:`LEVEL_GAP`
   apart; a run with no such frame is no event (the model naming a steady background is not a
   sound). A window scores a sound whenever part of it is inside, so a track rises up to a
   window's length before a short sound: the tracks say *what* well, the level says *when*.
   For a softmax model, runs of two classes that found the same sound leave one event (the
   higher mean score). This needs a background to compare with: recordings shorter than
   :data:`~escnet.events.tracks.FLOOR_SECONDS`, or whose level was not measured, keep the
   tracks' edges; there, with ``edge`` above 0, each run is narrowed to the frames whose
   filtered score is at least ``edge`` times the run's highest;
5. runs of the tracks shorter than ``min_duration`` are dropped, before their edges are set:
   the sound a run finds may be shorter (a bark of 0.2 s).

An event's peak and mean score are those of the unfiltered track over the event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import median_filter as _median

from escnet.errors import ParameterError
from escnet.events.tracks import FLOOR_SECONDS, ScoreTracks, frame_tracks, loud_frames
from escnet.inference.results import Prediction

__all__ = [
    "DEFAULTS",
    "LEVEL_GAP",
    "SHORT_WARNING",
    "Detection",
    "DetectionParams",
    "Event",
    "detect_prediction",
    "extract_events",
    "shown_classes",
    "track_summary",
]

#: The warning of a recording shorter than one window (``{duration}``, ``{window}``).
SHORT_WARNING = (
    "the recording ({duration:.2f} s) is shorter than one {window:g}-s window: it was scored "
    "as one window, zero-padded as in training, so its events say what sounded, not exactly when"
)


@dataclass(frozen=True)
class DetectionParams:
    """How score tracks become events.

    Attributes:
        threshold: the score a frame needs for a class (0-1), for every class without one of
            its own in ``thresholds`` (0.5).
        thresholds: per-class thresholds, e.g. chosen on validation soundscapes
            (:func:`escnet.events.thresholds.choose_thresholds`) and saved with the model.
        median_filter: length of the median filter on each track, seconds (1.0; 0: none).
        min_duration: shortest run of a class's track kept, seconds (0.5); its event, whose
            edges come from the sound, may be shorter (a bark).
        max_gap: gaps shorter than this between events of a class are closed, seconds (1.0).
        min_level_db: frames quieter than this RMS level (dBFS) are silence and get no events
            (-60; digital silence is -120).
        edge: an event's edges: where its filtered score reaches this share of its highest
            (0: where it crosses the threshold).
        relative: thresholds apply to each track minus its median over the recording (False).
        level_edges: an event's edges are where the sound is this many dB louder than the
            background (2; 0: the score tracks' edges, ``edge``); a run of the tracks with no
            such frame is no event. Applies to recordings of at least
            :data:`~escnet.events.tracks.FLOOR_SECONDS` whose level was measured.
        level_margin: how far (s) around a run of the tracks its sound is looked for (1.0).
    """

    threshold: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=dict)
    median_filter: float = 1.0
    min_duration: float = 0.5
    max_gap: float = 1.0
    min_level_db: float = -60.0
    edge: float = 0.0
    relative: bool = False
    level_edges: float = 2.0
    level_margin: float = 1.0

    def __post_init__(self) -> None:
        for name, value in [("threshold", self.threshold), *self.thresholds.items()]:
            if not 0.0 <= float(value) <= 1.0:  # also refuses nan
                where = "threshold" if name == "threshold" else f"threshold of {name!r}"
                raise ParameterError(f"{where} must be in [0, 1], got {value}")
        for name in ("median_filter", "min_duration", "max_gap", "level_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name} must be a number of seconds >= 0, got {value}")
        if not 0.0 <= self.edge <= 1.0:
            raise ParameterError(f"edge must be in [0, 1], got {self.edge}")
        if not (math.isfinite(self.level_edges) and self.level_edges >= 0):
            raise ParameterError(
                f"level_edges must be a number of dB >= 0 (0: off), got {self.level_edges}"
            )
        if not math.isfinite(self.min_level_db):
            raise ParameterError(f"min_level_db must be a finite number, got {self.min_level_db}")

    def class_thresholds(self, classes: list[str]) -> np.ndarray:
        """Each class's threshold, in class order."""
        unknown = sorted(set(self.thresholds) - set(classes))
        if unknown:
            raise ParameterError(
                f"thresholds name classes the model does not have: {', '.join(unknown)}"
            )
        return np.array([float(self.thresholds.get(c, self.threshold)) for c in classes])

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["thresholds"] = dict(self.thresholds)
        return out


#: The defaults, as :class:`DetectionParams` states them.
DEFAULTS = DetectionParams()


@dataclass(frozen=True)
class Event:
    """One sound event: what sounded, from when to when, how sure the model was.

    Attributes:
        file: the recording.
        onset: start, seconds from the beginning of the recording.
        offset: end, seconds.
        label: the class.
        peak: the class's highest frame score over the event.
        mean: its mean frame score over the event.
    """

    file: str
    onset: float
    offset: float
    label: str
    peak: float
    mean: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "onset": round(self.onset, 3),
            "offset": round(self.offset, 3),
            "label": self.label,
            "peak": round(self.peak, 4),
            "mean": round(self.mean, 4),
        }


@dataclass
class Detection:
    """The events of one recording, with the tracks they came from.

    Attributes:
        source: the file, when the recording came from one.
        events: in onset order.
        tracks: the score tracks and frame levels.
        params: how the events were made.
        warnings: what a reader must know (a recording shorter than a window, a silent one).
    """

    source: str
    events: list[Event]
    tracks: ScoreTracks
    params: DetectionParams
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.tracks.duration

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: source, duration, window, hop, windows, activation, events
        and warnings (when there are any)."""
        t = self.tracks
        out: dict[str, Any] = {
            "source": self.source,
            "duration": round(t.duration, 4),
            "window": t.window,
            "hop": t.hop,
            "windows": t.windows,
            "activation": t.activation,
            "events": [e.to_dict() for e in self.events],
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) frame index pairs of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _close_gaps(active: np.ndarray, longest: int, free: np.ndarray) -> np.ndarray:
    """``active`` with gaps of at most ``longest`` frames between runs closed, where ``free``."""
    out = active.copy()
    runs = _runs(active)
    for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
        if start - end <= longest and free[end:start].all():
            out[end:start] = True
    return out


def _narrow(values: np.ndarray, edge: float, offset: int) -> tuple[int, int]:
    """The first and end frame (from ``offset``) of the frames of ``values`` that reach
    ``edge`` times its maximum."""
    high = np.flatnonzero(values >= edge * values.max())
    return offset + int(high[0]), offset + int(high[-1]) + 1


#: Sounding stretches this close (seconds) belong to one event: the short pauses inside a
#: sound (between a dog's barks, a clock's ticks) do not end it.
LEVEL_GAP = 0.5


def _loud(tracks: ScoreTracks, above: float) -> np.ndarray | None:
    """The frames louder than the background by ``above`` dB, or ``None`` when the events
    keep their score tracks' edges: ``above`` is 0, the recording is shorter than
    :data:`~escnet.events.tracks.FLOOR_SECONDS` (too short to tell a steady sound from the
    background), or its level never varies (levels not measured)."""
    levels = tracks.levels
    if above <= 0 or tracks.duration < FLOOR_SECONDS or not np.ptp(levels):
        return None
    return loud_frames(levels, tracks.frame, above)


def _sounding(
    loud: np.ndarray, first: int, end: int, margin: int, gap: int
) -> tuple[int, int] | None:
    """The frames from the first to the last loud one within ``margin`` frames of the run
    ``first:end``, widened over loud frames at most ``gap`` apart; ``None`` when none is loud."""
    lo, hi = max(0, first - margin), min(loud.size, end + margin)
    hits = np.flatnonzero(loud[lo:hi])
    if not hits.size:
        return None
    first, end = lo + int(hits[0]), lo + int(hits[-1]) + 1
    while gap > 0:
        before = np.flatnonzero(loud[max(0, first - gap) : first])
        if not before.size:
            break
        first = max(0, first - gap) + int(before[0])
    while gap > 0:
        after = np.flatnonzero(loud[end : end + gap])
        if not after.size:
            break
        end += int(after[-1]) + 1
    return first, end


def _frames(seconds: float, frame: float) -> int:
    return int(round(seconds / frame))


def extract_events(
    tracks: ScoreTracks, params: DetectionParams = DEFAULTS, *, source: str = ""
) -> list[Event]:
    """The events in ``tracks`` (see the module docstring for the steps), in onset order."""
    thresholds = params.class_thresholds(tracks.classes)
    scores = tracks.scores
    size = _frames(params.median_filter, tracks.frame)
    filtered = _median(scores, size=(size | 1, 1), mode="nearest") if size > 1 else scores
    if params.relative:
        filtered = np.maximum(filtered - np.median(filtered, axis=0), 0.0)
    active = (filtered >= thresholds[None, :]) & (tracks.levels >= params.min_level_db)[:, None]
    exclusive = tracks.activation == "softmax"
    if exclusive:
        top = np.zeros_like(active)
        top[np.arange(len(filtered)), np.argmax(filtered, axis=1)] = True
        active &= top
    gap = _frames(params.max_gap, tracks.frame)
    shortest = _frames(params.min_duration, tracks.frame)
    loud = _loud(tracks, params.level_edges)
    margin = _frames(params.level_margin, tracks.frame)
    events = []
    for c, label in enumerate(tracks.classes):
        column = active[:, c]
        if not column.any():
            continue
        if gap > 0:
            free = np.ones_like(column)
            if exclusive:  # a gap where another class is active stays open
                free = ~np.delete(active, c, axis=1).any(axis=1)
            column = _close_gaps(column, gap, free)
        for first, end in _runs(column):
            # The shortest kept is a run of the tracks, not the sound it finds: a 0.2-s bark
            # scores over a window's length, and its edges from the level are rightly short.
            if end - first < max(shortest, 1):
                continue
            if loud is not None:
                span = _sounding(loud, first, end, margin, _frames(LEVEL_GAP, tracks.frame))
                if span is None:  # no departure from the background: not an event
                    continue
                first, end = span
            elif params.edge > 0:
                first, end = _narrow(filtered[first:end, c], params.edge, first)
            values = scores[first:end, c]
            events.append(
                Event(
                    file=source,
                    onset=round(first * tracks.frame, 3),
                    offset=round(min(end * tracks.frame, tracks.duration), 3),
                    label=label,
                    peak=float(values.max()),
                    mean=float(values.mean()),
                )
            )
    if loud is not None and exclusive:  # two classes' runs may find the same sound
        events = _exclusive(events)
    events.sort(key=lambda e: (e.onset, e.label))
    return events


def _exclusive(events: list[Event]) -> list[Event]:
    """The events of a softmax model, less each that overlaps a kept one by more than half of
    the shorter's length (kept first: the higher mean score)."""
    kept: list[Event] = []
    for e in sorted(events, key=lambda e: -e.mean):
        if all(
            min(e.offset, k.offset) - max(e.onset, k.onset)
            <= 0.5 * min(e.offset - e.onset, k.offset - k.onset)
            for k in kept
        ):
            kept.append(e)
    return kept


def detect_prediction(
    prediction: Prediction,
    window: float,
    hop: float,
    params: DetectionParams = DEFAULTS,
    levels: np.ndarray | None = None,
) -> Detection:
    """The :class:`Detection` of a :class:`~escnet.inference.Prediction` (its windows' scores)
    made with this ``window`` and ``hop`` (seconds), given its frame ``levels``
    (:class:`~escnet.events.tracks.FrameLevels`; without them no frame counts as silent)."""
    w = prediction.windows
    scores, lv = frame_tracks(
        np.array([x.start for x in w]),
        np.array([x.end for x in w]),
        np.stack([x.probabilities for x in w]),
        prediction.duration,
        levels,
        smooth=hop,
    )
    tracks = ScoreTracks(
        classes=list(prediction.classes),
        scores=scores,
        levels=lv,
        duration=prediction.duration,
        window=window,
        hop=hop,
        windows=len(w),
        activation=prediction.activation,
    )
    source = prediction.source or ""
    warnings = list(prediction.warnings)
    if tracks.short:
        warnings.append(SHORT_WARNING.format(duration=tracks.duration, window=window))
    events = extract_events(tracks, params, source=source)
    return Detection(source, events, tracks, params, warnings)


def shown_classes(detection: Detection, most: int = 6) -> list[str]:
    """The classes worth drawing: those with events, then the highest-scoring; ``most``."""
    labels = list(dict.fromkeys(e.label for e in detection.events))
    t = detection.tracks
    if len(labels) < most and t.scores.size:
        order = np.argsort(-t.scores.max(axis=0), kind="stable")
        labels += [t.classes[i] for i in order if t.classes[i] not in labels]
    return labels[:most]


def track_summary(detection: Detection, points: int = 600) -> dict[str, Any]:
    """The score tracks of :func:`shown_classes`, at most ``points`` values each (the maximum
    of each stretch, so that a peak is never lost), their thresholds, and the silent frames'
    share of each stretch: what a page needs to draw the timeline."""
    t = detection.tracks
    n = t.scores.shape[0]
    step = max(1, -(-n // points))
    edges = np.arange(0, n, step)
    shown = shown_classes(detection)
    thresholds = detection.params.class_thresholds(t.classes)
    silent = (t.levels < detection.params.min_level_db).astype(np.float32)
    return {
        "step": round(step * t.frame, 4),
        "classes": shown,
        "thresholds": [round(float(thresholds[t.classes.index(c)]), 4) for c in shown],
        "scores": [
            np.round(np.maximum.reduceat(t.scores[:, t.classes.index(c)], edges), 4).tolist()
            for c in shown
        ],
        "silent": np.round(np.add.reduceat(silent, edges) / step, 2).tolist(),
    }
