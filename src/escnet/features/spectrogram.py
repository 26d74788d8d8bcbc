"""Spectral images: waveform batches to log-mel spectrograms, in torch.

One implementation serves training, prediction and export: :class:`LogMel` is a ``torch.nn.Module``
with its mel filter bank and window as buffers, so it runs batched on any device and traces to
ONNX. Its output matches ``librosa.feature.melspectrogram`` followed by ``librosa.power_to_db``
(the paper's features) to within 0.01 dB above the -80 dB floor; the filter bank *is* librosa's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import librosa
import numpy as np
import torch
from torch import nn

from escnet.errors import ParameterError


class FrontEndConfig(Protocol):
    """What a model's front end (waveform -> spectral image) config offers the data pipeline."""

    @property
    def sample_rate(self) -> int:
        """Audio rate (Hz) the front end expects; loading resamples to it."""
        ...

    def build(self) -> nn.Module:
        """The module mapping waveforms (B, T) to spectral images (B, 1, mels, frames)."""
        ...

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a waveform of ``num_samples`` samples."""
        ...


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel spectrogram parameters. Defaults follow the paper (librosa's defaults).

    Attributes:
        sample_rate: audio rate in Hz (librosa's default 22050).
        n_fft: FFT size (2048).
        hop_length: hop between frames in samples (512).
        win_length: window length; ``None`` means ``n_fft``. The window is a periodic Hann.
        n_mels: mel bands (128).
        fmin, fmax: frequency range of the filter bank in Hz; ``fmax=None`` means Nyquist.
        power: 2.0 for a power spectrogram (librosa's default), 1.0 for magnitude.
        center: pad ``n_fft // 2`` zeros on both sides so frame t is centred at ``t * hop``.
        htk: HTK mel formula instead of Slaney's (librosa default: Slaney).
        norm: filter normalisation, ``"slaney"`` (librosa default) or ``None``.
        ref: dB reference: a power value (librosa's default 1.0) or ``"max"`` for each clip's
            maximum (``ref=np.max``).
        amin: floor on the power before the logarithm (1e-10).
        top_db: clip values more than this many dB below each clip's peak (80); ``None`` keeps all.
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    center: bool = True
    htk: bool = False
    norm: str | None = "slaney"
    ref: float | str = 1.0
    amin: float = 1e-10
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            if getattr(self, name) <= 0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise ParameterError(
                f"win_length must be in (0, n_fft={self.n_fft}], got {self.win_length}"
            )
        if self.power not in (1.0, 2.0):
            raise ParameterError(f"power must be 1.0 or 2.0, got {self.power}")
        if isinstance(self.ref, str) and self.ref != "max":
            raise ParameterError(f"ref must be a positive number or 'max', got {self.ref!r}")
        if not isinstance(self.ref, str) and self.ref <= 0:
            raise ParameterError(f"ref must be a positive number or 'max', got {self.ref}")
        if self.amin <= 0:
            raise ParameterError(f"amin must be > 0, got {self.amin}")
        if self.top_db is not None and self.top_db < 0:
            raise ParameterError(f"top_db must be >= 0 or None, got {self.top_db}")

    def build(self) -> LogMel:
        return LogMel(self)

    def num_frames(self, num_samples: int) -> int:
        if self.center:
            return 1 + num_samples // self.hop_length
        return 1 + (num_samples - self.n_fft) // self.hop_length

    def mel_frequencies(self) -> np.ndarray:
        """Centre frequencies (Hz) of the mel bands, for labelling plots."""
        fmax = self.fmax if self.fmax is not None else self.sample_rate / 2
        return librosa.mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=fmax, htk=self.htk)[
            1:-1
        ]


class LogMel(nn.Module):
    """Batched log-mel spectrogram: (B, T) waveforms -> (B, 1, n_mels, frames) dB images.

    Examples:
        >>> import torch
        >>> from escnet.features.spectrogram import LogMel, LogMelConfig
        >>> images = LogMel(LogMelConfig())(torch.randn(4, 110250))
        >>> tuple(images.shape)
        (4, 1, 128, 216)
    """

    window: torch.Tensor
    mel_basis: torch.Tensor

    def __init__(self, config: LogMelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or LogMelConfig()
        win_length = cfg.win_length or cfg.n_fft
        self.register_buffer(
            "window", torch.hann_window(win_length, periodic=True), persistent=False
        )
        mel = librosa.filters.mel(
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
            htk=cfg.htk,
            norm=cfg.norm,  # type: ignore[arg-type]  # "slaney" or None, validated above
        )
        self.register_buffer("mel_basis", torch.from_numpy(mel), persistent=False)

    def power_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Mel power (or magnitude) spectrogram, (B, T) -> (B, n_mels, frames)."""
        cfg = self.config
        spec = torch.stft(
            waveforms,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length or cfg.n_fft,
            window=self.window,
            center=cfg.center,
            pad_mode="constant",
            return_complex=True,
        ).abs()
        if cfg.power == 2.0:
            spec = spec.square()
        return torch.matmul(self.mel_basis, spec)

    def to_db(self, power: torch.Tensor) -> torch.Tensor:
        """``librosa.power_to_db`` over the last two axes of each item of the batch."""
        cfg = self.config
        # librosa converts power to dB with 10*log10; a magnitude spectrogram (power 1) would
        # need 20*log10, which librosa calls amplitude_to_db. Keep librosa's semantics.
        factor = 10.0 if cfg.power == 2.0 else 20.0
        db = factor * torch.log10(torch.clamp(power, min=cfg.amin))
        if cfg.ref == "max":
            ref = power.amax(dim=(-2, -1), keepdim=True).clamp(min=cfg.amin)
            db = db - factor * torch.log10(ref)
        else:
            db = db - factor * float(np.log10(max(cfg.amin, float(cfg.ref))))
        if cfg.top_db is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - cfg.top_db)
        return db

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.ndim != 2:
            raise ParameterError(
                f"LogMel expects waveforms of shape (batch, samples), got {tuple(waveforms.shape)}"
            )
        return self.to_db(self.power_mel(waveforms.float())).unsqueeze(1)


def log_mel(
    waveforms: np.ndarray, config: LogMelConfig | None = None, batch_size: int = 64
) -> np.ndarray:
    """NumPy convenience: (T,) -> (n_mels, frames) or (B, T) -> (B, n_mels, frames), float32.

    Computed in batches of ``batch_size`` on the CPU with :class:`LogMel`.
    """
    module = LogMel(config)
    x = np.asarray(waveforms, dtype=np.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
            out.append(module(batch)[:, 0].numpy())
    result = np.concatenate(out) if out else np.empty((0, module.config.n_mels, 0), np.float32)
    return result[0] if single else result
