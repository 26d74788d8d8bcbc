"""Fuzzing: the audio loader and the metadata readers, fed random and damaged input, either
return valid data or raise escnet's own errors (AudioError, DatasetError), never anything else.

Bounded in time: a fixed number of examples each, no deadline per example (the machine is
shared), no example database written into the checkout; all of it takes a few seconds.
"""

from __future__ import annotations

import codecs
import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tone, write_esc50
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import load_esc50, load_folder, load_us8k
from escnet.errors import AudioError, DatasetError

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_files() -> dict[str, bytes]:
    y = tone(440, 0.05, 8000)
    out = {}
    for fmt, subtype in (("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("ogg", None)):
        buf = io.BytesIO()
        sf.write(buf, np.stack([y, -y], axis=1), 8000, format=fmt.upper(), subtype=subtype)
        out[f"{fmt}-{subtype}"] = buf.getvalue()
    return out


VALID = _valid_files()

#: Damaged audio: a valid file of each format, cut short, with bytes overwritten (often in
#: the header, where sizes and rates live), or random bytes behind a real format's magic.
damaged_audio = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        lambda magic, rest: magic + rest,
        st.sampled_from([b"RIFF", b"RIFF\xff\xff\xff\xffWAVEfmt ", b"fLaC", b"OggS"]),
        st.binary(max_size=1024),
    ),
    st.builds(
        lambda blob, cut, edits: _mutate(blob, cut, edits),
        st.sampled_from(sorted(VALID.values())),
        st.floats(0.0, 1.0),
        st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
    ),
)


def _mutate(blob: bytes, cut: float, edits: list[tuple[float, int]]) -> bytes:
    data = bytearray(blob[: max(1, int(len(blob) * cut))] if cut < 0.95 else blob)
    for where, value in edits:
        # Half the edits land in the first 64 bytes: the header.
        pos = int(where * min(len(data), 64 if value % 2 else len(data)))
        if pos < len(data):
            data[pos] = value
    return bytes(data)


@FUZZ
@given(data=damaged_audio, suffix=st.sampled_from([".wav", ".flac", ".ogg"]))
def test_audio_loader_returns_valid_audio_or_raises_audio_error(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(data)
    cfg = AudioConfig(sample_rate=8000, duration=0.1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "completely silent" is a warning, not an error
            y = load_audio(path, cfg)
    except AudioError as exc:
        assert exc.path == path and str(exc).startswith(str(path))
        assert "\n" not in str(exc)
        return
    assert y.dtype == np.float32 and y.shape == (800,) and np.isfinite(y).all()


# ------------------------------------------------------------------------- metadata readers

CELL = st.one_of(
    st.sampled_from(["1", "2", "5", "0", "-3", "x", "", " ", "1.0", "True", "False", "99999"]),
    st.text(max_size=12),
)


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-8-bom":
        return codecs.BOM_UTF8 + text.encode("utf-8")
    return text.encode(encoding, errors="replace")


@st.composite
def metadata_tables(draw: st.DrawFn, columns: list[str], names: list[str]) -> bytes:
    """A CSV around ``columns``: sometimes one is dropped or doubled; rows of plausible and
    random values, some naming real files, some ragged; in UTF-8 (with or without a BOM),
    UTF-16 or Latin-1, or raw random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    header = list(columns)
    if draw(st.booleans()) and draw(st.booleans()):
        header.pop(draw(st.integers(0, len(header) - 1)))
    if draw(st.integers(0, 7)) == 0:
        header.append(header[0])
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row = [draw(CELL) for _ in header]
        if "filename" in header or "slice_file_name" in header:
            key = "filename" if "filename" in header else "slice_file_name"
            if draw(st.booleans()):
                row[header.index(key)] = draw(st.sampled_from(names))
        if draw(st.integers(0, 7)) == 0:
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(CELL, max_size=2))
        rows.append(row)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-bom", "utf-16", "latin-1"]))
    return _encode(_csv_text(header, rows), encoding)


def _check_dataset(ds: object) -> None:
    from escnet.data.datasets import Dataset

    assert isinstance(ds, Dataset)
    assert len({c.clip_id for c in ds.clips}) == len(ds.clips)  # no clip twice
    for c in ds.clips:
        assert 0 <= c.label < ds.num_classes and c.fold >= 1 and c.path.is_file()
    assert all(name.strip() for name in ds.classes)


@pytest.fixture(scope="module")
def esc50_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_esc50(tmp_path_factory.mktemp("fuzz") / "esc50", per_fold=1, seconds=0.05)


ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


@FUZZ
@given(table=st.data())
def test_esc50_metadata_reader(esc50_copy: Path, table: st.DataObject) -> None:
    names = [p.with_suffix(".wav").name for p in (esc50_copy / "audio").iterdir()]
    (esc50_copy / "meta" / "esc50.csv").write_bytes(
        table.draw(metadata_tables(ESC50_COLUMNS, names))
    )
    for esc10 in (False, True):
        try:
            ds = load_esc50(esc50_copy, esc10=esc10)
        except DatasetError as exc:
            assert "\n" not in str(exc)
            continue
        _check_dataset(ds)


@pytest.fixture(scope="module")
def us8k_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "us8k"
    for fold in (1, 2):
        (root / "audio" / f"fold{fold}").mkdir(parents=True)
        for cls in range(2):
            sf.write(
                root / "audio" / f"fold{fold}" / f"{fold}-{cls}.wav", tone(300, 0.05, 8000), 8000
            )
    (root / "metadata").mkdir()
    return root


@FUZZ
@given(table=st.data())
def test_us8k_metadata_reader(us8k_copy: Path, table: st.DataObject) -> None:
    names = [f"{fold}-{cls}.wav" for fold in (1, 2) for cls in range(2)]
    columns = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    (us8k_copy / "metadata" / "UrbanSound8K.csv").write_bytes(
        table.draw(metadata_tables(columns, names))
    )
    try:
        ds = load_us8k(us8k_copy)
    except DatasetError as exc:
        assert "\n" not in str(exc)
        return
    _check_dataset(ds)


@FUZZ
@given(table=st.data())
def test_folder_folds_csv_reader(tmp_path: Path, table: st.DataObject) -> None:
    root = tmp_path / "folder"
    if not root.exists():
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True)
            for i in range(2):
                sf.write(root / cls / f"{cls}{i}.wav", tone(300, 0.05, 8000), 8000)
    names = [f"{c}/{c}{i}.wav" for c in "ab" for i in range(2)]
    folds_csv = tmp_path / "folds.csv"
    folds_csv.write_bytes(table.draw(metadata_tables(["filename", "fold"], names)))
    try:
        ds = load_folder(root, folds_csv=folds_csv)
    except DatasetError as exc:
        assert "\n" not in str(exc)
        return
    _check_dataset(ds)
