"""The steps shared by the per-(clip, view) caches of frozen ``mn04_as`` outputs.

:mod:`escnet.training.frozen.activations` (partial fine-tuning) and
:mod:`escnet.training.frozen.embeddings` (probes) each run
the spectral image of a *view* of a clip -- the original, or one of its offline NAA variants --
through the frozen network, cache the result per (clip, view) and hand back a clip-major table.
They differ only in what they compute and how they key it; this module holds the rest, so that
the two caches find missing entries, load images and read tables back the same way:

* :func:`view_keys` -- every (clip, view) pair's cache key, from the clip's content digest;
* :func:`missing_views` -- which of those pairs the cache lacks;
* :func:`view_images` -- the spectral images such pairs need, from the NAA and feature caches;
* :func:`read_rows` -- the cached entries as one clip-major array with labels, clip and view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from escnet.cache import ArrayCache, DigestMemo
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split
from escnet.errors import EscnetError
from escnet.features.offline_naa import expand_clips
from escnet.features.prepare import prepare_features
from escnet.models.mobilenet_audioset import AudioSetMelConfig

__all__ = [
    "ViewRows",
    "checked_training_rows",
    "clip_split",
    "missing_views",
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


def checked_training_rows(table: _Rows, dataset: Dataset, split: Split) -> _Rows:
    """``table``, the fold's training rows, once checked to come from ``split.train`` only.

    Raises:
        RuntimeError: a row comes from a clip outside ``split.train`` (a leak).
        EscnetError: no training clip could be loaded.
    """
    if len(table.source) == 0:
        raise EscnetError(
            f"{dataset.name}, test fold {split.test_fold}: no training clip could be loaded"
        )
    split.check_training_sources(table.source, dataset, "training rows of a frozen network")
    return table


def clip_split(split: Split | ImageSplit, method: str) -> Split:
    """``split``, a split of clips (the frozen methods read cached views of clips, not the
    images of a split made after augmentation)."""
    if isinstance(split, ImageSplit):
        raise EscnetError(
            f"method {method!r} splits clips; protocol {split.protocol!r} splits NAA images: "
            "use protocol 'official-folds' or 'random-split'"
        )
    return split
