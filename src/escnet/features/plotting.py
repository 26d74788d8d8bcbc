"""Pictures a person reads: spectral images with time (s) and frequency (Hz) axes.

Matplotlib runs with the non-interactive Agg backend, so these work on servers and in CI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import librosa.display  # noqa: E402  (needs the backend chosen first)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402

from escnet.cache import atomic_path  # noqa: E402
from escnet.data.audio import MAX_SPECTROGRAM_S  # noqa: E402
from escnet.errors import (
    AudioError,  # noqa: E402
    ParameterError,
)
from escnet.features.spectrogram import FrontEndConfig, LogMelConfig  # noqa: E402

__all__ = ["MAX_SPECTROGRAM_S", "save_figure", "save_spectrogram_png", "show_spectral_image"]


def show_spectral_image(
    image: np.ndarray,
    config: FrontEndConfig | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> QuadMesh:
    """Draw a (n_mels, frames) image on ``ax`` with time in seconds and a mel-spaced Hz axis."""
    cfg: Any = config or LogMelConfig()
    if ax is None:
        ax = plt.gca()
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[0]
    mesh = librosa.display.specshow(
        img,
        sr=cfg.sample_rate,
        hop_length=getattr(cfg, "hop_length", 512),
        n_fft=getattr(cfg, "n_fft", 2048),
        x_axis="time",
        y_axis="mel",
        fmin=getattr(cfg, "fmin", 0.0),
        fmax=getattr(cfg, "fmax", None) or cfg.sample_rate / 2,
        htk=getattr(cfg, "htk", False),
        ax=ax,
        vmin=vmin,
        vmax=vmax,
        cmap="magma",
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    return mesh


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write a figure as PNG atomically and close it."""
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


def save_spectrogram_png(
    audio_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    config: LogMelConfig | None = None,
    *,
    duration: float | None = None,
) -> Path:
    """Load an audio file, compute its spectral image and save it as a titled PNG.

    ``duration=None`` shows the whole file; a number pads or crops it as training does (only
    that much of the file is decoded, so memory stays bounded however long the file is).

    Raises:
        AudioError: the file cannot be used (see :func:`escnet.data.audio.read_audio`), or it is
            longer than :data:`MAX_SPECTROGRAM_S` and ``duration`` is ``None``.
        ValueError: ``duration`` is not a number of seconds in (0, MAX_SPECTROGRAM_S].
    """
    from escnet.data.audio import AudioConfig, audio_duration, load_audio
    from escnet.features.spectrogram import log_mel

    limit = f"{MAX_SPECTROGRAM_S:g}"
    if duration is not None and not 0 < duration <= MAX_SPECTROGRAM_S:
        raise ParameterError(
            f"--duration / duration must be a number of seconds in (0, {limit}], got {duration}"
        )
    if duration is None:
        length = audio_duration(audio_path)
        if length > MAX_SPECTROGRAM_S:
            raise AudioError(
                Path(audio_path),
                f"is {length:.0f} s long; a spectrogram shows at most {limit} s: pass "
                f"--duration {limit} (or less) to draw the file's start",
            )
    cfg = config or LogMelConfig()
    wave = load_audio(audio_path, AudioConfig(sample_rate=cfg.sample_rate, duration=duration))
    image = log_mel(wave, cfg)
    fig, ax = plt.subplots(figsize=(8, 4))
    mesh = show_spectral_image(image, cfg, ax=ax, title=Path(audio_path).name)
    fig.colorbar(mesh, ax=ax, format="%+.0f dB")
    return save_figure(fig, out_path)
