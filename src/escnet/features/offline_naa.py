"""Offline NAA expansion, as in the paper: each training clip plus its six NAA variants (7x).

Variants are turned into spectral images with the model's front end and cached on disk, keyed by
the clip's content, the variant's transform parameters, the seed and the front end's parameters,
so a second run (or another split that trains on the same clip) only reads the cache. Work is
spread over processes, one per core; each writes its entries atomically, so an interrupted run
keeps every finished clip and resumes where it stopped.

Only *training* clips are ever passed here: :func:`expand_training_set` takes a
:class:`~escnet.data.folds.Split` and touches ``split.train`` alone.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from escnet.augment.audio import NAA_VARIANTS, naa_transform, variant_rng
from escnet.cache import CODE_VERSIONS, ArrayCache, DigestMemo, params_digest
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import Dataset
from escnet.data.folds import ImageSplit, Split
from escnet.errors import AudioError
from escnet.features.prepare import feature_key_params, prepare_features
from escnet.features.spectrogram import FrontEndConfig, LogMelConfig
from escnet.settings import cache_dir as default_cache_dir

log = logging.getLogger(__name__)


@dataclass
class ExpandedSet:
    """Spectral images of the original training clips followed by their variants.

    Attributes:
        features: (N, mels, frames) float32.
        labels: (N,) class of each image.
        source: (N,) data set index of the clip each image comes from.
        variant: (N,) ``"original"`` or the NAA variant's name.
        skipped: ``(path, reason)`` for clips that could not be loaded.
    """

    features: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    variant: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    cache_hits: int = 0


def variants_params_digest(
    names: Sequence[str], seed: int, front_end: FrontEndConfig, audio: AudioConfig
) -> str:
    """Digest of everything a clip's variant images depend on besides the clip's content."""
    params = {
        "variants": [[n, naa_transform(n).params()] for n in names],
        "seed": seed,
        # Random draws (the time shift) depend on the clip's content digest, not the seed alone.
        "draw": "per-clip",
        "code": CODE_VERSIONS["naa"],  # bumped in escnet.cache when the transforms' code changes
        "features": feature_key_params(front_end, audio),
    }
    return params_digest(params)


def variants_key(
    digest: str, names: Sequence[str], seed: int, front_end: FrontEndConfig, audio: AudioConfig
) -> str:
    """Cache key of one clip's variant images (one entry of shape (len(names), mels, frames)):
    clip content + the transforms' parameters + seed + front end."""
    return f"{digest}-{variants_params_digest(names, seed, front_end, audio)}"


# Per-process state of the pool's workers, set once by _init_worker.
_WORKER: dict[str, Any] = {}


def _init_worker(front_end: FrontEndConfig, cache_root: str) -> None:
    import torch

    # One core per process: the pool, not torch's threads, gives the parallelism.
    torch.set_num_threads(1)
    _WORKER["module"] = front_end.build().eval()
    _WORKER["cache"] = ArrayCache(cache_root, "naa")


def _expand_clip(
    path: Path, key: str, names: Sequence[str], seed: int, audio: AudioConfig, digest: str
) -> str | None:
    """Compute one clip's variant images into the cache; return an error text or None."""
    try:
        wave = load_audio(path, audio)
    except AudioError as exc:
        return exc.reason
    images = _variant_images(wave, names, seed, audio.sample_rate, _WORKER["module"], digest)
    _WORKER["cache"].put(key, np.stack(images))
    return None


def _variant_images(
    wave: np.ndarray, names: Sequence[str], seed: int, sample_rate: int, module: Any, digest: str
) -> list[np.ndarray]:
    """The spectral images of a clip's variants ``names`` (the deterministic part of the work);
    ``digest`` (the clip's content digest) gives the clip its own random draws."""
    import torch

    batch = np.stack(
        [naa_transform(n)(wave, sample_rate, rng=variant_rng(seed, n, digest)) for n in names]
    )
    with torch.inference_mode():
        images = module(torch.from_numpy(batch))[:, 0].numpy()
    return [np.ascontiguousarray(im) for im in images]


def _expand_in_pool(
    dataset: Dataset,
    missing: Sequence[int],
    keys: dict[int, str],
    digests: dict[int, str],
    *,
    names: Sequence[str],
    seed: int,
    audio: AudioConfig,
    front_end: FrontEndConfig,
    root: Path,
    workers: int | None,
    progress: bool,
) -> list[tuple[Path, str]]:
    """Compute the cache entries of the clips ``missing``, one process per core; returns
    ``(path, reason)`` of the clips that could not be loaded, in the order they finished."""
    skipped: list[tuple[Path, str]] = []
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(missing)))
    # fork, as torch's DataLoader does: workers start at once and need no __main__ guard in
    # the caller's script; each sets torch to one thread before any torch work.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    with ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_init_worker, initargs=(front_end, str(root))
    ) as pool:
        futures = {
            pool.submit(_expand_clip, dataset[i].path, keys[i], names, seed, audio, digests[i]): i
            for i in missing
        }
        bar = tqdm(total=len(missing), desc="NAA variants", unit="clip", disable=not progress)
        for fut in as_completed(futures):
            err = fut.result()
            if err is not None:
                path = dataset[futures[fut]].path
                log.warning("skipping %s: %s", path, err)
                skipped.append((path, err))
            bar.update(1)
        bar.close()
    return skipped


def _assemble_images(
    dataset: Dataset,
    original_features: np.ndarray,
    good: Sequence[tuple[int, int]],
    keys: dict[int, str],
    digests: dict[int, str],
    *,
    names: Sequence[str],
    seed: int,
    audio: AudioConfig,
    front_end: FrontEndConfig,
    cache: ArrayCache,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(features, labels, source, variant)`` of the clips ``good`` (``(row of
    original_features, data set index)`` pairs): each clip's original image, then its variants
    read from the cache; a damaged or vanished cache entry is recomputed here."""
    n_images = len(good) * (1 + len(names))
    shape = original_features.shape[1:]
    # One preallocated array, filled in place: the variants of a split are ~10^4 images.
    features = np.empty((n_images, *shape), dtype=np.float32)
    labels = np.empty(n_images, dtype=np.int64)
    source = np.empty(n_images, dtype=np.int64)
    variant = np.empty(n_images, dtype=object)
    # Clip-major layout: each clip's original, then its variants, so that a cache entry
    # (len(names), mels, frames) is read straight into its contiguous slice.
    per_clip = 1 + len(names)
    module = None
    for j, (row, i) in enumerate(good):
        k = j * per_clip
        features[k] = original_features[row]
        block = features[k + 1 : k + per_clip]
        if not cache.read_into(keys[i], block):
            # A damaged or vanished entry (disk full, deleted meanwhile): recompute it here.
            wave = load_audio(dataset[i].path, audio)
            module = module or front_end.build().eval()
            block[:] = np.stack(
                _variant_images(wave, names, seed, audio.sample_rate, module, digests[i])
            )
            cache.put(keys[i], block)
        labels[k : k + per_clip] = dataset[i].label
        source[k : k + per_clip] = i
        variant[k : k + per_clip] = ("original", *names)
    return features, labels, source, variant


def expand_clips(
    dataset: Dataset,
    indices: Sequence[int],
    front_end: FrontEndConfig | None = None,
    *,
    names: Sequence[str] = NAA_VARIANTS,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ExpandedSet:
    """Original images plus the NAA variants ``names`` of the clips at ``indices``.

    Args:
        dataset: the data set.
        indices: the clips to expand: training clips only (see :func:`expand_training_set`).
        front_end: waveform -> image config (default: the paper's log-mel).
        names: variants to add, a subset of :data:`~escnet.augment.audio.NAA_VARIANTS`.
        seed: variant seed; the same seed gives the same variants (and cache entries).
        cache_dir: cache root; variant images go to ``<cache_dir>/naa``.
        workers: processes (default: number of cores).
        progress: show progress bars.
    """
    fe = front_end or LogMelConfig()
    audio = AudioConfig(sample_rate=fe.sample_rate, duration=dataset.duration)
    root = default_cache_dir(cache_dir)
    idx = [int(i) for i in indices]

    originals = prepare_features(dataset.subset(idx), fe, cache_dir=root, progress=progress)
    kept = [idx[i] for i in originals.indices]
    memo = DigestMemo(root / "digests.json")
    cache = ArrayCache(root, "naa")
    # One entry per clip holding all its variants: a warm run opens one file per clip.
    suffix = variants_params_digest(names, seed, fe, audio)
    digests = {i: memo.digest(dataset[i].path) for i in kept}
    keys = {i: f"{digests[i]}-{suffix}" for i in kept}
    memo.save()
    missing = [i for i in kept if keys[i] not in cache]

    skipped = list(originals.skipped)
    if missing:
        skipped += _expand_in_pool(
            dataset,
            missing,
            keys,
            digests,
            names=names,
            seed=seed,
            audio=audio,
            front_end=fe,
            root=root,
            workers=workers,
            progress=progress,
        )

    bad = {str(p) for p, _ in skipped}
    good = [(row, i) for row, i in enumerate(kept) if str(dataset[i].path) not in bad]
    features, labels, source, variant = _assemble_images(
        dataset,
        originals.features,
        good,
        keys,
        digests,
        names=names,
        seed=seed,
        audio=audio,
        front_end=fe,
        cache=cache,
    )
    hits = originals.cache_hits + (len(kept) - len(missing)) * len(names)
    if skipped:
        log.warning("skipped %d of %d clips that could not be loaded", len(skipped), len(idx))
    return ExpandedSet(features, labels, source, variant.astype(str), skipped, hits)


def expand_training_set(
    dataset: Dataset, split: Split, front_end: FrontEndConfig | None = None, **kwargs: Any
) -> ExpandedSet:
    """:func:`expand_clips` on ``split.train`` only: validation and test clips are never
    augmented."""
    return expand_clips(dataset, split.train, front_end, **kwargs)


def expand_image_split(
    dataset: Dataset, split: ImageSplit, front_end: FrontEndConfig | None = None, **kwargs: Any
) -> tuple[ExpandedSet, dict[str, np.ndarray]]:
    """The LEAKY ``augment-then-split`` protocol's images: :func:`expand_clips` of *every* clip,
    and the rows of that set on each side of ``split`` (``{"train", "val", "test"}``; images of
    clips that failed to load are gone, as skipped clips are elsewhere).

    Variants of a test clip are trained on: that is the protocol, run on purpose and labelled
    ``(leaky)``. What is still refused: one *image* on two sides.

    Raises:
        RuntimeError: the expansion does not hold ``split.per_clip`` images per clip, or an
            image is both trained on and held out.
    """
    expanded = expand_clips(dataset, range(len(dataset)), front_end, **kwargs)
    n = split.per_clip
    if len(expanded.source) % n:
        raise RuntimeError(f"expansion gives {len(expanded.source)} images, not {n} per clip")
    # Clip-major layout: a clip's original at ``first[clip]``, its variants right after it.
    first = {int(expanded.source[row]): row for row in range(0, len(expanded.source), n)}
    rows = {
        side: np.array(
            [first[m // n] + m % n for m in getattr(split, side) if m // n in first], np.int64
        )
        for side in ("train", "val", "test")
    }
    if set(rows["train"].tolist()) & (set(rows["val"].tolist()) | set(rows["test"].tolist())):
        raise RuntimeError("an image is both trained on and held out")
    return expanded, rows
