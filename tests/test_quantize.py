"""int8 export: calibrated on training clips only, its accuracy change measured on the held-out
test fold, and refused (with the figures) when it loses more than the stated bound."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import onnxruntime  # noqa: E402, F401  (declared in the dev extras: a missing one is an error)

import escnet  # noqa: E402
from _inference_helpers import CLASSES, SAMPLE_RATE, synth, train_tiny_model  # noqa: E402
from conftest import write_esc50_layout  # noqa: E402
from escnet.cli import main  # noqa: E402
from escnet.data.audio import AudioConfig, load_audio  # noqa: E402
from escnet.errors import EscnetError  # noqa: E402
from escnet.export import quantize  # noqa: E402
from escnet.export.onnx import export_model, write_graph  # noqa: E402
from escnet.model_dir.io import load_model, save_model  # noqa: E402


@pytest.fixture(scope="module")
def fold_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as a fold-1 model of an ESC-50-shaped data set of its three classes."""
    root = tmp_path_factory.mktemp("quant")
    rng = np.random.default_rng(5)
    clips = (
        (fold, target, name, synth(name, 1.0, SAMPLE_RATE, rng), False)
        for fold in range(1, 6)
        for target, name in enumerate(CLASSES)
        for _ in range(3)
    )
    write_esc50_layout(root / "data" / "esc50", clips, SAMPLE_RATE)
    loaded = load_model(train_tiny_model(root / "tiny"))
    config = {"dataset": "esc50", "data_dir": str(root / "data")}
    return save_model(root / "model", loaded.model, CLASSES, clip_seconds=1.0, config=config,
                      selection={"test_fold": 1})  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_an_int8_export_is_calibrated_on_training_folds_and_scored_on_the_test_fold(
    fold_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "int8"
    seen: list[np.ndarray] = []
    real = quantize.quantize_graph

    def spy(float_path: Path, out_path: Path, calibration: np.ndarray) -> None:
        seen.append(np.array(calibration))
        real(float_path, out_path, calibration)

    monkeypatch.setattr(quantize, "quantize_graph", spy)
    # The default bound (0.5 points): on these clear classes int8 loses nothing.
    result = export_model(fold_model, out, onnx=True, check_clips=0, quantize=True)
    assert result.onnx is not None
    q = result.onnx["quantized"]
    assert q["calibration"] == {"clips": 36, "from": "the model's training folds"}  # folds 2-5
    assert q["test_clips"] == 9  # fold 1, never calibrated on
    # Not the exporter's word for it: each clip the calibrator was given, found among the data
    # set's files, is a different training-fold clip (ESC-50 names begin with the fold).
    audio = fold_model.parent / "data" / "esc50" / "audio"
    config = AudioConfig(sample_rate=SAMPLE_RATE, duration=1.0)
    files = {f.name: load_audio(f, config) for f in sorted(audio.iterdir())}
    (calibration,) = seen
    sources = [next(n for n, y in files.items() if np.array_equal(y, row)) for row in calibration]
    assert len(set(sources)) == len(sources) == 36
    assert {name.split("-")[0] for name in sources} == {"2", "3", "4", "5"}
    assert q["accuracy_int8"] == q["accuracy_float"] == 1.0
    assert "held-out" in q["summary"]
    import onnx

    graph = onnx.load(str(out / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)
    front_end = [n for n in graph.graph.node if "front_end" in n.name]
    assert front_end and not any(n.op_type == "QuantizeLinear" for n in front_end)
    meta = json.loads((out / "model.json").read_text())
    assert meta["onnx"]["quantized"] == q
    predictor = escnet.load(out, backend="onnx", threads=1)  # sha256 of the int8 file checked
    x = synth("high_tone", 1.0, SAMPLE_RATE, np.random.default_rng(1))
    assert predictor.predict(x, SAMPLE_RATE).classes == list(CLASSES)


def test_an_int8_graph_that_loses_accuracy_is_refused_with_the_figures(
    fold_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class AlwaysFirst(torch.nn.Module):
        """Stands in for a quantisation gone wrong: every clip gets class 0."""

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            scores = torch.zeros(waveforms.shape[0], len(CLASSES)) + waveforms[:, :1] * 0
            return (scores + torch.tensor([5.0, 0.0, 0.0])).softmax(1)

    def broken(float_path: Path, out_path: Path, calibration: np.ndarray) -> None:
        write_graph(AlwaysFirst(), calibration[:1], out_path)

    monkeypatch.setattr(quantize, "quantize_graph", broken)
    out = tmp_path / "refused"
    with pytest.raises(EscnetError) as info:
        export_model(fold_model, out, onnx=True, check_clips=0, quantize=True)
    message = str(info.value)
    # 9 test clips, 3 of class 0: 100 % float, 33.33 % "int8"; the bound is 0.5 points.
    assert "loses 66.67 points" in message and "100.00 % float, 33.33 % int8" in message
    assert "the 0.5 allowed" in message
    assert not (out / "model.json").exists()  # nothing usable was written
    # Allowed explicitly, it is written, figures and all.
    result = export_model(fold_model, out, onnx=True, check_clips=0, quantize=True,
                          quantize_options={"max_accuracy_drop": 0.7})  # fmt: skip
    assert result.onnx is not None and result.onnx["quantized"]["accuracy_int8"] == pytest.approx(
        1 / 3
    )


def test_quantize_needs_the_graph_and_training_clips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = train_tiny_model(tmp_path / "plain")  # no training configuration recorded
    assert main(["export", str(plain), "--out", str(tmp_path / "a"), "--quantize"]) == 2
    assert "add --onnx" in capsys.readouterr().err
    argv = ["export", str(plain), "--out", str(tmp_path / "b"), "--onnx", "--quantize"]
    assert main([*argv, "--check-clips", "0"]) == 2
    err = capsys.readouterr().err
    assert "--calibration-audio" in err and len(err.strip().splitlines()) == 1
