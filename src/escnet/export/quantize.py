"""int8 ONNX graphs: onnxruntime's static quantisation, calibrated on training clips only, and
refused when it costs accuracy beyond a stated bound.

The network's convolutions and linear layers are quantised (QDQ format: int8 weights per output
channel, uint8 activations with ranges from the calibration clips); the front end is not -- its
DFT and log would lose the quiet bands. Calibration uses training clips only: ``calibration_audio``,
or the model's own training clips from its recorded training configuration (a fold's model: every
fold but its test fold).

The accuracy change is measured where it can be measured honestly: for a fold's model, on its
held-out test fold (labelled clips it never saw); for a model trained on all the data (a refit),
only as the int8 graph's top-1 agreement with the float graph on the check clips. When the loss
exceeds ``max_accuracy_drop`` the int8 graph is refused with both figures and nothing is written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from escnet.cache import atomic_path, sha256_file
from escnet.data.audio import AudioConfig, load_audio
from escnet.errors import EscnetError
from escnet.export.check import CHECK_CLIPS, default_check_dir, load_check_clips
from escnet.model_dir.ensemble import LoadedEnsemble
from escnet.model_dir.io import LoadedModel
from escnet.model_dir.runtime import import_onnxruntime

__all__ = ["CALIBRATION_CLIPS", "accuracy", "labelled_split", "quantize_export", "quantize_graph"]

#: Training clips the activation ranges are calibrated on, spread over the training folds.
CALIBRATION_CLIPS = 64


def quantize_graph(
    float_path: str | os.PathLike[str], out_path: str | os.PathLike[str], calibration: np.ndarray
) -> None:
    """Write the int8 (QDQ) graph of ``float_path`` at ``out_path``, calibrated on the waveforms
    ``calibration`` (clips, samples); the front end's nodes stay float."""
    import onnx

    import_onnxruntime()  # telemetry off before onnxruntime.quantization imports it
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows: Iterator[np.ndarray] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else {"waveform": row[None].astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        front_end = [n.name for n in graph.graph.node if "front_end" in n.name]
        quantize_static(
            str(pre),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "Gemm", "MatMul"],
            nodes_to_exclude=front_end,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def _training_config(loaded: LoadedModel | LoadedEnsemble) -> tuple[dict[str, Any], int | None]:
    """The training configuration the model recorded, and its test fold (``None``: all data)."""
    if isinstance(loaded, LoadedEnsemble):
        first = loaded.loaded[0]
        fold = loaded.origin.get("fold")
    else:
        first = loaded
        fold = (first.metadata.get("selection") or {}).get("test_fold")
    config = first.metadata.get("training_config") or {}
    return dict(config), int(fold) if fold is not None else None


def labelled_split(
    loaded: LoadedModel | LoadedEnsemble,
) -> tuple[list[Path], list[tuple[Path, int]]] | None:
    """(training clips, labelled test clips) of the model's own data set, from its training
    configuration: the test fold's clips with their label's index in the model's classes (none
    when it was trained on all the data). ``None`` when the data set cannot be found."""
    from escnet.data.datasets import get_dataset

    config, fold = _training_config(loaded)
    name = config.get("dataset")
    if not name or name == "folder":
        return None
    try:
        dataset = get_dataset(str(name), data_dir=config.get("data_dir"))
    except EscnetError:
        return None
    classes = {c: i for i, c in enumerate(loaded.classes)}
    train = [c.path for c in dataset.clips if c.fold != fold]
    test = [
        (c.path, classes[dataset.classes[c.label]])
        for c in dataset.clips
        if c.fold == fold and dataset.classes[c.label] in classes
    ]
    return train, test


def accuracy(path: str | os.PathLike[str], clips: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of the graph at ``path`` on labelled clips (one thread)."""
    return float((_predict(path, clips).argmax(1) == labels).mean())


def _predict(path: str | os.PathLike[str], clips: np.ndarray) -> np.ndarray:
    ort = import_onnxruntime()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.concatenate(
        [session.run(None, {"waveform": clips[i : i + 1]})[0] for i in range(len(clips))]
    )


def _load(files: list[Path], loaded: LoadedModel | LoadedEnsemble) -> np.ndarray:
    config = AudioConfig(sample_rate=loaded.sample_rate, duration=loaded.clip_seconds)
    return np.stack([load_audio(f, config) for f in files])


def _spread(files: list[Path], count: int) -> list[Path]:
    """``count`` files spread evenly over ``files`` (every fold and class, not the first few)."""
    if len(files) <= count:
        return files
    return [files[int(i)] for i in np.linspace(0, len(files) - 1, count).round()]


def quantize_export(
    loaded: LoadedModel | LoadedEnsemble,
    source: Path,
    path: Path,
    record: dict[str, Any],
    *,
    calibration_audio: str | os.PathLike[str] | None = None,
    calibration_clips: int = CALIBRATION_CLIPS,
    max_accuracy_drop: float = 0.005,
    check_audio: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Replace the float graph at ``path`` by its int8 graph when that loses at most
    ``max_accuracy_drop`` (a fraction: 0.005 is half a percentage point); returns the graph's
    record for ``model.json`` with ``"quantized"`` added (module docstring).

    Raises:
        EscnetError: no training clips to calibrate on, or the int8 graph loses more accuracy
            than allowed (the figures named; the float graph stays, ``model.json`` is not
            written).
    """
    split = labelled_split(loaded)
    if calibration_audio is not None:
        calibration_files = sorted(
            p
            for p in Path(calibration_audio).iterdir()
            if p.is_file() and not p.name.startswith(".")
        )
        where = Path(calibration_audio).name
    elif split is not None:
        calibration_files, where = split[0], "the model's training folds"
    else:
        raise EscnetError(
            f"{source}: --quantize needs training clips to calibrate on, and the model's data set "
            "is not at hand: pass --calibration-audio DIR (training clips only)"
        )
    calibration = _load(_spread(calibration_files, calibration_clips), loaded)
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / "int8.onnx"
        quantize_graph(path, int8, calibration)
        measured = _measure(loaded, path, int8, split, check_audio)
        loss = measured["loss"]
        summary = measured["summary"] + f"; calibrated on {len(calibration)} clips of {where}"
        if loss > max_accuracy_drop:
            raise EscnetError(
                f"{source}: the int8 graph loses {100 * loss:.2f} points ({summary}), more than "
                f"the {100 * max_accuracy_drop:g} allowed; not written (export without "
                "--quantize, or allow more with --max-accuracy-drop)"
            )
        with atomic_path(path) as out:
            out.write_bytes(int8.read_bytes())
    quantized = {
        "format": "QDQ: int8 weights per output channel, uint8 activations; front end in float",
        "calibration": {"clips": len(calibration), "from": where},
        **{k: v for k, v in measured.items() if k != "loss"},
        "summary": summary,
    }
    return {**record, "sha256": sha256_file(path), "quantized": quantized}


def _measure(
    loaded: LoadedModel | LoadedEnsemble,
    float_path: Path,
    int8_path: Path,
    split: tuple[list[Path], list[tuple[Path, int]]] | None,
    check_audio: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """The int8 graph's loss: accuracy on the held-out test fold, or agreement with float."""
    if split is not None and split[1]:
        clips = _load([p for p, _ in split[1]], loaded)
        labels = np.asarray([y for _, y in split[1]])
        a, b = accuracy(float_path, clips, labels), accuracy(int8_path, clips, labels)
        return {
            "test_clips": len(labels),
            "accuracy_float": a,
            "accuracy_int8": b,
            "loss": a - b,
            "summary": f"test-fold accuracy {100 * a:.2f} % float, {100 * b:.2f} % int8 "
            f"on {len(labels)} held-out clips",
        }
    where = Path(check_audio) if check_audio is not None else default_check_dir()
    if where is None:
        raise EscnetError(
            "--quantize: no held-out test fold (the model was trained on all its data) and no "
            "clips to compare on: pass --check-audio DIR"
        )
    clips, _ = load_check_clips(where, loaded.sample_rate, loaded.clip_seconds, CHECK_CLIPS)
    agree = float(
        (_predict(float_path, clips).argmax(1) == _predict(int8_path, clips).argmax(1)).mean()
    )
    return {
        "agreement_clips": len(clips),
        "top1_agreement": agree,
        "loss": 1.0 - agree,
        "summary": f"top-1 agreement with the float graph {100 * agree:.2f} % on {len(clips)} "
        f"clips of {where.name} (no held-out fold: trained on all its data)",
    }
