"""One fold, top to bottom: data, model, optimiser, schedule, (resume), epochs of training and
validation with checkpoints, and one final test of the best checkpoint, saved as a model
directory (:mod:`escnet.model_dir.io`).

Files go to ``run_dir/fold{k}/``::

    last.pt                everything needed to resume: model, optimiser, schedule, RNG states
    best.pt                the best model's weights, its config and class names
    model/                 the best model as a self-contained model directory (predict, export)
    metrics.csv            one row per epoch
    split.json             clip ids of train / val / test and the sources of the training images
    test_predictions.csv   the test clips' predictions
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from escnet.augment.online import WaveformDataset
from escnet.augment.policy import AugmentPolicy, get_policy
from escnet.cache import atomic_write_json
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split
from escnet.metrics.fold import FoldResult, write_predictions
from escnet.metrics.report import log_tensorboard, tensorboard_writer, write_metrics_csv
from escnet.models import SpectralClassifier, create_model
from escnet.training.checkpoint import Checkpointer, FitState, load_resume
from escnet.training.config import TrainConfig
from escnet.training.data import FoldData, load_fold_data, save_fold_model
from escnet.training.distributed import (
    Dist,
    derive_seed,
    distributed,
    local_rank,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from escnet.training.loop import (
    Compute,
    Optimisation,
    fit_lp_ft_head,
    train_epoch,
    training_loader,
    validate,
)
from escnet.training.records import write_split

__all__ = ["train_fold"]

log = logging.getLogger(__name__)


def train_fold(
    config: TrainConfig,
    dataset: Dataset,
    split: Split | ImageSplit,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
) -> FoldResult:
    """Train on ``split.train``, select on ``split.val``, test once on ``split.test``.

    With ``resume=True`` training continues after the last completed epoch of ``last.pt`` (an
    epoch that was interrupted is restarted from its beginning, with the RNG states saved after
    the epoch before it, so the run ends with the same numbers as an uninterrupted one).

    Args:
        config: the run's configuration.
        dataset: the data set the split indexes.
        split: one fold split (:func:`escnet.data.folds.protocol_split`: a clip split, or an
            image split for ``augment-then-split``).
        run_dir: the run directory.
        resume: continue from ``fold{k}/last.pt`` when it exists.
        progress: show progress bars (rank 0 only).

    Returns:
        The fold's test metrics (the same on every rank of a distributed run).
    """
    fold = split.test_fold if split.test_fold is not None else 0
    fold_dir = Path(run_dir) / f"fold{fold}"
    device = resolve_device(config.device, local_rank())
    compute = Compute.of(config, device)
    ft = config.finetune
    with distributed(device) as ddp:
        show = progress and ddp.is_main
        policy = get_policy(config.augment)
        fold_seed = derive_seed(config.seed, fold)

        # ---- model: seeded identically on every rank (DDP also broadcasts rank 0's weights)
        seed_everything(fold_seed)
        model = create_model(config.model, dataset.num_classes, pretrained=bool(config.pretrained))
        front_end = model.model_info.front_end
        compute.prepare(model)

        # ---- data: rank 0 fills the caches first, the others then read them
        if not ddp.is_main:
            ddp.barrier()
        data = load_fold_data(config, dataset, split, front_end, policy, progress=show)
        if ddp.is_main:
            ddp.barrier()
            write_split(
                fold_dir / "split.json", dataset, split, data.train_sources, data.train_variants
            )
        loader, sampler, loader_gen = training_loader(config, data, ddp, device)
        wave_to_image = front_end.build().to(device).eval() if data.waveforms else None

        # ---- optimiser and schedule (per step)
        steps = len(loader)
        if ft.max_train_batches is not None:
            steps = min(steps, ft.max_train_batches)
        optim = Optimisation.of(model, ft, steps, compute)
        criterion = nn.CrossEntropyLoss(label_smoothing=ft.label_smoothing)

        # ---- resume, LP-FT's probe (fresh starts only), DDP, RNG
        state = _start_state(config, model, optim, data, compute, ddp, fold_dir, resume, show)
        train_model = ddp.wrap(model, device)
        writer = tensorboard_writer(fold_dir / "tensorboard", state.epoch) if ddp.is_main else None
        if state.rng is not None:
            # Last, so that nothing above draws from the restored generators.
            own = state.rng[ddp.rank] if len(state.rng) == ddp.world_size else state.rng[0]
            set_rng_state(own, device)
        else:
            torch.manual_seed(fold_seed + ddp.rank)  # different dropout masks on each rank

        # ---- epochs
        has_val = len(data.val_labels) > 0
        checkpoints = Checkpointer(
            fold_dir, config, list(dataset.classes), fold, ft.checkpoint_interval_s
        )
        while state.epoch < ft.epochs and not state.stopped_early:
            sampler.set_epoch(state.epoch)
            loader_gen.manual_seed(derive_seed(config.seed, fold, state.epoch, 0))
            row = _run_epoch(
                train_model, model, loader, steps, optim, criterion, compute, config, dataset,
                data, policy, ddp, fold, state.epoch, wave_to_image, show,
            )  # fmt: skip
            improved = state.record(row, has_val, ft.early_stopping_patience)
            _log_epoch(fold, ft.epochs, row, improved)
            state.rng = ddp.gather(rng_state(device))
            if ddp.is_main:
                final = state.epoch >= ft.epochs or state.stopped_early
                checkpoints.after_epoch(model, optim, state, improved=improved, final=final)
                write_metrics_csv(fold_dir / "metrics.csv", state.history)
                log_tensorboard(writer, row)
            ddp.barrier()  # nobody reads a checkpoint before it is written
        if writer is not None:
            writer.close()

        # ---- test: once, with the best checkpoint, on rank 0
        result = None
        if ddp.is_main:
            result = _test_best(
                model, config, dataset, data, compute, fold_dir, fold, state, has_val
            )
        result = ddp.broadcast(result)
        assert result is not None
        return result


def _start_state(
    config: TrainConfig,
    model: SpectralClassifier,
    optim: Optimisation,
    data: FoldData,
    compute: Compute,
    ddp: Dist,
    fold_dir: Path,
    resume: bool,
    show: bool,
) -> FitState:
    """The progress to start from: ``last.pt``'s when resuming, else a fresh one (after LP-FT's
    probe, when configured: a resumed run already has its fitted head)."""
    fold = int(fold_dir.name.removeprefix("fold"))
    state = FitState()
    last_path = fold_dir / "last.pt"
    if resume and last_path.is_file():
        state = load_resume(last_path, config, model, optim)
        log.info("fold %d: resuming after epoch %d from %s", fold, state.epoch, last_path)
        if ddp.is_main:
            write_metrics_csv(fold_dir / "metrics.csv", state.history)
    if config.finetune.lp_ft and state.fresh:
        # Every rank fits the same head; DDP's start-up broadcast makes them identical anyway.
        probe = fit_lp_ft_head(model, data, compute, fold, show)
        if ddp.is_main:
            atomic_write_json(fold_dir / "linear_probe.json", asdict(probe))
    return state


def _run_epoch(
    train_model: nn.Module,
    model: SpectralClassifier,
    loader: Any,
    steps: int,
    optim: Optimisation,
    criterion: nn.Module,
    compute: Compute,
    config: TrainConfig,
    dataset: Dataset,
    data: FoldData,
    policy: AugmentPolicy,
    ddp: Dist,
    fold: int,
    epoch: int,
    wave_to_image: nn.Module | None,
    show: bool,
) -> dict[str, Any]:
    """Train one epoch (0-based ``epoch``) and validate; the epoch's metrics row."""
    started = time.perf_counter()
    train_model.train()
    if isinstance(data.train, WaveformDataset):
        data.train.set_epoch(epoch)
    sums, lr = train_epoch(
        train_model,
        loader,
        steps,
        optim,
        criterion,
        compute,
        to_input=wave_to_image if wave_to_image is not None else _one_channel,
        image_tf=policy.image_transform(seed=derive_seed(config.seed, fold, epoch, ddp.rank, 1)),
        mix=policy.mixup_transform(
            dataset.num_classes, seed=derive_seed(config.seed, fold, epoch, ddp.rank, 2)
        ),
        desc=f"fold {fold} epoch {epoch + 1}/{config.finetune.epochs}",
        show=show,
    )
    train_loss, train_correct, train_count = ddp.sum(sums).tolist()
    val_loss, val_acc, val_count = validate(
        model, data, ddp, compute, 2 * config.finetune.batch_size
    )
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss / train_count,
        "train_acc": train_correct / train_count,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": lr,
        "seconds": time.perf_counter() - started,
        "train_samples": int(train_count),
        "val_samples": val_count,
    }


def _one_channel(images: torch.Tensor) -> torch.Tensor:
    return images.unsqueeze(1)


def _log_epoch(fold: int, epochs: int, row: dict[str, Any], improved: bool) -> None:
    log.info(
        "fold %d epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f%s",
        fold,
        row["epoch"],
        epochs,
        row["train_loss"],
        row["train_acc"],
        row["val_loss"],
        row["val_acc"],
        " (best)" if improved else "",
    )


def _test_best(
    model: SpectralClassifier,
    config: TrainConfig,
    dataset: Dataset,
    data: FoldData,
    compute: Compute,
    fold_dir: Path,
    fold: int,
    state: FitState,
    has_val: bool,
) -> FoldResult:
    """Load ``best.pt``, save it as ``fold_dir/model``, and score the test clips once."""
    best = torch.load(fold_dir / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(best["model"])
    save_fold_model(
        fold_dir / "model",
        model,
        dataset,
        config,
        state_dict=best["model"],
        selection={
            "test_fold": best["test_fold"],
            "epoch": best["epoch"],
            "val_acc": best["val_acc"],
            "val_loss": best["val_loss"],
        },
    )
    logits = compute.predict(model, data.test_images, 2 * config.finetune.batch_size)
    write_predictions(fold_dir / "test_predictions.csv", dataset, data.test_indices, logits)
    result = FoldResult.tested(
        fold,
        logits,
        data.test_labels,
        dataset.num_classes,
        best_epoch=int(state.best["epoch"]),
        epochs_run=state.epoch,
        stopped_early=bool(state.stopped_early),
        selection=(
            "best validation accuracy (ties: lower validation loss)"
            if has_val
            else "last epoch (no validation clips: val_fraction = 0 or too few recordings)"
        ),
        train_clips=len(set(data.train_sources.tolist())),
        train_images=len(data.train_sources),
        val_clips=len(data.val_labels),
    )
    log.info(
        "fold %d: test accuracy %.4f, macro F1 %.4f (epoch %d)",
        result.test_fold,
        result.accuracy,
        result.macro_f1,
        result.best_epoch,
    )
    return result
