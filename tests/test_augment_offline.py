from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from escnet.augment import NAA_VARIANTS, POLICIES, get_policy
from escnet.cache import ArrayCache
from escnet.cli import main
from escnet.data.datasets import get_dataset
from escnet.data.folds import fold_split
from escnet.features.offline_naa import expand_clips, expand_training_set


def test_expansion_is_7x_the_training_folds_only(tiny_esc50: Path, tmp_path: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    split = fold_split(ds, 1, val_fraction=0.2)
    out = expand_training_set(ds, split, cache_dir=tmp_path / "c", workers=2, progress=False)
    assert len(out.features) == 7 * len(split.train)
    assert set(out.source.tolist()) == set(split.train)
    assert not set(out.source.tolist()) & (set(split.test) | set(split.val))
    assert sorted(set(out.variant.tolist())) == sorted(("original", *NAA_VARIANTS))
    assert out.labels.tolist() == [ds[i].label for i in out.source]
    # Each variant differs from its original (shift and stretch move a 1 s tone in a 5 s clip).
    first = split.train[0]
    orig = out.features[(out.source == first) & (out.variant == "original")][0]
    for name in ("shift", "sts", "fts", "pps"):
        var = out.features[(out.source == first) & (out.variant == name)][0]
        assert np.abs(var - orig).max() > 1.0, name


def test_cache_reuse_resume_and_keys(tiny_esc50: Path, tmp_path: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    clips = list(range(8))
    cold = expand_clips(ds, clips, cache_dir=tmp_path / "c", workers=1, progress=False)
    cache = ArrayCache(tmp_path / "c", "naa")
    entries = sorted(cache.dir.rglob("*.npy"))
    assert len(entries) == 8  # one entry per clip holds its six variants
    # An interrupted run: some entries never got written. Only those are recomputed.
    for e in entries[:3]:
        e.unlink()
    resumed = expand_clips(ds, clips, cache_dir=tmp_path / "c", workers=1, progress=False)
    assert resumed.cache_hits == 8 + 5 * len(NAA_VARIANTS)
    np.testing.assert_array_equal(cold.features, resumed.features)
    # A damaged entry is recomputed, not trusted.
    entries[4].write_bytes(b"garbage")
    repaired = expand_clips(ds, clips, cache_dir=tmp_path / "c", workers=1, progress=False)
    np.testing.assert_array_equal(cold.features, repaired.features)
    warm = expand_clips(ds, clips, cache_dir=tmp_path / "c", workers=1, progress=False)
    assert warm.cache_hits == 8 * 7
    # Another seed is another set of entries, not a stale hit.
    other = expand_clips(ds, clips, seed=1, cache_dir=tmp_path / "c", workers=1, progress=False)
    assert other.cache_hits == 8  # only the originals
    assert len(list(cache.dir.rglob("*.npy"))) > len(entries)


def test_bad_clip_is_skipped(tiny_esc50: Path, tmp_path: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    ds[2].path.write_bytes(b"")
    out = expand_clips(ds, range(6), cache_dir=tmp_path / "c", workers=1, progress=False)
    assert len(out.skipped) == 1 and out.skipped[0][0] == ds[2].path
    assert 2 not in set(out.source.tolist()) and len(out.features) == 5 * 7


def test_policies() -> None:
    assert set(POLICIES) == {
        "none",
        "taa",
        "naa",
        "naa-online",
        "naa+taa",
        "naa+mixup",
        "specaug",
        "specaug+mixup",
    }
    images = torch.randn(4, 1, 32, 40)
    assert get_policy("none").image_transform() is None
    taa = get_policy("naa+taa")
    out = taa.image_transform(seed=0)(images)
    assert taa.offline_naa and out.shape == images.shape
    # TAA changes the images: an identity (or a no-op policy) fails here.
    assert (~torch.isclose(out, images).flatten(1).all(1)).sum() >= 3
    online = get_policy("naa-online").audio_transform(seed=0)
    assert online is not None
    sound = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    outs = [online(sound, 8000) for _ in range(12)]
    assert all(o.shape == sound.shape and np.isfinite(o).all() for o in outs)
    # Online NAA keeps the sound (silence out fails here) and changes it on most calls.
    rms = float(np.sqrt(np.mean(sound**2)))
    assert min(float(np.sqrt(np.mean(o**2))) for o in outs) > 0.3 * rms
    assert sum(not np.allclose(o, sound, atol=1e-3) for o in outs) >= 6
    assert get_policy("specaug+mixup").mixup_transform(10) is not None
    naa_mixup = get_policy("naa+mixup")
    assert naa_mixup.offline_naa and naa_mixup.image_transform() is None
    assert naa_mixup.mixup_transform(10) is not None
    with pytest.raises(ValueError, match="unknown augmentation policy"):
        get_policy("rotate")


def test_gallery_and_augment_cli(
    tiny_esc50: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    out = tmp_path / "gallery.png"
    args = ["--data-dir", str(tiny_esc50.parent), "-q"]
    assert (
        main(
            [
                *args,
                "augment-gallery",
                "--dataset",
                "esc50",
                "--clip",
                ds[0].clip_id,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert (
        main([*args, "augment-gallery", "--dataset", "esc50", "--clip", "nope", "--out", str(out)])
        == 2
    )
    assert "--clip 'nope'" in capsys.readouterr().err
    assert main([*args, "augment", "--dataset", "esc50", "--test-fold", "2", "--workers", "1"]) == 0
    assert "21 training clips -> 147 images" in capsys.readouterr().out
