"""Export: a self-contained model directory, optionally with one ONNX graph (front end inside).

* :mod:`escnet.export.onnx` -- :func:`export_model`, :func:`export_onnx`;
* :mod:`escnet.export.front_end` -- the front ends as ONNX-friendly matrix products;
* :mod:`escnet.export.ensemble` -- an ensemble's members copied in, and its one graph;
* :mod:`escnet.export.check` -- the clips a graph is checked on against PyTorch;
* :mod:`escnet.export.quantize` -- int8 graphs, refused when they cost accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from escnet._lazy import lazy_exports

if TYPE_CHECKING:
    from escnet.export.front_end import export_front_end
    from escnet.export.onnx import ExportResult, export_model, export_onnx

_EXPORTS = {
    "ExportResult": "escnet.export.onnx",
    "export_model": "escnet.export.onnx",
    "export_onnx": "escnet.export.onnx",
    "export_front_end": "escnet.export.front_end",
}
__all__ = [
    "ExportResult",
    "export_front_end",
    "export_model",
    "export_onnx",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
