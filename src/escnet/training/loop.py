"""The optimisation side of training: where tensors run (device, mixed precision, memory
order), AdamW with its warm-up + cosine schedule, the training loader, one epoch of training, the
validation pass, prediction, and the linear probe of LP-FT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm.auto import tqdm

from escnet.augment.online import worker_init
from escnet.data.datasets import Dataset
from escnet.embeddings.outputs import autocast, predict_logits
from escnet.features.prepare import default_workers, prepare_features
from escnet.features.spectrogram import FrontEndConfig
from escnet.models import SpectralClassifier
from escnet.training.config import FinetuneConfig, TrainConfig
from escnet.training.data import FoldData
from escnet.training.distributed import Dist
from escnet.training.lp_ft import LpFtResult, linear_probe_head

__all__ = [
    "Compute",
    "Optimisation",
    "fit_lp_ft_head",
    "train_epoch",
    "training_loader",
    "validate",
    "warmup_cosine",
]

log = logging.getLogger(__name__)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Any:
    """LambdaLR factor: linear warm-up to 1 over ``warmup_steps``, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass(frozen=True)
class Compute:
    """Where and how tensors run: the device, mixed precision and memory order of a config."""

    device: torch.device
    amp: bool
    amp_dtype: torch.dtype
    channels_last: bool

    @classmethod
    def of(cls, config: TrainConfig, device: torch.device) -> Compute:
        ft = config.settings if isinstance(config.settings, FinetuneConfig) else FinetuneConfig()
        amp = ft.amp and device.type == "cuda"  # mixed precision is a CUDA-only speed-up
        dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        return cls(device, amp, dtype, ft.channels_last)

    def prepare(self, model: nn.Module) -> nn.Module:
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def autocast(self) -> Any:
        return autocast(self.device, self.amp, self.amp_dtype)

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

    def clip_logits(
        self,
        model: SpectralClassifier,
        front_end: FrontEndConfig,
        dataset: Dataset,
        indices: Sequence[int],
        *,
        batch_size: int,
        cache_dir: str | None,
        workers: int | None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Logits of the clips at ``indices`` from their spectral images at ``front_end``
        (through the feature cache), with the data set indices and labels of the clips that
        loaded: how a saved fold model is tested again."""
        if not len(indices):
            return torch.empty(0, model.num_classes), np.empty(0, np.int64), np.empty(0, np.int64)
        fs = prepare_features(
            dataset.subset(indices),
            front_end,
            cache_dir=cache_dir,
            workers=workers,
            progress=progress,
        )
        logits = self.predict(model, torch.from_numpy(fs.features), batch_size)
        kept = np.asarray([indices[int(j)] for j in fs.indices], dtype=np.int64)
        return logits, kept, fs.labels


@dataclass
class Optimisation:
    """AdamW, its per-step warm-up + cosine schedule and the (CUDA float16) loss scaler."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    @classmethod
    def plain(
        cls, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
    ) -> Optimisation:
        """Full precision, no loss scaling: the frozen-network heads' optimisation on the CPU."""
        return cls(optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=False))

    @classmethod
    def of(
        cls,
        model: SpectralClassifier,
        config: FinetuneConfig,
        steps_per_epoch: int,
        compute: Compute,
    ) -> Optimisation:
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


def training_loader(
    config: TrainConfig, data: FoldData, ddp: Dist, device: torch.device
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
        batch_size=config.finetune.batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=worker_init if num_workers else None,
        generator=generator,
        pin_memory=device.type == "cuda",
        multiprocessing_context="fork"
        if num_workers and "fork" in torch.multiprocessing.get_all_start_methods()
        else None,
    )
    return loader, sampler, generator


def train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    optim: Optimisation,
    criterion: nn.Module,
    compute: Compute,
    *,
    to_input: Callable[[torch.Tensor], torch.Tensor] | None = None,
    image_tf: Any = None,
    mix: Any = None,
    desc: str = "",
    show: bool = False,
) -> tuple[torch.Tensor, float]:
    """One pass of at most ``steps`` batches ``(x, y)``: the one training loop of escnet, for
    fine-tuning, the probe's MLP head and partial fine-tuning alike.

    ``to_input`` turns a batch into the model's input without gradients (waveforms into images,
    images into one-channel images); ``image_tf`` and ``mix`` augment the inputs. The caller sets
    the model's train mode. Returns this rank's sums (loss * n, correct, n) and the last lr.
    """
    device = compute.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    lr = optim.lr
    bar = tqdm(total=steps, desc=desc, unit="batch", leave=False, disable=not show)
    for step, (x, y) in enumerate(batches):
        if step >= steps:
            break
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if to_input is not None:
            with torch.no_grad():
                x = to_input(x)
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


def validate(
    model: nn.Module, data: FoldData, ddp: Dist, compute: Compute, batch_size: int
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


def fit_lp_ft_head(
    model: SpectralClassifier, data: FoldData, compute: Compute, fold: int, show: bool
) -> LpFtResult:
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
