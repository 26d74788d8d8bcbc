"""Image-level augmentation of spectral images: TAA, SpecAugment and mixup, batched in torch.

Every transform works on a batch of spectral images of shape ``(B, C, H, W)`` (escnet's are
``(B, 1, n_mels, frames)`` in dB) and returns a new tensor of the same shape, dtype and device.
Each sample of the batch gets its own random parameters. Randomness is separated from the work:
``sample(...)`` draws the parameters, ``apply(images, params)`` is deterministic given them, and
``__call__`` does both. A ``torch.Generator`` passed to ``__call__`` (or the transform's own one,
made from ``seed``) makes a run repeatable; with neither, torch's global RNG is used.

Image axes: **height = mel axis** (rows, ``H = n_mels``), **width = time axis** (columns,
``W = frames``). A "horizontal" flip therefore reverses time, a "width" shift moves along time and
a "height" shift moves along frequency.

TAA: the paper's Keras ``ImageDataGenerator``
----------------------------------------------
The paper (Mushtaq & Su, 2021) augments spectral images with Keras's ``ImageDataGenerator(
zoom_range=0.25, width_shift_range=0.20, height_shift_range=0.20, fill_mode="nearest",
brightness_range=[0.5, 1.5], rotation_range=30, shear_range=0.30, horizontal_flip=True)``.
:class:`TAA` re-implements that generator's ``get_random_transform`` / ``apply_transform`` (Keras
2.x, ``keras.preprocessing.image``) for torch batches. Each parameter maps as follows:

==========================  ============================================================
Keras parameter (paper)     what :class:`TAA` does, per sample
==========================  ============================================================
``zoom_range`` 0.25         ``zx`` (rows = mel) and ``zy`` (columns = time) drawn
                            **independently**, each uniform in ``[1 - 0.25, 1 + 0.25] =
                            [0.75, 1.25]``, as Keras does (a pair ``(lo, hi)`` is used as
                            is). As in Keras the factor scales the *sampling grid*:
                            ``z > 1`` shrinks the content (zoom out), ``z < 1`` enlarges it.
``width_shift_range`` 0.20  ``ty`` uniform in ``[-0.20, 0.20] * W`` pixels, a fraction of
                            the width (time axis); output column ``c`` reads input column
                            ``c + ty`` (bilinear for non-integer shifts).
``height_shift_range`` 0.2  ``tx`` uniform in ``[-0.20, 0.20] * H`` pixels, a fraction of
                            the height (mel axis). Keras's names are kept: ``tx`` is the
                            *row* shift, ``ty`` the *column* shift.
``rotation_range`` 30       ``theta`` uniform in ``[-30, 30]`` degrees.
``shear_range`` 0.30        ``shear`` uniform in ``[-0.30, 0.30]`` **degrees**. Keras 2.x
                            documents ``shear_range`` as "Shear angle in counter-clockwise
                            direction in degrees" and applies ``np.deg2rad`` to it, so the
                            paper's 0.30 means at most 0.3 degrees: an almost-no-op (under
                            0.6 px at the far edge of a 128 x 216 image). Implemented
                            faithfully; set e.g. ``shear_range=17`` (~0.30 rad) for a
                            visible shear.
``fill_mode`` "nearest"     edge replication: ``grid_sample(padding_mode="border")`` clamps
                            source coordinates to the image, which is scipy's
                            ``mode="nearest"`` that Keras calls. ``"reflect"`` and
                            ``"constant"`` (with ``cval``) are offered too; ``"wrap"`` is
                            not.
``brightness_range``        factor ``f`` uniform in ``[0.5, 1.5]``. Keras maps a float image
[0.5, 1.5]                  outside [0, 255] to 8 bits with its min/max (as if it were a
                            PNG), multiplies by ``f`` (PIL ``ImageEnhance.Brightness``,
                            clipping at 255) and maps back to [min, max]. TAA does the same
                            in float, per sample: ``x' = min + clip(f * (x - min), 0,
                            max - min)``. On a dB image this keeps the floor and rescales
                            each level's height above it: ``f < 1`` compresses the dynamic
                            range, ``f > 1`` expands it and saturates the loudest parts at
                            the old maximum. Keras's 8-bit quantisation (0.3 dB steps on an
                            80 dB range) is not reproduced.
``horizontal_flip`` True    reverse the time axis with probability ``flip_probability``
                            (Keras: fixed 0.5).
``interpolation_order`` 1   bilinear (Keras's default order 1) or nearest (order 0).
==========================  ============================================================

As in Keras, one affine map per sample is composed as ``rotation @ shift @ shear @ zoom`` in
(row, column) pixel coordinates, maps *output* to *input* coordinates and is applied about the image
centre; then the flip, then the brightness. Keras centres at ``(H/2 + 0.5, W/2 + 0.5)``, one pixel
off the true centre ``((H-1)/2, (W-1)/2)`` that TAA uses; with the paper's ranges that moves the
result by about a pixel at most, far below the random shifts. Samples whose affine parameters are
all neutral are not resampled, so they pass through bit-exactly.

Why ``affine_grid`` + ``grid_sample`` and not ``torchvision.transforms.v2.RandomAffine``: v2 draws
one parameter set per call (one per batch, not per sample), fills with a constant only, scales
isotropically (Keras draws ``zx`` and ``zy`` separately) and measures shear differently. Calling
``v2.functional.affine`` per sample would need a Python loop and pad/crop for the "nearest" fill.
Building each sample's Keras matrix and resampling the whole batch with one ``grid_sample`` call,
``padding_mode="border"``, is the exact Keras map with its "nearest" fill, vectorised.

Beyond Keras: ``p`` (probability that a sample is augmented at all; Keras: always) and
``flip_probability`` (Keras: fixed 0.5).

SpecAugment and mixup
---------------------
:class:`SpecAugment` (Park et al., 2019: frequency and time masking; time warping is omitted) and
:func:`mixup` / :class:`Mixup` (Zhang et al., 2018) are opt-in modern baselines, not part of the
paper.

Examples:
    >>> import torch
    >>> from escnet.augment.image import TAA, TAAConfig
    >>> taa = TAA(TAAConfig(), seed=0)
    >>> images = torch.randn(4, 1, 128, 216) * 20 - 40
    >>> tuple(taa(images).shape)
    (4, 1, 128, 216)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TAA",
    "Mixup",
    "SpecAugment",
    "SpecAugmentParams",
    "TAAConfig",
    "TAAParams",
    "mixup",
]

FillMode = Literal["nearest", "reflect", "constant"]
_PADDING_MODE = {"nearest": "border", "reflect": "reflection", "constant": "zeros"}


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (B, C, H, W) = (batch, 1, n_mels, frames), "
            f"got {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor, got {images.dtype}")


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) float64 draws on the generator's device (CPU for the global RNG)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=device)


def _make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# TAA
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TAAConfig:
    """Keras ``ImageDataGenerator`` parameters of the paper's TAA; defaults are the paper's values.

    Attributes:
        zoom_range: ``z`` for zoom factors in ``[1 - z, 1 + z]`` (``0 <= z < 1``), or a pair
            ``(lo, hi)`` with ``0 < lo <= hi``. ``zx`` (mel) and ``zy`` (time) drawn independently.
        width_shift_range: largest time shift as a fraction of the width, in ``[0, 1)``.
        height_shift_range: largest mel shift as a fraction of the height, in ``[0, 1)``.
        fill_mode: ``"nearest"`` (edge replication, the paper's), ``"reflect"`` or ``"constant"``.
        cval: fill value for ``fill_mode="constant"``.
        brightness_range: ``(lo, hi)`` with ``0 <= lo <= hi`` for the brightness factor, or
            ``None`` for no brightness change.
        rotation_range: largest rotation in degrees, ``>= 0``.
        shear_range: largest shear angle in **degrees** (Keras 2.x unit), in ``[0, 90)``.
        horizontal_flip: whether to reverse the time axis at random.
        flip_probability: probability of the flip when ``horizontal_flip`` (Keras: 0.5).
        interpolation_order: 1 for bilinear (Keras's default), 0 for nearest neighbour.
    """

    zoom_range: float | tuple[float, float] = 0.25
    width_shift_range: float = 0.20
    height_shift_range: float = 0.20
    fill_mode: FillMode = "nearest"
    cval: float = 0.0
    brightness_range: tuple[float, float] | None = (0.5, 1.5)
    rotation_range: float = 30.0
    shear_range: float = 0.30
    horizontal_flip: bool = True
    flip_probability: float = 0.5
    interpolation_order: int = 1

    def __post_init__(self) -> None:
        _ = self.zoom_bounds  # validates zoom_range
        for name in ("width_shift_range", "height_shift_range"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"{name} must be a fraction of the image size in [0, 1), got {value} "
                    "(Keras's pixel and list forms are not supported)"
                )
        if self.fill_mode not in _PADDING_MODE:
            raise ValueError(
                f"fill_mode must be one of {sorted(_PADDING_MODE)}, got {self.fill_mode!r}"
            )
        if not math.isfinite(self.cval):
            raise ValueError(f"cval must be finite, got {self.cval}")
        if self.brightness_range is not None:
            if len(self.brightness_range) != 2:
                raise ValueError(
                    f"brightness_range must be a pair (lo, hi) or None, got {self.brightness_range}"
                )
            lo, hi = self.brightness_range
            if not 0.0 <= lo <= hi:
                raise ValueError(
                    f"brightness_range must satisfy 0 <= lo <= hi, got {self.brightness_range}"
                )
        if not 0.0 <= self.rotation_range <= 180.0:
            raise ValueError(
                f"rotation_range must be in [0, 180] degrees, got {self.rotation_range}"
            )
        if not 0.0 <= self.shear_range < 90.0:
            raise ValueError(f"shear_range must be in [0, 90) degrees, got {self.shear_range}")
        if not isinstance(self.horizontal_flip, bool):
            raise ValueError(f"horizontal_flip must be a bool, got {self.horizontal_flip!r}")
        _check_probability("flip_probability", self.flip_probability)
        if self.interpolation_order not in (0, 1):
            raise ValueError(
                f"interpolation_order must be 0 (nearest) or 1 (bilinear), "
                f"got {self.interpolation_order}"
            )

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        """The ``(lo, hi)`` interval the zoom factors are drawn from, as Keras derives it."""
        z = self.zoom_range
        if isinstance(z, tuple | list):
            if len(z) != 2:
                raise ValueError(f"zoom_range must be a float or a pair (lo, hi), got {z}")
            lo, hi = float(z[0]), float(z[1])
            if not 0.0 < lo <= hi:
                raise ValueError(f"zoom_range pair must satisfy 0 < lo <= hi, got {z}")
            return lo, hi
        if not 0.0 <= z < 1.0:
            raise ValueError(f"zoom_range must be in [0, 1) (factors 1 -/+ zoom_range), got {z}")
        return 1.0 - z, 1.0 + z

    @classmethod
    def identity(cls, **overrides: object) -> TAAConfig:
        """A config that changes nothing (all ranges zero, no flip); ``overrides`` set fields."""
        values: dict[str, object] = {
            "zoom_range": 0.0,
            "width_shift_range": 0.0,
            "height_shift_range": 0.0,
            "brightness_range": None,
            "rotation_range": 0.0,
            "shear_range": 0.0,
            "horizontal_flip": False,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TAAParams:
    """Per-sample TAA parameters, Keras's ``transform_parameters`` as tensors of shape ``(B,)``.

    Attributes:
        theta: rotation in degrees.
        tx: shift along the height (mel) axis in pixels; output row ``r`` reads input ``r + tx``.
        ty: shift along the width (time) axis in pixels; output column ``c`` reads ``c + ty``.
        shear: shear angle in degrees.
        zx: zoom factor of the sampling grid along the height (mel) axis.
        zy: zoom factor of the sampling grid along the width (time) axis.
        flip_horizontal: bool, reverse the time axis.
        brightness: brightness factor (1 = unchanged).
    """

    theta: Tensor
    tx: Tensor
    ty: Tensor
    shear: Tensor
    zx: Tensor
    zy: Tensor
    flip_horizontal: Tensor
    brightness: Tensor

    @classmethod
    def identity(cls, batch_size: int, device: torch.device | str = "cpu") -> TAAParams:
        """Parameters that leave every image unchanged; edit a copy to build a test case."""
        zeros = torch.zeros(batch_size, dtype=torch.float64, device=device)
        ones = torch.ones(batch_size, dtype=torch.float64, device=device)
        return cls(
            theta=zeros,
            tx=zeros,
            ty=zeros,
            shear=zeros,
            zx=ones,
            zy=ones,
            flip_horizontal=torch.zeros(batch_size, dtype=torch.bool, device=device),
            brightness=ones,
        )

    def affine_matrices(self, height: int, width: int) -> Tensor:
        """``(B, 2, 3)`` float64 ``theta`` for ``F.affine_grid`` (``align_corners=False``).

        Keras's map in centred (row, col) pixel coordinates is ``p_in = A p_out + b`` with
        ``A = R @ Sh @ Z`` and ``b = R @ (tx, ty)``. ``affine_grid`` wants it in normalised (x, y)
        = (col, row) coordinates where ``x = col_centred / (W / 2)``.
        """
        th = torch.deg2rad(self.theta.double())
        sh = torch.deg2rad(self.shear.double())
        zero, one = torch.zeros_like(th), torch.ones_like(th)
        rot = _mat2(th.cos(), -th.sin(), th.sin(), th.cos())
        shear = _mat2(one, -sh.sin(), zero, sh.cos())
        zoom = _mat2(self.zx.double(), zero, zero, self.zy.double())
        a_rc = rot @ shear @ zoom
        b_rc = (rot @ torch.stack([self.tx.double(), self.ty.double()], -1)[..., None])[..., 0]
        # (row, col) -> (x, y) = (col, row): swap both rows and columns of A, entries of b.
        a_xy = a_rc.flip(-1).flip(-2)
        b_xy = b_rc.flip(-1)
        half = torch.tensor([width / 2, height / 2], dtype=torch.float64, device=th.device)
        lin = a_xy * half[None, None, :] / half[None, :, None]
        return torch.cat([lin, (b_xy / half)[..., None]], dim=-1)

    def affine_is_identity(self) -> Tensor:
        """``(B,)`` bool: the affine part leaves the sample unchanged (it is not resampled)."""
        return (
            (self.theta == 0)
            & (self.tx == 0)
            & (self.ty == 0)
            & (self.shear == 0)
            & (self.zx == 1)
            & (self.zy == 1)
        )


def _mat2(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Batch of 2x2 matrices ``[[a, b], [c, d]]`` from ``(B,)`` tensors."""
    return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)


class TAA:
    """The paper's traditional image augmentation (Keras ``ImageDataGenerator``), batched.

    Args:
        config: Keras parameters; ``TAAConfig()`` holds the paper's values.
        p: probability that a sample is augmented at all (1.0 = Keras: always).
        seed: seed of this transform's own generator, used when ``__call__`` gets none.

    Call it on a batch ``(B, C, n_mels, frames)``; see the module docstring for the mapping.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import TAA, TAAConfig
        >>> images = torch.linspace(-80, 0, 216).expand(2, 1, 128, 216)
        >>> flip = TAA(TAAConfig.identity(horizontal_flip=True, flip_probability=1.0))
        >>> torch.equal(flip(images), images.flip(-1))
        True
    """

    def __init__(self, config: TAAConfig | None = None, p: float = 1.0, seed: int | None = None):
        self.config = config if config is not None else TAAConfig()
        if not isinstance(self.config, TAAConfig):
            raise ValueError(f"config must be a TAAConfig, got {type(self.config).__name__}")
        _check_probability("p", p)
        self.p = p
        self.seed = seed
        self._generator = _make_generator(seed)

    def __repr__(self) -> str:
        return f"TAA(config={self.config!r}, p={self.p}, seed={self.seed})"

    def sample(
        self, batch_size: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> TAAParams:
        """Draw per-sample parameters for a batch of ``height x width`` images (Keras's draws).

        The same number of random values is drawn whatever the config, so that one seed gives
        the same stream of draws under different ranges.
        """
        g = generator if generator is not None else self._generator
        cfg = self.config
        u = _uniform((batch_size, 9), g)

        def symmetric(col: int, bound: float) -> Tensor:
            return (2.0 * u[:, col] - 1.0) * bound

        zlo, zhi = cfg.zoom_bounds
        theta = symmetric(0, cfg.rotation_range)
        tx = symmetric(1, cfg.height_shift_range) * height
        ty = symmetric(2, cfg.width_shift_range) * width
        shear = symmetric(3, cfg.shear_range)
        zx = zlo + u[:, 4] * (zhi - zlo)
        zy = zlo + u[:, 5] * (zhi - zlo)
        flip = (u[:, 6] < cfg.flip_probability) & cfg.horizontal_flip
        if cfg.brightness_range is None:
            brightness = torch.ones_like(theta)
        else:
            blo, bhi = cfg.brightness_range
            brightness = blo + u[:, 7] * (bhi - blo)
        params = TAAParams(theta, tx, ty, shear, zx, zy, flip, brightness)
        skip = u[:, 8] >= self.p
        if bool(skip.any()):
            neutral = TAAParams.identity(batch_size, device=u.device)
            params = TAAParams(
                *(
                    torch.where(skip, getattr(neutral, name), getattr(params, name))
                    for name in TAAParams.__dataclass_fields__
                )
            )
        return params

    def apply(self, images: Tensor, params: TAAParams) -> Tensor:
        """Apply given parameters: affine (with fill), then flip, then brightness (Keras order)."""
        _check_images(images)
        if params.theta.shape != (images.shape[0],):
            raise ValueError(
                f"params are for {params.theta.shape[0]} samples, images has {images.shape[0]}"
            )
        out = self._affine(images, params)
        flip = params.flip_horizontal.to(images.device)
        if bool(flip.any()):
            out = torch.where(flip[:, None, None, None], out.flip(-1), out)
        return self._brightness(out, params.brightness)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch ``(B, C, n_mels, frames)`` with fresh per-sample random parameters."""
        _check_images(images)
        b, _, h, w = images.shape
        return self.apply(images, self.sample(b, h, w, generator))

    def _affine(self, images: Tensor, params: TAAParams) -> Tensor:
        moving = ~params.affine_is_identity()
        if not bool(moving.any()):
            return images
        b, _, h, w = images.shape
        work_dtype = (
            images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
        )
        idx = moving.nonzero().squeeze(1)
        every = idx.numel() == b
        src = (images if every else images[idx.to(images.device)]).to(work_dtype)
        theta = params.affine_matrices(h, w)[idx].to(device=images.device, dtype=work_dtype)
        grid = F.affine_grid(theta, list(src.shape), align_corners=False)
        cfg = self.config
        # "constant" with cval: sample (x - cval) with zero padding, then add cval back.
        shift = cfg.cval if cfg.fill_mode == "constant" else 0.0
        warped = F.grid_sample(
            src - shift if shift else src,
            grid,
            mode="bilinear" if cfg.interpolation_order == 1 else "nearest",
            padding_mode=_PADDING_MODE[cfg.fill_mode],
            align_corners=False,
        )
        if shift:
            warped = warped + shift
        warped = warped.to(images.dtype)
        if every:
            return warped
        out = images.clone()
        out[idx.to(images.device)] = warped
        return out

    @staticmethod
    def _brightness(images: Tensor, factor: Tensor) -> Tensor:
        # Keras: min/max -> [0, 255], PIL multiplies by the factor and clips at 255, back to
        # [min, max]. Without the division: min + clip(f * (x - min), 0, max - min).
        changed = factor != 1
        if not bool(changed.any()):
            return images
        f = factor.to(device=images.device, dtype=images.dtype)[:, None, None, None]
        lo = images.amin(dim=(1, 2, 3), keepdim=True)
        span = images.amax(dim=(1, 2, 3), keepdim=True) - lo
        scaled = lo + torch.minimum((images - lo) * f, span)
        keep = ~changed.to(images.device)[:, None, None, None]
        return torch.where(keep, images, scaled)


# --------------------------------------------------------------------------------------------
# SpecAugment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecAugmentParams:
    """Per-sample masks: ``(B, n)`` int64 starts and widths for the mel and time masks."""

    freq_start: Tensor
    freq_width: Tensor
    time_start: Tensor
    time_width: Tensor


class SpecAugment:
    """Frequency and time masking (SpecAugment without time warping), per sample, vectorised.

    Each of the ``freq_masks`` masks has a width ``f`` uniform in ``{0, ..., freq_width}`` (capped
    at ``n_mels``) and a start uniform in ``{0, ..., n_mels - f}``; likewise along time. Masks may
    overlap. Masked cells are set to ``mask_value``.

    Defaults for 128 mels x 216 frames (5 s at 22050 Hz, hop 512): two masks of up to 15 mel bands
    (~12 % of the mel axis each, PANNs' 8 of 64 bins) and two of up to 20 frames (~0.46 s, ~9 % of
    the clip, between PANNs' ~6 % and AST's ~19 % on ESC-50).

    Args:
        freq_masks: number of frequency masks per sample, ``>= 0``.
        freq_width: largest width of a frequency mask in mel bands, ``>= 0``.
        time_masks: number of time masks per sample, ``>= 0``.
        time_width: largest width of a time mask in frames, ``>= 0``.
        mask_value: ``"mean"`` (each sample's mean, a neutral level for dB images), ``"min"``
            (each sample's floor, i.e. silence) or a number.
        p: probability that a sample is masked at all.
        seed: seed of this transform's own generator, used when ``__call__`` gets none.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import SpecAugment
        >>> masked = SpecAugment(seed=0)(torch.randn(8, 1, 128, 216))
        >>> tuple(masked.shape)
        (8, 1, 128, 216)
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 15,
        time_masks: int = 2,
        time_width: int = 20,
        mask_value: Literal["mean", "min"] | float = "mean",
        p: float = 1.0,
        seed: int | None = None,
    ):
        for name, value in (
            ("freq_masks", freq_masks),
            ("freq_width", freq_width),
            ("time_masks", time_masks),
            ("time_width", time_width),
        ):
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if isinstance(mask_value, str):
            if mask_value not in ("mean", "min"):
                raise ValueError(
                    f"mask_value must be 'mean', 'min' or a number, got {mask_value!r}"
                )
        elif isinstance(mask_value, bool) or not isinstance(mask_value, int | float):
            raise ValueError(f"mask_value must be 'mean', 'min' or a number, got {mask_value!r}")
        elif not math.isfinite(mask_value):
            raise ValueError(f"mask_value must be finite, got {mask_value}")
        _check_probability("p", p)
        self.freq_masks = int(freq_masks)
        self.freq_width = int(freq_width)
        self.time_masks = int(time_masks)
        self.time_width = int(time_width)
        self.mask_value = mask_value
        self.p = p
        self.seed = seed
        self._generator = _make_generator(seed)

    def __repr__(self) -> str:
        return (
            f"SpecAugment(freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
            f"time_masks={self.time_masks}, time_width={self.time_width}, "
            f"mask_value={self.mask_value!r}, p={self.p}, seed={self.seed})"
        )

    def sample(
        self, batch_size: int, n_mels: int, n_frames: int, generator: torch.Generator | None = None
    ) -> SpecAugmentParams:
        """Draw mask starts and widths; a sample not selected by ``p`` gets zero-width masks."""
        g = generator if generator is not None else self._generator
        nf, nt = self.freq_masks, self.time_masks
        u = _uniform((batch_size, 1 + 2 * nf + 2 * nt), g)
        active = (u[:, :1] < self.p).long()

        def draw(cols: Tensor, count: int, max_width: int, size: int) -> tuple[Tensor, Tensor]:
            cap = min(max_width, size)
            width = (cols[:, :count] * (cap + 1)).long().clamp_max(cap) * active
            start = (cols[:, count:] * (size - width + 1)).long().minimum(size - width)
            return start, width

        f_start, f_width = draw(u[:, 1 : 1 + 2 * nf], nf, self.freq_width, n_mels)
        t_start, t_width = draw(u[:, 1 + 2 * nf :], nt, self.time_width, n_frames)
        return SpecAugmentParams(f_start, f_width, t_start, t_width)

    def apply(self, images: Tensor, params: SpecAugmentParams) -> Tensor:
        """Set the given mel bands and frames of each sample to the mask value."""
        _check_images(images)
        _, _, h, w = images.shape
        device = images.device
        freq = _band_mask(params.freq_start.to(device), params.freq_width.to(device), h)
        time = _band_mask(params.time_start.to(device), params.time_width.to(device), w)
        mask = freq[:, None, :, None] | time[:, None, None, :]
        if self.mask_value == "mean":
            value = images.mean(dim=(1, 2, 3), keepdim=True)
        elif self.mask_value == "min":
            value = images.amin(dim=(1, 2, 3), keepdim=True)
        else:
            value = torch.tensor(float(self.mask_value), dtype=images.dtype, device=device)
        return torch.where(mask, value, images)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mask a batch ``(B, C, n_mels, frames)`` with fresh per-sample random masks."""
        _check_images(images)
        b, _, h, w = images.shape
        return self.apply(images, self.sample(b, h, w, generator))


def _band_mask(start: Tensor, width: Tensor, size: int) -> Tensor:
    """``(B, size)`` bool: positions covered by any of the ``(B, n)`` bands ``[start, start+w)``."""
    pos = torch.arange(size, device=start.device)[None, None, :]
    s, e = start[..., None], (start + width)[..., None]
    return ((pos >= s) & (pos < e)).any(dim=1)


# --------------------------------------------------------------------------------------------
# mixup
# --------------------------------------------------------------------------------------------


def _soft_targets(
    targets: Tensor, batch_size: int, num_classes: int | None, dtype: torch.dtype
) -> Tensor:
    if not isinstance(targets, Tensor):
        raise ValueError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.shape[:1] != (batch_size,):
        raise ValueError(
            f"targets must have one row per image ({batch_size}), got shape {tuple(targets.shape)}"
        )
    if targets.ndim == 1 and not targets.is_floating_point():
        if num_classes is None:
            raise ValueError("num_classes is required when targets are class indices")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            raise ValueError(
                f"targets must be class indices in [0, {num_classes}), "
                f"got values in [{int(targets.min())}, {int(targets.max())}]"
            )
        return F.one_hot(targets.long(), num_classes).to(dtype)
    if targets.ndim == 2 and targets.is_floating_point():
        if num_classes is not None and targets.shape[1] != num_classes:
            raise ValueError(
                f"targets have {targets.shape[1]} columns but num_classes is {num_classes}"
            )
        return targets.to(dtype)
    raise ValueError(
        "targets must be class indices of shape (B,) or float (soft/one-hot) targets of shape "
        f"(B, num_classes), got {targets.dtype} of shape {tuple(targets.shape)}"
    )


def _check_mixup_args(alpha: float, num_classes: int | None) -> None:
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if num_classes is not None and (not _is_int(num_classes) or num_classes < 1):
        raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    # torch's Beta sampler takes no generator: seed a NumPy one from the torch stream instead.
    device = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(
    images: Tensor,
    targets: Tensor,
    *,
    alpha: float = 0.2,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Mix each image and its target with another of the batch (mixup, Zhang et al. 2018).

    One ``lam ~ Beta(alpha, alpha)`` for the whole batch and a random permutation ``perm`` give
    ``lam * images + (1 - lam) * images[perm]`` and the same mix of the one-hot targets.

    Args:
        images: batch ``(B, ...)`` of floating-point images.
        targets: class indices ``(B,)`` (needs ``num_classes``) or float targets
            ``(B, num_classes)`` (one-hot or already soft).
        alpha: Beta concentration, ``> 0`` (0.2 is common; 1.0 gives a uniform ``lam``).
        num_classes: number of classes, to one-hot class indices.
        generator: source of randomness (torch's global RNG when ``None``).

    Returns:
        ``(mixed_images, soft_targets)``: same shape, dtype and device as ``images``; soft
        targets ``(B, num_classes)`` in the images' dtype, each row summing to 1 when the inputs do.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import mixup
        >>> x, y = mixup(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 1]), num_classes=3)
        >>> torch.allclose(y.sum(1), torch.ones(4))
        True
    """
    _check_mixup_args(alpha, num_classes)
    if not isinstance(images, Tensor) or not images.is_floating_point() or images.ndim < 1:
        raise ValueError("images must be a floating-point torch.Tensor with a batch axis")
    b = images.shape[0]
    soft = _soft_targets(targets, b, num_classes, images.dtype).to(images.device)
    lam = _beta(alpha, generator)
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(b, generator=generator, device=device).to(images.device)
    mixed = images * lam + images[perm] * (1.0 - lam)
    return mixed, soft * lam + soft[perm] * (1.0 - lam)


class Mixup:
    """:func:`mixup` as a training-loop step with its own seed and a probability ``p``.

    Args:
        alpha: Beta concentration, ``> 0``.
        num_classes: number of classes, to one-hot class-index targets.
        p: probability that a batch is mixed; otherwise it passes with one-hot targets.
        seed: seed of this object's own generator, used when ``__call__`` gets none.

    Examples:
        >>> import torch
        >>> from escnet.augment.image import Mixup
        >>> step = Mixup(alpha=0.2, num_classes=10, seed=0)
        >>> x, y = step(torch.randn(8, 1, 128, 216), torch.randint(0, 10, (8,)))
        >>> tuple(y.shape)
        (8, 10)
    """

    def __init__(
        self,
        alpha: float = 0.2,
        num_classes: int | None = None,
        p: float = 1.0,
        seed: int | None = None,
    ):
        _check_mixup_args(alpha, num_classes)
        _check_probability("p", p)
        self.alpha = alpha
        self.num_classes = num_classes
        self.p = p
        self.seed = seed
        self._generator = _make_generator(seed)

    def __repr__(self) -> str:
        return (
            f"Mixup(alpha={self.alpha}, num_classes={self.num_classes}, p={self.p}, "
            f"seed={self.seed})"
        )

    def __call__(
        self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(mixed_images, soft_targets)`` for one batch; see :func:`mixup`."""
        g = generator if generator is not None else self._generator
        if self.p < 1.0 and float(_uniform((1,), g)) >= self.p:
            if not isinstance(images, Tensor) or not images.is_floating_point():
                raise ValueError("images must be a floating-point torch.Tensor with a batch axis")
            soft = _soft_targets(targets, images.shape[0], self.num_classes, images.dtype)
            return images, soft.to(images.device)
        return mixup(images, targets, alpha=self.alpha, num_classes=self.num_classes, generator=g)
