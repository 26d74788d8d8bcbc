"""Data: data sets and their metadata, audio I/O, official folds and splits, downloads.

* :mod:`escnet.data.audio` -- decode, mix down, resample, fit a clip to its length;
* :mod:`escnet.data.metadata` -- strict reading of a data set's metadata table;
* :mod:`escnet.data.clips` -- the clip and data set records every loader returns;
* :mod:`escnet.data.datasets` -- ESC-50, ESC-10, UrbanSound8K, and every data set by name;
* :mod:`escnet.data.folder` -- any folder of sounds, one sub-directory per class;
* :mod:`escnet.data.folds` -- official folds, grouped validation splits, leaky protocols;
* :mod:`escnet.data.download` -- resumable, checksummed downloads.

Examples:
    >>> from escnet.data import fold_split, get_dataset
    >>> ds = get_dataset("esc50")  # doctest: +SKIP
    >>> split = fold_split(ds, test_fold=1)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.data.audio import AudioConfig, load_audio, read_audio, resample
    from escnet.data.clips import Clip, Dataset
    from escnet.data.datasets import get_dataset
    from escnet.data.download import download_dataset, download_file
    from escnet.data.folds import (
        Split,
        fold_split,
        leave_one_fold_out,
        random_split,
        validation_split,
    )

_EXPORTS = {
    "AudioConfig": "escnet.data.audio",
    "load_audio": "escnet.data.audio",
    "read_audio": "escnet.data.audio",
    "resample": "escnet.data.audio",
    "Clip": "escnet.data.clips",
    "Dataset": "escnet.data.clips",
    "get_dataset": "escnet.data.datasets",
    "Split": "escnet.data.folds",
    "fold_split": "escnet.data.folds",
    "validation_split": "escnet.data.folds",
    "random_split": "escnet.data.folds",
    "leave_one_fold_out": "escnet.data.folds",
    "download_dataset": "escnet.data.download",
    "download_file": "escnet.data.download",
}
__all__ = [
    "AudioConfig",
    "Clip",
    "Dataset",
    "Split",
    "download_dataset",
    "download_file",
    "fold_split",
    "get_dataset",
    "leave_one_fold_out",
    "load_audio",
    "random_split",
    "read_audio",
    "resample",
    "validation_split",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
