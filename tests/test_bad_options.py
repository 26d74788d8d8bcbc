"""Options and model files that were accepted silently or ended in a traceback: each is now one
line naming the argument or the file, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from escnet.cli import main
from escnet.model_dir.io import save_model
from escnet.models import create_model


def _model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("cnn7", 2).eval()
    return save_model(tmp_path / "model", model, ["a", "b"], clip_seconds=1.0)


@pytest.mark.parametrize(
    ("classes", "num_classes"),
    [(12345, 2), ("ab", 2), ([1, 2], 2), (["a", "b"], "2"), (["a", "b"], True)],
)
def test_a_model_json_with_malformed_classes_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], classes: object, num_classes: object
) -> None:
    path = _model(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    meta["classes"], meta["num_classes"] = classes, num_classes
    (path / "model.json").write_text(json.dumps(meta))
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    assert main(["predict", str(path), str(wav)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.json" in err[0] and "Traceback" not in err[0]
    assert "classes" in err[0] or "num_classes" in err[0]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["predict", "MODEL", ""], "FILE|DIR: an empty path"),
        (["predict", "", "x.wav"], "MODEL: an empty path"),
        (["detect", "MODEL", ""], "FILE|DIR: an empty path"),
        (["export", "MODEL", "--out", "o", "--check-clips", "-1"], "--check-clips"),
        (["export", "MODEL", "--out", "o", "--quantize", "--max-accuracy-drop", "nan"], "drop"),
        (["export", "MODEL", "--out", "o", "--max-accuracy-drop", "-1"], "drop"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
