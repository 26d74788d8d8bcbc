"""Per-class thresholds chosen on validation recordings, saved with the model.

:func:`choose_thresholds` tries each candidate threshold on recordings with known events (for
instance validation soundscapes, :mod:`escnet.events.soundscape`) and keeps, for each class, the
one with the best event-based F1 (ties: the better segment-based F1, then the lower threshold).
A class without a reference event in those recordings keeps the default threshold, raised to the
lowest one at which it has no event there (1 when every candidate leaves one): what such a class
finds there are false alarms, on the background for instance. The events'
``edge`` (:class:`~escnet.events.detect.DetectionParams`) is chosen with them, among
:data:`EDGES`: the one whose per-class best scores add up highest.

:func:`save_thresholds` writes them, with the filtering options they were chosen with, into the
model directory's ``model.json`` (field ``detection``); :func:`saved_params` reads them back with
the model directory's JSON reader. A model directory holds data only: nothing in it is run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from escnet.cache import atomic_write_json
from escnet.errors import ModelDirError, ParameterError
from escnet.events.detect import DEFAULTS, Detection, DetectionParams, Event, extract_events
from escnet.events.evaluate import score_events
from escnet.events.tracks import FLOOR_SECONDS
from escnet.inference.backend import ModelSpec
from escnet.model_dir.layout import MODEL_JSON, read_model_json

__all__ = [
    "CANDIDATES",
    "DETECTION_FIELD",
    "EDGES",
    "choose_thresholds",
    "save_thresholds",
    "saved_params",
]

#: The field of ``model.json`` that holds the detection options.
DETECTION_FIELD = "detection"
#: Thresholds :func:`choose_thresholds` tries: 0.05, 0.10, ..., 0.95.
CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))
#: Event edges :func:`choose_thresholds` tries (0: at the threshold).
EDGES = (0.0, 0.5, 0.7, 0.9)


def choose_thresholds(
    detections: Sequence[Detection],
    references: Sequence[Sequence[Event]],
    *,
    params: DetectionParams = DEFAULTS,
    candidates: Sequence[float] = CANDIDATES,
    edges: Sequence[float] = EDGES,
) -> DetectionParams:
    """``params`` with per-class thresholds and the edge chosen on ``detections`` (their score
    tracks) of recordings whose true events are ``references`` (one list per recording, in
    the same order)."""
    if not detections or len(detections) != len(references):
        raise ParameterError(
            f"need one reference list per detection, got {len(references)} for "
            f"{len(detections)} recordings"
        )
    if params.level_edges > 0 and min(d.duration for d in detections) >= FLOOR_SECONDS:
        edges = (params.edge,)  # the sound's level sets every event's edges: no edge to choose
    best: tuple[float, DetectionParams] | None = None
    for edge in edges:
        trial, total = _per_class(detections, references, replace(params, edge=edge), candidates)
        if best is None or total > best[0]:
            best = (total, trial)
    assert best is not None  # edges is never empty
    return best[1]


def _per_class(
    detections: Sequence[Detection],
    references: Sequence[Sequence[Event]],
    params: DetectionParams,
    candidates: Sequence[float],
) -> tuple[DetectionParams, float]:
    """``params`` with each class's best threshold, and the sum of their scores."""
    classes = detections[0].tracks.classes
    durations = [d.duration for d in detections]
    best: dict[str, tuple[float, float, float]] = {}
    quiet: dict[str, float] = {}  # classes without reference events: lowest threshold, no event
    alarmed: set[str] = set()  # ... and those that had one at a higher threshold already
    for t in sorted(candidates, reverse=True):
        trial = replace(params, threshold=float(t), thresholds={})
        estimates = [extract_events(d.tracks, trial) for d in detections]
        scores = score_events(references, estimates, durations, classes)
        for c, s in scores.per_class.items():
            if not s["references"]:
                if s["estimates"]:
                    alarmed.add(c)
                elif c not in alarmed:
                    quiet[c] = float(t)
                continue
            key = (_number(s["event_f1"]), _number(s["segment_f1"]), -float(t))
            if c not in best or key > best[c]:
                best[c] = key
    chosen = {c: -key[2] for c, key in best.items()}
    total = sum(key[0] + key[1] for key in best.values())
    for c in classes:
        if c not in chosen:
            chosen[c] = max(params.threshold, quiet.get(c, 1.0))
    return replace(params, thresholds=chosen), total


def _number(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def save_thresholds(
    model_dir: str | os.PathLike[str], params: DetectionParams, *, chosen_on: str, hop: float
) -> Path:
    """Record ``params`` (thresholds and filtering) in ``model_dir``'s ``model.json``, saying
    what they were chosen on and at which hop; returns the file. Written atomically."""
    directory = Path(model_dir)
    meta = read_model_json(directory)
    meta[DETECTION_FIELD] = {**params.to_dict(), "chosen_on": chosen_on, "hop": hop}
    atomic_write_json(directory / MODEL_JSON, meta)
    return directory / MODEL_JSON


def saved_params(spec: ModelSpec) -> DetectionParams:
    """The detection options saved with the model (:func:`save_thresholds`), else the
    defaults.

    Raises:
        ModelDirError: naming ``model.json`` when its ``detection`` field is malformed.
    """
    saved = spec.metadata.get(DETECTION_FIELD)
    if saved is None:
        return DEFAULTS
    where = Path(spec.path or ".") / MODEL_JSON
    if not isinstance(saved, Mapping):
        raise ModelDirError(f"{where}: field {DETECTION_FIELD!r} must be a JSON object")
    # Saved before events took their edges from the sound's level: keep the tracks' edges,
    # which those thresholds were chosen with.
    known = {"level_edges": 0.0, **{k: saved[k] for k in DEFAULTS.to_dict() if k in saved}}
    try:
        params = DetectionParams(**_typed(known))
        params.class_thresholds(spec.classes)
    except (TypeError, ValueError) as exc:
        raise ModelDirError(
            f"{where}: field {DETECTION_FIELD!r} is not valid ({exc}); choose the thresholds "
            "again (escnet detect MODEL --choose-thresholds DIR --save-thresholds)"
        ) from None
    return params


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    """JSON values as :class:`DetectionParams` takes them (numbers as floats)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "thresholds":
            if not isinstance(value, Mapping):
                raise TypeError("thresholds must map class names to numbers")
            out[key] = {str(c): float(np.float64(v)) for c, v in value.items()}
        elif key == "relative":
            if not isinstance(value, bool):
                raise TypeError("relative must be true or false")
            out[key] = value
        else:
            out[key] = float(value)
    return out
