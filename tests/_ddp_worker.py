"""Helpers of tests/test_train.py that must also run in a separate process.

* :func:`write_sound_classes`: a tiny ESC-50-shaped data set of three clearly different sound
  classes (tones, noise bands, click trains) with random parameters per clip.
* ``tiny_test_cnn``: a small registered model with a cheap 8 kHz front end, so training takes
  seconds on a CPU.
* ``python tests/_ddp_worker.py CONFIG RUN_DIR [--resume] [--kill-after N] [--counts DIR]``:
  runs :func:`escnet.training.cross_validate`, launched by ``torchrun`` (distributed test) or
  plainly (the SIGKILL resume test). ``--kill-after N`` SIGKILLs the process at its N-th
  training batch; ``--counts DIR`` writes, per rank, how many training samples the rank's
  sampler handed out in each epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from conftest import write_esc50_layout
from escnet.features.spectrogram import LogMelConfig
from escnet.models.registry import list_models, register_model

SOUND_CLASSES = ("tone", "noise_band", "clicks")
TINY_FRONT_END = LogMelConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=32)

#: Training batches after which the process kills itself (SIGKILL); 0 = never.
_KILL_AFTER = {"batches": 0, "seen": 0}


def _synth(kind: str, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    if kind == "tone":
        f0 = rng.uniform(250, 600)
        y = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in (1, 2, 3))
        y = y * np.minimum(1.0, 4 * np.minimum(t, seconds - t) / seconds + 0.3)
    elif kind == "noise_band":
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        lo = rng.uniform(1500, 2200)
        spec[(freqs < lo) | (freqs > lo + 1000)] = 0
        y = np.fft.irfft(spec, n)
    else:  # clicks: short decaying bursts at a random rate
        y = np.zeros(n)
        period = int(sr / rng.uniform(5, 12))
        burst = rng.standard_normal(80) * np.exp(-np.arange(80) / 12)
        for start in range(int(rng.integers(0, period)), n - 80, period):
            y[start : start + 80] += burst
    y = y / (np.abs(y).max() + 1e-9) * rng.uniform(0.3, 0.8)
    y = y + rng.standard_normal(n) * 0.01
    return y.astype(np.float32)


def write_sound_classes(
    root: Path, per_fold: int = 4, sr: int = 8000, seconds: float = 1.0, seed: int = 0
) -> Path:
    """ESC-50 layout (meta/esc50.csv + audio/) at ``root``: 3 classes x 5 folds x ``per_fold``
    clips, one recording (``src_file``) per clip."""
    rng = np.random.default_rng(seed)
    clips = (
        (fold, target, name, _synth(name, sr, seconds, rng), False)
        for fold in range(1, 6)
        for target, name in enumerate(SOUND_CLASSES)
        for _ in range(per_fold)
    )
    return write_esc50_layout(root, clips, sr, fmt="wav")


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _KILL_AFTER["batches"]:
            _KILL_AFTER["seen"] += 1
            if _KILL_AFTER["seen"] >= _KILL_AFTER["batches"]:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.head(self.dropout(self.features(x).flatten(1)))


if "tiny_test_cnn" not in list_models():

    @register_model(
        "tiny_test_cnn",
        description="2 conv layers on 8 kHz log-mel images (tests only)",
        front_end=TINY_FRONT_END,
        input_norm=(-30.0, 20.0),
    )
    def tiny_test_cnn(num_classes: int, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return TinyCNN(num_classes)


def _counting_sampler(out_dir: Path) -> None:
    """Make escnet.training count what each rank's DistributedSampler hands out, per epoch."""
    import escnet.training.loop as train

    counts: dict[int, int] = {}
    base = train.DistributedSampler

    class CountingSampler(base):  # type: ignore[misc,valid-type]
        def __iter__(self) -> Iterator[int]:
            for index in super().__iter__():
                counts[self.epoch] = counts.get(self.epoch, 0) + 1
                yield index

    def dump() -> None:
        rank = int(os.environ.get("RANK", "0"))
        (out_dir / f"rank{rank}.json").write_text(json.dumps(counts))

    train.DistributedSampler = CountingSampler  # type: ignore[misc,unused-ignore]
    import atexit

    atexit.register(dump)


def main(argv: list[str]) -> int:
    from escnet.training import TrainConfig, cross_validate

    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--kill-after", type=int, default=0)
    p.add_argument("--counts")
    args = p.parse_args(argv)
    _KILL_AFTER["batches"] = args.kill_after
    if args.counts:
        _counting_sampler(Path(args.counts))
    config = TrainConfig.from_json(args.config)
    result = cross_validate(config, args.run_dir, resume=args.resume, progress=False)
    rank = os.environ.get("RANK", "0")
    print(f"rank {rank} test accuracy {result['summary']['accuracy']['mean']!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
