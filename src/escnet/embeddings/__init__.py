"""Spectral image -> model outputs: any model run over a stack of images, and the frozen,
pretrained ``mn04_as``'s outputs of views of clips, cached per (clip, view), which probes and
partial fine-tuning (:mod:`escnet.training.frozen`) read instead of running the network.

* :mod:`escnet.embeddings.views` -- the one cache both tables use: keys, missing entries,
  images, the clip-major table (:func:`~escnet.embeddings.views.cached_views`);
* :mod:`escnet.embeddings.pooled` -- every block pooled by mean and max, then the embedding
  (:func:`clip_features`);
* :mod:`escnet.embeddings.activations` -- a lower block's outputs, float16
  (:func:`clip_activations`);
* :mod:`escnet.embeddings.outputs` -- any model run over a stack of images in batches: its
  logits (:func:`predict_logits`) or what enters its output layer (:func:`head_inputs`, for
  LP-FT).

Examples:
    >>> from escnet.data.datasets import get_dataset
    >>> from escnet.embeddings import clip_features
    >>> table = clip_features(get_dataset("esc50"), range(4))  # doctest: +SKIP
    >>> table.features.shape  # doctest: +SKIP
    (4, 2304)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.embeddings.activations import ActivationTable, clip_activations
    from escnet.embeddings.outputs import head_inputs, predict_logits
    from escnet.embeddings.pooled import FeatureTable, clip_features
    from escnet.embeddings.views import ViewRows, cached_views

_EXPORTS = {
    "ActivationTable": "escnet.embeddings.activations",
    "clip_activations": "escnet.embeddings.activations",
    "FeatureTable": "escnet.embeddings.pooled",
    "clip_features": "escnet.embeddings.pooled",
    "ViewRows": "escnet.embeddings.views",
    "head_inputs": "escnet.embeddings.outputs",
    "predict_logits": "escnet.embeddings.outputs",
    "cached_views": "escnet.embeddings.views",
}
__all__ = [
    "ActivationTable",
    "FeatureTable",
    "ViewRows",
    "cached_views",
    "clip_activations",
    "clip_features",
    "head_inputs",
    "predict_logits",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
