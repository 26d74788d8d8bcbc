"""Prediction with an ensemble directory (``escnet ensemble ... --out DIR``).

An ensemble directory holds no network of its own: ``ensemble.json`` names its member runs and,
per test fold, each member's temperature and weight (chosen on that fold's validation split).
Prediction uses one fold's ensemble, like a run directory's: the fold with the best ensemble
*validation* accuracy, or ``fold``. Each member with a non-zero weight is loaded from its run
directory's model of that fold, and the ensemble's probabilities are the weighted mean of the
members' temperature-scaled probabilities, as :func:`escnet.training.ensemble.average_probabilities`
computed them on the test fold. (Scaling probabilities ``p`` by ``T`` as ``softmax(log p / T)``
equals scaling the logits, since ``log p`` differs from them by a constant per clip.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from escnet.errors import EscnetError
from escnet.inference.backend import Backend, ModelSpec
from escnet.inference.torch_backend import load_torch
from escnet.model_dir.layout import ENSEMBLE_JSON

__all__ = ["ENSEMBLE_JSON", "load_ensemble"]


def _read(root: Path) -> dict[str, Any]:
    path = root / ENSEMBLE_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EscnetError(f"{path}: not valid JSON ({exc}); rerun escnet ensemble") from None
    if not isinstance(record, dict) or not record.get("members") or not record.get("folds"):
        raise EscnetError(f"{path}: no members or folds; rerun escnet ensemble")
    return record


def _fold_record(root: Path, record: dict[str, Any], fold: int | None) -> dict[str, Any]:
    folds = {int(f["test_fold"]): f for f in record["folds"]}
    if fold is not None:
        if fold not in folds:
            raise EscnetError(f"{root}: no ensemble for fold {fold} (folds: {sorted(folds)})")
        return folds[fold]
    # Best validation accuracy, ties to the lower fold: never the test score.
    return max(folds.values(), key=lambda f: (f.get("val_acc") or 0.0, -int(f["test_fold"])))


def _member_dir(root: Path, member: str) -> Path:
    """A member run as recorded, or, when the runs were moved together, beside the ensemble."""
    recorded = Path(member)
    if recorded.is_dir():
        return recorded
    beside = root.parent / recorded.name
    if beside.is_dir():
        return beside
    raise EscnetError(
        f"{root / ENSEMBLE_JSON}: member run {member} not found (nor {beside}); keep the member "
        "runs where they were, or beside the ensemble directory"
    )


def load_ensemble(
    path: str | os.PathLike[str],
    *,
    fold: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> tuple[ModelSpec, Backend]:
    """Open an ensemble directory for the predictor (module docstring).

    Raises:
        EscnetError: ``ensemble.json`` is unreadable, the fold is not in it, a member run is
            missing, or the members disagree on classes, sample rate or clip length.
    """
    root = Path(path)
    record = _read(root)
    entry = _fold_record(root, record, fold)
    k = int(entry["test_fold"])
    used = [
        (_member_dir(root, str(m)), float(w), float(t))
        for m, w, t in zip(record["members"], entry["weights"], entry["temperatures"], strict=True)
        if float(w) > 0
    ]
    members = [(load_torch(d, fold=k, device=device, threads=threads), w, t) for d, w, t in used]
    first = members[0][0][0]
    for (spec, _), _, _ in members[1:]:
        same = (spec.classes, spec.sample_rate, spec.clip_seconds)
        if same != (first.classes, first.sample_rate, first.clip_seconds):
            raise EscnetError(
                f"{root}: member {spec.path} differs from {first.path} in classes, sample rate "
                "or clip length; an ensemble's members must share them"
            )
    total = sum(w for _, w, _ in members)

    def backend(batch: np.ndarray) -> np.ndarray:
        out = np.zeros((batch.shape[0], len(first.classes)), np.float64)
        for (_, run), w, t in members:
            log_p = np.log(np.clip(np.asarray(run(batch), np.float64), 1e-30, None)) / t
            p = np.exp(log_p - log_p.max(1, keepdims=True))
            out += (w / total) * p / p.sum(1, keepdims=True)
        return out.astype(np.float32)

    spec = ModelSpec(
        name=f"ensemble of {len(members)} ({', '.join(s.name for (s, _), _, _ in members)})",
        classes=first.classes,
        sample_rate=first.sample_rate,
        clip_seconds=first.clip_seconds,
        metadata={
            "escnet_version": first.metadata.get("escnet_version"),
            "ensemble": str(root),
            "fold": k,
            "members": [str(d) for d, _, _ in used],
            "member_weights": [w for _, w, _ in used],
            "temperatures": [t for _, _, t in used],
        },
        path=root,
    )
    return spec, backend
