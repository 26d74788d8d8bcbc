"""Models: the registry and every model escnet can train, by name.

Importing this package registers them all: the paper's own CNNs (:mod:`escnet.models.cnn`) and
the pretrained ones for transfer learning (:mod:`escnet.models.transfer`) and the probe of the
frozen AudioSet model (:mod:`escnet.models.probe`). Use
:func:`create_model`; each model carries its front end as ``model.model_info.front_end``.
"""

from escnet.models import cnn, probe, transfer  # noqa: F401  (registers the models)
from escnet.models.registry import (
    ModelInfo,
    SpectralClassifier,
    count_parameters,
    create_model,
    describe_models,
    get_model_info,
    input_shape,
    list_models,
    register_model,
)

__all__ = [
    "ModelInfo",
    "SpectralClassifier",
    "count_parameters",
    "create_model",
    "describe_models",
    "get_model_info",
    "input_shape",
    "list_models",
    "register_model",
]
