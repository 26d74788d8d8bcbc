"""Downloads: single files over HTTP (resumable, verified) and data sets (extracted atomically).

A file is streamed into ``<dest>.part`` and renamed onto ``dest`` only after its size and sha256
are verified, so ``dest`` is either absent or complete. A broken transfer leaves the ``.part``
behind and the next call resumes it with an HTTP ``Range`` request.

A data set archive is downloaded into the cache, extracted into a temporary directory beside its
destination and renamed into place only once its metadata file is there, so ``<data_dir>/esc50``
is never half-extracted.
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import shutil
import ssl
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from tqdm import tqdm

from escnet import settings
from escnet.cache import sha256_file
from escnet.errors import ChecksumMismatchError, DownloadError, ParameterError

_CHUNK = 1 << 20
_USER_AGENT = "escnet (python urllib)"

# Failures of the network or the server (as opposed to the local disk): these become a one-line
# DownloadError that tells how to use a local copy instead.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    urllib.error.URLError,
    TimeoutError,
    ConnectionError,
    http.client.HTTPException,
    ssl.SSLError,
)


class _Restart(Exception):
    """The server cannot continue the ``.part`` file from its current length."""


class _Truncated(Exception):
    """The connection ended before the announced number of bytes arrived."""


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    offline_hint: str = "",
) -> Path:
    """Download ``url`` to ``dest``; return ``dest`` once it is complete and verified.

    The bytes go to ``<dest>.part`` first. If that file exists (an earlier transfer broke off) the
    download resumes from its end with an HTTP ``Range`` request; a server that ignores ``Range``
    and answers with the whole file makes it start again from zero. Only after ``size`` (bytes)
    and ``sha256`` (hex), where given, match is the ``.part`` renamed onto ``dest``, replacing any
    file there.

    Args:
        url: ``http(s)://`` (or ``file://``) address.
        dest: final path; its parent directory is created.
        sha256: expected hex digest, or ``None`` to skip the check.
        size: expected length in bytes, or ``None`` to skip the check.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the connection and for each read.
        offline_hint: one sentence appended to a network error, telling how to do without the
            download (for example where to put a local copy).

    Raises:
        ChecksumMismatchError: (a ``DownloadError``) size or sha256 differ; the ``.part`` is
            deleted and ``dest`` is left as it was.
        DownloadError: the network or the server failed; the message is one line naming ``url``
            and ending with ``offline_hint``. A partial ``.part`` is kept for the next call.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    expected_sha = sha256.lower() if sha256 is not None else None
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()

    for _attempt in range(2):
        offset = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, offset, progress=progress, timeout=timeout, desc=dest.name)
        except _Restart:
            part.unlink(missing_ok=True)
            continue
        except _Truncated as e:
            raise _network_error(url, str(e), part, offline_hint) from None
        except _NETWORK_ERRORS as e:
            raise _network_error(url, _describe(e), part, offline_hint) from e
        break
    else:  # pragma: no cover - a restart from zero sends no Range and cannot restart again
        raise DownloadError(f"{url}: the server cannot resume or restart the transfer")

    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise ChecksumMismatchError(url, "size", f"{size} bytes", f"{actual_size} bytes")
    if expected_sha is not None:
        actual_sha = sha256_file(part)
        if actual_sha != expected_sha:
            part.unlink()
            raise ChecksumMismatchError(url, "sha256", expected_sha, actual_sha)
    os.replace(part, dest)
    return dest


def _transfer(
    url: str, part: Path, offset: int, *, progress: bool, timeout: float, desc: str
) -> None:
    """Write the server's bytes from ``offset`` on into ``part``."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # The range starts at or past the end: the .part may already hold the whole file.
            total = _parse_content_range(e.headers.get("Content-Range"))[2]
            e.close()
            if total == offset:
                return
            raise _Restart from None
        raise

    with response:
        if offset and response.status == 206:
            start, _end, _total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise _Restart
            mode = "ab"
        else:
            # 200: no Range was sent, or the server ignored it and sends the whole file again.
            offset = 0
            mode = "wb"
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None and length.strip().isdigit() else None
        received = 0
        with (
            open(part, mode) as f,
            tqdm(
                total=offset + remaining if remaining is not None else None,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if remaining is not None and received < remaining:
            raise _Truncated(
                f"connection closed after {offset + received} of {offset + remaining} bytes"
            )


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``"bytes 10-99/100"`` -> ``(10, 99, 100)``; unknown parts are ``None``."""
    m = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if m is None:
        return None, None, None
    start, end, total = m.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total is not None and total != "*" else None,
    )


def _describe(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"the server answered HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


def _network_error(url: str, reason: str, part: Path, hint: str) -> DownloadError:
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = f" (the partial file {part} is kept and resumed next time)"
    message = f"cannot download {url}: {reason}{kept}"
    if hint:
        message += f"; {hint}"
    return DownloadError(" ".join(message.split()))


# --------------------------------------------------------------------------------- data sets

ArchiveType = Literal["zip", "tar.gz"]


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from and how its archive is laid out.

    Attributes:
        name: escnet's name of the data set, also its folder under the data directory.
        url: canonical address of the archive.
        archive: archive format, ``"zip"`` or ``"tar.gz"``.
        filename: name the archive is stored under in ``<cache_dir>/downloads``.
        top_folder: folder inside the archive that becomes ``<data_dir>/<name>``.
        metadata: path of the metadata CSV relative to that folder; its presence marks a
            complete data set.
        required_dirs: further folders (relative) that a complete data set has.
        sha256: expected digest of the archive, or ``None`` where no digest is known for
            certain. Then only the archive's own integrity is checked while extracting (the CRC
            of every zip member, the gzip stream's CRC).
        license: licence of the data.
        attribution: whom to credit, and the paper to cite.
    """

    name: str
    url: str
    archive: ArchiveType
    filename: str
    top_folder: str
    metadata: str
    required_dirs: tuple[str, ...]
    sha256: str | None
    license: str
    attribution: str

    def is_complete(self, path: Path) -> bool:
        """Whether ``path`` holds this data set's metadata CSV and audio folders."""
        return (path / self.metadata).is_file() and all(
            (path / d).is_dir() for d in self.required_dirs
        )

    def offline_hint(self, url: str, data_dir: Path) -> str:
        """How to install the data set by hand when it cannot be downloaded."""
        metadata = data_dir / self.name / self.metadata
        return (
            f"download {url} yourself and extract it so that {metadata} "
            f"exists (rename {self.top_folder}/ to {self.name}/), or point "
            f"${settings.DATA_DIR_ENV} (or --data-dir) at a directory that holds {self.name}/"
        )


DATASETS: dict[str, DatasetSource] = {
    "esc50": DatasetSource(
        name="esc50",
        url="https://github.com/karoldvl/ESC-50/archive/master.zip",
        archive="zip",
        filename="ESC-50-master.zip",
        top_folder="ESC-50-master",
        metadata="meta/esc50.csv",
        required_dirs=("audio",),
        # GitHub builds branch archives on demand; their bytes are not guaranteed to be stable.
        sha256=None,
        license="CC BY-NC 3.0",
        attribution=(
            "K. J. Piczak, ESC: Dataset for Environmental Sound Classification, "
            "Proc. 23rd ACM International Conference on Multimedia, 2015"
        ),
    ),
    "us8k": DatasetSource(
        name="us8k",
        url="https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz",
        archive="tar.gz",
        filename="UrbanSound8K.tar.gz",
        top_folder="UrbanSound8K",
        metadata="metadata/UrbanSound8K.csv",
        required_dirs=tuple(f"audio/fold{i}" for i in range(1, 11)),
        sha256=None,  # not known for certain; see DatasetSource.sha256
        license="CC BY-NC 3.0",
        attribution=(
            "J. Salamon, C. Jacoby and J. P. Bello, A Dataset and Taxonomy for Urban Sound "
            "Research, Proc. 22nd ACM International Conference on Multimedia, 2014"
        ),
    ),
}


def download_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    url: str | None = None,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    keep_archive: bool = False,
) -> Path:
    """Make sure ``<data_dir>/<name>`` holds the complete data set; return that directory.

    An already complete data set is returned without any network access. Otherwise the archive
    is downloaded (resumably) to ``<cache_dir>/downloads/``, extracted into a hidden temporary
    directory inside ``data_dir``, checked for its metadata CSV and renamed into place, so the
    destination either does not exist or is complete.

    Args:
        name: ``"esc50"`` or ``"us8k"`` (see :data:`DATASETS`).
        data_dir: directory holding one folder per data set; default
            :func:`escnet.settings.data_dir`.
        progress: show progress bars.
        url: download from here instead of the canonical address (a mirror, a test server).
        sha256: expected digest of the archive. When ``url`` is given the table's digest is not
            used, since it belongs to the canonical archive.
        cache_dir: escnet's cache directory; default :func:`escnet.settings.cache_dir`.
        keep_archive: keep the archive in the cache after extraction (it is deleted by default:
            UrbanSound8K's is 6 GB).

    Raises:
        ValueError: unknown ``name``.
        DownloadError: the download failed or did not verify, the archive is damaged, holds a
            member that would land outside the destination, or lacks the metadata CSV; or the
            destination exists but is incomplete (it is never overwritten).
    """
    try:
        source = DATASETS[name]
    except KeyError:
        raise ParameterError(
            f"unknown data set {name!r}; choose one of: {', '.join(sorted(DATASETS))}"
        ) from None
    root = settings.data_dir(data_dir)
    dest = root / source.name
    if source.is_complete(dest):
        return dest
    if dest.exists():
        raise DownloadError(
            f"{dest} exists but is not a complete {name} data set (no {source.metadata} or "
            f"missing {', '.join(source.required_dirs)}); move it away and run again"
        )

    expected = sha256 if (sha256 is not None or url is not None) else source.sha256
    url = url or source.url
    archive = settings.cache_dir(cache_dir) / "downloads" / source.filename
    if not (archive.is_file() and (expected is None or sha256_file(archive) == expected.lower())):
        download_file(
            url,
            archive,
            sha256=expected,
            progress=progress,
            offline_hint=source.offline_hint(url, root),
        )
    try:
        _extract_into_place(archive, source, dest, url=url, progress=progress)
    except _BadArchive as e:
        # A damaged or hostile archive is of no use on the next run either.
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{e} The archive was deleted from {archive.parent}.") from e.__cause__
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return dest


class _BadArchive(Exception):
    pass


def _extract_into_place(
    archive: Path, source: DatasetSource, dest: Path, *, url: str, progress: bool
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{source.name}-", suffix=".extracting", dir=dest.parent))
    try:
        try:
            if source.archive == "zip":
                _extract_zip(archive, tmp, progress=progress)
            else:
                _extract_tar(archive, tmp, progress=progress)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise _BadArchive(f"{archive} (from {url}) is damaged: {e}.") from e
        extracted = tmp / source.top_folder
        if not source.is_complete(extracted):
            raise _BadArchive(
                f"{archive} (from {url}) is not the {source.name} archive escnet expects: it has "
                f"no {source.top_folder}/{source.metadata} or lacks "
                f"{', '.join(source.top_folder + '/' + d for d in source.required_dirs)}."
            )
        try:
            os.rename(extracted, dest)
        except OSError:
            if source.is_complete(dest):  # another process finished first
                return
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_target(root: Path, name: str, archive: Path) -> Path:
    """Where member ``name`` goes under ``root``; refuses names that would leave ``root``."""
    pure = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in pure.parts if p not in ("", ".")]
    if pure.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise _BadArchive(
            f"{archive} has a member {name!r} that would be written outside the destination; "
            "refusing to extract it."
        )
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise _BadArchive(
            f"{archive} has a member {name!r} that would be written outside the destination; "
            "refusing to extract it."
        )
    return target


def _write_member(src: IO[bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def _extract_zip(archive: Path, root: Path, *, progress: bool) -> None:
    # Reading a member to its end checks its CRC (BadZipFile on a mismatch).
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in tqdm(
            members, desc=f"extracting {archive.name}", unit="file", disable=not progress
        ):
            target = _safe_target(root, info.filename, archive)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:
                _write_member(src, target)


def _extract_tar(archive: Path, root: Path, *, progress: bool) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tqdm(
            tf, desc=f"extracting {archive.name}", unit="file", disable=not progress
        ):
            target = _safe_target(root, member.name, archive)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                src = tf.extractfile(member)
                assert src is not None  # a regular file always has data
                with src:
                    _write_member(src, target)
            else:
                # Links and device files could point outside the destination; data sets have none.
                raise _BadArchive(
                    f"{archive} has a member {member.name!r} that is a link or special file; "
                    "refusing to extract it."
                )
        # Read the compressed stream to its end so that gzip checks its CRC and length.
        if tf.fileobj is not None:
            while tf.fileobj.read(_CHUNK):
                pass
