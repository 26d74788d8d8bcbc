"""Archive detection (escnet.batch.detect, ``escnet detect --workers``): events as rows or files
per recording, the same events as Predictor.detect_file, resume after SIGKILL, bad files."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
import _batch_faults  # noqa: E402
import escnet  # noqa: E402
from _inference_helpers import CLASSES, synth, train_tiny_model  # noqa: E402
from escnet.batch import detect  # noqa: E402
from escnet.batch.events import EVENT_COLUMNS, INDEX_COLUMNS, INDEX_NAME, per_file_path  # noqa: E402
from escnet.cli import main  # noqa: E402
from escnet.errors import ParameterError  # noqa: E402
from escnet.events.formats import audacity_labels, json_text  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_recordings(root: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` recordings of 2-4.5 s at several rates: silence, a sound of one class (or two
    one after the other), silence; every fifth one silent throughout (no events at all)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        sr = (8000, 16000, 22050)[i % 3]
        parts = [np.zeros(int(0.5 * sr), np.float32)]
        if i % 5 != 4:
            parts.append(synth(CLASSES[i % 3], 1.5 + (i % 2), sr, rng))
            if i % 4 == 1:
                parts.append(synth(CLASSES[(i + 1) % 3], 1.5, sr, rng))
        parts.append(np.zeros(int(0.5 * sr), np.float32))
        path = root / f"part{i % 2}" / f"rec-{i:03d}.{('wav', 'flac')[i % 2]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.concatenate(parts), sr)
        paths.append(path)
    return paths


def read_rows(path: Path, columns: list[str] = EVENT_COLUMNS) -> list[list[str]]:
    """The data rows of a CSV output, sorted (rows come in the order files finish)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == columns
    return sorted(rows[1:])


def test_event_rows_are_detect_files_events(model_dir: Path, tmp_path: Path) -> None:
    files = write_recordings(tmp_path / "a", 10)
    (tmp_path / "a" / "part0" / "notes.wav").write_text("not audio")
    out = tmp_path / "events.csv"
    summary = detect(model_dir, [tmp_path / "a"], output=out, workers=2)
    assert (summary.labelled, summary.skip_count) == (10, 1)
    assert summary.skipped[0][0].endswith("notes.wav")
    rows = read_rows(out)
    predictor = escnet.load(model_dir)
    expected_events = 0
    for path in files:
        mine = [r for r in rows if r[0] == str(path)]
        events = predictor.detect_file(path).events
        expected_events += len(events)
        if not events:  # still in the table: one row without event cells, so resume skips it
            assert len(mine) == 1 and mine[0][1:4] == ["", "", ""] and mine[0][6]
            continue
        assert [(float(r[1]), float(r[2]), r[3]) for r in sorted(mine, key=lambda r: float(r[1]))] \
            == [(e.onset, e.offset, e.label) for e in events]  # fmt: skip
        assert [float(r[4]) for r in sorted(mine, key=lambda r: float(r[1]))] == pytest.approx(
            [e.peak for e in events], abs=2e-4
        )
    assert expected_events > len(files) // 2  # the recordings do have events
    assert summary.events == expected_events
    assert [r for r in rows if r[0].endswith("notes.wav")][0][-1]  # its reason, in "error"


def test_sigkill_then_resume_gives_the_same_events(model_dir: Path, tmp_path: Path) -> None:
    write_recordings(tmp_path / "a", 40)
    reference = tmp_path / "reference.csv"
    detect(model_dir, [tmp_path / "a"], output=reference, workers=0)
    out = tmp_path / "killed.csv"
    _batch_faults.kill_part_way("detect", model_dir, tmp_path / "a", out, 9)  # header + 8 rows
    kept = len({r[0] for r in read_rows(out)})
    assert 4 <= kept < 40
    argv = ["-q", "detect", str(model_dir), str(tmp_path / "a"), "--output", str(out), "--resume"]
    assert main([*argv, "--workers", "1"]) == 0
    assert read_rows(out) == read_rows(reference)


@pytest.mark.parametrize("fmt", ["audacity", "json"])
def test_a_file_per_recording_and_its_resume(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.chdir(tmp_path)
    files = [p.relative_to(tmp_path) for p in write_recordings(tmp_path / "a", 5)]
    out = tmp_path / "events"
    first = detect(model_dir, files[:2], output=out, format=fmt, workers=0)
    assert (first.labelled, first.already) == (2, 0)
    again = detect(model_dir, files, output=out, format=fmt, workers=0, resume=True)
    assert (again.labelled, again.already) == (3, 2)
    predictor = escnet.load(model_dir)
    index = read_rows(out / INDEX_NAME, INDEX_COLUMNS)
    assert [r[0] for r in index] == sorted(map(str, files))
    for path, row in zip(sorted(files, key=str), index, strict=True):
        target = per_file_path(out, str(path), fmt)
        suffix = ".txt" if fmt == "audacity" else ".json"
        assert target == out / "a" / path.parent.name / (path.name + suffix)
        detection = predictor.detect_file(path)
        assert row[1] == str(target.relative_to(out)) and int(row[2]) == len(detection.events)
        if fmt == "audacity":  # an empty label track for a recording without events
            assert target.read_text() == audacity_labels(detection.events)
        else:
            written, expected = json.loads(target.read_text()), json.loads(json_text([detection]))
            assert [(e["onset"], e["label"]) for e in written[0]["events"]] == [
                (e["onset"], e["label"]) for e in expected[0]["events"]
            ]
    with pytest.raises(ParameterError, match="already exists; pass --resume"):
        detect(model_dir, files, output=out, format=fmt, workers=0)


def test_parquet_events_and_a_hung_decoder(model_dir: Path, tmp_path: Path) -> None:
    files = write_recordings(tmp_path / "a", 4)
    hang = files[0].with_name("hang-" + files[0].name)
    files[0].rename(hang)
    out = tmp_path / "events.parquet"
    summary = detect(
        model_dir, [tmp_path / "a"], output=out, workers=1, decode_timeout=3,
        decoder=_batch_faults.faulty_decoder,
    )  # fmt: skip
    assert "no progress for 3 s" in dict(summary.skipped)[str(hang)]
    table = pq.read_table(out)
    assert table.column_names == EVENT_COLUMNS
    assert str(table.schema.field("onset").type) == "double"
    assert sorted(set(table.column("file").to_pylist())) == sorted(map(str, [hang, *files[1:]]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["f.wav", "--workers", "1"], "--workers: an archive job writes --output"),
        (["f.wav", "--resume", "--output", "o.csv", "--plot", "p"], "--plot: not with an archive"),
        (["f.wav", "--output", "o.parquet", "--format", "json"], "a Parquet table holds"),
        (["--files-from", "x.txt", "--output", "o.csv"], "--files-from x.txt: cannot read"),
        ([], "no files to process"),
    ],
)
def test_cli_refuses_bad_archive_options(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["detect", str(model_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_reads_stdin_and_names_skips(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    files = write_recordings(tmp_path / "a", 2)
    gone = tmp_path / "vanished.wav"
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{files[0]}\n{gone}\n"))
    out = tmp_path / "events.csv"
    argv = ["detect", str(model_dir), str(files[1]), "--files-from", "-", "--output", str(out)]
    assert main([*argv, "--workers", "0"]) == 0
    assert {r[0] for r in read_rows(out)} == {str(files[1]), str(files[0]), str(gone)}
    err = capsys.readouterr().err
    assert "2 file(s) labelled, 1 skipped" in err and f"skipped {gone}: file not found" in err
