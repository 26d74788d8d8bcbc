"""Scores of multi-label heads: ``model.json`` records the head's activation (a sigmoid for
AudioSet's 527 labels, a softmax for one label per clip) and every way of predicting uses it
and says which it is: PyTorch, the ONNX graph, ``escnet predict``, the service and its page."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import escnet  # noqa: E402
from _inference_helpers import CLASSES, synth, train_tiny_model  # noqa: E402
from escnet.cli import main  # noqa: E402
from escnet.errors import ModelDirError, ParameterError  # noqa: E402
from escnet.export.onnx import export_model  # noqa: E402
from escnet.model_dir.io import load_model, save_model  # noqa: E402
from escnet.models import create_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def softmax_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def sigmoid_dir(softmax_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same network, recorded as a multi-label head."""
    out = tmp_path_factory.mktemp("multi") / "model"
    loaded = load_model(softmax_dir)
    return save_model(out, loaded.model, CLASSES, clip_seconds=1.0, activation="sigmoid")


def test_model_json_records_the_activation(softmax_dir: Path, sigmoid_dir: Path) -> None:
    assert json.loads((softmax_dir / "model.json").read_text())["activation"] == "softmax"
    assert json.loads((sigmoid_dir / "model.json").read_text())["activation"] == "sigmoid"
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 8000)).astype(np.float32))
    soft, sig = load_model(softmax_dir), load_model(sigmoid_dir)
    torch.testing.assert_close(soft.probabilities(x), soft.logits(x).softmax(1))
    torch.testing.assert_close(sig.probabilities(x), torch.sigmoid(sig.logits(x)))


def test_the_default_follows_the_head(tmp_path: Path) -> None:
    # AudioSet's pretrained 527-label head is multi-label; a head trained by escnet is not.
    audioset = create_model("mn04_as", 527)
    save_model(tmp_path / "as", audioset, [f"l{i}" for i in range(527)], clip_seconds=1.0)
    assert json.loads((tmp_path / "as" / "model.json").read_text())["activation"] == "sigmoid"
    ten = create_model("mn04_as", 10)
    save_model(tmp_path / "ten", ten, [f"l{i}" for i in range(10)], clip_seconds=1.0)
    assert json.loads((tmp_path / "ten" / "model.json").read_text())["activation"] == "softmax"
    with pytest.raises(ParameterError, match="activation"):
        save_model(tmp_path / "bad", ten, [f"l{i}" for i in range(10)], clip_seconds=1.0,
                   activation="relu")  # fmt: skip


def test_a_directory_without_the_field_scores_with_a_softmax_and_a_bad_one_is_named(
    softmax_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    meta = json.loads((softmax_dir / "model.json").read_text())
    (old / "weights.pt").write_bytes((softmax_dir / "weights.pt").read_bytes())
    del meta["activation"]  # written before the field existed
    (old / "model.json").write_text(json.dumps(meta))
    assert load_model(old).activation == "softmax"
    assert escnet.load(old).spec.activation == "softmax"
    meta["activation"] = "tanh"
    (old / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match="activation 'tanh'"):
        load_model(old)


def test_predict_and_the_onnx_graph_score_with_a_sigmoid(
    sigmoid_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "onnx"
    result = export_model(sigmoid_dir, exported, onnx=True, check_clips=0)
    assert result.onnx is not None and result.onnx["activation"] == "sigmoid"
    assert json.loads((exported / "model.json").read_text())["activation"] == "sigmoid"
    torch_p = escnet.load(sigmoid_dir)
    onnx_p = escnet.load(exported, backend="onnx", threads=1)
    clips = np.stack([synth(k, 1.0, 8000, np.random.default_rng(i)) for i, k in enumerate(CLASSES)])
    a, b = torch_p.probabilities(clips), onnx_p.probabilities(clips)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert not np.allclose(a.sum(1), 1.0)  # each label on its own
    prediction = onnx_p.predict(clips[0], 8000)
    assert prediction.activation == "sigmoid" and prediction.to_dict()["activation"] == "sigmoid"

    import soundfile as sf

    wav = tmp_path / "x.wav"
    sf.write(wav, clips[1], 8000)
    assert main(["predict", str(exported), str(wav), "--backend", "onnx"]) == 0
    out, err = capsys.readouterr()
    assert "sigmoid scores" in out and "sigmoid scores, multi-label" in err
    assert main(["-q", "predict", str(sigmoid_dir), str(wav), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["activation"] == "sigmoid"


def test_the_service_and_its_page_say_which_scores(softmax_dir: Path, sigmoid_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from escnet.serve.app import create_app

    for directory, activation in ((softmax_dir, "softmax"), (sigmoid_dir, "sigmoid")):
        with TestClient(create_app(escnet.load(directory, threads=1))) as client:
            assert client.get("/health").json()["model"]["activation"] == activation
            import io

            import soundfile as sf

            buf = io.BytesIO()
            sf.write(buf, synth("noise", 1.0, 8000, np.random.default_rng(0)), 8000, format="WAV")
            answer = client.post("/predict", files={"file": ("x.wav", buf.getvalue())}).json()
            assert answer["activation"] == activation
            assert answer["model"]["activation"] == activation
            page = client.get("/").text
    # The page names the scores from the answer's and /health's activation.
    assert "sigmoid scores (multi-label)" in page and "scoresOf(m.activation)" in page
    assert "scoresOf(body.activation)" in page
