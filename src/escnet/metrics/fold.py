"""The test figures of one fold of a cross-validation run (:class:`FoldResult`): computed once
from the chosen model's test logits, kept as a fold entry of ``results.json``; the test clips'
predictions, ``test_predictions.csv`` (:func:`write_predictions`); the validation and test
clips' logits, ``logits.npz`` (:func:`write_logits`, :class:`FoldLogits`), which ensembles
choose their weights on.

Examples:
    >>> import torch
    >>> from escnet.metrics.fold import FoldResult
    >>> logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    >>> FoldResult.tested(1, logits, labels, 2, selection="last epoch", train_clips=8,
    ...                   train_images=8, val_clips=2).accuracy
    0.5
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from escnet.cache import atomic_path, atomic_write_text
from escnet.data.datasets import Dataset
from escnet.metrics.classification import classification_metrics

__all__ = ["FoldLogits", "FoldResult", "nan_if_none", "write_logits", "write_predictions"]


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


def write_predictions(
    path: str | os.PathLike[str],
    dataset: Dataset,
    indices: Sequence[int] | np.ndarray,
    logits: torch.Tensor,
) -> None:
    """``test_predictions.csv``: per test clip (data set ``indices``, in the rows of
    ``logits``) its label, the prediction and the prediction's probability."""
    probs = logits.softmax(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "label", "prediction", "true_class", "predicted_class", "p"])
    for row, i in enumerate(indices):
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


@dataclass
class FoldLogits:
    """A model's logits on one fold's validation and test clips (rows follow the ids)."""

    val_logits: torch.Tensor
    val_ids: list[str]
    val_labels: torch.Tensor
    test_logits: torch.Tensor
    test_ids: list[str]
    test_labels: torch.Tensor

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> FoldLogits:
        """A ``logits.npz`` of :func:`write_logits` with both parts."""
        with np.load(path) as z:
            return cls(
                torch.from_numpy(z["val_logits"]),
                [str(s) for s in z["val_ids"]],
                torch.from_numpy(z["val_labels"]),
                torch.from_numpy(z["test_logits"]),
                [str(s) for s in z["test_ids"]],
                torch.from_numpy(z["test_labels"]),
            )


def write_logits(
    path: str | os.PathLike[str],
    dataset: Dataset,
    parts: Mapping[str, tuple[np.ndarray, torch.Tensor, np.ndarray]],
) -> None:
    """``logits.npz``: per part (``val``, ``test``), from ``(clip indices, logits, labels)``,
    the logits, the clips' ids and their labels."""
    arrays: dict[str, Any] = {}
    for part, (indices, logits, labels) in parts.items():
        ids = np.asarray([dataset[int(i)].clip_id for i in indices])
        arrays |= {f"{part}_logits": logits.numpy(), f"{part}_ids": ids,
                   f"{part}_labels": np.asarray(labels)}  # fmt: skip
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
