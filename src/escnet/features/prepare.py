"""Spectral images for a whole data set, computed once and cached.

``prepare_features`` decodes every clip (in threads: soundfile and soxr release the GIL), turns
batches of waveforms into spectral images with the model's own front end, and stores each image
in an :class:`~escnet.cache.ArrayCache` keyed by the audio file's content and every parameter the
image depends on. A second run only hashes files and reads the cache. A clip that cannot be
loaded is skipped with a warning that names it; the count is reported at the end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from escnet.cache import CODE_VERSIONS, ArrayCache, DigestMemo, file_digest, params_digest
from escnet.data.audio import AudioConfig, load_audio, os_error_reason
from escnet.data.datasets import Dataset
from escnet.errors import AudioError, ParameterError
from escnet.features.spectrogram import FrontEndConfig, LogMelConfig
from escnet.settings import cache_dir as default_cache_dir

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Spectral images of a data set's usable clips.

    Attributes:
        features: (N, n_mels, frames) float32 images, one per kept clip.
        labels: (N,) class indices.
        indices: (N,) positions of the kept clips in the data set.
        skipped: ``(path, reason)`` for each clip that could not be loaded.
        cache_hits: how many images came from the cache.
    """

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    cache_hits: int = 0


def feature_key_params(front_end: FrontEndConfig, audio: AudioConfig) -> dict[str, object]:
    """Everything an image depends on besides the audio bytes (the cache key's parameter part)."""
    return {
        "front_end": type(front_end).__name__,
        "front_end_params": asdict(front_end),  # type: ignore[call-overload]
        "audio": asdict(audio),
        # The code version: bumped (in escnet.cache) when the computation changes in a way the
        # parameters do not show, so that images of older code are never returned.
        "version": CODE_VERSIONS["features"],
    }


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _resolve_workers(workers: int | None) -> int:
    if workers is not None and (isinstance(workers, bool) or workers < 0):
        raise ParameterError(f"workers must be >= 1 (0 or None: the default), got {workers!r}")
    return workers or default_workers()


def _iter_loaded(
    paths: Sequence[Path],
    audio: AudioConfig,
    cache: ArrayCache | None,
    memo: DigestMemo | None,
    param_key: str,
    workers: int,
) -> Iterator[tuple[str, np.ndarray | None, np.ndarray | None, AudioError | None]]:
    """Yield (cache key, cached image, waveform, error) per path, in order, loading in threads."""

    def work(path: Path) -> tuple[str, np.ndarray | None, np.ndarray | None, AudioError | None]:
        try:
            digest = memo.digest(path) if memo is not None else file_digest(path)
            key = f"{digest}-{param_key}"
        except OSError as exc:
            return "", None, None, AudioError(path, os_error_reason(exc))
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                return key, hit, None, None
        try:
            return key, None, load_audio(path, audio), None
        except AudioError as exc:
            return key, None, None, exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # map() keeps order and reads ahead by at most the pool's backlog, bounded by chunking.
        chunk = max(64, workers * 16)
        for start in range(0, len(paths), chunk):
            yield from pool.map(work, paths[start : start + chunk])


def prepare_features(
    dataset: Dataset,
    front_end: FrontEndConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> FeatureSet:
    """Compute (or read from the cache) the spectral image of every clip of ``dataset``.

    Args:
        dataset: the clips to process.
        front_end: waveform -> image config (default
            :class:`~escnet.features.spectrogram.LogMelConfig`,
            the paper's features); its ``sample_rate`` sets the resampling rate.
        cache_dir: cache root (default ``$ESCNET_CACHE_DIR`` or the user's cache directory);
            images go to ``<cache_dir>/features``.
        use_cache: read and write the cache; ``False`` recomputes everything and writes nothing.
        workers: decoding threads (default: the number of CPU cores, at most 8).
        batch_size: waveforms per front-end call.
        progress: show a progress bar.

    Returns:
        A :class:`FeatureSet`; clips that could not be loaded are listed in ``skipped``.
    """
    fe = front_end or LogMelConfig()
    audio = AudioConfig(sample_rate=fe.sample_rate, duration=dataset.duration)
    root = default_cache_dir(cache_dir)
    cache = ArrayCache(root, "features") if use_cache else None
    memo = DigestMemo(root / "digests.json") if use_cache else None
    param_key = params_digest(feature_key_params(fe, audio))
    module = fe.build().eval()
    paths = [c.path for c in dataset.clips]

    images: list[np.ndarray | None] = [None] * len(paths)
    skipped: list[tuple[Path, str]] = []
    hits = 0
    pending: list[tuple[int, str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        batch = torch.from_numpy(np.stack([w for _, _, w in pending]))
        with torch.inference_mode():
            out = module(batch)[:, 0].numpy()
        for (i, key, _), image in zip(pending, out, strict=True):
            image = np.ascontiguousarray(image)
            images[i] = image
            if cache is not None:
                cache.put(key, image)
        pending.clear()

    bar = tqdm(total=len(paths), desc=f"prepare {dataset.name}", unit="clip", disable=not progress)
    loaded = _iter_loaded(paths, audio, cache, memo, param_key, _resolve_workers(workers))
    for i, (key, hit, wave, err) in enumerate(loaded):
        if err is not None:
            log.warning("skipping %s", err)
            skipped.append((err.path, err.reason))
            bar.set_postfix(skipped=len(skipped))
        elif hit is not None:
            images[i] = hit
            hits += 1
        else:
            assert wave is not None
            pending.append((i, key, wave))
            if len(pending) >= batch_size:
                flush()
        bar.update(1)
    flush()
    bar.close()
    if memo is not None:
        memo.save()

    kept = np.array([i for i, im in enumerate(images) if im is not None], dtype=np.int64)
    kept_images = [im for im in images if im is not None]
    feats = np.stack(kept_images) if kept_images else np.empty((0, 0, 0), np.float32)
    if skipped:
        log.warning("skipped %d of %d clips that could not be loaded", len(skipped), len(paths))
    return FeatureSet(feats, dataset.labels[kept], kept, skipped, hits)
