"""Frozen ``mn04_as`` features of clips, their NAA variants and time-shifted views, cached.

A probe (:mod:`escnet.training.frozen.probe`) fits a head on features of the frozen AudioSet
network, so each clip needs to go through the network only once, ever: this module computes the
*full* feature vector of every view of a clip -- each block of ``MobileNetAudioSet.features`` pooled
by its mean and its maximum, then the 512-d embedding, 2304 values
(:func:`escnet.models.probe.feature_columns` picks a probe's subset) -- and caches it under
``<cache_dir>/probe``, one ``.npy`` per (clip, view), keyed by the clip's content digest and
everything else the vector depends on (front end and audio parameters, the weights' sha256,
the view's parameters, this code's version). Entries are written atomically.

Views of a clip:

* ``"original"`` and ``"roll<k>"``: its spectral image, rolled by ``k`` frames along time
  (test-time augmentation; :class:`escnet.models.probe.ProbeNet` does the same roll);
* the NAA variant names (:data:`escnet.augment.audio.NAA_VARIANTS`): the images of
  :func:`escnet.features.offline_naa.expand_clips` (cached there too), for *training* clips only --
  the caller passes training clips, and :mod:`escnet.training.frozen.probe` checks the clip ids.

Examples:
    >>> from escnet.data.datasets import get_dataset
    >>> from escnet.embeddings.pooled import clip_features
    >>> ds = get_dataset("esc50")  # doctest: +SKIP
    >>> table = clip_features(ds, range(10), views=("original", "pps"))  # doctest: +SKIP
    >>> table.features.shape, list(table.view[:2])  # doctest: +SKIP
    ((20, 2304), ['original', 'pps'])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from escnet.augment.audio import NAA_VARIANTS
from escnet.cache import params_digest
from escnet.data.audio import AudioConfig
from escnet.data.datasets import Dataset
from escnet.embeddings.views import ViewRows, cached_views, pretrained_mn04_as
from escnet.errors import ParameterError
from escnet.features.offline_naa import variants_params_digest
from escnet.features.prepare import feature_key_params
from escnet.models.mobilenet_audioset import AudioSetMelConfig
from escnet.models.probe import ALL_BLOCKS, EMBEDDING_DIM, MultiLevelPool, block_channels
from escnet.models.weights import MN04_AS
from escnet.settings import cache_dir as default_cache_dir

__all__ = [
    "EMBEDDINGS_VERSION",
    "FULL_DIM",
    "FeatureTable",
    "clip_features",
    "full_extractor",
    "parse_view",
    "roll_view",
]


#: Version of this module's computation, part of every cache key: bump it when the vectors
#: change in a way the parameters do not show.
EMBEDDINGS_VERSION = 1
#: Length of the full feature vector: every block's mean and max, then the embedding.
FULL_DIM = sum(2 * c for c in block_channels()) + EMBEDDING_DIM


class FeatureTable(ViewRows):
    """Feature vectors of views of clips, clip-major (each clip's views in the order asked):
    :class:`~escnet.embeddings.views.ViewRows` whose ``values`` are named for what they are."""

    @property
    def features(self) -> np.ndarray:
        """(N, :data:`FULL_DIM`) float32: the feature vectors."""
        return self.values


def roll_view(shift: int) -> str:
    """The view name of the image rolled by ``shift`` frames (``"original"`` for 0)."""
    return "original" if int(shift) == 0 else f"roll{int(shift)}"


def parse_view(view: str) -> tuple[str, int | str]:
    """``("roll", shift)`` or ``("naa", variant name)``.

    Raises:
        ValueError: an unknown view name (the message lists the forms).
    """
    if view == "original":
        return "roll", 0
    if view.startswith("roll") and view[4:].lstrip("-").isdigit():
        return "roll", int(view[4:])
    if view in NAA_VARIANTS:
        return "naa", view
    raise ParameterError(
        f"unknown view {view!r}: use 'original', 'roll<frames>' or an NAA variant "
        f"({', '.join(NAA_VARIANTS)})"
    )


def _image_of(view: str) -> tuple[str, int]:
    """The spectral image a view is made from (``"original"`` or an NAA variant's name) and
    the frames it is rolled by."""
    kind, value = parse_view(view)
    return ("original", int(value)) if kind == "roll" else (str(value), 0)


def full_extractor(weights_path: str | os.PathLike[str] | None = None) -> MultiLevelPool:
    """The pretrained ``mn04_as`` body pooling every block and the embedding, in eval mode."""
    body = pretrained_mn04_as(weights_path)
    return MultiLevelPool(body, ALL_BLOCKS, embedding=True).eval()


def _view_key(
    digest: str, view: str, front_end: AudioSetMelConfig, audio: AudioConfig, seed: int
) -> str:
    kind, value = parse_view(view)
    params: dict[str, object] = {
        "extractor": "mn04_as multi-level mean/max + embedding",
        "weights": MN04_AS.sha256,
        "code": EMBEDDINGS_VERSION,
        "features": feature_key_params(front_end, audio),
    }
    if kind == "roll":
        params["roll"] = value
    else:
        params["naa"] = variants_params_digest([str(value)], seed, front_end, audio)
    return f"{digest}-{params_digest(params)}"


@torch.no_grad()
def _pool(
    extractor: MultiLevelPool, images: np.ndarray, shifts: Sequence[int], batch: int
) -> np.ndarray:
    """Full vectors of ``images`` (N, mels, frames) rolled by ``shifts[i]`` each: (N, FULL_DIM)."""
    out = np.empty((len(images), FULL_DIM), dtype=np.float32)
    for start in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).unsqueeze(1)
        rolled = [
            torch.roll(x[j], int(s), dims=-1) if s else x[j]
            for j, s in enumerate(shifts[start : start + batch])
        ]
        x = torch.stack(rolled).contiguous(memory_format=torch.channels_last)
        out[start : start + len(x)] = extractor(x).numpy()
    return out


def clip_features(
    dataset: Dataset,
    indices: Sequence[int],
    *,
    views: Sequence[str] = ("original",),
    seed: int = 0,
    front_end: AudioSetMelConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    weights_path: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk: int = 128,
    batch_size: int = 32,
    progress: bool = True,
) -> FeatureTable:
    """Full feature vectors of ``views`` of the clips at ``indices``, from the cache or computed.

    Args:
        dataset: the data set.
        indices: clips (data set indices). Pass NAA views for training clips only.
        views: view names (:func:`parse_view`): ``"original"``, ``"roll<k>"``, NAA variants.
        seed: the NAA variants' seed (as :func:`escnet.features.offline_naa.expand_clips`).
        front_end: ``mn04_as``'s front end (the default is the one its weights expect).
        cache_dir: cache root (default ``$ESCNET_CACHE_DIR``); vectors go to ``<root>/probe``,
            images and NAA variants to their usual places.
        weights_path: the ``mn04_as`` weights file (default:
            :func:`escnet.models.weights.fetch_weights`).
        workers: NAA processes (default: cores).
        chunk: clips whose images are held in memory at once.
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        A :class:`FeatureTable`; clips that fail to load are left out (and listed).
    """
    for v in views:
        parse_view(v)  # ValueError on an unknown view before any work
    fe = front_end or AudioSetMelConfig()
    audio = AudioConfig(sample_rate=fe.sample_rate, duration=dataset.duration)

    def network() -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
        extractor = full_extractor(weights_path)
        return lambda images, shifts: _pool(extractor, images, shifts, batch_size)

    return cached_views(
        FeatureTable, dataset, indices, views, root=default_cache_dir(cache_dir),
        namespace="probe", key=lambda d, v: _view_key(d, v, fe, audio, seed), network=network,
        image_of=_image_of, front_end=fe, seed=seed, workers=workers, chunk=chunk,
        desc="mn04_as features", progress=progress, dtype=np.float32, shape=(FULL_DIM,),
    )  # fmt: skip
