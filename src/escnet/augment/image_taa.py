"""TAA, the paper's traditional image augmentation (its Keras ``ImageDataGenerator``), batched
in torch; the conventions shared by every image-level transform (batch layout, image axes,
``sample`` / ``apply`` / ``__call__``) are in :mod:`escnet.augment.image`, which re-exports the
public names here.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from escnet.augment.image_checks import (
    check_images,
    check_probability,
    make_generator,
    uniform,
)
from escnet.errors import ParameterError

__all__ = ["TAA", "TAAConfig", "TAAParams"]

FillMode = Literal["nearest", "reflect", "constant"]
_PADDING_MODE = {"nearest": "border", "reflect": "reflection", "constant": "zeros"}


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
                raise ParameterError(
                    f"{name} must be a fraction of the image size in [0, 1), got {value} "
                    "(Keras's pixel and list forms are not supported)"
                )
        if self.fill_mode not in _PADDING_MODE:
            raise ParameterError(
                f"fill_mode must be one of {sorted(_PADDING_MODE)}, got {self.fill_mode!r}"
            )
        if not math.isfinite(self.cval):
            raise ParameterError(f"cval must be finite, got {self.cval}")
        if self.brightness_range is not None:
            if len(self.brightness_range) != 2:
                raise ParameterError(
                    f"brightness_range must be a pair (lo, hi) or None, got {self.brightness_range}"
                )
            lo, hi = self.brightness_range
            if not 0.0 <= lo <= hi:
                raise ParameterError(
                    f"brightness_range must satisfy 0 <= lo <= hi, got {self.brightness_range}"
                )
        if not 0.0 <= self.rotation_range <= 180.0:
            raise ParameterError(
                f"rotation_range must be in [0, 180] degrees, got {self.rotation_range}"
            )
        if not 0.0 <= self.shear_range < 90.0:
            raise ParameterError(f"shear_range must be in [0, 90) degrees, got {self.shear_range}")
        if not isinstance(self.horizontal_flip, bool):
            raise ParameterError(f"horizontal_flip must be a bool, got {self.horizontal_flip!r}")
        check_probability("flip_probability", self.flip_probability)
        if self.interpolation_order not in (0, 1):
            raise ParameterError(
                f"interpolation_order must be 0 (nearest) or 1 (bilinear), "
                f"got {self.interpolation_order}"
            )

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        """The ``(lo, hi)`` interval the zoom factors are drawn from, as Keras derives it."""
        z = self.zoom_range
        if isinstance(z, tuple | list):
            if len(z) != 2:
                raise ParameterError(f"zoom_range must be a float or a pair (lo, hi), got {z}")
            lo, hi = float(z[0]), float(z[1])
            if not 0.0 < lo <= hi:
                raise ParameterError(f"zoom_range pair must satisfy 0 < lo <= hi, got {z}")
            return lo, hi
        if not 0.0 <= z < 1.0:
            raise ParameterError(
                f"zoom_range must be in [0, 1) (factors 1 -/+ zoom_range), got {z}"
            )
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
            raise ParameterError(f"config must be a TAAConfig, got {type(self.config).__name__}")
        check_probability("p", p)
        self.p = p
        self.seed = seed
        self._generator = make_generator(seed)

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
        u = uniform((batch_size, 9), g)

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
        check_images(images)
        if params.theta.shape != (images.shape[0],):
            raise ParameterError(
                f"params are for {params.theta.shape[0]} samples, images has {images.shape[0]}"
            )
        out = self._affine(images, params)
        flip = params.flip_horizontal.to(images.device)
        if bool(flip.any()):
            out = torch.where(flip[:, None, None, None], out.flip(-1), out)
        return self._brightness(out, params.brightness)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch ``(B, C, n_mels, frames)`` with fresh per-sample random parameters."""
        check_images(images)
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
