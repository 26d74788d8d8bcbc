"""One fold of a frozen method, top to bottom (:func:`train_frozen_fold`): the split checked to
be of clips, the method's fit (:func:`escnet.training.frozen.probe.fit_probe_fold`,
:func:`escnet.training.frozen.partial.fit_partial_fold`), then what every such fold leaves in
``run_dir/fold{k}/``, the same way for both: ``model/``, ``logits.npz``,
``test_predictions.csv``, ``split.json``, ``<method>.json`` (and ``metrics.csv`` with epochs).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from escnet.cache import atomic_write_json
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split
from escnet.errors import EscnetError
from escnet.metrics.fold import FoldResult, write_logits, write_predictions
from escnet.metrics.report import write_metrics_csv
from escnet.training.config import TrainConfig
from escnet.training.data import save_fold_model
from escnet.training.frozen.partial import fit_partial_fold
from escnet.training.frozen.probe import fit_probe_fold
from escnet.training.records import write_split

__all__ = ["train_frozen_fold"]

log = logging.getLogger(__name__)

_FITS = {"probe": fit_probe_fold, "partial": fit_partial_fold}


def train_frozen_fold(
    config: TrainConfig,
    dataset: Dataset,
    split: Split | ImageSplit,
    run_dir: str | Path,
    *,
    progress: bool = True,
) -> FoldResult:
    """Fit ``config.method`` (``probe`` or ``partial``) on ``split.train``, choose on
    ``split.val``, test once on ``split.test``; write the fold's files (module docstring).

    Raises:
        EscnetError: ``split`` is a split of NAA images (``augment-then-split``): the frozen
            methods read cached views of clips.
    """
    method = config.method
    if isinstance(split, ImageSplit):
        raise EscnetError(
            f"method {method!r} splits clips; protocol {split.protocol!r} splits NAA images: "
            "use protocol 'official-folds' or 'random-split'"
        )
    started = time.perf_counter()
    fold = split.test_fold if split.test_fold is not None else 0
    fold_dir = Path(run_dir) / f"fold{fold}"
    fit = _FITS[method](config, dataset, split, progress)
    save_fold_model(
        fold_dir / "model",
        fit.model,
        dataset,
        config,
        model_kwargs=fit.model_kwargs,
        selection={"test_fold": fold, **fit.selection},
    )
    if fit.history is not None:
        write_metrics_csv(fold_dir / "metrics.csv", fit.history)
    write_logits(fold_dir / "logits.npz", dataset, fit.parts)
    test_indices, test_logits, test_labels = fit.parts["test"]
    write_predictions(fold_dir / "test_predictions.csv", dataset, test_indices, test_logits)
    # the record that no validation or test clip fed the head: the training rows' clips, views
    train_clips = write_split(
        fold_dir / "split.json",
        dataset,
        split,
        fit.train.source,
        fit.train.view,
        rows="train_rows",
        kinds="views",
    )
    result = FoldResult.tested(
        fold,
        test_logits,
        torch.from_numpy(test_labels),
        dataset.num_classes,
        selection=fit.rule,
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        train_clips=train_clips,
        train_images=len(fit.train.source),
        val_clips=len(fit.parts["val"][2]),
    )
    seconds = time.perf_counter() - started
    fit.record["seconds"]["total"] = seconds
    atomic_write_json(fold_dir / f"{method}.json", {**fit.record, "test_acc": result.accuracy})
    log.info(
        "fold %d: %s test accuracy %.4f (val %.4f, %s), %.0f s",
        fold,
        method,
        result.accuracy,
        fit.val_acc,
        fit.summary,
        seconds,
    )
    return result
