"""The clips an exported graph is checked on against PyTorch, and the comparison itself.

Every export is checked on three synthetic waveforms (noise, a chirp, near-silence: enough to
catch a wrong graph); when real clips are at hand -- ``check_audio``, or by default the ESC-50
copy in the data directory (:func:`escnet.settings.data_dir`) -- also on the first ``count`` of
them by file name, where the graph must give PyTorch's top-1 label on every clip.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from escnet.data.audio import AudioConfig, load_audio
from escnet.errors import EscnetError
from escnet.settings import data_dir

__all__ = [
    "AUDIO_SUFFIXES",
    "CHECK_CLIPS",
    "compare",
    "default_check_dir",
    "load_check_clips",
    "synthetic_waveforms",
]

#: Clips of the real-audio check unless told otherwise.
CHECK_CLIPS = 100
#: Files the real-audio check reads.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Batches of this many clips go through both sides of a comparison (memory stays small).
_BATCH = 10


def synthetic_waveforms(num_samples: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Three clips: noise, a chirp and near-silence, (3, num_samples) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    chirp = 0.5 * np.sin(2 * np.pi * (100 + 1000 * t / max(float(t[-1]), 1e-9)) * t)
    noise = 0.1 * rng.standard_normal(num_samples)
    quiet = 1e-4 * rng.standard_normal(num_samples)
    return np.stack([noise, chirp, quiet]).astype(np.float32)


def default_check_dir() -> Path | None:
    """The ESC-50 clips in the data directory, when they are there."""
    audio = data_dir() / "esc50" / "audio"
    return audio if audio.is_dir() else None


def load_check_clips(
    directory: str | os.PathLike[str], sample_rate: int, clip_seconds: float, count: int
) -> tuple[np.ndarray, list[Path]]:
    """The first ``count`` audio files of ``directory`` (by name), as the model's clips.

    Raises:
        EscnetError: the directory holds no audio file.
    """
    root = Path(directory)
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)[:count]
    if not files:
        raise EscnetError(f"{root}: no audio files to check the exported graph on")
    config = AudioConfig(sample_rate=sample_rate, duration=clip_seconds)
    return np.stack([load_audio(f, config) for f in files]), files


def compare(
    graph: Callable[[np.ndarray], np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    waveforms: np.ndarray,
) -> dict[str, Any]:
    """Both functions on ``waveforms`` in batches: the largest probability difference, the
    clips whose top-1 label agrees, and the clips."""
    diff, agree = 0.0, 0
    for i in range(0, len(waveforms), _BATCH):
        batch = np.ascontiguousarray(waveforms[i : i + _BATCH])
        got, expected = np.asarray(graph(batch)), np.asarray(reference(batch))
        diff = max(diff, float(np.abs(got - expected).max()))
        agree += int((got.argmax(1) == expected.argmax(1)).sum())
    return {"clips": int(len(waveforms)), "top1_equal": agree, "max_abs_diff": diff}
