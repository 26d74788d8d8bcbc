"""Live input: a stream of sound labelled as it happens, one line per sound.

* :mod:`escnet.live.listener`: :class:`Listener`, rolling windows with a hop over a stream of
  samples at any rate, a silence gate, scores from :mod:`escnet.inference`'s predictor.
* :mod:`escnet.live.tracker`: :class:`EventTracker`, window scores to events (hysteresis, a
  minimum duration), so that one sound gives one event, not one per overlapping window.
* :mod:`escnet.live.sources`: raw 16-bit PCM from a pipe, or a microphone (the ``live`` extra).

``escnet listen`` is the command; ``escnet serve`` streams the browser's microphone through the
same :class:`Listener` (the page's Listen button).

Examples:
    >>> import sys, escnet
    >>> from escnet.live import Listener, pcm16_blocks
    >>> listener = Listener(escnet.load("runs/main"), sample_rate=32000)  # doctest: +SKIP
    >>> for block in pcm16_blocks(sys.stdin.buffer):  # doctest: +SKIP
    ...     for event in listener.feed(block):
    ...         print(event)
"""

from escnet.live.listener import LIVE_HOP_FRACTION, Listener, LiveWindow, level_db
from escnet.live.sources import Microphone, pcm16_blocks, pcm16_to_float
from escnet.live.tracker import Event, EventTracker, TrackerConfig

__all__ = [
    "LIVE_HOP_FRACTION",
    "Event",
    "EventTracker",
    "Listener",
    "LiveWindow",
    "Microphone",
    "TrackerConfig",
    "level_db",
    "pcm16_blocks",
    "pcm16_to_float",
]
