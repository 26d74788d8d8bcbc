"""A picture of augmentation: one clip's spectral image beside each NAA and TAA variant."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from escnet.augment.audio import NAA_VARIANTS, naa_transform, variant_rng
from escnet.augment.image import TAA
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import Dataset
from escnet.errors import ParameterError
from escnet.features.spectrogram import LogMelConfig, log_mel

#: Titles of the gallery's panels.
TITLES = {
    "original": "original",
    "shift": "NAA: time shift (<= 0.5 s)",
    "pps": "NAA: pitch shift +2 st (PPS)",
    "nps": "NAA: pitch shift -2 st (NPS)",
    "sts": "NAA: slow stretch x0.7 (STS)",
    "fts": "NAA: fast stretch x1.2 (FTS)",
    "ts": "NAA: trim silence (TS)",
}


def gallery_images(
    waveform: np.ndarray, config: LogMelConfig | None = None, *, seed: int = 0, taa_samples: int = 2
) -> dict[str, np.ndarray]:
    """Spectral images of a clip, its six NAA variants and ``taa_samples`` TAA draws, by title."""
    cfg = config or LogMelConfig()
    waves = [waveform] + [
        naa_transform(n)(waveform, cfg.sample_rate, rng=variant_rng(seed, n)) for n in NAA_VARIANTS
    ]
    images = log_mel(np.stack(waves), cfg)
    out = {TITLES[n]: im for n, im in zip(("original", *NAA_VARIANTS), images, strict=True)}
    taa = TAA(seed=seed)
    batch = torch.from_numpy(np.repeat(images[:1, None], taa_samples, axis=0))
    for k, im in enumerate(taa(batch)[:, 0].numpy()):
        out[f"TAA: random draw {k + 1}"] = im
    return out


def augment_gallery(
    dataset: Dataset,
    clip_id: str,
    out: str | os.PathLike[str],
    *,
    config: LogMelConfig | None = None,
    seed: int = 0,
    taa_samples: int = 2,
) -> Path:
    """Draw the clip ``clip_id`` of ``dataset`` and its NAA and TAA variants into one PNG.

    Every panel shares the time (s) and frequency (Hz) axes and one dB colour scale.
    """
    from escnet.features.plotting import plt, save_figure, show_spectral_image

    cfg = config or LogMelConfig()
    matches = [c for c in dataset.clips if c.clip_id == clip_id]
    if not matches:
        raise ParameterError(f"--clip {clip_id!r} is not a clip of {dataset.name} ({dataset.root})")
    clip = matches[0]
    wave = load_audio(
        clip.path, AudioConfig(sample_rate=cfg.sample_rate, duration=dataset.duration)
    )
    panels = gallery_images(wave, cfg, seed=seed, taa_samples=taa_samples)
    vmax = max(float(im.max()) for im in panels.values())
    vmin = vmax - (cfg.top_db or 80.0)
    cols = 3
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), sharex=True, sharey=True)
    flat = list(np.ravel(axes))
    mesh = None
    for ax, (title, image) in zip(flat, panels.items(), strict=False):
        mesh = show_spectral_image(image, cfg, ax=ax, title=title, vmin=vmin, vmax=vmax)
        ax.label_outer()
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    if mesh is not None:
        fig.colorbar(mesh, ax=flat, format="%+.0f dB", shrink=0.6)
    fig.suptitle(f"{dataset.name} clip {clip_id} ({dataset.classes[clip.label]})")
    return save_figure(fig, out)
