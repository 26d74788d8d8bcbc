"""LP-FT's first half: the new output layer fitted as a logistic regression on the frozen
network's features, before fine-tuning (Kumar et al., "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution", ICLR 2022;
:attr:`escnet.training.TrainConfig.linear_probe`). A randomly initialised head sends large,
uninformative gradients into the pretrained body during the first steps of fine-tuning; a fitted
head does not.

The features are whatever enters the model's output layer
(:func:`escnet.embeddings.outputs.head_inputs`), so the fitted weights can be copied into that
layer as they are. The regression is escnet's one (:mod:`escnet.training.logistic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from escnet.embeddings.outputs import head_inputs
from escnet.models.registry import SpectralClassifier
from escnet.training.logistic import L2_GRID, fit_folded

__all__ = ["LpFtResult", "linear_probe_head"]


@dataclass
class LpFtResult:
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
    l2_grid: Sequence[float] = L2_GRID,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    progress: bool = False,
) -> LpFtResult:
    """Fit ``model.head`` as a logistic regression on the frozen network's features, in place
    (:func:`escnet.training.logistic.fit_folded`: the penalty of ``l2_grid`` with the best
    validation accuracy, ties: lower loss; without validation images, the middle one). Nothing
    else in the model changes.

    Raises:
        ValueError: the model's head is not a ``Linear`` layer with a bias.
    """

    def features(images: torch.Tensor, what: str) -> torch.Tensor:
        return head_inputs(
            model, images, device, channels_last=channels_last, progress=progress,
            desc=f"linear probe: {what} features",
        )  # fmt: skip

    x_train = features(train_images, "training")  # raises ValueError for a non-Linear head
    head = model.head
    assert isinstance(head, nn.Linear) and head.bias is not None
    y_train = train_labels.long()
    if val_images is not None and val_labels is not None and len(val_labels) > 0:
        x_val, y_val = features(val_images, "validation"), val_labels.long()
    else:
        x_val, y_val = torch.empty(0, x_train.shape[1]), torch.empty(0, dtype=torch.long)
    w, b, choice = fit_folded(x_train, y_train, x_val, y_val, model.num_classes, l2_grid)
    with torch.no_grad():
        head.weight.copy_(w.to(head.weight.device))
        head.bias.copy_(b.to(head.bias.device))
    train_acc = ((x_train @ w.T + b).argmax(1) == y_train).float().mean().item()
    chosen = choice["chosen"]
    return LpFtResult(
        l2=chosen["l2"], val_acc=chosen["val_acc"], val_loss=chosen["val_loss"],
        train_acc=train_acc, grid=choice["grid"],
    )  # fmt: skip
