"""Prediction: escnet.load, windows, streaming of long files, and `escnet predict`."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
import escnet  # noqa: E402
from _inference_helpers import (  # noqa: E402
    CLASSES,
    CLIP_SECONDS,
    SAMPLE_RATE,
    synth,
    three_segment_signal,
    train_tiny_model,
)
from escnet.cli import main  # noqa: E402
from escnet.data.audio import AudioConfig, load_audio  # noqa: E402
from escnet.inference import Predictor  # noqa: E402
from escnet.inference.stream import (  # noqa: E402
    Windower,
    iter_blocks,
    window_count,
    window_starts,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Iterator[Predictor]:
    import torch

    # One thread: the tiny model gains nothing from more, and on a busy shared CPU extra
    # threads wait on each other (6x slower measured); put the setting back afterwards.
    threads = torch.get_num_threads()
    yield escnet.load(model_dir, threads=1)
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def test_window_starts_cover_the_recording() -> None:
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]  # the last one ends at the end
    assert window_starts(4, 4, 2) == [0]
    assert window_starts(1, 4, 2) == [0]
    # an Opus 5-s clip decodes to 5.001 s: one window, not a second that repeats the first
    assert window_starts(160_032, 160_000, 80_000) == [0]
    assert window_starts(160_000 + 1601, 160_000, 80_000) == [0, 1601]  # 50 ms: covered
    with pytest.raises(ValueError, match="hop"):
        window_starts(10, 4, 0)


def test_windower_matches_window_starts_for_any_blocks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        # windows of up to 400 samples: a tail of up to 1 % (tail_slack) gets no window
        total, window, hop = (int(v) for v in rng.integers((1, 1, 1), (1500, 400, 400)))
        x = np.arange(1, total + 1, dtype=np.float32)
        w = Windower(window, hop)
        got: list[tuple[int, np.ndarray]] = []
        i = 0
        while i < total:
            n = int(rng.integers(1, 150))
            got += w.push(x[i : i + n])
            i += n
        got += w.finish()
        assert [s for s, _ in got] == window_starts(total, window, hop)
        assert len(got) == window_count(total, window, hop)
        for start, samples in got:
            expected = np.zeros(window, np.float32)
            part = x[start : start + window]
            expected[: part.size] = part  # zero-padded only when the recording is shorter
            np.testing.assert_array_equal(samples, expected)


def test_streamed_resampling_equals_whole_file_loading(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "x.wav"
    sf.write(
        path, rng.uniform(-0.5, 0.5, (44100 * 3 + 17, 2)).astype(np.float32), 44100, subtype="FLOAT"
    )
    streamed = np.concatenate(list(iter_blocks(path, 8000, block_seconds=0.37)))
    whole = load_audio(path, AudioConfig(sample_rate=8000, duration=None))
    np.testing.assert_array_equal(streamed, whole)


# --------------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------------


def test_clean_examples_get_their_class(predictor: Predictor, tmp_path: Path) -> None:
    assert predictor.classes == list(CLASSES)
    rng = np.random.default_rng(7)
    for kind in CLASSES:
        for sr in (8000, 16000, 44100):
            assert predictor.predict(synth(kind, CLIP_SECONDS, sr, rng), sr).label == kind
        stereo = np.stack([synth(kind, 0.8, 22050, rng)] * 2, axis=1)
        path = tmp_path / f"{kind}.flac"
        sf.write(path, stereo, 22050)
        prediction = predictor.predict_file(path)
        assert prediction.label == kind
        assert prediction.source == str(path) and len(prediction.windows) == 1
        assert prediction.top_k(1)[0][0] == kind
        assert abs(sum(p for _, p in prediction.top_k(3)) - 1.0) < 1e-5


def test_short_clip_is_padded_as_training_padded(
    predictor: Predictor, model_dir: Path, tmp_path: Path
) -> None:
    import torch

    from escnet.model_dir.io import load_model

    path = tmp_path / "short.wav"
    sf.write(path, synth("high_tone", 0.4, 16000, np.random.default_rng(3)), 16000)
    prediction = predictor.predict_file(path)
    assert prediction.duration == pytest.approx(0.4)
    assert (prediction.windows[0].start, prediction.windows[0].end) == (0.0, pytest.approx(0.4))
    loaded = load_model(model_dir)
    # Training's path: load_audio pads with zeros at the end to the clip length.
    clip = load_audio(path, AudioConfig(sample_rate=SAMPLE_RATE, duration=CLIP_SECONDS))
    expected = loaded.probabilities(torch.from_numpy(clip[None])).numpy()[0]
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)


def test_three_segment_file_labels_change_at_the_boundaries(
    predictor: Predictor, tmp_path: Path
) -> None:
    sr = 16000
    path = tmp_path / "three.wav"
    sf.write(path, three_segment_signal(sr, 20.0), sr)
    prediction = predictor.predict_file(path)
    hop = predictor.hop
    assert prediction.duration == pytest.approx(60.0)
    assert (predictor.window, hop) == (CLIP_SECONDS, CLIP_SECONDS / 2)  # the model's defaults
    assert len(prediction.windows) == len(window_starts(60 * SAMPLE_RATE, SAMPLE_RATE, 4000))
    labels = prediction.window_labels()
    for window, label in zip(prediction.windows, labels, strict=True):
        segment = int(window.start // 20.0)
        if window.end <= 20.0 * (segment + 1):  # wholly inside one segment
            assert label == CLASSES[segment], (window.start, label)
    changes = [
        (w.start + w.end) / 2
        for w, before, after in zip(prediction.windows[1:], labels, labels[1:], strict=False)
        if after != before
    ]
    assert len(changes) == 2
    for centre, boundary in zip(changes, (20.0, 40.0), strict=True):
        assert abs(centre - boundary) <= hop
    # The file's label is the mean of its windows; the segments are equally long.
    assert sorted(dict(prediction.top_k(3))) == sorted(CLASSES)
    other = predictor.predict_file(path, window=2.0, hop=1.0, aggregate="max")
    assert len(other.windows) == 59 and other.aggregate == "max"
    assert all(
        other.probabilities >= np.stack([w.probabilities for w in other.windows]).max(0) - 1e-7
    )


@pytest.mark.slow
def test_hour_long_file_is_streamed_in_bounded_memory(predictor: Predictor, tmp_path: Path) -> None:
    sr = 16000  # resampled to the model's 8 kHz on the way
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(11)
    minutes = {kind: synth(kind, 60.0, sr, rng) for kind in CLASSES}
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for minute in range(60):  # written a minute at a time: 20 min of each class
            f.write(minutes[CLASSES[minute // 20]])
    del minutes
    # Held in memory at once, the hour would be 3600 * 8000 * 4 bytes = 115 MB at the model's
    # rate (230 MB decoded at the file's); streamed, the process needs a few blocks.
    bound = 16 * 1024 * 1024  # measured: 3.4 MiB
    tracemalloc.start()
    try:
        prediction = predictor.predict_file(path, hop=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < bound, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert prediction.duration == pytest.approx(3600.0)
    assert len(prediction.windows) == 3600
    labels = prediction.window_labels()
    for minute in (5, 30, 55):
        assert labels[minute * 60] == CLASSES[minute // 20]


# --------------------------------------------------------------------------------------------
# escnet predict
# --------------------------------------------------------------------------------------------


def _recordings(root: Path) -> Path:
    rng = np.random.default_rng(5)
    (root / "sub").mkdir(parents=True)
    sf.write(root / "low.wav", synth("low_tone", 1.0, 16000, rng), 16000)
    sf.write(root / "sub" / "noise.FLAC", synth("noise", 0.7, 22050, rng), 22050)
    sf.write(root / "sub" / "long.ogg", three_segment_signal(16000, 3.0), 16000)
    (root / "sub" / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    (root / "notes.txt").write_text("not audio, not looked at")
    return root


def test_cli_predict_table_skips_broken_files(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _recordings(tmp_path / "rec")
    assert main(["-q", "predict", str(model_dir), str(root), "--top-k", "2"]) == 0
    out, err = capsys.readouterr()
    assert "low.wav" in out and "noise.FLAC" in out and "long.ogg" in out
    assert "notes.txt" not in out + err
    assert "broken.wav" in err and "3 of 4 file(s) labelled, 1 skipped" in err
    assert "(9.00 s, 17 windows, mean over windows)" in out


def test_cli_predict_json_and_csv(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _recordings(tmp_path / "rec")
    args = ["-q", "predict", str(model_dir), str(root / "low.wav"), str(root / "sub" / "long.ogg")]
    assert main([*args, "--format", "json", "--top-k", "1"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [Path(i["source"]).name for i in items] == ["low.wav", "long.ogg"]
    assert items[0]["top_k"][0]["label"] == "low_tone" and "windows" not in items[0]
    assert [w["top_k"][0]["label"] for w in items[1]["windows"]][::8] == list(CLASSES)
    assert main([*args, "--format", "csv", "--aggregate", "max", "--hop", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["scope"] for r in rows} == {"file", "window"}
    assert sum(r["scope"] == "window" for r in rows) == 9 * 3  # 9 windows of 1 s, top 3


def test_cli_predict_errors_are_one_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(model_dir), str(empty)]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), str(empty)]) == 2
    err = capsys.readouterr().err
    assert "neither a model directory" in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"nope")
    assert main(["predict", str(model_dir), str(broken)]) == 2  # nothing could be labelled
    assert "skipped" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Bounds: windows, hops, batches, threads; silence
# --------------------------------------------------------------------------------------------


def test_window_hop_batch_and_threads_are_bounded(predictor: Predictor, model_dir: Path) -> None:
    from escnet.machine import usable_cores

    for window, hop in ((float("inf"), None), (1e9, None), (float("nan"), None), (None, 1e9)):
        with pytest.raises(ValueError, match=r"must be a number of seconds in \(0, 600\]"):
            predictor.predict(np.ones(8000, np.float32), 8000, window=window, hop=hop)
    with pytest.raises(ValueError, match="hop 0.001 s is under 1/100 of the 1-s window"):
        predictor.predict(np.ones(8000, np.float32), 8000, hop=0.001)
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        escnet.load(model_dir, threads=usable_cores() + 1)
    with pytest.raises(ValueError, match="batch_size must be in 1..256"):
        escnet.load(model_dir, batch_size=100_000)


def test_a_small_hop_keeps_memory_flat(model_dir: Path, tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    small_hop = escnet.load(model_dir, threads=1, batch_size=64)
    path = tmp_path / "half-minute.wav"
    sf.write(path, synth("noise", 30.0, 8000, np.random.default_rng(12)), 8000)
    # 2900 windows of 8000 samples: copied one by one (as before), a 10-s block's 1000 windows
    # alone were 32 MB; as views of the block they cost nothing.
    bound = 12 * 1024 * 1024
    tracemalloc.start()
    try:
        prediction = small_hop.predict_file(path, hop=0.01)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        torch.set_num_threads(threads)
    assert len(prediction.windows) == 2901
    assert peak < bound, f"peak traced memory {peak / 2**20:.1f} MiB"


def test_too_many_windows_are_refused_before_decoding(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escnet.errors import AudioError

    monkeypatch.setattr("escnet.inference.predictor.MAX_WINDOWS", 100)
    path = tmp_path / "minute.wav"
    sf.write(path, synth("noise", 60.0, 8000, np.random.default_rng(13)), 8000)
    decoded: list[int] = []
    real = sf.SoundFile.read
    monkeypatch.setattr(
        sf.SoundFile, "read", lambda self, *a, **k: decoded.append(1) or real(self, *a, **k)
    )
    with pytest.raises(AudioError, match="60 s at a 0.1-s hop gives 591 windows, more than the"):
        predictor.predict_file(path, hop=0.1)
    assert decoded == []  # refused from the header
    with pytest.raises(ValueError, match="more than the 100"):
        predictor.predict(np.ones(60 * 8000, np.float32), 8000, hop=0.1)
    # The hop the message proposes works.
    with pytest.raises(AudioError) as info:
        predictor.predict_file(path, hop=0.1)
    hop = float(info.value.reason.split("pass a hop of ")[1].split(" s")[0])
    assert len(predictor.predict_file(path, hop=hop).windows) <= 100


def test_a_silent_recording_is_labelled_with_a_warning(
    predictor: Predictor, tmp_path: Path
) -> None:
    from escnet.inference.results import SILENT_WARNING

    path = tmp_path / "silent.flac"
    sf.write(path, np.zeros(5 * 16000, np.float32), 16000)
    prediction = predictor.predict_file(path)
    assert prediction.warnings == [SILENT_WARNING]
    assert prediction.to_dict()["warnings"] == [SILENT_WARNING]
    assert predictor.predict(np.zeros(8000, np.float32), 8000).warnings == [SILENT_WARNING]
    sound = predictor.predict(synth("noise", 1.0, 8000, np.random.default_rng(1)), 8000)
    assert sound.warnings == [] and "warnings" not in sound.to_dict()


# --------------------------------------------------------------------------------------------
# escnet predict under bad options and bad files
# --------------------------------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI in-process; argparse's refusals exit through SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_predict_bad_options_are_one_line_exit_2(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "x.wav"
    sf.write(wav, synth("noise", 3.0, 8000, np.random.default_rng(2)), 8000)
    base = ["predict", str(model_dir), str(wav)]
    cases = [
        (["--window", "inf"], "argument --window: expected a number of seconds in (0, 600]"),
        (["--hop", "inf"], "argument --hop: expected a number of seconds in (0, 600]"),
        (["--window", "1e9"], "argument --window"),
        (["--hop", "nan"], "argument --hop"),
        (["--hop", "0.001"], "hop 0.001 s is under 1/100 of the 1-s window"),
        (["--threads", "100000"], "argument --threads: expected a whole number in 1.."),
        (["--backend", "onnx", "--threads", "100000"], "argument --threads"),
        (["--batch-size", "100000"], "argument --batch-size: expected a whole number in 1..256"),
        (["--top-k", "0"], "argument --top-k"),
    ]
    for extra, expected in cases:
        rc, out, err = _run([*base, *extra], capsys)
        assert rc == 2 and out == "", (extra, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (extra, err)
        assert err.startswith("escnet predict: error: ") and expected in err, (extra, err)


def test_cli_predict_names_counts_and_skips_every_bad_file(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import bad_audio_files

    folder = tmp_path / "folder"
    bad = bad_audio_files(folder)
    good = folder / "good.wav"
    sf.write(good, synth("low_tone", 1.0, 8000, np.random.default_rng(3)), 8000)
    rc, out, err = _run(["-q", "predict", str(model_dir), str(folder), "--format", "json"], capsys)
    assert rc == 0, err
    items = {Path(i["source"]).name: i for i in json.loads(out)}
    assert len(items) == 8 and items["good.wav"]["top_k"][0]["label"] == "low_tone"
    assert "1 of 8 file(s) labelled, 7 skipped" in err  # the dangling link counted too
    for path in bad.values():
        reason = items[path.name]["error"]
        assert f"escnet predict: skipped {path}: {reason}" in err
        # escnet spectrogram refuses the same file in the same words.
        rc, _, spec_err = _run(["spectrogram", str(path), str(tmp_path / "o.png")], capsys)
        assert rc == 2 and spec_err == f"escnet spectrogram: error: {path}: {reason}\n"
    # A dangling link named on the command line is skipped too; the good file is labelled.
    argv = ["-q", "predict", str(model_dir), str(bad["dangling"]), str(good)]
    rc, out, err = _run([*argv, "--format", "labels"], capsys)
    assert rc == 0 and out == f"{good}\tlow_tone\n" and "1 of 2 file(s) labelled" in err
    rc, out, err = _run([*argv, "--format", "csv", "--strict"], capsys)
    assert rc == 2 and "(--strict: exit status 2)" in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["file"] == str(bad["dangling"]) and "dangling symbolic link" in rows[0]["error"]
    assert rows[1]["file"] == str(good) and rows[1]["error"] == "" and rows[1]["label"]


def test_cli_predict_warns_of_silence_and_shows_progress_in_seconds(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from escnet.inference.results import SILENT_WARNING

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(5 * 8000, np.float32), 8000)
    rc, out, err = _run(["-q", "predict", str(model_dir), str(silent), "--format", "json"], capsys)
    assert rc == 0 and json.loads(out)[0]["warnings"] == [SILENT_WARNING]
    assert f"escnet predict: warning: {silent}: {SILENT_WARNING}" in err
    rc, out, err = _run(["-q", "predict", str(model_dir), str(silent)], capsys)
    assert rc == 0 and f"warning: {silent}: the recording is completely silent" in err
    long = tmp_path / "long.wav"
    sf.write(long, synth("noise", 130.0, 8000, np.random.default_rng(4)), 8000)
    rc, _, err = _run(["predict", str(model_dir), str(long), "--hop", "1"], capsys)
    assert rc == 0 and re.search(r"\| \d+\.\d/130\.0 s \[", err), err[-300:]
    assert not re.search(r"\d\.\d{3,}", err) and " s/s" not in err  # no raw float sums


def test_cli_predict_escapes_control_characters_in_names(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newline in a file name must not split a row of the one-line-per-file output, nor a
    right-to-left override (U+202E) reorder the terminal's text; CSV and JSON keep the name
    exactly, quoted."""
    folder = tmp_path / "names"
    folder.mkdir()
    names = ["new\nline.wav", "evil\u202evaw.wav", "bell\x07\x1b[31m.wav"]
    for name in names:
        sf.write(folder / name, synth("noise", 1.0, 8000, np.random.default_rng(1)), 8000)
    rc, out, err = _run(
        ["-q", "predict", str(model_dir), str(folder), "--format", "labels"], capsys
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3, lines  # one row per file
    assert f"{folder}/bell\\x07\\x1b[31m.wav\tnoise" in lines
    assert f"{folder}/evil\\u202evaw.wav\tnoise" in lines
    assert f"{folder}/new\\nline.wav\tnoise" in lines
    assert not any(c in out for c in "\u202e\x07\x1b")
    rc, out, _ = _run(["-q", "predict", str(model_dir), str(folder)], capsys)  # the table
    assert rc == 0 and not any(c in out for c in "\u202e\x07\x1b")
    assert sum(line.startswith(str(folder)) for line in out.splitlines()) == 3
    rc, out, _ = _run(["-q", "predict", str(model_dir), str(folder), "--format", "csv"], capsys)
    files = {row["file"] for row in csv.DictReader(io.StringIO(out))}
    assert files == {str(folder / name) for name in names}
    rc, out, _ = _run(["-q", "predict", str(model_dir), str(folder), "--format", "json"], capsys)
    assert {item["source"] for item in json.loads(out)} == {str(folder / n) for n in names}
    assert "\u202e" not in out  # JSON escapes it


def test_cli_predict_names_and_counts_a_fifo_in_a_folder(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    folder = tmp_path / "with-fifo"
    folder.mkdir()
    os.mkfifo(folder / "pipe.wav")  # opening it would block: it must be refused unopened
    good = folder / "good.wav"
    sf.write(good, synth("high_tone", 1.0, 8000, np.random.default_rng(2)), 8000)
    rc, out, err = _run(
        ["-q", "predict", str(model_dir), str(folder), "--format", "labels"], capsys
    )
    assert rc == 0 and out == f"{good}\thigh_tone\n", err
    assert f"skipped {folder / 'pipe.wav'}: is not a regular file (a device, pipe or socket)" in err
    assert "1 of 2 file(s) labelled, 1 skipped" in err
