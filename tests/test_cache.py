"""escnet.cache: a write that runs out of space says so, naming the device and the directory,
and leaves no partial file."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from escnet.cache import ArrayCache, atomic_write_bytes


def test_a_full_disk_under_numpy_is_named_not_a_byte_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numpy's own words for a short write are "27648 requested and 20448 written"."""

    def short_write(f: Any, array: np.ndarray, **kwargs: Any) -> None:
        f.write(b"\x93NUMPY" + b"\0" * 100)
        raise OSError("27648 requested and 20448 written")

    monkeypatch.setattr(np, "save", short_write)
    cache = ArrayCache(tmp_path / "cache", "features")
    with pytest.raises(OSError, match=r"^\[Errno 28\] no space left on \S+ \(") as info:
        cache.put("ab1234", np.zeros((64, 108), np.float32))
    directory = cache.path("ab1234").parent
    assert f"({directory})" in str(info.value) and "requested" not in str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert list(directory.iterdir()) == []  # no partial entry, no temporary file


def test_enospc_names_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match=rf"no space left on .* \({tmp_path / 'out'}\); free space"):
        atomic_write_bytes(tmp_path / "out" / "x.json", b"{}")
