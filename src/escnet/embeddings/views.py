"""The one cache of frozen ``mn04_as`` outputs per (clip, view), shared by its two tables.

:mod:`escnet.embeddings.pooled` (pooled features, for probes) and
:mod:`escnet.embeddings.activations` (a lower block's outputs, for partial fine-tuning) each run
the spectral image of a *view* of a clip -- the original, one of its offline NAA variants, or the
original rolled in time -- through the frozen network, cache the result per (clip, view) and hand
back a clip-major table. They differ only in what they compute and how they key it;
:func:`cached_views` does the rest for both:

* :func:`view_keys` -- every (clip, view) pair's cache key, from the clip's content digest;
* :func:`missing_views` -- which of those pairs the cache lacks;
* :func:`view_images` -- the spectral images such pairs need, from the NAA and feature caches;
* :func:`read_rows` -- the cached entries as one clip-major array with labels, clip and view;
* :func:`pretrained_mn04_as` -- the network both tables run, loaded only for missing entries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

from escnet.cache import ArrayCache, DigestMemo
from escnet.data.datasets import Dataset
from escnet.features.offline_naa import expand_clips
from escnet.features.prepare import prepare_features
from escnet.models.mobilenet_audioset import AudioSetMelConfig, MobileNetAudioSet
from escnet.models.weights import MN04_AS

__all__ = [
    "ViewRows",
    "cached_views",
    "missing_views",
    "pretrained_mn04_as",
    "read_rows",
    "view_images",
    "view_keys",
]

log = logging.getLogger(__name__)

_Rows = TypeVar("_Rows", bound="ViewRows")


def view_keys(
    dataset: Dataset,
    indices: Sequence[int],
    views: Sequence[str],
    root: Path,
    key: Callable[[str, str], str],
) -> dict[tuple[int, str], str]:
    """``(clip, view) -> key(clip digest, view)`` for every clip and view; the digests come from
    (and are remembered in) ``<root>/digests.json``, so a warm run does not re-read the audio."""
    memo = DigestMemo(root / "digests.json")
    digests = {i: memo.digest(dataset[i].path) for i in indices}
    memo.save()
    return {(i, v): key(digests[i], v) for i in indices for v in views}


def missing_views(keys: Mapping[tuple[int, str], str], cache: ArrayCache) -> dict[int, list[str]]:
    """Clip -> the views (in the order asked) whose entries ``cache`` lacks."""
    missing: dict[int, list[str]] = {}
    for (i, v), key in keys.items():
        if key not in cache:
            missing.setdefault(i, []).append(v)
    return missing


def view_images(
    dataset: Dataset,
    wanted: Mapping[int, Collection[str]],
    front_end: AudioSetMelConfig,
    *,
    seed: int,
    root: Path,
    workers: int | None,
) -> tuple[dict[tuple[int, str], np.ndarray], list[tuple[Path, str]]]:
    """The spectral images ``(clip, image name) -> (mels, frames)`` of ``wanted`` (clip -> image
    names: ``"original"`` or NAA variant names), and the clips that failed to load.

    A clip that wants any NAA variant gets all of them with its original, from
    :func:`escnet.features.offline_naa.expand_clips` (which caches the whole set); the other clips'
    originals come from :func:`escnet.features.prepare.prepare_features` (its cache).
    """
    images: dict[tuple[int, str], np.ndarray] = {}
    skipped: list[tuple[Path, str]] = []
    needs_naa = [i for i, names in wanted.items() if any(n != "original" for n in names)]
    expanded_ids = set(needs_naa)  # a set: membership below is per clip
    if needs_naa:
        expanded = expand_clips(
            dataset, needs_naa, front_end, seed=seed, cache_dir=root, workers=workers,
            progress=False,
        )  # fmt: skip
        skipped += expanded.skipped
        for row, (i, name) in enumerate(zip(expanded.source, expanded.variant, strict=True)):
            images[(int(i), str(name))] = expanded.features[row]
    plain = [i for i in wanted if i not in expanded_ids]
    if plain:
        fs = prepare_features(dataset.subset(plain), front_end, cache_dir=root, progress=False)
        skipped += fs.skipped
        for row, j in enumerate(fs.indices):
            images[(plain[int(j)], "original")] = fs.features[row]
    return images, skipped


@dataclass
class ViewRows:
    """Cached entries of views of clips, clip-major (each clip's views in the order asked).

    Attributes:
        values: (N, ...) the entries, stacked.
        labels: (N,) class of each row.
        source: (N,) data set index of the clip each row comes from.
        view: (N,) the view's name (``"original"``, ``"roll8"``, an NAA variant, ...).
        skipped: ``(path, reason)`` of clips that could not be loaded.
    """

    values: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    view: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def rows(self, view: str) -> np.ndarray:
        """Indices of the rows of ``view``."""
        return np.flatnonzero(self.view == view)


def read_rows(
    dataset: Dataset,
    indices: Sequence[int],
    views: Sequence[str],
    keys: Mapping[tuple[int, str], str],
    cache: ArrayCache,
    skipped: Sequence[tuple[Path, str]],
    *,
    dtype: np.dtype | type,
    shape: tuple[int, ...] | None = None,
    what: str = "cache",
) -> ViewRows:
    """Every view of every clip of ``indices`` but the ``skipped`` ones, read from ``cache``.

    Args:
        shape: each entry's shape; None takes it from the first entry (an empty table then
            treats entries as shape (0,)).
        what: the entries' name in the error message ("<what> cache entry unreadable").

    Raises:
        RuntimeError: an entry is missing or does not have the shape and dtype (the message
            names its file).
    """
    bad = {str(p) for p, _ in skipped}
    kept = [i for i in indices if str(dataset[i].path) not in bad]
    order = [(i, v) for i in kept for v in views]
    if shape is None:
        first = cache.get(keys[order[0]]) if order else None
        shape = first.shape if first is not None else (0,)
    values = np.empty((len(order), *shape), dtype=dtype)
    for r, t in enumerate(order):
        if not cache.read_into(keys[t], values[r]):
            raise RuntimeError(f"{cache.path(keys[t])}: {what} cache entry unreadable")
    source = np.repeat(np.asarray(kept, dtype=np.int64), len(views))
    labels = np.asarray([dataset[int(i)].label for i in source], dtype=np.int64)
    view = np.tile(np.asarray(list(views)), len(kept))
    if skipped:
        log.warning("skipped %d of %d clips that could not be loaded", len(skipped), len(indices))
    return ViewRows(values, labels, source, view)


def pretrained_mn04_as(weights_path: str | os.PathLike[str] | None = None) -> MobileNetAudioSet:
    """The AudioSet-trained ``mn04_as`` (weights from ``weights_path``, else
    :func:`escnet.models.weights.fetch_weights`)."""
    from escnet.models.mobilenet_audioset import build_mn04_as
    from escnet.models.weights import fetch_weights

    path = Path(weights_path) if weights_path is not None else fetch_weights(MN04_AS)
    return build_mn04_as(weights_path=path)


#: What a network computes for a stack of images (N, mels, frames), each rolled by its shift.
Compute = Callable[[np.ndarray, Sequence[int]], np.ndarray]


def _fill(
    dataset: Dataset,
    missing: Mapping[int, Sequence[str]],
    keys: Mapping[tuple[int, str], str],
    cache: ArrayCache,
    compute: Compute,
    image_of: Callable[[str], tuple[str, int]],
    *,
    front_end: AudioSetMelConfig,
    seed: int,
    root: Path,
    workers: int | None,
    chunk: int,
    desc: str,
    progress: bool,
) -> list[tuple[Path, str]]:
    """Compute the entries of ``missing`` (clip -> views) into ``cache``, a chunk of clips at a
    time (NAA images of 128 clips are ~230 MB); returns the clips that failed to load."""
    skipped: list[tuple[Path, str]] = []
    clips = sorted(missing)
    bar = tqdm(total=len(clips), desc=desc, unit="clip", disable=not progress)
    for start in range(0, len(clips), chunk):
        part = clips[start : start + chunk]
        wanted = {i: {image_of(v)[0] for v in missing[i]} for i in part}
        images, lost = view_images(
            dataset, wanted, front_end, seed=seed, root=root, workers=workers
        )
        skipped += lost
        todo = [(i, v) for i in part for v in missing[i] if (i, image_of(v)[0]) in images]
        if todo:
            stack = np.stack([images[(i, image_of(v)[0])] for i, v in todo])
            for t, entry in zip(
                todo, compute(stack, [image_of(v)[1] for _, v in todo]), strict=True
            ):
                cache.put(keys[t], entry)
        bar.update(len(part))
    bar.close()
    return skipped


def cached_views(
    table: type[_Rows],
    dataset: Dataset,
    indices: Sequence[int],
    views: Sequence[str],
    *,
    root: Path,
    namespace: str,
    key: Callable[[str, str], str],
    network: Callable[[], Compute],
    image_of: Callable[[str], tuple[str, int]],
    front_end: AudioSetMelConfig,
    seed: int,
    workers: int | None,
    chunk: int,
    desc: str,
    progress: bool,
    dtype: np.dtype | type,
    shape: tuple[int, ...] | None = None,
) -> _Rows:
    """``views`` of the clips at ``indices`` as a ``table``, from the cache or computed.

    Args:
        root, namespace: the cache (:class:`escnet.cache.ArrayCache`); NAA variants and images
            go to their usual places under ``root``.
        key: ``(clip digest, view) -> cache key``.
        network: builds the computation, called only when an entry is missing (loading the
            weights costs seconds a warm run does not pay).
        image_of: ``view -> (image name, frames to roll it by)``, the image name ``"original"``
            or an NAA variant's.
        desc: the progress bar's label (and the entries' name in errors); ``dtype`` and
            ``shape`` as :func:`read_rows`.
    """
    cache = ArrayCache(root, namespace)
    idx = [int(i) for i in indices]
    keys = view_keys(dataset, idx, views, root, key)
    missing = missing_views(keys, cache)
    skipped: list[tuple[Path, str]] = []
    if missing:
        skipped = _fill(
            dataset, missing, keys, cache, network(), image_of, front_end=front_end, seed=seed,
            root=root, workers=workers, chunk=chunk, desc=desc, progress=progress,
        )  # fmt: skip
    rows = read_rows(dataset, idx, views, keys, cache, skipped, dtype=dtype, shape=shape, what=desc)
    return table(rows.values, rows.labels, rows.source, rows.view, list(skipped))
