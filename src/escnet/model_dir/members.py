"""An ensemble's members, read from its files (and a refitted ensemble's written): torch-free,
so that export, the torch backend and the ONNX path resolve an ensemble the same way.

Two kinds of ensemble name their members:

* a cross-validation ensemble directory (``escnet ensemble ... --out DIR``) holds no network of
  its own: ``ensemble.json`` names its member runs and, per test fold, each member's temperature
  and weight (chosen on that fold's validation split). Its members are one fold's models: the
  fold with the best ensemble *validation* accuracy, or ``fold``;
* a refitted ensemble is a model directory whose ``model.json`` lists its members (model
  directories inside it, trained on all the data) with their weights and temperatures::

      {"members": [{"dir": "members/a", "weight": 0.5, "temperature": 1.2}, ...],
       "classes": [...], "sample_rate": 32000, "clip_seconds": 5.0, "trained_on": {...}}

Either way the ensemble's probabilities are the weighted mean of the members' temperature-scaled
probabilities ``softmax(log p / T)``, as :func:`escnet.training.ensemble.average_probabilities`
computed them on the test fold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escnet.cache import atomic_write_json
from escnet.errors import EscnetError
from escnet.model_dir.layout import (
    ENSEMBLE_JSON,
    FORMAT_VERSION,
    MODEL_JSON,
    inside,
    member_run_dir,
    read_model_json,
    resolve_model_dir,
)
from escnet.version import __version__

__all__ = ["REFIT_FIELDS", "Member", "ensemble_members", "save_refit_ensemble"]

#: Fields a refitted ensemble's ``model.json`` must have.
REFIT_FIELDS = ("members", "classes", "sample_rate", "clip_seconds")


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
    meta = read_model_json(root, required=REFIT_FIELDS)
    where = root / MODEL_JSON
    if not isinstance(meta["members"], list):
        raise EscnetError(f"{where}: members must be a list of member records")
    members = []
    for i, m in enumerate(meta["members"]):
        if not isinstance(m, dict) or not {"dir", "weight", "temperature"} <= set(m):
            raise EscnetError(f"{where}: member {i} needs dir, weight and temperature")
        path = inside(root, m["dir"], f"{where}: member {i}")
        members.append(Member(path, float(m["weight"]), float(m["temperature"])))
    return members, {"ensemble": str(root), "fold": None, **(meta.get("trained_on") or {})}


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


def save_refit_ensemble(
    target: Path, members: list[dict[str, Any]], first: Mapping[str, Any], **extra: Any
) -> Path:
    """Write a refitted ensemble's ``model.json`` into ``target``, whose ``members/`` already
    hold the members' model directories: ``members`` (``dir``, ``weight``, ``temperature``
    each), the classes and audio of ``first`` (a member's ``model.json``) and ``extra`` fields.
    Written last, so that a directory with a ``model.json`` is whole."""
    atomic_write_json(
        target / MODEL_JSON,
        {
            "format_version": FORMAT_VERSION,
            "escnet_version": __version__,
            "model": f"ensemble of {len(members)} {first['model']}",
            **{k: first[k] for k in ("classes", "num_classes", "sample_rate", "clip_seconds")},
            "members": members,
            **extra,
        },
    )
    return target
