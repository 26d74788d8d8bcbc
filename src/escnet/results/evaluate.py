"""A finished run tested again from its saved models (:func:`evaluate_run`): each fold's test
clips turned into images again (through the feature cache) and classified by the fold's model
directory, the figures compared with the run's ``results.json``.

Examples:
    >>> from escnet.results.evaluate import evaluate_run
    >>> evaluate_run("runs/esc10-cnn7")["matches_results"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from escnet.cache import read_json
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit
from escnet.errors import EscnetError
from escnet.metrics import report
from escnet.metrics.classification import classification_metrics
from escnet.model_dir.io import load_model
from escnet.training.config import TrainConfig
from escnet.training.crossval import fold_model_dir
from escnet.training.data import load_dataset
from escnet.training.distributed import resolve_device
from escnet.training.loop import Compute

__all__ = ["evaluate_run"]

log = logging.getLogger(__name__)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    fold: int | None = None,
    *,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Recompute the test metrics of a finished run from its saved models.

    The run's ``config.json`` names the data set, model, folds and split seed; each fold's test
    clips are turned into images again (through the feature cache) and classified by the fold's
    model directory (``fold{k}/model``, :func:`escnet.model_dir.io.load_model`; a run from before
    model directories gets one made from its ``best.pt``).

    Args:
        run_dir: a directory written by :func:`escnet.training.cross_validate`.
        fold: evaluate this test fold only (default: every fold with a ``best.pt``).
        device: where to run the model (``"auto"``: CUDA, MPS, CPU).
        progress: show progress bars.

    Returns:
        ``{"run_dir", "dataset", "model", "classes", "folds": [per-fold metrics as in
        results.json], "summary": {metric: {"mean", "std"}}, "matches_results": bool | None}``;
        ``matches_results`` compares accuracy and macro F1 with ``results.json`` (``None`` when
        it has no entry for these folds).

    Raises:
        FileNotFoundError: no ``config.json`` or no ``best.pt`` for the asked fold.
    """
    run = Path(run_dir)
    config = TrainConfig.from_json(run / "config.json")
    dataset = load_dataset(config)
    dev = resolve_device(device)
    planned = config.folds if config.folds is not None else dataset.folds

    def has_model(k: int) -> bool:  # a probe run has model directories and no best.pt
        fold_dir = run / f"fold{k}"
        return (fold_dir / "best.pt").is_file() or (fold_dir / "model" / "model.json").is_file()

    if fold is not None:
        if not has_model(fold):
            raise FileNotFoundError(
                f"{run / f'fold{fold}' / 'best.pt'}: no checkpoint for fold {fold}"
            )
        folds = [fold]
    else:
        folds = [f for f in planned if has_model(f)]
        if not folds:
            raise FileNotFoundError(f"{run}: no fold{{k}}/best.pt checkpoint to evaluate")

    entries = [_evaluate_fold(run, k, config, dataset, dev, progress) for k in folds]
    out = report.build_results(
        config.to_dict(), entries, dataset.classes, planned_folds=folds, data=dataset.copy_info()
    )
    matches = _matches_results(run, entries)
    return {
        "run_dir": str(run),
        "dataset": config.dataset,
        "model": config.model,
        "classes": list(dataset.classes),
        "folds": out["folds"],
        "summary": out["summary"],
        "matches_results": matches,
    }


def _evaluate_fold(
    run: Path, k: int, config: TrainConfig, dataset: Dataset, dev: torch.device, progress: bool
) -> dict[str, Any]:
    """Test fold ``k`` again with its model directory: a fold entry as in ``results.json``."""
    loaded = load_model(fold_model_dir(run / f"fold{k}", config), device=str(dev))
    if loaded.classes != list(dataset.classes):
        raise EscnetError(
            f"{loaded.path}: the model's classes differ from {dataset.name}'s; is "
            f"config.json's data set ({config.dataset}) the one this run trained on?"
        )
    split = config.split(dataset, k)
    if isinstance(split, ImageSplit):
        raise EscnetError(
            f"{run}: evaluate_run re-tests clips, but this run's protocol "
            f"({split.protocol}) tests NAA images; its results.json holds its test metrics"
        )
    compute = Compute.of(config, dev)
    compute.prepare(loaded.model)
    logits, _, y = compute.clip_logits(
        loaded.model, loaded.front_end, dataset, split.test, cache_dir=config.cache_dir,
        workers=config.workers, progress=progress,
        batch_size=2 * getattr(config.settings, "batch_size", 32),
    )  # fmt: skip
    labels = torch.from_numpy(y)
    metrics = classification_metrics(y, logits.argmax(1).numpy(), dataset.num_classes)
    log.info(
        "fold %d: test accuracy %.4f, macro F1 %.4f", k, metrics["accuracy"], metrics["macro_f1"]
    )
    return {
        "test_fold": k,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "loss": F.cross_entropy(logits, labels).item(),
        "per_class_accuracy": metrics["per_class_accuracy"],
        "confusion_matrix": metrics["confusion_matrix"],
        "best_epoch": int((loaded.metadata.get("selection") or {}).get("epoch", 0)),
        "test_clips": int(len(labels)),
        "test_ids": split.test_ids(dataset),
    }


def _matches_results(run: Path, entries: list[dict[str, Any]]) -> bool | None:
    """Whether recomputed accuracy and macro F1 equal ``results.json``'s (``None``: no entry)."""
    saved = read_json(run / "results.json")
    if saved is None:
        return None
    by_fold = {int(e["test_fold"]): e for e in saved.get("folds", [])}
    pairs = [(e, by_fold[e["test_fold"]]) for e in entries if e["test_fold"] in by_fold]
    if not pairs:
        return None
    # Equal figures on other clips prove nothing: the rebuilt test folds must hold the run's
    # clips (runs made before clip ids were saved have none to compare).
    other = [a["test_fold"] for a, b in pairs if b.get("test_ids") not in (None, a["test_ids"])]
    if other:
        log.warning(
            "%s: the rebuilt test fold(s) %s hold other clips than the run tested; are the data "
            "set's options (config.json: root, group_pattern, folds_csv, num_folds) the run's?",
            run,
            ",".join(map(str, other)),
        )
        return False
    matches = all(
        abs(a["accuracy"] - b["accuracy"]) < 1e-9 and abs(a["macro_f1"] - b["macro_f1"]) < 1e-9
        for a, b in pairs
    )
    if not matches:
        log.warning("%s: recomputed test metrics differ from results.json", run)
    return matches
