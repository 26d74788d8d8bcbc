"""The model directory: a trained model saved and loaded as a value (escnet.model_dir.io)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from escnet.errors import EscnetError, ModelDirError
from escnet.model_dir.io import load_model, save_model
from escnet.model_dir.layout import resolve_model_dir
from escnet.models import create_model

CLASSES = ["dog", "rain", "siren"]


def _saved(tmp_path: Path, name: str = "cnn7") -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model(name, len(CLASSES))
    with torch.no_grad():  # weights that differ from a fresh model's, so loading must work
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.eval()
    return save_model(tmp_path / "model", model, CLASSES, clip_seconds=1.0), model


def test_round_trip_gives_the_same_logits_bit_for_bit(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    loaded = load_model(path)
    assert loaded.classes == CLASSES and loaded.name == "cnn7"
    assert loaded.sample_rate == 22050 and loaded.num_samples == 22050
    waves = torch.randn(3, loaded.num_samples)
    # The caller passes waveforms only: the loaded object applies the front end itself.
    expected = model(model.model_info.front_end.build()(waves))
    assert torch.equal(loaded.logits(waves), expected)
    probs = loaded.probabilities(waves)
    assert torch.allclose(probs.sum(1), torch.ones(3))


def test_mn04_as_round_trip_keeps_its_own_front_end(tmp_path: Path) -> None:
    path, model = _saved(tmp_path, "mn04_as")
    loaded = load_model(path)
    assert loaded.sample_rate == 32000
    meta = json.loads((path / "model.json").read_text())
    assert meta["front_end"]["type"] == "AudioSetMelConfig"
    waves = torch.randn(2, 32000)
    expected = model(model.model_info.front_end.build()(waves))
    assert torch.equal(loaded.logits(waves), expected)


def test_model_json_is_self_describing(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    for key in ("model", "classes", "front_end", "sample_rate", "clip_seconds", "escnet_version"):
        assert key in meta
    assert len(meta["weights"]["sha256"]) == 64


def test_loads_with_nothing_but_escnet(tmp_path: Path) -> None:
    """No data set, run directory or ../shared: a fresh interpreter with those unset."""
    path, _ = _saved(tmp_path)
    code = (
        "import sys, torch; from escnet.model_dir.io import load_model; "
        f"m = load_model({str(path)!r}); "
        "print(m.probabilities(torch.zeros(1, m.num_samples)).shape)"
    )
    env = {"PATH": "/usr/bin:/bin", "ESCNET_DATA_DIR": str(tmp_path / "none")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "torch.Size([1, 3])" in out.stdout


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    (path / "weights.pt").unlink()
    with pytest.raises(ModelDirError, match=r"weights\.pt: missing"):
        load_model(path)


def test_missing_model_json_is_named(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    (path / "model.json").unlink()
    with pytest.raises(ModelDirError, match=r"model\.json: missing"):
        load_model(path)


def test_changed_weights_fail_the_sha256_check(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    state = torch.load(path / "weights.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1
    torch.save(state, path / "weights.pt")
    with pytest.raises(ModelDirError, match=r"weights\.pt: sha256 .* differs") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_unknown_model_name_is_named(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    meta["model"] = "no_such_net"
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match=r"model\.json: unknown model 'no_such_net'"):
        load_model(path)


def test_changed_front_end_is_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    meta["front_end"]["n_mels"] = 64
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match="front end differs"):
        load_model(path)


def test_model_dir_errors_are_escnet_errors(tmp_path: Path) -> None:
    with pytest.raises(EscnetError, match="not a directory"):
        load_model(tmp_path / "nothing")


def test_resolve_model_dir(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    assert resolve_model_dir(path) == path
    run = tmp_path / "run"
    (run).mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(ModelDirError, match="no fold"):
        resolve_model_dir(run)
    for fold, val_acc in ((1, 0.5), (2, 0.9), (3, 0.7)):
        save_model(
            run / f"fold{fold}" / "model",
            model,  # type: ignore[arg-type]
            CLASSES,
            clip_seconds=1.0,
            selection={"val_acc": val_acc},
        )
    # the best *validation* accuracy, never a test score
    assert resolve_model_dir(run) == run / "fold2" / "model"
    assert resolve_model_dir(run, fold=3) == run / "fold3" / "model"
    with pytest.raises(ModelDirError, match="fold7"):
        resolve_model_dir(run, fold=7)


@pytest.mark.parametrize("where", ["../outside.pt", "{abs}", "link.pt"])
def test_weights_outside_the_model_directory_are_refused(tmp_path: Path, where: str) -> None:
    """A model.json that points its weights elsewhere (a relative path up, an absolute path, a
    link out of the directory) is refused, although that file holds the right weights."""
    path, _ = _saved(tmp_path)
    outside = tmp_path / "outside.pt"
    outside.write_bytes((path / "weights.pt").read_bytes())  # same bytes: the sha256 matches
    (path / "link.pt").symlink_to(outside)
    meta = json.loads((path / "model.json").read_text())
    meta["weights"]["file"] = where.format(abs=outside)
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match=r"model\.json: .* is outside the model directory"):
        load_model(path)


def test_onnx_graph_outside_the_model_directory_is_refused(tmp_path: Path) -> None:
    from escnet.inference.onnx_backend import load_onnx

    path, _ = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    meta["onnx"] = {"file": "/etc/passwd", "sha256": "0" * 64}
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(EscnetError, match=r"'/etc/passwd' is outside the model directory"):
        load_onnx(path)
