"""escnet: environmental sound classification with spectral images and meaningful augmentation.

The data flow, one sub-package per stage, each usable alone::

    data (data sets, folds) -> augment (audio: NAA) -> features (spectral images)
    -> augment (image: TAA) -> models -> training (metrics, report) -> results / experiment;
    a saved model (model_dir) -> inference (predict) / export / serve

The stages' entry points are exported here lazily (PEP 562), as ``timm.create_model`` is:
``import escnet`` imports no torch, and ``escnet.create_model`` imports the models stage when it
is first asked for.

Examples:
    >>> import escnet
    >>> escnet.__version__
    '0.1.0'
    >>> "create_model" in dir(escnet)
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports
from escnet.errors import (
    AudioError,
    DatasetError,
    DownloadError,
    EscnetError,
    MetadataError,
    ModelDirError,
    ParameterError,
    WeightsError,
)
from escnet.version import __version__

if TYPE_CHECKING:
    from escnet.augment.policy import get_policy
    from escnet.data.audio import load_audio
    from escnet.data.datasets import get_dataset
    from escnet.data.folds import fold_split
    from escnet.experiment.grid import run_grid
    from escnet.export.onnx import export_model
    from escnet.features.prepare import prepare_features
    from escnet.features.spectrogram import LogMel, LogMelConfig
    from escnet.inference.predictor import load
    from escnet.models.registry import create_model, list_models
    from escnet.results.aggregate import aggregate
    from escnet.results.evaluate import evaluate_run
    from escnet.training.config import TrainConfig
    from escnet.training.crossval import cross_validate
    from escnet.training.ensemble import ensemble_runs

_EXPORTS = {
    "get_dataset": "escnet.data.datasets",
    "fold_split": "escnet.data.folds",
    "load_audio": "escnet.data.audio",
    "get_policy": "escnet.augment.policy",
    "LogMel": "escnet.features.spectrogram",
    "LogMelConfig": "escnet.features.spectrogram",
    "prepare_features": "escnet.features.prepare",
    "create_model": "escnet.models.registry",
    "list_models": "escnet.models.registry",
    "TrainConfig": "escnet.training.config",
    "cross_validate": "escnet.training.crossval",
    "evaluate_run": "escnet.results.evaluate",
    "ensemble_runs": "escnet.training.ensemble",
    "fit": "escnet.recipes.fit",
    "aggregate": "escnet.results.aggregate",
    "run_grid": "escnet.experiment.grid",
    "export_model": "escnet.export.onnx",
    "load": "escnet.inference.predictor",
}

__all__ = [
    "AudioError",
    "DatasetError",
    "DownloadError",
    "EscnetError",
    "MetadataError",
    "ModelDirError",
    "ParameterError",
    "WeightsError",
    "__version__",
    "LogMel",
    "LogMelConfig",
    "TrainConfig",
    "aggregate",
    "create_model",
    "cross_validate",
    "ensemble_runs",
    "fit",
    "evaluate_run",
    "export_model",
    "fold_split",
    "get_dataset",
    "get_policy",
    "list_models",
    "load",
    "load_audio",
    "prepare_features",
    "run_grid",
]

__getattr__, _dir_exports = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
