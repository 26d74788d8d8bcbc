"""Partial fine-tuning (``TrainConfig.method = "partial"``): only the blocks of the pretrained
``mn04_as`` above block ``k`` (``PartialConfig.from_block``) and its classifier are trained, on
cached activations; one fold top to bottom.

The blocks ``0..k`` stay as AudioSet trained them, so each clip, and each of its offline NAA
variants, goes through them once, ever
(:func:`escnet.embeddings.activations.clip_activations`, cached on disk in float16);
training then runs only the upper blocks, a fraction of the network's cost:

* training rows: the *training* clips' activations, plus those of their six offline NAA
  variants with ``augment="naa"``; never a validation or test clip's (checked on the clip ids).
  Each epoch is one pass over the training clips, each in one of its views drawn at random
  (as online augmentation would show them): the cost of an epoch does not grow with the
  variants.
* the new output layer starts as a logistic regression fitted on the frozen network's
  embeddings of the training clips (originals), its L2 penalty chosen on validation (LP-FT:
  fine-tuning from a fitted head moves the pretrained features less than from a random one);
* then the one training loop (:func:`escnet.training.loop.train_epoch`) with
  :class:`~escnet.training.config.PartialConfig`'s settings: AdamW (``body_lr`` for the blocks
  and the hidden layer, ``head_lr`` for the output layer), label smoothing, warm-up and a
  cosine schedule. The epoch is chosen on the validation split (best accuracy, ties: lower
  loss); epoch 0, the fitted head on the unchanged network, is a candidate too.
* batch normalisation stays frozen (running statistics and the eval-mode forward of
  AudioSet's training): batches of one small data set would give noisy statistics, and the
  frozen layers make training and the saved model compute the same function. Their affine
  parameters are trained. Dropout (the classifier's) is active in training.
* the test fold is scored once, by the chosen network from the clips' spectral images (the
  very computation ``escnet evaluate`` repeats from the model directory).

The result is an ordinary ``mn04_as`` (lower blocks bit-identical to the pretrained ones), saved
as ``run_dir/fold{k}/model`` (:func:`escnet.model_dir.io.save_model`), so ``evaluate``, ``predict``
and ``export`` work unchanged. Other files in ``fold{k}/``: ``partial.json`` (the head's L2
grid, the epochs' validation scores, the choice, sizes, seconds), ``metrics.csv`` (one row per
epoch), ``split.json``, ``test_predictions.csv`` and ``logits.npz`` (validation and test logits
with clip ids, for :mod:`escnet.training.ensemble`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from escnet.augment.audio import NAA_VARIANTS
from escnet.data.datasets import Dataset
from escnet.data.folds import Split
from escnet.embeddings.activations import ActivationTable, clip_activations
from escnet.features.prepare import default_workers
from escnet.metrics.classification import better_choice
from escnet.models import SpectralClassifier, create_model
from escnet.models.mobilenet_audioset import MobileNetAudioSet
from escnet.training.config import PartialConfig, TrainConfig
from escnet.training.distributed import derive_seed
from escnet.training.frozen.probe import FrozenFit, checked_training_rows
from escnet.training.logistic import fit_folded, score
from escnet.training.loop import Compute, Optimisation, train_epoch, warmup_cosine

__all__ = [
    "PartialData",
    "init_head",
    "load_partial_data",
    "fit_partial_fold",
]

log = logging.getLogger(__name__)

#: Clips per forward pass when scoring (no gradients: memory, not results).
_EVAL_BATCH = 64


@dataclass
class PartialData:
    """One fold's activations after block ``k``.

    Attributes:
        train: training clips, each followed by its NAA variants when asked.
        val: validation clips (originals).
    """

    train: ActivationTable
    val: ActivationTable


def _train_views(config: TrainConfig) -> list[str]:
    return ["original", *NAA_VARIANTS] if config.augment == "naa" else ["original"]


def load_partial_data(
    config: TrainConfig, dataset: Dataset, split: Split, *, progress: bool = True
) -> PartialData:
    """The fold's activations after the last frozen block, from the cache or computed; the
    training rows checked (:func:`~escnet.training.frozen.probe.checked_training_rows`)."""
    workers = config.workers if config.workers is not None else default_workers()

    def table(indices: Sequence[int], views: Sequence[str]) -> ActivationTable:
        return clip_activations(
            dataset, indices, block=config.partial.from_block, views=views, seed=config.seed,
            cache_dir=config.cache_dir, workers=workers, progress=progress,
        )  # fmt: skip

    train = checked_training_rows(table(split.train, _train_views(config)), dataset, split)
    return PartialData(train, table(split.val, ["original"]))


# ---- the upper network on activations ---------------------------------------------------------


def _upper_features(net: MobileNetAudioSet, block: int, x: torch.Tensor) -> torch.Tensor:
    for layer in net.features[block + 1 :]:
        x = layer(x)
    return x


def _as_input(acts: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(acts).float().contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def _eval(
    net: MobileNetAudioSet, block: int, acts: np.ndarray, *, hidden: bool = False
) -> torch.Tensor:
    """Logits (or, with ``hidden``, the classifier's 512-d hidden layer) of activations, in
    eval mode, batch by batch."""
    net.eval()
    outs = []
    for start in range(0, len(acts), _EVAL_BATCH):
        x = _upper_features(net, block, _as_input(acts[start : start + _EVAL_BATCH]))
        c = net.classifier
        outs.append(c[3](c[2](x.mean(dim=(2, 3)))) if hidden else c(x))
    if not outs:
        width = net.head.in_features if hidden else net.num_classes
        return torch.empty(0, width)
    return torch.cat(outs)


def init_head(
    net: MobileNetAudioSet, block: int, data: PartialData, num_classes: int
) -> dict[str, Any]:
    """Set ``net``'s output layer to a logistic regression of its (frozen) hidden layer on the
    training clips (originals), the L2 penalty chosen on validation; the fit's record.

    (:func:`escnet.training.logistic.fit_folded`).
    """
    rows = data.train.rows("original")
    h_train = _eval(net, block, data.train.activations[rows], hidden=True)
    h_val = _eval(net, block, data.val.activations, hidden=True)
    weight, bias, choice = fit_folded(
        h_train, torch.from_numpy(data.train.labels[rows]), h_val,
        torch.from_numpy(data.val.labels), num_classes,
    )  # fmt: skip
    with torch.no_grad():
        net.head.weight.copy_(weight)
        net.head.bias.copy_(bias)
    return choice


def _train_mode(net: MobileNetAudioSet) -> None:
    """Train mode with every batch-norm layer frozen (eval mode: AudioSet's statistics)."""
    net.train()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _optimiser(net: MobileNetAudioSet, settings: PartialConfig) -> torch.optim.AdamW:
    """AdamW over the upper blocks and the classifier; no weight decay on biases and norms."""
    block = settings.from_block
    for p in net.features[: block + 1].parameters():
        p.requires_grad_(False)
    head = set(net.head.parameters())
    upper = [*net.features[block + 1 :].parameters(), *net.classifier.parameters()]
    groups: list[dict[str, Any]] = []
    body = [p for p in upper if p not in head]
    for lr, params in ((settings.body_lr, body), (settings.head_lr, list(head))):
        decay = [p for p in params if p.ndim > 1]
        rest = [p for p in params if p.ndim <= 1]
        groups.append({"params": decay, "lr": lr, "weight_decay": settings.weight_decay})
        groups.append({"params": rest, "lr": lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups)


def _epoch_rows(table: ActivationTable, views: int, gen: torch.Generator) -> torch.Tensor:
    """One row per training clip, in one of its ``views`` drawn at random, shuffled."""
    clips = len(table.source) // views
    pick = torch.randint(views, (clips,), generator=gen)
    rows = torch.arange(clips) * views + pick
    return rows[torch.randperm(clips, generator=gen)]


class _Upper(nn.Module):
    """The blocks above ``block`` and the classifier, as one module for the training loop."""

    def __init__(self, net: MobileNetAudioSet, block: int) -> None:
        super().__init__()
        self.net, self.block = net, block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(_upper_features(self.net, self.block, x))


def _batches(
    table: ActivationTable, rows: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's batches of activations and labels (rows read in file order within a batch)."""
    for batch in rows.split(batch_size):
        idx = np.sort(batch.numpy())
        yield _as_input(table.activations[idx]), torch.from_numpy(table.labels[idx])


def fit_upper(
    config: TrainConfig, net: MobileNetAudioSet, data: PartialData, fold: int, *, show: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train the upper blocks and classifier; leave ``net`` at the chosen epoch.

    Returns:
        The epochs' metrics rows and ``{"epoch", "val_acc", "val_loss"}`` of the choice.
    """
    settings = config.partial
    block = settings.from_block
    views = len(_train_views(config))
    opt = _optimiser(net, settings)
    steps = math.ceil(len(data.train.source) // views / settings.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(settings.epochs * steps, settings.warmup_epochs * steps)
    )
    torch.manual_seed(derive_seed(config.seed, fold, 1))  # dropout masks
    acc, loss = score(_eval(net, block, data.val.activations), torch.from_numpy(data.val.labels))
    best = {"epoch": 0, "val_acc": acc, "val_loss": loss}
    best_state = {k: v.clone() for k, v in net.state_dict().items()}
    history: list[dict[str, Any]] = []
    upper = _Upper(net, block)
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    optim = Optimisation.plain(opt, sched)
    compute = Compute(torch.device("cpu"), False, torch.float32, True)
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        gen = torch.Generator().manual_seed(derive_seed(config.seed, fold, epoch, 0))
        rows = _epoch_rows(data.train, views, gen)
        _train_mode(net)
        sums, lr = train_epoch(
            upper, _batches(data.train, rows, settings.batch_size), steps, optim, criterion,
            compute, desc=f"fold {fold} epoch {epoch + 1}", show=show,
        )  # fmt: skip
        acc, loss = score(
            _eval(net, block, data.val.activations), torch.from_numpy(data.val.labels)
        )
        loss_sum, correct, count = sums.tolist()
        row = {
            "epoch": epoch + 1, "train_loss": loss_sum / count, "train_acc": correct / count,
            "val_loss": loss, "val_acc": acc, "lr": lr,
            "seconds": time.perf_counter() - started, "train_samples": int(count),
            "val_samples": len(data.val.labels),
        }  # fmt: skip
        history.append(row)
        no_val = len(data.val.labels) == 0
        if no_val or better_choice(acc, loss, (best["val_acc"], best["val_loss"])):
            best = {"epoch": epoch + 1, "val_acc": acc, "val_loss": loss}
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        log.info("fold %d epoch %d/%d: val acc %.4f loss %.4f, train loss %.4f (%.0f s)",
                 fold, epoch + 1, settings.epochs, acc, loss, row["train_loss"],
                 row["seconds"])  # fmt: skip
    net.load_state_dict(best_state)
    net.eval()
    return history, best


# ---- the fold ---------------------------------------------------------------------------------


def partial_model_state(
    config: TrainConfig, dataset: Dataset, data: PartialData, fold: int, *, show: bool
) -> tuple[SpectralClassifier, dict[str, Any]]:
    """The fold's trained ``mn04_as`` and the record of its training (``partial.json``)."""
    torch.manual_seed(derive_seed(config.seed, fold))
    model = create_model("mn04_as", dataset.num_classes, pretrained=True)
    net = model.net
    assert isinstance(net, MobileNetAudioSet)
    net.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    head = init_head(net, config.partial.from_block, data, dataset.num_classes)
    head_s = time.perf_counter() - started
    history, chosen = fit_upper(config, net, data, fold, show=show)
    model.eval()
    record = {
        "partial_from": config.partial.from_block,
        "trained": f"features[{config.partial.from_block + 1}..16] and the classifier",
        "settings": {**asdict(config.partial), "batch_norm": "frozen"},
        "head_init": head,
        "epochs": [
            {k: r[k] for k in ("epoch", "val_acc", "val_loss", "train_loss")} for r in history
        ],
        "chosen": chosen,
        "seconds": {"head_init": head_s, "training": sum(r["seconds"] for r in history)},
        "_history": history,
    }
    return model, record


def fit_partial_fold(
    config: TrainConfig, dataset: Dataset, split: Split, progress: bool = True
) -> FrozenFit:
    """Fine-tune ``mn04_as`` above block ``config.partial.from_block`` on ``split.train`` (+ NAA
    variants) and choose the epoch on ``split.val`` (module docstring); its logits of the
    validation and test clips, from their spectral images as the saved model computes them."""
    started = time.perf_counter()
    fold = split.test_fold if split.test_fold is not None else 0
    data = load_partial_data(config, dataset, split, progress=progress)
    acts_s = time.perf_counter() - started
    model, record = partial_model_state(config, dataset, data, fold, show=progress)
    history = record.pop("_history")
    chosen = record["chosen"]
    compute = Compute(torch.device("cpu"), False, torch.float32, True)
    compute.prepare(model)
    parts = {
        side: compute.clip_logits(
            model,
            model.model_info.front_end,
            dataset,
            indices,
            batch_size=2 * config.partial.batch_size,
            cache_dir=config.cache_dir,
            workers=config.workers,
        )
        for side, indices in (("val", split.val), ("test", split.test))
    }
    record["activations"] = {
        "shape": list(data.train.activations.shape[1:]), "dtype": "float16",
        "train_rows": len(data.train.source), "bytes_in_memory": int(
            data.train.activations.nbytes + data.val.activations.nbytes),
    }  # fmt: skip
    record["seconds"]["activations"] = acts_s
    return FrozenFit(
        model=model,
        model_kwargs=None,
        selection=chosen,
        rule=f"partial fine-tuning above block {config.partial.from_block}: the epoch with the "
        "best validation accuracy (ties: lower validation loss; epoch 0: the fitted head alone)",
        train=data.train,
        parts={side: (idx, logits, y) for side, (logits, idx, y) in parts.items()},
        record=record,
        val_acc=chosen["val_acc"],
        summary=f"epoch {chosen['epoch']}",
        history=history,
        best_epoch=int(chosen["epoch"]),
        epochs_run=config.partial.epochs,
    )
