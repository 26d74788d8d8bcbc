"""escnet.training.checkpoint: when best.pt and last.pt are written, and that reading one never
runs code (``weights_only=True``) and names a corrupt or foreign file in one line."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from escnet.errors import EscnetError
from escnet.training import TrainConfig
from escnet.training.checkpoint import Checkpointer, FitState, load_resume, read_checkpoint
from escnet.training.distributed import rng_state, set_rng_state


class _Optim:
    """Stands in for Optimisation: only its state is saved."""

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": {}, "scheduler": {}, "scaler": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loaded = {k: state[k] for k in ("optimizer", "scheduler", "scaler")}


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
    best = read_checkpoint(tmp_path / "best.pt")
    last = read_checkpoint(tmp_path / "last.pt")
    assert best["epoch"] == 1 and last["epoch"] == 2 and last["best"]["epoch"] == 1
    assert torch.equal(best["model"]["weight"], best_weights)
    assert not torch.equal(last["model"]["weight"], best_weights)


def test_interval_zero_writes_after_every_epoch(tmp_path: Path) -> None:
    model, state = nn.Linear(2, 2), FitState()
    ckpt = Checkpointer(tmp_path, TrainConfig(), ["a", "b"], 1)
    for acc in (0.5, 0.4):
        improved = _epoch(state, model, acc)
        assert ckpt.after_epoch(model, _Optim(), state, improved=improved, final=False)  # type: ignore[arg-type]
        assert read_checkpoint(tmp_path / "last.pt")["epoch"] == state.epoch
    assert read_checkpoint(tmp_path / "best.pt")["epoch"] == 1


def test_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="checkpoint_interval_s"):
        TrainConfig.from_dict(dict(checkpoint_interval_s=-1.0))


def test_resume_restores_the_rng_states_from_a_weights_only_checkpoint(tmp_path: Path) -> None:
    model, state = nn.Linear(2, 2), FitState()
    ckpt = Checkpointer(tmp_path, TrainConfig(), ["a", "b"], 1)
    improved = _epoch(state, model, 0.5)
    state.rng = [rng_state(torch.device("cpu"))]  # python, numpy and torch states, as training
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.after_epoch(model, _Optim(), state, improved=improved, final=True)  # type: ignore[arg-type]
    restored = load_resume(tmp_path / "last.pt", TrainConfig(), nn.Linear(2, 2), _Optim())  # type: ignore[arg-type]
    assert restored.epoch == 1 and restored.rng is not None
    set_rng_state(restored.rng[0], torch.device("cpu"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _Payload:
    """A pickle that runs a command when it is loaded, as a hostile ``last.pt`` would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_runs_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name, save in (
        ("last.pt", lambda p: torch.save({"model": _Payload(marker)}, p)),
        ("best.pt", lambda p: p.write_bytes(pickle.dumps(_Payload(marker), protocol=2))),
    ):
        save(tmp_path / name)
        with pytest.raises(EscnetError, match=f"{name}: refused: not a checkpoint of tensors"):
            if name == "last.pt":
                load_resume(tmp_path / name, TrainConfig(), nn.Linear(2, 2), _Optim())  # type: ignore[arg-type]
            else:
                read_checkpoint(tmp_path / name)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not a checkpoint at all", "corrupt or not a PyTorch checkpoint"),
        (None, "not an escnet last.pt checkpoint"),  # a foreign state dict
    ],
)
def test_a_corrupt_or_foreign_checkpoint_is_one_line(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    path = tmp_path / "last.pt"
    if content is None:
        torch.save(nn.Linear(2, 2).state_dict(), path)
    else:
        path.write_bytes(content)
    with pytest.raises(EscnetError, match=words) as info:
        load_resume(path, TrainConfig(), nn.Linear(2, 2), _Optim())  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and "delete it" in str(info.value)
