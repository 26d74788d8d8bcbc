"""The shared steps of the per-(clip, view) caches (escnet.embeddings.views), on a stand-in
data set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from escnet.cache import ArrayCache
from escnet.embeddings.views import missing_views, read_rows, view_keys


@dataclass
class _Clip:
    path: Path
    label: int


def _clips(tmp_path: Path, n: int) -> Any:
    clips = []
    for i in range(n):
        p = tmp_path / f"clip{i}.wav"
        p.write_bytes(bytes([i]) * 10)  # distinct content, distinct digest
        clips.append(_Clip(p, label=10 + i))
    return clips


def test_keys_missing_and_rows_clip_major(tmp_path: Path) -> None:
    ds = _clips(tmp_path, 3)
    cache = ArrayCache(tmp_path / "cache", "test")
    views = ("original", "pps")
    keys = view_keys(ds, [0, 1, 2], views, tmp_path / "cache", lambda d, v: f"{d}-{v}")
    assert len(set(keys.values())) == 6  # every clip and view its own key
    cache.put(keys[(1, "pps")], np.full(4, 1.5, dtype=np.float32))
    assert missing_views(keys, cache) == {0: ["original", "pps"], 1: ["original"], 2: list(views)}

    for (i, v), key in keys.items():
        cache.put(key, np.full(4, i + (0.5 if v == "pps" else 0.0), dtype=np.float32))
    assert missing_views(keys, cache) == {}
    skipped = [(ds[1].path, "corrupt")]
    rows = read_rows(ds, [0, 1, 2], views, keys, cache, skipped, dtype=np.float32)
    assert rows.values.shape == (4, 4)
    assert rows.values[:, 0].tolist() == [0.0, 0.5, 2.0, 2.5]  # clip 1 left out, clip-major
    assert rows.source.tolist() == [0, 0, 2, 2] and rows.labels.tolist() == [10, 10, 12, 12]
    assert rows.view.tolist() == ["original", "pps"] * 2


def test_read_rows_names_the_bad_entry(tmp_path: Path) -> None:
    ds = _clips(tmp_path, 1)
    cache = ArrayCache(tmp_path / "cache", "test")
    keys = view_keys(ds, [0], ["original"], tmp_path / "cache", lambda d, v: f"{d}-{v}")
    cache.put(keys[(0, "original")], np.zeros(3, dtype=np.float64))  # the wrong dtype
    with pytest.raises(RuntimeError, match=r"\.npy: feature cache entry unreadable"):
        read_rows(ds, [0], ["original"], keys, cache, [], dtype=np.float32, shape=(3,),
                  what="feature")  # fmt: skip
