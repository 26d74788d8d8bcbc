"""Atomic file writes and a content-addressed array cache.

A cache entry is written to a temporary file in the same directory and renamed into place, so a
reader sees either the whole entry or none: an interrupted run leaves no half-written entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def file_digest(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file's bytes (BLAKE2b, 128 bits): the cache key of its content."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def params_digest(params: Any) -> str:
    """Stable short digest of a dataclass or a mapping of plain values."""
    if is_dataclass(params) and not isinstance(params, type):
        params = asdict(params)
    if not isinstance(params, Mapping):
        raise TypeError(f"params_digest expects a dataclass or a mapping, got {type(params)!r}")
    blob = json.dumps(params, sort_keys=True, default=str).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


class ArrayCache:
    """Arrays stored as ``<root>/<namespace>/<key[:2]>/<key>.npy``, written atomically.

    The caller builds the key from everything the array depends on (content and parameters), so
    a stale entry can never be returned; entries are never invalidated, only superseded.
    """

    def __init__(self, root: str | os.PathLike[str], namespace: str) -> None:
        self.dir = Path(root) / namespace

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        p = self.path(key)
        try:
            return np.load(p, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            # A damaged entry (disk full, foreign file) is treated as missing and recomputed.
            return None

    def read_into(self, key: str, out: np.ndarray) -> bool:
        """Read the entry straight into ``out`` (a C-contiguous array of the entry's shape and
        dtype), saving the copy that loading then stacking would cost; False if it is missing or
        does not fit."""
        try:
            with open(self.path(key), "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                if fortran or shape != out.shape or dtype != out.dtype:
                    return False
                return f.readinto(out.data.cast("B")) == out.nbytes
        except (FileNotFoundError, ValueError, OSError):
            return False

    def put(self, key: str, array: np.ndarray) -> None:
        atomic_save_npy(self.path(key), array)

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()


class DigestMemo:
    """Remembers file digests by (path, size, mtime) so a warm run need not re-read the audio.

    Like git's index: a file whose size and modification time are unchanged is assumed to have
    unchanged content. Stored as one JSON file, replaced atomically by :meth:`save`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._entries = loaded
        except (FileNotFoundError, ValueError, OSError):
            pass  # a missing or damaged memo only costs re-hashing

    def digest(self, file: str | os.PathLike[str]) -> str:
        """The file's content digest, from the memo when size and mtime match."""
        st = os.stat(file)
        name = os.path.abspath(file)
        entry = self._entries.get(name)
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return str(entry[2])
        value = file_digest(file)
        self._entries[name] = [st.st_size, st.st_mtime_ns, value]
        self._dirty = True
        return value

    def save(self) -> None:
        if self._dirty:
            atomic_write_text(self.path, json.dumps(self._entries))
            self._dirty = False
