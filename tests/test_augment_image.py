from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from escnet.augment.image import (
    TAA,
    Mixup,
    SpecAugment,
    SpecAugmentParams,
    TAAConfig,
    TAAParams,
    mixup,
)

B, M, T = 4, 32, 48  # small (batch, mels, frames) keeps every test well under a second


def db_images(batch: int = B, mels: int = M, frames: int = T, seed: int = 0) -> torch.Tensor:
    """Spectral-image-like batch: dB values in [-80, 0], smooth along both axes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, mels // 4, frames // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(mels, frames), mode="bilinear")
    return x * 80.0 - 80.0


def with_params(batch: int, **values: float | torch.Tensor) -> TAAParams:
    base = TAAParams.identity(batch)
    filled = {
        k: v if isinstance(v, torch.Tensor) else torch.full_like(getattr(base, k), v)
        for k, v in values.items()
    }
    return dataclasses.replace(base, **filled)


# ----------------------------------------------------------------------------------- TAA


def test_defaults_are_the_papers_keras_settings() -> None:
    cfg = TAAConfig()
    assert cfg.zoom_range == 0.25 and cfg.zoom_bounds == (0.75, 1.25)
    assert (cfg.width_shift_range, cfg.height_shift_range) == (0.20, 0.20)
    assert cfg.fill_mode == "nearest"
    assert cfg.brightness_range == (0.5, 1.5)
    assert (cfg.rotation_range, cfg.shear_range) == (30.0, 0.30)
    assert cfg.horizontal_flip and cfg.flip_probability == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.zoom_range = 0.1  # type: ignore[misc]


def test_all_ranges_zero_is_identity() -> None:
    cfg = TAAConfig(
        zoom_range=0.0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        rotation_range=0.0,
        shear_range=0.0,
        brightness_range=(1.0, 1.0),
        horizontal_flip=False,
    )
    x = db_images()
    out = TAA(cfg, seed=0)(x)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)
    assert TAAConfig.identity() == dataclasses.replace(cfg, brightness_range=None)


def test_forced_horizontal_flip_reverses_time_exactly() -> None:
    x = db_images()
    cfg = TAAConfig.identity(horizontal_flip=True, flip_probability=1.0)
    assert torch.equal(TAA(cfg)(x), x.flip(-1))
    never = TAAConfig.identity(horizontal_flip=True, flip_probability=0.0)
    assert torch.equal(TAA(never)(x), x)


def test_default_flip_probability_is_one_half() -> None:
    params = TAA(TAAConfig(), seed=0).sample(4000, M, T)
    assert 0.45 < params.flip_horizontal.double().mean().item() < 0.55


def vertical_line(col: int, batch: int = 1) -> torch.Tensor:
    x = torch.zeros(batch, 1, M, T)
    x[..., col] = 1.0
    return x


@pytest.mark.parametrize("shift", [-7, 5, 10])
def test_width_shift_moves_vertical_line_by_shift_columns(shift: int) -> None:
    x = vertical_line(24)
    out = TAA(TAAConfig.identity()).apply(x, with_params(1, ty=float(shift)))
    # Keras: output column c reads input column c + ty, so the line moves to 24 - ty.
    expected = vertical_line(24 - shift)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_random_width_shift_within_range_and_line_follows_drawn_shift() -> None:
    taa = TAA(TAAConfig.identity(width_shift_range=0.2), seed=3)
    x = vertical_line(24, batch=16)
    params = taa.sample(16, M, T)
    assert params.ty.abs().max() <= 0.2 * T and params.ty.abs().max() > 0
    assert torch.all(params.tx == 0)
    out = taa.apply(x, params)
    cols = torch.arange(T, dtype=torch.float64)
    profile = out[:, 0].double().mean(dim=1)  # (16, T): every row is the same
    centroid = (profile * cols).sum(1) / profile.sum(1)
    torch.testing.assert_close(centroid, 24 - params.ty, rtol=0, atol=1e-4)


def test_height_shift_moves_along_the_mel_axis() -> None:
    x = torch.zeros(1, 1, M, T)
    x[:, :, 10, :] = 1.0
    out = TAA(TAAConfig.identity()).apply(x, with_params(1, tx=-4.0))
    assert torch.allclose(out[0, 0, 14], torch.ones(T), atol=1e-5)
    assert out[0, 0].sum().item() == pytest.approx(T, abs=1e-3)


def test_nearest_fill_replicates_edges_no_zero_border() -> None:
    x = db_images() - 10.0  # strictly negative everywhere: a zero would be fill, not data
    taa = TAA(TAAConfig.identity())
    out = taa.apply(x, with_params(B, ty=12.0, tx=-6.0))
    assert not torch.any(out == 0)
    # columns past the right edge repeat the last input column (then moved by the row shift)
    expected_right = TAA(TAAConfig.identity()).apply(x, with_params(B, tx=-6.0))[..., -1:]
    torch.testing.assert_close(
        out[..., -12:], expected_right.expand(-1, -1, -1, 12), atol=1e-4, rtol=0
    )
    constant = TAA(TAAConfig.identity(fill_mode="constant", cval=0.0)).apply(
        x, with_params(B, ty=12.0)
    )
    assert torch.all(constant[..., -11:] == 0)
    cval = TAA(TAAConfig.identity(fill_mode="constant", cval=-80.0)).apply(
        x, with_params(B, ty=12.0)
    )
    torch.testing.assert_close(cval[..., -11:], torch.full_like(cval[..., -11:], -80.0))


def keras_affine_reference(img: np.ndarray, theta, tx, ty, shear, zx, zy) -> np.ndarray:
    """Keras 2.x ``apply_affine_transform`` (order 1, fill "nearest") about ((H-1)/2, (W-1)/2)."""
    t, s = np.deg2rad(theta), np.deg2rad(shear)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shr = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = rot @ shift @ shr @ zoom
    h, w = img.shape
    c = np.array([[1, 0, (h - 1) / 2], [0, 1, (w - 1) / 2], [0, 0, 1]])
    m = c @ m @ np.linalg.inv(c)
    return ndimage.affine_transform(img, m[:2, :2], m[:2, 2], order=1, mode="nearest")


def test_affine_matches_keras_matrix_with_scipy() -> None:
    x = db_images(batch=3).double()
    values = {
        "theta": torch.tensor([25.0, -12.0, 0.0], dtype=torch.float64),
        "tx": torch.tensor([3.3, -2.0, 0.0], dtype=torch.float64),
        "ty": torch.tensor([-7.5, 4.0, 9.0], dtype=torch.float64),
        "shear": torch.tensor([0.3, -20.0, 10.0], dtype=torch.float64),
        "zx": torch.tensor([0.8, 1.2, 1.0], dtype=torch.float64),
        "zy": torch.tensor([1.25, 0.9, 0.75], dtype=torch.float64),
    }
    out = TAA(TAAConfig.identity()).apply(x, with_params(3, **values))
    for i in range(3):
        ref = keras_affine_reference(x[i, 0].numpy(), *(float(v[i]) for v in values.values()))
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-6)


def test_rotation_keeps_shape_dtype_and_is_not_identity() -> None:
    x = db_images()
    out = TAA(TAAConfig.identity(rotation_range=30.0), seed=1)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x)
    assert out.min() >= x.min() - 1e-4 and out.max() <= x.max() + 1e-4  # nearest fill


def test_brightness_is_kerass_min_max_multiply_clip() -> None:
    x = db_images()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    taa = TAA(TAAConfig.identity())
    dark = taa.apply(x, with_params(B, brightness=0.5))
    torch.testing.assert_close(dark, lo + 0.5 * (x - lo))
    bright = taa.apply(x, with_params(B, brightness=1.5))
    torch.testing.assert_close(bright, torch.minimum(lo + 1.5 * (x - lo), hi.expand_as(x)))
    # same through the [0, 1] normalisation Keras applies (as if the image were a PNG)
    unit = ((x - lo) / (hi - lo) * 1.5).clamp(0, 1)
    torch.testing.assert_close(bright, lo + unit * (hi - lo), atol=1e-4, rtol=0)
    flat = torch.full((1, 1, M, T), -30.0)
    assert torch.equal(taa.apply(flat, with_params(1, brightness=0.5)), flat)


def test_paper_config_runs_and_keeps_dtype_and_device() -> None:
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = db_images().to(dtype)
        out = TAA(seed=0)(x)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert torch.isfinite(out.float()).all()


def test_same_seed_same_output_different_seed_different() -> None:
    x = db_images()
    a = TAA(TAAConfig(), seed=7)(x)
    b = TAA(TAAConfig(), seed=7)(x)
    c = TAA(TAAConfig(), seed=8)(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # an explicit generator overrides the transform's own one
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(TAA(seed=1)(x, generator=g1), TAA(seed=2)(x, generator=g2))


def test_per_sample_parameters_differ() -> None:
    params = TAA(seed=0).sample(8, M, T)
    assert params.theta.unique().numel() == 8
    assert not torch.equal(params.zx, params.zy)  # Keras draws zx and zy independently
    assert ((params.zx >= 0.75) & (params.zx <= 1.25)).all()
    assert (params.shear.abs() <= 0.3).all() and (params.theta.abs() <= 30).all()
    assert ((params.brightness >= 0.5) & (params.brightness <= 1.5)).all()


def test_p_zero_leaves_batch_untouched_and_p_selects_samples() -> None:
    x = db_images(batch=32)
    assert torch.equal(TAA(p=0.0, seed=0)(x), x)
    out = TAA(TAAConfig(horizontal_flip=False, brightness_range=None), p=0.5, seed=0)(x)
    unchanged = (out == x).flatten(1).all(1)
    assert 0 < unchanged.sum() < 32


# --------------------------------------------------------------------------- SpecAugment


def test_specaugment_masks_exactly_the_given_bands_and_frames() -> None:
    x = db_images(batch=2)
    aug = SpecAugment(freq_masks=2, time_masks=1, mask_value=-100.0)
    params = SpecAugmentParams(
        freq_start=torch.tensor([[3, 20], [0, 5]]),
        freq_width=torch.tensor([[4, 2], [0, 6]]),
        time_start=torch.tensor([[10], [40]]),
        time_width=torch.tensor([[5], [8]]),
    )
    out = aug.apply(x, params)
    masked = out == -100.0
    rows = masked[:, 0].all(dim=2)  # (2, M) whole mel bands
    cols = masked[:, 0].all(dim=1)  # (2, T) whole frames
    assert rows[0].nonzero().flatten().tolist() == [3, 4, 5, 6, 20, 21]
    assert rows[1].nonzero().flatten().tolist() == [5, 6, 7, 8, 9, 10]
    assert cols[0].nonzero().flatten().tolist() == list(range(10, 15))
    assert cols[1].nonzero().flatten().tolist() == list(range(40, 48))
    expected_mask = rows[:, None, :, None] | cols[:, None, None, :]
    assert torch.equal(masked, expected_mask)
    assert torch.equal(out[~masked], x[~masked])


def test_specaugment_random_masks_respect_counts_and_widths() -> None:
    x = db_images(batch=16, mels=128, frames=216)
    aug = SpecAugment(freq_masks=2, freq_width=15, time_masks=3, time_width=20, mask_value=1.0)
    out = aug(x, generator=torch.Generator().manual_seed(0))
    masked = out == 1.0
    rows = masked[:, 0].all(dim=2).sum(1)
    cols = masked[:, 0].all(dim=1).sum(1)
    assert (rows <= 2 * 15).all() and (cols <= 3 * 20).all() and rows.sum() > 0
    band = masked[:, 0].all(dim=2)[:, :, None] | masked[:, 0].all(dim=1)[:, None, :]
    assert torch.equal(masked[:, 0], band)  # nothing outside whole bands/frames
    assert torch.equal(out[~masked], x[~masked])
    params = aug.sample(1000, 128, 216, torch.Generator().manual_seed(1))
    assert params.freq_width.max() == 15 and params.freq_width.min() == 0
    assert (params.freq_start + params.freq_width <= 128).all()
    assert (params.time_start + params.time_width <= 216).all()


def test_specaugment_mask_values_and_dtype() -> None:
    x = db_images(batch=3).double()
    params = SpecAugmentParams(
        torch.tensor([[2], [2], [2]]),
        torch.tensor([[3], [3], [3]]),
        torch.zeros(3, 1, dtype=torch.long),
        torch.zeros(3, 1, dtype=torch.long),
    )
    mean = SpecAugment(freq_masks=1, time_masks=1).apply(x, params)
    assert mean.dtype == torch.float64
    torch.testing.assert_close(mean[:, 0, 3, 0], x.mean(dim=(1, 2, 3)))
    low = SpecAugment(freq_masks=1, time_masks=1, mask_value="min").apply(x, params)
    torch.testing.assert_close(low[:, 0, 3, 0], x.amin(dim=(1, 2, 3)))
    assert torch.equal(SpecAugment(p=0.0, seed=0)(x), x)


# -------------------------------------------------------------------------------- mixup


def test_mixup_is_a_convex_combination_with_soft_targets_summing_to_one() -> None:
    x = db_images(batch=8)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    g = torch.Generator().manual_seed(0)
    mixed, soft = mixup(x, y, alpha=0.4, num_classes=5, generator=g)
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    assert soft.shape == (8, 5)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    # replay the draws mixup makes from the same generator: lam, then the permutation
    one_hot = torch.nn.functional.one_hot(y, 5).float()
    g = torch.Generator().manual_seed(0)
    seed = int(torch.randint(0, 2**62, (1,), generator=g).item())
    lam = float(np.random.default_rng(seed).beta(0.4, 0.4))
    perm = torch.randperm(8, generator=g)
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(soft, lam * one_hot + (1 - lam) * one_hot[perm])
    assert 0.0 <= lam <= 1.0


def test_mixup_accepts_soft_targets_and_is_reproducible() -> None:
    x = db_images(batch=6)
    y = torch.softmax(torch.randn(6, 3), dim=1)
    a = mixup(x, y, generator=torch.Generator().manual_seed(2))
    b = mixup(x, y, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.testing.assert_close(a[1].sum(1), torch.ones(6))


def test_mixup_class_for_training_loop() -> None:
    x, y = db_images(batch=8), torch.randint(0, 10, (8,))
    step = Mixup(alpha=0.2, num_classes=10, seed=0)
    mixed, soft = step(x, y)
    assert mixed.shape == x.shape and soft.shape == (8, 10)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    again = Mixup(alpha=0.2, num_classes=10, seed=0)(x, y)
    assert torch.equal(again[0], mixed)
    off, hard = Mixup(num_classes=10, p=0.0)(x, y)
    assert torch.equal(off, x) and torch.equal(hard.argmax(1), y)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"zoom_range": -0.1}, "zoom_range"),
        ({"zoom_range": 1.0}, "zoom_range"),
        ({"zoom_range": (1.2, 0.8)}, "zoom_range"),
        ({"zoom_range": (0.0, 1.0)}, "zoom_range"),
        ({"width_shift_range": -0.2}, "width_shift_range"),
        ({"width_shift_range": 1.5}, "width_shift_range"),
        ({"height_shift_range": -0.01}, "height_shift_range"),
        ({"fill_mode": "wrap"}, "fill_mode"),
        ({"cval": float("nan")}, "cval"),
        ({"brightness_range": (1.5, 0.5)}, "brightness_range"),
        ({"brightness_range": (-0.5, 1.5)}, "brightness_range"),
        ({"brightness_range": (0.5, 1.0, 1.5)}, "brightness_range"),
        ({"rotation_range": -30}, "rotation_range"),
        ({"shear_range": -0.3}, "shear_range"),
        ({"shear_range": 90}, "shear_range"),
        ({"horizontal_flip": "yes"}, "horizontal_flip"),
        ({"flip_probability": 1.5}, "flip_probability"),
        ({"interpolation_order": 3}, "interpolation_order"),
    ],
)
def test_taa_config_validation_names_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TAAConfig(**kwargs)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: TAA(p=-0.1), "p"),
        (lambda: TAA(p=1.1), "p"),
        (lambda: TAA(seed="1"), "seed"),  # type: ignore[arg-type]
        (lambda: SpecAugment(freq_masks=-1), "freq_masks"),
        (lambda: SpecAugment(freq_width=-3), "freq_width"),
        (lambda: SpecAugment(time_masks=1.5), "time_masks"),  # type: ignore[arg-type]
        (lambda: SpecAugment(time_width=-1), "time_width"),
        (lambda: SpecAugment(mask_value="max"), "mask_value"),  # type: ignore[arg-type]
        (lambda: SpecAugment(p=2.0), "p"),
        (
            lambda: mixup(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), alpha=0.0, num_classes=2),
            "alpha",
        ),
        (
            lambda: mixup(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), alpha=-1.0, num_classes=2),
            "alpha",
        ),
        (lambda: mixup(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])), "num_classes"),
        (lambda: mixup(torch.zeros(2, 1, 4, 4), torch.tensor([0, 5]), num_classes=3), "targets"),
        (lambda: mixup(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1, 1]), num_classes=3), "targets"),
        (lambda: Mixup(alpha=0), "alpha"),
        (lambda: Mixup(num_classes=0), "num_classes"),
        (lambda: Mixup(p=-1), "p"),
        (lambda: TAA()(torch.zeros(1, 8, 8)), "images"),
        (lambda: TAA()(torch.zeros(1, 1, 8, 8, dtype=torch.long)), "images"),
        (lambda: SpecAugment()(torch.zeros(8, 8)), "images"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, name: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        make()
