"""A live stream of samples labelled as it arrives: rolling windows, a silence gate, events.

:class:`Listener` takes blocks of mono samples at any rate (a microphone's, a pipe's, a browser's)
and does what :meth:`escnet.inference.Predictor.predict_file` does for a file, incrementally:
resampling to the model's rate (a streaming ``soxr`` resampler, as
:func:`escnet.inference.stream.resample_blocks`) and windows with a hop
(:class:`escnet.inference.stream.Windower`). Each window is scored by the predictor's backend
unless the silence gate finds it silent, and :class:`escnet.live.tracker.EventTracker` turns the
scores into events. Memory stays flat however long the stream: nothing is kept per window.

The stream starts as if ``window - hop`` seconds of silence had come before it, so the first
window is complete one hop into the stream rather than a whole window in: a sound at the start
is heard as soon as one later in the stream would be (the model sees the missing part as the
zero padding its short training clips had).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from escnet.errors import ParameterError
from escnet.inference.limits import MAX_OVERLAP
from escnet.inference.predictor import Predictor
from escnet.inference.stream import Windower
from escnet.live.tracker import Event, EventTracker, TrackerConfig

__all__ = ["LIVE_HOP_FRACTION", "MAX_RATE", "MIN_RATE", "Listener", "LiveWindow", "level_db"]

#: The default hop, as a fraction of the window: a sound is heard at most this much of a
#: window after it ends (a 5-s window: 1.25 s), at four model calls per window of audio.
LIVE_HOP_FRACTION = 0.25

#: Input sample rates a listener takes (Hz): telephone audio to studio rates.
MIN_RATE, MAX_RATE = 4000, 384_000

#: Frame of the silence gate (seconds): short enough that one bark lifts its window above it.
_GATE_FRAME = 0.05


def level_db(samples: np.ndarray, sample_rate: int) -> float:
    """The level of the loudest 50-ms frame of ``samples`` in dB relative to full scale (RMS of
    a full-scale square wave: 0 dB); ``-inf`` for digital silence.

    Examples:
        >>> round(level_db(np.full(8000, 0.1, np.float32), 8000), 1)
        -20.0
        >>> level_db(np.zeros(100, np.float32), 8000)
        -inf
    """
    x = np.asarray(samples, dtype=np.float32)
    frame = max(1, int(_GATE_FRAME * sample_rate))
    n = max(1, x.size // frame)
    frames = np.zeros((n, frame), np.float32)
    flat = x[: n * frame] if x.size >= frame else x
    frames.reshape(-1)[: flat.size] = flat
    power = float(np.max(np.mean(frames.astype(np.float64) ** 2, axis=1)))
    return float(10 * np.log10(power)) if power > 0 else -np.inf


@dataclass
class LiveWindow:
    """One window of the stream: its span in seconds from the start of the stream (``start``
    is negative for the first windows, which begin in the silence before it), its samples at
    the model's rate, whether the gate found it silent, whether its newest hop is not (a
    window whose new part is silent starts no event), and its scores once scored."""

    start: float
    end: float
    samples: np.ndarray
    silent: bool
    fresh: bool
    scores: np.ndarray | None = None


class Listener:
    """Labels a stream of sample blocks as they come (see the module docstring).

    Args:
        predictor: the model (:func:`escnet.inference.load`); its window is the model window.
        sample_rate: the rate of the blocks given to :meth:`push` / :meth:`feed`.
        hop: seconds between windows (default: a quarter of the window).
        config: the event rules (thresholds, minimum duration, silence gate).

    Use :meth:`feed` for each block and :meth:`end` at the end of the stream; both return the
    events they start or end. A caller that runs the model itself (the service, through its
    batcher) uses the steps instead: :meth:`push` (or :meth:`finish`), its own model call on
    the windows that are not silent, :meth:`assign` of their scores, then :meth:`update`
    (:meth:`close` at the end).

    Raises:
        ParameterError: a rate, hop or threshold out of range.
    """

    def __init__(
        self,
        predictor: Predictor,
        sample_rate: int,
        *,
        hop: float | None = None,
        config: TrackerConfig | None = None,
    ) -> None:
        if not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ParameterError(
                f"sample rate must be {MIN_RATE}..{MAX_RATE} Hz, got {sample_rate}"
            )
        self.predictor = predictor
        self.sample_rate = int(sample_rate)
        self.config = config or TrackerConfig()
        window = predictor.window
        hop = window * LIVE_HOP_FRACTION if hop is None else hop
        if not hop >= window / MAX_OVERLAP:  # said here: the predictor's default hop differs
            raise ParameterError(
                f"hop {hop:g} s is under 1/{MAX_OVERLAP} of the {window:g}-s window (each window "
                f"is a model call); pass a hop of {window / MAX_OVERLAP:.3g} s or more "
                f"(default: a quarter of the window)"
            )
        self.window_samples, self.hop_samples = predictor.window_samples(window, hop)
        self.tracker = EventTracker(predictor.classes, self.config)
        self.windower = Windower(self.window_samples, self.hop_samples)
        self._lead = self.window_samples - min(self.hop_samples, self.window_samples)
        if self._lead:
            self.windower.push(np.zeros(self._lead, np.float32))
        rate = predictor.sample_rate
        self._resampler = (
            soxr.ResampleStream(self.sample_rate, rate, 1, dtype="float32", quality="HQ")
            if self.sample_rate != rate
            else None
        )
        self.received = 0  # input samples so far
        self.windows = 0  # windows made so far
        self.scored = 0  # of which not silent

    @property
    def window(self) -> float:
        """Window length in seconds."""
        return self.window_samples / self.predictor.sample_rate

    @property
    def hop(self) -> float:
        """Hop in seconds."""
        return self.hop_samples / self.predictor.sample_rate

    @property
    def duration(self) -> float:
        """Seconds of input so far."""
        return self.received / self.sample_rate

    def push(self, samples: np.ndarray) -> list[LiveWindow]:
        """Append a block of mono samples (floats, full scale +-1); the windows now complete."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ParameterError(f"a listener takes 1-D (mono) blocks, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ParameterError("the block holds NaN or infinite samples")
        self.received += x.size
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=False)
        return self._windows(self.windower.push(x) if x.size else [])

    def finish(self) -> list[LiveWindow]:
        """At the end of the stream: the window that ends at its end, if the regular ones stop
        short of it."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            windows = self._windows(self.windower.push(tail) if tail.size else [])
            self._resampler = None
        else:
            windows = []
        if self.windower.total > self._lead:  # some input at all
            windows += self._windows(self.windower.finish())
        return windows

    def _windows(self, cut: list[tuple[int, np.ndarray]]) -> list[LiveWindow]:
        rate = self.predictor.sample_rate
        out = []
        gate = self.config.silence_db
        for start, samples in cut:
            silent = level_db(samples, rate) < gate
            fresh = not silent and level_db(samples[-self.hop_samples :], rate) >= gate
            begin = (start - self._lead) / rate
            end = begin + self.window_samples / rate
            out.append(LiveWindow(begin, end, samples, silent, fresh))
        self.windows += len(out)
        return out

    def score(self, windows: list[LiveWindow]) -> None:
        """Score the windows that are not silent with the predictor, in its batch size."""
        loud = [w for w in windows if not w.silent]
        step = self.predictor.batch_size
        for i in range(0, len(loud), step):
            chunk = loud[i : i + step]
            self.assign(chunk, self.predictor.probabilities(np.stack([w.samples for w in chunk])))

    def assign(self, windows: list[LiveWindow], scores: np.ndarray) -> None:
        """Give windows their scores (B, classes), from the caller's own model call."""
        for w, s in zip(windows, scores, strict=True):
            w.scores = np.asarray(s, dtype=np.float32)
        self.scored += len(windows)

    def update(self, windows: list[LiveWindow]) -> list[Event]:
        """The events that scored windows start or end, in time order."""
        events: list[Event] = []
        for w in windows:
            if not w.silent and w.scores is None:
                raise ParameterError("update() needs the scores of every window that is not silent")
            events += self.tracker.update(max(0.0, w.start), w.end, w.scores, fresh=w.fresh)
        return events

    def close(self) -> list[Event]:
        """End the events still open, at the end of the input so far."""
        return self.tracker.close(self.duration)

    def feed(self, samples: np.ndarray) -> list[Event]:
        """Push a block, score the windows it completes, and return their events."""
        windows = self.push(samples)
        self.score(windows)
        return self.update(windows)

    def end(self) -> list[Event]:
        """At the end of the stream: score the last window and end every open event."""
        windows = self.finish()
        self.score(windows)
        return self.update(windows) + self.close()
