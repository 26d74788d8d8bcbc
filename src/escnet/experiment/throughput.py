"""Measured speeds on this project's machine, as data, and the time estimate built on them.

:data:`TRAIN_SAMPLES_PER_S` is the channels-last column of the README's throughput table
(``python benchmarks/bench_train_throughput.py``: forward + backward + AdamW, batch 32, random
5 s images, torch threads 2; AMD EPYC, 2 cores, torch 2.14.1). :data:`RUN_SAMPLES_PER_S` holds
the training images per second of complete ``escnet train`` runs in the README's Results, which
include data loading, augmentation and validation; where a model has one, the estimate uses it.
The NAA and feature rates are those of the README's benchmarks on the same machine.

:func:`estimate_cell_seconds` is an *estimate*: never report its figure as a measurement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DATASET_SIZES",
    "MACHINE",
    "NAA_CLIPS_PER_S",
    "RATE_CLIP_SECONDS",
    "RUN_SAMPLES_PER_S",
    "TRAIN_SAMPLES_PER_S",
    "Estimate",
    "estimate_cell_seconds",
]

#: The machine every figure here was measured on.
MACHINE = "AMD EPYC, 2 cores, no GPU, torch 2.14.1, channels-last"

#: Training samples per second, channels-last, from ``benchmarks/bench_train_throughput.py``.
TRAIN_SAMPLES_PER_S: dict[str, float] = {
    "cnn7": 73.8,
    "cnn9": 65.0,
    "resnet18": 28.2,
    "resnet50": 11.0,
    "resnet152": 3.6,
    "densenet161": 4.7,
    "alexnet": 32.3,
    "squeezenet1_1": 124.5,
    "vgg16": 2.8,
    "efficientnet_lite0": 40.3,
    "mn04_as": 90.0,
}

#: Training images per second of whole runs (README, Results): cnn7 + NAA on ESC-10, 5 folds x
#: 12 epochs x 2016 images in 1721 s; mn04_as + NAA on ESC-50, an epoch of 10 080 images in
#: 126-132 s.
RUN_SAMPLES_PER_S: dict[str, float] = {
    "cnn7": 5 * 12 * 2016 / 1721,
    "mn04_as": 10080 / 129.0,
}

#: Offline NAA expansion, cold cache, clips per second (``escnet augment``, ESC-50, 1600 clips
#: in 85.0 s, 2 processes).
NAA_CLIPS_PER_S = 1600 / 85.0

#: Inference is assumed this many times as fast as a training step (forward only, no
#: optimiser): an assumption, not a measurement.
INFERENCE_SPEEDUP = 3.0

#: Clips and folds of the built-in data sets, complete; used when the copy itself cannot be
#: read (the plan reads the copy's own fold sizes where it can: a partial copy trains on fewer).
DATASET_SIZES: dict[str, tuple[int, int]] = {
    "esc50": (2000, 5),
    "esc10": (400, 5),
    "us8k": (8732, 10),
}

#: Seconds of audio in one image of the rates above (ESC-50's 5-s clips). A training step's
#: cost grows with the image's width, so a data set of shorter clips (UrbanSound8K: 4 s) is
#: assumed to run ``RATE_CLIP_SECONDS / its clip length`` times as fast: an assumption. Checked
#: against measured UrbanSound8K cells (the docs' UrbanSound8K results): within 26 % for
#: ``mn04_as``, twice too long for ``cnn7``, whose grid then takes the rate of its completed cell.
RATE_CLIP_SECONDS = 5.0


@dataclass(frozen=True)
class Estimate:
    """Estimated seconds of one cell on the machine of :data:`MACHINE`, and what it assumes.

    Attributes:
        seconds: training + evaluation + (``naa_seconds``) the NAA expansion.
        naa_seconds: the cold-cache NAA expansion, counted for the first cell that needs it.
        train_images: training images per epoch of the first fold (folds of a partial copy
            differ).
        epochs: epochs per fold.
        rate: training images per second used, and ``source`` where it comes from.
    """

    seconds: float
    naa_seconds: float
    train_images: int
    epochs: int
    rate: float
    source: str


def estimate_cell_seconds(
    config: Mapping[str, Any],
    *,
    expansion: int,
    protocol: str = "official-folds",
    naa_cold: bool = True,
    measured: Mapping[str, float] | None = None,
    fold_sizes: Mapping[int, int] | None = None,
    clip_seconds: float | None = None,
) -> Estimate | None:
    """Estimate one cell's wall time from the measured rates; ``None`` when the model or the
    data set has no figure here (then it is *not run* for planning, never guessed).

    Args:
        config: the cell's TrainConfig fields (dataset, model, folds, epochs, val_fraction).
        expansion: training images per training clip (7 with offline NAA).
        protocol: ``augment-then-split`` expands every clip, the others the training clips.
        naa_cold: add the expansion of every clip of the data set (a cold NAA cache).
        measured: training images per second of whole runs on *this* machine, by model (see
            :func:`escnet.experiment.plan.measured_rates`); preferred to the tables above, which
            were measured once, on :data:`MACHINE`.
        fold_sizes: clips per fold of the copy the cell will read (``Dataset.fold_sizes()``);
            default: the complete data set's (:data:`DATASET_SIZES`), folds of equal size.
        clip_seconds: the data set's clip length; the rates scale by
            :data:`RATE_CLIP_SECONDS` over it (default: no scaling).
    """
    model, dataset = str(config["model"]), str(config["dataset"])
    if dataset not in DATASET_SIZES and not fold_sizes:
        return None
    if measured and model in measured:
        rate, source = measured[model], "this grid's completed cells"
    elif model in RUN_SAMPLES_PER_S:
        rate, source = RUN_SAMPLES_PER_S[model], "whole-run rate"
    elif model in TRAIN_SAMPLES_PER_S:
        rate, source = TRAIN_SAMPLES_PER_S[model], "benchmark rate"
    else:
        return None
    if clip_seconds and not (measured and model in measured):
        rate *= RATE_CLIP_SECONDS / clip_seconds
    if not fold_sizes:
        clips, n_folds = DATASET_SIZES[dataset]
        fold_sizes = {f: clips // n_folds for f in range(1, n_folds + 1)}
    folds = config.get("folds") or sorted(fold_sizes)
    total = sum(fold_sizes.values())
    epochs = int(config.get("epochs", 60))
    val = float(config.get("val_fraction", 0.1))
    # Images split (augment-then-split) or clips split, then expanded: the same counts.
    per_test = expansion if protocol == "augment-then-split" else 1
    seconds, first_train = 0.0, None
    for fold in folds:
        pool = total - fold_sizes.get(fold, 0)
        train_images = int(pool * (1 - val) * expansion)
        first_train = train_images if first_train is None else first_train
        val_images = pool * val * per_test
        seconds += epochs * train_images / rate
        seconds += (epochs * val_images + fold_sizes.get(fold, 0) * per_test) / (
            INFERENCE_SPEEDUP * rate
        )
    naa = total / NAA_CLIPS_PER_S if (expansion > 1 and naa_cold) else 0.0
    return Estimate(seconds + naa, naa, first_train or 0, epochs, rate, source)
