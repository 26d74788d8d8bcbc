"""The PyTorch backend: a model directory run as trained (front end + network, softmax)."""

from __future__ import annotations

import os

import numpy as np
import torch

from escnet.errors import ParameterError
from escnet.inference.backend import Backend, ModelSpec
from escnet.model_dir.io import LoadedModel, load_model
from escnet.model_dir.layout import resolve_model_dir

__all__ = ["load_torch", "torch_backend"]


def torch_backend(loaded: LoadedModel) -> Backend:
    """The backend function of a loaded model: windows (B, samples) -> probabilities."""

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return loaded.probabilities(torch.from_numpy(batch)).cpu().numpy()

    return run


def load_torch(
    path: str | os.PathLike[str],
    *,
    fold: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> tuple[ModelSpec, Backend]:
    """Load a model (or a run directory's model) for the predictor.

    Raises:
        EscnetError: the directory is not a model or run directory, or the model cannot be
            loaded (see :func:`escnet.model_dir.io.load_model`).
    """
    if threads is not None:
        if threads < 1:
            raise ParameterError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    loaded = load_model(resolve_model_dir(path, fold), device=device)
    spec = ModelSpec(
        name=loaded.name,
        classes=loaded.classes,
        sample_rate=loaded.sample_rate,
        clip_seconds=loaded.clip_seconds,
        metadata={**loaded.metadata, "activation": loaded.activation},
        path=loaded.path,
    )
    return spec, torch_backend(loaded)
