"""Downloads against a local HTTP server: resume, verification, offline errors, data set install."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from escnet.data.download import (
    DATASETS,
    ChecksumMismatchError,
    download_dataset,
    download_file,
    sha256_file,
)
from escnet.errors import DownloadError

# ------------------------------------------------------------------------------ local server


@dataclass
class Server:
    """A tiny HTTP server on 127.0.0.1 serving ``files`` (URL path -> bytes)."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    #: (path, Range header or None) of every request, in order.
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    #: bytes of body sent, per request.
    sent: list[int] = field(default_factory=list)
    honour_range: bool = True
    #: send half of the next body, then close the connection.
    truncate_next: bool = False

    def url(self, path: str) -> str:
        return self.base + path


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            body = state.files.get(self.path)
            if body is None:
                state.sent.append(0)
                self.send_error(404)
                return
            start = 0
            if range_header and state.honour_range:
                m = re.fullmatch(r"bytes=(\d+)-", range_header)
                assert m is not None
                start = int(m.group(1))
                if start >= len(body):
                    state.sent.append(0)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if state.truncate_next:
                state.truncate_next = False
                payload = payload[: len(payload) // 2]
            # Recorded before writing: the client can finish (and the test assert) as soon as
            # the last byte arrives, before this thread would get to a line after the write.
            state.sent.append(len(payload))
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def _running_server() -> Iterator[Server]:
    # One server per module: stopping one takes up to its 0.5 s poll interval.
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def server(_running_server: Server) -> Server:
    """The module's server with no files, no recorded requests and default behaviour."""
    fresh = Server(base=_running_server.base)
    _running_server.__dict__.update(fresh.__dict__)
    return _running_server


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def _payload(n: int = 64 * 1024) -> bytes:
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- download_file


def test_download_verifies_and_renames(server: Server, tmp_path: Path) -> None:
    data = _payload()
    server.files["/f.bin"] = data
    dest = tmp_path / "sub" / "f.bin"
    out = download_file(
        server.url("/f.bin"), dest, sha256=_sha(data), size=len(data), progress=False
    )
    assert out == dest
    assert dest.read_bytes() == data
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert server.requests == [("/f.bin", None)]


def test_resume_sends_range_and_appends(server: Server, tmp_path: Path) -> None:
    data = _payload()
    half = len(data) // 2
    server.files["/f.bin"] = data
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(data[:half])
    download_file(server.url("/f.bin"), dest, sha256=_sha(data), size=len(data), progress=False)
    assert server.requests == [("/f.bin", f"bytes={half}-")]
    assert server.sent == [len(data) - half]
    assert dest.read_bytes() == data
    assert not (tmp_path / "f.bin.part").exists()


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    data = _payload()
    half = len(data) // 2
    server.files["/f.bin"] = data
    server.honour_range = False
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(data[:half])
    download_file(server.url("/f.bin"), dest, sha256=_sha(data), progress=False)
    assert server.requests == [("/f.bin", f"bytes={half}-")]
    assert dest.read_bytes() == data  # not the first half twice


def test_broken_transfer_is_kept_and_resumed(server: Server, tmp_path: Path) -> None:
    data = _payload()
    server.files["/f.bin"] = data
    server.truncate_next = True
    dest = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    with pytest.raises(DownloadError, match="resumed next time"):
        download_file(server.url("/f.bin"), dest, sha256=_sha(data), progress=False)
    assert not dest.exists()
    assert part.read_bytes() == data[: len(data) // 2]

    download_file(server.url("/f.bin"), dest, sha256=_sha(data), progress=False)
    assert server.requests[-1] == ("/f.bin", f"bytes={len(data) // 2}-")
    assert dest.read_bytes() == data


def test_complete_part_file_is_accepted_after_416(server: Server, tmp_path: Path) -> None:
    data = _payload(1000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    dest = download_file(
        server.url("/f.bin"), tmp_path / "f.bin", sha256=_sha(data), progress=False
    )
    assert server.requests == [("/f.bin", "bytes=1000-")]
    assert dest.read_bytes() == data


def test_wrong_sha256_deletes_part_and_names_both_digests(server: Server, tmp_path: Path) -> None:
    data = _payload()
    server.files["/f.bin"] = data
    dest = tmp_path / "f.bin"
    wrong = "0" * 64
    url = server.url("/f.bin")
    with pytest.raises(ChecksumMismatchError) as info:
        download_file(url, dest, sha256=wrong, progress=False)
    message = str(info.value)
    assert url in message and wrong in message and _sha(data) in message
    assert not dest.exists()
    assert not (tmp_path / "f.bin.part").exists()


def test_wrong_size_deletes_part(server: Server, tmp_path: Path) -> None:
    data = _payload(1000)
    server.files["/f.bin"] = data
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=r"expected 999 bytes, got 1000 bytes"):
        download_file(server.url("/f.bin"), dest, size=999, progress=False)
    assert not dest.exists()
    assert not (tmp_path / "f.bin.part").exists()


def test_wrong_sha256_leaves_existing_dest_alone(server: Server, tmp_path: Path) -> None:
    server.files["/f.bin"] = b"new"
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    # The checksum's own error, not any download error (a connection failure would be one).
    with pytest.raises(ChecksumMismatchError, match="sha256 mismatch") as info:
        download_file(server.url("/f.bin"), dest, sha256="0" * 64, progress=False)
    assert info.value.quantity == "sha256" and info.value.expected == "0" * 64
    assert dest.read_bytes() == b"old"


def test_offline_is_one_line_with_url_and_hint(closed_port_url: str, tmp_path: Path) -> None:
    refused = rf"^cannot download {re.escape(closed_port_url)}: "  # the network's error, no other
    with pytest.raises(DownloadError, match=refused) as info:
        download_file(
            closed_port_url,
            tmp_path / "f.bin",
            progress=False,
            timeout=5,
            offline_hint="put a copy in /somewhere",
        )
    message = str(info.value)
    assert closed_port_url in message
    assert message.endswith("put a copy in /somewhere")
    assert "\n" not in message
    assert not (tmp_path / "f.bin").exists()


def test_http_error_is_a_download_error(server: Server, tmp_path: Path) -> None:
    url = server.url("/missing.bin")
    with pytest.raises(DownloadError, match=r"HTTP 404") as info:
        download_file(url, tmp_path / "f.bin", progress=False)
    assert url in str(info.value)


# ------------------------------------------------------------------------------- data sets


def _wav_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, 441).astype(np.float32)
    sf.write(buf, samples, 44100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


ESC50_CSV = b"filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,True,1,A\n"
US8K_CSV = b"slice_file_name,fsID,start,end,salience,fold,classID,class\n"


def _esc50_zip(extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ESC-50-master/", b"")
        zf.writestr("ESC-50-master/meta/esc50.csv", ESC50_CSV)
        zf.writestr("ESC-50-master/audio/1-1-A-0.wav", _wav_bytes(0))
        zf.writestr("ESC-50-master/audio/1-2-A-1.wav", _wav_bytes(1))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _us8k_tar(extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        _add(tf, "UrbanSound8K/metadata/UrbanSound8K.csv", US8K_CSV)
        for fold in range(1, 11):
            _add(tf, f"UrbanSound8K/audio/fold{fold}/{fold}-0-0-0.wav", _wav_bytes(fold))
        for info in extra or []:
            tf.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buf.getvalue()


def _leftovers(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []


def test_esc50_download_extract_rename(server: Server, tmp_path: Path) -> None:
    archive = _esc50_zip()
    server.files["/esc50.zip"] = archive
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    dest = download_dataset(
        "esc50",
        data_dir,
        progress=False,
        url=server.url("/esc50.zip"),
        sha256=_sha(archive),
        cache_dir=cache,
    )
    assert dest == data_dir / "esc50"
    assert (dest / "meta" / "esc50.csv").read_bytes() == ESC50_CSV
    samples, rate = sf.read(dest / "audio" / "1-1-A-0.wav")
    assert rate == 44100 and len(samples) == 441
    assert _leftovers(data_dir) == ["esc50"]  # no temporary extraction directory left
    assert not list((cache / "downloads").iterdir())  # archive removed after extraction


def test_us8k_download_extract_rename_keeps_archive(server: Server, tmp_path: Path) -> None:
    archive = _us8k_tar()
    server.files["/us8k.tar.gz"] = archive
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    dest = download_dataset(
        "us8k",
        data_dir,
        progress=False,
        url=server.url("/us8k.tar.gz"),
        cache_dir=cache,
        keep_archive=True,
    )
    assert dest == data_dir / "us8k"
    assert (dest / "metadata" / "UrbanSound8K.csv").read_bytes() == US8K_CSV
    assert sorted(p.name for p in (dest / "audio").iterdir()) == sorted(
        f"fold{i}" for i in range(1, 11)
    )
    assert _leftovers(data_dir) == ["us8k"]
    kept = cache / "downloads" / DATASETS["us8k"].filename
    assert sha256_file(kept) == _sha(archive)


def test_present_dataset_is_not_downloaded_again(
    server: Server, closed_port_url: str, tmp_path: Path
) -> None:
    server.files["/esc50.zip"] = _esc50_zip()
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    download_dataset(
        "esc50", data_dir, progress=False, url=server.url("/esc50.zip"), cache_dir=cache
    )
    assert len(server.requests) == 1
    # Even an unreachable URL does not matter now.
    dest = download_dataset("esc50", data_dir, progress=False, url=closed_port_url, cache_dir=cache)
    assert dest == data_dir / "esc50"
    assert len(server.requests) == 1


def test_incomplete_destination_is_not_overwritten(server: Server, tmp_path: Path) -> None:
    server.files["/esc50.zip"] = _esc50_zip()
    dest = tmp_path / "data" / "esc50"
    (dest / "audio").mkdir(parents=True)
    with pytest.raises(DownloadError, match="not a complete esc50 data set"):
        download_dataset(
            "esc50",
            tmp_path / "data",
            progress=False,
            url=server.url("/esc50.zip"),
            cache_dir=tmp_path / "cache",
        )
    assert server.requests == []
    assert [p.name for p in dest.iterdir()] == ["audio"]


def test_dataset_wrong_sha256_installs_nothing(server: Server, tmp_path: Path) -> None:
    server.files["/esc50.zip"] = _esc50_zip()
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_dataset(
            "esc50",
            data_dir,
            progress=False,
            url=server.url("/esc50.zip"),
            sha256="f" * 64,
            cache_dir=cache,
        )
    assert not (data_dir / "esc50").exists()
    assert not list((cache / "downloads").iterdir())


def test_dataset_offline_names_url_and_data_dir_env(closed_port_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    refused = rf"^cannot download {re.escape(closed_port_url)}: "  # the network's error, no other
    with pytest.raises(DownloadError, match=refused) as info:
        download_dataset(
            "esc50", data_dir, progress=False, url=closed_port_url, cache_dir=tmp_path / "cache"
        )
    message = str(info.value)
    assert closed_port_url in message
    assert "ESCNET_DATA_DIR" in message
    assert str(data_dir / "esc50" / "meta" / "esc50.csv") in message
    assert "\n" not in message
    assert not (data_dir / "esc50").exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "ESC-50-master/../../evil.txt", "/abs/evil.txt"])
def test_zip_path_traversal_is_refused(server: Server, tmp_path: Path, evil: str) -> None:
    server.files["/esc50.zip"] = _esc50_zip({evil: b"pwned"})
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    with pytest.raises(DownloadError, match="outside the destination"):
        download_dataset(
            "esc50", data_dir, progress=False, url=server.url("/esc50.zip"), cache_dir=cache
        )
    assert not (tmp_path / "evil.txt").exists()
    assert _leftovers(data_dir) == []
    assert not list((cache / "downloads").iterdir())  # the hostile archive is not kept


def test_tar_path_traversal_and_links_are_refused(server: Server, tmp_path: Path) -> None:
    evil = tarfile.TarInfo("UrbanSound8K/../../evil.txt")
    evil.size = 5
    server.files["/dotdot.tar.gz"] = _us8k_tar([evil])
    link = tarfile.TarInfo("UrbanSound8K/audio/fold1/link.wav")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    server.files["/link.tar.gz"] = _us8k_tar([link])
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    for path, reason in [("/dotdot.tar.gz", "outside the destination"), ("/link.tar.gz", "link")]:
        with pytest.raises(DownloadError, match=reason):
            download_dataset(
                "us8k", data_dir, progress=False, url=server.url(path), cache_dir=cache
            )
        assert _leftovers(data_dir) == []
    assert not (tmp_path / "evil.txt").exists()


def test_archive_without_metadata_is_refused(server: Server, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("something-else/readme.txt", b"hi")
    server.files["/other.zip"] = buf.getvalue()
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"ESC-50-master/meta/esc50.csv"):
        download_dataset(
            "esc50",
            data_dir,
            progress=False,
            url=server.url("/other.zip"),
            cache_dir=tmp_path / "cache",
        )
    assert _leftovers(data_dir) == []


def test_damaged_archive_is_reported_and_deleted(server: Server, tmp_path: Path) -> None:
    server.files["/broken.tar.gz"] = _us8k_tar()[:-200]
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="damaged"):
        download_dataset(
            "us8k",
            tmp_path / "data",
            progress=False,
            url=server.url("/broken.tar.gz"),
            cache_dir=cache,
        )
    assert _leftovers(tmp_path / "data") == []
    assert not list((cache / "downloads").iterdir())


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="esc50, us8k"):
        download_dataset("esc10", progress=False)


def test_sources_table() -> None:
    esc50, us8k = DATASETS["esc50"], DATASETS["us8k"]
    assert esc50.url == "https://github.com/karoldvl/ESC-50/archive/master.zip"
    assert esc50.top_folder == "ESC-50-master" and esc50.archive == "zip"
    assert us8k.url == "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz"
    assert us8k.top_folder == "UrbanSound8K" and us8k.archive == "tar.gz"
    assert "Piczak" in esc50.attribution and "Salamon" in us8k.attribution
    assert esc50.license == us8k.license == "CC BY-NC 3.0"
