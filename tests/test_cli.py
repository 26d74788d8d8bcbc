from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tone
from escnet.cli import main


def test_info_and_datasets(tiny_esc50: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(tiny_esc50.parent)
    assert main(["--data-dir", data_dir, "info", "--dataset", "esc50"]) == 0
    out = capsys.readouterr().out
    assert "30 clips, 3 classes, 5 folds" in out
    assert main(["--data-dir", data_dir, "datasets"]) == 0
    assert "esc50" in capsys.readouterr().out


def test_prepare_reports_skipped_files(
    tiny_esc50: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = next((tiny_esc50 / "audio").glob("*.flac"))
    bad.write_bytes(b"")
    args = ["--data-dir", str(tiny_esc50.parent), "-q", "prepare", "--dataset", "esc50"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "29 of 30 clips ready" in out and "skipped 1 file" in out and bad.name in out
    assert main(args) == 0
    assert "29 from the cache" in capsys.readouterr().out


def test_spectrogram_png(tiny_esc50: Path, tmp_path: Path) -> None:
    wav = next((tiny_esc50 / "audio").glob("*.flac"))
    out = tmp_path / "spec.png"
    assert main(["spectrogram", str(wav), str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(tmp_path), "info", "--dataset", "esc50"]) == 2
    err = capsys.readouterr().err
    assert "escnet info: error:" in err and "escnet download esc50" in err


@pytest.mark.shared
def test_shared_info(shared_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(shared_datasets), "info", "--dataset", "esc10"]) == 0
    assert "400 clips, 10 classes, 5 folds" in capsys.readouterr().out


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; argparse's own refusals exit through SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _bad_input_cases(tmp: Path, esc50: Path) -> list[tuple[list[str], str]]:
    wav = next((esc50 / "audio").glob("*.flac"))
    folder = tmp / "folder"
    for cls in ("bird", "car"):
        (folder / cls).mkdir(parents=True)
        for i in range(6):
            (folder / cls / f"{cls}{i}.flac").write_bytes(wav.read_bytes())
    a_file = tmp / "a-file.txt"
    a_file.write_text("not a directory")
    (tmp / "empty-run").mkdir()
    truncated = tmp / "truncated.wav"
    sf.write(truncated, np.zeros(8000, np.float32) + 0.1, 8000)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    data = ["--data-dir", str(esc50.parent)]
    return [
        (["info", "--dataset", "folder", "--root", str(folder), "--group-pattern", "("],
         "--group-pattern '(' is not a valid regular expression"),
        (["info", "--dataset", "folder", "--root", str(folder), "--folds", "7-9"],
         "fold(s) [7, 8, 9] requested"),
        (["info", "--dataset", "esc50", "--num-folds", "3", *data], "--num-folds: only"),
        (["info", "--dataset", "esc50", "--folds", "0", *data], "--folds '0'"),
        (["spectrogram", str(wav), str(tmp / "o.png"), "--duration", "inf"], "--duration"),
        (["spectrogram", str(wav), str(tmp / "o.png"), "--duration", "nan"], "--duration"),
        (["spectrogram", str(wav), str(tmp / "o.png"), "--duration", "-1"], "--duration"),
        (["spectrogram", str(wav), str(tmp / "o.png"), "--duration", "1e12"], "--duration"),
        (["spectrogram", str(wav), str(tmp)], f"OUTPUT {tmp} is a directory"),
        (["spectrogram", str(wav), str(a_file / "o.png")], "OUTPUT"),
        (["spectrogram", str(tmp / "none.wav"), str(tmp / "o.png")], "none.wav: file not found"),
        (["spectrogram", str(tmp), str(tmp / "o.png")], "is a directory, not an audio file"),
        (["spectrogram", str(truncated), str(tmp / "o.png")], "truncated.wav: truncated"),
        (["evaluate", str(tmp / "no-such-run")], "does not exist"),
        (["evaluate", str(a_file)], "is a file"),
        (["evaluate", str(tmp / "empty-run")], "holds no config.json"),
        (["--cache-dir", str(a_file), "prepare", "--dataset", "esc50", *data],
         f"--cache-dir {a_file} is a file"),
        (["prepare", "--dataset", "esc50", "--cache-dir", str(a_file / "sub"), *data],
         "--cache-dir"),
        (["prepare", "--dataset", "esc50", "--workers", "0", *data], "--workers"),
        (["augment", "--dataset", "esc50", "--workers", "-2", *data], "--workers"),
        (["train", "--dataset", "esc50", "--run-dir", str(a_file), *data], "--run-dir"),
        (["train", "--dataset", "esc50", "--lr", "inf", *data], "--lr"),
        (["train", "--dataset", "esc50", "--workers", "-1", *data], "--workers"),
        (["augment-gallery", "--dataset", "esc50", "--clip", "x", "--out", str(tmp), *data],
         "--out"),
    ]  # fmt: skip


def test_bad_input_gets_one_line_naming_the_argument_and_exit_2(
    tiny_esc50: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, expected in _bad_input_cases(tmp_path / "bad", tiny_esc50):
        rc, out, err = _run(argv, capsys)
        assert rc == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert expected in err and "Traceback" not in err, (argv, err)
        assert err.startswith("escnet "), err


def test_global_options_are_accepted_after_the_command(
    tiny_esc50: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tiny_esc50.parent)
    rc, out, _ = _run(["info", "--dataset", "esc50", "--data-dir", data_dir, "-q"], capsys)
    assert rc == 0 and "30 clips" in out
    # After the command it overrides the one before it, as a later option does.
    rc, out, _ = _run(
        ["--data-dir", str(tmp_path), "info", "--dataset", "esc50", "--data-dir", data_dir], capsys
    )
    assert rc == 0 and "30 clips" in out
    cache = tmp_path / "cache-after"
    argv = ["prepare", "--dataset", "esc50", "--folds", "1", "--data-dir", data_dir]
    rc, out, _ = _run([*argv, "--cache-dir", str(cache), "-q"], capsys)
    assert rc == 0 and (cache / "features").is_dir()


def test_long_file_spectrogram_is_refused_unless_a_duration_picks_its_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("escnet.features.plotting.MAX_SPECTROGRAM_S", 1.0)
    long = tmp_path / "long.wav"
    sf.write(long, np.full(3 * 8000, 0.1, np.float32), 8000)
    rc, _, err = _run(["spectrogram", str(long), str(tmp_path / "o.png")], capsys)
    assert rc == 2 and "is 3 s long" in err and "pass --duration 1" in err
    rc, out, _ = _run(
        ["spectrogram", str(long), str(tmp_path / "o.png"), "--duration", "1"], capsys
    )
    assert rc == 0 and (tmp_path / "o.png").is_file()


def test_a_data_set_wide_command_goes_on_past_bad_clips_and_counts_them(
    tiny_esc50: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = sorted((tiny_esc50 / "audio").glob("*.flac"))
    clips[0].write_bytes(clips[0].read_bytes()[:100])  # truncated
    clips[1].unlink()
    clips[1].mkdir()  # a directory in its place
    clips[2].write_text("not audio\n" * 20)
    argv = ["-q", "prepare", "--dataset", "esc50", "--data-dir", str(tiny_esc50.parent)]
    rc, out, err = _run(argv, capsys)
    assert rc == 0 and "27 of 30 clips ready" in out and "skipped 3 file(s)" in out
    assert "is a directory" in out and "Traceback" not in err


def _write_partial_us8k(root: Path, folds: tuple[int, ...]) -> Path:
    """A US8K-shaped copy whose metadata lists all ten folds but which holds only ``folds``."""
    (root / "metadata").mkdir(parents=True)
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for fold in range(1, 11):
        for cls, freq in ((0, 300.0), (1, 2000.0)):
            for k in range(2):
                name = f"{fold}{cls}{k}-{cls}-0-{k}.wav"
                rows.append(f"{name},{fold}{cls}{k},0,1,1,{fold},{cls},{['hum', 'horn'][cls]}")
                if fold in folds:
                    (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
                    sf.write(root / "audio" / f"fold{fold}" / name, tone(freq, 0.5, 8000), 8000)
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_partial_us8k_copy_trains_on_the_folds_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _write_partial_us8k(tmp_path / "copy", (1, 2, 10))
    config = tmp_path / "small.json"  # short clips, one step per epoch: a few seconds
    config.write_text('{"clip_seconds": 0.5, "max_train_batches": 1}')
    train = ["-q", "train", "--config", str(config), "--dataset", "us8k", "--root", str(copy)]
    train += ["--model", "cnn7"]
    train += ["--augment", "none", "--epochs", "1", "--batch-size", "4", "--workers", "1"]
    train += ["--val-fraction", "0", "--device", "cpu"]
    rc, out, err = _run([*train, "--folds", "1,2,10", "--run-dir", str(tmp_path / "r")], capsys)
    assert rc == 0, err
    assert "accuracy over 3 fold(s)" in out
    for fold in (1, 2, 10):
        assert (tmp_path / "r" / f"fold{fold}").is_dir()
    # A test fold the copy lacks: the message names the folds it has, and they work (above).
    rc, _, err = _run([*train, "--folds", "3", "--run-dir", str(tmp_path / "r3")], capsys)
    assert rc == 2 and "[3] are not folds of us8k" in err and "has folds 1,2,10" in err


def test_python_dash_m_escnet_runs_the_command() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "escnet", "--help"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "predict" in done.stdout and "train" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "escnet", "train", "--epochs", "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """``escnet models | head``: the reader is gone before escnet writes; no "error: Broken
    pipe", no traceback, the status a shell gives SIGPIPE."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "escnet", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and err == ""


@pytest.mark.parametrize("command", [["models"], ["predict", "m", "f.wav"], ["train"]])
def test_an_unknown_option_is_named_by_its_sub_command(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--no-such-option", "1"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == (
        f"escnet {command[0]}: error: unrecognized arguments: --no-such-option 1 "
        f"(see escnet {command[0]} --help)\n"
    )
