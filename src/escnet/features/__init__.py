"""Spectral images: log-mel front ends, cached feature sets, the offline NAA expansion that
feeds them, and pictures of them.

* :mod:`escnet.features.spectrogram` -- :class:`LogMel`, batched and equal to librosa's;
* :mod:`escnet.features.prepare` -- every clip's image of a data set, computed once and cached;
* :mod:`escnet.features.offline_naa` -- a training split's clips with their NAA variants, cached;
* :mod:`escnet.features.plotting` / :mod:`escnet.features.gallery` -- figures.

Examples:
    >>> import torch
    >>> from escnet.features import LogMel, LogMelConfig
    >>> LogMel(LogMelConfig())(torch.zeros(1, 22050 * 5)).shape
    torch.Size([1, 1, 128, 216])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.features.gallery import augment_gallery
    from escnet.features.offline_naa import ExpandedSet, expand_training_set
    from escnet.features.plotting import save_spectrogram_png
    from escnet.features.prepare import FeatureSet, prepare_features
    from escnet.features.spectrogram import FrontEndConfig, LogMel, LogMelConfig, log_mel

_EXPORTS = {
    "FrontEndConfig": "escnet.features.spectrogram",
    "LogMel": "escnet.features.spectrogram",
    "LogMelConfig": "escnet.features.spectrogram",
    "log_mel": "escnet.features.spectrogram",
    "FeatureSet": "escnet.features.prepare",
    "prepare_features": "escnet.features.prepare",
    "ExpandedSet": "escnet.features.offline_naa",
    "expand_training_set": "escnet.features.offline_naa",
    "save_spectrogram_png": "escnet.features.plotting",
    "augment_gallery": "escnet.features.gallery",
}
__all__ = [
    "ExpandedSet",
    "FeatureSet",
    "FrontEndConfig",
    "LogMel",
    "LogMelConfig",
    "augment_gallery",
    "expand_training_set",
    "log_mel",
    "prepare_features",
    "save_spectrogram_png",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
