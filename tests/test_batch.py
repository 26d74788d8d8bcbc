"""Archive labelling (escnet.batch): the table, resume after SIGKILL, faults, the CLI options."""

from __future__ import annotations

import csv
import errno
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
import _batch_faults  # noqa: E402
import escnet  # noqa: E402
from _inference_helpers import CLASSES, synth, train_tiny_model  # noqa: E402
from escnet.batch import OutputError, Table, iter_files, label, prediction_columns  # noqa: E402
from escnet.batch import table as table_module  # noqa: E402
from escnet.cli import main  # noqa: E402
from escnet.errors import ParameterError  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_archive(root: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` clips of the tiny model's classes in two folders, at several rates, lengths
    and channel counts (so that windows of short and long files mix in batches)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        kind = CLASSES[i % len(CLASSES)]
        sr = (8000, 16000, 22050)[i % 3]
        seconds = (0.6, 1.0, 2.5)[(i // 3) % 3]
        y = synth(kind, seconds, sr, rng)
        if i % 4 == 0:
            y = np.stack([y, y * 0.5], axis=1)
        path = root / f"part{i % 2}" / f"{kind}-{i:03d}.{('wav', 'flac')[i % 2]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, sr)
        paths.append(path)
    return paths


def read_table(path: Path) -> list[list[str]]:
    """The data rows of a CSV table, sorted by file (rows come in the order files finish)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == prediction_columns(len(rows[0]) // 2 - 2)
    return sorted(rows[1:])


def test_table_matches_predict_file(model_dir: Path, tmp_path: Path) -> None:
    files = write_archive(tmp_path / "a", 12)
    (tmp_path / "a" / "part0" / "notes.wav").write_text("not audio")
    out = tmp_path / "labels.csv"
    summary = label(model_dir, [tmp_path / "a"], output=out, workers=2, top_k=2)
    assert (summary.labelled, summary.skip_count) == (12, 1)
    assert summary.skipped[0][0].endswith("notes.wav")
    rows = {r[0]: r for r in read_table(out)}
    assert rows[str(tmp_path / "a" / "part0" / "notes.wav")][-1]  # its reason, in "error"
    predictor = escnet.load(model_dir)
    for path in files:
        row = rows[str(path)]
        expected = predictor.predict_file(path).to_dict(2)
        assert float(row[1]) == expected["duration"]
        assert row[3] == expected["top_k"][0]["label"]
        assert float(row[4]) == pytest.approx(expected["top_k"][0]["probability"], abs=2e-6)
        assert row[-1] == ""


def test_sigkill_then_resume_gives_the_uninterrupted_table(model_dir: Path, tmp_path: Path) -> None:
    write_archive(tmp_path / "a", 60)
    reference = tmp_path / "reference.csv"
    label(model_dir, [tmp_path / "a"], output=reference, workers=0)
    out = tmp_path / "killed.csv"
    _batch_faults.kill_part_way("label", model_dir, tmp_path / "a", out, 11)  # header + 10 files
    kept = out.read_bytes().count(b"\n") - 1
    assert 10 <= kept < 60
    assert main(["-q", "predict", str(model_dir), str(tmp_path / "a"), "--output", str(out),
                 "--resume", "--workers", "1"]) == 0  # fmt: skip
    assert read_table(out) == read_table(reference)


def test_parquet_table_and_its_resume(model_dir: Path, tmp_path: Path) -> None:
    files = write_archive(tmp_path / "a", 6)
    out = tmp_path / "labels.parquet"
    label(model_dir, files[:4], output=out, workers=0)
    assert not out.with_name(out.name + ".journal.csv").exists()
    summary = label(model_dir, files, output=out, workers=0, resume=True)
    assert (summary.already, summary.labelled) == (4, 2)
    table = pq.read_table(out)
    assert table.column_names == prediction_columns(3)
    assert sorted(table.column("file").to_pylist()) == sorted(map(str, files))
    assert str(table.schema.field("probability_1").type) == "double"
    csv_out = tmp_path / "labels.csv"
    label(model_dir, files, output=csv_out, workers=0)
    by_file = {r[0]: r for r in read_table(csv_out)}
    for row in table.to_pylist():
        assert row["label_1"] == by_file[row["file"]][3]


def test_existing_output_and_other_columns_are_refused(model_dir: Path, tmp_path: Path) -> None:
    files = write_archive(tmp_path / "a", 2)
    out = tmp_path / "labels.csv"
    label(model_dir, files, output=out, workers=0)
    with pytest.raises(ParameterError, match="already exists; pass --resume"):
        label(model_dir, files, output=out, workers=0)
    with pytest.raises(ParameterError, match="--top-k"):
        label(model_dir, files, output=out, workers=0, resume=True, top_k=1)


def test_resume_drops_a_line_cut_short(model_dir: Path, tmp_path: Path) -> None:
    files = write_archive(tmp_path / "a", 3)
    out = tmp_path / "labels.csv"
    label(model_dir, files, output=out, workers=0)
    whole = read_table(out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][:9])  # a kill in the middle of a write
    summary = label(model_dir, files, output=out, workers=0, resume=True)
    assert (summary.already, summary.labelled) == (1, 2)
    assert read_table(out) == whole


def test_hung_decoder_and_crashed_worker_are_skipped(model_dir: Path, tmp_path: Path) -> None:
    files = write_archive(tmp_path / "a", 6)
    hang = files[0].with_name("hang-" + files[0].name)
    crash = files[1].with_name("crash-" + files[1].name)
    files[0].rename(hang)
    files[1].rename(crash)
    gone = tmp_path / "a" / "vanished.wav"  # listed, then gone before it is decoded
    out = tmp_path / "labels.csv"
    summary = label(
        model_dir, [tmp_path / "a", gone], output=out, workers=2, decode_timeout=3,
        decoder=_batch_faults.faulty_decoder,
    )  # fmt: skip
    reasons = dict(summary.skipped)
    assert "no progress for 3 s" in reasons[str(hang)]
    assert "worker died on it (signal SIGKILL)" in reasons[str(crash)]
    assert reasons[str(gone)] == "file not found"
    assert (summary.labelled, summary.skip_count, summary.restarts) == (4, 3, 2)
    assert len(read_table(out)) == 7


def test_full_disk_keeps_the_rows_written(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_archive(tmp_path / "a", 5)
    out = tmp_path / "labels.csv"
    real_write = os.write
    calls = {"n": 0}

    def write(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 4:  # the header, two rows, then half a row and a full disk
            real_write(fd, bytes(data)[:5])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(table_module.os, "write", write)
    with pytest.raises(OutputError, match="the disk is full.*2 file.*--resume"):
        label(model_dir, files, output=out, workers=0)
    assert out.read_bytes().endswith(b"\n") and len(read_table(out)) == 2
    monkeypatch.setattr(table_module.os, "write", real_write)
    summary = label(model_dir, files, output=out, workers=0, resume=True)
    assert (summary.already, summary.labelled) == (2, 3)
    assert len(read_table(out)) == 5


def test_table_done_looks_names_up(tmp_path: Path) -> None:
    t = Table(tmp_path / "t.csv", ["file", "error"])
    t.write([{"file": 'odd, "name".wav', "error": "x"}])
    t.close()
    again = Table(tmp_path / "t.csv", ["file", "error"], resume=True)
    assert again.done('odd, "name".wav') and not again.done("other.wav")
    again.close()


def test_files_from_a_list_and_stdin(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = write_archive(tmp_path / "a", 4)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{files[0]}\n\n{files[1]}\n")
    assert list(iter_files([files[2]], listing)) == [str(files[2]), str(files[0]), str(files[1])]
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{files[3]}\n"))
    out = tmp_path / "labels.csv"
    assert main(["predict", str(model_dir), "--files-from", "-", "--output", str(out),
                 "--workers", "0"]) == 0  # fmt: skip
    assert [r[0] for r in read_table(out)] == [str(files[3])]
    assert "1 file(s) labelled, 0 skipped" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume"], "--resume: only a job with --output FILE takes this"),
        (["--files-from", "x.txt", "--output", "o.csv"], "--files-from x.txt: cannot read"),
        (["f.wav", "--output", "o.csv", "--format", "json"], "--format: with --output"),
    ],
)
def test_cli_refuses_bad_archive_options(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(model_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ray_without_ray_says_how_to_install(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = write_archive(tmp_path / "a", 1)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were absent
    argv = ["predict", str(model_dir), str(files[0]), "--output", str(tmp_path / "o.csv"), "--ray"]
    assert main(argv) == 2
    assert "pip install 'escnet[distributed]'" in capsys.readouterr().err


def test_memory_does_not_grow_with_the_number_of_files(model_dir: Path, tmp_path: Path) -> None:
    import tracemalloc

    predictor = escnet.load(model_dir)
    peaks = []
    clip = np.stack([synth("noise", 2.5, 22050, np.random.default_rng(0))] * 2, axis=1)
    for count in (8, 48):
        root = tmp_path / f"a{count}"
        root.mkdir()
        for i in range(count):  # the same file each time: only their number changes
            sf.write(root / f"{i:03d}.flac", clip, 22050)
        label(predictor, [root], output=tmp_path / f"{count}.csv", workers=0)  # warm-up
        tracemalloc.start()
        label(predictor, [root], output=tmp_path / f"{count}-again.csv", workers=0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0], peaks  # six times the files, about the same peak


def test_a_file_sent_to_a_worker_that_just_died_goes_to_its_replacement(tmp_path: Path) -> None:
    # The race a pool must survive: a worker dies on one file while the job is giving it the next.
    from escnet.batch.workers import DecoderPool

    files = write_archive(tmp_path / "a", 2)
    crash = files[0].with_name("crash-" + files[0].name)
    files[0].rename(crash)
    pool = DecoderPool(1, 16000, decoder=_batch_faults.faulty_decoder, depth=2)
    try:
        pool.submit(0, str(crash))
        process = pool._workers[0].process
        process.join(timeout=30)
        assert not process.is_alive()
        pool.submit(1, str(files[1]))  # into a broken pipe: must not raise
        finished: dict[int, str] = {}
        deadline = time.monotonic() + 60
        while len(finished) < 2 and time.monotonic() < deadline:
            for key, event in pool.poll(0.5):
                if event[0] in ("end", "error"):
                    finished[key] = event[0]
        assert finished == {0: "error", 1: "end"}
        assert pool.restarts == 1
    finally:
        pool.close()
