"""Finding, verifying and downloading pretrained weights (no internet: a local HTTP server)."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from escnet.errors import WeightsError
from escnet.models.weights import MN04_AS, WeightSpec, fetch_weights, locate_weights

SHARED_WEIGHTS = Path(__file__).parents[1] / ".." / "shared" / "weights"

DATA = b"pretend these are weights" * 100


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(directory, base URL): files put in the directory are served over HTTP."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _spec(url: str = "http://127.0.0.1:9/w.pt", data: bytes = DATA) -> WeightSpec:
    return WeightSpec(
        filename="w.pt",
        url=url,
        sha256=hashlib.sha256(data).hexdigest(),
        source="test weights",
        license="MIT",
    )


def test_found_in_nested_sub_folder(tmp_path: Path) -> None:
    nested = tmp_path / "weights" / "some" / "model"
    nested.mkdir(parents=True)
    (nested / "w.pt").write_bytes(DATA)
    path = fetch_weights(_spec(), weights_dir=tmp_path / "weights", cache_dir=tmp_path / "cache")
    assert path == nested / "w.pt"
    assert not (tmp_path / "cache").exists()


def test_shallowest_copy_wins(tmp_path: Path) -> None:
    (tmp_path / "weights" / "a" / "b").mkdir(parents=True)
    (tmp_path / "weights" / "a" / "b" / "w.pt").write_bytes(b"deeper, not checked")
    (tmp_path / "weights" / "z").mkdir()
    (tmp_path / "weights" / "z" / "w.pt").write_bytes(DATA)
    path = fetch_weights(_spec(), weights_dir=tmp_path / "weights", cache_dir=tmp_path / "cache")
    assert path == tmp_path / "weights" / "z" / "w.pt"


def test_found_in_cache_when_not_in_weights_dir(tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "weights" / "w.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(DATA)
    path = fetch_weights(_spec(), weights_dir=tmp_path / "nothing", cache_dir=tmp_path / "cache")
    assert path == cached


def test_wrong_checksum_names_file_digests_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "weights" / "sub" / "w.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"corrupt")
    spec = _spec()
    with pytest.raises(WeightsError) as info:
        fetch_weights(spec, weights_dir=tmp_path / "weights", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert str(bad) in message
    assert spec.sha256 is not None and spec.sha256 in message
    assert hashlib.sha256(b"corrupt").hexdigest() in message
    assert "Delete it" in message and spec.url in message


def test_downloaded_into_cache_when_missing(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    (root / "good.pt").write_bytes(DATA)
    spec = _spec(url=f"{base}/good.pt")
    cache = tmp_path / "cache"
    path = fetch_weights(spec, weights_dir=tmp_path / "weights", cache_dir=cache, progress=False)
    assert path == cache / "weights" / "w.pt"
    assert path.read_bytes() == DATA
    # The second call finds the cached copy; the server is gone.
    (root / "good.pt").unlink()
    assert fetch_weights(spec, weights_dir=tmp_path / "weights", cache_dir=cache) == path


def test_download_with_wrong_checksum_keeps_nothing(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    (root / "bad.pt").write_bytes(b"something else")
    spec = _spec(url=f"{base}/bad.pt")
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError) as info:
        fetch_weights(spec, weights_dir=tmp_path / "weights", cache_dir=cache, progress=False)
    message = str(info.value)
    assert "w.pt" in message and spec.url in message
    assert hashlib.sha256(b"something else").hexdigest() in message
    assert list((cache / "weights").iterdir()) == []


def test_offline_is_one_line_naming_file_url_and_weights_dir(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = _spec(url=f"http://127.0.0.1:{port}/w.pt")
    weights = tmp_path / "weights"
    with pytest.raises(WeightsError) as info:
        fetch_weights(spec, weights_dir=weights, cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "w.pt" in message and spec.url in message
    assert str(weights) in message and "ESCNET_WEIGHTS_DIR" in message


def test_mn04_spec() -> None:
    assert MN04_AS.filename == "mn04_as_mAP_432.pt"
    assert MN04_AS.url.endswith("/v0.0.1/mn04_as_mAP_432.pt")
    assert MN04_AS.license == "MIT"


@pytest.mark.shared
def test_mn04_found_in_shared_sub_folder(tmp_path: Path) -> None:
    if not SHARED_WEIGHTS.is_dir():
        pytest.skip(f"{SHARED_WEIGHTS} is absent")
    path = fetch_weights(MN04_AS, weights_dir=SHARED_WEIGHTS, cache_dir=tmp_path / "cache")
    assert path.name == MN04_AS.filename
    assert path.parent.name == "efficientat"
    assert not (tmp_path / "cache").exists()


def test_locate_reports_the_copy_fetch_would_use_without_reading_it(tmp_path: Path) -> None:
    spec = _spec()
    where = {"weights_dir": tmp_path / "weights", "cache_dir": tmp_path / "cache"}
    assert locate_weights(spec, **where) is None
    cached = tmp_path / "cache" / "weights" / "w.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not checked here")  # fetch_weights would reject it; locate only finds
    assert locate_weights(spec, **where) == cached
    (tmp_path / "weights" / "sub").mkdir(parents=True)
    (tmp_path / "weights" / "sub" / "w.pt").write_bytes(DATA)
    assert locate_weights(spec, **where) == tmp_path / "weights" / "sub" / "w.pt"


def test_registry_says_which_pretrained_weights_this_machine_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escnet.models import get_model_info

    monkeypatch.setenv("ESCNET_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("ESCNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    mn04, resnet = get_model_info("mn04_as"), get_model_info("resnet18")
    missing = mn04.missing_weights()
    assert missing is not None and MN04_AS.filename in missing and MN04_AS.url in missing
    missing = resnet.missing_weights()
    assert missing is not None and "resnet18-f37072fd.pth" in missing
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in missing
    assert get_model_info("cnn7").missing_weights() is None  # trained from scratch: needs none
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / MN04_AS.filename).write_bytes(b"")
    assert mn04.missing_weights() is None
