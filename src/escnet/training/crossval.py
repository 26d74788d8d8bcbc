"""Leave-one-fold-out cross-validation over a data set's folds (:func:`cross_validate`), and the
re-evaluation of a finished run from its saved models (:func:`evaluate_run`).

A run directory holds::

    config.json            the TrainConfig, resolved (device used, folds, workers, versions)
    results.json           per fold and mean ± std (written after every fold)
    report.md, *.png       the report (escnet.training.report), written at the end
    fold{k}/...            the files of :func:`escnet.training.fold.train_fold`
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from escnet.cache import atomic_write_json
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split, protocol_split
from escnet.errors import EscnetError, ParameterError
from escnet.features.prepare import default_workers, prepare_features
from escnet.machine import describe_cpu
from escnet.model_dir.io import load_model, save_model
from escnet.models import create_model, get_model_info
from escnet.training import report
from escnet.training.config import FinetuneConfig, FoldResult, TrainConfig, check_resumable
from escnet.training.data import load_dataset, with_dataset
from escnet.training.distributed import Dist, distributed, local_rank, resolve_device
from escnet.training.fold import train_fold
from escnet.training.frozen.partial import train_partial_fold
from escnet.training.frozen.probe import train_probe_fold
from escnet.training.loop import Compute
from escnet.training.metrics import classification_metrics
from escnet.training.records import read_json

__all__ = ["cross_validate", "evaluate_run"]

log = logging.getLogger(__name__)


def _environment(device: torch.device, world_size: int) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        escnet_version = version("escnet")
    except PackageNotFoundError:
        escnet_version = "unknown"
    return {
        "device_type": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "world_size": world_size,
        "cpu": describe_cpu(),
        "torch": torch.__version__,
        "escnet": escnet_version,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def cross_validate(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    dataset: Dataset | str | None = None,
    resume: bool = False,
    progress: bool = True,
    on_fold: Callable[[FoldResult, bool], None] | None = None,
) -> dict[str, Any]:
    """Leave-one-fold-out over ``config.folds``: train, select and test one model per fold.

    The data set is ``dataset`` when given -- any loaded :class:`~escnet.data.datasets.Dataset`
    (a folder keeps its ``group_pattern`` / ``folds_csv`` grouping) or a registry name -- else the
    one ``config`` names. Its options are saved in ``config.json``, so that
    :func:`evaluate_run` rebuilds the same split.

    Writes ``config.json`` (resolved), then per fold the files of :func:`train_fold`, updates
    ``results.json`` after each fold, and at the end writes the report (``report.md`` and its
    figures, :func:`escnet.training.report.write_report`).

    Args:
        config: the run's configuration.
        run_dir: directory of the run; created if needed. It must not hold another run unless
            ``resume`` is true.
        resume: continue an interrupted run: folds already in ``results.json`` are skipped, an
            unfinished fold continues from its ``last.pt``.
        progress: show progress bars.
        on_fold: called after each fold with its result and whether it was finished earlier
            (``resume``), e.g. to show progress per fold.

    Returns:
        The content of ``results.json`` (see :func:`escnet.training.report.build_results`).

    Raises:
        EscnetError: ``run_dir`` holds a run and ``resume`` is false, or it holds a run of
            another configuration.
        ValueError: a fold of ``config.folds`` (the test folds) is not a fold of the data set;
            every fold the data set has (for a partial copy, every fold it holds) is used.
    """
    run = Path(run_dir)
    config = with_dataset(config, dataset)
    device = resolve_device(config.device, local_rank())
    with distributed(device) as ddp:
        if isinstance(dataset, Dataset):
            if config.clip_seconds is not None:
                dataset = dataclasses.replace(dataset, duration=config.clip_seconds)
        else:
            dataset = load_dataset(config)
        resolved = _resolve(config, dataset, device)
        folds = list(resolved.folds or [])
        previous = _open_run(run, resolved, resume, ddp, device)
        done = {
            int(entry["test_fold"]): FoldResult.from_dict(entry, dataset.classes)
            for entry in previous
        }
        results: dict[int, FoldResult] = {}
        data = dataset.copy_info()

        def summarise() -> dict[str, Any]:
            return report.build_results(
                resolved.to_dict(),
                [r.to_dict() for r in results.values()],
                dataset.classes,
                planned_folds=folds,
                data=data,
            )

        for fold in folds:
            if fold in done:
                log.info("fold %d: already in results.json, skipped", fold)
                results[fold] = done[fold]
                if on_fold is not None:
                    on_fold(done[fold], True)
                continue
            split = protocol_split(
                dataset,
                config.protocol,
                fold,
                val_fraction=config.val_fraction,
                seed=config.seed,
                val_clips_per_recording=config.val_clips_per_recording,
            )
            split.check_disjoint(dataset)
            result = _train_one_fold(resolved, dataset, split, run, resume, progress)
            # The clips tested, by id: evaluate_run checks that it rebuilds this very split.
            results[fold] = dataclasses.replace(result, test_ids=_test_ids(dataset, split))
            if ddp.is_main:  # after every fold, so that an interrupted run keeps its folds
                report.write_results(run, summarise())
            if on_fold is not None:
                on_fold(results[fold], False)
        summary = summarise()
        if ddp.is_main:
            report.write_results(run, summary)
            report.write_report(run)
        ddp.barrier()
        return summary


def _resolve(config: TrainConfig, dataset: Dataset, device: torch.device) -> TrainConfig:
    """What actually runs: test folds, workers and device made explicit; amp is CUDA-only."""
    # The run uses every fold the data set has (a partial copy: the folds it holds);
    # config.folds only picks which of them are test folds.
    folds = config.folds if config.folds is not None else dataset.folds
    absent = [f for f in folds if f not in dataset.folds]
    if absent:
        raise ParameterError(
            f"--test-folds / TrainConfig.folds picks the test folds, but {absent} are not folds "
            f"of {dataset.name} in {dataset.root}, which has folds "
            f"{','.join(map(str, dataset.folds))}; pick test folds among those"
        )
    info = get_model_info(config.model)  # fail before any work on an unknown model
    pretrained = config.pretrained
    if pretrained is None and config.method != "finetune":
        pretrained = True  # the frozen methods read the pretrained network (config refuses False)
    elif pretrained is None:
        # Users who pick an AudioSet model almost always mean its weights; a silent random
        # start costs a full training run before the low accuracy shows it. Only weights on
        # this machine count: an offline run must not start with a download.
        missing = info.missing_weights() if info.has_weights else "no pretrained weights"
        pretrained = missing is None
        if info.has_weights and missing is not None:
            log.warning(
                "%s starts from random weights: its pretrained weights are not here (%s); "
                "pass --pretrained (TrainConfig.pretrained=True) to download them",
                config.model,
                missing,
            )
    settings = config.settings
    if isinstance(settings, FinetuneConfig):  # mixed precision is a CUDA-only speed-up
        settings = dataclasses.replace(settings, amp=settings.amp and device.type == "cuda")
    workers = config.workers if config.workers is not None else default_workers()
    return dataclasses.replace(
        config,
        folds=list(folds),
        pretrained=pretrained,
        workers=workers,
        device=str(device),
        settings=settings,
    )


def _test_ids(dataset: Dataset, split: Split | ImageSplit) -> list[str] | None:
    """The clip ids of a split's test fold (``None`` for a split of NAA images)."""
    if isinstance(split, ImageSplit):
        return None
    return [dataset[i].clip_id for i in split.test]


def _train_one_fold(
    resolved: TrainConfig,
    dataset: Dataset,
    split: Split | ImageSplit,
    run: Path,
    resume: bool,
    progress: bool,
) -> FoldResult:
    """One test fold by the configured method."""
    if resolved.method == "probe":  # a head on frozen features: no epochs to resume
        return train_probe_fold(resolved, dataset, split, run, progress=progress)
    if resolved.method == "partial":  # minutes on cached activations: no resume
        return train_partial_fold(resolved, dataset, split, run, progress=progress)
    return train_fold(resolved, dataset, split, run, resume=resume, progress=progress)


def _open_run(
    run: Path, resolved: TrainConfig, resume: bool, ddp: Dist, device: torch.device
) -> list[dict[str, Any]]:
    """Write ``config.json`` for a new run, or check that a resumed run's matches; the fold
    entries already in ``results.json`` when resuming."""
    config_path = run / "config.json"
    # Every rank reads what is there before rank 0 writes anything.
    saved = read_json(config_path)
    previous = read_json(run / "results.json") if resume else None
    ddp.barrier()
    if saved is not None and not resume:
        raise EscnetError(
            f"{run} already holds a run ({config_path}); pass resume=True (--resume) to "
            "continue it, or choose a new run directory"
        )
    if saved is not None:
        check_resumable(saved, resolved, config_path)
    elif ddp.is_main:
        atomic_write_json(
            config_path,
            {**resolved.to_dict(), "environment": _environment(device, ddp.world_size)},
        )
    ddp.barrier()
    return list((previous or {}).get("folds", []))


def fold_model_dir(fold_dir: Path, config: TrainConfig) -> Path:
    """``fold_dir/model``; a run from before model directories gets one made from ``best.pt``."""
    model_dir = fold_dir / "model"
    if (model_dir / "model.json").is_file():
        return model_dir
    best_path = fold_dir / "best.pt"
    try:
        state = torch.load(best_path, map_location="cpu", weights_only=True)
        state["model_name"], state["classes"], state["model"]  # noqa: B018 (the keys used below)
    except FileNotFoundError:
        raise
    except Exception as exc:  # unpickling fails in many ways; all mean the same to the user
        raise EscnetError(
            f"{best_path}: not a checkpoint escnet can read ({type(exc).__name__}); train the "
            "fold again (escnet train --resume) or restore the file"
        ) from None
    model = create_model(state["model_name"], len(state["classes"]), pretrained=False)
    clip_seconds = config.clip_seconds or load_dataset(config).duration
    if not clip_seconds:
        raise EscnetError(f"{best_path}: the clip length is unknown; set clip_seconds")
    return save_model(
        model_dir,
        model,
        list(state["classes"]),
        clip_seconds=float(clip_seconds),
        config=state.get("config"),
        state_dict=state["model"],
        selection={
            "test_fold": state.get("test_fold"),
            "epoch": state.get("epoch"),
            "val_acc": state.get("val_acc"),
            "val_loss": state.get("val_loss"),
        },
    )


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
        run_dir: a directory written by :func:`cross_validate`.
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
    split = protocol_split(
        dataset,
        config.protocol,
        k,
        val_fraction=config.val_fraction,
        seed=config.seed,
        val_clips_per_recording=config.val_clips_per_recording,
    )
    if isinstance(split, ImageSplit):
        raise EscnetError(
            f"{run}: evaluate_run re-tests clips, but this run's protocol "
            f"({split.protocol}) tests NAA images; its results.json holds its test metrics"
        )
    compute = Compute.of(config, dev)
    compute.prepare(loaded.model)
    fs = prepare_features(
        dataset.subset(split.test),
        loaded.front_end,
        cache_dir=config.cache_dir,
        workers=config.workers,
        progress=progress,
    )
    logits = compute.predict(
        loaded.model, torch.from_numpy(fs.features), 2 * getattr(config.settings, "batch_size", 32)
    )
    labels = torch.from_numpy(fs.labels)
    metrics = classification_metrics(fs.labels, logits.argmax(1).numpy(), dataset.num_classes)
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
        "test_ids": _test_ids(dataset, split),
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
