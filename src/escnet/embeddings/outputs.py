"""A model run over a stack of spectral images, in eval mode and in batches: its logits
(:func:`predict_logits`) or what enters its output layer
(:attr:`~escnet.models.SpectralClassifier.head`, :func:`head_inputs`), the frozen network's
features of any registered model, which LP-FT (:mod:`escnet.training.lp_ft`) fits a head on.

Examples:
    >>> import torch
    >>> from escnet.embeddings.outputs import predict_logits
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
    >>> predict_logits(net, torch.zeros(5, 2, 4), "cpu", batch_size=2).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from escnet.errors import ParameterError
from escnet.models.registry import SpectralClassifier

__all__ = ["autocast", "head_inputs", "predict_logits"]


def autocast(device: torch.device | str, enabled: bool, dtype: torch.dtype) -> Any:
    """Mixed precision on ``device`` when ``enabled``, else a context that does nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@torch.no_grad()
def _forward(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device | str,
    *,
    batch_size: int,
    channels_last: bool,
    amp: bool = False,
    amp_dtype: torch.dtype = torch.bfloat16,
    progress: bool = False,
    desc: str = "",
) -> list[torch.Tensor]:
    """``model``'s outputs, float32 on the CPU, for (N, M, F) ``images`` a batch at a time, in
    eval mode (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        starts = range(0, images.shape[0], batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=not progress):
            x = images[start : start + batch_size].unsqueeze(1).to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp, amp_dtype):
                out.append(model(x).float().cpu())
    finally:
        model.train(was_training)
    return out


def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device | str,
    *,
    batch_size: int = 64,
    amp: bool = False,
    amp_dtype: torch.dtype = torch.bfloat16,
    channels_last: bool = True,
) -> torch.Tensor:
    """Logits (N, classes), float32 on the CPU, of (N, M, F) images, in eval mode."""
    out = _forward(
        model,
        images,
        device,
        batch_size=batch_size,
        channels_last=channels_last,
        amp=amp,
        amp_dtype=amp_dtype,
    )
    return torch.cat(out) if out else torch.empty(0, 0)


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
    (N, in_features), float32 on the CPU, captured with a forward pre-hook.

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

    handle = head.register_forward_pre_hook(grab)
    try:
        _forward(
            model,
            images,
            device,
            batch_size=batch_size,
            channels_last=channels_last,
            progress=progress,
            desc=desc,
        )
    finally:
        handle.remove()
    return torch.cat(captured) if captured else torch.empty(0, head.in_features)
