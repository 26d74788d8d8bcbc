"""What enters a model's output layer (:attr:`~escnet.models.SpectralClassifier.head`) for each
image, captured with a forward pre-hook in eval mode: the frozen network's features of any
registered model, which LP-FT (:mod:`escnet.training.lp_ft`) fits a head on.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from escnet.errors import ParameterError
from escnet.models.registry import SpectralClassifier

__all__ = ["head_inputs"]


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
