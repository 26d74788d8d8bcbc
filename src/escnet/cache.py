"""Atomic file writes, the one reader of JSON objects (:func:`read_json`) and a
content-addressed array cache.

A cache entry is written to a temporary file in the same directory and renamed into place, so a
reader sees either the whole entry or none: an interrupted run leaves no half-written entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from escnet.errors import EscnetError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()

#: Version of the code behind each cached stage, part of every cache key of that stage. Bump a
#: stage's number when its output changes in a way its parameters do not show (a fixed bug, a
#: different decoder or transform), so that entries computed by older code are never returned:
#: ``"features"`` covers audio loading and the spectral front end (:mod:`escnet.features.prepare`;
#: NAA
#: entries carry it too), ``"naa"`` the NAA transforms and their random draws
#: (:mod:`escnet.features.offline_naa`).
CODE_VERSIONS: dict[str, int] = {
    "features": 2,  # 2: truncated WAV files are refused instead of padded with silence
    "naa": 1,
}


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
    except OSError as exc:
        if _disk_full(exc):
            raise disk_full_error(target.parent) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _disk_full(exc: OSError) -> bool:
    # numpy reports a short write in its own words, without an errno ("27648 requested and
    # 20448 written"); on a local file that is the disk (or a quota) running out.
    short_write = exc.errno is None and "requested and" in str(exc) and "written" in str(exc)
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or short_write


def _device_of(directory: Path) -> str:
    """The device (as ``/proc/mounts`` names it) of the file system holding ``directory``, or
    its mount point where that is not known."""
    path = directory.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount = line.split()[:2]
            if mount == str(path):
                return device
    except OSError:
        pass
    return str(path)


def disk_full_error(directory: Path) -> OSError:
    """The one-line error of a write that ran out of space, naming the device and the
    directory."""
    return OSError(
        errno.ENOSPC,
        f"no space left on {_device_of(directory)} ({directory}); free space there, or write "
        "elsewhere (--cache-dir or $ESCNET_CACHE_DIR for the cache, --run-dir for a run)",
    )


def _probe_writable(directory: Path) -> None:
    """Create and remove a file in ``directory``: the only check that holds for every user
    (root ignores permission bits) and file system (read-only mounts, quotas)."""
    fd, name = tempfile.mkstemp(prefix=".escnet-probe-", dir=directory)
    os.close(fd)
    os.unlink(name)


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """Check, before any work, that a file can be written at ``path`` (its directory is created).

    Args:
        path: the file to be written.
        what: how the user named it, for the message (``"OUTPUT"``, ``"--out"``).

    Raises:
        EscnetError: ``path`` is a directory, its parent is a file, or its directory cannot be
            created or written; the message names ``what``, the path and the fix.
    """
    from escnet.errors import EscnetError

    target = Path(path).expanduser()
    if target.is_dir():
        raise EscnetError(
            f"{what} {target} is a directory; give a file name, e.g. {target / 'out.png'}"
        )
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise EscnetError(
            f"{what} {target}: {existing} is a file, not a directory; choose another path"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _probe_writable(target.parent)
    except OSError as exc:
        raise EscnetError(
            f"{what} {target}: cannot write in {target.parent} ({exc.strerror or exc}); choose "
            "a writable location"
        ) from None
    return target


def check_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Check, before any work, that ``path`` is (or can be created as) a writable directory.

    Raises:
        EscnetError: ``path`` is a file, or cannot be created or written; the message names
            ``what`` (e.g. ``"--cache-dir"``), the path and the fix.
    """
    from escnet.errors import EscnetError

    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise EscnetError(f"{what} {target} is a file, not a directory; give a directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
        _probe_writable(target)
    except OSError as exc:
        raise EscnetError(
            f"{what} {target} is not a writable directory ({exc.strerror or exc}); choose "
            "another one"
        ) from None
    return target


def check_output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Check, before any work and without creating anything, that ``path`` is a directory, or
    can be created as one, in a place that can be written.

    Raises:
        EscnetError: ``path`` (or a parent) is a file, or the nearest existing parent cannot be
            written; the message names ``what`` (e.g. ``"--run-dir"``), the path and the fix.
    """
    from escnet.errors import EscnetError

    target = Path(path).expanduser()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise EscnetError(
            f"{what} {target}: {existing} is a file, not a directory; choose another path"
        )
    try:
        _probe_writable(existing)
    except OSError as exc:
        raise EscnetError(
            f"{what} {target}: cannot write in {existing} ({exc.strerror or exc}); choose a "
            "writable location"
        ) from None
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str], missing: str | None = None) -> dict[str, Any] | None:
    """A run's JSON object at ``path``: ``None`` when the file is absent, or with ``missing``
    (what the caller needed it for), an :class:`~escnet.errors.EscnetError` saying so.

    Raises:
        EscnetError: the file is not valid JSON, or not an object.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing is None:
            return None
        raise EscnetError(f"{path}: missing; {missing}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EscnetError(f"{path}: not valid JSON ({exc}); restore or remove it") from None
    if not isinstance(value, dict):
        raise EscnetError(f"{path}: expected a JSON object")
    return value


def json_object(path: str | os.PathLike[str], missing: str) -> dict[str, Any]:
    """:func:`read_json` of a file that must be there (``missing``: what it is needed for)."""
    value = read_json(path, missing)
    assert value is not None
    return value


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
    """Remembers file digests so that a warm run need not re-read the audio.

    An entry is trusted only while the file's size, modification time, change time (``ctime``,
    which no user-level tool can set back), inode and device are all as recorded, and only if
    the file had not changed for :attr:`RACY_NS` before it was hashed: a file rewritten with
    the same size and its old mtime restored (``cp -p``, ``rsync -t``) gets a new ctime, and one
    rewritten within the timestamp resolution of its hashing is hashed again (git's "racily
    clean" rule). Stored as one JSON file, replaced atomically by :meth:`save`.
    """

    #: A file changed less than this long before it was hashed is hashed again next time.
    RACY_NS = 2_000_000_000

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

    @staticmethod
    def _signature(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def digest(self, file: str | os.PathLike[str]) -> str:
        """The file's content digest, from the memo when the file is unchanged since hashing."""
        st = os.stat(file)
        name = os.path.abspath(file)
        signature = self._signature(st)
        entry = self._entries.get(name)
        if (
            isinstance(entry, list)
            and len(entry) == 3
            and entry[0] == signature
            and isinstance(entry[1], int)
            and max(st.st_mtime_ns, st.st_ctime_ns) < entry[1] - self.RACY_NS
        ):
            return str(entry[2])
        hashed_at = time.time_ns()
        value = file_digest(file)
        self._entries[name] = [signature, hashed_at, value]
        self._dirty = True
        return value

    def save(self) -> None:
        if self._dirty:
            atomic_write_text(self.path, json.dumps(self._entries))
            self._dirty = False


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (the digest publishers print next to their downloads)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
