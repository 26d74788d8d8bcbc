"""A model's scores are checked before they go out: an ONNX graph whose width is not the class
count is refused when it is loaded, and NaN or infinite scores are an error of the model (one
line and exit 2 on the command line, 500 from the service), never a label with ``nan``."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).parent))
import escnet  # noqa: E402
from escnet.cache import sha256_file  # noqa: E402
from escnet.cli import main  # noqa: E402
from escnet.errors import EscnetError, ModelOutputError  # noqa: E402
from escnet.serve import create_app  # noqa: E402

CLASSES = [f"class{i}" for i in range(10)]


def _graph_dir(root: Path, width: int, *, nan: bool) -> Path:
    """A model directory whose ``model.onnx`` maps waveforms (B, samples) to ``width`` scores:
    the waveform's mean repeated, or NaN (the log of a negative number) with ``nan``."""
    nodes = [
        helper.make_node("ReduceMean", ["waveform", "axes"], ["mean"], keepdims=1),
        helper.make_node("Expand", ["mean", "shape"], ["wide"]),
    ]
    out = "wide"
    if nan:
        nodes += [
            helper.make_node("Abs", ["wide"], ["abs"]),
            helper.make_node("Sub", ["abs", "one"], ["negative"]),  # |x| - 1 < 0 for audio
            helper.make_node("Log", ["negative"], ["scores"]),
        ]
        out = "scores"
    graph = helper.make_graph(
        nodes,
        "scores",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", width])],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("shape", TensorProto.INT64, [2], [1, width]),
            *([helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])] if nan else []),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    root.mkdir(parents=True)
    onnx.save(model, root / "model.onnx")
    meta = {
        "format_version": 1,
        "classes": CLASSES,
        "sample_rate": 8000,
        "clip_seconds": 1.0,
        "onnx": {"file": "model.onnx", "sha256": sha256_file(root / "model.onnx")},
    }
    (root / "model.json").write_text(json.dumps(meta))
    return root


def test_a_graph_narrower_than_the_classes_is_refused_on_loading(tmp_path: Path) -> None:
    root = _graph_dir(tmp_path / "m", 3, nan=False)
    with pytest.raises(EscnetError, match="the graph gives 3 scores per window but model.json "):
        escnet.load(root, backend="onnx")


def _wav(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    return path


def test_nan_scores_are_an_error_of_the_model_not_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _graph_dir(tmp_path / "m", len(CLASSES), nan=True)
    predictor = escnet.load(root, backend="onnx")
    with pytest.raises(ModelOutputError, match="NaN or infinite scores"):
        predictor.predict(np.zeros(8000, np.float32), 8000)
    rc = main(["-q", "predict", str(root), str(_wav(tmp_path)), "--backend", "onnx"])
    out, err = capsys.readouterr()
    assert rc == 2 and "nan" not in out and out == ""
    assert err.startswith("escnet predict: error: ") and "NaN or infinite scores" in err
    assert len(err.splitlines()) == 1

    buffer = io.BytesIO()
    sf.write(buffer, np.full(8000, 0.1, np.float32), 8000, format="WAV")
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", files={"file": ("clip.wav", buffer.getvalue())})
    assert r.status_code == 500 and "unusable scores" in r.json()["detail"], r.text
    assert str(root) not in r.text  # the client is not told where the model lives
