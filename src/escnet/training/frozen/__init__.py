"""The methods that keep the pretrained ``mn04_as`` (partly) frozen: ``probe`` (a head on its
pooled features) and ``partial`` (its upper blocks trained on cached activations).

* :mod:`escnet.training.frozen.views` -- which (clip, view) rows a cache holds or lacks;
* :mod:`escnet.training.frozen.embeddings` -- pooled multi-level features of the frozen network;
* :mod:`escnet.training.frozen.activations` -- a lower block's outputs, for partial fine-tuning;
* :mod:`escnet.training.frozen.probe` -- :func:`train_probe_fold`, a linear or MLP head per fold;
* :mod:`escnet.training.frozen.partial` -- :func:`train_partial_fold`, the upper blocks fine-tuned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.training.frozen.activations import ActivationTable, clip_activations
    from escnet.training.frozen.embeddings import FeatureTable, clip_features
    from escnet.training.frozen.partial import train_partial_fold
    from escnet.training.frozen.probe import load_probe_data, train_probe_fold

_EXPORTS = {
    "FeatureTable": "escnet.training.frozen.embeddings",
    "clip_features": "escnet.training.frozen.embeddings",
    "ActivationTable": "escnet.training.frozen.activations",
    "clip_activations": "escnet.training.frozen.activations",
    "train_probe_fold": "escnet.training.frozen.probe",
    "load_probe_data": "escnet.training.frozen.probe",
    "train_partial_fold": "escnet.training.frozen.partial",
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
