"""Export a trained model: a self-contained model directory, and ``model.onnx`` on request.

``model.onnx`` maps mono waveforms (batch, samples) at the model's sample rate to class scores
(batch, classes) with the whole front end inside the graph (pre-emphasis, STFT, mel filter bank,
log, normalisation), so that onnxruntime alone (no torch, no librosa) turns audio into labels
(:mod:`escnet.inference.onnx_backend`). The scores are the head's activation, as ``model.json``
records it: softmax probabilities, or sigmoid scores for a multi-label head. An ensemble (a
refitted one, or a fold of a cross-validation ensemble directory) becomes one graph too
(:mod:`escnet.export.ensemble`).

How the front end gets into the graph: each front end has an export twin
(:mod:`escnet.export.front_end`) that computes the same image with exportable, fast operators
(framing by reshapes, the DFT as matrix products). :func:`export_onnx` checks the exported graph
against PyTorch with onnxruntime (:mod:`escnet.export.check`: synthetic waveforms, and real clips
when there are some) and refuses to write a file whose probabilities differ by more than
``tolerance`` or whose top-1 label differs on a real clip. ``quantize`` adds onnxruntime's static
int8 quantisation (:mod:`escnet.export.quantize`), refused when it costs more accuracy than
allowed.
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
from escnet.export.check import (
    CHECK_CLIPS,
    compare,
    default_check_dir,
    load_check_clips,
    synthetic_waveforms,
)
from escnet.export.ensemble import ensemble_graph, write_members
from escnet.export.front_end import export_front_end
from escnet.model_dir.ensemble import LoadedEnsemble, load_ensemble_model
from escnet.model_dir.io import LoadedModel, load_model
from escnet.model_dir.layout import (
    MODEL_JSON,
    ONNX_FILE,
    WEIGHTS,
    final_model_dir,
    is_ensemble,
    resolve_model_dir,
)
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
    """Waveforms (B, samples) -> scores (B, classes): the exported computation of one model,
    its head's activation (softmax, or sigmoid for a multi-label head) included."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.front_end = export_front_end(loaded.front_end.build())
        self.model = loaded.model
        self.sigmoid = loaded.activation == "sigmoid"

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        logits = self.model(self.front_end(waveforms))
        return torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=1)


#: What :func:`export_onnx` exports: one model directory, or an ensemble as one network.
Exportable = LoadedModel | LoadedEnsemble


def write_graph(graph: nn.Module, example: np.ndarray, path: str | os.PathLike[str]) -> None:
    """``graph`` (waveforms -> scores) as ONNX at ``path``, batch and samples axes dynamic."""
    with warnings.catch_warnings():
        # The TorchScript exporter warns about its own deprecation and about traced shapes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.cpu().eval(),
            (torch.from_numpy(example),),
            str(path),
            opset_version=ONNX_OPSET,
            dynamo=False,
            input_names=["waveform"],
            output_names=["probabilities"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "probabilities": {0: "batch"}},
        )


def onnx_runner(path: str | os.PathLike[str]) -> Any:
    """A function waveforms -> scores running the graph at ``path`` in onnxruntime (CPU)."""
    ort = import_onnxruntime()

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(["probabilities"], {"waveform": x})[0]


def torch_runner(loaded: Exportable) -> Any:
    """A function waveforms -> scores running ``loaded`` in PyTorch."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return loaded.probabilities(torch.from_numpy(x)).cpu().numpy()

    return run


def graph_of(loaded: Exportable, *, one_pass: bool = True) -> nn.Module:
    """The exportable network of a model or an ensemble."""
    if isinstance(loaded, LoadedEnsemble):
        return ensemble_graph(loaded, one_pass=one_pass)
    return OnnxGraph(loaded).cpu().eval()


def check_graph(
    path: Path,
    loaded: Exportable,
    *,
    tolerance: float,
    check_audio: str | os.PathLike[str] | None,
    check_clips: int,
) -> dict[str, Any]:
    """Compare the graph at ``path`` with PyTorch (:mod:`escnet.export.check`).

    Raises:
        EscnetError: probabilities more than ``tolerance`` apart, or a real clip's top-1 label
            that differs.
    """
    run, reference = onnx_runner(path), torch_runner(loaded)
    synthetic = compare(run, reference, synthetic_waveforms(loaded.num_samples, loaded.sample_rate))
    record: dict[str, Any] = {"max_abs_diff_vs_torch": synthetic["max_abs_diff"]}
    where = Path(check_audio) if check_audio is not None else default_check_dir()
    if where is not None and check_clips > 0:
        clips, _ = load_check_clips(where, loaded.sample_rate, loaded.clip_seconds, check_clips)
        real = compare(run, reference, clips)
        record["check"] = {"audio": f"{where.parent.name}/{where.name}", **real}
        record["max_abs_diff_vs_torch"] = max(synthetic["max_abs_diff"], real["max_abs_diff"])
        if real["top1_equal"] != real["clips"]:
            raise EscnetError(
                f"{path}: the ONNX graph's top-1 label differs from PyTorch's on "
                f"{real['clips'] - real['top1_equal']} of {real['clips']} clips of {where}; not "
                "written. Report this with the model's name"
            )
    diff = record["max_abs_diff_vs_torch"]
    if not diff <= tolerance:
        raise EscnetError(
            f"{path}: the ONNX graph's probabilities differ from PyTorch's by {diff:.2e} "
            f"(> {tolerance:g}); not written. Report this with the model's name"
        )
    return record


def export_onnx(
    loaded: Exportable,
    path: str | os.PathLike[str],
    *,
    tolerance: float = 1e-4,
    check_audio: str | os.PathLike[str] | None = None,
    check_clips: int = CHECK_CLIPS,
    one_pass: bool = True,
) -> dict[str, Any]:
    """Write ``loaded`` (a model or an ensemble) as an ONNX graph at ``path`` (atomically) and
    check it with onnxruntime against PyTorch (:func:`check_graph`).

    Args:
        loaded: the model, or the ensemble.
        path: the ``.onnx`` file to write.
        tolerance: largest probability difference from PyTorch allowed.
        check_audio: a directory of clips to check on (default: ESC-50 in the data directory,
            when there); ``check_clips`` of them, first by name (0: synthetic waveforms only).
        one_pass: an ensemble's members share their body's passes (``False``: each member
            runs on its own in the graph, for comparison).

    Returns:
        The record ``model.json`` keeps: file, sha256, opset, input/output, the largest
        probability difference from PyTorch and the real-clip check.

    Raises:
        EscnetError: onnxruntime is missing, or the graph fails the check (nothing written).
    """
    import_onnxruntime()  # before writing anything: its error names the fix
    out = Path(path)
    with atomic_path(out) as tmp:
        example = synthetic_waveforms(loaded.num_samples, loaded.sample_rate)[:1]
        write_graph(graph_of(loaded, one_pass=one_pass), example, tmp)
        record = check_graph(
            tmp, loaded, tolerance=tolerance, check_audio=check_audio, check_clips=check_clips
        )
    activation = _activation(loaded)
    scores = "probabilities" if activation == "softmax" else "sigmoid scores, multi-label"
    return {
        "file": out.name,
        "sha256": sha256_file(out),
        "opset": ONNX_OPSET,
        "input": "waveform (batch, samples) float32, mono at sample_rate",
        "output": f"probabilities (batch, classes): {scores}",
        "activation": activation,
        **record,
    }


def _activation(loaded: Exportable) -> str:
    return "softmax" if isinstance(loaded, LoadedEnsemble) else loaded.activation


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote."""

    directory: Path
    source: Path
    onnx: dict[str, Any] | None


def _source(model: str | os.PathLike[str], fold: int | None) -> Path:
    """The model or ensemble directory to export: a run's refitted model when it has one."""
    final = final_model_dir(model) if fold is None else None
    if final is not None:
        return final
    root = Path(model)
    if is_ensemble(root):
        return root
    return resolve_model_dir(root, fold)


def export_model(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fold: int | None = None,
    onnx: bool = False,
    tolerance: float = 1e-4,
    check_audio: str | os.PathLike[str] | None = None,
    check_clips: int = CHECK_CLIPS,
    quantize: bool = False,
    quantize_options: dict[str, Any] | None = None,
    one_pass: bool = True,
) -> ExportResult:
    """Write a self-contained model directory at ``out`` (``model.json``, the weights and,
    with ``onnx``, ``model.onnx``), from a model, run or ensemble directory.

    A run directory gives its refitted model (``RUN/final``) when it has one and no ``fold`` is
    asked, else its fold's model (the best by validation accuracy, or ``fold``). An ensemble
    (refitted, or a cross-validation ensemble directory's fold) is written with its members
    copied inside (:mod:`escnet.export.ensemble`) and, with ``onnx``, as one graph. The model
    is loaded (checksums, registry, front end all checked) before anything is written.

    Args:
        one_pass: an ensemble's graph shares body passes among its members (``False``: each
            member runs on its own; what the benchmarks compare with).
        quantize: also quantise the graph to int8 (:func:`escnet.export.quantize.quantize_export`
            with ``quantize_options``); ``model.onnx`` is then the int8 graph, refused when it
            loses more accuracy than allowed.

    Raises:
        EscnetError: the model cannot be loaded or exported (see :func:`export_onnx`).
    """
    if quantize and not onnx:
        raise EscnetError("--quantize quantises the ONNX graph: add --onnx")
    source = _source(model, fold)
    ensemble = is_ensemble(source)
    loaded: Exportable = load_ensemble_model(source, fold=fold) if ensemble else load_model(source)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    if isinstance(loaded, LoadedEnsemble):
        meta = write_members(loaded, target)
    else:
        meta = dict(loaded.metadata)
        meta["activation"] = loaded.activation
        if source.resolve() != target.resolve():
            with atomic_path(target / WEIGHTS) as tmp:
                shutil.copyfile(source / WEIGHTS, tmp)
    meta.pop("onnx", None)
    if not onnx:
        (target / ONNX_FILE).unlink(missing_ok=True)  # a stale graph must not outlive its record
    else:
        record = export_onnx(
            loaded,
            target / ONNX_FILE,
            tolerance=tolerance,
            check_audio=check_audio,
            check_clips=check_clips,
            one_pass=one_pass,
        )
        if quantize:
            from escnet.export.quantize import quantize_export

            record = quantize_export(
                loaded,
                source,
                target / ONNX_FILE,
                record,
                check_audio=check_audio,
                **(quantize_options or {}),
            )
        meta["onnx"] = record
    atomic_write_json(target / MODEL_JSON, meta)
    return ExportResult(directory=target, source=source, onnx=meta.get("onnx"))
