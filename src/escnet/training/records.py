"""The files a fold leaves beside its checkpoints: ``split.json`` (which clips went where),
``metrics.csv`` (one row per epoch) and ``test_predictions.csv``; each written atomically.
:func:`read_json` reads any JSON file of a run back.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from escnet.cache import atomic_write_json, atomic_write_text
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split
from escnet.errors import EscnetError
from escnet.training.config import METRIC_COLUMNS
from escnet.training.data import FoldData

__all__ = ["json_object", "read_json", "write_metrics_csv", "write_predictions", "write_split"]


def read_json(path: Path, missing: str | None = None) -> dict[str, Any] | None:
    """A run's JSON object at ``path``: ``None`` when the file is absent, or with ``missing``
    (what the caller needed it for), an :class:`~escnet.errors.EscnetError` saying so.

    Raises:
        EscnetError: the file is not valid JSON, or not an object.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing is None:
            return None
        raise EscnetError(f"{path}: missing; {missing}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EscnetError(f"{path}: not valid JSON ({exc}); restore or remove it") from None
    if not isinstance(value, dict):
        raise EscnetError(f"{path}: expected a JSON object")
    return value


def json_object(path: Path, missing: str) -> dict[str, Any]:
    """:func:`read_json` of a file that must be there (``missing``: what it is needed for)."""
    value = read_json(path, missing)
    assert value is not None
    return value


def write_metrics_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in history:
        cells = []
        for col in METRIC_COLUMNS:
            v = row[col]
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:.6g}")
            else:
                cells.append(str(v))
        writer.writerow(cells)
    atomic_write_text(path, buf.getvalue())


def _names(dataset: Dataset, split: Split | ImageSplit, indices: Sequence[int]) -> list[str]:
    """Clip ids; for an image split (augment-then-split) ``<clip id>#<version>``, version 0
    being the original and 1.. its NAA variants."""
    if isinstance(split, ImageSplit):
        n = split.per_clip
        return [f"{dataset[m // n].clip_id}#{m % n}" for m in indices]
    return [dataset[i].clip_id for i in indices]


def write_split(path: Path, dataset: Dataset, split: Split | ImageSplit, data: FoldData) -> None:
    variants, counts = np.unique(data.train_variants, return_counts=True)
    atomic_write_json(
        path,
        {
            "test_fold": split.test_fold,
            "protocol": split.protocol,
            "train": _names(dataset, split, split.train),
            "val": _names(dataset, split, split.val),
            "test": _names(dataset, split, split.test),
            "train_images": {
                "count": len(data.train_sources),
                "sources": sorted({dataset[int(i)].clip_id for i in data.train_sources}),
                "variants": {str(v): int(c) for v, c in zip(variants, counts, strict=True)},
            },
        },
    )


def write_predictions(path: Path, dataset: Dataset, data: FoldData, logits: torch.Tensor) -> None:
    probs = logits.softmax(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "label", "prediction", "true_class", "predicted_class", "p"])
    for row, i in enumerate(data.test_indices):
        clip = dataset[int(i)]
        pred = int(probs[row].argmax())
        writer.writerow(
            [
                clip.clip_id,
                clip.label,
                pred,
                dataset.classes[clip.label],
                dataset.classes[pred],
                f"{float(probs[row, pred]):.4f}",
            ]
        )
    atomic_write_text(path, buf.getvalue())
