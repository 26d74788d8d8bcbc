"""The probe recipe: heads on a frozen pretrained network's pooled features.

* :mod:`escnet.training.probe.views` -- which (clip, view) rows a cache holds or lacks;
* :mod:`escnet.training.probe.embeddings` -- pooled multi-level features of the frozen network;
* :mod:`escnet.training.probe.activations` -- a lower block's outputs, for partial fine-tuning;
* :mod:`escnet.training.probe.head` -- :func:`train_probe_fold`, a linear or MLP head per fold;
* :mod:`escnet.training.probe.partial` -- :func:`train_partial_fold`, the upper blocks fine-tuned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.training.probe.activations import ActivationTable, clip_activations
    from escnet.training.probe.embeddings import FeatureTable, clip_features
    from escnet.training.probe.head import load_probe_data, train_probe_fold
    from escnet.training.probe.partial import train_partial_fold

_EXPORTS = {
    "FeatureTable": "escnet.training.probe.embeddings",
    "clip_features": "escnet.training.probe.embeddings",
    "ActivationTable": "escnet.training.probe.activations",
    "clip_activations": "escnet.training.probe.activations",
    "train_probe_fold": "escnet.training.probe.head",
    "load_probe_data": "escnet.training.probe.head",
    "train_partial_fold": "escnet.training.probe.partial",
}
__all__ = [
    "ActivationTable",
    "FeatureTable",
    "clip_activations",
    "clip_features",
    "load_probe_data",
    "train_partial_fold",
    "train_probe_fold",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
