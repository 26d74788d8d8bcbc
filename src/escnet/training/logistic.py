"""The one logistic regression of escnet, its L2 penalty chosen on validation.

Three users: the probe's linear head (:mod:`escnet.training.frozen.probe`), the output layer that
partial fine-tuning starts from (:mod:`escnet.training.frozen.partial`) and LP-FT's fitted head
(:mod:`escnet.training.lp_ft`). All fit standardised features (so that one grid suits any
feature scale) with the penalties of :data:`L2_GRID`, from the strongest to the weakest, each
warm-started from the last, and keep the best by validation accuracy (ties: lower loss).

Examples:
    >>> import torch
    >>> from escnet.training.logistic import fit_softmax_regression
    >>> z = torch.cat([torch.randn(20, 3) - 2, torch.randn(20, 3) + 2])
    >>> y = torch.cat([torch.zeros(20), torch.ones(20)]).long()
    >>> w, b = fit_softmax_regression(z, y, num_classes=2, l2=1e-2)
    >>> bool(((z @ w.T + b).argmax(1) == y).float().mean() > 0.9)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from escnet.errors import ParameterError
from escnet.metrics.classification import better_choice
from escnet.models.probe import mean_probability_logits

__all__ = ["L2_GRID", "fit_folded", "fit_logistic_head", "fit_softmax_regression", "score"]

#: L2 penalties (on standardised features) tried on the validation split.
L2_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def score(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of (N, C) logits; NaN for no rows."""
    if len(labels) == 0:
        return math.nan, math.nan
    acc = (logits.argmax(1) == labels).float().mean().item()
    return acc, F.cross_entropy(logits, labels).item()


def fit_softmax_regression(
    z: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    l2: float,
    *,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = 150,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression ``z @ W.T + b`` (mean cross-entropy + ``l2 * |W|^2``)
    by L-BFGS, from ``init`` (a warm start) or zeros. ``z`` (N, D) should be standardised.

    Raises:
        ValueError: ``z`` is not (N, D) with N > 0 rows matching ``y``, or ``l2`` < 0.
    """
    if z.ndim != 2 or y.shape != (z.shape[0],) or z.shape[0] == 0:
        raise ParameterError(
            f"expected features (N, D) and labels (N,) with N > 0, got {tuple(z.shape)} "
            f"and {tuple(y.shape)}"
        )
    if l2 < 0:
        raise ParameterError(f"l2 must be >= 0, got {l2}")
    w0, b0 = init if init is not None else (None, None)
    weight = (
        w0.clone() if w0 is not None else torch.zeros(num_classes, z.shape[1])
    ).requires_grad_()
    bias = (b0.clone() if b0 is not None else torch.zeros(num_classes)).requires_grad_()
    opt = torch.optim.LBFGS(
        [weight, bias], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    return weight.detach(), bias.detach()


def fit_logistic_head(
    z_train: torch.Tensor,
    y_train: torch.Tensor,
    z_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
) -> tuple[nn.Linear, dict[str, Any]]:
    """A logistic-regression head on standardised features, its L2 penalty chosen on validation.

    Args:
        z_train: (N, D) standardised training features; y_train (N,).
        z_val: (V, M, D) standardised validation features in V views (their probabilities are
            averaged); y_val (M,). M = 0: the middle penalty of the grid is kept.

    Returns:
        The head and ``{"chosen": {"l2", "val_acc", "val_loss"}, "grid": [...]}``.
    """
    if not l2_grid:
        raise ParameterError("l2_grid must name at least one penalty")
    has_val = z_val.shape[1] > 0
    grid = sorted(l2_grid, reverse=True) if has_val else [sorted(l2_grid)[len(l2_grid) // 2]]
    rows: list[dict[str, float]] = []
    best: tuple[float, float, torch.Tensor, torch.Tensor, float] | None = None
    init: tuple[torch.Tensor, torch.Tensor] | None = None
    for l2 in grid:
        w, b = fit_softmax_regression(z_train, y_train, num_classes, l2, init=init)
        init = (w, b)
        acc, loss = score(mean_probability_logits(z_val @ w.T + b), y_val)
        rows.append({"l2": l2, "val_acc": acc, "val_loss": loss})
        if better_choice(acc, loss, None if best is None else best[:2]):
            best = (acc, loss, w, b, l2)
    assert best is not None
    head = nn.Linear(z_train.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(best[2])
        head.bias.copy_(best[3])
    chosen = {"l2": best[4], "val_acc": best[0], "val_loss": best[1]}
    return head, {"chosen": chosen, "grid": rows}


def fit_folded(
    h_train: torch.Tensor,
    y_train: torch.Tensor,
    h_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """:func:`fit_logistic_head` on raw features (N, D), the standardisation folded back into
    the weights: ``W z + b`` with ``z = (h - mean) / std`` is ``(W / std) h + (b - (W / std)
    mean)``. Returns ``(W, b)`` for the raw features and the choice's record.
    """
    mean = h_train.mean(0)
    std = h_train.std(0, unbiased=False)
    # A unit that barely varies on the training clips would get a huge weight (W / std) that the
    # first steps of fine-tuning, moving that unit a little, turn into huge logits: units are
    # standardised as if their spread were at least a tenth of the typical unit's.
    std = std.clamp_min(max(0.1 * float(std.median()), 1e-6))
    z_val = (h_val - mean) / std
    head, choice = fit_logistic_head(
        (h_train - mean) / std, y_train, z_val[None], y_val, num_classes, l2_grid
    )
    with torch.no_grad():
        weight = head.weight / std
        return weight, head.bias - weight @ mean, choice
