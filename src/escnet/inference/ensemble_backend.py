"""Prediction with an ensemble: a cross-validation ensemble directory (``escnet ensemble ...
--out DIR``) or a refitted one (``escnet train --refit``).

A cross-validation ensemble directory holds no network of its own: ``ensemble.json`` names its
member runs and, per test fold, each member's temperature and weight (chosen on that fold's
validation split). Prediction uses one fold's ensemble, like a run directory's: the fold with the
best ensemble *validation* accuracy, or ``fold``; each member is that run's model of the fold.
A refitted ensemble is a model directory whose ``model.json`` lists its members (model
directories inside it, trained on all the data) with their weights and temperatures. Either way
:func:`ensemble_members` gives the members with a non-zero weight, and the ensemble's
probabilities are the weighted mean of the members' temperature-scaled probabilities, as
:func:`escnet.training.ensemble.average_probabilities` computed them on the test fold.
(Scaling probabilities ``p`` by ``T`` as ``softmax(log p / T)`` equals scaling the logits,
since ``log p`` differs from them by a constant per clip.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from escnet.errors import EscnetError
from escnet.inference.backend import Backend, ModelSpec
from escnet.inference.torch_backend import load_torch
from escnet.model_dir.layout import (
    ENSEMBLE_JSON,
    MODEL_JSON,
    member_run_dir,
    read_model_json,
    resolve_model_dir,
)

__all__ = ["Member", "ensemble_members", "load_ensemble"]


@dataclass(frozen=True)
class Member:
    """One member of an ensemble as prediction uses it.

    Attributes:
        model_dir: the member's model directory.
        weight: its share of the average (the members' weights sum to 1).
        temperature: its probabilities are scaled as ``softmax(log p / temperature)``.
    """

    model_dir: Path
    weight: float
    temperature: float


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


def _refit_members(root: Path) -> tuple[list[Member], dict[str, Any]]:
    meta = read_model_json(root, required=("members", "classes", "sample_rate", "clip_seconds"))
    where = root / MODEL_JSON
    members = []
    for i, m in enumerate(meta["members"]):
        if not isinstance(m, dict) or not {"dir", "weight", "temperature"} <= set(m):
            raise EscnetError(f"{where}: member {i} needs dir, weight and temperature")
        path = (root / str(m["dir"])).resolve()
        if root.resolve() not in path.parents:
            raise EscnetError(f"{where}: member {i} ({m['dir']}) is outside {root}")
        members.append(Member(path, float(m["weight"]), float(m["temperature"])))
    return members, {"ensemble": str(root), "fold": None, **meta.get("trained_on", {})}


def ensemble_members(
    path: str | os.PathLike[str], *, fold: int | None = None
) -> tuple[list[Member], dict[str, Any]]:
    """The members with a non-zero weight (weights normalised to sum to 1) of an ensemble, and a
    record of where they came from (for :attr:`~escnet.inference.backend.ModelSpec.metadata`).

    Raises:
        EscnetError: the ensemble's file is unreadable, the fold is not in it, a member is
            missing, or ``fold`` is given for a refitted ensemble (it has no folds).
    """
    root = Path(path)
    if (root / ENSEMBLE_JSON).is_file():
        record = _read(root)
        entry = _fold_record(root, record, fold)
        k = int(entry["test_fold"])
        members = [
            Member(resolve_model_dir(member_run_dir(root, str(m)), fold=k), float(w), float(t))
            for m, w, t in zip(
                record["members"], entry["weights"], entry["temperatures"], strict=True
            )
        ]
        origin: dict[str, Any] = {"ensemble": str(root), "fold": k}
    else:
        if fold is not None:
            raise EscnetError(f"{root}: a refitted ensemble has no folds; drop --fold")
        members, origin = _refit_members(root)
    used = [m for m in members if m.weight > 0]
    total = sum(m.weight for m in used)
    if not used or total <= 0:
        raise EscnetError(f"{root}: no member has a positive weight; rebuild the ensemble")
    return [Member(m.model_dir, m.weight / total, m.temperature) for m in used], origin


def load_ensemble(
    path: str | os.PathLike[str],
    *,
    fold: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> tuple[ModelSpec, Backend]:
    """Open an ensemble for the predictor (module docstring).

    Raises:
        EscnetError: see :func:`ensemble_members`; also members that disagree on classes,
            sample rate or clip length.
    """
    root = Path(path)
    used, origin = ensemble_members(root, fold=fold)
    members = [(load_torch(m.model_dir, device=device, threads=threads), m) for m in used]
    first = members[0][0][0]
    for (spec, _), _ in members[1:]:
        same = (spec.classes, spec.sample_rate, spec.clip_seconds)
        if same != (first.classes, first.sample_rate, first.clip_seconds):
            raise EscnetError(
                f"{root}: member {spec.path} differs from {first.path} in classes, sample rate "
                "or clip length; an ensemble's members must share them"
            )

    def backend(batch: np.ndarray) -> np.ndarray:
        out = np.zeros((batch.shape[0], len(first.classes)), np.float64)
        for (_, run), m in members:
            log_p = np.log(np.clip(np.asarray(run(batch), np.float64), 1e-30, None))
            log_p /= m.temperature
            p = np.exp(log_p - log_p.max(1, keepdims=True))
            out += m.weight * p / p.sum(1, keepdims=True)
        return out.astype(np.float32)

    spec = ModelSpec(
        name=f"ensemble of {len(members)} ({', '.join(s.name for (s, _), _ in members)})",
        classes=first.classes,
        sample_rate=first.sample_rate,
        clip_seconds=first.clip_seconds,
        metadata={
            "escnet_version": first.metadata.get("escnet_version"),
            **origin,
            "members": [str(m.model_dir) for m in used],
            "member_weights": [m.weight for m in used],
            "temperatures": [m.temperature for m in used],
        },
        path=root,
    )
    return spec, backend
