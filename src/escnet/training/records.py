"""The record a fold leaves of its split, ``split.json``: which clips went where, and which
clips and variants the training items came from; written atomically (the fold's other files:
:func:`escnet.metrics.fold.write_predictions`, :func:`escnet.metrics.report.write_metrics_csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from escnet.cache import atomic_write_json
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split

__all__ = ["write_split"]


def _names(dataset: Dataset, split: Split | ImageSplit, indices: Sequence[int]) -> list[str]:
    """Clip ids; for an image split (augment-then-split) ``<clip id>#<version>``, version 0
    being the original and 1.. its NAA variants."""
    if isinstance(split, ImageSplit):
        n = split.per_clip
        return [f"{dataset[m // n].clip_id}#{m % n}" for m in indices]
    return [dataset[i].clip_id for i in indices]


def write_split(
    path: Path,
    dataset: Dataset,
    split: Split | ImageSplit,
    sources: np.ndarray,
    variants: np.ndarray,
    *,
    rows: str = "train_images",
    kinds: str = "variants",
) -> int:
    """``split.json``: the fold's clips, and which clips (``sources``) and variants or views
    (``variants``) the training items came from, under ``rows`` / ``kinds`` (the frozen methods
    say ``train_rows`` / ``views``). Returns the number of training clips."""
    names, counts = np.unique(variants, return_counts=True)
    clips = sorted({int(i) for i in sources})
    atomic_write_json(
        path,
        {
            "test_fold": split.test_fold,
            "protocol": split.protocol,
            "train": _names(dataset, split, split.train),
            "val": _names(dataset, split, split.val),
            "test": _names(dataset, split, split.test),
            rows: {
                "count": len(sources),
                "sources": sorted(dataset[i].clip_id for i in clips),
                kinds: {str(v): int(c) for v, c in zip(names, counts, strict=True)},
            },
        },
    )
    return len(clips)
