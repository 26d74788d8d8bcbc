"""A trained model as a value: a self-contained model directory, saved and loaded.

A model directory holds everything needed to classify new audio, with nothing but escnet
installed (no data set, no run directory, no ``../shared``)::

    model.json    registry name, classes, front end (type and fields), sample rate, clip
                  length, input normalisation, escnet's version, sha256 of weights.pt, and the
                  training configuration it came from (for the record)
    weights.pt    the network's state dict (tensors only; loaded with ``weights_only=True``)

:func:`load_model` checks the file set, the weights' sha256, that the model name is registered
and that the saved front end is the one the registered model expects, and returns a
:class:`LoadedModel` that applies the front end itself (:meth:`LoadedModel.logits` takes
waveforms). The training loop writes one per fold (``run/fold{k}/model``, the best checkpoint);
:func:`resolve_model_dir` turns a run directory into one of them.

Examples:
    >>> from escnet.models import create_model
    >>> from escnet.model_dir.io import save_model, load_model
    >>> model = create_model("cnn7", num_classes=3)
    >>> path = save_model("/tmp/m", model, ["a", "b", "c"], clip_seconds=1.0)  # doctest: +SKIP
    >>> loaded = load_model(path)  # doctest: +SKIP
    >>> loaded.probabilities(torch.zeros(1, loaded.num_samples)).shape  # doctest: +SKIP
    torch.Size([1, 3])
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from escnet.cache import atomic_path, atomic_write_json, sha256_file
from escnet.errors import ModelDirError, ParameterError
from escnet.features.spectrogram import FrontEndConfig
from escnet.model_dir.layout import (
    ACTIVATIONS,
    FORMAT_VERSION,
    MODEL_JSON,
    TORCH_FIELDS,
    WEIGHTS,
    head_activation,
    inside,
    read_model_json,
)
from escnet.models import SpectralClassifier, create_model, get_model_info
from escnet.version import __version__

__all__ = [
    "LoadedModel",
    "default_activation",
    "front_end_from_dict",
    "front_end_to_dict",
    "load_model",
    "save_model",
]


def front_end_to_dict(front_end: FrontEndConfig) -> dict[str, Any]:
    """``{"type": class name, **fields}`` of a dataclass front end config."""
    if not dataclasses.is_dataclass(front_end) or isinstance(front_end, type):
        raise TypeError(f"front end {front_end!r} is not a dataclass config")
    return {"type": type(front_end).__name__, **dataclasses.asdict(front_end)}


def _front_end_types() -> dict[str, type]:
    from escnet.features.spectrogram import LogMelConfig
    from escnet.models.mobilenet_audioset import AudioSetMelConfig

    return {cls.__name__: cls for cls in (LogMelConfig, AudioSetMelConfig)}


def front_end_from_dict(values: Mapping[str, Any], *, source: str = "front_end") -> FrontEndConfig:
    """The config :func:`front_end_to_dict` wrote.

    Raises:
        ModelDirError: unknown type or fields (the message names ``source``).
    """
    fields = dict(values)
    kind = fields.pop("type", None)
    types = _front_end_types()
    if kind not in types:
        raise ModelDirError(
            f"{source}: unknown front end type {kind!r} (known: {', '.join(sorted(types))}); "
            "was the model saved by a newer escnet?"
        )
    try:
        config: FrontEndConfig = types[kind](**fields)
    except (TypeError, ValueError) as exc:
        raise ModelDirError(f"{source}: invalid {kind} fields ({exc})") from None
    return config


@dataclass
class LoadedModel:
    """A model directory in memory: a network with the front end it expects.

    Attributes:
        model: the network in eval mode (maps spectral images to logits).
        name: its registry name.
        classes: class names, index = label.
        front_end: config of the waveform -> image front end (``front_end.build()``).
        sample_rate: the rate waveforms must have.
        clip_seconds: the clip length the model was trained on.
        metadata: the content of ``model.json``.
        path: the directory it was loaded from (``None`` when built in memory).
        activation: ``"softmax"`` (one label per clip) or ``"sigmoid"`` (multi-label scores),
            as ``model.json`` records it.
    """

    model: SpectralClassifier
    name: str
    classes: list[str]
    front_end: FrontEndConfig
    sample_rate: int
    clip_seconds: float
    metadata: dict[str, Any]
    path: Path | None = None
    activation: str = "softmax"

    def __post_init__(self) -> None:
        self._features = self.front_end.build().to(next(self.model.parameters()).device).eval()

    @property
    def num_samples(self) -> int:
        """Samples of one clip at :attr:`sample_rate` (training's pad / crop length)."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def images(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Spectral images (B, 1, mels, frames) of waveforms (B, samples) at the model's rate."""
        return self._features(waveforms.to(self.device, torch.float32))

    @torch.no_grad()
    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of waveforms (B, samples) at :attr:`sample_rate`; the front end
        is applied here (pad or crop to :attr:`num_samples` first, as training did)."""
        if waveforms.ndim != 2:
            raise ParameterError(
                f"waveforms must have shape (batch, samples), got {tuple(waveforms.shape)}"
            )
        return self.model(self.images(waveforms)).float()

    def probabilities(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Scores of :meth:`logits` through the head's :attr:`activation`: a softmax (they sum
        to 1) or, for a multi-label head, a sigmoid (each label on its own)."""
        logits = self.logits(waveforms)
        return torch.sigmoid(logits) if self.activation == "sigmoid" else logits.softmax(1)


def default_activation(model: SpectralClassifier) -> str:
    """The activation a model's head gets when :func:`save_model` is not told: ``"sigmoid"`` for
    ``mn04_as`` with AudioSet's 527 outputs (its pretrained multi-label head), else
    ``"softmax"`` (what ``escnet train`` trains: one label per clip)."""
    from escnet.models.mobilenet_audioset import AUDIOSET_NUM_CLASSES

    if model.model_info.name == "mn04_as" and model.num_classes == AUDIOSET_NUM_CLASSES:
        return "sigmoid"
    return "softmax"


def save_model(
    directory: str | os.PathLike[str],
    model: SpectralClassifier,
    classes: Sequence[str],
    *,
    clip_seconds: float,
    config: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    selection: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    activation: str | None = None,
) -> Path:
    """Write ``model`` as a self-contained model directory (created or replaced file by file,
    each file atomically; ``model.json`` last, so a directory with it is complete).

    Args:
        directory: where to write.
        model: a network from :func:`escnet.models.create_model`.
        classes: class names, index = label; as many as the model has outputs.
        clip_seconds: clip length the model was trained on (windows for prediction).
        config: the training configuration, stored for the record.
        state_dict: weights to store instead of ``model.state_dict()`` (e.g. a checkpoint's).
        selection: how the weights were chosen (e.g. ``{"test_fold", "epoch", "val_acc"}``);
            :func:`resolve_model_dir` picks a run's fold by its ``val_acc``.
        model_kwargs: architecture options the model was built with
            (``create_model(name, n, **model_kwargs)``); JSON values. :func:`load_model` builds
            the network with them again.
        extra: further JSON fields for ``model.json``, for the record (a refit's
            ``trained_on`` and ``cross_validation``); they cannot replace the fields above.
        activation: how the head's logits become scores, ``"softmax"`` or ``"sigmoid"``
            (multi-label); default :func:`default_activation`.

    Returns:
        The directory.
    """
    if len(classes) != model.num_classes:
        raise ParameterError(
            f"classes: {len(classes)} names for a model with {model.num_classes} outputs"
        )
    if not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise ParameterError(f"clip_seconds must be a positive number, got {clip_seconds}")
    activation = default_activation(model) if activation is None else activation
    if activation not in ACTIVATIONS:
        raise ParameterError(
            f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in (state_dict or model.state_dict()).items()}
    with atomic_path(out / WEIGHTS) as tmp:
        torch.save(weights, tmp)
    info = model.model_info
    front_end = info.front_end
    atomic_write_json(
        out / MODEL_JSON,
        {
            **dict(extra or {}),
            "format_version": FORMAT_VERSION,
            "model": info.name,
            "num_classes": model.num_classes,
            "model_kwargs": dict(model_kwargs or {}),
            "classes": list(classes),
            "front_end": front_end_to_dict(front_end),
            "sample_rate": front_end.sample_rate,
            "clip_seconds": float(clip_seconds),
            "input_norm": list(info.input_norm) if info.input_norm is not None else None,
            "activation": activation,
            "escnet_version": __version__,
            "weights": {"file": WEIGHTS, "sha256": sha256_file(out / WEIGHTS)},
            "training_config": dict(config) if config is not None else None,
            "selection": dict(selection) if selection is not None else None,
        },
    )
    return out


def load_model(directory: str | os.PathLike[str], *, device: str = "cpu") -> LoadedModel:
    """Load a model directory written by :func:`save_model`.

    Raises:
        ModelDirError: a missing or unreadable file, a weights file whose sha256 differs from
            ``model.json``'s, an unknown model name, a front end that is not the registered
            model's, or weights that do not fit; each message names the file.
    """
    path = Path(directory)
    meta = read_model_json(path, required=TORCH_FIELDS)
    meta_path = path / MODEL_JSON
    if not isinstance(meta["weights"], dict):
        raise ModelDirError(f"{meta_path}: weights must be a JSON object; re-export the model")
    weights_path = inside(path, meta["weights"].get("file", WEIGHTS), meta_path)
    if not weights_path.is_file():
        raise ModelDirError(f"{weights_path}: missing; the model directory is incomplete")
    digest = sha256_file(weights_path)
    if digest != meta["weights"].get("sha256"):
        raise ModelDirError(
            f"{weights_path}: sha256 {digest[:12]}... differs from the one in {MODEL_JSON}; "
            "the weights were changed or damaged: re-export the model"
        )
    try:
        info = get_model_info(str(meta["model"]))
    except ValueError as exc:
        raise ModelDirError(f"{meta_path}: {exc}") from None
    front_end = front_end_from_dict(meta["front_end"], source=str(meta_path))
    if front_end != info.front_end:
        raise ModelDirError(
            f"{meta_path}: its front end differs from the one model {info.name!r} expects "
            "in this escnet version; re-export the model with this version"
        )
    raw_classes, num_classes = meta["classes"], meta["num_classes"]
    if not isinstance(raw_classes, list) or not all(isinstance(c, str) for c in raw_classes):
        raise ModelDirError(f"{meta_path}: classes must be a list of class names (strings)")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        raise ModelDirError(f"{meta_path}: num_classes must be a whole number")
    classes = list(raw_classes)
    if len(classes) != num_classes:
        raise ModelDirError(
            f"{meta_path}: {len(classes)} classes for num_classes={meta['num_classes']}"
        )
    kwargs = meta.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ModelDirError(f"{meta_path}: model_kwargs must be a JSON object")
    try:
        model = create_model(info.name, len(classes), pretrained=False, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelDirError(f"{meta_path}: cannot build {info.name} ({exc})") from None
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises RuntimeError, pickle errors, ...: name the file
        raise ModelDirError(
            f"{weights_path}: cannot be loaded into {info.name} ({str(exc).splitlines()[0]})"
        ) from None
    model.to(torch.device(device)).eval()
    return LoadedModel(
        model=model,
        name=info.name,
        classes=classes,
        front_end=front_end,
        sample_rate=int(front_end.sample_rate),
        clip_seconds=float(meta["clip_seconds"]),
        metadata=meta,
        path=path,
        activation=head_activation(meta, meta_path),
    )
