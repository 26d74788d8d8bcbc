"""A trained model put to work: :class:`Predictor` labels waveforms and files of any length.

:func:`load` (``escnet.load``) opens a model directory (or a run directory's best fold) with one
of two backends: ``"torch"`` (:mod:`escnet.inference.torch_backend`, the model as trained) or
``"onnx"`` (:mod:`escnet.inference.onnx_backend`, an exported ``model.onnx`` run by onnxruntime,
with no torch import at all). Both are a function from a batch of windows (B, samples) at the
model's rate to class probabilities (B, classes); everything else (decoding, resampling,
windowing, aggregation) is shared and lives here and in :mod:`escnet.inference.stream`.

Examples:
    >>> import escnet
    >>> predictor = escnet.load("runs/esc50-mn04_as/fold1/model")  # doctest: +SKIP
    >>> predictor.predict_file("dog.wav").top_k(3)  # doctest: +SKIP
    [('dog', 0.97), ('wind', 0.01), ('crow', 0.004)]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from escnet.data.audio import resample, to_mono
from escnet.errors import AudioError, EscnetError, ModelOutputError, ParameterError
from escnet.inference.backend import Backend, ModelSpec
from escnet.inference.limits import MAX_BATCH, MAX_OVERLAP, MAX_WINDOW_SECONDS, MAX_WINDOWS
from escnet.inference.results import (
    AGGREGATES,
    SILENT_WARNING,
    Prediction,
    WindowPrediction,
    aggregate,
)
from escnet.inference.stream import (
    BLOCK_SECONDS,
    Windower,
    iter_blocks,
    open_audio,
    window_count,
)
from escnet.machine import usable_cores
from escnet.model_dir.layout import ENSEMBLE_JSON, final_model_dir, is_ensemble

if TYPE_CHECKING:  # the events stage imports this module's results; no cycle at run time
    from escnet.events.detect import Detection, DetectionParams
    from escnet.events.tracks import FrameLevels

__all__ = [
    "BACKENDS",
    "Predictor",
    "StreamLabeller",
    "load",
]

#: Backends :func:`load` knows.
BACKENDS = ("torch", "onnx")

#: Windows per backend call unless told: batching speeds PyTorch up on a CPU (mn04_as, one
#: thread: 26.6 ms per clip alone, 17.8 in fours) but not onnxruntime (15.3 vs 16.4 in eights),
#: and a batch's intermediate tensors set the peak memory (an hour with onnxruntime in batches
#: of 32: 870 MB peak against 95 MB for one clip). Measured with benchmarks/bench_inference.py.
DEFAULT_BATCH = {"torch": 8, "onnx": 1}

#: Hop between windows of :meth:`Predictor.detect` unless told, seconds.
DETECT_HOP = 1.0

#: Files at least this long get a progress bar of their own (seconds of audio).
_PROGRESS_SECONDS = 120.0

#: The progress bar of a long file: seconds with one decimal, not raw float sums.
_PROGRESS_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"


class Predictor:
    """Labels recordings with a model: windows, batches, aggregation.

    Args:
        spec: the model's description.
        backend: the function that runs it (see :data:`Backend`).
        backend_name: ``"torch"`` or ``"onnx"``, for reports.
        window: window length in seconds (default: the model's clip length).
        hop: hop between windows in seconds (default: half the window).
        batch_size: windows per call of the backend.
    """

    def __init__(
        self,
        spec: ModelSpec,
        backend: Backend,
        *,
        backend_name: str = "torch",
        window: float | None = None,
        hop: float | None = None,
        batch_size: int = 8,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ParameterError(f"batch_size must be in 1..{MAX_BATCH}, got {batch_size}")
        self.spec = spec
        self.backend = backend
        self.backend_name = backend_name
        self.batch_size = batch_size
        self.window, self.hop = self._window_hop(window, hop)

    @property
    def classes(self) -> list[str]:
        """Class names, index = position in every probability vector."""
        return self.spec.classes

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    def _window_hop(self, window: float | None, hop: float | None) -> tuple[float, float]:
        w = self.spec.clip_seconds if window is None else float(window)
        h = w / 2 if hop is None else float(hop)
        for name, value in (("window", w), ("hop", h)):
            if not 0 < value <= MAX_WINDOW_SECONDS:  # also refuses nan
                raise ParameterError(
                    f"{name} must be a number of seconds in (0, {MAX_WINDOW_SECONDS:g}], "
                    f"got {value:g}"
                )
        if round(w * self.sample_rate) < 1 or round(h * self.sample_rate) < 1:
            raise ParameterError(f"window {w} s / hop {h} s are shorter than one sample")
        if h < w / MAX_OVERLAP:
            raise ParameterError(
                f"hop {h:g} s is under 1/{MAX_OVERLAP} of the {w:g}-s window: more than "
                f"{MAX_OVERLAP} windows would cover each instant, each a model call; pass a hop "
                f"of {w / MAX_OVERLAP:.3g} s or more (default: half the window)"
            )
        return w, h

    def check_length(
        self, samples: int, window: float | None = None, hop: float | None = None
    ) -> str | None:
        """Why a recording of ``samples`` samples at the model's rate cannot be labelled with
        this window and hop (more than :data:`MAX_WINDOWS` windows), or ``None``."""
        w, h = self.window_samples(window, hop)
        n = window_count(samples, w, h)
        if n <= MAX_WINDOWS:
            return None
        least = (samples - w) / (MAX_WINDOWS - 2) / self.sample_rate
        return (
            f"{samples / self.sample_rate:.0f} s at a {h / self.sample_rate:g}-s hop gives {n} "
            f"windows, more than the {MAX_WINDOWS} a recording may have; pass a hop of "
            f"{least:.3g} s or more"
        )

    def probabilities(self, waveforms: np.ndarray) -> np.ndarray:
        """Probabilities (B, classes) of windows (B, samples) at :attr:`sample_rate`; each is
        zero-padded (or cropped) to the model's clip length first, as training did."""
        x = np.asarray(waveforms, dtype=np.float32)
        if x.ndim != 2:
            raise ParameterError(f"waveforms must have shape (batch, samples), got {x.shape}")
        n = self.spec.num_samples
        if x.shape[1] != n:
            fixed = np.zeros((x.shape[0], n), np.float32)
            fixed[:, : min(n, x.shape[1])] = x[:, :n]
            x = fixed
        scores = np.asarray(self.backend(np.ascontiguousarray(x)), dtype=np.float32)
        if scores.shape != (x.shape[0], len(self.classes)):
            raise ModelOutputError(
                f"{self.spec.path}: the model gave scores of shape {scores.shape} for "
                f"{x.shape[0]} window(s) of {len(self.classes)} classes; re-export the model"
            )
        if not np.isfinite(scores).all():
            # NaN would print as a label with score "nan" and go out as null: refuse it.
            raise ModelOutputError(
                f"{self.spec.path}: the model gave NaN or infinite scores; its weights or graph "
                "are broken: re-export it (or retrain, if the training diverged)"
            )
        return scores

    def predict(
        self,
        samples: np.ndarray,
        sample_rate: int,
        *,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
        meter: FrameLevels | None = None,
    ) -> Prediction:
        """Label a waveform: (samples,) mono or (samples, channels), at any ``sample_rate``.

        It is resampled to the model's rate, cut into windows (see
        :func:`escnet.inference.stream.window_starts`) and each window is classified; the
        recording's probabilities are the windows' mean (or maximum, ``aggregate="max"``).
        ``meter`` (:class:`~escnet.events.tracks.FrameLevels`) measures the audio's levels on
        the way.
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim not in (1, 2) or x.shape[0] == 0:
            raise ParameterError(
                f"samples must be a non-empty (samples,) or (samples, channels) array, "
                f"got shape {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ParameterError("samples hold NaN or infinite values")
        if sample_rate <= 0:
            raise ParameterError(f"sample_rate must be > 0, got {sample_rate}")
        mono = resample(to_mono(x), int(sample_rate), self.sample_rate)
        too_many = self.check_length(mono.size, window, hop)
        if too_many:
            raise ParameterError(too_many)
        step = int(BLOCK_SECONDS * self.sample_rate)
        blocks = (mono[i : i + step] for i in range(0, mono.size, step))
        return self._predict_stream(blocks, window, hop, aggregate, meter)

    def predict_file(
        self,
        path: str | os.PathLike[str],
        *,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
        progress: bool = False,
        meter: FrameLevels | None = None,
    ) -> Prediction:
        """Label an audio file, streamed block by block (memory does not grow with its length).
        ``meter``: as in :meth:`predict`.

        Raises:
            AudioError: naming the file, when it cannot be decoded, or when its length at this
                hop gives more than :data:`MAX_WINDOWS` windows (checked before decoding).
        """
        source = open_audio(path)
        too_many = self.check_length(
            int(round(source.frames * self.sample_rate / source.sample_rate)), window, hop
        )
        if too_many:
            raise AudioError(source.path, too_many)
        bar = tqdm(
            total=source.duration,
            unit="s",
            desc=source.path.name,
            leave=False,
            bar_format=_PROGRESS_FORMAT,
            disable=not progress or source.duration < _PROGRESS_SECONDS,
        )
        with bar:
            blocks = _counted(iter_blocks(source, self.sample_rate), bar, self.sample_rate)
            prediction = self._predict_stream(blocks, window, hop, aggregate, meter)
        prediction.source = str(source.path)
        return prediction

    def detect(
        self,
        samples: np.ndarray,
        sample_rate: int,
        *,
        hop: float = DETECT_HOP,
        params: DetectionParams | None = None,
    ) -> Detection:
        """Sound events in a waveform (as :meth:`predict` takes it): windows of the model's clip
        length every ``hop`` seconds, the same windows and scores as :meth:`predict`, spread
        into per-class score tracks and cut into events (:mod:`escnet.events`).

        Args:
            hop: seconds between windows (1.0): at most the window and the recording.
            params: thresholds, filtering and durations (default: the thresholds saved with
                the model, :func:`escnet.events.thresholds.saved_params`, else
                :data:`escnet.events.detect.DEFAULTS`).
        """
        from escnet.events.detect import detect_prediction
        from escnet.events.tracks import FrameLevels

        x = np.asarray(samples)
        duration = x.shape[0] / sample_rate if x.ndim and sample_rate > 0 else 0.0
        problem = self.detect_hop_problem(hop, duration)
        if problem:
            raise ParameterError(problem)
        meter = FrameLevels(self.sample_rate)
        prediction = self.predict(samples, sample_rate, window=self.window, hop=hop, meter=meter)
        return detect_prediction(
            prediction, self.window, hop, self._detect_params(params), meter.levels()
        )

    def detect_file(
        self,
        path: str | os.PathLike[str],
        *,
        hop: float = DETECT_HOP,
        params: DetectionParams | None = None,
        progress: bool = False,
    ) -> Detection:
        """Sound events in an audio file, streamed as :meth:`predict_file` streams it; the
        options are :meth:`detect`'s.

        Raises:
            AudioError: naming the file, when it cannot be decoded or is shorter than ``hop``.
        """
        from escnet.events.detect import detect_prediction
        from escnet.events.tracks import FrameLevels

        source = open_audio(path)
        problem = self.detect_hop_problem(hop, source.duration)
        if problem:
            raise AudioError(source.path, problem)
        meter = FrameLevels(self.sample_rate)
        prediction = self.predict_file(
            path, window=self.window, hop=hop, progress=progress, meter=meter
        )
        return detect_prediction(
            prediction, self.window, hop, self._detect_params(params), meter.levels()
        )

    def detect_hop_problem(self, hop: float, duration: float) -> str | None:
        """Why ``hop`` cannot detect events in ``duration`` seconds, or ``None``.

        Raises:
            ParameterError: a hop no recording can take (<= 0, longer than the window, ...).
        """
        self._window_hop(self.window, hop)
        if hop > self.window:
            raise ParameterError(
                f"hop {hop:g} s is longer than the {self.window:g}-s window: stretches between "
                f"windows would get no score; pass a hop of {self.window:g} s or less"
            )
        if hop > duration:
            return (
                f"hop {hop:g} s is longer than the recording ({duration:.2f} s); pass a hop of "
                f"{duration:.3g} s or less"
            )
        return None

    def _detect_params(self, params: DetectionParams | None) -> DetectionParams:
        from escnet.events.thresholds import saved_params

        return params if params is not None else saved_params(self.spec)

    def window_samples(
        self, window: float | None = None, hop: float | None = None
    ) -> tuple[int, int]:
        """(window, hop) in samples at the model's rate: the given seconds, or the predictor's
        defaults (a window given without a hop gets half of it as hop)."""
        w, h = self._window_hop(
            self.window if window is None else window,
            (self.hop if window is None else None) if hop is None else hop,
        )
        return int(round(w * self.sample_rate)), int(round(h * self.sample_rate))

    def assemble(
        self, starts: list[int], probabilities: np.ndarray, total: int, window: int, how: str
    ) -> Prediction:
        """A :class:`Prediction` from window starts (samples), their probabilities, the
        recording's length (samples) and the window length (samples)."""
        if how not in AGGREGATES:
            raise ParameterError(f"aggregate must be one of {', '.join(AGGREGATES)}; got {how!r}")
        if total <= 0:
            raise EscnetError("the recording has no samples")
        sr = self.sample_rate
        windows = [
            WindowPrediction(s / sr, min(s + window, total) / sr, p)
            for s, p in zip(starts, probabilities, strict=True)
        ]
        return Prediction(
            classes=self.classes,
            probabilities=aggregate(probabilities, how),
            windows=windows,
            duration=total / sr,
            aggregate=how,
            activation=self.spec.activation,
        )

    def _predict_stream(
        self,
        blocks: Iterable[np.ndarray],
        window: float | None,
        hop: float | None,
        how: str,
        meter: FrameLevels | None = None,
    ) -> Prediction:
        labeller = StreamLabeller(self, window, hop, how, batch_size=self.batch_size, meter=meter)
        for block in blocks:
            for starts, batch in labeller.push(block):
                labeller.record(starts, self.probabilities(batch))
        for starts, batch in labeller.finish():
            labeller.record(starts, self.probabilities(batch))
        return labeller.result()


class StreamLabeller:
    """The steps from a stream of sample blocks to a :class:`Prediction`, for a caller that runs
    the model itself: :meth:`Predictor.predict_file` calls the backend, the service its batcher.

    Feed blocks (mono float32 at the model's rate) to :meth:`push` and end with :meth:`finish`;
    each yields batches ``(starts, windows)`` to classify, whose probabilities go back through
    :meth:`record` in the same order; :meth:`result` is the prediction. A ``meter``
    (:class:`~escnet.events.tracks.FrameLevels`) sees every block, for event detection. Memory
    stays flat: a window is kept only until its batch is classified, and only the model's clip
    length of it (the model crops a longer window to its start, :meth:`Predictor.probabilities`).

    Raises:
        ParameterError: from :meth:`push`, past :data:`MAX_WINDOWS` windows.
    """

    def __init__(
        self,
        predictor: Predictor,
        window: float | None = None,
        hop: float | None = None,
        how: str = "mean",
        *,
        batch_size: int | None = None,
        meter: FrameLevels | None = None,
    ) -> None:
        if how not in AGGREGATES:
            raise ParameterError(f"aggregate must be one of {', '.join(AGGREGATES)}; got {how!r}")
        self.predictor = predictor
        self.how = how
        self.batch_size = batch_size or predictor.batch_size
        self.windower = Windower(*predictor.window_samples(window, hop))
        self._keep = min(self.windower.window, predictor.spec.num_samples)
        self._starts: list[int] = []
        self._chunks: list[np.ndarray] = []
        self._pending: list[tuple[int, np.ndarray]] = []
        self._emitted = 0
        self.silent = True  # every sample so far is 0
        self.meter = meter  # frame levels, for event detection

    def push(self, block: np.ndarray) -> Iterator[tuple[list[int], np.ndarray]]:
        """Append a block; the batches that are now full, one at a time (consume them before
        the next push: a block at a small hop holds many batches, made only as they are taken).
        """
        if self.silent and np.any(block):
            self.silent = False
        if self.meter is not None:
            self.meter.push(block)
        return self._take(self.windower.push(block), final=False)

    def finish(self) -> Iterator[tuple[list[int], np.ndarray]]:
        """The last window(s): whatever batch is left."""
        return self._take(self.windower.finish(), final=True)

    def _take(
        self, windows: list[tuple[int, np.ndarray]], final: bool
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        self._emitted += len(windows)
        if self._emitted > MAX_WINDOWS:
            raise ParameterError(
                f"the recording gives more than {MAX_WINDOWS} windows; pass a larger hop"
            )
        for item in windows:
            self._pending.append(item)
            if len(self._pending) >= self.batch_size:
                yield self._batch()
        if final and self._pending:
            yield self._batch()

    def _batch(self) -> tuple[list[int], np.ndarray]:
        starts = [start for start, _ in self._pending]
        batch = np.stack([w[: self._keep] for _, w in self._pending])
        self._pending.clear()
        return starts, batch

    def record(self, starts: list[int], probabilities: np.ndarray) -> None:
        """The probabilities (B, classes) of a batch :meth:`push` or :meth:`finish` returned."""
        self._starts.extend(starts)
        self._chunks.append(np.asarray(probabilities, dtype=np.float32))

    def result(self) -> Prediction:
        """The prediction, once every batch is recorded."""
        if self.windower.total == 0:
            raise EscnetError("the recording has no samples")
        prediction = self.predictor.assemble(
            self._starts,
            np.concatenate(self._chunks),
            self.windower.total,
            self.windower.window,
            self.how,
        )
        if self.silent:
            prediction.warnings.append(SILENT_WARNING)
        return prediction


def _counted(blocks: Iterable[np.ndarray], bar: tqdm, sample_rate: int) -> Iterable[np.ndarray]:
    for block in blocks:
        bar.update(block.size / sample_rate)
        yield block


def load(
    path: str | os.PathLike[str],
    *,
    backend: str = "torch",
    fold: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    window: float | None = None,
    hop: float | None = None,
    batch_size: int | None = None,
) -> Predictor:
    """Open a trained model for prediction.

    Args:
        path: a model directory (``model.json`` + ``weights.pt``, as training and
            ``escnet export`` write), a run directory (its fold with the best validation
            accuracy, or ``fold``; its refitted model ``RUN/final`` instead when there is one and
            no fold is asked for), or an ensemble (``escnet ensemble``, the same choice of fold;
            or refitted, see :mod:`escnet.inference.ensemble_backend`). For
            ``backend="onnx"``: a directory that also holds ``model.onnx`` (``escnet export
            MODEL --out DIR --onnx``).
        backend: ``"torch"`` or ``"onnx"`` (onnxruntime only; torch is not imported).
        fold: with a run directory, the test fold whose model to use.
        device: torch device (``"cpu"``, ``"cuda"``); torch backend only.
        threads: CPU threads of the backend, at most the cores this process may use (default:
            the library's own choice).
        window, hop: default window and hop in seconds (the model's clip length and half).
        batch_size: windows per backend call (default: 8 for torch, 1 for onnx; see
            :data:`DEFAULT_BATCH`).

    Raises:
        EscnetError: naming the directory or file and the fix, when the model cannot be opened.
    """
    cores = usable_cores()
    if threads is not None and not 1 <= threads <= cores:
        raise ParameterError(
            f"threads must be between 1 and {cores} (the CPU cores this process may use; more "
            f"only makes the threads wait on each other), got {threads}"
        )
    root = Path(path)
    final = final_model_dir(root) if fold is None else None
    if final is not None:  # a run refitted on all its data: that model, not a fold's
        root = final
    ensemble = is_ensemble(root)
    if backend == "torch" and ensemble:
        from escnet.inference.ensemble_backend import load_ensemble

        spec, run = load_ensemble(root, fold=fold, device=device, threads=threads)
    elif backend == "torch":
        from escnet.inference.torch_backend import load_torch

        spec, run = load_torch(root, fold=fold, device=device, threads=threads)
    elif backend == "onnx":
        from escnet.inference.onnx_backend import load_onnx

        if (root / ENSEMBLE_JSON).is_file():
            raise EscnetError(
                f"{root}: a cross-validation ensemble has no ONNX graph of its own; export one "
                f"of its folds (escnet export {root} --onnx --out DIR) and pass DIR"
            )
        if fold is not None:
            raise EscnetError(
                "--fold applies to run directories; the onnx backend takes an exported "
                "directory (escnet export RUN --fold K --out DIR --onnx)"
            )
        spec, run = load_onnx(root, threads=threads)
    else:
        raise ParameterError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    batch = DEFAULT_BATCH[backend] if batch_size is None else batch_size
    return Predictor(spec, run, backend_name=backend, window=window, hop=hop, batch_size=batch)
