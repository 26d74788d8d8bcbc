"""Training: leave-one-fold-out cross-validation of a registered model on a data set's official
folds, as the paper describes it, with honest model selection.

The loop lives in :func:`train_fold` and reads top to bottom: data, model, optimiser, schedule,
(resume), epochs of training and validation, checkpoints, and one final evaluation of the test
fold with the best checkpoint. :func:`cross_validate` runs it for every test fold of
:attr:`TrainConfig.folds` and writes the report (:mod:`escnet.report`); :func:`evaluate_run`
recomputes a finished run's test metrics from its checkpoints.

What goes where, for a fold ``k`` held out for testing:

* the *training* clips (the other folds minus a validation share) are the only clips augmented:
  offline NAA (originals + 6 cached variants each), online NAA (a random NAA chain per clip and
  epoch, in DataLoader worker processes), TAA / SpecAugment on each training batch of images,
  mixup of each training batch -- whatever :attr:`TrainConfig.augment` names;
* the *validation* clips (``val_fraction`` of the training folds' recordings, grouped by
  recording, :func:`escnet.folds.fold_split`) choose the best epoch and stop training early;
* the *test* fold is looked at once, at the end, with the best checkpoint.

A run directory holds::

    config.json            the TrainConfig, resolved (device used, folds, workers, versions)
    results.json           per fold and mean ± std (written after every fold)
    report.md, *.png       the report (escnet.report), written at the end
    fold{k}/last.pt        everything needed to resume: model, optimiser, schedule, RNG states
    fold{k}/best.pt        the best model's weights, its config and class names
    fold{k}/metrics.csv    one row per epoch
    fold{k}/split.json     clip ids of train / val / test and the sources of the training images
    fold{k}/test_predictions.csv

Distributed training: launched with ``torchrun --nproc_per_node N``, every function here joins
the process group (NCCL on CUDA, Gloo on CPU), wraps the model in DistributedDataParallel and
shards the training batches with a DistributedSampler, which pads the last round with repeated
clips so that every rank runs the same number of steps. Training loss, accuracy and counts are
summed over ranks (``all_reduce``). **Validation runs on all ranks**, each on a disjoint strided
shard of the validation clips (no padding, so no clip counts twice) and the sums are reduced;
the **final test evaluation runs on rank 0 only**, which needs every prediction for the confusion
matrix, and its result is broadcast. Only rank 0 writes files and shows progress bars.

Examples:
    >>> from escnet.train import TrainConfig, cross_validate
    >>> config = TrainConfig(dataset="esc10", model="cnn7", augment="naa", epochs=30)
    >>> results = cross_validate(config, "runs/esc10-cnn7")  # doctest: +SKIP
    >>> results["summary"]["accuracy"]  # doctest: +SKIP
    {'mean': 0.83, 'std': 0.02}
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm.auto import tqdm

from escnet import report
from escnet.audio import AudioConfig, load_audio
from escnet.augment.audio import naa_variants
from escnet.augment.offline import expand_training_set
from escnet.augment.policy import AugmentPolicy, get_policy
from escnet.cache import atomic_path, atomic_write_json, atomic_write_text
from escnet.datasets import Dataset, get_dataset
from escnet.errors import AudioError, EscnetError
from escnet.folds import Split, fold_split
from escnet.linear_probe import ProbeResult, linear_probe_head
from escnet.metrics import classification_metrics
from escnet.models import SpectralClassifier, create_model, get_model_info
from escnet.prepare import default_workers, prepare_features
from escnet.spectrogram import FrontEndConfig

__all__ = [
    "FoldResult",
    "TrainConfig",
    "cross_validate",
    "evaluate_run",
    "resolve_device",
    "seed_everything",
    "train_fold",
]

log = logging.getLogger(__name__)

#: Columns of ``fold{k}/metrics.csv``, one row per epoch. Losses are means per clip: the
#: training loss is the objective optimised (with label smoothing and mixup targets when on), the
#: validation loss plain cross-entropy. ``lr`` is the rate of the epoch's last step;
#: ``train_samples`` / ``val_samples`` are totals over all ranks.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "train_samples",
    "val_samples",
)

#: Config fields that may differ when a run is resumed (they do not change the numbers).
_RESUME_FREE_FIELDS = frozenset({"device", "workers", "data_dir", "cache_dir", "root"})


# --------------------------------------------------------------------------------------------
# Configuration and results


@dataclass
class TrainConfig:
    """Everything a training run depends on, as plain values; saved as ``config.json``.

    Attributes:
        dataset: data set name (:func:`escnet.datasets.get_dataset`): esc50, esc10, us8k, folder.
        model: registered model name (:func:`escnet.models.list_models`).
        augment: augmentation policy of the training clips
            (:data:`escnet.augment.policy.POLICIES`): none, taa, naa, naa-online, naa+taa,
            naa+mixup, specaug, specaug+mixup.
        folds: test folds to run, one training per fold (leave-one-fold-out); ``None``: every
            official fold of the data set.
        epochs: passes over the (augmented) training set.
        batch_size: clips per training step (per process when distributed).
        lr: peak learning rate of AdamW, reached after the warm-up.
        linear_probe: before the first epoch, fit the new output layer as a logistic regression
            on the frozen network's features of the training images (with offline NAA, all
            seven versions of each clip; per-batch TAA, SpecAugment and mixup do not apply), its
            L2 penalty chosen on the validation split (:mod:`escnet.linear_probe`; LP-FT). For
            models with a ``Linear`` head and image-based policies (not naa-online).
        head_lr: peak learning rate of the classifier's output layer
            (:attr:`escnet.models.SpectralClassifier.head`); ``None``: ``lr``. A fine-tuned
            pretrained body usually wants a smaller ``lr`` than its freshly initialised head.
        weight_decay: AdamW's decoupled weight decay.
        warmup_epochs: linear warm-up from ~0 to ``lr`` over this many epochs (counted in steps),
            then cosine decay to 0 at the last step.
        label_smoothing: label smoothing of the training loss (validation and test losses are
            plain cross-entropy).
        val_fraction: share of the training folds' recordings held out for model selection;
            0 trains on all of them and keeps the last epoch.
        early_stopping_patience: stop after this many epochs without a better validation
            accuracy; ``None`` never stops early.
        seed: seeds everything: validation draw, NAA variants, initialisation, shuffling,
            augmentation.
        workers: decoding threads, NAA processes and online-NAA DataLoader workers; ``None``:
            the number of CPU cores, at most 8.
        pretrained: start from the model's pretrained weights.
        data_dir: directory holding the data sets (default ``$ESCNET_DATA_DIR``).
        cache_dir: cache of spectral images and NAA variants (default ``$ESCNET_CACHE_DIR``).
        root: the data set's own directory (required for ``dataset="folder"``).
        clip_seconds: pad or crop every clip to this length instead of the data set's own
            (ESC: 5 s, UrbanSound8K: 4 s); ``None`` keeps the data set's.
        device: ``"auto"`` (CUDA, then MPS, then CPU), or a torch device such as ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        amp: mixed precision (bfloat16, or float16 with loss scaling) -- on CUDA only.
        channels_last: keep images and convolution weights in channels-last memory order; on
            this project's 2-core CPU it trains mn04_as 1.7x and cnn7 1.3x faster
            (``benchmarks/bench_train_throughput.py``), and it is the fast layout on GPUs too.
        max_train_batches: stop each epoch after this many batches (smoke tests); ``None``:
            the whole training set.
    """

    dataset: str = "esc50"
    model: str = "cnn7"
    augment: str = "naa"
    folds: list[int] | None = None
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float | None = None
    linear_probe: bool = False
    weight_decay: float = 1e-2
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.0
    val_fraction: float = 0.1
    early_stopping_patience: int | None = None
    seed: int = 0
    workers: int | None = None
    pretrained: bool = False
    data_dir: str | None = None
    cache_dir: str | None = None
    root: str | None = None
    clip_seconds: float | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    max_train_batches: int | None = None

    def __post_init__(self) -> None:
        def positive_int(name: str, value: object, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"TrainConfig.{name} must be an integer >= {minimum}, got {value!r}"
                )

        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        if self.folds is not None:
            if not self.folds:
                raise ValueError("TrainConfig.folds must name at least one fold, or be None")
            for f in self.folds:
                positive_int("folds[]", f)
            self.folds = sorted(set(self.folds))
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.head_lr is not None and not self.head_lr > 0:
            raise ValueError(f"TrainConfig.head_lr must be > 0 or None, got {self.head_lr}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_epochs < 0:
            raise ValueError(f"TrainConfig.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.early_stopping_patience is not None:
            positive_int("early_stopping_patience", self.early_stopping_patience)
        if self.workers is not None:
            positive_int("workers", self.workers, minimum=0)
        if self.max_train_batches is not None:
            positive_int("max_train_batches", self.max_train_batches)
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ValueError(
                f"TrainConfig.clip_seconds must be > 0 or None, got {self.clip_seconds}"
            )
        policy = get_policy(self.augment)  # ValueError listing the policies
        if self.linear_probe and policy.online_naa:
            raise ValueError(
                f"TrainConfig.linear_probe needs training images, but augment={self.augment!r} "
                "draws new audio every epoch; use augment='naa' or linear_probe=False"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a mapping; keys that are not fields raise ValueError naming them (the
        ``environment`` block that :func:`cross_validate` adds is ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in values if k not in names and k != "environment")
        if unknown:
            raise ValueError(
                f"{source}: unknown TrainConfig field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Load a ``config.json`` written by :func:`cross_validate` (or by hand)."""
        p = Path(path)
        try:
            values = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: no such config file") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{p}: expected a JSON object of TrainConfig fields")
        return cls.from_dict(values, source=str(p))


@dataclass
class FoldResult:
    """Test metrics of one fold, computed once with the best checkpoint.

    Attributes:
        test_fold: the held-out fold.
        accuracy, macro_f1: on the test fold.
        loss: mean cross-entropy on the test fold.
        per_class_accuracy: per class (index = label), ``None`` for a class without test clips.
        confusion_matrix: rows = true class, columns = predicted class.
        best_epoch: the epoch (1-based) whose weights were tested.
        epochs_run: epochs trained (fewer than configured when stopped early).
        stopped_early: early stopping ended the training.
        selection: how ``best_epoch`` was chosen.
        train_clips, train_images, val_clips, test_clips: sizes (train_images counts NAA
            variants; with online NAA it equals train_clips).
    """

    test_fold: int
    accuracy: float
    macro_f1: float
    loss: float
    per_class_accuracy: list[float | None]
    confusion_matrix: list[list[int]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    selection: str
    train_clips: int
    train_images: int
    val_clips: int
    test_clips: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], classes: Sequence[str]) -> FoldResult:
        """From a fold entry of ``results.json`` (per-class accuracy keyed by class name)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        per_class = kept["per_class_accuracy"]
        if isinstance(per_class, Mapping):
            kept["per_class_accuracy"] = [per_class.get(c) for c in classes]
        for key in ("accuracy", "macro_f1", "loss"):
            kept[key] = _nan_if_none(kept[key])
        return cls(**kept)


# --------------------------------------------------------------------------------------------
# Devices, seeds, processes


def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The device to train on: ``"auto"`` picks CUDA (``cuda:local_rank``), then MPS, then CPU.

    Raises:
        ValueError: ``requested`` names a device this machine does not have.
    """
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        # DDP has no MPS backend: a distributed run without CUDA trains on CPUs.
        if mps is not None and mps.is_available() and "WORLD_SIZE" not in os.environ:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(
            f"device {requested!r} is not a torch device (try cpu, cuda, mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r}: CUDA is not available; use device='auto'")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {requested!r}: MPS is not available; use device='auto'")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CUDA's too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (seed, fold, epoch, rank, ...): same parts, same seed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass(frozen=True)
class _Dist:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _launched_distributed() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def _distributed(device: torch.device) -> Iterator[_Dist]:
    """Join the process group when launched by torchrun (and leave it if we joined it)."""
    if dist.is_available() and dist.is_initialized():
        yield _Dist(dist.get_rank(), dist.get_world_size(), _local_rank())
        return
    if not (_launched_distributed() and dist.is_available()):
        yield _Dist()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    try:
        yield _Dist(dist.get_rank(), dist.get_world_size(), _local_rank())
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# Data


class WaveformDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Training clips as waveforms held in memory, each passed through a random audio transform
    (online NAA) every time it is drawn.

    The transform's randomness comes from a generator seeded by (seed, epoch, clip), not from
    the worker process, so an epoch's augmentations do not depend on the number of DataLoader
    workers and a resumed epoch repeats exactly. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        waveforms: np.ndarray,
        labels: np.ndarray,
        transform: Any,
        sample_rate: int,
        seed: int,
    ) -> None:
        self.waveforms = waveforms
        self.labels = labels
        self.transform = transform
        self.sample_rate = sample_rate
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        wave = self.waveforms[index]
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            wave = self.transform(wave, self.sample_rate, rng=rng)
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), int(
            self.labels[index]
        )


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker (base seed from the loader's generator + worker id); pass it on.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _load_waveforms(
    dataset: Dataset, indices: Sequence[int], sample_rate: int, workers: int
) -> tuple[np.ndarray, list[int]]:
    """Decode the clips at ``indices`` once (threads); returns (waveforms, kept indices)."""
    audio = AudioConfig(sample_rate=sample_rate, duration=dataset.duration)

    def load(i: int) -> np.ndarray | None:
        try:
            return load_audio(dataset[i].path, audio)
        except AudioError as exc:
            log.warning("skipping %s", exc)
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        waves = list(pool.map(load, indices))
    kept = [i for i, w in zip(indices, waves, strict=True) if w is not None]
    if audio.num_samples is None and len({len(w) for w in waves if w is not None}) > 1:
        raise ValueError(
            f"{dataset.name}: clips differ in length and the data set has no fixed duration; "
            "set TrainConfig.clip_seconds"
        )
    arrays = [w for w in waves if w is not None]
    return (np.stack(arrays) if arrays else np.empty((0, 0), np.float32)), kept


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
    split: Split,
    front_end: FrontEndConfig,
    policy: AugmentPolicy,
    *,
    progress: bool = True,
) -> FoldData:
    """Spectral images (and, for online NAA, waveforms) of one split at ``front_end``.

    Validation and test clips become plain images; only ``split.train`` is augmented (offline
    NAA through :func:`~escnet.augment.offline.expand_training_set`, which touches
    ``split.train`` alone).
    """
    workers = config.workers if config.workers is not None else default_workers()
    cache = config.cache_dir

    def images(indices: Sequence[int], what: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        if not indices:
            return torch.empty(0, 1, 1), torch.empty(0, dtype=torch.int64), np.empty(0, np.int64)
        fs = prepare_features(
            dataset.subset(indices), front_end, cache_dir=cache, workers=workers, progress=progress
        )
        if len(fs.labels) == 0:
            raise EscnetError(f"{dataset.name}: none of the {len(indices)} {what} clips loads")
        kept = np.asarray(indices, dtype=np.int64)[fs.indices]
        return torch.from_numpy(fs.features), torch.from_numpy(fs.labels), kept

    val_images, val_labels, val_indices = images(split.val, "validation")
    test_images, test_labels, test_indices = images(split.test, "test")

    train: torch.utils.data.Dataset[Any]
    if policy.online_naa:
        waves, kept = _load_waveforms(dataset, split.train, front_end.sample_rate, workers)
        labels = np.array([dataset[i].label for i in kept], dtype=np.int64)
        if len(waves):
            # librosa compiles its DSP kernels (numba) on first use: do it once here, so that
            # forked DataLoader workers inherit them instead of each compiling them every epoch.
            naa_variants(waves[0], front_end.sample_rate, seed=0)
        train = WaveformDataset(
            waves, labels, policy.audio_transform(config.seed), front_end.sample_rate, config.seed
        )
        sources = np.asarray(kept, dtype=np.int64)
        variants = np.full(len(kept), "online-naa")
    elif policy.offline_naa:
        expanded = expand_training_set(
            dataset,
            split,
            front_end,
            seed=config.seed,
            cache_dir=cache,
            workers=workers,
            progress=progress,
        )
        train = TensorDataset(
            torch.from_numpy(expanded.features), torch.from_numpy(expanded.labels)
        )
        sources, variants = expanded.source, expanded.variant
    else:
        feats, labs, kept_idx = images(split.train, "training")
        train = TensorDataset(feats, labs)
        sources, variants = kept_idx, np.full(len(kept_idx), "original")

    if len(sources) == 0:
        raise EscnetError(
            f"{dataset.name}, test fold {split.test_fold}: no training clip could be loaded"
        )
    # The guard that makes the report's claim true: no test or validation clip is trained on.
    held_out = set(split.test) | set(split.val)
    leaked = sorted({int(s) for s in sources} & held_out)
    if leaked or not {int(s) for s in sources} <= set(split.train):
        raise RuntimeError(
            f"training images come from clips outside the training split: "
            f"{[dataset[i].clip_id for i in leaked[:5]]}"
        )
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


# --------------------------------------------------------------------------------------------
# Schedule, evaluation, checkpoints, logs


def warmup_cosine(total_steps: int, warmup_steps: int) -> Any:
    """LambdaLR factor: linear warm-up to 1 over ``warmup_steps``, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _autocast(device: torch.device, enabled: bool, dtype: torch.dtype) -> Any:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    *,
    batch_size: int = 64,
    amp: bool = False,
    amp_dtype: torch.dtype = torch.bfloat16,
    channels_last: bool = True,
) -> torch.Tensor:
    """Logits (N, classes), float32 on the CPU, of (N, M, F) images, in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].unsqueeze(1).to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp, amp_dtype):
            logits = model(x)
        out.append(logits.float().cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_metrics_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in history:
        cells = []
        for col in METRIC_COLUMNS:
            v = row[col]
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:.6g}")
            else:
                cells.append(str(v))
        writer.writerow(cells)
    atomic_write_text(path, buf.getvalue())


def _tensorboard(log_dir: Path, purge_step: int) -> Any:
    """A SummaryWriter when tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _nan_if_none(v: float | None) -> float:
    return math.nan if v is None else float(v)


# --------------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class _Compute:
    """Where and how tensors run: the device, mixed precision and memory order of a config."""

    device: torch.device
    amp: bool
    amp_dtype: torch.dtype
    channels_last: bool

    @classmethod
    def of(cls, config: TrainConfig, device: torch.device) -> _Compute:
        amp = config.amp and device.type == "cuda"  # mixed precision is a CUDA-only speed-up
        dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        return cls(device, amp, dtype, config.channels_last)

    def prepare(self, model: nn.Module) -> nn.Module:
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def autocast(self) -> Any:
        return _autocast(self.device, self.amp, self.amp_dtype)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def predict(self, model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        return predict_logits(
            model,
            images,
            self.device,
            batch_size=batch_size,
            amp=self.amp,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
        )


@dataclass
class _Optimisation:
    """AdamW, its per-step warm-up + cosine schedule and the (CUDA float16) loss scaler."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @classmethod
    def of(
        cls,
        model: SpectralClassifier,
        config: TrainConfig,
        steps_per_epoch: int,
        compute: _Compute,
    ) -> _Optimisation:
        head_params = list(model.head.parameters()) if config.head_lr is not None else []
        head_ids = {id(p) for p in head_params}
        groups: list[dict[str, Any]] = [
            {"params": [p for p in model.parameters() if id(p) not in head_ids]}
        ]
        if head_params:
            groups.append({"params": head_params, "lr": config.head_lr})
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            warmup_cosine(
                config.epochs * steps_per_epoch,
                int(round(config.warmup_epochs * steps_per_epoch)),
            ),
        )
        scaler = torch.amp.GradScaler(
            "cuda", enabled=compute.amp and compute.amp_dtype == torch.float16
        )
        return cls(optimizer, scheduler, scaler)

    @property
    def lr(self) -> float:
        """The body's current learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, loss: torch.Tensor) -> float:
        """Back-propagate ``loss``, update, advance the schedule; the learning rate used."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.lr
        self.scheduler.step()
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


def _training_loader(
    config: TrainConfig, data: FoldData, ddp: _Dist, device: torch.device
) -> tuple[DataLoader[Any], DistributedSampler[Any], torch.Generator]:
    """The shuffled (and, when distributed, sharded) loader of the training items."""
    sampler: DistributedSampler[Any] = DistributedSampler(
        data.train,
        num_replicas=ddp.world_size,
        rank=ddp.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=False,
    )
    generator = torch.Generator()
    workers = config.workers if config.workers is not None else default_workers()
    num_workers = workers if data.waveforms else 0  # images are already in memory
    loader = DataLoader(
        data.train,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None,
        generator=generator,
        pin_memory=device.type == "cuda",
        multiprocessing_context="fork"
        if num_workers and "fork" in torch.multiprocessing.get_all_start_methods()
        else None,
    )
    return loader, sampler, generator


def _train_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    steps: int,
    optim: _Optimisation,
    criterion: nn.Module,
    compute: _Compute,
    *,
    wave_to_image: nn.Module | None,
    image_tf: Any,
    mix: Any,
    desc: str,
    show: bool,
) -> tuple[torch.Tensor, float]:
    """One pass of ``steps`` batches; this rank's sums (loss * n, correct, n) and the last lr."""
    device = compute.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    lr = optim.lr
    bar = tqdm(total=steps, desc=desc, unit="batch", leave=False, disable=not show)
    for step, (x, y) in enumerate(loader):
        if step >= steps:
            break
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if wave_to_image is not None:
            with torch.no_grad():
                x = wave_to_image(x)
        else:
            x = x.unsqueeze(1)
        if image_tf is not None:
            x = image_tf(x)
        target = y
        if mix is not None:
            x, target = mix(x, y)
        with compute.autocast():
            logits = model(compute.layout(x))
            loss = criterion(logits, target)
        lr = optim.step(loss)
        with torch.no_grad():
            hard = target.argmax(1) if target.ndim == 2 else target
            n = float(y.shape[0])
            sums += torch.stack(
                [
                    loss.detach().double() * n,
                    (logits.argmax(1) == hard).sum().double(),
                    torch.tensor(n, dtype=torch.float64, device=device),
                ]
            )
        bar.update(1)
        if show and (step % 10 == 0 or step == steps - 1):
            s = sums.tolist()
            bar.set_postfix(loss=f"{s[0] / s[2]:.3f}", acc=f"{s[1] / s[2]:.3f}")
    bar.close()
    return sums, lr


def _validate(
    model: nn.Module, data: FoldData, ddp: _Dist, compute: _Compute, batch_size: int
) -> tuple[float, float, int]:
    """Validation loss, accuracy and clip count: every rank a disjoint shard, sums reduced."""
    sums = torch.zeros(3, dtype=torch.float64, device=compute.device)
    shard = slice(ddp.rank, None, ddp.world_size)
    labels = data.val_labels[shard]
    if len(labels):
        logits = compute.predict(model, data.val_images[shard], batch_size)
        sums += torch.tensor(
            [
                F.cross_entropy(logits, labels, reduction="sum").item(),
                (logits.argmax(1) == labels).sum().item(),
                len(labels),
            ],
            dtype=torch.float64,
            device=compute.device,
        )
    loss_sum, correct, count = ddp.sum(sums).tolist()
    if not count:
        return math.nan, math.nan, 0
    return loss_sum / count, correct / count, int(count)


def _fit_probe(
    model: SpectralClassifier, data: FoldData, compute: _Compute, fold: int, show: bool
) -> ProbeResult:
    """LP-FT's first half: the new head fitted on the frozen network's training features."""
    assert isinstance(data.train, TensorDataset)  # TrainConfig refuses naa-online
    train_images, train_labels = data.train.tensors
    probe = linear_probe_head(
        model,
        train_images,
        train_labels,
        data.val_images,
        data.val_labels,
        device=compute.device,
        channels_last=compute.channels_last,
        progress=show,
    )
    log.info(
        "fold %d: linear probe, l2 %g: train acc %.4f | val loss %.4f acc %.4f",
        fold,
        probe.l2,
        probe.train_acc,
        probe.val_loss,
        probe.val_acc,
    )
    return probe


def train_fold(
    config: TrainConfig,
    dataset: Dataset,
    split: Split,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
) -> FoldResult:
    """Train on ``split.train``, select on ``split.val``, test once on ``split.test``.

    Files go to ``run_dir/fold{split.test_fold}/`` (see the module docstring). With
    ``resume=True`` training continues after the last completed epoch of ``last.pt`` (an epoch
    that was interrupted is restarted from its beginning, with the RNG states saved after the
    epoch before it, so the run ends with the same numbers as an uninterrupted one).

    Args:
        config: the run's configuration.
        dataset: the data set the split indexes.
        split: one fold split (:func:`escnet.folds.fold_split`).
        run_dir: the run directory.
        resume: continue from ``fold{k}/last.pt`` when it exists.
        progress: show progress bars (rank 0 only).

    Returns:
        The fold's test metrics (the same on every rank of a distributed run).
    """
    fold = split.test_fold if split.test_fold is not None else 0
    fold_dir = Path(run_dir) / f"fold{fold}"
    device = resolve_device(config.device, _local_rank())
    compute = _Compute.of(config, device)
    eval_batch = 2 * config.batch_size
    with _distributed(device) as ddp:
        show = progress and ddp.is_main
        policy = get_policy(config.augment)
        fold_seed = _derive_seed(config.seed, fold)

        # ---- model: seeded identically on every rank (DDP also broadcasts rank 0's weights)
        seed_everything(fold_seed)
        model = create_model(config.model, dataset.num_classes, pretrained=config.pretrained)
        front_end = model.model_info.front_end
        compute.prepare(model)

        # ---- data: rank 0 fills the caches first, the others then read them
        if not ddp.is_main:
            ddp.barrier()
        data = load_fold_data(config, dataset, split, front_end, policy, progress=show)
        if ddp.is_main:
            ddp.barrier()
            _write_split(fold_dir / "split.json", dataset, split, data)
        loader, sampler, loader_gen = _training_loader(config, data, ddp, device)
        wave_to_image = front_end.build().to(device).eval() if data.waveforms else None

        # ---- optimiser and schedule (per step)
        steps_per_epoch = len(loader)
        if config.max_train_batches is not None:
            steps_per_epoch = min(steps_per_epoch, config.max_train_batches)
        optim = _Optimisation.of(model, config, steps_per_epoch, compute)
        criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        has_val = len(data.val_labels) > 0
        selection = (
            "best validation accuracy (ties: lower validation loss)"
            if has_val
            else "last epoch (no validation clips: val_fraction = 0 or too few recordings)"
        )

        # ---- state that a checkpoint carries
        epoch = 0  # epochs completed
        best: dict[str, Any] = {"epoch": 0, "val_acc": -math.inf, "val_loss": math.inf}
        since_best = 0
        stopped_early = False
        history: list[dict[str, Any]] = []
        rng_states: list[dict[str, Any]] | None = None
        last_path = fold_dir / "last.pt"
        if resume and last_path.is_file():
            ckpt = torch.load(last_path, map_location="cpu", weights_only=False)
            _check_resumable(ckpt.get("config", {}), config, last_path)
            model.load_state_dict(ckpt["model"])
            optim.load_state_dict(ckpt)
            epoch, best, since_best = ckpt["epoch"], ckpt["best"], ckpt["since_best"]
            stopped_early, history = ckpt["stopped_early"], ckpt["history"]
            rng_states = ckpt["rng"]
            log.info("fold %d: resuming after epoch %d from %s", fold, epoch, last_path)
            if ddp.is_main:
                _write_metrics_csv(fold_dir / "metrics.csv", history)

        if config.linear_probe and epoch == 0 and rng_states is None:
            # LP-FT's first half, on a fresh start only (a resumed run has its fitted head).
            # Every rank fits the same head; DDP's start-up broadcast makes them identical anyway.
            probe = _fit_probe(model, data, compute, fold, show)
            if ddp.is_main:
                atomic_write_json(fold_dir / "linear_probe.json", asdict(probe))

        train_model: nn.Module = model
        if ddp.enabled:
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        writer = _tensorboard(fold_dir / "tensorboard", epoch) if ddp.is_main else None
        if rng_states is not None:
            # Last, so that nothing above draws from the restored generators.
            own = rng_states[ddp.rank] if len(rng_states) == ddp.world_size else rng_states[0]
            _set_rng_state(own, device)
        else:
            torch.manual_seed(fold_seed + ddp.rank)  # different dropout masks on each rank

        # ---- epochs
        while epoch < config.epochs and not stopped_early:
            started = time.perf_counter()
            train_model.train()
            sampler.set_epoch(epoch)
            loader_gen.manual_seed(_derive_seed(config.seed, fold, epoch, 0))
            if isinstance(data.train, WaveformDataset):
                data.train.set_epoch(epoch)
            sums, lr = _train_epoch(
                train_model,
                loader,
                steps_per_epoch,
                optim,
                criterion,
                compute,
                wave_to_image=wave_to_image,
                image_tf=policy.image_transform(
                    seed=_derive_seed(config.seed, fold, epoch, ddp.rank, 1)
                ),
                mix=policy.mixup_transform(
                    dataset.num_classes, seed=_derive_seed(config.seed, fold, epoch, ddp.rank, 2)
                ),
                desc=f"fold {fold} epoch {epoch + 1}/{config.epochs}",
                show=show,
            )
            train_loss, train_correct, train_count = ddp.sum(sums).tolist()
            val_loss, val_acc, val_count = _validate(model, data, ddp, compute, eval_batch)
            epoch += 1
            row = {
                "epoch": epoch,
                "train_loss": train_loss / train_count,
                "train_acc": train_correct / train_count,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "lr": lr,
                "seconds": time.perf_counter() - started,
                "train_samples": int(train_count),
                "val_samples": val_count,
            }
            history.append(row)

            # model selection on the validation split only (never the test fold)
            improved = not has_val or (
                val_acc > best["val_acc"]
                or (val_acc == best["val_acc"] and val_loss < best["val_loss"])
            )
            if improved:
                best = {"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss}
                since_best = 0
            else:
                since_best += 1
            patience = config.early_stopping_patience
            stopped_early = has_val and patience is not None and since_best >= patience
            log.info(
                "fold %d epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f%s",
                fold,
                epoch,
                config.epochs,
                row["train_loss"],
                row["train_acc"],
                val_loss,
                val_acc,
                " (best)" if improved else "",
            )

            # checkpoints: best first, so that last.pt never points past a missing best.pt
            rng_states = ddp.gather(_rng_state(device))
            if ddp.is_main:
                if improved:
                    _save(
                        {
                            "model": model.state_dict(),
                            "model_name": config.model,
                            "classes": list(dataset.classes),
                            "config": config.to_dict(),
                            "epoch": epoch,
                            "test_fold": fold,
                            "val_acc": _nan_if_none(val_acc),
                            "val_loss": _nan_if_none(val_loss),
                        },
                        fold_dir / "best.pt",
                    )
                _save(
                    {
                        "model": model.state_dict(),
                        **optim.state_dict(),
                        "epoch": epoch,
                        "best": best,
                        "since_best": since_best,
                        "stopped_early": stopped_early,
                        "history": history,
                        "rng": rng_states,
                        "config": config.to_dict(),
                    },
                    last_path,
                )
                _write_metrics_csv(fold_dir / "metrics.csv", history)
                if writer is not None:
                    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "lr"):
                        group, _, name = key.partition("_")
                        writer.add_scalar(f"{name}/{group}" if name else key, row[key], epoch)
                    writer.flush()
            ddp.barrier()  # nobody reads a checkpoint before it is written
        if writer is not None:
            writer.close()

        # ---- test: once, with the best checkpoint, on rank 0
        result: FoldResult | None = None
        if ddp.is_main:
            state = torch.load(fold_dir / "best.pt", map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            logits_t = compute.predict(model, data.test_images, eval_batch)
            metrics = classification_metrics(
                data.test_labels.numpy(), logits_t.argmax(1).numpy(), dataset.num_classes
            )
            _write_predictions(fold_dir / "test_predictions.csv", dataset, data, logits_t)
            result = FoldResult(
                test_fold=fold,
                accuracy=metrics["accuracy"],
                macro_f1=metrics["macro_f1"],
                loss=F.cross_entropy(logits_t, data.test_labels).item(),
                per_class_accuracy=metrics["per_class_accuracy"],
                confusion_matrix=metrics["confusion_matrix"],
                best_epoch=int(best["epoch"]),
                epochs_run=epoch,
                stopped_early=bool(stopped_early),
                selection=selection,
                train_clips=len(set(data.train_sources.tolist())),
                train_images=len(data.train_sources),
                val_clips=len(data.val_labels),
                test_clips=len(data.test_labels),
            )
            log.info(
                "fold %d: test accuracy %.4f, macro F1 %.4f (epoch %d)",
                fold,
                result.accuracy,
                result.macro_f1,
                result.best_epoch,
            )
        result = ddp.broadcast(result)
        assert result is not None
        return result


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    now = config.to_dict()
    diffs = [
        f"{k}: {saved.get(k)!r} there, {now[k]!r} now"
        for k in now
        if k not in _RESUME_FREE_FIELDS and k in saved and saved[k] != now[k]
    ]
    if diffs:
        raise EscnetError(
            f"{path}: cannot resume a run made with another configuration ({'; '.join(diffs)}); "
            "resume with the run's own config.json or start a new run directory"
        )


def _write_split(path: Path, dataset: Dataset, split: Split, data: FoldData) -> None:
    variants, counts = np.unique(data.train_variants, return_counts=True)
    atomic_write_json(
        path,
        {
            "test_fold": split.test_fold,
            "protocol": split.protocol,
            "train": [dataset[i].clip_id for i in split.train],
            "val": [dataset[i].clip_id for i in split.val],
            "test": [dataset[i].clip_id for i in split.test],
            "train_images": {
                "count": len(data.train_sources),
                "sources": sorted({dataset[int(i)].clip_id for i in data.train_sources}),
                "variants": {str(v): int(c) for v, c in zip(variants, counts, strict=True)},
            },
        },
    )


def _write_predictions(path: Path, dataset: Dataset, data: FoldData, logits: torch.Tensor) -> None:
    probs = logits.softmax(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "label", "prediction", "true_class", "predicted_class", "p"])
    for row, i in enumerate(data.test_indices):
        clip = dataset[int(i)]
        pred = int(probs[row].argmax())
        writer.writerow(
            [
                clip.clip_id,
                clip.label,
                pred,
                dataset.classes[clip.label],
                dataset.classes[pred],
                f"{float(probs[row, pred]):.4f}",
            ]
        )
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# Cross-validation and evaluation of a finished run


def load_dataset(config: TrainConfig) -> Dataset:
    """The data set a config names, with ``clip_seconds`` applied."""
    kwargs: dict[str, object] = {}
    if config.root is not None:
        kwargs["root"] = config.root
    if config.dataset != "folder":
        kwargs["data_dir"] = config.data_dir
    dataset = get_dataset(config.dataset, **kwargs)
    if config.clip_seconds is not None:
        dataset = dataclasses.replace(dataset, duration=config.clip_seconds)
    return dataset


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
        "torch": torch.__version__,
        "escnet": escnet_version,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return value if isinstance(value, dict) else None


def cross_validate(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Leave-one-fold-out over ``config.folds``: train, select and test one model per fold.

    Writes ``config.json`` (resolved), then per fold the files of :func:`train_fold`, updates
    ``results.json`` after each fold, and at the end writes the report (``report.md`` and its
    figures, :func:`escnet.report.write_report`).

    Args:
        config: the run's configuration.
        run_dir: directory of the run; created if needed. It must not hold another run unless
            ``resume`` is true.
        resume: continue an interrupted run: folds already in ``results.json`` are skipped, an
            unfinished fold continues from its ``last.pt``.
        progress: show progress bars.

    Returns:
        The content of ``results.json`` (see :func:`escnet.report.build_results`).

    Raises:
        EscnetError: ``run_dir`` holds a run and ``resume`` is false, or it holds a run of
            another configuration.
        ValueError: a fold of ``config.folds`` is not a fold of the data set.
    """
    run = Path(run_dir)
    device = resolve_device(config.device, _local_rank())
    with _distributed(device) as ddp:
        dataset = load_dataset(config)
        folds = config.folds if config.folds is not None else dataset.folds
        absent = [f for f in folds if f not in dataset.folds]
        if absent:
            raise ValueError(
                f"TrainConfig.folds: {absent} are not folds of {dataset.name} "
                f"(folds: {dataset.folds})"
            )
        get_model_info(config.model)  # fail before any work on an unknown model
        workers = config.workers if config.workers is not None else default_workers()
        # What actually runs: device, folds and workers made explicit; amp is CUDA-only.
        resolved = dataclasses.replace(
            config,
            folds=list(folds),
            workers=workers,
            device=str(device),
            amp=config.amp and device.type == "cuda",
        )

        config_path = run / "config.json"
        # Every rank reads what is there before rank 0 writes anything.
        saved = _read_json(config_path)
        previous = _read_json(run / "results.json") if resume else None
        ddp.barrier()
        if saved is not None and not resume:
            raise EscnetError(
                f"{run} already holds a run ({config_path}); pass resume=True (--resume) to "
                "continue it, or choose a new run directory"
            )
        if saved is not None:
            _check_resumable(saved, resolved, config_path)
        elif ddp.is_main:
            atomic_write_json(
                config_path,
                {**resolved.to_dict(), "environment": _environment(device, ddp.world_size)},
            )
        ddp.barrier()
        done = {
            int(entry["test_fold"]): FoldResult.from_dict(entry, dataset.classes)
            for entry in (previous or {}).get("folds", [])
        }
        results: dict[int, FoldResult] = {}

        def summarise() -> dict[str, Any]:
            return report.build_results(
                resolved.to_dict(),
                [r.to_dict() for r in results.values()],
                dataset.classes,
                planned_folds=folds,
            )

        for fold in folds:
            if fold in done:
                log.info("fold %d: already in results.json, skipped", fold)
                results[fold] = done[fold]
                continue
            split = fold_split(dataset, fold, val_fraction=config.val_fraction, seed=config.seed)
            split.check_disjoint(dataset)
            results[fold] = train_fold(
                resolved, dataset, split, run, resume=resume, progress=progress
            )
            if ddp.is_main:  # after every fold, so that an interrupted run keeps its folds
                report.write_results(run, summarise())
        summary = summarise()
        if ddp.is_main:
            report.write_results(run, summary)
            report.write_report(run)
        ddp.barrier()
        return summary


def evaluate_run(
    run_dir: str | os.PathLike[str],
    fold: int | None = None,
    *,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Recompute the test metrics of a finished run from its ``fold{k}/best.pt`` checkpoints.

    The run's ``config.json`` names the data set, model, folds and split seed; each fold's test
    clips are turned into images again (through the feature cache) and classified by the saved
    best weights.

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
    if fold is not None:
        if not (run / f"fold{fold}" / "best.pt").is_file():
            raise FileNotFoundError(
                f"{run / f'fold{fold}' / 'best.pt'}: no checkpoint for fold {fold}"
            )
        folds = [fold]
    else:
        folds = [f for f in planned if (run / f"fold{f}" / "best.pt").is_file()]
        if not folds:
            raise FileNotFoundError(f"{run}: no fold{{k}}/best.pt checkpoint to evaluate")

    entries: list[dict[str, Any]] = []
    for k in folds:
        path = run / f"fold{k}" / "best.pt"
        state = torch.load(path, map_location="cpu", weights_only=True)
        if list(state["classes"]) != list(dataset.classes):
            raise EscnetError(
                f"{path}: the checkpoint's classes differ from {dataset.name}'s; is "
                f"config.json's data set ({config.dataset}) the one this run trained on?"
            )
        split = fold_split(dataset, k, val_fraction=config.val_fraction, seed=config.seed)
        model = create_model(state["model_name"], dataset.num_classes, pretrained=False)
        model.load_state_dict(state["model"])
        compute = _Compute.of(config, dev)
        compute.prepare(model)
        fs = prepare_features(
            dataset.subset(split.test),
            model.model_info.front_end,
            cache_dir=config.cache_dir,
            workers=config.workers,
            progress=progress,
        )
        logits = compute.predict(model, torch.from_numpy(fs.features), 2 * config.batch_size)
        labels = torch.from_numpy(fs.labels)
        metrics = classification_metrics(fs.labels, logits.argmax(1).numpy(), dataset.num_classes)
        entries.append(
            {
                "test_fold": k,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "loss": F.cross_entropy(logits, labels).item(),
                "per_class_accuracy": metrics["per_class_accuracy"],
                "confusion_matrix": metrics["confusion_matrix"],
                "best_epoch": int(state["epoch"]),
                "test_clips": int(len(labels)),
            }
        )
        log.info(
            "fold %d: test accuracy %.4f, macro F1 %.4f",
            k,
            entries[-1]["accuracy"],
            entries[-1]["macro_f1"],
        )

    out = report.build_results(config.to_dict(), entries, dataset.classes, planned_folds=folds)
    saved = _read_json(run / "results.json")
    matches: bool | None = None
    if saved is not None:
        by_fold = {int(e["test_fold"]): e for e in saved.get("folds", [])}
        pairs = [(e, by_fold[e["test_fold"]]) for e in entries if e["test_fold"] in by_fold]
        if pairs:
            matches = all(
                abs(a["accuracy"] - b["accuracy"]) < 1e-9
                and abs(a["macro_f1"] - b["macro_f1"]) < 1e-9
                for a, b in pairs
            )
            if not matches:
                log.warning("%s: recomputed test metrics differ from results.json", run)
    return {
        "run_dir": str(run),
        "dataset": config.dataset,
        "model": config.model,
        "classes": list(dataset.classes),
        "folds": out["folds"],
        "summary": out["summary"],
        "matches_results": matches,
    }
