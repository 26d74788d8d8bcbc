"""Probe training (``TrainConfig.method = "probe"``): a head fitted on frozen ``mn04_as``
features, one fold top to bottom.

Instead of fine-tuning the network, each clip's pooled multi-level features
(:mod:`escnet.embeddings.pooled`, cached: a clip goes through the network once, ever)
become one row of a table, and only a head is fitted on the training rows
(:class:`~escnet.training.config.ProbeConfig` holds the settings):

* training rows: the *training* clips' features, plus those of their offline NAA variants when
  ``augment="naa"`` (six per clip, the images :mod:`escnet.features.offline_naa` caches, or the
  subset ``train_views`` names, which may also add time-rolled views); never a
  validation or test clip's (checked on the clip ids);
* validation rows choose the head's regularisation (the L2 penalty of the linear head, the
  weight decay of the MLP head): best validation accuracy, ties broken by validation loss;
* the test fold is scored once, with the chosen head.

With ``tta_shifts``, validation and test clips are classified in every time-rolled view and
the views' probabilities averaged (:func:`escnet.models.probe.mean_probability_logits`), exactly
as the saved network does.

Files in ``run_dir/fold{k}/``: ``model/`` (an ``mn04_as_probe`` model directory: body, feature
standardisation and head; ``load_model`` predicts from waveforms with it), ``probe.json`` (the
grid, the choice, sizes, seconds), ``split.json``, ``test_predictions.csv`` and ``logits.npz``
(validation and test logits with clip ids, for :mod:`escnet.training.ensemble`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from escnet.augment.audio import NAA_VARIANTS
from escnet.data.datasets import Dataset
from escnet.data.folds import Split
from escnet.embeddings.pooled import FeatureTable, clip_features, roll_view
from escnet.embeddings.views import ViewRows
from escnet.errors import EscnetError
from escnet.features.prepare import default_workers
from escnet.metrics.classification import better_choice
from escnet.models import SpectralClassifier, create_model
from escnet.models.probe import ProbeNet, feature_columns, mean_probability_logits
from escnet.training.config import TrainConfig
from escnet.training.logistic import fit_logistic_head, score
from escnet.training.loop import Compute, Optimisation, train_epoch

__all__ = [
    "ProbeData",
    "FrozenFit",
    "checked_training_rows",
    "fit_probe_fold",
    "fit_mlp_head",
    "load_probe_data",
    "probe_model",
    "probe_model_kwargs",
    "train_views",
]

log = logging.getLogger(__name__)

_Rows = TypeVar("_Rows", bound=ViewRows)


@dataclass
class ProbeData:
    """One fold's feature tables (full vectors, :data:`escnet.embeddings.pooled.FULL_DIM`
    wide).

    Attributes:
        train: training clips, each followed by its NAA variants when asked.
        val, test: validation and test clips in every evaluation view (clip-major).
        eval_views: the evaluation views, in the order of ``tta_shifts``.
    """

    train: FeatureTable
    val: FeatureTable
    test: FeatureTable
    eval_views: list[str]


def train_views(config: TrainConfig) -> list[str]:
    """The views of each training clip a probe of ``config`` is fitted on."""
    views = config.probe.train_views
    if views is not None:
        return ["original", *views]
    if config.augment == "naa":
        return ["original", *NAA_VARIANTS]
    return ["original"]


def _eval_views(config: TrainConfig) -> list[str]:
    return [roll_view(s) for s in (config.probe.tta_shifts or [0])]


def load_probe_data(
    config: TrainConfig, dataset: Dataset, split: Split, *, progress: bool = True
) -> ProbeData:
    """The fold's feature tables, from the cache or computed (:func:`clip_features`); the
    training rows checked (:func:`checked_training_rows`)."""
    workers = config.workers if config.workers is not None else default_workers()
    eval_views = _eval_views(config)

    def table(indices: Sequence[int], views: Sequence[str]) -> FeatureTable:
        return clip_features(
            dataset,
            indices,
            views=views,
            seed=config.seed,
            cache_dir=config.cache_dir,
            workers=workers,
            progress=progress,
        )

    train = checked_training_rows(table(split.train, train_views(config)), dataset, split)
    return ProbeData(train, table(split.val, eval_views), table(split.test, eval_views), eval_views)


def _views_stack(table: FeatureTable, views: Sequence[str], cols: Sequence[int]) -> torch.Tensor:
    """(V, N, D) features of the table's clips in each view (clip order kept)."""
    return torch.stack([torch.from_numpy(table.features[table.rows(v)][:, cols]) for v in views])


def _labels(table: FeatureTable, views: Sequence[str]) -> torch.Tensor:
    return torch.from_numpy(table.labels[table.rows(views[0])])


def fit_mlp_head(
    z_train: torch.Tensor,
    y_train: torch.Tensor,
    z_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    config: TrainConfig,
    weight_decays: Sequence[float] | None = None,
) -> tuple[nn.Sequential, dict[str, Any]]:
    """A one-hidden-layer MLP head (:class:`~escnet.training.config.ProbeConfig`'s ``mlp_*``:
    AdamW, one-cycle schedule, label smoothing), trained by the one training loop, its weight
    decay chosen on validation among ``weight_decays`` (default: the config's) by the last
    epoch's head of each (no early stopping)."""
    probe = config.probe
    rows: list[dict[str, float]] = []
    best: tuple[float, float, nn.Sequential, float] | None = None
    cpu = Compute(torch.device("cpu"), False, torch.float32, False)
    criterion = nn.CrossEntropyLoss(label_smoothing=probe.mlp_label_smoothing)
    steps = math.ceil(len(y_train) / probe.mlp_batch_size)
    for wd in weight_decays if weight_decays is not None else probe.mlp_weight_decays:
        gen = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        head = nn.Sequential(
            nn.Linear(z_train.shape[1], probe.mlp_hidden),
            nn.GELU(),
            nn.Dropout(probe.mlp_dropout),
            nn.Linear(probe.mlp_hidden, num_classes),
        )
        opt = torch.optim.AdamW(head.parameters(), lr=probe.mlp_lr, weight_decay=wd)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=probe.mlp_lr, total_steps=probe.mlp_epochs * steps
        )
        optim = Optimisation.plain(opt, sched)
        head.train()
        for _ in range(probe.mlp_epochs):
            order = torch.randperm(len(y_train), generator=gen).split(probe.mlp_batch_size)
            train_epoch(
                head, ((z_train[b], y_train[b]) for b in order), steps, optim, criterion, cpu
            )
        head.eval()
        with torch.no_grad():
            acc, vloss = score(mean_probability_logits(head(z_val)), y_val)
        rows.append({"weight_decay": wd, "val_acc": acc, "val_loss": vloss})
        if better_choice(acc, vloss, None if best is None else best[:2]):
            best = (acc, vloss, head, wd)
    assert best is not None
    chosen = {"weight_decay": best[3], "val_acc": best[0], "val_loss": best[1]}
    return best[2], {"chosen": chosen, "grid": rows}


def probe_model_kwargs(config: TrainConfig) -> dict[str, Any]:
    """``model_kwargs`` of the fold's ``mn04_as_probe`` (saved in ``model.json``)."""
    probe = config.probe
    return {
        "blocks": list(probe.blocks),
        "embedding": probe.embedding,
        "hidden": probe.mlp_hidden if probe.head == "mlp" else 0,
        "dropout": probe.mlp_dropout if probe.head == "mlp" else 0.0,
        "tta_shifts": list(probe.tta_shifts or [0]),
    }


def probe_model(
    config: TrainConfig,
    num_classes: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    head: nn.Module,
) -> SpectralClassifier:
    """The ``mn04_as_probe`` of ``config`` with its AudioSet body, the features' standardisation
    (``mean``, ``std``) and a fitted ``head``: what a fold's (or a refit's) model directory
    holds."""
    model = create_model(
        "mn04_as_probe", num_classes, pretrained=True, **probe_model_kwargs(config)
    ).eval()
    net = model.net
    assert isinstance(net, ProbeNet)
    with torch.no_grad():
        net.feature_mean.copy_(mean)
        net.feature_std.copy_(std)
        net.head.load_state_dict(head.state_dict())
    return model


def _fit(
    config: TrainConfig, data: ProbeData, num_classes: int
) -> tuple[SpectralClassifier, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The fitted ProbeNet and its (N, C) validation and test logits."""
    cols = feature_columns(config.probe.blocks, config.probe.embedding)
    x_train = torch.from_numpy(data.train.features[:, cols])
    mean = x_train.mean(0)
    std = x_train.std(0, unbiased=False).clamp_min(1e-6)
    z_train = (x_train - mean) / std
    y_train = torch.from_numpy(data.train.labels)
    z_val = (_views_stack(data.val, data.eval_views, cols) - mean) / std
    y_val = _labels(data.val, data.eval_views)
    head: nn.Module
    if config.probe.head == "mlp":
        head, choice = fit_mlp_head(z_train, y_train, z_val, y_val, num_classes, config)
    else:
        head, choice = fit_logistic_head(z_train, y_train, z_val, y_val, num_classes)
    model = probe_model(config, num_classes, mean, std, head)
    net = model.net
    assert isinstance(net, ProbeNet)
    with torch.no_grad():
        val_logits = mean_probability_logits(
            net.classify(_views_stack(data.val, data.eval_views, cols))
        )
        test_logits = mean_probability_logits(
            net.classify(_views_stack(data.test, data.eval_views, cols))
        )
    return model, val_logits, test_logits, choice


def checked_training_rows(table: _Rows, dataset: Dataset, split: Split) -> _Rows:
    """``table``, the fold's training rows, once checked to come from ``split.train`` only.

    Raises:
        RuntimeError: a row comes from a clip outside ``split.train`` (a leak).
        EscnetError: no training clip could be loaded.
    """
    if len(table.source) == 0:
        raise EscnetError(
            f"{dataset.name}, test fold {split.test_fold}: no training clip could be loaded"
        )
    split.check_training_sources(table.source, dataset, "training rows of a frozen network")
    return table


@dataclass
class FrozenFit:
    """What a frozen method fitted on one fold, for
    :func:`escnet.training.frozen.fold.train_frozen_fold` to save, test and record.

    Attributes:
        model: the fold's model, saved as ``fold{k}/model``.
        model_kwargs: its model arguments, saved with it (``None``: the registry's).
        selection: what was chosen on validation (``model.json``'s ``selection``).
        rule: how it was chosen, in words (:attr:`escnet.metrics.fold.FoldResult.selection`).
        train: the training rows (their clips and views go to ``split.json``).
        parts: ``{"val", "test"}``: (clip indices, logits, labels) (``logits.npz``).
        record: the method's ``<method>.json`` (its ``seconds`` gets the total).
        val_acc, summary: for the log line.
        history: rows of ``metrics.csv`` (methods with epochs).
        best_epoch, epochs_run: as :class:`~escnet.metrics.fold.FoldResult`'s.
    """

    model: SpectralClassifier
    model_kwargs: dict[str, Any] | None
    selection: dict[str, Any]
    rule: str
    train: ViewRows
    parts: dict[str, tuple[np.ndarray, torch.Tensor, np.ndarray]]
    record: dict[str, Any]
    val_acc: float
    summary: str
    history: list[dict[str, Any]] | None = None
    best_epoch: int = 0
    epochs_run: int = 0


def fit_probe_fold(
    config: TrainConfig, dataset: Dataset, split: Split, progress: bool = True
) -> FrozenFit:
    """Fit a probe on ``split.train`` (+ NAA variants) and choose its regularisation on
    ``split.val`` (module docstring); its logits of the validation and test clips."""
    started = time.perf_counter()
    data = load_probe_data(config, dataset, split, progress=progress)
    features_s = time.perf_counter() - started
    model, val_logits, test_logits, choice = _fit(config, data, dataset.num_classes)
    first = data.eval_views[0]
    what = "weight decay" if config.probe.head == "mlp" else "L2 penalty"
    chosen = choice["chosen"]
    parts = {
        side: (table.source[table.rows(first)], logits, _labels(table, data.eval_views).numpy())
        for side, table, logits in (("val", data.val, val_logits), ("test", data.test, test_logits))
    }
    return FrozenFit(
        model=model,
        model_kwargs=probe_model_kwargs(config),
        selection={"epoch": 0, **chosen},
        rule=f"probe head ({config.probe.head}): the {what} with the best validation accuracy "
        "(ties: lower validation loss)",
        train=data.train,
        parts=parts,
        record={
            "head": config.probe.head,
            "model_kwargs": probe_model_kwargs(config),
            "train_views": sorted(set(data.train.view.tolist())),
            "eval_views": data.eval_views,
            **choice,
            "seconds": {"features": features_s},
        },
        val_acc=chosen["val_acc"],
        summary=str({k: v for k, v in chosen.items() if k not in ("val_acc", "val_loss")}),
    )
