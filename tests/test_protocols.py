"""The three evaluation protocols on a synthetic data set of grouped recordings.

The data set is built in memory (no audio is read by a split): 5 folds x 4 classes x 3
recordings, each recording cut into 3 clips that share its fold, as ESC-50's ``src_file``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import write_esc50_layout
from escnet.augment.audio import naa_transform, variant_rng
from escnet.data.datasets import Clip, Dataset, get_dataset
from escnet.data.folds import (
    PROTOCOLS,
    ImageSplit,
    Split,
    augment_then_split,
    fold_split,
    is_leaky,
    protocol_label,
    protocol_split,
    random_fold_split,
    random_folds,
)
from escnet.features.offline_naa import expand_clips

FOLDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def grouped() -> Dataset:
    clips = []
    for fold in FOLDS:
        for label in range(4):
            for rec in range(3):
                group = f"rec-{fold}-{label}-{rec}"
                for take in "ABC":
                    cid = f"{fold}-{label}{rec}-{take}-{label}"
                    clips.append(Clip(Path(f"/nowhere/{cid}.wav"), label, fold, group, cid))
    return Dataset("synthetic", Path("/nowhere"), ["a", "b", "c", "d"], clips)


def _groups(ds: Dataset, idx: tuple[int, ...] | list[int]) -> set[str]:
    return {ds[i].group for i in idx}


def test_official_folds_never_share_a_recording(grouped: Dataset) -> None:
    for fold in FOLDS:
        split = fold_split(grouped, fold, val_fraction=0.2, seed=3)
        assert split.protocol == "official-folds" and not is_leaky(split.protocol)
        split.check_disjoint(grouped)
        train, val, test = (_groups(grouped, s) for s in (split.train, split.val, split.test))
        assert not train & test and not val & test and not train & val
        assert {grouped[i].fold for i in split.test} == {fold}
        assert split.val, "a validation split was asked for"


def test_random_split_ignores_folds_and_recordings(grouped: Dataset) -> None:
    folds = random_folds(grouped, seed=0)
    # The same fold numbers, balanced sizes, but not the official assignment.
    sizes = Counter(folds.tolist())
    assert sorted(sizes) == list(FOLDS) and max(sizes.values()) - min(sizes.values()) <= 1
    assert (folds != grouped.fold_of).any()
    tests: list[int] = []
    for fold in FOLDS:
        split = random_fold_split(grouped, fold, val_fraction=0.1, seed=0)
        assert isinstance(split, Split) and split.protocol == "random-split (leaky)"
        split.check_disjoint(grouped)  # clip-disjoint; recordings are not checked for it
        # Test clips come from several official folds ...
        assert len({grouped[i].fold for i in split.test}) > 1
        tests.extend(split.test)
    # ... and the random folds partition the data set.
    assert sorted(tests) == list(range(len(grouped)))
    leaked = [
        g
        for fold in FOLDS
        for g in _groups(grouped, random_fold_split(grouped, fold).test)
        & _groups(grouped, random_fold_split(grouped, fold).train)
    ]
    assert leaked, "some recording must be on both sides: that is the leak"


def test_random_split_is_seeded(grouped: Dataset) -> None:
    a = random_fold_split(grouped, 2, seed=5)
    assert a == random_fold_split(grouped, 2, seed=5)
    assert a.test != random_fold_split(grouped, 2, seed=6).test


def test_augment_then_split_puts_variants_of_test_clips_in_training(grouped: Dataset) -> None:
    per_clip = 7
    tests: list[int] = []
    for fold in FOLDS:
        split = augment_then_split(grouped, fold, per_clip=per_clip, val_fraction=0.1, seed=0)
        assert isinstance(split, ImageSplit) and split.protocol == "augment-then-split (leaky)"
        split.check_disjoint()
        n_images = len(split.train) + len(split.val) + len(split.test)
        assert n_images == len(grouped) * per_clip
        leaked = split.leaked_clips()
        # Each leaked clip really has one image in test and another in training.
        for c in leaked:
            test_versions = {m % per_clip for m in split.test if m // per_clip == c}
            train_versions = {m % per_clip for m in split.train if m // per_clip == c}
            assert test_versions and train_versions and not test_versions & train_versions
        # With 7 versions per clip and 1/5 of the images tested, most test clips leak.
        assert len(leaked) > 0.8 * len(split.clips("test"))
        tests.extend(split.test)
    assert sorted(tests) == list(range(len(grouped) * per_clip))


def test_check_disjoint_catches_an_image_on_two_sides() -> None:
    with pytest.raises(AssertionError, match="image 3"):
        ImageSplit((1, 3), (), (3,), 1).check_disjoint()


def test_protocol_lookup_and_labels(grouped: Dataset) -> None:
    assert PROTOCOLS[0] == "official-folds"
    assert protocol_split(grouped, "official-folds", 1) == fold_split(grouped, 1)
    assert protocol_split(grouped, "random-split", 1) == random_fold_split(grouped, 1)
    assert protocol_split(grouped, "augment-then-split", 1, per_clip=3) == augment_then_split(
        grouped, 1, per_clip=3
    )
    assert [protocol_label(p) for p in PROTOCOLS] == [
        "official-folds",
        "random-split (leaky)",
        "augment-then-split (leaky)",
    ]
    assert protocol_label("random-split (leaky)") == "random-split (leaky)"
    assert [is_leaky(p) for p in PROTOCOLS] == [False, True, True]
    with pytest.raises(ValueError, match="unknown protocol 'shuffled'"):
        protocol_split(grouped, "shuffled", 1)
    with pytest.raises(ValueError, match="test_fold 9"):
        random_fold_split(grouped, 9)
    with pytest.raises(ValueError, match="per_clip"):
        augment_then_split(grouped, 1, per_clip=0)


# --------------------------------------------------------------------------------------------
# Offline NAA: every clip gets its own time shift, reproducible from the seed


def _shift_draws(seed: int, clips: list[str | None]) -> list[int]:
    shift = naa_transform("shift")
    x = np.zeros(22050, dtype=np.float32)
    return [
        shift.randomize_parameters(x, 22050, rng=variant_rng(seed, "shift", c))["shift"]
        for c in clips
    ]


def test_variant_rng_draws_one_shift_per_clip() -> None:
    clips: list[str | None] = [f"digest-{k}" for k in range(30)]
    draws = _shift_draws(0, clips)
    assert len(set(draws)) >= 25  # 30 draws from 22050 offsets: (nearly) all distinct
    assert draws == _shift_draws(0, clips)  # the same seed gives the same shifts
    assert draws != _shift_draws(1, clips)
    # Without a clip identity every clip would get the same shift (the old behaviour).
    assert len(set(_shift_draws(0, [None, None]))) == 1


def _burst_onsets(features: np.ndarray) -> list[int]:
    """First frame of each image where the burst rises 20 dB above the image's floor."""
    onsets = []
    for im in features:
        loud = im.max(axis=0) > im.min() + 20.0
        onsets.append(int(np.argmax(loud)))
    return onsets


def test_offline_expansion_shifts_each_clip_by_its_own_offset(tmp_path: Path) -> None:
    sr = 16000
    t = np.arange(int(0.3 * sr)) / sr
    clips = []
    for k in range(6):
        y = np.zeros(2 * sr, dtype=np.float32)  # the burst starts at 1.0 s of a 2 s clip
        y[sr : sr + len(t)] = 0.5 * np.sin(2 * np.pi * (500 + 37 * k) * t)
        clips.append((1 + k % 5, 0, "dog", y, True))
    root = write_esc50_layout(tmp_path / "esc50", clips, sr, fmt="wav")
    ds = dataclasses.replace(get_dataset("esc50", root=root), duration=2.0)

    def expand(cache: str, seed: int) -> tuple[np.ndarray, list[int]]:
        out = expand_clips(
            ds,
            range(len(ds)),
            names=("shift",),
            seed=seed,
            cache_dir=tmp_path / cache,
            workers=1,
            progress=False,
        )
        orig = _burst_onsets(out.features[out.variant == "original"])
        shifted = _burst_onsets(out.features[out.variant == "shift"])
        return out.features, [s - o for s, o in zip(shifted, orig, strict=True)]

    features, offsets = expand("a", seed=0)
    assert len(set(offsets)) >= 4, f"clips shifted alike: {offsets}"
    again, offsets_again = expand("b", seed=0)  # a fresh cache: recomputed, not read back
    assert offsets_again == offsets
    np.testing.assert_array_equal(again, features)
    assert expand("c", seed=1)[1] != offsets
