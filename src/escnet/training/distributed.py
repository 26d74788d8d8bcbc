"""Where training runs: device choice, seeds and RNG states, and the process group under
``torchrun`` (NCCL on CUDA, Gloo on CPU).

A process that was not launched by ``torchrun`` is rank 0 of 1 and every collective here is a
no-op, so the training code reads the same either way.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from escnet.errors import ParameterError

__all__ = [
    "Dist",
    "derive_seed",
    "distributed",
    "local_rank",
    "resolve_device",
    "rng_state",
    "seed_everything",
    "set_rng_state",
]


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
        raise ParameterError(
            f"device {requested!r} is not a torch device (try cpu, cuda, mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"device {requested!r}: CUDA is not available; use device='auto'")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"device {requested!r}: MPS is not available; use device='auto'")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CUDA's too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (seed, fold, epoch, rank, ...): same parts, same seed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA) RNG states, as tensors and plain types (NumPy's key
    array a tensor), so that a checkpoint holding them loads with ``weights_only=True``."""
    version, internal, gauss = random.getstate()
    name, key, pos, has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": (int(version), tuple(int(v) for v in internal), gauss),
        "numpy": (
            str(name),
            torch.from_numpy(np.asarray(key, np.int64)),
            int(pos),
            int(has_gauss),
            float(np_gauss),
        ),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore the states of :func:`rng_state`."""
    random.setstate(state["python"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass(frozen=True)
class Dist:
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

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel when distributed, else ``model`` itself."""
        if not self.enabled:
            return model
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_distributed() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[Dist]:
    """Join the process group when launched by torchrun (and leave it if we joined it)."""
    if dist.is_available() and dist.is_initialized():
        yield Dist(dist.get_rank(), dist.get_world_size(), local_rank())
        return
    if not (launched_distributed() and dist.is_available()):
        yield Dist()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    try:
        yield Dist(dist.get_rank(), dist.get_world_size(), local_rank())
    finally:
        dist.destroy_process_group()
