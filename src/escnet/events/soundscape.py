"""Soundscapes with known events, for measuring detection: a small synthesizer after Scaper's model.

Scaper (the soundscape synthesizer of the UrbanSound8K authors) builds a soundscape from a
background and foreground events whose onset, duration and SNR are drawn from stated
distributions, and writes an annotation beside each. Its last release does not run with numpy 2,
so this module follows the same model with numpy alone:

* **Background**: pink noise (power falling 3 dB per octave, like the hum of a distant city or
  wind) from 50 Hz up, at ``background_db`` dBFS RMS (-35), a new draw per soundscape.
* **Events**: their number uniform in ``min_events..max_events`` (1-4); each a source clip drawn
  uniformly (with its class), trimmed to its sounding part (the frames within ``trim_db`` (30 dB)
  of its loudest 50-ms frame, from the first to the last): the event's duration is that part's;
  its onset uniform over the positions where it fits without coming within ``min_gap`` (1 s) of
  another event (events do not overlap: a softmax model labels one sound at a time); its SNR
  uniform in ``snr`` (0-12 dB): the RMS of the event's sounding frames over the background's RMS.
* **Mix**: background plus events; when the peak would exceed 0.99, the whole mix is scaled
  down (SNRs stay as drawn).
* **Files**: ``NAME.wav`` (16-bit PCM), ``NAME.txt`` (the events as an Audacity label track:
  onset, offset, label; Scaper writes the same), ``NAME.json`` (every drawn value and the source
  files, to repeat the draw). Each is written atomically, and a soundscape whose three files exist
  is not made again, so an interrupted run resumes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from escnet.cache import atomic_path, atomic_write_json, atomic_write_text
from escnet.data.audio import resample, to_mono
from escnet.errors import AudioError, ParameterError
from escnet.events.detect import Event
from escnet.events.formats import audacity_labels

__all__ = [
    "Placement",
    "Soundscape",
    "SoundscapeConfig",
    "esc50_sources",
    "pink_noise",
    "read_reference",
    "synthesize",
    "trim_silence",
    "write_soundscape",
    "write_soundscapes",
]


@dataclass(frozen=True)
class SoundscapeConfig:
    """The distributions of a soundscape (see the module docstring).

    Attributes:
        duration: length in seconds (60).
        min_events, max_events: events per soundscape, uniform (1-4).
        snr: (low, high) event SNR in dB over the background, uniform (0-12).
        background_db: background RMS level, dBFS (-35).
        min_gap: least silence-of-events between two events, seconds (1).
        trim_db: a source clip's sounding part: frames within this many dB of its loudest (30).
        sample_rate: of the written files, Hz (32,000).
    """

    duration: float = 60.0
    min_events: int = 1
    max_events: int = 4
    snr: tuple[float, float] = (0.0, 12.0)
    background_db: float = -35.0
    min_gap: float = 1.0
    trim_db: float = 30.0
    sample_rate: int = 32_000

    def __post_init__(self) -> None:
        if not 0 < self.duration <= 3600:
            raise ParameterError(f"duration must be in (0, 3600] s, got {self.duration}")
        if not 0 <= self.min_events <= self.max_events:
            raise ParameterError(
                f"need 0 <= min_events <= max_events, got {self.min_events}, {self.max_events}"
            )
        if not self.snr[0] <= self.snr[1] or not all(map(math.isfinite, self.snr)):
            raise ParameterError(f"snr must be (low, high) with low <= high, got {self.snr}")
        if self.min_gap < 0 or self.trim_db <= 0 or self.sample_rate <= 0:
            raise ParameterError("min_gap must be >= 0, trim_db and sample_rate > 0")


@dataclass(frozen=True)
class Placement:
    """One event of a soundscape: which clip, where, how loud."""

    source: str
    label: str
    onset: float
    duration: float
    snr: float


@dataclass
class Soundscape:
    """A synthesized recording and its true events."""

    audio: np.ndarray
    sample_rate: int
    placements: list[Placement]
    config: SoundscapeConfig
    record: dict[str, Any] = field(default_factory=dict)

    def events(self, file: str = "") -> list[Event]:
        """The true events (peak and mean 1), in onset order."""
        return [
            Event(file, p.onset, p.onset + p.duration, p.label, 1.0, 1.0)
            for p in sorted(self.placements, key=lambda p: p.onset)
        ]


def trim_silence(clip: np.ndarray, sample_rate: int, trim_db: float = 30.0) -> np.ndarray:
    """The sounding part of ``clip``: from the first to the last 50-ms frame within
    ``trim_db`` dB of its loudest frame. A silent clip raises :class:`AudioError`."""
    frame = max(1, int(0.05 * sample_rate))
    n = max(1, clip.size // frame)
    power = np.array([np.mean(np.square(clip[i * frame : (i + 1) * frame])) for i in range(n)])
    if not power.max() > 0:
        raise AudioError("clip", "completely silent: it has no sounding part to place")
    loud = np.flatnonzero(10 * np.log10(np.maximum(power, 1e-30) / power.max()) >= -trim_db)
    return clip[loud[0] * frame : min(clip.size, (loud[-1] + 1) * frame)]


def pink_noise(n: int, rng: np.random.Generator, sample_rate: int, low: float = 50.0) -> np.ndarray:
    """``n`` samples of pink noise (power ~ 1/f) from ``low`` Hz up, RMS 1. Without the lower
    bound a long draw's power would sit below hearing (1/f grows without bound towards 0 Hz):
    a slow swell of the level, and an RMS that says little about what is heard."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size) * sample_rate / n
    spectrum[f < low] = 0
    spectrum[f >= low] /= np.sqrt(f[f >= low])  # power ~ 1/f
    y = np.fft.irfft(spectrum, n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _load(path: str, sample_rate: int, trim_db: float) -> np.ndarray:
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, f"cannot be decoded ({exc})") from None
    return trim_silence(resample(to_mono(y), int(sr), sample_rate), sample_rate, trim_db)


def _draw_onsets(
    durations: list[float], config: SoundscapeConfig, rng: np.random.Generator
) -> list[float] | None:
    """Onsets for events of these durations, none overlapping (with ``min_gap``), or None."""
    taken: list[tuple[float, float]] = []
    onsets = []
    for d in durations:
        for _ in range(200):  # rejection sampling: a minute holds four 5-s events easily
            onset = float(rng.uniform(0, max(0.0, config.duration - d)))
            gap = config.min_gap
            if all(onset + d + gap <= a or b + gap <= onset for a, b in taken):
                break
        else:
            return None
        taken.append((onset, onset + d))
        onsets.append(round(onset, 3))
    return onsets


def synthesize(
    sources: Sequence[tuple[str, str]],
    config: SoundscapeConfig = SoundscapeConfig(),  # noqa: B008  (frozen, never changed)
    *,
    seed: int = 0,
    placements: Sequence[tuple[str, str, float, float]] | None = None,
) -> Soundscape:
    """One soundscape from ``sources`` ((path, label) pairs), drawn with ``seed``; or with the
    given ``placements`` ((path, label, onset, snr) each) instead of drawn events."""
    rng = np.random.default_rng(seed)
    sr = config.sample_rate
    n = int(round(config.duration * sr))
    background = pink_noise(n, rng, sr) * 10 ** (config.background_db / 20)
    if placements is None:
        count = int(rng.integers(config.min_events, config.max_events + 1))
        if count and not sources:
            raise ParameterError("no source clips to draw events from")
        picks = [sources[int(i)] for i in rng.integers(0, len(sources), count)]
        clips = [_load(p, sr, config.trim_db) for p, _ in picks]
        onsets = _draw_onsets([c.size / sr for c in clips], config, rng)
        if onsets is None:
            raise ParameterError(f"{count} events do not fit in {config.duration:g} s")
        snrs = [round(float(rng.uniform(*config.snr)), 2) for _ in picks]
        chosen = [(p, lab, o, s) for (p, lab), o, s in zip(picks, onsets, snrs, strict=True)]
    else:
        chosen = list(placements)
        clips = [_load(p, sr, config.trim_db) for p, _, _, _ in chosen]
    mix = background.copy()
    placed = []
    for (path, label, onset, snr), clip in zip(chosen, clips, strict=True):
        start = int(round(onset * sr))
        clip = clip[: max(0, n - start)]
        if clip.size == 0:
            raise ParameterError(f"event {label} at {onset} s starts after the soundscape ends")
        gain = _rms(background) * 10 ** (snr / 20) / (_rms(clip) + 1e-12)
        mix[start : start + clip.size] += gain * clip
        placed.append(Placement(str(path), label, float(onset), clip.size / sr, float(snr)))
    peak = float(np.abs(mix).max())
    scale = 0.99 / peak if peak > 0.99 else 1.0
    record = {
        "seed": seed,
        "config": asdict(config),
        "scale": scale,
        "events": [asdict(p) for p in placed],
    }
    return Soundscape((mix * scale).astype(np.float32), sr, placed, config, record)


def write_soundscape(scape: Soundscape, out: str | os.PathLike[str]) -> Path:
    """Write ``out``.wav, ``out``.txt (true events, Audacity labels) and ``out``.json; returns
    the WAV's path."""
    base = Path(out)
    wav = base.with_suffix(".wav")
    with atomic_path(wav) as tmp:
        sf.write(tmp, scape.audio, scape.sample_rate, subtype="PCM_16", format="WAV")
    atomic_write_text(base.with_suffix(".txt"), audacity_labels(scape.events(str(wav))))
    atomic_write_json(base.with_suffix(".json"), scape.record)
    return wav


def write_soundscapes(
    sources: Sequence[tuple[str, str]],
    out_dir: str | os.PathLike[str],
    count: int,
    config: SoundscapeConfig = SoundscapeConfig(),  # noqa: B008
    *,
    seed: int = 0,
    prefix: str = "soundscape",
) -> list[Path]:
    """``count`` soundscapes ``prefix``-000.wav, ... in ``out_dir`` (soundscape k drawn with
    ``seed + k``); those already written are kept (a rerun resumes). Returns the WAV paths."""
    out = Path(out_dir)
    paths = []
    for k in range(count):
        base = out / f"{prefix}-{k:03d}"
        if not all(base.with_suffix(s).is_file() for s in (".wav", ".txt", ".json")):
            write_soundscape(synthesize(sources, config, seed=seed + k), base)
        paths.append(base.with_suffix(".wav"))
    return paths


def read_reference(wav: str | os.PathLike[str]) -> list[Event]:
    """The true events of a soundscape (its ``.txt`` label track beside the WAV)."""
    from escnet.events.formats import read_audacity

    path = Path(wav)
    labels = path.with_suffix(".txt")
    if not labels.is_file():
        raise AudioError(path, f"no label track {labels.name} beside it (onset, offset, label)")
    return read_audacity(labels, file=str(path))


def esc50_sources(clips: Sequence[Any], classes: Sequence[str]) -> list[tuple[str, str]]:
    """(path, class name) of data set clips (:class:`escnet.data.clips.Clip`)."""
    return [(str(c.path), classes[c.label]) for c in clips]
