"""The methods that keep the pretrained ``mn04_as`` (partly) frozen: ``probe`` (a head on its
pooled features) and ``partial`` (its upper blocks trained on cached activations), both on the
frozen network's outputs that :mod:`escnet.embeddings` caches.

* :mod:`escnet.training.frozen.probe` -- a linear or MLP head per fold;
* :mod:`escnet.training.frozen.partial` -- the upper blocks fine-tuned;
* :mod:`escnet.training.frozen.fold` -- :func:`train_frozen_fold`, one fold of either, its
  files written the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.training.frozen.fold import train_frozen_fold
    from escnet.training.frozen.probe import load_probe_data

_EXPORTS = {
    "train_frozen_fold": "escnet.training.frozen.fold",
    "load_probe_data": "escnet.training.frozen.probe",
}
__all__ = ["load_probe_data", "train_frozen_fold"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
