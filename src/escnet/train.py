"""Compatibility import: training moved to the package :mod:`escnet.training` (one module per
part: config, data, distributed, loop, checkpoint, records, fold, crossval). This module keeps
``from escnet.train import TrainConfig, cross_validate, ...`` working for one release.
"""

from escnet.training import (
    METRIC_COLUMNS,
    FoldData,
    FoldResult,
    TrainConfig,
    WaveformDataset,
    cross_validate,
    evaluate_run,
    load_dataset,
    load_fold_data,
    predict_logits,
    resolve_device,
    seed_everything,
    train_fold,
    warmup_cosine,
)

__all__ = [
    "METRIC_COLUMNS",
    "FoldData",
    "FoldResult",
    "TrainConfig",
    "WaveformDataset",
    "cross_validate",
    "evaluate_run",
    "load_dataset",
    "load_fold_data",
    "predict_logits",
    "resolve_device",
    "seed_everything",
    "train_fold",
    "warmup_cosine",
]
