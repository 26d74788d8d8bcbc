"""Archives: label every file of a directory tree or a list, resumably, on one machine or a Ray
cluster.

* :mod:`escnet.batch.source`: the job's files, streamed (:func:`iter_files`).
* :mod:`escnet.batch.engine`: a file's decoding as events (:func:`decode_file`) and the batcher
  that classifies windows of many files per model call (:class:`WindowBatcher`).
* :mod:`escnet.batch.workers`: decoding in worker processes, with a time limit and restarts.
* :mod:`escnet.batch.table`: the output table, appended as files finish, resumable.
* :mod:`escnet.batch.label`: :func:`label`, the job; ``escnet predict --output`` runs it.
* :mod:`escnet.batch.events`: :func:`detect`, the same job finding sound events; ``escnet
  detect --workers/--files-from/--resume`` runs it.
* :mod:`escnet.batch.ray_job`: the same job on a Ray cluster (``escnet[distributed]``).

Nothing here imports torch unless the model runs with the torch backend, or Ray unless asked;
:func:`detect` (and with it the events stage) is imported when first asked for, so that a
decoding worker, which imports this package, starts light.
"""

from escnet._lazy import lazy_exports
from escnet.batch.engine import FileResult, WindowBatcher, decode_file
from escnet.batch.files import label_files, open_predictor
from escnet.batch.label import LabelSummary, label
from escnet.batch.source import count_files, iter_files
from escnet.batch.table import OutputError, Table, prediction_columns, prediction_row
from escnet.batch.workers import DecoderPool, InlineDecoder

__all__ = [
    "DecoderPool",
    "FileResult",
    "InlineDecoder",
    "LabelSummary",
    "OutputError",
    "Table",
    "WindowBatcher",
    "count_files",
    "decode_file",
    "detect",
    "iter_files",
    "label",
    "label_files",
    "open_predictor",
    "prediction_columns",
    "prediction_row",
]

__getattr__, _ = lazy_exports(__name__, {"detect": "escnet.batch.events"})
