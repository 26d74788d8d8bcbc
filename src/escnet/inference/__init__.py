"""Prediction: a trained model labels recordings of any length, with PyTorch or ONNX Runtime.

* :mod:`escnet.inference.stream`: block-wise decoding and resampling, windows.
* :mod:`escnet.inference.predictor`: :class:`Predictor` and :func:`load` (``escnet.load``).
* :mod:`escnet.inference.results`: :class:`Prediction`, what a prediction returns.
* :mod:`escnet.inference.limits`: the bounds on windows, hops, batches and the service.
* :mod:`escnet.inference.torch_backend` / :mod:`escnet.inference.onnx_backend`: the two ways to
  run the model; only the first imports torch.
"""

from escnet.inference.backend import Backend, ModelSpec
from escnet.inference.predictor import BACKENDS, Predictor, StreamLabeller, load
from escnet.inference.results import Prediction, WindowPrediction

__all__ = [
    "BACKENDS",
    "Backend",
    "ModelSpec",
    "Prediction",
    "Predictor",
    "StreamLabeller",
    "WindowPrediction",
    "load",
]
