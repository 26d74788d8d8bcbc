"""onnxruntime, imported with its telemetry turned off.

onnxruntime's Python package keeps a telemetry store of its own: on import it writes a device id
and an SQLite database under the user's cache (``~/.cache/Microsoft/DeveloperTools/.onnxruntime``)
and holds the database open for as long as the process runs (a server: for days).
``onnxruntime.disable_telemetry_events()`` does not stop that (checked with onnxruntime 1.32: the
files are written on import, before it can be called); the environment variable
``ORT_DISABLE_TELEMETRY=1``, read at import, does. escnet sets it unless the user set it, before
its first import of onnxruntime, and turns telemetry events off as well. Torch-free.
"""

from __future__ import annotations

import os
from types import ModuleType

from escnet.errors import EscnetError

__all__ = ["TELEMETRY_ENV", "import_onnxruntime"]

#: The variable onnxruntime reads at import to leave its telemetry store alone.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


def import_onnxruntime() -> ModuleType:
    """``onnxruntime`` with telemetry off (the module docstring says how and why).

    Raises:
        EscnetError: onnxruntime is not installed (the fix: ``pip install 'escnet[onnx]'``).
    """
    os.environ.setdefault(TELEMETRY_ENV, "1")
    try:
        import onnxruntime as ort
    except ImportError:
        raise EscnetError("onnxruntime is not installed: pip install 'escnet[onnx]'") from None
    if os.environ[TELEMETRY_ENV] == "1":
        ort.disable_telemetry_events()
    return ort
