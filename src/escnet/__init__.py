"""escnet: environmental sound classification with spectral images and meaningful augmentation.

The data flow, one module per stage::

    datasets -> folds -> augment.audio (NAA) -> spectrogram -> augment.image (TAA) -> models
    -> train / metrics -> report; a trained model -> inference (predict) / export / serve

``escnet.load(path)`` opens a trained model for prediction (:func:`escnet.inference.load`).
Importing escnet itself stays light (no torch): ``load`` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from escnet.errors import AudioError, DatasetError, DownloadError, EscnetError

if TYPE_CHECKING:
    from escnet.inference import load

__version__ = "0.1.0"

__all__ = ["AudioError", "DatasetError", "DownloadError", "EscnetError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # PEP 562: ``escnet.load`` imports the inference stage only when it is first asked for.
    if name == "load":
        from escnet.inference import load

        return load
    raise AttributeError(f"module 'escnet' has no attribute {name!r}")
