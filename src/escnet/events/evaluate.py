"""Detection scores with sed_eval: event-based and segment-based F1 and error rate.

* **Event-based**: an estimated event matches a reference event of the same class when its onset
  is within ``collar`` (0.5 s) of the reference's and its offset within the larger of ``collar``
  and ``offset_fraction`` (20 %) of the reference's length (the DCASE convention).
* **Segment-based**: the recording is cut into ``segment`` (1 s) segments; a class is active in
  a segment when any of its events overlaps it, in the reference and in the estimate.

"Overall" is sed_eval's micro average (every event, or every segment and class, counts once);
per class are the class-wise scores. sed_eval's 0.2.1 release needs ``pkg_resources`` through
dcase_util (setuptools before 81).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from escnet.errors import EscnetError
from escnet.events.detect import Event

__all__ = ["DetectionScores", "score_events"]

#: sed_eval's options, as the module docstring states them.
COLLAR = 0.5
OFFSET_FRACTION = 0.2
SEGMENT = 1.0


@dataclass
class DetectionScores:
    """Event- and segment-based scores, overall and per class (``nan`` where undefined: a
    class with neither reference nor estimated events)."""

    event_f1: float
    event_error_rate: float
    segment_f1: float
    segment_error_rate: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    files: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_f1": self.event_f1,
            "event_error_rate": self.event_error_rate,
            "segment_f1": self.segment_f1,
            "segment_error_rate": self.segment_error_rate,
            "per_class": self.per_class,
            "files": self.files,
        }


def _container(events: Sequence[Event], name: str) -> Any:
    from dcase_util.containers import MetaDataContainer

    return MetaDataContainer(
        [
            {"filename": name, "event_label": e.label, "onset": e.onset, "offset": e.offset}
            for e in events
        ]
    )


def score_events(
    references: Sequence[Sequence[Event]],
    estimates: Sequence[Sequence[Event]],
    durations: Sequence[float],
    classes: Sequence[str],
    *,
    collar: float = COLLAR,
    offset_fraction: float = OFFSET_FRACTION,
    segment: float = SEGMENT,
) -> DetectionScores:
    """Scores of ``estimates`` against ``references``: one list of events per recording, in the
    same order, with each recording's length in ``durations`` (seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util's deprecation warnings on import
        try:
            import sed_eval
        except ImportError as exc:  # sed_eval, or pkg_resources under it (setuptools >= 81)
            raise EscnetError(
                f"scoring events needs sed_eval ({exc}); pip install 'escnet[events]'"
            ) from None

    labels = list(classes)
    events = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels,
        t_collar=collar,
        percentage_of_length=offset_fraction,
        evaluate_onset=True,
        evaluate_offset=True,
    )
    segments = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=labels, time_resolution=segment
    )
    for k, (ref, est, length) in enumerate(zip(references, estimates, durations, strict=True)):
        name = f"recording{k}"
        r, e = _container(ref, name), _container(est, name)
        events.evaluate(reference_event_list=r, estimated_event_list=e)
        segments.evaluate(
            reference_event_list=r, estimated_event_list=e, evaluated_length_seconds=length
        )
    ev, seg = events.results(), segments.results()
    per_class = {
        c: {
            "event_f1": float(ev["class_wise"][c]["f_measure"]["f_measure"]),
            "segment_f1": float(seg["class_wise"][c]["f_measure"]["f_measure"]),
            "references": int(ev["class_wise"][c]["count"]["Nref"]),
            "estimates": int(ev["class_wise"][c]["count"]["Nsys"]),
        }
        for c in labels
    }
    return DetectionScores(
        event_f1=float(ev["overall"]["f_measure"]["f_measure"]),
        event_error_rate=float(ev["overall"]["error_rate"]["error_rate"]),
        segment_f1=float(seg["overall"]["f_measure"]["f_measure"]),
        segment_error_rate=float(seg["overall"]["error_rate"]["error_rate"]),
        per_class=per_class,
        files=len(references),
    )
