"""Export a trained model: a self-contained model directory, and ``model.onnx`` on request.

``model.onnx`` maps mono waveforms (batch, samples) at the model's sample rate to class
probabilities (batch, classes) with the whole front end inside the graph (pre-emphasis, STFT,
mel filter bank, log, normalisation), so that onnxruntime alone (no torch, no librosa) turns
audio into labels (:mod:`escnet.inference.onnx_backend`).

How the front end gets into the graph: each front end has an export twin
(:mod:`escnet.export.front_end`) that computes the same image with exportable, fast operators
(framing by reshapes, the DFT as matrix products). :func:`export_model` checks the exported graph
against PyTorch on test waveforms with onnxruntime and refuses to write a file whose
probabilities differ by more than ``tolerance``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from escnet.cache import atomic_path, atomic_write_json, sha256_file
from escnet.errors import EscnetError
from escnet.export.front_end import export_front_end
from escnet.model_dir.io import LoadedModel, load_model
from escnet.model_dir.layout import MODEL_JSON, ONNX_FILE, WEIGHTS, resolve_model_dir
from escnet.model_dir.runtime import import_onnxruntime

__all__ = [
    "ONNX_OPSET",
    "ExportResult",
    "OnnxGraph",
    "export_front_end",
    "export_model",
    "export_onnx",
]

#: ONNX opset of the exported graphs (onnxruntime >= 1.12 runs it).
ONNX_OPSET = 17


class OnnxGraph(nn.Module):
    """Waveforms (B, samples) -> probabilities (B, classes): the exported computation."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.front_end = export_front_end(loaded.front_end.build())
        self.model = loaded.model

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(self.front_end(waveforms)), dim=1)


def _test_waveforms(loaded: LoadedModel, seed: int = 0) -> np.ndarray:
    """Three clips: noise, a chirp and near-silence; enough to catch a wrong graph."""
    n = loaded.num_samples
    rng = np.random.default_rng(seed)
    t = np.arange(n) / loaded.sample_rate
    chirp = 0.5 * np.sin(2 * np.pi * (100 + 1000 * t / max(float(t[-1]), 1e-9)) * t)
    return np.stack([0.1 * rng.standard_normal(n), chirp, 1e-4 * rng.standard_normal(n)]).astype(
        np.float32
    )


def export_onnx(
    loaded: LoadedModel, path: str | os.PathLike[str], *, tolerance: float = 1e-4
) -> dict[str, Any]:
    """Write ``loaded`` as an ONNX graph at ``path`` (atomically) and check it with onnxruntime.

    Returns:
        The record ``model.json`` keeps: file, sha256, opset, input/output names and the largest
        probability difference from PyTorch measured on test waveforms.

    Raises:
        EscnetError: onnxruntime is missing, or the graph's probabilities differ from PyTorch's
            by more than ``tolerance`` (nothing is written then).
    """
    ort = import_onnxruntime()
    graph = OnnxGraph(loaded).cpu().eval()
    waveforms = _test_waveforms(loaded)
    out = Path(path)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # The TorchScript exporter warns about its own deprecation and about traced shapes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (torch.from_numpy(waveforms),),
            str(tmp),
            opset_version=ONNX_OPSET,
            dynamo=False,
            input_names=["waveform"],
            output_names=["probabilities"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "probabilities": {0: "batch"}},
        )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        (got,) = session.run(["probabilities"], {"waveform": waveforms})
        with torch.inference_mode():
            expected = loaded.probabilities(torch.from_numpy(waveforms)).cpu().numpy()
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise EscnetError(
                f"{out}: the ONNX graph's probabilities differ from PyTorch's by {diff:.2e} "
                f"(> {tolerance:g}); not written. Report this with the model's name "
                f"({loaded.name})"
            )
    return {
        "file": out.name,
        "sha256": sha256_file(out),
        "opset": ONNX_OPSET,
        "input": "waveform (batch, samples) float32, mono at sample_rate",
        "output": "probabilities (batch, classes)",
        "max_abs_diff_vs_torch": diff,
    }


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote."""

    directory: Path
    source: Path
    onnx: dict[str, Any] | None


def export_model(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fold: int | None = None,
    onnx: bool = False,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Write a self-contained model directory at ``out`` (``model.json``, ``weights.pt`` and,
    with ``onnx``, ``model.onnx``), from a model or run directory.

    The model is loaded (checksums, registry, front end all checked) before anything is written.

    Raises:
        EscnetError: the model cannot be loaded or exported (see :func:`export_onnx`).
    """
    source = resolve_model_dir(model, fold)
    loaded = load_model(source)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    meta = dict(loaded.metadata)
    if source.resolve() != target.resolve():
        with atomic_path(target / WEIGHTS) as tmp:
            shutil.copyfile(source / WEIGHTS, tmp)
    meta.pop("onnx", None)
    if not onnx:
        (target / ONNX_FILE).unlink(missing_ok=True)  # a stale graph must not outlive its record
    else:
        meta["onnx"] = export_onnx(loaded, target / ONNX_FILE, tolerance=tolerance)
    atomic_write_json(target / MODEL_JSON, meta)
    return ExportResult(directory=target, source=source, onnx=meta.get("onnx"))
