"""Front ends for ONNX export: the same spectral images, computed with matrix products.

``torch.stft`` with a complex result does not export to ONNX. It does export with
``return_complex=False``, as ONNX's ``STFT`` operator, but onnxruntime runs that operator slowly
(measured on one thread: 43 ms of a 47 ms front end for a 5-s ``mn04_as`` clip, against 10 ms
for the whole front end below). So each of escnet's front ends
(:class:`escnet.spectrogram.LogMel`, :class:`escnet.models.mobilenet_audioset.AudioSetMel`) has an
export twin here built on :class:`MatmulMelSpectrogram`:

1. framing: the padded signal is cut into ``ceil(n_fft / hop)`` hop-long chunks per frame with
   reshapes, slices and one concatenation (no gather, works for any length: the samples axis of
   the graph stays dynamic);
2. the DFT of each frame as a two-stage Cooley-Tukey factorisation ``n_fft = N1 * N2`` written as
   two matrix products with a twiddle multiplication between them; the second stage computes
   only the frequency bins the mel filter bank uses (``mn04_as``: 480 of 513);
3. power (or magnitude) and the mel projection as one more matrix product.

Matrix products are what onnxruntime (and any other runtime) does fastest; the DFT matrices are
computed in float64 and stored in float32, and the twins match their PyTorch originals to
float32 rounding (tested to 1e-4 on ``mn04_as``'s normalised log-mel, 1e-3 dB on ``LogMel``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from escnet.errors import EscnetError
from escnet.models.mobilenet_audioset import AudioSetMel
from escnet.spectrogram import LogMel

__all__ = ["MatmulMelSpectrogram", "export_front_end"]


def _split(n: int) -> tuple[int, int]:
    """``n = n1 * n2`` with ``n1`` the largest divisor not above sqrt(n) (balanced stages)."""
    n1 = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return n1, n // n1


class MatmulMelSpectrogram(nn.Module):
    """Padded signals (B, L) -> mel spectrogram (B, frames, n_mels), from matrix products.

    Frame ``t`` covers samples ``[t * hop, t * hop + n_fft)``, as ``torch.stft(center=False)``;
    padding (centring) is the caller's.

    Args:
        n_fft: DFT size.
        hop: hop between frames.
        window: analysis window, ``n_fft`` long (a shorter window is zero-padded in the middle,
            as ``torch.stft`` does).
        mel_basis: (n_mels, n_fft // 2 + 1) filter bank.
        power: 2.0 for the power spectrum, 1.0 for the magnitude.
    """

    window: torch.Tensor
    stage1: torch.Tensor
    twiddle_re: torch.Tensor
    twiddle_im: torch.Tensor
    stage2: torch.Tensor
    mel: torch.Tensor

    def __init__(
        self,
        n_fft: int,
        hop: int,
        window: torch.Tensor,
        mel_basis: torch.Tensor,
        power: float = 2.0,
    ) -> None:
        super().__init__()
        if window.numel() < n_fft:
            left = (n_fft - window.numel()) // 2
            window = nn.functional.pad(window, (left, n_fft - window.numel() - left))
        self.n_fft, self.hop, self.power = n_fft, hop, power
        n1, n2 = self.n1, self.n2 = _split(n_fft)
        used = int(torch.nonzero(mel_basis.abs().sum(0)).max()) + 1  # bins the mel bank reads
        k2 = self.k2 = math.ceil(used / n1)
        f64 = torch.float64
        # Sample n = n2 * i1 + i2 sits at [i1, i2] of a (n1, n2) view; stage 1 transforms
        # over i1 for each i2, so the frame is viewed as (n2, n1) and multiplied on the right.
        self.register_buffer("window", window.to(f64).reshape(n1, n2).t().float(), persistent=False)
        i1 = torch.arange(n1, dtype=f64)
        a1 = 2 * math.pi * torch.outer(i1, i1) / n1
        self.register_buffer(
            "stage1", torch.cat([torch.cos(a1), -torch.sin(a1)], 1).float(), persistent=False
        )
        i2 = torch.arange(n2, dtype=f64)
        tw = 2 * math.pi * torch.outer(i1, i2) / n_fft  # [k1, i2]
        self.register_buffer("twiddle_re", torch.cos(tw).float(), persistent=False)
        self.register_buffer("twiddle_im", (-torch.sin(tw)).float(), persistent=False)
        a2 = 2 * math.pi * torch.outer(i2, torch.arange(k2, dtype=f64)) / n2  # [i2, k2]
        c, s = torch.cos(a2), -torch.sin(a2)
        # [re | im] @ [[c, s], [-s, c]] = [re c - im s | re s + im c]: a complex product.
        stage2 = torch.cat([torch.cat([c, s], 1), torch.cat([-s, c], 1)], 0)
        self.register_buffer("stage2", stage2.float(), persistent=False)
        # Output bin k = k1 + n1 * k2 sits at [k1, k2]; rows of the mel matrix in that order.
        bins = (torch.arange(n1)[:, None] + n1 * torch.arange(k2)[None, :]).reshape(-1)
        mel = torch.zeros(n1 * k2, mel_basis.shape[0], dtype=f64)
        valid = bins < mel_basis.shape[1]
        mel[valid] = mel_basis.to(f64).t()[bins[valid]]
        self.register_buffer("mel", mel.float(), persistent=False)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, frames, n_fft) overlapping frames, ``frames = 1 + (L - n_fft) // hop``."""
        chunks = -(-self.n_fft // self.hop)
        count = (x.shape[1] - self.n_fft) // self.hop + 1
        # Pad, then keep whole hop-long chunks: frame t is chunks t .. t + chunks - 1, cut.
        x = nn.functional.pad(x, (0, chunks * self.hop))[:, : (count - 1 + chunks) * self.hop]
        c = x.reshape(x.shape[0], -1, self.hop)
        return torch.cat([c[:, i : i + count] for i in range(chunks)], -1)[..., : self.n_fft]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.frames(x)
        b, t = frames.shape[0], frames.shape[1]
        z = frames.reshape(b, t, self.n1, self.n2).transpose(2, 3) * self.window  # (b,t,n2,n1)
        z = (z @ self.stage1).transpose(2, 3)  # (b, t, 2 n1, n2): rows k1, real then imaginary
        re, im = z[:, :, : self.n1], z[:, :, self.n1 :]
        re, im = (
            re * self.twiddle_re - im * self.twiddle_im,
            re * self.twiddle_im + im * self.twiddle_re,
        )
        z = torch.cat([re, im], -1) @ self.stage2  # (b, t, n1, 2 k2)
        spectrum = z[..., : self.k2].square() + z[..., self.k2 :].square()
        if self.power == 1.0:
            spectrum = spectrum.sqrt()
        return spectrum.flatten(2) @ self.mel  # (b, t, n_mels)


class _LogMelTwin(nn.Module):
    """:class:`LogMel` with exportable operators (same output to float32 rounding)."""

    def __init__(self, source: LogMel) -> None:
        super().__init__()
        cfg = source.config
        self.source = source
        self.spectrogram = MatmulMelSpectrogram(
            cfg.n_fft, cfg.hop_length, source.window, source.mel_basis, cfg.power
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        cfg = self.source.config
        x = waveforms
        if cfg.center:
            x = nn.functional.pad(x, (cfg.n_fft // 2, cfg.n_fft // 2))
        mel = self.spectrogram(x).transpose(1, 2)
        return self.source.to_db(mel).unsqueeze(1)


class _AudioSetMelTwin(nn.Module):
    """:class:`AudioSetMel` with exportable operators (same output to float32 rounding)."""

    def __init__(self, source: AudioSetMel) -> None:
        super().__init__()
        cfg = source.config
        self.source = source
        self.spectrogram = MatmulMelSpectrogram(
            cfg.n_fft, cfg.hop_length, source.window, source.mel_basis, 2.0
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        cfg = self.source.config
        x = nn.functional.conv1d(waveforms.unsqueeze(1), self.source.preemphasis_kernel)
        half = cfg.n_fft // 2
        x = nn.functional.pad(x, (half, half), mode="reflect").squeeze(1)
        mel = self.spectrogram(x).transpose(1, 2)
        log_mel = torch.log(mel + cfg.log_offset)
        return ((log_mel + cfg.norm_shift) / cfg.norm_scale).unsqueeze(1)


def export_front_end(front_end: nn.Module) -> nn.Module:
    """The export twin of a front end module (same input, same output).

    Raises:
        EscnetError: a front end escnet cannot export yet.
    """
    if isinstance(front_end, LogMel):
        return _LogMelTwin(front_end)
    if isinstance(front_end, AudioSetMel):
        return _AudioSetMelTwin(front_end)
    raise EscnetError(
        f"front end {type(front_end).__name__} has no ONNX export twin in escnet.export; "
        "export without --onnx"
    )
