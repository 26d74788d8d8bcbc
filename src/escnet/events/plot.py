"""A picture of one recording's events: its spectrogram with each event as a labelled band, and
the class score tracks under it (matplotlib, PNG).

The spectrogram is computed block by block from the file (:func:`escnet.inference.stream.
iter_blocks`), at most :data:`COLUMNS` columns whatever the recording's length, so an hour costs
no more memory than a minute. The tracks shown are those of the classes with events, else the
highest-scoring ones, each with its threshold as a dashed line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from escnet.cache import atomic_path
from escnet.events.detect import Detection, shown_classes
from escnet.inference.stream import iter_blocks, open_audio

__all__ = ["COLUMNS", "plot_detection", "spectrogram"]

#: Most spectrogram columns of a picture.
COLUMNS = 1200
#: The rate the picture's spectrogram is computed at (Hz): the band ESC models hear.
_RATE = 16_000
_FFT = 512


def spectrogram(path: str | os.PathLike[str], duration: float) -> tuple[np.ndarray, int]:
    """(log power in dB, (frequencies, columns)), sample rate) of a file, at most
    :data:`COLUMNS` columns: one FFT frame per column, evenly spaced."""
    step = max(_FFT // 2, int(duration * _RATE / COLUMNS))
    window = np.hanning(_FFT)
    columns = []
    rest = np.zeros(0, np.float32)
    for block in iter_blocks(open_audio(path), _RATE):
        x = np.concatenate([rest, block])
        starts = np.arange(0, max(0, x.size - _FFT + 1), step)
        if starts.size:
            frames = np.stack([x[s : s + _FFT] for s in starts]) * window
            columns.append(np.abs(np.fft.rfft(frames, axis=1)) ** 2)
            rest = x[starts[-1] + step :]
        else:
            rest = x
    if not columns:
        return np.full((_FFT // 2 + 1, 1), -120.0), _RATE
    power = np.concatenate(columns).T
    return 10 * np.log10(power + 1e-12), _RATE


def plot_detection(
    detection: Detection, out: str | os.PathLike[str], audio: str | os.PathLike[str] | None = None
) -> Path:
    """Draw ``detection`` (the spectrogram of ``audio``, default its source file, with the
    events as labelled bands; the score tracks below) into the PNG ``out``, atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none opened
    import matplotlib.pyplot as plt

    t = detection.tracks
    db, rate = spectrogram(audio or detection.source, t.duration)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.imshow(
        db,
        origin="lower",
        aspect="auto",
        extent=(0, t.duration, 0, rate / 2000),
        cmap="magma",
        vmin=float(db.max()) - 80,
        vmax=float(db.max()),
    )
    top.set_ylabel("kHz")
    shown = shown_classes(detection)
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(shown)}
    for k, e in enumerate(detection.events):
        colour = colours.get(e.label, "white")
        top.axvspan(e.onset, e.offset, color=colour, alpha=0.3)
        top.axvline(e.onset, color=colour, linewidth=1)
        y = rate / 2000 * (0.92 - 0.1 * (k % 4))  # staggered: overlapping events stay legible
        box = {"facecolor": colour, "alpha": 0.7, "pad": 1, "linewidth": 0}
        top.text(
            e.onset, y, f" {e.label} {e.peak:.2f}", color="white", fontsize=8, va="top", bbox=box
        )
    thresholds = detection.params.class_thresholds(t.classes)
    for c in shown:
        i = t.classes.index(c)
        (line,) = bottom.plot(t.times + t.frame / 2, t.scores[:, i], label=c, color=colours[c])
        bottom.axhline(thresholds[i], color=line.get_color(), linestyle="--", linewidth=0.8)
    silent = t.levels < detection.params.min_level_db
    if silent.any():  # frames that get no events whatever their scores
        bottom.fill_between(t.times, 0, 1, where=silent, step="post", color="0.85", label="silence")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("score")
    bottom.set_xlabel("time (s)")
    if shown:
        bottom.legend(loc="upper right", fontsize=8, ncol=min(3, len(shown)))
    top.set_title(
        f"{Path(detection.source).name}: {len(detection.events)} event(s); windows of "
        f"{t.window:g} s every {t.hop:g} s",
        fontsize=10,
    )
    fig.tight_layout()
    target = Path(out)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return target
