"""Prediction with an ensemble: a cross-validation ensemble directory (``escnet ensemble ...
--out DIR``) or a refitted one (``escnet train --refit``); both are described in
:mod:`escnet.model_dir.members`, which resolves their members.

The ensemble's probabilities are the weighted mean of the members' temperature-scaled
probabilities, as :func:`escnet.training.ensemble.average_probabilities` computed them on the
test fold. (Scaling probabilities ``p`` by ``T`` as ``softmax(log p / T)`` equals scaling the
logits, since ``log p`` differs from them by a constant per clip.)

By default the ensemble runs as one network (:func:`escnet.model_dir.ensemble.load_ensemble_model`):
members that share a frozen body (the probes of one ``mn04_as``) run it once per view, and every
member's pooling and head reads that pass. ``one_pass=False`` runs each member's whole network
on its own, its front end included, and combines them in float64: the way the ensemble ran
before, kept as the reference the one-pass network is tested and benchmarked against.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from escnet.errors import ParameterError
from escnet.inference.backend import Backend, ModelSpec
from escnet.inference.torch_backend import torch_backend
from escnet.model_dir.ensemble import check_members, ensemble_name, load_ensemble_model
from escnet.model_dir.io import LoadedModel, load_model
from escnet.model_dir.members import Member, ensemble_members

__all__ = ["Member", "ensemble_members", "four_pass_backend", "load_ensemble"]


def four_pass_backend(loaded: list[LoadedModel], members: list[Member]) -> Backend:
    """Each member's network on its own, combined in float64 (the reference)."""
    runs = [torch_backend(m) for m in loaded]
    classes = len(loaded[0].classes)

    def backend(batch: np.ndarray) -> np.ndarray:
        out = np.zeros((batch.shape[0], classes), np.float64)
        for run, m in zip(runs, members, strict=True):
            log_p = np.log(np.clip(np.asarray(run(batch), np.float64), 1e-30, None))
            log_p /= m.temperature
            p = np.exp(log_p - log_p.max(1, keepdims=True))
            out += m.weight * p / p.sum(1, keepdims=True)
        return out.astype(np.float32)

    return backend


def load_ensemble(
    path: str | os.PathLike[str],
    *,
    fold: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    one_pass: bool = True,
) -> tuple[ModelSpec, Backend]:
    """Open an ensemble for the predictor (module docstring).

    Raises:
        EscnetError: see :func:`ensemble_members`; also members that disagree on classes,
            sample rate or clip length, or that score with a sigmoid.
    """
    if threads is not None:
        if threads < 1:
            raise ParameterError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    root = Path(path)
    groups: list[list[int]]
    backend: Backend
    if one_pass:
        # The views as one batch of the body: in PyTorch on a CPU 26 ms against 40 ms a call
        # per view (the four-member recipe, one thread; benchmarks/bench_recipe.py).
        ensemble = load_ensemble_model(root, fold=fold, device=device, batch_views=True)
        used, origin, loaded = ensemble.members, ensemble.origin, ensemble.loaded
        groups, passes = ensemble.groups, ensemble.body_passes

        def one_pass_backend(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return ensemble.probabilities(torch.from_numpy(batch)).cpu().numpy()

        backend = one_pass_backend

    else:
        used, origin = ensemble_members(root, fold=fold)
        loaded = [load_model(m.model_dir, device=device) for m in used]
        check_members(root, loaded)
        groups = [[i] for i in range(len(used))]
        passes = sum(_views(m) for m in loaded)
        backend = four_pass_backend(loaded, used)
    first = loaded[0]
    metadata: dict[str, Any] = {
        "escnet_version": first.metadata.get("escnet_version"),
        **origin,
        "members": [str(m.model_dir) for m in used],
        "member_weights": [m.weight for m in used],
        "temperatures": [m.temperature for m in used],
        "shared_body_groups": groups,
        "network_passes": passes,
        "activation": "softmax",
    }
    spec = ModelSpec(
        name=ensemble_name([m.name for m in loaded]),
        classes=first.classes,
        sample_rate=first.sample_rate,
        clip_seconds=first.clip_seconds,
        metadata=metadata,
        path=root,
    )
    return spec, backend


def _views(loaded: LoadedModel) -> int:
    """Network passes a member makes per window on its own (its TTA views)."""
    return len(getattr(loaded.model.net, "tta_shifts", (0,)))
