"""What one fold trains, validates and tests on: the data set a config names, spectral images
of the validation and test clips, and the training items of the augmentation policy (offline NAA
images, online-NAA waveforms, or plain images).

Only ``split.train`` is ever augmented, and :func:`load_fold_data` refuses training items that
come from any other clip -- except under the ``augment-then-split`` protocol, leaky on purpose
(:func:`escnet.data.folds.augment_then_split`), whose split is over NAA images of every clip.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from escnet.augment.audio import naa_variants
from escnet.augment.online import WaveformDataset, load_waveforms
from escnet.augment.policy import AugmentPolicy
from escnet.data.datasets import FOLDER_ONLY, Dataset, dataset_from_options
from escnet.data.folds import ImageSplit, Split
from escnet.errors import EscnetError, ParameterError
from escnet.features.offline_naa import expand_image_split, expand_training_set
from escnet.features.prepare import default_workers, prepare_features
from escnet.features.spectrogram import FrontEndConfig
from escnet.model_dir.io import save_model
from escnet.models import SpectralClassifier
from escnet.training.config import TrainConfig

__all__ = [
    "save_fold_model",
    "FoldData",
    "clip_seconds",
    "load_dataset",
    "load_fold_data",
    "load_image_split_data",
]

log = logging.getLogger(__name__)


def load_dataset(config: TrainConfig) -> Dataset:
    """The data set a config names (its data-set options), with ``clip_seconds`` applied."""
    options = {k: getattr(config, k) for k in ("root", "data_dir", *FOLDER_ONLY)}
    dataset = dataset_from_options(config.dataset, folds=config.data_folds, **options)
    if config.clip_seconds is not None:
        dataset = dataclasses.replace(dataset, duration=config.clip_seconds)
    return dataset


def clip_seconds(dataset: Dataset) -> float:
    """The clip length a model of ``dataset`` is trained on, as its model directory records it:
    the data set's fixed duration, or (clips used at their own, equal length) the first clip's."""
    if dataset.duration:
        return float(dataset.duration)
    import soundfile

    return float(soundfile.info(str(dataset[0].path)).duration)


def save_fold_model(
    path: str | os.PathLike[str],
    model: SpectralClassifier,
    dataset: Dataset,
    config: TrainConfig,
    **kwargs: Any,
) -> Path:
    """Save a model trained on ``dataset`` by ``config`` as a model directory
    (:func:`escnet.model_dir.io.save_model`, ``kwargs`` passed on): its classes, clip length
    and config recorded."""
    return save_model(
        path, model, list(dataset.classes), clip_seconds=clip_seconds(dataset),
        config=config.to_dict(), **kwargs,
    )  # fmt: skip


def with_dataset(config: TrainConfig, dataset: Dataset | str | None) -> TrainConfig:
    """``config`` naming ``dataset`` (a :class:`Dataset`: its name and the options that rebuild
    it, :attr:`Dataset.options`; a name: that data set with ``config``'s other options)."""
    if dataset is None:
        return config
    if isinstance(dataset, str):
        return dataclasses.replace(config, dataset=dataset)
    options = dataset.options
    folds = options.get("folds")
    if options.get("seed", 0) != 0:
        raise ParameterError(
            f"{dataset.name}: a folder split drawn with seed={options['seed']} cannot be saved "
            "in config.json; load the folder with the default seed, or give its folds as a CSV"
        )
    return dataclasses.replace(
        config,
        dataset=dataset.name,
        root=str(options.get("root") or dataset.root),
        data_folds=list(folds) if folds is not None else None,
        folds_csv=options.get("folds_csv"),
        group_pattern=options.get("group_pattern"),
        num_folds=options.get("num_folds"),
    )


@dataclass
class FoldData:
    """What one fold trains, validates and tests on.

    Attributes:
        train: training items: (image (M, F), label) or, with online NAA, (waveform (T,), label).
        waveforms: the training items are waveforms (the front end runs on each batch).
        train_sources: (N,) data set index of the clip each training item comes from.
        train_variants: (N,) ``"original"`` or the NAA variant of each training item.
        val_images, val_labels, test_images, test_labels: (N, M, F) float32 and (N,) int64.
        test_indices: data set indices of the test images (clips that failed to load are gone).
        val_indices: the same for validation.
    """

    train: torch.utils.data.Dataset[Any]
    waveforms: bool
    train_sources: np.ndarray
    train_variants: np.ndarray
    val_images: torch.Tensor
    val_labels: torch.Tensor
    val_indices: np.ndarray
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_indices: np.ndarray


def load_fold_data(
    config: TrainConfig,
    dataset: Dataset,
    split: Split | ImageSplit,
    front_end: FrontEndConfig,
    policy: AugmentPolicy,
    *,
    progress: bool = True,
) -> FoldData:
    """Spectral images (and, for online NAA, waveforms) of one split at ``front_end``.

    Validation and test clips become plain images; only ``split.train`` is augmented (offline
    NAA through :func:`~escnet.features.offline_naa.expand_training_set`, which touches
    ``split.train`` alone). An :class:`~escnet.data.folds.ImageSplit` (``augment-then-split``)
    takes :func:`load_image_split_data` instead.
    """
    if isinstance(split, ImageSplit):
        return load_image_split_data(config, dataset, split, front_end, progress=progress)
    workers = config.workers if config.workers is not None else default_workers()
    images = _ClipImages(dataset, front_end, config.cache_dir, workers, progress)
    val_images, val_labels, val_indices = images(split.val, "validation")
    test_images, test_labels, test_indices = images(split.test, "test")
    train, sources, variants = _training_set(config, dataset, split, policy, images)
    if len(sources) == 0:
        raise EscnetError(
            f"{dataset.name}, test fold {split.test_fold}: no training clip could be loaded"
        )
    # The guard that makes the report's claim true: no test or validation clip is trained on.
    split.check_training_sources(sources, dataset, "training images")
    return FoldData(
        train,
        policy.online_naa,
        np.asarray(sources, dtype=np.int64),
        np.asarray(variants),
        val_images,
        val_labels,
        val_indices,
        test_images,
        test_labels,
        test_indices,
    )


@dataclass(frozen=True)
class _ClipImages:
    """Plain (unaugmented) spectral images of some of a data set's clips, through the cache."""

    dataset: Dataset
    front_end: FrontEndConfig
    cache_dir: str | None
    workers: int
    progress: bool

    def __call__(
        self, indices: Sequence[int], what: str
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """(images, labels, data set indices of the clips that loaded)."""
        if not indices:
            return torch.empty(0, 1, 1), torch.empty(0, dtype=torch.int64), np.empty(0, np.int64)
        fs = prepare_features(
            self.dataset.subset(indices),
            self.front_end,
            cache_dir=self.cache_dir,
            workers=self.workers,
            progress=self.progress,
        )
        if len(fs.labels) == 0:
            raise EscnetError(f"{self.dataset.name}: none of the {len(indices)} {what} clips loads")
        kept = np.asarray(indices, dtype=np.int64)[fs.indices]
        return torch.from_numpy(fs.features), torch.from_numpy(fs.labels), kept


def _training_set(
    config: TrainConfig,
    dataset: Dataset,
    split: Split,
    policy: AugmentPolicy,
    images: _ClipImages,
) -> tuple[torch.utils.data.Dataset[Any], np.ndarray, np.ndarray]:
    """The training set as ``policy`` makes it: (data set, source clip indices, variant names).

    Online NAA keeps waveforms (augmented per epoch), offline NAA its cached expansion of
    ``split.train`` alone, any other policy the plain images (image policies run per batch)."""
    front_end, workers = images.front_end, images.workers
    if policy.online_naa:
        waves, kept = load_waveforms(dataset, split.train, front_end.sample_rate, workers)
        labels = np.array([dataset[i].label for i in kept], dtype=np.int64)
        if len(waves):
            # librosa compiles its DSP kernels (numba) on first use: do it once here, so that
            # forked DataLoader workers inherit them instead of each compiling them every epoch.
            naa_variants(waves[0], front_end.sample_rate, seed=0)
        train = WaveformDataset(
            waves, labels, policy.audio_transform(config.seed), front_end.sample_rate, config.seed
        )
        return train, np.asarray(kept, dtype=np.int64), np.full(len(kept), "online-naa")
    if policy.offline_naa:
        expanded = expand_training_set(
            dataset,
            split,
            front_end,
            seed=config.seed,
            cache_dir=images.cache_dir,
            workers=workers,
            progress=images.progress,
        )
        features = torch.from_numpy(expanded.features)
        train_set = TensorDataset(features, torch.from_numpy(expanded.labels))
        return train_set, expanded.source, expanded.variant
    feats, labs, kept_idx = images(split.train, "training")
    return TensorDataset(feats, labs), kept_idx, np.full(len(kept_idx), "original")


def load_image_split_data(
    config: TrainConfig,
    dataset: Dataset,
    split: ImageSplit,
    front_end: FrontEndConfig,
    *,
    progress: bool = True,
) -> FoldData:
    """The data of the LEAKY ``augment-then-split`` protocol
    (:func:`~escnet.features.offline_naa.expand_image_split`): the clip-level leak guard of
    :func:`load_fold_data` does not apply, since the leak is the protocol."""
    workers = config.workers if config.workers is not None else default_workers()
    expanded, rows = expand_image_split(
        dataset,
        split,
        front_end,
        seed=config.seed,
        cache_dir=config.cache_dir,
        workers=workers,
        progress=progress,
    )
    if len(rows["train"]) == 0:
        raise EscnetError(f"{dataset.name}, test fold {split.test_fold}: no training image loads")
    features, labels = torch.from_numpy(expanded.features), torch.from_numpy(expanded.labels)
    train, val, test = rows["train"], rows["val"], rows["test"]
    return FoldData(
        TensorDataset(features[train], labels[train]),
        False,
        expanded.source[train],
        expanded.variant[train],
        features[val],
        labels[val],
        expanded.source[val],
        features[test],
        labels[test],
        expanded.source[test],
    )
