"""Leave-one-fold-out cross-validation over a data set's folds (:func:`cross_validate`); a
finished run is tested again from its saved models by :func:`escnet.results.evaluate.evaluate_run`.

A run directory holds::

    config.json            the TrainConfig, resolved (device used, folds, workers, versions)
    results.json           per fold and mean ± std (written after every fold)
    report.md, *.png       the report (escnet.metrics.report), written at the end
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

from escnet.cache import atomic_write_json, read_json
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split
from escnet.errors import EscnetError, ParameterError
from escnet.features.prepare import default_workers
from escnet.machine import describe_cpu
from escnet.metrics import report
from escnet.metrics.fold import FoldResult
from escnet.model_dir.io import save_model
from escnet.models import create_model, get_model_info
from escnet.training.config import FinetuneConfig, TrainConfig, check_resumable
from escnet.training.data import load_dataset, with_dataset
from escnet.training.distributed import Dist, distributed, local_rank, resolve_device
from escnet.training.fold import train_fold
from escnet.training.frozen.fold import train_frozen_fold

__all__ = ["cross_validate", "fold_model_dir"]

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
    :func:`escnet.results.evaluate.evaluate_run` rebuilds the same split.

    Writes ``config.json`` (resolved), then per fold the files of :func:`train_fold`, updates
    ``results.json`` after each fold, and at the end writes the report (``report.md`` and its
    figures, :func:`escnet.metrics.report.write_report`).

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
        The content of ``results.json`` (see :func:`escnet.metrics.report.build_results`).

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
            split = config.split(dataset, fold)
            split.check_disjoint(dataset)
            result = _train_one_fold(resolved, dataset, split, run, resume, progress)
            # The clips tested, by id: evaluate_run checks that it rebuilds this very split.
            results[fold] = dataclasses.replace(result, test_ids=split.test_ids(dataset))
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


def _train_one_fold(
    resolved: TrainConfig,
    dataset: Dataset,
    split: Split | ImageSplit,
    run: Path,
    resume: bool,
    progress: bool,
) -> FoldResult:
    """One test fold by the configured method."""
    if resolved.method in ("probe", "partial"):  # minutes on cached features: no resume
        return train_frozen_fold(resolved, dataset, split, run, progress=progress)
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
