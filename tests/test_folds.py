"""Splits keep recordings whole, on files with several clips per recording, and the guard that
checks it fires on a leaky split (so that a split that cuts a recording cannot pass)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_esc50
from escnet.data.datasets import Dataset, get_dataset
from escnet.data.folds import Split, fold_split, validation_split
from escnet.errors import EscnetError, ParameterError
from escnet.training.config import TrainConfig, check_resumable


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    # The conftest's grouped_esc50 layout, written once for the module (splits read no audio).
    root = write_esc50(
        tmp_path_factory.mktemp("grouped") / "esc50",
        per_fold=6,
        seconds=0.25,
        sr=8000,
        clips_per_recording=3,
    )
    return get_dataset("esc50", root=root)


def test_the_fixture_really_has_several_clips_per_recording(grouped: Dataset) -> None:
    sizes = Counter(c.group for c in grouped.clips)
    assert len(grouped) == 90 and set(sizes.values()) == {3}
    for group in sizes:
        members = [c for c in grouped.clips if c.group == group]
        assert len({(c.fold, c.label) for c in members}) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fold_split_keeps_every_recording_on_one_side(grouped: Dataset, seed: int) -> None:
    for test_fold in grouped.folds:
        split = fold_split(grouped, test_fold, val_fraction=0.3, seed=seed)
        split.check_disjoint(grouped)
        side = {}
        for name in ("train", "val", "test"):
            for i in getattr(split, name):
                assert side.setdefault(grouped[i].group, name) == name, grouped[i].clip_id
        # Validation is drawn whole recordings at a time, in every class.
        assert len(split.val) % 3 == 0 and len(split.val) > 0
        assert {grouped[i].label for i in split.val} == {0, 1, 2}
        assert sorted(split.train + split.val + split.test) == list(range(len(grouped)))


def test_validation_split_draws_whole_recordings(grouped: Dataset) -> None:
    train, val = validation_split(grouped, range(len(grouped)), 0.2, seed=5)
    val_groups = {grouped[i].group for i in val}
    assert val_groups and not val_groups & {grouped[i].group for i in train}
    assert len(val) == 3 * len(val_groups)


def test_check_disjoint_raises_on_a_clip_on_two_sides(grouped: Dataset) -> None:
    split = fold_split(grouped, 1, val_fraction=0.2)
    leaky = dataclasses.replace(split, train=(*split.train, split.test[0]))
    with pytest.raises(AssertionError, match=f"clip {grouped[split.test[0]].clip_id} is in both"):
        leaky.check_disjoint(grouped)


def test_check_disjoint_raises_on_a_recording_cut_by_the_split(grouped: Dataset) -> None:
    split = fold_split(grouped, 1, val_fraction=0.2)
    # Move one clip of a test recording into training: no clip is shared, the recording is.
    moved = split.test[0]
    cut = Split(
        (*split.train, moved),
        split.val,
        tuple(i for i in split.test if i != moved),
        split.test_fold,
    )
    with pytest.raises(AssertionError, match=f"recording {grouped[moved].group} is in both"):
        cut.check_disjoint(grouped)
    # The same cut between train and validation is caught as well.
    v = split.val[0]
    cut_val = Split(
        (*split.train, v), tuple(i for i in split.val if i != v), split.test, split.test_fold
    )
    with pytest.raises(AssertionError, match="is in both train and val"):
        cut_val.check_disjoint(grouped)


def test_a_clip_level_split_would_cut_recordings_here(grouped: Dataset) -> None:
    """The fixture can catch a split by clip instead of by recording: one made that way cuts
    recordings, and the guard says so."""
    train_idx = [i for i in range(len(grouped)) if grouped[i].fold != 1]
    by_clip = Split(
        tuple(train_idx[1::2]),
        tuple(train_idx[0::2]),
        tuple(i for i in range(len(grouped)) if grouped[i].fold == 1),
        1,
    )
    with pytest.raises(AssertionError, match="recording"):
        by_clip.check_disjoint(grouped)


def test_the_training_leak_guard_raises_on_a_leaky_split(
    grouped_esc50: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escnet.augment.policy import get_policy
    from escnet.features.offline_naa import ExpandedSet
    from escnet.features.spectrogram import LogMelConfig
    from escnet.training import TrainConfig
    from escnet.training.data import load_fold_data

    ds = get_dataset("esc50", root=grouped_esc50)
    config = TrainConfig.from_dict(
        dict(model="cnn7", augment="none", workers=1, cache_dir=str(tmp_path))
    )
    test = tuple(i for i in range(len(ds)) if ds[i].fold == 1)[:2]
    train = tuple(i for i in range(len(ds)) if ds[i].fold == 2)[:3]
    fe = LogMelConfig(n_mels=16)
    # Sound: the guard lets a clean split through.
    clean = load_fold_data(config, ds, Split(train, (), test, 1), fe, get_policy("none"))
    assert sorted(clean.train_sources.tolist()) == sorted(train)
    # A test clip among the training clips is refused, naming it.
    leaky = Split((*train, test[0]), (), test, 1)
    with pytest.raises(RuntimeError, match=ds[test[0]].clip_id):
        load_fold_data(config, ds, leaky, fe, get_policy("none"))
    # Augmented images whose source is outside the training split are refused too.
    real = load_fold_data.__globals__["expand_training_set"]

    def leaking_expansion(*args: object, **kwargs: object) -> ExpandedSet:
        out = real(*args, **kwargs)
        out.source[0] = test[0]
        return out

    monkeypatch.setattr("escnet.training.data.expand_training_set", leaking_expansion)
    naa = dataclasses.replace(config, augment="naa")
    with pytest.raises(RuntimeError, match="outside the training split"):
        load_fold_data(naa, ds, Split(train, (), test, 1), fe, get_policy("naa"))


def test_the_validation_cap_never_binds_on_recordings_within_it(grouped: Dataset) -> None:
    # Three clips a recording: a cap of 3 or more draws exactly the uncapped split.
    for test_fold in grouped.folds:
        uncapped = fold_split(grouped, test_fold, val_fraction=0.3, val_clips_per_recording=0)
        for cap in (3, 8):
            assert (
                fold_split(grouped, test_fold, val_fraction=0.3, val_clips_per_recording=cap)
                == uncapped
            )


def test_a_long_recording_gives_validation_at_most_the_cap_and_trains_on_neither_side(
    grouped: Dataset,
) -> None:
    train, val = validation_split(grouped, range(len(grouped)), 0.3, seed=0, max_per_recording=1)
    val_groups = {grouped[i].group for i in val}
    # One clip of each drawn recording; its other two clips are on neither side.
    assert len(val) == len(val_groups) > 0
    assert not val_groups & {grouped[i].group for i in train}
    assert len(train) + len(val) + 2 * len(val_groups) == len(grouped)
    # The cap counts toward the class's share: more recordings are drawn than without it.
    _, uncapped = validation_split(grouped, range(len(grouped)), 0.3, seed=0, max_per_recording=0)
    assert len(val_groups) > len({grouped[i].group for i in uncapped})
    with pytest.raises(ParameterError, match="max_per_recording"):
        validation_split(grouped, range(len(grouped)), 0.3, max_per_recording=-1)


def test_a_run_saved_before_the_cap_keeps_its_uncapped_split(tmp_path: Path) -> None:
    saved = {**TrainConfig(dataset="us8k").to_dict(), "environment": {}}
    del saved["val_clips_per_recording"]  # a run's config.json written before the setting
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    assert TrainConfig.from_json(path).val_clips_per_recording == 0
    with pytest.raises(EscnetError, match="val_clips_per_recording: 0 there, 8 now"):
        check_resumable(saved, TrainConfig(dataset="us8k"), path)
    check_resumable(saved, TrainConfig(dataset="us8k", val_clips_per_recording=0), path)


@pytest.mark.shared
def test_esc50_splits_are_the_same_with_the_cap(shared_datasets: Path) -> None:
    # ESC-50's recordings give at most 8 clips: the default cap changes none of its splits.
    esc50 = get_dataset("esc50", root=shared_datasets / "esc50")
    for test_fold in esc50.folds:
        assert fold_split(esc50, test_fold) == fold_split(
            esc50, test_fold, val_clips_per_recording=0
        )
