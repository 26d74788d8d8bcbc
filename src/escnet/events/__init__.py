"""Sound events: what sounded in a long recording, from when to when.

The stage after prediction. A :class:`~escnet.inference.Predictor` scores windows every hop
(:meth:`~escnet.inference.Predictor.detect`, the same windows and scores as ``predict``); here
they become events:

* :mod:`escnet.events.tracks`: per-class score tracks on a 0.1-s grid, and each frame's level;
* :mod:`escnet.events.detect`: thresholds, median filter, minimum duration, gap merging, and the
  :class:`~escnet.events.detect.Event` and :class:`~escnet.events.detect.Detection` records;
* :mod:`escnet.events.thresholds`: thresholds chosen on validation soundscapes, saved with the
  model;
* :mod:`escnet.events.formats`: CSV, JSON, Raven Pro selection tables, Audacity label tracks;
* :mod:`escnet.events.evaluate`: event- and segment-based scores (sed_eval);
* :mod:`escnet.events.plot`: a picture per recording;
* :mod:`escnet.events.soundscape`: soundscapes with known events, to measure detection.

Nothing here imports torch; crowsetta, sed_eval and matplotlib are imported where they are used.
"""

from escnet.events.detect import DEFAULTS, Detection, DetectionParams, Event, extract_events
from escnet.events.tracks import FRAME_SECONDS, FrameLevels, ScoreTracks

__all__ = [
    "DEFAULTS",
    "FRAME_SECONDS",
    "Detection",
    "DetectionParams",
    "Event",
    "FrameLevels",
    "ScoreTracks",
    "extract_events",
]
