"""The bounds of prediction and of the service, in one place so that ``escnet predict``,
``escnet serve`` and the Python API refuse the same values (and the CLI can name them in its
``--help`` without loading a model).

Each bound keeps memory and CPU time proportional to the audio, whatever the options say.
"""

from __future__ import annotations

__all__ = [
    "LONG_UPLOAD_SECONDS",
    "MAX_BATCH",
    "MAX_DURATION_SECONDS",
    "MAX_OVERLAP",
    "MAX_UPLOAD_MB",
    "MAX_WINDOWS",
    "MAX_WINDOW_SECONDS",
]

#: Longest window (and hop) in seconds: a window is one model input, cropped to the model's clip
#: length; ten minutes is already far past any model's clip, and more is a typo (``1e9`` asked
#: numpy for 116 TiB).
MAX_WINDOW_SECONDS = 600.0

#: Windows that may cover one instant: a hop under ``window / MAX_OVERLAP`` multiplies the cost
#: (a 3-min file at a 1-ms hop is 180 000 model calls) and adds nothing a smaller overlap misses.
MAX_OVERLAP = 100

#: Most windows per recording: each keeps its probabilities (20 000 x 527 AudioSet classes is
#: 42 MB), so this bounds a prediction's memory however long the recording.
MAX_WINDOWS = 20_000

#: Most windows per backend call: the windows of a batch are held at once.
MAX_BATCH = 256

#: The service's largest ``--max-duration``: an hour, as :class:`escnet.data.audio.AudioConfig`.
MAX_DURATION_SECONDS = 3600.0

#: The service's largest ``--max-upload-mb``: a body is held in memory while it is labelled.
MAX_UPLOAD_MB = 1000.0

#: A recording longer than this (seconds) is a long upload for the service: it costs many model
#: calls, so only ``--max-long-uploads`` of them are labelled at once.
LONG_UPLOAD_SECONDS = 60.0
