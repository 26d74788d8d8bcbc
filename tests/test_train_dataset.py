"""Training takes a data set, as every other stage does: a folder's recordings stay whole on
every split (from the command line and from Python), the data set's options are saved in
``config.json``, and ``evaluate`` rebuilds the very split the run tested (clip ids compared)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from escnet.cli import main
from escnet.data.datasets import dataset_from_options, load_folder
from escnet.results.evaluate import evaluate_run
from escnet.training import TrainConfig, cross_validate

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import SOUND_CLASSES, _synth  # noqa: E402

#: ``hum3-2.wav`` is fragment 2 of recording ``hum3``.
GROUP_PATTERN = r"^(.+)-[0-9]+[.]"


def write_fragmented_folder(root: Path, recordings: int = 6, fragments: int = 3) -> Path:
    """Two classes, each of ``recordings`` recordings cut into ``fragments`` 1-s files."""
    rng = np.random.default_rng(0)
    for kind in SOUND_CLASSES[:2]:
        (root / kind).mkdir(parents=True)
        for r in range(recordings):
            for i in range(fragments):
                wave = _synth(kind, 8000, 1.0, rng)
                sf.write(root / kind / f"{kind}{r}-{i}.wav", wave, 8000)
    return root


def tiny_config(tmp_path: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "model": "tiny_test_cnn",
        "augment": "none",
        "epochs": 1,
        "batch_size": 8,
        "val_fraction": 0.2,
        "clip_seconds": 1.0,
        "workers": 0,
        "cache_dir": str(tmp_path / "cache"),
    }
    values.update(overrides)
    return TrainConfig.from_dict(values)  # type: ignore[arg-type]


def sides_of_groups(run: Path) -> dict[str, set[str]]:
    """Recording -> the sides (train, val, test) of every fold it was on."""
    sides: dict[str, set[str]] = {}
    for split_file in sorted(run.glob("fold*/split.json")):
        split = json.loads(split_file.read_text())
        for side in ("train", "val", "test"):
            for clip_id in split[side]:
                group = re.match(r"^(.+)-[0-9]+$", clip_id)
                assert group is not None, clip_id
                sides.setdefault(f"{split_file.parent.name}/{group.group(1)}", set()).add(side)
    return sides


def test_a_folder_keeps_its_recordings_whole_from_python(tmp_path: Path) -> None:
    root = write_fragmented_folder(tmp_path / "sounds")
    dataset = load_folder(root, group_pattern=GROUP_PATTERN, num_folds=3)
    run = tmp_path / "run"
    config = tiny_config(tmp_path, folds=[1, 2])
    results = cross_validate(config, run, dataset=dataset, progress=False)
    assert [f["test_fold"] for f in results["folds"]] == [1, 2]
    sides = sides_of_groups(run)
    assert sides and all(len(s) == 1 for s in sides.values()), sides
    saved = json.loads((run / "config.json").read_text())
    assert saved["dataset"] == "folder" and saved["root"] == str(root)
    assert saved["group_pattern"] == GROUP_PATTERN and saved["num_folds"] == 3
    # Each fold's tested clips are saved by id, and evaluate rebuilds the same split.
    tested = {f["test_fold"]: f["test_ids"] for f in results["folds"]}
    assert all(len(ids) == 12 for ids in tested.values())
    again = evaluate_run(run)
    assert again["matches_results"] is True
    assert {f["test_fold"]: f["test_ids"] for f in again["folds"]} == tested


def test_evaluate_says_differs_when_the_rebuilt_split_holds_other_clips(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_fragmented_folder(tmp_path / "sounds")
    run = tmp_path / "run"
    config = tiny_config(tmp_path, folds=[1])
    cross_validate(config, run, dataset=load_folder(root, group_pattern=GROUP_PATTERN))
    # The grouping lost: each file its own recording, other folds; the figures may even agree.
    path = run / "config.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "group_pattern": None}))
    with caplog.at_level("WARNING"):
        assert evaluate_run(run)["matches_results"] is False
    assert "hold other clips than the run tested" in caplog.text


def test_a_folder_keeps_its_recordings_whole_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_fragmented_folder(tmp_path / "sounds")
    run = tmp_path / "run"
    argv = ["--cache-dir", str(tmp_path / "cache"), "train", "--dataset", "folder"]
    argv += ["--root", str(root), "--group-pattern", GROUP_PATTERN, "--num-folds", "3"]
    argv += ["--model", "tiny_test_cnn", "--augment", "none", "--epochs", "1", "--workers", "0"]
    argv += ["--test-folds", "1,3", "--run-dir", str(run), "--quiet"]
    assert main(argv) == 0
    sides = sides_of_groups(run)
    assert sorted({k.split("/")[0] for k in sides}) == ["fold1", "fold3"]
    assert all(len(s) == 1 for s in sides.values()), sides
    saved = json.loads((run / "config.json").read_text())
    assert (saved["group_pattern"], saved["num_folds"], saved["folds"]) == (
        GROUP_PATTERN,
        3,
        [1, 3],
    )
    assert "each file is taken as its own recording" not in capsys.readouterr().err


def test_a_folder_without_grouping_trains_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = write_fragmented_folder(tmp_path / "sounds", recordings=3, fragments=2)
    argv = ["--cache-dir", str(tmp_path / "cache"), "train", "--dataset", "folder"]
    argv += ["--root", str(root), "--num-folds", "2", "--model", "tiny_test_cnn"]
    argv += ["--augment", "none", "--epochs", "1", "--workers", "0", "--folds", "1"]
    argv += ["--run-dir", str(tmp_path / "run"), "--quiet"]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [r.message for r in caplog.records if "its own recording" in r.message]
    assert len(lines) == 1 and "--group-pattern" in lines[0], err
    # The old spelling of the test folds still works, with one line saying what replaces it.
    deprecated = [line for line in err.splitlines() if "deprecated" in line]
    assert len(deprecated) == 1 and "--test-folds" in deprecated[0]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["folds"] == [1] and saved["group_pattern"] is None


def test_folder_only_options_are_refused_for_a_published_data_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(Exception, match="only --dataset folder takes this"):
        dataset_from_options("esc50", group_pattern="x")
    assert main(["train", "--dataset", "esc50", "--num-folds", "3", "--model", "cnn7"]) == 2
    assert "only --dataset folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["train", "--seed", "99999999999999999999"], "--seed"),
        (["train", "--batch-size", "1000000000000"], "--batch-size"),
        (["train", "--run-dir", ""], "--run-dir"),
        (["train", "--root", ""], "--root"),
        (["info", "--dataset", "folder", "--root", ""], "--root"),
    ],
)
def test_absurd_options_are_refused_in_one_line(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and named in err[-1], err


def test_every_train_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--epochs", "--batch-size", "--weight-decay", "--warmup-epochs"):
        assert re.search(rf"{option} \S+\s+\S", text), option
    for option in ("--label-smoothing", "--early-stopping-patience", "--seed"):
        assert re.search(rf"{option} \S+\s+\S", text), option
    for option in ("--group-pattern", "--folds-csv", "--num-folds", "--test-folds"):
        assert option in text
