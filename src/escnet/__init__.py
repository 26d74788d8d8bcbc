"""escnet: environmental sound classification with spectral images and meaningful augmentation.

The data flow, one module per stage::

    datasets -> folds -> augment.audio (NAA) -> spectrogram -> augment.image (TAA) -> models
    -> train / metrics -> report
"""

from escnet.errors import AudioError, DatasetError, DownloadError, EscnetError

__version__ = "0.1.0"

__all__ = ["AudioError", "DatasetError", "DownloadError", "EscnetError", "__version__"]
