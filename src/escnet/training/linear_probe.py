"""Linear probing: a logistic regression on a frozen network's features.

Two uses:

* a baseline -- how far the pretrained features go with no fine-tuning at all;
* the first half of LP-FT (Kumar et al., "Fine-Tuning can Distort Pretrained Features and
  Underperform Out-of-Distribution", ICLR 2022): fit the new output layer on frozen features
  first, then fine-tune everything from there (:attr:`escnet.training.TrainConfig.linear_probe`).
  A randomly initialised head sends large, uninformative gradients into the pretrained body
  during the first steps of fine-tuning; a fitted head does not.

The features are whatever enters the model's output layer (:attr:`SpectralClassifier.head`,
captured with a forward pre-hook in eval mode), so the fitted weights can be copied into that
layer as they are.

Examples:
    >>> import torch
    >>> from escnet.training.linear_probe import fit_logistic_regression
    >>> x = torch.cat([torch.randn(20, 3) - 2, torch.randn(20, 3) + 2])
    >>> y = torch.cat([torch.zeros(20), torch.ones(20)]).long()
    >>> w, b = fit_logistic_regression(x, y, num_classes=2, l2=1e-2)
    >>> bool(((x @ w.T + b).argmax(1) == y).float().mean() > 0.9)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from escnet.errors import ParameterError
from escnet.models.registry import SpectralClassifier
from escnet.training.metrics import better_choice

__all__ = [
    "DEFAULT_L2_GRID",
    "ProbeResult",
    "fit_logistic_regression",
    "head_inputs",
    "linear_probe_head",
]

#: L2 penalties tried (on standardised features) when a validation split chooses among them.
DEFAULT_L2_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1)


@torch.no_grad()
def head_inputs(
    model: SpectralClassifier,
    images: torch.Tensor,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 64,
    channels_last: bool = True,
    progress: bool = False,
    desc: str = "features",
) -> torch.Tensor:
    """What enters ``model.head`` for each of ``images`` (N, mels, frames), in eval mode:
    (N, in_features), float32 on the CPU.

    Raises:
        ValueError: the model's head is not a ``Linear`` layer with a bias (a convolutional
            head, like SqueezeNet's, has no single feature vector per image).
    """
    head = model.head
    if not isinstance(head, nn.Linear) or head.bias is None:
        raise ParameterError(
            f"{model.model_info.name}: linear probing needs a Linear output layer with a bias, "
            f"its head is {head}; train it without linear_probe"
        )
    captured: list[torch.Tensor] = []

    def grab(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0].detach().float().cpu())

    was_training = model.training
    model.eval()
    handle = head.register_forward_pre_hook(grab)
    try:
        starts = range(0, images.shape[0], batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=not progress):
            x = images[start : start + batch_size].unsqueeze(1).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        return torch.empty(0, head.in_features)
    return torch.cat(captured)


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    l2: float,
    *,
    max_iter: int = 300,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, ``logits = features @ W.T + b``, by L-BFGS.

    The features are standardised for the fit (so that one ``l2`` suits any feature scale) and
    the standardisation is folded back into the returned weights.

    Args:
        features: (N, D) float.
        labels: (N,) class indices in ``[0, num_classes)``.
        num_classes: outputs.
        l2: penalty ``l2 * ||W||^2`` on the standardised scale, added to the mean cross-entropy.
        max_iter: L-BFGS iterations.

    Returns:
        ``(W, b)``: (num_classes, D) and (num_classes,), float32.
    """
    if features.ndim != 2 or labels.shape != (features.shape[0],) or features.shape[0] == 0:
        raise ParameterError(
            f"expected features (N, D) and labels (N,) with N > 0, got {tuple(features.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if l2 < 0:
        raise ParameterError(f"l2 must be >= 0, got {l2}")
    x = features.double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    y = labels.long()
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-9
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        w = weight / std  # z @ W.T = (x - mean) @ (W / std).T
        b = bias - w @ mean
    return w.float(), b.float()


@dataclass
class ProbeResult:
    """What :func:`linear_probe_head` fitted and how it chose.

    Attributes:
        l2: the chosen penalty.
        val_acc, val_loss: validation accuracy and cross-entropy of the chosen fit (NaN without
            validation images).
        train_acc: training accuracy of the chosen fit.
        grid: every penalty tried, with its validation accuracy and loss.
    """

    l2: float
    val_acc: float
    val_loss: float
    train_acc: float
    grid: list[dict[str, float]] = field(default_factory=list)


def linear_probe_head(
    model: SpectralClassifier,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    *,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    progress: bool = False,
) -> ProbeResult:
    """Fit ``model.head`` as a logistic regression on the frozen network's features, in place.

    With validation images, every penalty of ``l2_grid`` is fitted and the one with the best
    validation accuracy (ties: lower validation loss) is kept; without, the middle one.
    Nothing else in the model changes.

    Raises:
        ValueError: the model's head is not a ``Linear`` layer with a bias.
    """
    if not l2_grid:
        raise ParameterError("l2_grid must name at least one penalty")

    def features(images: torch.Tensor, what: str) -> torch.Tensor:
        return head_inputs(
            model,
            images,
            device,
            channels_last=channels_last,
            progress=progress,
            desc=f"linear probe: {what} features",
        )

    x_train = features(train_images, "training")  # raises ValueError for a non-Linear head
    head = model.head
    assert isinstance(head, nn.Linear) and head.bias is not None
    y_train = train_labels.long()
    has_val = val_images is not None and val_labels is not None and len(val_labels) > 0
    if has_val:
        assert val_images is not None and val_labels is not None
        x_val = features(val_images, "validation")
        y_val = val_labels.long()
        candidates = list(l2_grid)
    else:
        candidates = [sorted(l2_grid)[len(l2_grid) // 2]]

    best: tuple[float, float, float, torch.Tensor, torch.Tensor] | None = None
    grid: list[dict[str, float]] = []
    for l2 in candidates:
        w, b = fit_logistic_regression(x_train, y_train, model.num_classes, l2)
        val_acc = val_loss = math.nan
        if has_val:
            logits = x_val @ w.T + b
            val_acc = (logits.argmax(1) == y_val).float().mean().item()
            val_loss = F.cross_entropy(logits, y_val).item()
        grid.append({"l2": l2, "val_acc": val_acc, "val_loss": val_loss})
        if better_choice(val_acc, val_loss, None if best is None else best[1:3]):
            best = (l2, val_acc, val_loss, w, b)
    assert best is not None
    l2, val_acc, val_loss, w, b = best
    with torch.no_grad():
        head.weight.copy_(w.to(head.weight.device))
        head.bias.copy_(b.to(head.bias.device))
    train_acc = ((x_train @ w.T + b).argmax(1) == y_train).float().mean().item()
    return ProbeResult(l2=l2, val_acc=val_acc, val_loss=val_loss, train_acc=train_acc, grid=grid)
