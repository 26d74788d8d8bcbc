"""Metadata that would silently give wrong data is refused, naming the file, line and column."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pytest
import soundfile as sf

from conftest import tone
from escnet.data.datasets import get_dataset, load_folder, load_us8k
from escnet.data.metadata import read_rows
from escnet.errors import DatasetError, MetadataError


def _rows(meta: Path) -> list[dict[str, str]]:
    with open(meta, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_rows(meta: Path, rows: list[dict[str, str]]) -> None:
    with open(meta, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _edit(meta: Path, row: int, column: str, value: str) -> None:
    rows = _rows(meta)
    rows[row][column] = value
    if column == "target" and value == "5000":
        rows[row]["category"] = "whale"  # a new class, not a second id of an old one
    _write_rows(meta, rows)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("fold", "x", "'x' is not a whole number"),
        ("fold", "-3", "-3 is out of range"),
        ("fold", "0", "0 is out of range"),
        ("fold", "1.0", "not a whole number"),
        ("fold", "", "is empty"),
        ("target", "-1", "-1 is out of range"),
        ("target", "two", "not a whole number"),
        ("target", "5000", "class id 5000 is beyond ESC-50's 50 classes"),
        ("category", "dog", "class 'dog' has id 2 here but 0 on line 2"),
        ("esc10", "maybe", "not True or False"),
        ("src_file", " ", "is empty"),
    ],
)
def test_esc50_bad_value_names_file_line_and_column(
    tiny_esc50: Path, column: str, value: str, message: str
) -> None:
    meta = tiny_esc50 / "meta" / "esc50.csv"
    _edit(meta, 4, column, value)  # data row 5 is on line 6 (the header is line 1)
    with pytest.raises(MetadataError, match=message) as info:
        get_dataset("esc50", root=tiny_esc50)
    # A category with two ids is reported at its id column.
    where = "target" if column == "category" else column
    assert info.value.path == meta and info.value.line == 6 and info.value.column == where
    assert str(info.value).startswith(f"{meta}:6: column {where!r}: ")
    # The same rows are refused whichever folds are asked for.
    with pytest.raises(MetadataError):
        get_dataset("esc50", root=tiny_esc50, folds=[5])


def test_a_file_listed_twice_is_a_leak_and_refused(tiny_esc50: Path) -> None:
    meta = tiny_esc50 / "meta" / "esc50.csv"
    rows = _rows(meta)
    twin = dict(rows[0], fold="3", target="2", category=rows[-1]["category"])
    _write_rows(meta, [*rows, twin])
    with pytest.raises(MetadataError, match=r"listed twice \(also on line 2\)") as info:
        get_dataset("esc50", root=tiny_esc50)
    assert info.value.line == len(rows) + 2 and info.value.column == "filename"
    # The same clip under another extension is the same clip (audio is found by stem).
    _write_rows(meta, [*rows, dict(twin, filename=rows[0]["filename"].replace(".wav", ".flac"))])
    with pytest.raises(MetadataError, match="listed twice"):
        get_dataset("esc50", root=tiny_esc50)


def test_rows_with_missing_or_surplus_fields(tiny_esc50: Path) -> None:
    meta = tiny_esc50 / "meta" / "esc50.csv"
    lines = meta.read_text(encoding="utf-8").splitlines()
    short = lines[:3] + [",".join(lines[3].split(",")[:4])] + lines[4:]
    meta.write_text("\n".join(short) + "\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="has 4 field.*'esc10' and after are missing") as info:
        get_dataset("esc50", root=tiny_esc50)
    assert info.value.line == 4
    meta.write_text("\n".join([*lines[:3], lines[3] + ",extra", *lines[4:]]) + "\n")
    with pytest.raises(MetadataError, match="quote values that contain commas"):
        get_dataset("esc50", root=tiny_esc50)
    meta.write_text("filename,fold\n")
    with pytest.raises(MetadataError, match="missing column.*target") as info:
        get_dataset("esc50", root=tiny_esc50)
    assert info.value.line == 1
    meta.write_text("")
    with pytest.raises(MetadataError, match="is empty"):
        get_dataset("esc50", root=tiny_esc50)


def test_encodings_bom_is_read_others_are_refused_with_the_reason(tiny_esc50: Path) -> None:
    meta = tiny_esc50 / "meta" / "esc50.csv"
    text = meta.read_text(encoding="utf-8")
    meta.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    assert len(get_dataset("esc50", root=tiny_esc50)) == 30  # the BOM is not part of 'filename'
    meta.write_bytes(text.encode("utf-16"))
    with pytest.raises(MetadataError, match="is UTF-16.*save it as UTF-8"):
        get_dataset("esc50", root=tiny_esc50)
    latin = text.replace("rooster", "röoster", 1).encode("latin-1")
    meta.write_bytes(latin)
    with pytest.raises(MetadataError, match=r"not UTF-8: byte 0xF6 .*save it as UTF-8") as info:
        get_dataset("esc50", root=tiny_esc50)
    assert info.value.line == latin[: latin.index(b"\xf6")].count(b"\n") + 1
    meta.write_bytes(text.encode("utf-8")[:40] + b"\x00" + text.encode("utf-8")[40:])
    with pytest.raises(MetadataError, match="NUL byte"):
        get_dataset("esc50", root=tiny_esc50)


def test_esc10_checks_only_its_classes_for_gaps(tiny_esc50: Path) -> None:
    # ESC-10's targets are not contiguous in ESC-50 (it renumbers them), but a broken row is
    # still refused.
    assert get_dataset("esc10", root=tiny_esc50).classes[:2] == ["dog", "rooster"]
    _edit(tiny_esc50 / "meta" / "esc50.csv", 0, "fold", "one")
    with pytest.raises(MetadataError, match="fold"):
        get_dataset("esc10", root=tiny_esc50)


def test_a_partial_esc50_copy_with_gaps_in_its_targets_loads(tiny_esc50: Path) -> None:
    """A subset of the metadata's rows (here: classes 0 and 2, none of class 1) is a partial
    copy: it loads, with ESC-50's 50 classes and each clip's own target."""
    meta = tiny_esc50 / "meta" / "esc50.csv"
    rows = [r for r in _rows(meta) if r["target"] != "1"]
    _write_rows(meta, rows)
    ds = get_dataset("esc50", root=tiny_esc50)
    assert ds.num_classes == 50 and len(ds) == len(rows)
    assert {c.label for c in ds.clips} == {0, 2}
    assert [ds.classes[c.label] for c in ds.clips] == [r["category"] for r in rows]


@pytest.mark.parametrize("target", ["50", "99"])
def test_an_esc50_target_beyond_its_classes_is_refused(tiny_esc50: Path, target: str) -> None:
    meta = tiny_esc50 / "meta" / "esc50.csv"
    rows = _rows(meta)
    rows[3]["target"], rows[3]["category"] = target, "whale"  # a new class, not a second id
    _write_rows(meta, rows)
    with pytest.raises(MetadataError, match=rf"esc50.csv:5: column 'target': class id {target}"):
        get_dataset("esc50", root=tiny_esc50)


def test_an_esc50_category_that_is_not_its_targets_is_refused(tiny_esc50: Path) -> None:
    meta = tiny_esc50 / "meta" / "esc50.csv"
    rows = [r for r in _rows(meta) if r["target"] != "1"]  # a gap: a partial copy
    for r in rows:  # the same swap everywhere, so that no id has two names
        if r["target"] == "0":
            r["category"] = "wolf"
    _write_rows(meta, rows)
    with pytest.raises(MetadataError, match="class 0 is 'dog' in ESC-50, not 'wolf'"):
        get_dataset("esc50", root=tiny_esc50)


def _write_us8k(root: Path) -> Path:
    (root / "metadata").mkdir(parents=True)
    rows = []
    for fold in (1, 2):
        (root / "audio" / f"fold{fold}").mkdir(parents=True)
        for cls in range(2):
            name = f"{100 + fold}-{cls}-0-0.wav"
            sf.write(root / "audio" / f"fold{fold}" / name, tone(500, 0.2, 8000), 8000)
            rows.append(
                {
                    "slice_file_name": name,
                    "fsID": str(100 + fold),
                    "fold": str(fold),
                    "classID": str(cls),
                    "class": ["air_conditioner", "car_horn"][cls],
                }
            )
    _write_rows(root / "metadata" / "UrbanSound8K.csv", rows)
    return root


def test_us8k_metadata_is_checked(tmp_path: Path) -> None:
    root = _write_us8k(tmp_path / "us8k")
    meta = root / "metadata" / "UrbanSound8K.csv"
    assert len(load_us8k(root)) == 4
    rows = _rows(meta)
    _write_rows(meta, [*rows, dict(rows[0], fold="2")])
    with pytest.raises(MetadataError, match="slice_file_name.*listed twice"):
        load_us8k(root)
    _write_rows(meta, [dict(rows[0], classID="7"), *rows[1:]])
    with pytest.raises(MetadataError, match="classID"):
        load_us8k(root)
    _write_rows(meta, [dict(rows[0], fold="x"), *rows[1:]])
    with pytest.raises(MetadataError, match=r"UrbanSound8K.csv:2: column 'fold'"):
        load_us8k(root)


def test_folder_folds_csv_is_checked(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    for cls in ("bird", "car"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            sf.write(root / cls / f"{cls}{i}.wav", tone(400, 0.1, 8000), 8000)
    folds_csv = tmp_path / "folds.csv"
    good = "filename,fold\nbird/bird0.wav,1\nbird/bird1.wav,2\ncar/car0.wav,1\ncar/car1.wav,2\n"
    folds_csv.write_text(good)
    assert load_folder(root, folds_csv=folds_csv).fold_sizes() == {1: 2, 2: 2}
    folds_csv.write_text(good + "car/car1.wav,1\n")
    with pytest.raises(MetadataError, match="folds.csv:6: column 'filename'.*listed twice"):
        load_folder(root, folds_csv=folds_csv)
    folds_csv.write_text(good.replace("car/car0.wav,1", "car/car0.wav,zero"))
    with pytest.raises(MetadataError, match="'zero' is not a whole number"):
        load_folder(root, folds_csv=folds_csv)


def test_read_rows_on_a_directory_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="is a directory"):
        read_rows(tmp_path, ["a"])
    with pytest.raises(MetadataError, match="not found"):
        read_rows(tmp_path / "none.csv", ["a"])
    assert issubclass(MetadataError, DatasetError)
