"""Metrics and the run report: the stage after the model, usable on any predictions.

* :mod:`escnet.metrics.classification` -- accuracy, macro F1, per-class accuracy, the confusion
  matrix and mean ± std over folds, on plain NumPy arrays; the one rule for the best choice on
  validation (:func:`better_choice`);
* :mod:`escnet.metrics.report` -- a cross-validation run's ``results.json``, figures and
  ``report.md``, (re)drawn from its files alone.

Examples:
    >>> import numpy as np
    >>> from escnet.metrics import classification_metrics
    >>> classification_metrics(np.array([0, 1]), np.array([0, 0]), 2)["accuracy"]
    0.5
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

# The figures need NumPy only, so they load at once; the report (matplotlib) when first used.
from escnet.metrics.classification import (
    accuracy,
    better_choice,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    mean_std,
    per_class_accuracy,
)

if TYPE_CHECKING:
    from escnet.metrics.report import build_results, write_report, write_results

_REPORT = ("build_results", "write_report", "write_results")
_EXPORTS = dict.fromkeys(_REPORT, "escnet.metrics.report")
__all__ = [
    "accuracy",
    "better_choice",
    "build_results",
    "classification_metrics",
    "confusion_matrix",
    "macro_f1",
    "mean_std",
    "per_class_accuracy",
    "write_report",
    "write_results",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
