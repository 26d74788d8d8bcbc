"""Bad input to training gets one line and exit status 2, never a traceback, and a run never
writes beside its data: a diverged run, a one-fold refit, a refit into a run, a corrupt
``best.pt``, a run directory inside the data set."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from escnet.cli import main
from escnet.models.mobilenet_audioset import MobileNetAudioSet

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import write_sound_classes  # noqa: E402
from conftest import write_esc50  # noqa: E402


@pytest.fixture
def sounds(tmp_path: Path) -> Path:
    """ESC-50's layout, 3 classes x 5 folds x 2 clips of 1 s, as ``--data-dir``."""
    write_sound_classes(tmp_path / "data" / "esc50", per_fold=2)
    return tmp_path / "data"


def tiny_train(data: Path, run: Path, *extra: str) -> list[str]:
    argv = ["--data-dir", str(data), "train", "--dataset", "esc50", "--model", "tiny_test_cnn"]
    argv += ["--augment", "none", "--epochs", "1", "--workers", "0", "--test-folds", "1"]
    return [*argv, "--run-dir", str(run), "-q", *extra]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_a_diverged_training_says_so_in_one_line(
    tmp_path: Path, sounds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(tiny_train(sounds, tmp_path / "run", "--lr", "1e30")) == 2
    out = capsys.readouterr()
    assert "loss not finite (diverged)" in out.out
    line = [x for x in out.err.splitlines() if "error:" in x]
    assert len(line) == 1 and "diverged" in line[0] and "lower --lr" in line[0]


def test_a_run_directory_inside_the_data_set_is_refused_before_any_work(
    tmp_path: Path, sounds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = sounds / "esc50" / "audio" / "run"
    assert main(tiny_train(sounds, inside)) == 2
    assert "inside the data set's directory" in one_error_line(capsys)
    assert not inside.exists()


def test_evaluate_of_a_corrupt_best_checkpoint_is_one_line(
    tmp_path: Path, sounds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(tiny_train(sounds, run)) == 0
    # A run from before model directories: evaluate rebuilds fold1/model from best.pt.
    shutil.rmtree(run / "fold1" / "model")
    (run / "fold1" / "best.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["--data-dir", str(sounds), "evaluate", str(run)]) == 2
    line = one_error_line(capsys)
    assert "best.pt: not a checkpoint escnet can read" in line


def test_refit_of_a_one_fold_probe_run_and_refit_into_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "mn04_stand_in.pt"
    torch.save(MobileNetAudioSet().state_dict(), weights)
    monkeypatch.setattr("escnet.models.weights.fetch_weights", lambda *a, **k: weights)
    monkeypatch.setattr("escnet.models.probe.fetch_weights", lambda *a, **k: weights)
    write_esc50(tmp_path / "data" / "esc50", classes=3, per_fold=3, seconds=1.0)
    run = tmp_path / "run"
    argv = ["--data-dir", str(tmp_path / "data"), "train", "--method", "probe", "--model"]
    argv += ["mn04_as", "--augment", "none", "--test-folds", "1", "--run-dir", str(run), "-q"]
    assert main([*argv, "--refit"]) == 0
    out = capsys.readouterr().out
    assert "final model:" in out and "cross-validated accuracy" in out and "+-" not in out
    # refit --out into a run directory would make `predict RUN` load the refit, not the run.
    assert main(["refit", str(run), "--out", str(run)]) == 2
    assert "holds a run or an ensemble" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exit_:
        main(["refit", str(run), "--out", ""])
    assert exit_.value.code == 2 and "--out: an empty path" in capsys.readouterr().err
