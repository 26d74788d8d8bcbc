"""Activations of the frozen, pretrained ``mn04_as`` after block k, per clip and view, cached.

Partial fine-tuning (:mod:`escnet.training.frozen.partial`) trains only the blocks above ``k``; the
blocks below never change, so each clip (and each of its offline NAA variants) needs to go
through them only once, ever. This module runs the AudioSet front end's image through
``MobileNetAudioSet.features[0..k]`` and caches the output tensor, (C, H, W) in float16 (half
the bytes; the bottleneck outputs are small numbers, well inside float16's range, and its
three decimal digits are far finer than what training the upper blocks resolves), under
``<cache_dir>/activations``, one ``.npy`` per (clip, view, k), keyed by the clip's content
digest and everything else the tensor depends on (front end and audio parameters, the weights'
sha256, the NAA variant's parameters, k, this code's version). Entries are written atomically.

Size: after block 12 a 5 s clip is 48 x 8 x 32 values, 24.6 kB in float16; ESC-50's 2000 clips
with their six NAA variants each (every clip trains in four of the five folds) are 14 000
entries, 344 MB of data (ESC-50 test fold 1 alone, 10 216 entries, took 281 MB on disk).

Views of a clip: ``"original"``, and the NAA variant names
(:data:`escnet.augment.audio.NAA_VARIANTS`): the images of
:func:`escnet.features.offline_naa.expand_clips` (cached there too), for *training* clips only --
the caller passes training clips, and :mod:`escnet.training.frozen.partial` checks the clip ids.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from escnet.augment.audio import NAA_VARIANTS
from escnet.cache import params_digest
from escnet.data.audio import AudioConfig
from escnet.data.datasets import Dataset
from escnet.embeddings.views import ViewRows, cached_views, pretrained_mn04_as
from escnet.errors import ParameterError
from escnet.features.offline_naa import variants_params_digest
from escnet.features.prepare import feature_key_params
from escnet.models.mobilenet_audioset import AudioSetMelConfig
from escnet.models.weights import MN04_AS
from escnet.settings import cache_dir as default_cache_dir

__all__ = ["ACTIVATIONS_VERSION", "ActivationTable", "clip_activations", "lower_blocks"]


#: Version of this module's computation, part of every cache key.
ACTIVATIONS_VERSION = 1
#: The highest block whose output may be cached (16, the last convolution, leaves nothing to
#: train but the classifier: that is a probe).
MAX_BLOCK = 15


class ActivationTable(ViewRows):
    """Activations of views of clips, clip-major (each clip's views in the order asked):
    :class:`~escnet.embeddings.views.ViewRows` whose ``values`` are named for what they are."""

    @property
    def activations(self) -> np.ndarray:
        """(N, C, H, W) float16: the activations after the block."""
        return self.values


def _check_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block <= MAX_BLOCK:
        raise ParameterError(
            f"block must be an mn04_as feature block index in 0..{MAX_BLOCK}, got {block!r}"
        )
    return block


def lower_blocks(block: int, weights_path: str | os.PathLike[str] | None = None) -> nn.Sequential:
    """The pretrained ``mn04_as`` blocks ``features[0..block]``, frozen, in eval mode."""
    body = pretrained_mn04_as(weights_path)
    lower = nn.Sequential(*body.features[: _check_block(block) + 1]).eval()
    for p in lower.parameters():
        p.requires_grad_(False)
    return lower


def _key(
    digest: str, view: str, block: int, front_end: AudioSetMelConfig, audio: AudioConfig, seed: int
) -> str:
    params: dict[str, object] = {
        "extractor": "mn04_as features[0..block], float16",
        "block": block,
        "weights": MN04_AS.sha256,
        "code": ACTIVATIONS_VERSION,
        "features": feature_key_params(front_end, audio),
    }
    if view != "original":
        params["naa"] = variants_params_digest([view], seed, front_end, audio)
    return f"{digest}-{params_digest(params)}"


@torch.no_grad()
def _forward(lower: nn.Module, images: np.ndarray, batch: int) -> np.ndarray:
    """``lower`` of ``images`` (N, mels, frames) as float16 (N, C, H, W)."""
    parts = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).unsqueeze(1)
        y = lower(x.contiguous(memory_format=torch.channels_last)).contiguous()
        if not torch.isfinite(y).all() or y.abs().max() > 6e4:
            raise RuntimeError("mn04_as activations do not fit float16 (non-finite or > 6e4)")
        parts.append(y.to(torch.float16).numpy())
    return np.concatenate(parts)


def clip_activations(
    dataset: Dataset,
    indices: Sequence[int],
    *,
    block: int,
    views: Sequence[str] = ("original",),
    seed: int = 0,
    front_end: AudioSetMelConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    weights_path: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk: int = 128,
    batch_size: int = 32,
    progress: bool = True,
) -> ActivationTable:
    """The output of ``mn04_as.features[block]`` for ``views`` of the clips at ``indices``,
    from the cache or computed (a chunk of clips at a time).

    Args:
        dataset: the data set.
        indices: clips (data set indices). Pass NAA views for training clips only.
        block: the last frozen block (0..15).
        views: ``"original"`` and NAA variant names.
        seed: the NAA variants' seed (as :func:`escnet.features.offline_naa.expand_clips`).
        front_end: ``mn04_as``'s front end (the default is the one its weights expect).
        cache_dir: cache root (default ``$ESCNET_CACHE_DIR``); activations go to
            ``<root>/activations``, images and NAA variants to their usual places.
        weights_path: the ``mn04_as`` weights file (default:
            :func:`escnet.models.weights.fetch_weights`).
        workers: NAA processes (default: cores).
        chunk: clips whose images are held in memory at once.
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        An :class:`ActivationTable`; clips that fail to load are left out (and listed).

    Raises:
        ValueError: an unknown view or block.
    """
    _check_block(block)
    bad = [v for v in views if v != "original" and v not in NAA_VARIANTS]
    if bad or not views:
        raise ParameterError(
            f"views: {bad or 'none'}; use 'original' and NAA variants {NAA_VARIANTS}"
        )
    fe = front_end or AudioSetMelConfig()
    audio = AudioConfig(sample_rate=fe.sample_rate, duration=dataset.duration)

    def network() -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
        lower = lower_blocks(block, weights_path)
        return lambda images, _shifts: _forward(lower, images, batch_size)

    return cached_views(
        ActivationTable, dataset, indices, views, root=default_cache_dir(cache_dir),
        namespace="activations", key=lambda d, v: _key(d, v, block, fe, audio, seed),
        network=network, image_of=lambda v: (v, 0), front_end=fe, seed=seed, workers=workers,
        chunk=chunk, desc=f"mn04_as blocks 0-{block}", progress=progress, dtype=np.float16,
    )  # fmt: skip
