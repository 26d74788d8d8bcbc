from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf

from conftest import tone, write_esc50
from escnet.data.datasets import ESC10_CLASSES, ESC50_CLASSES, get_dataset, load_folder, load_us8k
from escnet.data.folds import fold_split, parse_folds, random_split
from escnet.errors import DatasetError


def test_esc50_and_esc10_from_a_tiny_copy(tiny_esc50: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    # targets 0..2 without a gap: the copy's own three classes
    assert len(ds) == 30 and ds.num_classes == 3 and ds.fold_sizes() == {f: 6 for f in range(1, 6)}
    assert ds.classes == list(ESC50_CLASSES[:3])
    assert all(c.path.suffix == ".flac" for c in ds.clips)  # found by stem despite ".wav" in CSV
    esc10 = get_dataset("esc10", root=tiny_esc50)
    assert esc10.classes == ["dog", "rooster"] and len(esc10) == 20
    assert ESC10_CLASSES[:2] == ("dog", "rooster")


def test_missing_audio_is_named(tiny_esc50: Path) -> None:
    victim = next((tiny_esc50 / "audio").iterdir())
    victim.unlink()
    with pytest.raises(DatasetError, match=victim.stem):
        get_dataset("esc50", root=tiny_esc50)


def test_missing_dataset_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="escnet download esc50"):
        get_dataset("esc50", data_dir=tmp_path)


def _write_us8k(root: Path, folds: list[int]) -> Path:
    (root / "metadata").mkdir(parents=True)
    rows = []
    for fold in range(1, 11):
        for cls in range(2):
            name = f"{100 + fold}-{cls}-0-0.wav"
            rows.append(
                {
                    "slice_file_name": name,
                    "fsID": 100 + fold,
                    "start": 0,
                    "end": 1,
                    "salience": 1,
                    "fold": fold,
                    "classID": cls,
                    "class": ["air_conditioner", "car_horn"][cls],
                }
            )
            if fold in folds:
                (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
                sf.write(root / "audio" / f"fold{fold}" / name, tone(500, 0.5, 8000), 8000)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_us8k_partial_copy(tmp_path: Path) -> None:
    root = _write_us8k(tmp_path / "us8k", folds=[1, 2, 10])
    ds = load_us8k(root, folds=[1, 2])
    assert len(ds) == 4 and ds.folds == [1, 2] and ds.duration == 4.0
    assert ds.classes == ["air_conditioner", "car_horn"]
    # Without folds, the copy's own folds: a partial copy works as it is.
    assert load_us8k(root).folds == [1, 2, 10]
    # Asking for a fold the copy lacks names the folds it has, and the fix works.
    with pytest.raises(DatasetError, match=r"fold\(s\) \[3\].*holds folds \[1, 2, 10\]") as info:
        load_us8k(root, folds=[1, 3])
    assert "Pass --folds 1,2,10" in str(info.value)
    assert load_us8k(root, folds=parse_folds("1,2,10")).folds == [1, 2, 10]
    empty = tmp_path / "empty"
    (empty / "audio").mkdir(parents=True)
    (empty / "metadata").mkdir()
    (empty / "metadata" / "UrbanSound8K.csv").write_bytes(
        (root / "metadata" / "UrbanSound8K.csv").read_bytes()
    )
    with pytest.raises(DatasetError, match="holds none of the fold directories"):
        load_us8k(empty)


def _write_folder(root: Path) -> Path:
    for cls in ("bird", "car"):
        (root / cls).mkdir(parents=True)
        for rec in range(6):
            for part in range(2):
                sf.write(root / cls / f"rec{rec}_{part}.wav", tone(400, 0.2, 8000), 8000)
    (root / "car" / "notes.txt").write_text("ignored")
    return root


def test_folder_grouped_kfold_keeps_groups_together(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "mine")
    ds = load_folder(root, num_folds=3, group_pattern=r"^(rec\d+)_")
    assert len(ds) == 24 and ds.classes == ["bird", "car"]
    fold_of_group: dict[str, set[int]] = {}
    for c in ds.clips:
        fold_of_group.setdefault(c.group, set()).add(c.fold)
    assert all(len(f) == 1 for f in fold_of_group.values())
    assert sorted(ds.fold_sizes().values()) == [8, 8, 8]
    with pytest.raises(DatasetError, match="group-pattern"):
        load_folder(root, group_pattern=r"^nomatch")


def test_folder_fold_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "mine")
    with pytest.raises(DatasetError, match=r"fold\(s\) \[7, 8, 9\].*--num-folds 5"):
        load_folder(root, num_folds=5, folds=[7, 8, 9])
    assert load_folder(root, num_folds=9, folds=[7, 8, 9]).folds == [7, 8, 9]
    with pytest.raises(ValueError, match="--num-folds"):
        load_folder(root, num_folds=1)
    with pytest.raises(DatasetError, match="6 recording group.*--num-folds 6 or fewer"):
        load_folder(root, num_folds=13, group_pattern=r"^(rec\d+)_")


def test_folder_empty_class_directory_is_reported_not_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _write_folder(tmp_path / "mine")
    (root / "ant").mkdir()
    (root / "ant" / "readme.txt").write_text("no audio here")
    ds = load_folder(root)
    assert ds.classes == ["bird", "car"] and ds.num_classes == 2
    assert sorted({c.label for c in ds.clips}) == [0, 1]
    assert f"{root / 'ant'} has no audio files" in caplog.text


def test_folder_invalid_group_pattern_is_named(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "mine")
    with pytest.raises(DatasetError, match=r"--group-pattern '\(rec' is not a valid regular"):
        load_folder(root, group_pattern="(rec")
    with pytest.raises(DatasetError, match="empty group"):
        load_folder(root, group_pattern=r"^(x?)")


def test_folder_folds_from_csv(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "mine")
    csv_path = tmp_path / "folds.csv"
    with open(csv_path, "w") as f:
        f.write("filename,fold\n")
        for p in sorted(root.glob("*/*.wav")):
            f.write(f"{p.relative_to(root).as_posix()},{1 + int(p.stem[3]) % 2}\n")
    ds = load_folder(root, folds_csv=csv_path)
    assert ds.fold_sizes() == {1: 12, 2: 12}


def test_fold_split_is_disjoint_by_clip_and_group(tiny_esc50: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    split = fold_split(ds, 2, val_fraction=0.2)
    split.check_disjoint(ds)
    assert {ds[i].fold for i in split.test} == {2}
    assert 2 not in {ds[i].fold for i in split.train + split.val}
    assert len(split.val) > 0 and len(split.train) + len(split.val) + len(split.test) == len(ds)
    with pytest.raises(ValueError, match="test_fold 9"):
        fold_split(ds, 9)
    leaky = random_split(ds, 0.2)
    assert leaky.protocol.startswith("random-split")


@pytest.mark.parametrize(
    "text, message",
    [
        ("a-b", "not a fold number"),
        ("0", "numbered from 1"),
        ("-3", "not a fold number"),
        ("5-1", "runs backwards; write 1-5"),
        ("1-100000000", "at most fold 1000"),
        ("", "no fold given"),
        ("1.5", "not a fold number"),
    ],
)
def test_parse_folds(text: str, message: str) -> None:
    assert parse_folds("1-3,5") == [1, 2, 3, 5] and parse_folds(" 2 , 1 ") == [1, 2]
    with pytest.raises(ValueError, match=f"--folds {text!r}: .*{message}"):
        parse_folds(text)


def test_default_data_dir_comes_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_esc50(tmp_path / "esc50")
    monkeypatch.setenv("ESCNET_DATA_DIR", str(tmp_path))
    assert len(get_dataset("esc50")) == 30


@pytest.mark.shared
def test_shared_esc50_and_esc10(shared_datasets: Path) -> None:
    esc50 = get_dataset("esc50", data_dir=shared_datasets)
    assert (len(esc50), esc50.num_classes) == (2000, 50)
    assert esc50.fold_sizes() == {f: 400 for f in range(1, 6)}
    esc10 = get_dataset("esc10", data_dir=shared_datasets)
    assert (len(esc10), esc10.num_classes) == (400, 10)
    assert esc10.fold_sizes() == {f: 80 for f in range(1, 6)}
    assert tuple(esc10.classes) == ESC10_CLASSES
    for test_fold in esc50.folds:
        fold_split(esc50, test_fold).check_disjoint(esc50)
