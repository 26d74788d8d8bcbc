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
    >>> from escnet.model_io import save_model, load_model
    >>> model = create_model("cnn7", num_classes=3)
    >>> path = save_model("/tmp/m", model, ["a", "b", "c"], clip_seconds=1.0)  # doctest: +SKIP
    >>> loaded = load_model(path)  # doctest: +SKIP
    >>> loaded.probabilities(torch.zeros(1, loaded.num_samples)).shape  # doctest: +SKIP
    torch.Size([1, 3])
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from escnet import __version__
from escnet.cache import atomic_path, atomic_write_json
from escnet.download import sha256_file
from escnet.errors import EscnetError
from escnet.inference.predictor import ENSEMBLE_JSON
from escnet.models import SpectralClassifier, create_model, get_model_info
from escnet.spectrogram import FrontEndConfig

__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "ModelDirError",
    "front_end_from_dict",
    "front_end_to_dict",
    "is_model_dir",
    "load_model",
    "resolve_model_dir",
    "save_model",
]

#: Version of the model directory's layout; a newer one than this escnet knows is refused.
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"


class ModelDirError(EscnetError):
    """A model directory that cannot be loaded; the message names the file and the fix."""


def front_end_to_dict(front_end: FrontEndConfig) -> dict[str, Any]:
    """``{"type": class name, **fields}`` of a dataclass front end config."""
    if not dataclasses.is_dataclass(front_end) or isinstance(front_end, type):
        raise TypeError(f"front end {front_end!r} is not a dataclass config")
    return {"type": type(front_end).__name__, **dataclasses.asdict(front_end)}


def _front_end_types() -> dict[str, type]:
    from escnet.models.mobilenet_audioset import AudioSetMelConfig
    from escnet.spectrogram import LogMelConfig

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
    """

    model: SpectralClassifier
    name: str
    classes: list[str]
    front_end: FrontEndConfig
    sample_rate: int
    clip_seconds: float
    metadata: dict[str, Any]
    path: Path | None = None

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
            raise ValueError(
                f"waveforms must have shape (batch, samples), got {tuple(waveforms.shape)}"
            )
        return self.model(self.images(waveforms)).float()

    def probabilities(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Softmax of :meth:`logits`."""
        return self.logits(waveforms).softmax(1)


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

    Returns:
        The directory.
    """
    if len(classes) != model.num_classes:
        raise ValueError(
            f"classes: {len(classes)} names for a model with {model.num_classes} outputs"
        )
    if not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise ValueError(f"clip_seconds must be a positive number, got {clip_seconds}")
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
            "format_version": FORMAT_VERSION,
            "model": info.name,
            "num_classes": model.num_classes,
            "model_kwargs": dict(model_kwargs or {}),
            "classes": list(classes),
            "front_end": front_end_to_dict(front_end),
            "sample_rate": front_end.sample_rate,
            "clip_seconds": float(clip_seconds),
            "input_norm": list(info.input_norm) if info.input_norm is not None else None,
            "escnet_version": __version__,
            "weights": {"file": WEIGHTS, "sha256": sha256_file(out / WEIGHTS)},
            "training_config": dict(config) if config is not None else None,
            "selection": dict(selection) if selection is not None else None,
        },
    )
    return out


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding ``model.json``."""
    return (Path(path) / MODEL_JSON).is_file()


def _read_model_json(path: Path) -> dict[str, Any]:
    meta_path = path / MODEL_JSON
    if not path.is_dir():
        raise ModelDirError(f"{path}: not a directory; pass a model directory (with {MODEL_JSON})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(
            f"{meta_path}: missing; {path} is not a model directory (write one with "
            "escnet.model_io.save_model or `escnet export`)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{meta_path}: not valid JSON ({exc}); re-export the model") from None
    if not isinstance(meta, dict):
        raise ModelDirError(f"{meta_path}: expected a JSON object; re-export the model")
    missing = [
        k
        for k in ("model", "num_classes", "classes", "front_end", "clip_seconds", "weights")
        if k not in meta
    ]
    if missing:
        raise ModelDirError(f"{meta_path}: missing field(s) {', '.join(missing)}")
    if int(meta.get("format_version", 1)) > FORMAT_VERSION:
        raise ModelDirError(
            f"{meta_path}: format version {meta['format_version']} is newer than this escnet "
            f"reads ({FORMAT_VERSION}); upgrade escnet"
        )
    return meta


def load_model(directory: str | os.PathLike[str], *, device: str = "cpu") -> LoadedModel:
    """Load a model directory written by :func:`save_model`.

    Raises:
        ModelDirError: a missing or unreadable file, a weights file whose sha256 differs from
            ``model.json``'s, an unknown model name, a front end that is not the registered
            model's, or weights that do not fit; each message names the file.
    """
    path = Path(directory)
    meta = _read_model_json(path)
    meta_path = path / MODEL_JSON
    weights_path = path / str(meta["weights"].get("file", WEIGHTS))
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
    classes = [str(c) for c in meta["classes"]]
    if len(classes) != int(meta["num_classes"]):
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
    )


def resolve_model_dir(path: str | os.PathLike[str], fold: int | None = None) -> Path:
    """A model directory from a model directory or a run directory.

    For a run directory (with ``config.json``), the model of ``fold`` (``fold{k}/model``), or,
    when ``fold`` is None, the fold whose model had the best *validation* accuracy (never the
    test fold's score: that would choose by looking at the test data).

    Raises:
        ModelDirError: ``path`` is neither, or the asked fold has no model.
    """
    p = Path(path)
    if is_model_dir(p):
        if fold is not None:
            raise ModelDirError(f"{p}: a model directory has no folds; drop --fold")
        return p
    if (p / ENSEMBLE_JSON).is_file():
        raise ModelDirError(
            f"{p}: an ensemble directory holds no model of its own; give one of its member "
            "runs (listed in its ensemble.json), or predict or serve it with the torch backend"
        )
    if not (p / "config.json").is_file():
        raise ModelDirError(
            f"{p}: neither a model directory ({MODEL_JSON}) nor a run directory (config.json)"
        )
    if fold is not None:
        model_dir = p / f"fold{fold}" / "model"
        if not is_model_dir(model_dir):
            raise ModelDirError(f"{model_dir}: no model for fold {fold} in this run")
        return model_dir
    candidates = sorted(d for d in p.glob("fold*/model") if is_model_dir(d))
    if not candidates:
        raise ModelDirError(f"{p}: the run has no fold{{k}}/model directory yet")

    def val_acc(d: Path) -> float:
        meta = json.loads((d / MODEL_JSON).read_text(encoding="utf-8"))
        value = (meta.get("selection") or {}).get("val_acc")
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else -1.0

    return max(candidates, key=val_acc)
