"""An archive job on a Ray cluster, with Ray Data: a dataset of file paths, then ``map_batches``
with a pool of :class:`RayLabeller` actors.

Each actor loads the model once (ONNX Runtime where the directory has ``model.onnx``, see
:func:`escnet.batch.label.open_predictor`) and labels its batches of paths with the very code of
a job on one machine (:func:`escnet.batch.label.label_files`: the same decoding, windows and
batching), so the rows are the same; the job's own process writes them into the table as the
batches arrive. Each actor decodes in a worker process of its own (:class:`escnet.batch.workers.
DecoderPool`), so that a file that hangs or crashes the decoder is skipped with its reason, as on
one machine; an actor that dies all the same is restarted by Ray Data, which retries its batch
(its defaults for actor pools).

The model directory and the audio files must be readable under the same paths on every node
(a shared file system), as for any Ray job that reads files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from escnet.batch.engine import Decoder, decode_file
from escnet.batch.files import label_files, open_predictor, result_row
from escnet.batch.workers import DEFAULT_TIME_LIMIT, DecoderPool
from escnet.errors import ParameterError

__all__ = ["INSTALL_HINT", "RayLabeller", "import_ray", "run_on_ray"]

#: How to get Ray, for the error of ``--ray`` without it.
INSTALL_HINT = "pip install 'escnet[distributed]' (or: pip install 'ray[data]')"

#: Files per actor call: enough to batch the windows of short files, few enough that a retried
#: call repeats little.
FILES_PER_CALL = 16


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ParameterError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ParameterError(
            f"--ray needs Ray, an optional extra that is not installed: {INSTALL_HINT}"
        ) from None
    return ray


class RayLabeller:
    """A Ray Data actor: the model loaded once, then batches of paths labelled into rows.

    Args:
        model: the model directory (the same path on every node).
        backend, options: as :func:`escnet.batch.label.open_predictor`.
        aggregate: as :meth:`escnet.inference.Predictor.predict_file`.
        top_k: labels per row.
        decode_timeout, decoder: as :func:`escnet.batch.label`.
    """

    def __init__(
        self,
        model: str,
        backend: str,
        options: dict[str, Any],
        aggregate: str,
        top_k: int,
        decode_timeout: float = DEFAULT_TIME_LIMIT,
        decoder: Decoder = decode_file,
    ) -> None:
        # One actor per CPU: one thread each, or the actors of a node contend for its cores.
        options = {**options, "threads": options.get("threads") or 1}
        self.predictor = open_predictor(model, backend, **options)
        self.window, self.hop = options.get("window"), options.get("hop")
        # A decoding process of its own, started once: a file that hangs or crashes the decoder
        # costs that file, as on one machine, instead of the actor (which Ray would retry on
        # the same file again and again).
        self.pool = DecoderPool(
            1, self.predictor.sample_rate, decoder=decoder, time_limit=decode_timeout
        )
        self.aggregate, self.top_k = aggregate, top_k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from escnet.batch.table import cell, prediction_columns

        paths = [str(p) for p in batch["file"]]
        results = label_files(
            self.predictor, paths, window=self.window, hop=self.hop, aggregate=self.aggregate,
            pool=self.pool,
        )  # fmt: skip
        rows = [result_row(r, self.top_k) for r in results]
        out = {
            c: np.array([cell(r.get(c)) for r in rows], dtype=object)
            for c in prediction_columns(self.top_k)
        }
        out["seconds"] = np.array([r.seconds for r in results], dtype=np.float64)
        return out


def run_on_ray(
    paths: list[str],
    model: Any,
    *,
    address: str,
    actors: int | None,
    backend: str,
    options: dict[str, Any],
    aggregate: str,
    top_k: int,
    decode_timeout: float = DEFAULT_TIME_LIMIT,
    decoder: Decoder = decode_file,
) -> Iterator[tuple[dict[str, Any], float]]:
    """``(row, seconds of audio)`` of every path, labelled on the cluster at ``address``
    (``"local"``: Ray's own choice), as the batches come back.

    Raises:
        ParameterError: Ray is not installed, or ``model`` is not a directory path.
    """
    ray = import_ray()
    if not isinstance(model, str | os.PathLike):
        raise ParameterError("ray: model must be a directory path that every node can read")
    if not paths:
        return
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    # The job has its own progress bar and summary: Ray Data's would interleave with them.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    size = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    dataset = ray.data.from_items([{"file": p} for p in paths])
    labelled = dataset.map_batches(
        RayLabeller,
        fn_constructor_kwargs={
            "model": os.fspath(model), "backend": backend, "options": options,
            "aggregate": aggregate, "top_k": top_k, "decode_timeout": decode_timeout,
            "decoder": decoder,
        },
        batch_size=FILES_PER_CALL,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
    )  # fmt: skip
    for batch in labelled.iter_batches(batch_size=None, batch_format="numpy"):
        seconds = batch.pop("seconds")
        columns = list(batch)
        for i, s in enumerate(seconds):
            yield {c: str(batch[c][i]) for c in columns}, float(s)
