"""A trained model as a directory: its layout (torch-free) and saving and loading (torch).

:mod:`escnet.model_dir.layout` names the files, the format version, reads ``model.json`` and
turns a run directory into one of its fold's models; :mod:`escnet.model_dir.io` saves and loads
the network; :mod:`escnet.model_dir.members` resolves an ensemble's members (torch-free) and
:mod:`escnet.model_dir.ensemble` loads them as one network. Only the layout is imported with
this package: the ONNX path needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from escnet.model_dir.layout import (
    ENSEMBLE_JSON,
    FORMAT_VERSION,
    MODEL_JSON,
    ONNX_FILE,
    WEIGHTS,
    is_model_dir,
    read_model_json,
    resolve_model_dir,
)

if TYPE_CHECKING:
    from escnet.model_dir.io import LoadedModel, load_model, save_model

__all__ = [
    "ENSEMBLE_JSON",
    "FORMAT_VERSION",
    "MODEL_JSON",
    "ONNX_FILE",
    "WEIGHTS",
    "LoadedModel",
    "is_model_dir",
    "load_model",
    "read_model_json",
    "resolve_model_dir",
    "save_model",
]

_IO = ("LoadedModel", "load_model", "save_model")


def __getattr__(name: str) -> Any:
    # PEP 562: the torch half is imported when it is first asked for.
    if name in _IO:
        from escnet.model_dir import io

        return getattr(io, name)
    raise AttributeError(f"module 'escnet.model_dir' has no attribute {name!r}")
