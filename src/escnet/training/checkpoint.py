"""Checkpoints of one fold: ``best.pt`` (the selected weights), ``last.pt`` (everything needed to
resume), and the progress they carry (:class:`FitState`). Every file is written atomically, best
first, so that ``last.pt`` never points past a missing ``best.pt`` (:class:`Checkpointer`).

A checkpoint holds tensors and plain types only (the RNG states too,
:func:`escnet.training.distributed.rng_state`), and is read back with
``torch.load(..., weights_only=True)`` (:func:`read_checkpoint`): a run directory is data, and a
``last.pt`` that is a pickle of code is refused, never run.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from escnet.cache import atomic_path
from escnet.errors import EscnetError
from escnet.metrics.classification import better_choice
from escnet.metrics.fold import nan_if_none
from escnet.models import SpectralClassifier
from escnet.training.config import TrainConfig, check_resumable
from escnet.training.loop import Optimisation

__all__ = ["Checkpointer", "FitState", "load_resume", "read_checkpoint", "save_atomic"]

log = logging.getLogger(__name__)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file renamed into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@dataclass
class FitState:
    """A fold's progress: epochs completed, the best epoch so far, early stopping, the metrics
    history and the RNG states saved after the last epoch (one per rank)."""

    epoch: int = 0
    best: dict[str, Any] = field(
        default_factory=lambda: {"epoch": 0, "val_acc": -math.inf, "val_loss": math.inf}
    )
    since_best: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    rng: list[dict[str, Any]] | None = None

    @property
    def fresh(self) -> bool:
        """Nothing trained yet (not a resumed run)."""
        return self.epoch == 0 and self.rng is None

    def record(self, row: dict[str, Any], has_val: bool, patience: int | None) -> bool:
        """Add an epoch's metrics; whether it is the best so far (model selection on the
        validation split only: accuracy, ties broken by the lower loss; without validation
        clips every epoch is "best", so the last one is kept)."""
        self.epoch = int(row["epoch"])
        self.history.append(row)
        val_acc, val_loss = row["val_acc"], row["val_loss"]
        improved = not has_val or better_choice(
            val_acc, val_loss, (self.best["val_acc"], self.best["val_loss"])
        )
        if improved:
            self.best = {"epoch": self.epoch, "val_acc": val_acc, "val_loss": val_loss}
            self.since_best = 0
        else:
            self.since_best += 1
        self.stopped_early = has_val and patience is not None and self.since_best >= patience
        return improved


#: What a file must hold to be a checkpoint of each kind (the keys a reader uses).
_REQUIRED = {
    "best.pt": ("model", "model_name", "classes", "config", "epoch"),
    "last.pt": (
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "epoch",
        "best",
        "since_best",
        "stopped_early",
        "history",
        "rng",
        "config",
    ),
}


def read_checkpoint(path: Path, kind: str | None = None) -> dict[str, Any]:
    """A checkpoint's contents, loaded with ``weights_only=True``: tensors and plain types only,
    so that a file that would run code when unpickled is refused instead.

    Args:
        path: the file.
        kind: ``"best.pt"`` or ``"last.pt"``: check that the keys of that kind are there
            (default: the file's own name, when it is one of them).

    Raises:
        EscnetError: naming the file, when it is missing, corrupt, not a checkpoint of escnet,
            or holds anything but tensors and plain types.
    """
    kind = kind or (path.name if path.name in _REQUIRED else None)
    fix = "delete it (or the run directory) and train again"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EscnetError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as exc:
        # weights_only=True refuses any object but tensors and plain types before building it;
        # torch's message is a page long: keep the line that names what was refused.
        lines = [ln.strip() for ln in str(exc).splitlines()]
        refused = next((ln for ln in lines if "GLOBAL" in ln), None)
        if refused is None:
            reason = next((ln for ln in lines if ln.startswith("Unsupported")), "unreadable")
            raise EscnetError(
                f"{path}: corrupt or not a PyTorch checkpoint ({reason}); {fix}"
            ) from None
        raise EscnetError(
            f"{path}: refused: not a checkpoint of tensors and plain types ({refused[:160]}); "
            f"escnet never unpickles code from a run directory; {fix}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise EscnetError(
            f"{path}: corrupt or not a PyTorch checkpoint ({reason}); {fix}"
        ) from None
    missing = [
        k for k in _REQUIRED.get(kind or "", ()) if not isinstance(ckpt, dict) or k not in ckpt
    ]
    if not isinstance(ckpt, dict) or missing:
        held = "no dictionary" if not isinstance(ckpt, dict) else f"no {', '.join(missing)}"
        raise EscnetError(f"{path}: not an escnet {kind} checkpoint ({held}); {fix}")
    return ckpt


def load_resume(
    path: Path, config: TrainConfig, model: SpectralClassifier, optim: Optimisation
) -> FitState:
    """Restore ``model`` and ``optim`` from ``last.pt`` and return its progress.

    Raises:
        EscnetError: the checkpoint is corrupt, not escnet's (:func:`read_checkpoint`), does not
            fit the model, or was made with another configuration.
    """
    ckpt = read_checkpoint(path, "last.pt")
    check_resumable(ckpt.get("config") or {}, config, path)
    try:
        model.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise EscnetError(
            f"{path}: does not fit this model and optimiser ({reason}); resume with the run's own "
            "config.json or start a new run directory"
        ) from None
    rng = ckpt["rng"]
    return FitState(
        epoch=int(ckpt["epoch"]),
        best=ckpt["best"],
        since_best=int(ckpt["since_best"]),
        stopped_early=bool(ckpt["stopped_early"]),
        history=ckpt["history"],
        rng=rng,
    )


def _cpu_copy(model: SpectralClassifier) -> dict[str, torch.Tensor]:
    # A copy, not a view: training goes on changing the parameters before the copy is written.
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class Checkpointer:
    """Writes one fold's checkpoints after its epochs: ``best.pt`` when an epoch improved, then
    ``last.pt``; with ``interval_s > 0`` at most that often (and always after the last epoch).
    Between writes the best epoch's weights wait in memory, so ``best.pt`` is never newer than
    ``last.pt`` and a run resumed from ``last.pt`` retrains exactly the epochs it lost."""

    fold_dir: Path
    config: TrainConfig
    classes: list[str]
    fold: int
    interval_s: float = 0.0
    _pending_best: dict[str, Any] | None = None
    _written: float = field(default_factory=time.monotonic)

    def after_epoch(
        self,
        model: SpectralClassifier,
        optim: Optimisation,
        state: FitState,
        *,
        improved: bool,
        final: bool,
    ) -> bool:
        """Record the epoch just finished; whether the checkpoints were written now."""
        if improved:
            row = state.history[-1]
            self._pending_best = {
                "model": _cpu_copy(model),
                "model_name": self.config.model,
                "classes": self.classes,
                "config": self.config.to_dict(),
                "epoch": state.epoch,
                "test_fold": self.fold,
                "val_acc": nan_if_none(row["val_acc"]),
                "val_loss": nan_if_none(row["val_loss"]),
            }
        if not final and time.monotonic() - self._written < self.interval_s:
            return False
        if self._pending_best is not None:
            save_atomic(self._pending_best, self.fold_dir / "best.pt")
            self._pending_best = None
        save_atomic(
            {
                "model": model.state_dict(),
                **optim.state_dict(),
                "epoch": state.epoch,
                "best": state.best,
                "since_best": state.since_best,
                "stopped_early": state.stopped_early,
                "history": state.history,
                "rng": state.rng,
                "config": self.config.to_dict(),
            },
            self.fold_dir / "last.pt",
        )
        self._written = time.monotonic()
        return True
