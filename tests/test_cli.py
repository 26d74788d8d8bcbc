from __future__ import annotations

from pathlib import Path

import pytest

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
