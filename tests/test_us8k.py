"""UrbanSound8K: a partial copy read against the complete metadata, its clip lengths, and the
leak a random split of its sliced recordings makes (on the real copy when ../shared has it)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SHARED_DATASETS, tone
from escnet.cli import main
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import describe_copy, load_us8k
from escnet.data.folds import fold_split, random_fold_split
from escnet.features.prepare import prepare_features

CLASSES = ["air_conditioner", "car_horn"]


def _row(name: str, fs_id: int, fold: int, cls: int) -> dict[str, object]:
    return {
        "slice_file_name": name,
        "fsID": fs_id,
        "start": 0,
        "end": 1,
        "salience": 1,
        "fold": fold,
        "classID": cls,
        "class": CLASSES[cls],
    }


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _partial_copy(root: Path, seconds: dict[str, float] | None = None) -> Path:
    """Official folds 1-4 of two clips each; the copy holds folds 1, 2 and half of fold 3, with
    the complete table beside its own, as ../shared/data/us8k does."""
    (root / "metadata").mkdir(parents=True)
    full, present = [], []
    for fold in range(1, 5):
        for cls in range(2):
            name = f"{100 + fold}-{cls}-0-0.wav"
            row = _row(name, 100 + fold, fold, cls)
            full.append(row)
            if fold < 3 or (fold == 3 and cls == 0):
                present.append(row)
                d = root / "audio" / f"fold{fold}"
                d.mkdir(parents=True, exist_ok=True)
                length = (seconds or {}).get(name, 1.0)
                sf.write(d / name, tone(500 + 100 * cls, length, 8000), 8000)
    _write_csv(root / "metadata" / "UrbanSound8K.csv", present)
    _write_csv(root / "metadata" / "UrbanSound8K.full.csv", full)
    return root


def test_a_partial_copy_says_which_official_folds_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = load_us8k(_partial_copy(tmp_path / "us8k"))
    assert ds.folds == [1, 2, 3]
    assert ds.coverage() == {1: (2, 2), 2: (2, 2), 3: (1, 2), 4: (0, 2)}
    assert ds.coverage_note() == "folds 1-3 (fold 3 partial)"
    record = ds.copy_info()
    assert record["coverage"] == "folds 1-3 (fold 3 partial)"
    assert "/us8k: folds 1-3 (fold 3 partial), wav/pcm_16 8000 Hz" in describe_copy(record)
    assert main(["info", "--dataset", "us8k", "--root", str(tmp_path / "us8k")]) == 0
    out = capsys.readouterr().out
    assert "official folds: folds 1-3 (fold 3 partial); partial: 3: 1 of 2; absent: 4" in out
    # Without the complete table nothing can be said about what is missing, and nothing is.
    (tmp_path / "us8k" / "metadata" / "UrbanSound8K.full.csv").unlink()
    bare = load_us8k(tmp_path / "us8k")
    assert bare.coverage() is None and "coverage" not in bare.copy_info()


def test_the_shortest_and_longest_clips_pad_to_four_seconds(tmp_path: Path) -> None:
    # UrbanSound8K's slices run from 0.05 s to 4 s; loading zero-pads each to 4 s.
    lengths = {"101-0-0-0.wav": 0.05, "101-1-0-0.wav": 4.0}
    ds = load_us8k(_partial_copy(tmp_path / "us8k", lengths))
    cfg = AudioConfig(sample_rate=8000, duration=ds.duration)
    short, full = (load_audio(ds.root / "audio" / "fold1" / n, cfg) for n in lengths)
    assert short.shape == full.shape == (32000,)
    assert np.any(short[:400]) and not np.any(short[401:])
    feats = prepare_features(ds, progress=False)
    assert not feats.skipped and len(feats.features) == len(ds)
    assert len({f.shape for f in feats.features}) == 1


@pytest.fixture
def shared_us8k() -> Path:
    root = SHARED_DATASETS / "us8k"
    if not (root / "metadata" / "UrbanSound8K.csv").is_file():
        pytest.skip(f"{root} is absent")
    return root


@pytest.mark.shared
def test_random_split_leaks_recordings_and_official_folds_do_not(shared_us8k: Path) -> None:
    ds = load_us8k(shared_us8k)
    groups = np.array([c.group for c in ds.clips])
    for fold in ds.folds:
        official = fold_split(ds, fold)
        official.check_disjoint(ds)
        train = set(groups[list(official.train + official.val)])
        assert not train & set(groups[list(official.test)])
        leaky = random_fold_split(ds, fold)
        shared = set(groups[list(leaky.train + leaky.val)]) & set(groups[list(leaky.test)])
        # Fragments of one Freesound recording (fsID) on both sides: most test recordings.
        assert len(shared) > 0.5 * len(set(groups[list(leaky.test)]))


def test_the_time_estimate_reads_the_copy_s_folds_and_clip_length() -> None:
    from escnet.experiment.throughput import estimate_cell_seconds

    cell = {"dataset": "us8k", "model": "cnn7", "folds": [1, 2, 3], "epochs": 84}
    complete = estimate_cell_seconds(cell, expansion=1)
    partial = estimate_cell_seconds(
        cell, expansion=1, fold_sizes={1: 873, 2: 888, 3: 387}, clip_seconds=4.0
    )
    assert complete is not None and partial is not None
    # The complete data set trains each fold on nine folds' clips; this copy on two (or
    # fewer) of 4-s clips: a sixth of the time or less, not the complete set's hours.
    assert complete.train_images == int(873 * 9 * 0.9)
    assert partial.train_images == int((888 + 387) * 0.9)
    assert partial.seconds < complete.seconds / 6
