"""Score tracks: the windows' class scores spread onto a grid of frames; each frame's level.

A window of the model's clip length scores everything in it at once, so one window cannot say
when inside it a sound was. Overlapping windows can: a frame's score is the mean score of every
window that covers it. With a hop much shorter than the window, a short sound makes every window
that holds it score high; the frames of the sound are covered only by such windows and reach the
full score, while frames before and after it are also covered by windows that miss it and get
less. The track rises and falls where the sound starts and ends, to within about a hop, and a
threshold near the windows' score finds the edges (see :mod:`escnet.events.detect`). The mean
changes only where a window starts or ends, every hop; a moving average over one hop turns
its steps into ramps, so that a threshold crossing falls between two window positions rather
than on the hop's grid.

:class:`FrameLevels` measures the loudness of each frame while the audio streams past, so that a
stretch of silence gets no events whatever the model says of it (a model asked about silence
still answers with some class). Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import percentile_filter, uniform_filter1d

from escnet.errors import ParameterError

__all__ = [
    "FLOOR_PERCENTILE",
    "FLOOR_SECONDS",
    "FRAME_SECONDS",
    "FrameLevels",
    "ScoreTracks",
    "frame_tracks",
    "loud_frames",
]

#: Length of a frame of the score tracks, in seconds: fine enough for onsets to a tenth of a
#: second, coarse enough that an hour is 36,000 frames.
FRAME_SECONDS = 0.1

#: The background's level at a frame: this percentile of the frame levels (dBFS) over
#: :data:`FLOOR_SECONDS` around it: the quiet frames between sounds, not the sounds.
FLOOR_PERCENTILE = 10.0
#: Seconds of the running window of the background's level: long enough that sounds of a few
#: seconds rarely fill 90 % of it, short enough to follow
#: a background that changes over minutes.
FLOOR_SECONDS = 30.0

#: The level a frame of digital silence gets (dBFS), instead of minus infinity.
_FLOOR_DB = -120.0


class FrameLevels:
    """The RMS level (dBFS) of each :data:`FRAME_SECONDS` frame of a stream of mono blocks.

    Feed it the blocks the predictor windows (:meth:`push`), then read :meth:`levels`. It holds
    at most one frame's samples between blocks.

    Examples:
        >>> meter = FrameLevels(10)  # 10 Hz: one sample per frame
        >>> meter.push(np.array([1.0, 0.0, 0.5], np.float32))
        >>> np.round(meter.levels(), 1).tolist()
        [0.0, -120.0, -6.0]
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ParameterError(f"sample_rate must be > 0, got {sample_rate}")
        self.frame = max(1, int(round(FRAME_SECONDS * sample_rate)))
        self._power: list[np.ndarray] = []
        self._rest = np.zeros(0, np.float64)

    def push(self, block: np.ndarray) -> None:
        """Append a block of samples (1-D)."""
        x = np.concatenate([self._rest, np.asarray(block, np.float64).ravel()])
        whole = x.size // self.frame * self.frame
        if whole:
            self._power.append(np.mean(np.square(x[:whole]).reshape(-1, self.frame), axis=1))
        self._rest = x[whole:]

    def levels(self) -> np.ndarray:
        """The level of every frame so far, the last partial one included (float32, dBFS)."""
        power = list(self._power)
        if self._rest.size:
            power.append(np.array([np.mean(np.square(self._rest))]))
        if not power:
            return np.zeros(0, np.float32)
        p = np.concatenate(power)
        with np.errstate(divide="ignore"):
            db = np.where(p > 0, 10 * np.log10(np.maximum(p, 1e-30)), _FLOOR_DB)
        return np.maximum(db, _FLOOR_DB).astype(np.float32)


@dataclass
class ScoreTracks:
    """Per-class scores over time, one row per frame of :data:`FRAME_SECONDS`.

    Attributes:
        classes: class names, index = column.
        scores: (frames, classes) float32: each frame's mean score over the windows covering it.
        levels: (frames,) float32: each frame's RMS level in dBFS (-120 for digital silence).
        duration: the recording's length in seconds.
        window: window length in seconds.
        hop: hop between windows in seconds.
        windows: how many windows were scored.
        activation: ``"softmax"`` (one class at a time) or ``"sigmoid"`` (multi-label).
    """

    classes: list[str]
    scores: np.ndarray
    levels: np.ndarray
    duration: float
    window: float
    hop: float
    windows: int
    activation: str = "softmax"
    frame: float = field(default=FRAME_SECONDS)

    @property
    def times(self) -> np.ndarray:
        """Start time (s) of each frame."""
        return np.arange(self.scores.shape[0]) * self.frame

    @property
    def short(self) -> bool:
        """Whether the recording was shorter than one window (scored by one padded window)."""
        return self.duration < self.window


def frame_tracks(
    starts: np.ndarray,
    ends: np.ndarray,
    probabilities: np.ndarray,
    duration: float,
    levels: np.ndarray | None = None,
    smooth: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Spread window scores onto frames: each frame gets the mean of the windows covering it.

    Args:
        starts, ends: each window's span in seconds (a window is truncated to the recording).
        probabilities: (windows, classes) scores.
        duration: the recording's length in seconds.
        levels: frame levels in dBFS (:class:`FrameLevels`), cut or padded to the frames here;
            without them no frame counts as silent.
        smooth: seconds of the moving average over the scores (the hop; 0: none).

    Returns:
        (scores (frames, classes) float32, levels (frames,) float32).
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[0] != len(starts) or len(starts) != len(ends) or not len(starts):
        raise ParameterError(
            f"need one score row per window, got {p.shape} for {len(starts)} windows"
        )
    frames = max(1, math.ceil(round(duration / FRAME_SECONDS, 6)))
    # A difference array: each window adds its scores to the frames it covers, in one pass.
    first = np.clip(np.floor(np.asarray(starts) / FRAME_SECONDS + 1e-6).astype(int), 0, frames)
    last = np.clip(np.ceil(np.asarray(ends) / FRAME_SECONDS - 1e-6).astype(int), 0, frames)
    last = np.maximum(last, np.minimum(first + 1, frames))
    total = np.zeros((frames + 1, p.shape[1]))
    count = np.zeros(frames + 1)
    np.add.at(total, first, p)
    np.add.at(total, last, -p)
    np.add.at(count, first, 1)
    np.add.at(count, last, -1)
    total = np.cumsum(total[:-1], axis=0)
    count = np.cumsum(count[:-1])
    scores = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], 0.0)
    size = int(round(smooth / FRAME_SECONDS))
    if size > 1:
        scores = uniform_filter1d(scores, size, axis=0, mode="nearest")
    lv = np.zeros(frames, np.float32)  # no levels measured: no frame counts as silent
    if levels is not None and len(levels):
        n = min(frames, len(levels))
        lv[:n] = levels[:n]
        lv[n:] = levels[n - 1]  # a frame lost to rounding at the end: the last one's level
    return np.clip(scores, 0.0, 1.0).astype(np.float32), lv


def loud_frames(levels: np.ndarray, frame: float, above: float) -> np.ndarray:
    """Which frames are at least ``above`` dB louder than the background around them.

    The background's level is the running :data:`FLOOR_PERCENTILE` percentile of the frame
    levels over :data:`FLOOR_SECONDS`, taken on a 1-s grid of frame means (cheap for an hour)
    and interpolated back to the frames.

    Examples:
        >>> levels = np.full(400, -40.0, np.float32)
        >>> levels[100:120] = -30.0  # a 2-s sound 10 dB over a steady background
        >>> np.flatnonzero(loud_frames(levels, 0.1, 2.0)).tolist() == list(range(100, 120))
        True
    """
    n = levels.shape[0]
    step = max(1, int(round(1.0 / frame)))
    if n < step:
        return np.zeros(n, bool)
    coarse = levels[: n // step * step].astype(np.float64).reshape(-1, step).mean(axis=1)
    size = max(1, min(int(round(FLOOR_SECONDS / (step * frame))), coarse.shape[0]))
    floor = percentile_filter(coarse, FLOOR_PERCENTILE, size=size, mode="nearest")
    centres = np.arange(coarse.shape[0]) * step + (step - 1) / 2
    return levels >= np.interp(np.arange(n), centres, floor) + above
