"""escnet.training.checkpoint.Checkpointer: when best.pt and last.pt are written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from escnet.training import TrainConfig
from escnet.training.checkpoint import Checkpointer, FitState


class _Optim:
    """Stands in for Optimisation: only its state is saved."""

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": {}, "scheduler": {}, "scaler": {}}


def _epoch(state: FitState, model: nn.Module, val_acc: float) -> bool:
    with torch.no_grad():
        model.weight.add_(1.0)  # every epoch changes the weights
    return state.record(
        {"epoch": state.epoch + 1, "val_acc": val_acc, "val_loss": 1.0 - val_acc}, True, None
    )


def test_interval_holds_the_best_epoch_in_memory_until_a_write(tmp_path: Path) -> None:
    model, state = nn.Linear(2, 2), FitState()
    ckpt = Checkpointer(tmp_path, TrainConfig(), ["a", "b"], 1, interval_s=3600.0)
    improved = _epoch(state, model, 0.5)
    best_weights = model.weight.detach().clone()
    assert not ckpt.after_epoch(model, _Optim(), state, improved=improved, final=False)  # type: ignore[arg-type]
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "last.pt").exists()
    improved = _epoch(state, model, 0.4)  # worse: best stays epoch 1
    assert ckpt.after_epoch(model, _Optim(), state, improved=improved, final=True)  # type: ignore[arg-type]
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    assert best["epoch"] == 1 and last["epoch"] == 2 and last["best"]["epoch"] == 1
    assert torch.equal(best["model"]["weight"], best_weights)
    assert not torch.equal(last["model"]["weight"], best_weights)


def test_interval_zero_writes_after_every_epoch(tmp_path: Path) -> None:
    model, state = nn.Linear(2, 2), FitState()
    ckpt = Checkpointer(tmp_path, TrainConfig(), ["a", "b"], 1)
    for acc in (0.5, 0.4):
        improved = _epoch(state, model, acc)
        assert ckpt.after_epoch(model, _Optim(), state, improved=improved, final=False)  # type: ignore[arg-type]
        assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == state.epoch
    assert torch.load(tmp_path / "best.pt", weights_only=False)["epoch"] == 1


def test_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="checkpoint_interval_s"):
        TrainConfig(checkpoint_interval_s=-1.0)
