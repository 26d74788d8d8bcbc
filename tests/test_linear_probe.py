"""Linear probing: the logistic regression, the head it fits, and LP-FT in the trainer."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from escnet.embeddings.outputs import head_inputs
from escnet.models import create_model
from escnet.training import FinetuneConfig, TrainConfig, cross_validate
from escnet.training.logistic import L2_GRID, fit_folded, fit_softmax_regression
from escnet.training.lp_ft import linear_probe_head

sys.path.insert(0, str(Path(__file__).parent))
import _ddp_worker  # noqa: E402, F401  (registers tiny_test_cnn)
from _ddp_worker import write_sound_classes  # noqa: E402


def blobs(n: int, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian classes in 5 dimensions, on a scale far from 1."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0, 0, 0, 0], [0, 3.0, 0, 0, 0], [0, 0, 3.0, 0, 0]])
    y = torch.arange(n) % 3
    x = centres[y] + torch.randn(n, 5, generator=g)
    return x * scale + 100.0, y


def test_logistic_regression_separates_and_folds_back_the_standardisation() -> None:
    x, y = blobs(300, seed=0, scale=1e3)  # raw scale: an unstandardised fit would struggle
    x_val, y_val = blobs(60, seed=2, scale=1e3)
    w, b, choice = fit_folded(x, y, x_val, y_val, num_classes=3)
    assert w.shape == (3, 5) and b.shape == (3,) and w.dtype == torch.float32
    assert [g["l2"] for g in choice["grid"]] == sorted(L2_GRID, reverse=True)
    x_test, y_test = blobs(300, seed=1, scale=1e3)
    assert ((x_test.double() @ w.double().T + b.double()).argmax(1) == y_test).float().mean() > 0.9


def test_stronger_l2_gives_smaller_weights() -> None:
    x, y = blobs(120, seed=0)
    z = (x - x.mean(0)) / x.std(0)
    small = fit_softmax_regression(z, y, 3, l2=1e-4)[0].norm()
    large = fit_softmax_regression(z, y, 3, l2=1.0)[0].norm()
    assert large < small


def test_logistic_regression_bad_arguments() -> None:
    with pytest.raises(ValueError, match="features"):
        fit_softmax_regression(torch.zeros(4, 2), torch.zeros(3).long(), 2, 0.1)
    with pytest.raises(ValueError, match="l2"):
        fit_softmax_regression(torch.zeros(4, 2), torch.zeros(4).long(), 2, -1.0)


def test_probe_fits_only_the_head_and_chooses_l2_on_validation() -> None:
    torch.manual_seed(0)
    model = create_model("cnn7", num_classes=3)
    # Images whose class shows as a bright band of mel rows.
    y = torch.arange(60) % 3
    images = torch.randn(60, 32, 40) * 5 - 40
    for i, c in enumerate(y.tolist()):
        images[i, c * 10 : c * 10 + 8] += 30
    body_before = {k: v.clone() for k, v in model.state_dict().items() if "head" not in k}
    result = linear_probe_head(
        model, images[:45], y[:45], images[45:], y[45:], l2_grid=(1e-3, 1e-1), channels_last=False
    )
    assert [g["l2"] for g in result.grid] == [1e-1, 1e-3]  # strongest first, warm-started
    best = max(result.grid, key=lambda g: (g["val_acc"], -g["val_loss"]))
    assert result.l2 == best["l2"] and result.val_acc == best["val_acc"]
    assert result.val_acc > 0.9 and result.train_acc > 0.9
    # The head now holds the fit: its logits on the validation images give the reported loss.
    feats = head_inputs(model, images[45:], channels_last=False)
    logits = F.linear(feats, model.head.weight, model.head.bias)
    assert math.isclose(F.cross_entropy(logits, y[45:]).item(), result.val_loss, rel_tol=1e-4)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in body_before.items())
    assert model.training  # the mode is restored


def test_probe_without_validation_uses_the_middle_penalty() -> None:
    model = create_model("cnn7", num_classes=2)
    images, y = torch.randn(8, 32, 40), torch.tensor([0, 1] * 4)
    result = linear_probe_head(model, images, y, l2_grid=(1e-1, 1e-3, 1e-2), channels_last=False)
    assert result.l2 == 1e-2 and math.isnan(result.val_acc) and len(result.grid) == 1


def test_probe_refuses_a_convolutional_head() -> None:
    model = create_model("squeezenet1_1", num_classes=2)
    with pytest.raises(ValueError, match="Linear output layer"):
        linear_probe_head(model, torch.randn(2, 32, 40), torch.tensor([0, 1]))


def test_linear_probe_config_refuses_online_naa() -> None:
    with pytest.raises(ValueError, match="lp_ft"):
        TrainConfig(augment="naa-online", settings=FinetuneConfig(lp_ft=True))


def test_lp_ft_run_writes_its_probe(tmp_path: Path) -> None:
    write_sound_classes(tmp_path / "data" / "esc50", per_fold=4)
    config = TrainConfig(
        dataset="esc50",
        model="tiny_test_cnn",
        augment="naa",
        folds=[1],
        settings=FinetuneConfig(epochs=1, batch_size=8, lr=1e-3, lp_ft=True),
        val_fraction=0.2,
        clip_seconds=1.0,
        workers=1,
        data_dir=str(tmp_path / "data"),
        cache_dir=str(tmp_path / "cache"),
    )
    results = cross_validate(config, tmp_path / "run", progress=False)
    probe = json.loads((tmp_path / "run" / "fold1" / "linear_probe.json").read_text())
    assert probe["l2"] in L2_GRID and len(probe["grid"]) == len(L2_GRID)  # the probe's grid
    assert 0.0 <= probe["val_acc"] <= 1.0
    assert results["folds"][0]["accuracy"] > 1 / 3  # three sound classes: beats chance
