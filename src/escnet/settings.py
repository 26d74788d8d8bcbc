"""Where escnet looks for data sets and weights and where it writes caches.

Each location comes from, in order: an explicit argument, an environment variable, a default.
Nothing is ever written beside a data set or a weights file: those directories may be read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "ESCNET_DATA_DIR"
WEIGHTS_DIR_ENV = "ESCNET_WEIGHTS_DIR"
CACHE_DIR_ENV = "ESCNET_CACHE_DIR"


def _from_env(explicit: str | os.PathLike[str] | None, env: str, default: Path) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    return default


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Directory that holds one sub-directory per data set (``esc50/``, ``us8k/``, ...).

    Default: ``<user data dir>/escnet/datasets``; override with ``$ESCNET_DATA_DIR``.
    """
    return _from_env(
        explicit, DATA_DIR_ENV, Path(platformdirs.user_data_dir("escnet")) / "datasets"
    )


def weights_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Directory searched (with its sub-directories) for pretrained weights before downloading.

    Default: ``<user data dir>/escnet/weights``; override with ``$ESCNET_WEIGHTS_DIR``.
    """
    return _from_env(
        explicit, WEIGHTS_DIR_ENV, Path(platformdirs.user_data_dir("escnet")) / "weights"
    )


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Directory for computed features, augmented variants and downloaded weights.

    Default: the user's cache directory (``~/.cache/escnet`` on Linux); override with
    ``$ESCNET_CACHE_DIR``.
    """
    return _from_env(explicit, CACHE_DIR_ENV, Path(platformdirs.user_cache_dir("escnet")))
