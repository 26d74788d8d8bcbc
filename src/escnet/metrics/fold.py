"""The test figures of one fold of a cross-validation run (:class:`FoldResult`): computed once
from the chosen model's test logits, kept as a fold entry of ``results.json``.

Examples:
    >>> import torch
    >>> from escnet.metrics.fold import FoldResult
    >>> logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    >>> FoldResult.tested(1, logits, labels, 2, selection="last epoch", train_clips=8,
    ...                   train_images=8, val_clips=2).accuracy
    0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from escnet.metrics.classification import classification_metrics

__all__ = ["FoldResult", "nan_if_none"]


@dataclass
class FoldResult:
    """Test metrics of one fold, computed once with the best checkpoint.

    Attributes:
        test_fold: the held-out fold.
        accuracy, macro_f1: on the test fold.
        loss: mean cross-entropy on the test fold.
        per_class_accuracy: per class (index = label), ``None`` for a class without test clips.
        confusion_matrix: rows = true class, columns = predicted class.
        best_epoch: the epoch (1-based) whose weights were tested.
        epochs_run: epochs trained (fewer than configured when stopped early).
        stopped_early: early stopping ended the training.
        selection: how ``best_epoch`` was chosen.
        train_clips, train_images, val_clips, test_clips: sizes (train_images counts NAA
            variants; with online NAA it equals train_clips).
        test_ids: the ids of the test fold's clips (``None`` in runs made before they were
            recorded), so that a rebuilt split can be checked to be the same.
    """

    test_fold: int
    accuracy: float
    macro_f1: float
    loss: float
    per_class_accuracy: list[float | None]
    confusion_matrix: list[list[int]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    selection: str
    train_clips: int
    train_images: int
    val_clips: int
    test_clips: int
    test_ids: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def tested(
        cls,
        test_fold: int,
        logits: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        *,
        selection: str,
        train_clips: int,
        train_images: int,
        val_clips: int,
        best_epoch: int = 0,
        epochs_run: int = 0,
        stopped_early: bool = False,
    ) -> FoldResult:
        """The one place a fold's test figures are computed: from the chosen model's logits on
        the test clips, (N, classes), and their labels, (N,)."""
        metrics = classification_metrics(labels.numpy(), logits.argmax(1).numpy(), num_classes)
        return cls(
            test_fold=test_fold,
            accuracy=metrics["accuracy"],
            macro_f1=metrics["macro_f1"],
            loss=F.cross_entropy(logits, labels).item(),
            per_class_accuracy=metrics["per_class_accuracy"],
            confusion_matrix=metrics["confusion_matrix"],
            best_epoch=best_epoch,
            epochs_run=epochs_run,
            stopped_early=stopped_early,
            selection=selection,
            train_clips=train_clips,
            train_images=train_images,
            val_clips=val_clips,
            test_clips=len(labels),
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], classes: Sequence[str]) -> FoldResult:
        """From a fold entry of ``results.json`` (per-class accuracy keyed by class name)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        per_class = kept["per_class_accuracy"]
        if isinstance(per_class, Mapping):
            kept["per_class_accuracy"] = [per_class.get(c) for c in classes]
        for key in ("accuracy", "macro_f1", "loss"):
            kept[key] = nan_if_none(kept[key])
        return cls(**kept)


def nan_if_none(v: float | None) -> float:
    return math.nan if v is None else float(v)
