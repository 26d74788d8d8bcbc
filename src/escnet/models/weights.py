"""Pretrained weights: a value that says where a file comes from, and how to find or fetch it.

A local copy is preferred to a download: :func:`fetch_weights` looks in the weights directory
(and every sub-folder of it), then in the cache, and downloads into the cache only when neither
has the file. Whatever it returns has the published sha256.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from escnet import settings
from escnet.cache import sha256_file
from escnet.data.download import download_file
from escnet.errors import ChecksumMismatchError, DownloadError, WeightsError


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained weights file.

    Attributes:
        filename: name of the file, searched for in the weights directory and the cache.
        url: where it is published.
        sha256: its hex digest, or ``None`` to accept any file of that name.
        source: what the weights are (model, training data, reported score) and who made them.
        license: licence under which they are published.
    """

    filename: str
    url: str
    sha256: str | None
    source: str
    license: str


#: MobileNetV3 (width 0.4) from EfficientAT, pretrained on AudioSet.
MN04_AS = WeightSpec(
    filename="mn04_as_mAP_432.pt",
    url="https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt",
    sha256="899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c",
    source="EfficientAT (Schmid et al.), MobileNetV3 width 0.4 pretrained on AudioSet, mAP 0.432",
    license="MIT",
)


def find_local_weights(filename: str, root: str | os.PathLike[str]) -> Path | None:
    """The file called ``filename`` in ``root`` or any sub-folder; the shallowest one if several.

    Returns ``None`` when there is none (or ``root`` does not exist).
    """
    root = Path(root)
    if not root.is_dir():
        return None
    found = [
        Path(dirpath) / filename
        for dirpath, _dirnames, filenames in os.walk(root)
        if filename in filenames and (Path(dirpath) / filename).is_file()
    ]
    if not found:
        return None
    return min(found, key=lambda p: (len(p.relative_to(root).parts), str(p)))


def locate_weights(
    spec: WeightSpec,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The local copy of ``spec``'s file that :func:`fetch_weights` would use, unverified: in
    the weights directory (or a sub-folder), else in ``<cache_dir>/weights/``; ``None`` when
    there is none (then ``fetch_weights`` downloads it). Reads no file and opens no connection.
    """
    found = find_local_weights(spec.filename, settings.weights_dir(weights_dir))
    if found is not None:
        return found
    cached = settings.cache_dir(cache_dir) / "weights" / spec.filename
    return cached if cached.is_file() else None


def fetch_weights(
    spec: WeightSpec,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Path of a verified copy of ``spec``'s file, downloading it only if there is none.

    Looks, in order, in :func:`escnet.settings.weights_dir` (``weights_dir`` or
    ``$ESCNET_WEIGHTS_DIR``) including its sub-folders, then in ``<cache_dir>/weights/``; only if
    both lack the file is it downloaded into ``<cache_dir>/weights/`` (resumably).

    Raises:
        WeightsError: the file found or downloaded does not have ``spec.sha256`` (the message
            names the file, both digests and the fix), or it cannot be downloaded (one line naming
            the file, the URL and where to put a local copy).
    """
    local_root = settings.weights_dir(weights_dir)
    cached = settings.cache_dir(cache_dir) / "weights" / spec.filename

    found = locate_weights(spec, weights_dir=weights_dir, cache_dir=cache_dir)
    if found is not None:
        _verify(found, spec)
        return found

    hint = (
        f"to use a local copy, put {spec.filename} in {local_root} or any sub-folder of it "
        f"(or point ${settings.WEIGHTS_DIR_ENV} at a directory that holds it)"
    )
    try:
        return download_file(
            spec.url, cached, sha256=spec.sha256, progress=progress, offline_hint=hint
        )
    except ChecksumMismatchError as e:
        raise WeightsError(
            f"{spec.filename} downloaded from {spec.url} has {e.quantity} {e.actual}, expected "
            f"{e.expected}; it was not kept. The published file may have changed: download it "
            f"yourself, check it, and put it in {local_root} if you trust it"
        ) from e
    except DownloadError as e:
        raise WeightsError(f"weights {spec.filename}: {e}") from e


def _verify(path: Path, spec: WeightSpec) -> None:
    if spec.sha256 is None:
        return
    actual = sha256_file(path)
    if actual != spec.sha256.lower():
        raise WeightsError(
            f"{path}: sha256 is {actual}, expected {spec.sha256} for {spec.filename} "
            f"({spec.source}); the file is damaged or a different version. Delete it so that "
            f"escnet downloads {spec.url}, or replace it with that file"
        )


def read_state_dict(path: str | os.PathLike[str], *, fix: str) -> Mapping[str, Any]:
    """Read a state dict saved with ``torch.save`` (tensors only, onto the CPU).

    Raises:
        WeightsError: naming the file when it is missing, unreadable or not a state dict, with
            ``fix`` (what the user should do) appended.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found; {fix}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        reason = " ".join(str(exc).split())[:200]
        raise WeightsError(f"{p}: cannot read as a PyTorch state dict ({reason}); {fix}") from None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{p}: expected a state dict, found a {type(state).__name__}; {fix}")
    return state


def _shape(value: object) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _first(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_state_dict_checked(
    module: nn.Module, state: Mapping[str, Any], source: str, *, what: str = "the model"
) -> None:
    """``module.load_state_dict(state, strict=True)``, failing with one clear message.

    Raises:
        WeightsError: naming ``source`` (a file or URL) and every wrongly shaped parameter
            (with both shapes), and the first missing and unexpected names.
    """
    expected = module.state_dict()
    problems = [
        f"'{key}' has shape {_shape(state[key])} there, {what} expects {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and _shape(state[key]) != tuple(value.shape)
    ]
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        problems.append(f"missing: {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected: {_first(unexpected)}")
    if problems:
        raise WeightsError(f"{source}: weights do not fit {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
