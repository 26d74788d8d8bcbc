"""The model registry: every model escnet can train, by name, with what it needs around it.

Like timm's registry, a model is registered by a decorator placed next to its builder::

    @register_model("cnn7", description="...", front_end=LogMelConfig())
    def cnn7(num_classes: int, pretrained: bool = False) -> nn.Module: ...

and created by name with :func:`create_model`. Each entry is a :class:`ModelInfo`: the front end
that turns waveforms into the model's spectral images, where its pretrained weights come from and
how its input is normalised. Every created model is a :class:`SpectralClassifier`: it maps the
front end's images (B, 1, mels, frames) to logits (B, num_classes), normalises its input itself
(callers never normalise), and carries its entry as ``model.model_info``, so that the data
pipeline builds the right front end from ``model.model_info.front_end``.

Examples:
    >>> from escnet.models import create_model
    >>> model = create_model("cnn7", num_classes=50)
    >>> front_end = model.model_info.front_end.build()
    >>> import torch
    >>> model(front_end(torch.randn(2, 22050))).shape
    torch.Size([2, 50])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from escnet.errors import ParameterError
from escnet.features.spectrogram import FrontEndConfig
from escnet.models.weights import WeightSpec, load_state_dict_checked, locate_weights

__all__ = [
    "ModelInfo",
    "SpectralClassifier",
    "count_parameters",
    "create_model",
    "describe_models",
    "get_model_info",
    "input_shape",
    "list_models",
    "load_state_dict_checked",
    "register_model",
    "WeightsCheck",
]

#: A builder: ``builder(num_classes, pretrained, **kwargs)`` returns the bare network, which maps
#: *normalised* spectral images (B, 1, mels, frames) to logits (B, num_classes).
Builder = Callable[..., nn.Module]

#: A weights check: ``None`` when the model's pretrained weights are on this machine, else one
#: line saying which file is missing and where a run would fetch it from. It reads no weights
#: and opens no connection, so a plan (``escnet experiment --dry-run``) can call it freely.
WeightsCheck = Callable[[], str | None]


@dataclass(frozen=True)
class ModelInfo:
    """What escnet knows about a registered model.

    Attributes:
        name: registry name (``create_model(name, ...)``).
        description: one line: architecture and origin.
        front_end: config of the waveform -> spectral image front end whose output the model
            takes; ``front_end.build()`` makes the module, ``front_end.sample_rate`` is the rate
            audio must be loaded at.
        weights: human-readable source of the pretrained weights, or ``None`` for a model that
            is trained from scratch (then ``pretrained=True`` is an error).
        weight_spec: the weights file, when escnet fetches it itself
            (:func:`escnet.models.weights.fetch_weights`); ``None`` when there is none or another
            library
            fetches it (torchvision's hub cache, a pip package).
        input_norm: ``(mean, std)``: the model computes ``(image - mean) / std`` on its input
            before anything else; ``None`` when the front end's output is used as it is.
        builder: ``builder(num_classes, pretrained, **kwargs)`` -> the bare network.
        weights_check: a :data:`WeightsCheck` for weights another library fetches; ``None``
            when ``weight_spec`` says where they are (or there are none).
    """

    name: str
    description: str
    front_end: FrontEndConfig
    weights: str | None
    weight_spec: WeightSpec | None
    input_norm: tuple[float, float] | None
    builder: Builder
    weights_check: WeightsCheck | None = None

    @property
    def has_weights(self) -> bool:
        """Whether ``pretrained=True`` is possible."""
        return self.weights is not None

    def missing_weights(self) -> str | None:
        """``None`` when ``pretrained=True`` can build this model from files on this machine;
        else one line naming the missing file and where a run would download it from (which
        fails offline). A model without pretrained weights needs none: ``None``."""
        if self.weights_check is not None:
            return self.weights_check()
        spec = self.weight_spec
        if spec is not None and locate_weights(spec) is None:
            return (
                f"{spec.filename} is in neither the weights directory nor the cache; a run "
                f"downloads it from {spec.url}"
            )
        return None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    description: str,
    front_end: FrontEndConfig,
    weights: str | None = None,
    weight_spec: WeightSpec | None = None,
    input_norm: tuple[float, float] | None = None,
    weights_check: WeightsCheck | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name``; see :class:`ModelInfo` for the fields.

    Raises:
        ValueError: ``name`` is already registered, or ``input_norm``'s std is not positive.
    """

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ParameterError(f"model {name!r} is already registered")
        if input_norm is not None and not input_norm[1] > 0:
            raise ParameterError(f"input_norm std of {name!r} must be > 0, got {input_norm[1]}")
        _REGISTRY[name] = ModelInfo(
            name=name,
            description=description,
            front_end=front_end,
            weights=weights,
            weight_spec=weight_spec,
            input_norm=input_norm,
            builder=builder,
            weights_check=weights_check,
        )
        return builder

    return decorator


def list_models(pretrained: bool = False) -> list[str]:
    """Registered names in registration order (the paper's own CNNs first); with
    ``pretrained=True`` only those that have pretrained weights."""
    return [name for name, info in _REGISTRY.items() if info.has_weights or not pretrained]


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParameterError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}"
        ) from None


class SpectralClassifier(nn.Module):
    """A registered network with its input normalisation: (B, 1, mels, frames) -> (B, classes).

    The normalisation ``(x - mean) / std`` of :attr:`ModelInfo.input_norm` happens here, once,
    for every model; the constants are plain floats (not buffers), so checkpoints hold the
    network's parameters only, under ``net.``.

    Attributes:
        net: the bare network.
        model_info: its registry entry.
        num_classes: outputs.
    """

    def __init__(self, net: nn.Module, model_info: ModelInfo, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.model_info = model_info
        self.num_classes = num_classes
        norm = model_info.input_norm
        self._norm = (float(norm[0]), float(norm[1])) if norm is not None else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ParameterError(
                f"{self.model_info.name} expects spectral images of shape "
                f"(batch, 1, mels, frames), got {tuple(images.shape)}"
            )
        if self._norm is not None:
            mean, std = self._norm
            images = (images - mean) / std
        return self.net(images)

    def extra_repr(self) -> str:
        return f"name={self.model_info.name!r}, num_classes={self.num_classes}, norm={self._norm}"

    @property
    def head(self) -> nn.Module:
        """The task-specific output layer: the last ``Linear`` or ``Conv2d`` registered in
        :attr:`net`, which must have :attr:`num_classes` outputs.

        Every built-in network registers its classifier last, as torchvision and timm do; the
        trainer uses this to give the new head its own learning rate
        (:attr:`escnet.training.TrainConfig.head_lr`).

        Raises:
            TypeError: the last such layer does not have ``num_classes`` outputs (a network that
                registers its head before other layers).
        """
        layers = [m for m in self.net.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        last = layers[-1] if layers else None
        outputs = (
            last.out_features
            if isinstance(last, nn.Linear)
            else last.out_channels
            if isinstance(last, nn.Conv2d)
            else None
        )
        if outputs != self.num_classes:
            raise TypeError(
                f"{self.model_info.name}: the last Linear/Conv2d layer registered in the network "
                f"has {outputs} outputs, not num_classes={self.num_classes}; register the "
                "classifier last in the model's __init__"
            )
        assert last is not None
        return last


def create_model(
    name: str, num_classes: int, pretrained: bool = False, **kwargs: Any
) -> SpectralClassifier:
    """Build the registered model ``name`` with ``num_classes`` outputs.

    Args:
        name: a name of :func:`list_models`.
        num_classes: outputs (logits) of the model.
        pretrained: start from the model's pretrained weights (the head is new whatever this is).
        kwargs: passed on to the model's builder (e.g. ``dropout`` for ``cnn7``/``cnn9``,
            ``progress`` for downloads, ``weights_path`` for ``mn04_as``).

    Returns:
        A :class:`SpectralClassifier` in train mode, carrying ``model_info``.

    Raises:
        ValueError: unknown ``name``, ``num_classes < 1``, or ``pretrained`` for a model without
            weights.
        WeightsError: the pretrained weights cannot be had or do not fit.
    """
    info = get_model_info(name)
    if num_classes < 1:
        raise ParameterError(f"num_classes must be >= 1, got {num_classes}")
    if pretrained and not info.has_weights:
        with_weights = ", ".join(list_models(pretrained=True))
        raise ParameterError(
            f"model {name!r} has no pretrained weights (it is trained from scratch): pass "
            f"pretrained=False, or choose one of: {with_weights}"
        )
    net = info.builder(num_classes, pretrained=pretrained, **kwargs)
    model = SpectralClassifier(net, info, num_classes)
    model.train()
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``; shared parameters count once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def input_shape(front_end: FrontEndConfig, seconds: float = 5.0) -> tuple[int, int, int]:
    """(channels, mels, frames) of the image ``front_end`` makes from a clip of ``seconds``."""
    num_samples = int(round(seconds * front_end.sample_rate))
    n_mels = getattr(front_end, "n_mels", None)
    if isinstance(n_mels, int):
        return (1, n_mels, front_end.num_frames(num_samples))
    # A front end that does not say its height: run it once.
    with torch.inference_mode():
        image = front_end.build()(torch.zeros(1, num_samples))
    return (int(image.shape[1]), int(image.shape[2]), int(image.shape[3]))


def _front_end_summary(front_end: FrontEndConfig) -> str:
    parts = [type(front_end).__name__, f"{front_end.sample_rate} Hz"]
    for field, label in (("n_mels", "mels"), ("n_fft", "n_fft"), ("hop_length", "hop")):
        value = getattr(front_end, field, None)
        if value is not None:
            parts.append(f"{value} mels" if label == "mels" else f"{label} {value}")
    return ", ".join(parts)


def describe_models(num_classes: int = 50, seconds: float = 5.0) -> list[dict[str, Any]]:
    """One row per registered model, for ``escnet models``.

    Keys: ``name``, ``description``, ``params`` (with a ``num_classes`` head), ``input``
    ((channels, mels, frames) for a clip of ``seconds``), ``front_end`` (a summary),
    ``sample_rate``, ``weights`` (source, or ``"none (trained from scratch)"``),
    ``weights_here`` (whether the pretrained weights are on this machine already, from
    :meth:`ModelInfo.missing_weights`; ``None`` for a model without them) and ``input_norm``.
    The networks are built on PyTorch's meta device: no memory, no weights.
    """
    rows: list[dict[str, object]] = []
    for name, info in _REGISTRY.items():
        with torch.device("meta"):
            net = info.builder(num_classes, pretrained=False)
        rows.append(
            {
                "name": name,
                "description": info.description,
                "params": count_parameters(net),
                "input": input_shape(info.front_end, seconds),
                "front_end": _front_end_summary(info.front_end),
                "sample_rate": info.front_end.sample_rate,
                "weights": info.weights or "none (trained from scratch)",
                "weights_here": info.missing_weights() is None if info.has_weights else None,
                "input_norm": info.input_norm,
            }
        )
    return rows
