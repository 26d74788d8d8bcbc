"""Front ends for ONNX export: the same spectral images, computed with matrix products.

``torch.stft`` with a complex result does not export to ONNX. It does export with
``return_complex=False``, as ONNX's ``STFT`` operator, but onnxruntime runs that operator slowly
(measured on one thread: 43 ms of a 47 ms front end for a 5-s ``mn04_as`` clip). So each of
escnet's front ends (:class:`escnet.features.spectrogram.LogMel`,
:class:`escnet.models.mobilenet_audioset.AudioSetMel`) has an export twin here built on
:class:`MatmulMelSpectrogram`, a two-stage Cooley-Tukey DFT ``n_fft = n1 * n2`` (sample
``n = n2 * i1 + i2``, bin ``k = k1 + n1 * k2``) written as matrix products:

1. framing: the signal, viewed as hop-long chunks of ``n2``-sample rows, is transposed once and
   cut into the layout (batch, i2, i1, frame) by one concatenation of slices (no gather, any
   length: the samples axis of the graph stays dynamic). Only the rows ``i1`` that the window
   touches are kept (``mn04_as``: its 800-sample window in a 1024-point frame, 26 rows of 32);
2. stage 1, one batched product over ``i1`` for each ``i2``, whose matrices fold in the window,
   the length-``n1`` DFT and the inter-stage twiddle factors (all fixed per ``(i2, i1, k1)``), so
   no elementwise twiddle is left. The frames are real, so only ``k1 <= n1 / 2`` is computed: the
   other bins are conjugate mirrors with the same power;
3. stage 2, the length-``n2`` DFT over ``i2``: one matrix shared by all ``k1`` (the twiddles are
   in stage 1), for the ``k2`` whose bins, or mirrored bins, the mel bank reads; its rows put
   each bin's real and imaginary parts side by side, so that the power is one product and one
   sum over that pair (no split of the spectrum into halves);
4. power, and the mel projection in a few groups of bands, each reading only the contiguous
   rows of bins its triangles cover (``mn04_as``: 15% of the dense product's multiply-adds).

The result comes out as (batch, 1, n_mels, frames), the image layout with its channel, with no
transpose or copy to add the channel. A constant factor of the mel bank (``mel_scale``) lets a
twin fold an additive constant after the log into it: ``log(c m) = log m + log c``. Matrix
products are what onnxruntime does fastest; the matrices are computed in float64 and stored in
float32, and the twins match their PyTorch originals to float32 rounding (tested to 1e-4 on
``mn04_as``'s normalised log-mel, 1e-3 dB on ``LogMel``). ``benchmarks/bench_front_end.py``
compares this graph with an earlier revision's in one process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from escnet.errors import EscnetError
from escnet.features.spectrogram import LogMel
from escnet.models.mobilenet_audioset import AudioSetMel

__all__ = ["MatmulMelSpectrogram", "export_front_end"]

#: Most groups the mel projection is split into; more gain little (``mn04_as``: with 4, 6 or 8
#: groups the front end ran equally fast, with the dense product 25% slower).
MAX_MEL_GROUPS = 6
#: Framing without reshapes (when ``n2`` does not divide the hop) copies and transposes every
#: frame; counted as this many multiply-adds per frame sample when choosing the factorisation.
_GENERIC_FRAMING_COST = 8


@dataclass(frozen=True)
class _Plan:
    """A factorisation of the DFT and what it computes (see the module docstring)."""

    n1: int
    n2: int
    lo: int  # first row i1 the window touches
    hi: int  # one past the last
    k2: tuple[int, ...]  # stage-2 bins computed, in the order of increasing (folded) bin

    @property
    def h1(self) -> int:
        """Stage-1 bins ``k1`` computed: ``0 .. n1 // 2`` (the rest mirror them)."""
        return self.n1 // 2 + 1

    def macs(self) -> int:
        """Multiply-adds per frame of the two DFT stages."""
        return 2 * self.n2 * (self.hi - self.lo) * self.h1 + 4 * self.h1 * len(self.k2) * self.n2


def _folded_bins(n_fft: int, n1: int, n2: int) -> torch.Tensor:
    """[k1, k2] -> the bin in ``0 .. n_fft // 2`` with the same power as ``k1 + n1 * k2``."""
    b = torch.arange(n1 // 2 + 1)[:, None] + n1 * torch.arange(n2)[None, :]
    return torch.minimum(b, n_fft - b)


def _make_plan(n_fft: int, n1: int, window: torch.Tensor, used: int) -> _Plan:
    """The plan for ``n_fft = n1 * n2``, the window's non-zero rows and the ``used`` bins."""
    n2 = n_fft // n1
    nonzero = torch.nonzero(window).flatten()
    lo, hi = int(nonzero.min()) // n2, int(nonzero.max()) // n2 + 1
    fold = _folded_bins(n_fft, n1, n2)
    k2 = sorted((k for k in range(n2) if bool((fold[:, k] < used).any())),
                key=lambda k: int(fold[:, k].min()))  # fmt: skip
    return _Plan(n1, n2, lo, hi, tuple(k2))


def _choose_plan(n_fft: int, hop: int, window: torch.Tensor, used: int) -> _Plan:
    """The factorisation with the fewest multiply-adds per frame (framing counted), among those
    with ``n1 <= n2``.

    A longer stage 1 would often be cheaper (``mn04_as``: 64 x 16 needs 10% fewer multiply-adds
    than 32 x 32) but its float32 sums are less accurate: on the export test's 2-s noise and
    tone, 64 x 16 put ``mn04_as``'s normalised log-mel 1.0e-4 from float64 truth, 32 x 32
    2.6e-5 (torch.stft in float32: 4.9e-5), and only the latter passes the 1e-4 parity test.
    """

    def cost(plan: _Plan) -> int:
        return plan.macs() + (0 if hop % plan.n2 == 0 else _GENERIC_FRAMING_COST * n_fft)

    plans = [
        _make_plan(n_fft, n1, window, used)
        for n1 in range(1, math.isqrt(n_fft) + 1)
        if n_fft % n1 == 0
    ]
    return min(plans, key=cost)


def _stage1(plan: _Plan, n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """(2, n2, h1, rows): [real, imaginary] of ``window[n] * exp(-2 pi i k1 n / n_fft)``.

    ``n = n2 * i1 + i2``; the length-``n1`` DFT and the twiddle ``exp(-2 pi i k1 i2 / n_fft)``
    multiply to exactly this, so stage 1 needs no elementwise twiddle afterwards.
    """
    f64 = torch.float64
    i1 = torch.arange(plan.lo, plan.hi, dtype=f64)
    n = plan.n2 * i1[None, :] + torch.arange(plan.n2, dtype=f64)[:, None]  # [i2, i1]
    k1 = torch.arange(plan.h1, dtype=f64)
    angle = 2 * math.pi * k1[None, :, None] * n[:, None, :] / n_fft  # [i2, k1, i1]
    w = window.to(f64)[n.long()][:, None, :]
    return torch.stack([w * torch.cos(angle), -w * torch.sin(angle)])


def _stage2(plan: _Plan) -> torch.Tensor:
    """(2 K, 2 n2): rows [real k2 ..., imaginary k2 ...], columns [real i2 ..., imaginary i2 ...].

    ``(a + ib) exp(-i t) = (a cos t + b sin t) + i (b cos t - a sin t)``, ``t = 2 pi i2 k2 / n2``.
    """
    f64 = torch.float64
    t = torch.tensor(plan.k2, dtype=f64)[:, None] * torch.arange(plan.n2, dtype=f64)[None, :]
    c, s = torch.cos(2 * math.pi * t / plan.n2), torch.sin(2 * math.pi * t / plan.n2)
    return torch.cat([torch.cat([c, s], 1), torch.cat([-s, c], 1)], 0)


def _mel_rows(plan: _Plan, n_fft: int, mel_basis: torch.Tensor, used: int) -> torch.Tensor:
    """(n_mels, K * h1): the mel bank with one column per computed (k2, k1), in that order.

    A bin that several (k2, k1) reach (its mirror, or the Nyquist and DC bins) is read once.
    """
    fold = _folded_bins(n_fft, plan.n1, plan.n2)
    basis = mel_basis.to(torch.float64)
    mel = torch.zeros(basis.shape[0], len(plan.k2), plan.h1, dtype=torch.float64)
    seen: set[int] = set()
    for j, k2 in enumerate(plan.k2):
        for k1 in range(plan.h1):
            f = int(fold[k1, k2])
            if f < used and f not in seen:
                seen.add(f)
                mel[:, j, k1] = basis[:, f]
    if len(seen) != used:  # every bin has a mirror with k1 <= n1 / 2; this cannot happen
        raise RuntimeError(f"DFT plan {plan} reaches {len(seen)} of the {used} bins")
    return mel.reshape(basis.shape[0], -1)


def _mel_groups(mel: torch.Tensor, max_groups: int) -> list[tuple[int, int, int, int]]:
    """Contiguous groups of bands ``(m0, m1, r0, r1)``: bands ``m0:m1`` read only rows ``r0:r1``.

    Dynamic programming over the group boundaries minimises the multiply-adds, plus a row's copy
    for each row a group slices out, plus a fixed cost per group.
    """
    nz = mel != 0
    bands = mel.shape[0]
    max_groups = min(max_groups, bands)
    first = [int(torch.nonzero(r).min()) if r.any() else mel.shape[1] for r in nz]
    last = [int(torch.nonzero(r).max()) + 1 if r.any() else 0 for r in nz]

    def span(a: int, b: int) -> tuple[int, int]:
        r0, r1 = min(first[a:b]), max(last[a:b])
        return (r0, r1) if r1 > r0 else (0, 1)  # empty filters: one zero row, not a 0-size product

    def cost(a: int, b: int) -> int:
        r0, r1 = span(a, b)
        return (r1 - r0) * (b - a + 1) + 2 * mel.shape[1]

    # best[g][b]: (cost, previous boundary) of the first b bands in g groups.
    best: list[dict[int, tuple[int, int]]] = [{0: (0, 0)}]
    for g in range(1, max_groups + 1):
        best.append({})
        for b in range(g, bands + 1):
            best[g][b] = min((best[g - 1][a][0] + cost(a, b), a) for a in best[g - 1] if a < b)
    g = min(range(1, max_groups + 1), key=lambda g: best[g][bands][0])
    groups, b = [], bands
    for level in range(g, 0, -1):
        a = best[level][b][1]
        groups.append((a, b, *span(a, b)))
        b = a
    return groups[::-1]


class MatmulMelSpectrogram(nn.Module):
    """Padded signals (B, L) -> mel spectrogram (B, n_mels, frames), from matrix products.

    Frame ``t`` covers samples ``[t * hop, t * hop + n_fft)``, as ``torch.stft(center=False)``;
    padding (centring) is the caller's. The DFT's factorisation is chosen for the fewest
    multiply-adds given the window's non-zero span and the bins the mel bank reads.

    Args:
        n_fft: DFT size.
        hop: hop between frames.
        window: analysis window, ``n_fft`` long (a shorter window is zero-padded in the middle,
            as ``torch.stft`` does).
        mel_basis: (n_mels, n_fft // 2 + 1) filter bank.
        power: 2.0 for the power spectrum, 1.0 for the magnitude.
        max_mel_groups: most groups of bands the mel projection is split into (1: dense).
        mel_scale: a factor of the mel bank (a twin folds ``log`` offsets into it).

    The output is (B, 1, n_mels, frames): the image's channel axis is made by the reshape that
    the power spectrum needs anyway.
    """

    stage1: torch.Tensor
    stage2: torch.Tensor
    mel: torch.Tensor

    def __init__(
        self,
        n_fft: int,
        hop: int,
        window: torch.Tensor,
        mel_basis: torch.Tensor,
        power: float = 2.0,
        max_mel_groups: int = MAX_MEL_GROUPS,
        mel_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if window.numel() < n_fft:
            left = (n_fft - window.numel()) // 2
            window = nn.functional.pad(window, (left, n_fft - window.numel() - left))
        self.n_fft, self.hop, self.power, self.mel_scale = n_fft, hop, power, mel_scale
        used = int(torch.nonzero(mel_basis.abs().sum(0)).max()) + 1  # bins the mel bank reads
        self.plan = plan = _choose_plan(n_fft, hop, window, used)
        # Stage 1 as (i2, [re, im] x k1, rows), one product per i2; its output rows (i2, [re,
        # im]) are stage 2's contraction, so stage 2's columns take that order.
        stage1 = _stage1(plan, n_fft, window).transpose(0, 1).reshape(plan.n2, 2 * plan.h1, -1)
        stage2 = _stage2(plan).reshape(-1, 2, plan.n2).transpose(1, 2).reshape(-1, 2 * plan.n2)
        # Rows [re k2_0, im k2_0, re k2_1, ...]: a bin's two parts side by side (its power is
        # one sum over that pair, no split into halves). With the twins' other changes this
        # took the mn04_as front end from 1.77 to 1.73 ms on one thread (onnxruntime 1.32,
        # side by side, other work on the cores): within the noise; no slower, fewer nodes.
        k = len(plan.k2)
        stage2 = stage2.reshape(2, k, -1).transpose(0, 1).reshape(2 * k, -1)
        self.register_buffer("stage1", stage1.float(), persistent=False)
        self.register_buffer("stage2", stage2.float(), persistent=False)
        mel = _mel_rows(plan, n_fft, mel_basis, used) * mel_scale
        self.register_buffer("mel", mel.float(), persistent=False)
        self.mel_groups = _mel_groups(mel, max_mel_groups) if max_mel_groups > 1 else []
        for g, (m0, m1, r0, r1) in enumerate(self.mel_groups):
            self.register_buffer(f"mel{g}", mel[m0:m1, r0:r1].float(), persistent=False)
        # Frame rows i1 = s * a + r come from chunk t + a, row r of the chunk (s = hop / n2).
        s = hop // plan.n2
        self._pieces = [
            (a, max(plan.lo - a * s, 0), min(plan.hi - a * s, s))
            for a in range(plan.lo // s, -(-plan.hi // s))
        ] if hop % plan.n2 == 0 else []  # fmt: skip

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, n2, rows, frames): sample ``hop * t + n2 * i1 + i2`` at ``[:, i2, i1 -
        lo, t]``, for the rows ``lo <= i1 < hi`` the window touches; ``frames = 1 + (L - n_fft)
        // hop``."""
        n2, hop, b = self.plan.n2, self.hop, x.shape[0]
        count = (x.shape[1] - self.n_fft) // hop + 1
        if not self._pieces:  # n2 does not divide the hop: hop-long chunks, whole frames, cut
            chunks = -(-self.n_fft // hop)
            x = nn.functional.pad(x, (0, chunks * hop))[:, : (count - 1 + chunks) * hop]
            c = x.reshape(b, -1, hop)
            frames = torch.cat([c[:, i : i + count] for i in range(chunks)], -1)
            frames = frames[..., self.plan.lo * n2 : self.plan.hi * n2]
            return frames.reshape(b, count, -1, n2).permute(0, 3, 2, 1)
        chunks = self._pieces[-1][0] + 1
        x = nn.functional.pad(x, (0, chunks * hop))[:, : (count - 1 + chunks) * hop]
        # One 2-D transpose puts time last: [b, r, i2, chunk] with sample chunk * hop + r * n2 + i2.
        y = x.reshape(b, -1, hop).transpose(1, 2).reshape(b, hop // n2, n2, -1)
        # (A slice over a whole axis would still be a copy in the graph: skipped.)
        parts = [y if (r0, r1) == (0, y.shape[1]) else y[:, r0:r1] for _, r0, r1 in self._pieces]
        parts = [p[..., a : a + count] for p, (a, _, _) in zip(parts, self._pieces, strict=True)]
        return torch.cat(parts, 1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.frames(x)
        b, t = frames.shape[0], frames.shape[3]
        z = self.stage1 @ frames  # (b, i2, [re, im] x k1, t)
        z = self.stage2 @ z.reshape(b, 2 * self.plan.n2, -1)  # (b, k2 x [re, im], k1 x t)
        z = z.reshape(b, len(self.plan.k2), 2, -1)
        spectrum = (z * z).sum(2).reshape(b, 1, -1, t)  # (b, 1, k2 x k1, t)
        if self.power == 1.0:
            spectrum = spectrum.sqrt()
        if not self.mel_groups:
            return self.mel @ spectrum
        return torch.cat(
            [
                self.get_buffer(f"mel{g}") @ spectrum[:, :, r0:r1]
                for g, (_, _, r0, r1) in enumerate(self.mel_groups)
            ],
            2,
        )


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
        return self.source.to_db(self.spectrogram(x))


class _AudioSetMelTwin(nn.Module):
    """:class:`AudioSetMel` with exportable operators (same output to float32 rounding)."""

    def __init__(self, source: AudioSetMel) -> None:
        super().__init__()
        cfg = source.config
        self.source = source
        # (log(m + offset) + shift) / scale = log(e^shift m + e^shift offset) / scale: the shift
        # rides in the mel bank, and one addition over the image is saved.
        self.gain = math.exp(cfg.norm_shift)
        self.spectrogram = MatmulMelSpectrogram(
            cfg.n_fft, cfg.hop_length, source.window, source.mel_basis, 2.0, mel_scale=self.gain
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        cfg = self.source.config
        # Pre-emphasis y[n] = x[n + 1] - a x[n] as two slices: cheaper than a 1-D convolution.
        x = waveforms[:, 1:] - cfg.preemphasis * waveforms[:, :-1]
        half = cfg.n_fft // 2
        x = nn.functional.pad(x.unsqueeze(1), (half, half), mode="reflect")
        # reshape, not squeeze: the exporter turns squeeze of a dynamic shape into an If node.
        log_mel = torch.log(
            self.spectrogram(x.reshape(x.shape[0], -1)) + cfg.log_offset * self.gain
        )
        return log_mel * (1.0 / cfg.norm_scale)


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
        f"front end {type(front_end).__name__} has no ONNX export twin in escnet.export.onnx; "
        "export without --onnx"
    )
