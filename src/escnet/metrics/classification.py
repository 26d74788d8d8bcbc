"""Classification metrics on plain NumPy arrays: accuracy, macro F1, per-class accuracy, confusion
matrix, and mean ± standard deviation over folds.

Every function takes class indices (``y_true``, ``y_pred`` of shape (N,)) and, where the number
of classes matters, ``num_classes``, so that a class absent from one fold's test clips still has
its row in the confusion matrix. The definitions match scikit-learn's (``accuracy_score``,
``f1_score(average="macro")``, ``confusion_matrix``), which the tests check.

Examples:
    >>> import numpy as np
    >>> from escnet.metrics import accuracy, confusion_matrix, macro_f1
    >>> y_true, y_pred = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    >>> accuracy(y_true, y_pred)
    0.75
    >>> confusion_matrix(y_true, y_pred, 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    >>> round(macro_f1(y_true, y_pred, 3), 4)
    0.7778
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from escnet.errors import ParameterError

__all__ = [
    "accuracy",
    "better_choice",
    "classification_metrics",
    "confusion_matrix",
    "macro_f1",
    "mean_std",
    "per_class_accuracy",
]


def _check_labels(
    y_true: Any, y_pred: Any, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ParameterError(
            f"y_true and y_pred must be 1-D arrays of class indices, got shapes {t.shape} and "
            f"{p.shape}"
        )
    if t.shape != p.shape:
        raise ParameterError(
            f"y_true has {t.shape[0]} labels, y_pred {p.shape[0]}: they must match"
        )
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ParameterError(f"{name} must hold integer class indices, got dtype {a.dtype}")
        if a.size and a.min() < 0:
            raise ParameterError(f"{name} holds a negative class index ({a.min()})")
        if num_classes is not None and a.size and a.max() >= num_classes:
            raise ParameterError(
                f"{name} holds class index {a.max()}, but num_classes is {num_classes}"
            )
    return t.astype(np.int64, copy=False), p.astype(np.int64, copy=False)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of predictions equal to the true class; NaN for no samples."""
    t, p = _check_labels(y_true, y_pred)
    return float(np.mean(t == p)) if t.size else math.nan


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    if num_classes < 1:
        raise ParameterError(f"num_classes must be >= 1, got {num_classes}")
    t, p = _check_labels(y_true, y_pred, num_classes)
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix: correct / clips of that class (NaN where a
    class has no clips)."""
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ParameterError(f"cm must be a square matrix, got shape {m.shape}")
    support = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(m) / support, np.nan)


def macro_f1(y_true: Any, y_pred: Any, num_classes: int) -> float:
    """Unweighted mean of the per-class F1 scores, ``2 tp / (2 tp + fp + fn)``.

    As scikit-learn's ``f1_score(average="macro")``: the mean runs over the classes that occur in
    ``y_true`` or ``y_pred``; a class that occurs only in ``y_pred`` scores 0. NaN for no samples.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    if not present.any():
        return math.nan
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return float(f1.mean())


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and *sample* standard deviation (``ddof=1``) over folds, ignoring NaN.

    One value has no spread to estimate: its standard deviation is NaN (reported as "–"), not 0;
    no (non-NaN) values give ``(nan, nan)``.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[~np.isnan(a)]
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


def classification_metrics(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro F1, per-class accuracy and the confusion matrix, as plain Python values.

    Returns:
        ``{"accuracy": float, "macro_f1": float, "per_class_accuracy": [float | None, ...],
        "confusion_matrix": [[int, ...], ...], "count": int}``; a class without test clips
        has per-class accuracy ``None`` (JSON ``null``).
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, num_classes),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class_accuracy(cm)],
        "confusion_matrix": cm.tolist(),
        "count": int(cm.sum()),
    }


def better_choice(accuracy: float, loss: float, best: tuple[float, float] | None) -> bool:
    """The one rule for the best epoch or setting on validation: higher accuracy, ties broken
    by the lower loss, exact ties keep the earlier; ``best`` is ``(accuracy, loss)`` of the best
    so far (``None``: none yet, so this one is better)."""
    return best is None or (accuracy, -loss) > (best[0], -best[1])
