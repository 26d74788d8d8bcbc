"""The model directory's layout: its file names, format version and ``model.json`` reader.

Torch-free on purpose: the ONNX path (:mod:`escnet.inference.onnx_backend`) reads model
directories with onnxruntime alone, so everything both paths need to agree on lives here, once.

Examples:
    >>> from escnet.model_dir.layout import MODEL_JSON, is_model_dir
    >>> MODEL_JSON
    'model.json'
    >>> is_model_dir("/nonexistent")
    False
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from escnet.errors import ModelDirError

__all__ = [
    "ACTIVATIONS",
    "ENSEMBLE_JSON",
    "FINAL_DIR",
    "FORMAT_VERSION",
    "MODEL_JSON",
    "ONNX_FILE",
    "TORCH_FIELDS",
    "WEIGHTS",
    "final_model_dir",
    "head_activation",
    "inside",
    "is_ensemble",
    "is_model_dir",
    "member_run_dir",
    "read_model_json",
    "resolve_model_dir",
]

#: Version of the model directory's layout; a newer one than this escnet knows is refused.
FORMAT_VERSION = 1
#: The file that makes a directory a model directory.
MODEL_JSON = "model.json"
#: The network's state dict (tensors only).
WEIGHTS = "weights.pt"
#: The exported graph, waveform in, probabilities out (``escnet export --onnx``).
ONNX_FILE = "model.onnx"
#: The file that makes a directory an ensemble's (:func:`escnet.training.ensemble.ensemble_runs`).
ENSEMBLE_JSON = "ensemble.json"

#: A run's model refitted on all its data (``escnet train --refit``): ``RUN/final``. Prediction
#: and the service take it, when it exists, for a run directory given without a fold.
FINAL_DIR = "final"

#: How a head's logits become scores: ``softmax`` (one label per clip: the scores are a
#: distribution) or ``sigmoid`` (multi-label, as AudioSet: each label scored on its own).
ACTIVATIONS = ("softmax", "sigmoid")

#: Fields a model directory needs for the torch backend; prediction alone needs fewer.
TORCH_FIELDS = ("model", "num_classes", "classes", "front_end", "clip_seconds", "weights")
_PREDICT_FIELDS = ("model", "classes", "sample_rate", "clip_seconds")


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding ``model.json``."""
    return (Path(path) / MODEL_JSON).is_file()


def final_model_dir(path: str | os.PathLike[str]) -> Path | None:
    """``path/final`` when ``path`` is a run (or ensemble) directory that holds a refitted model,
    else ``None``."""
    final = Path(path) / FINAL_DIR
    return final if not is_model_dir(path) and is_model_dir(final) else None


def is_ensemble(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ensemble: a cross-validation ensemble directory (``ensemble.json``,
    members are runs) or a model directory whose ``model.json`` lists member model directories
    (``"members"``, a refitted ensemble)."""
    p = Path(path)
    if (p / ENSEMBLE_JSON).is_file():
        return True
    if not is_model_dir(p):
        return False
    try:
        meta = json.loads((p / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # read_model_json names the fault when the model is opened
    return isinstance(meta, dict) and isinstance(meta.get("members"), list)


def member_run_dir(ensemble_dir: str | os.PathLike[str], member: str) -> Path:
    """A cross-validation ensemble's member run as ``ensemble.json`` records it, or, when the
    runs were moved together, the run of that name beside the ensemble directory.

    Raises:
        ModelDirError: neither exists.
    """
    root = Path(ensemble_dir)
    recorded = Path(member)
    if recorded.is_dir():
        return recorded
    beside = root.parent / recorded.name
    if beside.is_dir():
        return beside
    raise ModelDirError(
        f"{root / ENSEMBLE_JSON}: member run {member} not found (nor {beside}); keep the member "
        "runs where they were, or beside the ensemble directory"
    )


def inside(root: str | os.PathLike[str], name: object, where: str | os.PathLike[str]) -> Path:
    """``root / name`` for a file or directory that ``model.json`` (or ``ensemble.json``) names,
    refused when it leaves ``root``: a model directory is data, and must not make escnet read
    files elsewhere (``"../../x.pt"``, an absolute path, a link pointing out).

    Raises:
        ModelDirError: naming ``where`` and the field's value (never the resolved target).
    """
    base = Path(root).resolve()
    target = (base / str(name)).resolve()
    if not isinstance(name, str) or not name or base not in target.parents:
        raise ModelDirError(
            f"{where}: {name!r} is outside the model directory; a model directory names only "
            "files inside it: re-export the model"
        )
    return target


def read_model_json(
    directory: str | os.PathLike[str], *, required: Sequence[str] = _PREDICT_FIELDS
) -> dict[str, Any]:
    """``model.json`` of a model directory, with the ``required`` fields and version checked.

    Raises:
        ModelDirError: naming the file when it is missing, not JSON, lacks a field or was
            written by a newer escnet.
    """
    path = Path(directory)
    meta_path = path / MODEL_JSON
    if not path.is_dir():
        raise ModelDirError(f"{path}: not a directory; pass a model directory (with {MODEL_JSON})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(
            f"{meta_path}: missing; {path} is not a model directory (write one with "
            "escnet.model_dir.io.save_model or `escnet export`)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{meta_path}: not valid JSON ({exc}); re-export the model") from None
    if not isinstance(meta, dict):
        raise ModelDirError(f"{meta_path}: expected a JSON object; re-export the model")
    missing = [k for k in required if k not in meta]
    if missing:
        raise ModelDirError(
            f"{meta_path}: missing field(s) {', '.join(missing)}; re-export the model"
        )
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelDirError(
            f"{meta_path}: format version {version!r} is newer than this escnet "
            f"reads ({FORMAT_VERSION}); upgrade escnet"
        )
    return meta


def head_activation(meta: dict[str, Any], where: str | os.PathLike[str] = MODEL_JSON) -> str:
    """The activation ``model.json`` records for the head (:data:`ACTIVATIONS`); a directory
    written before the field existed used a softmax.

    Raises:
        ModelDirError: an activation escnet does not know (naming ``where``).
    """
    activation = meta.get("activation", "softmax")
    if activation not in ACTIVATIONS:
        raise ModelDirError(
            f"{where}: activation {activation!r} is not one of {', '.join(ACTIVATIONS)}; "
            "re-export the model"
        )
    return str(activation)


def resolve_model_dir(path: str | os.PathLike[str], fold: int | None = None) -> Path:
    """A model directory from a model directory or a run directory.

    For a run directory (with ``config.json``), the model of ``fold`` (``fold{k}/model``), or,
    when ``fold`` is None, the fold whose model had the best *validation* accuracy (never the
    test fold's score: that would choose by looking at the test data).

    Raises:
        ModelDirError: ``path`` is neither, or the asked fold has no model.
    """
    p = Path(path)
    if is_model_dir(p):
        if fold is not None:
            raise ModelDirError(f"{p}: a model directory has no folds; drop --fold")
        return p
    if (p / ENSEMBLE_JSON).is_file():
        raise ModelDirError(
            f"{p}: an ensemble directory holds no model of its own; give one of its member "
            "runs (listed in its ensemble.json), or pass the ensemble itself to escnet predict, "
            "serve or export"
        )
    if not (p / "config.json").is_file():
        raise ModelDirError(
            f"{p}: neither a model directory ({MODEL_JSON}) nor a run directory (config.json)"
        )
    if fold is not None:
        model_dir = p / f"fold{fold}" / "model"
        if not is_model_dir(model_dir):
            raise ModelDirError(f"{model_dir}: no model for fold {fold} in this run")
        return model_dir
    candidates = sorted(d for d in p.glob("fold*/model") if is_model_dir(d))
    if not candidates:
        raise ModelDirError(f"{p}: the run has no fold{{k}}/model directory yet")

    def val_acc(d: Path) -> float:
        meta = json.loads((d / MODEL_JSON).read_text(encoding="utf-8"))
        value = (meta.get("selection") or {}).get("val_acc")
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else -1.0

    return max(candidates, key=val_acc)
