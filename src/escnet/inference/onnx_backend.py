"""The ONNX Runtime backend: an exported ``model.onnx`` run with onnxruntime and numpy only.

The graph (written by :func:`escnet.export.onnx.export_model`) takes mono waveforms (batch, samples)
at the model's rate and returns class probabilities (batch, classes): the front end (STFT, mel,
log, normalisation) is inside it. This module and everything it imports leave torch alone, so a
deployment needs neither torch nor its gigabytes: ``pip install escnet[onnx]`` without torch
works for ``escnet predict --backend onnx`` (the test suite checks ``sys.modules``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from escnet.cache import sha256_file
from escnet.errors import EscnetError, ParameterError
from escnet.inference.backend import ModelSpec
from escnet.model_dir.layout import (
    MODEL_JSON,
    ONNX_FILE,
    head_activation,
    inside,
    read_model_json,
)
from escnet.model_dir.runtime import import_onnxruntime

__all__ = ["OnnxBackend", "load_onnx"]


class OnnxBackend:
    """Runs ``model.onnx`` with onnxruntime on the CPU: windows (B, samples) -> probabilities.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (default: onnxruntime's choice, all cores).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 1:
                raise ParameterError(f"threads must be >= 1, got {threads}")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EscnetError(
                f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]}); re-export it"
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        output = self.session.get_outputs()[0]
        self.output_name = output.name
        #: Scores per window the graph declares (``None`` when its last axis is symbolic).
        self.width = (
            output.shape[-1] if output.shape and isinstance(output.shape[-1], int) else None
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        (probabilities,) = self.session.run([self.output_name], {self.input_name: x})
        return np.asarray(probabilities, dtype=np.float32)


def load_onnx(
    directory: str | os.PathLike[str], *, threads: int | None = None
) -> tuple[ModelSpec, OnnxBackend]:
    """Open an exported model directory (``model.json`` + ``model.onnx``).

    Raises:
        EscnetError: the directory has no ``model.onnx`` (export it first), or its sha256 differs
            from the one ``model.json`` records.
    """
    root = Path(directory)
    # No "model" needed: an exported ensemble's graph is no registered network.
    meta = read_model_json(root, required=("classes", "sample_rate", "clip_seconds"))
    activation = head_activation(meta, root / MODEL_JSON)
    record = meta.get("onnx")
    if record is not None and not isinstance(record, dict):
        raise EscnetError(f"{root / MODEL_JSON}: onnx must be a JSON object; re-export the model")
    onnx_path = inside(root, (record or {}).get("file", ONNX_FILE), root / MODEL_JSON)
    if not record or not onnx_path.is_file():
        raise EscnetError(
            f"{onnx_path}: missing; write it with `escnet export {root} --out DIR --onnx` "
            "and pass DIR"
        )
    if sha256_file(onnx_path) != record.get("sha256"):
        raise EscnetError(
            f"{onnx_path}: sha256 differs from the one in {MODEL_JSON}; the file was changed "
            "or damaged: re-export the model"
        )
    members = meta.get("members")
    name = meta.get("model") or (f"ensemble of {len(members)}" if members else "model")
    spec = ModelSpec(
        name=str(name),
        classes=[str(c) for c in meta["classes"]],
        sample_rate=int(meta["sample_rate"]),
        clip_seconds=float(meta["clip_seconds"]),
        metadata={**meta, "activation": activation},
        path=root,
    )
    backend = OnnxBackend(onnx_path, threads=threads)
    width = backend.width
    if width is None:  # a symbolic output axis: what one window of silence gives
        width = backend(np.zeros((1, spec.num_samples), np.float32)).shape[-1]
    if width != len(spec.classes):
        raise EscnetError(
            f"{onnx_path}: the graph gives {width} scores per window but {MODEL_JSON} names "
            f"{len(spec.classes)} classes; the two do not belong together: re-export the model"
        )
    return spec, backend
