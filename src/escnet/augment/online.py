"""Online audio augmentation: the training clips decoded once and held as waveforms
(:func:`load_waveforms`), each passed through a random audio transform every time a DataLoader
draws it (:class:`WaveformDataset`, with :func:`worker_init` for its worker processes).

Examples:
    >>> import numpy as np
    >>> from escnet.augment.online import WaveformDataset
    >>> ds = WaveformDataset(np.zeros((2, 8), np.float32), np.array([0, 1]), None, 8000, seed=0)
    >>> wave, label = ds[1]
    >>> tuple(wave.shape), label
    ((8,), 1)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import Dataset
from escnet.errors import AudioError, ParameterError

__all__ = ["WaveformDataset", "load_waveforms", "worker_init"]

log = logging.getLogger(__name__)


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


def worker_init(worker_id: int) -> None:
    # torch seeds each worker (base seed from the loader's generator + worker id); pass it on.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def load_waveforms(
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
        raise ParameterError(
            f"{dataset.name}: clips differ in length and the data set has no fixed duration; "
            "set TrainConfig.clip_seconds"
        )
    arrays = [w for w in waves if w is not None]
    return (np.stack(arrays) if arrays else np.empty((0, 0), np.float32)), kept
