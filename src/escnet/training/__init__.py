"""Training: leave-one-fold-out cross-validation of a registered model on a data set's official
folds, as the paper describes it, with honest model selection.

One module per part, read in this order:

* :mod:`~escnet.training.config` -- :class:`TrainConfig` (saved as ``config.json``), its method
  sections :class:`FinetuneConfig`, :class:`ProbeConfig`, :class:`PartialConfig`;
* :mod:`~escnet.training.data` -- the data set a config names and one fold's images / waveforms;
* :mod:`~escnet.training.distributed` -- device choice, seeds, the process group under torchrun;
* :mod:`~escnet.training.loop` -- optimiser and schedule, one epoch, validation, prediction;
* :mod:`~escnet.training.checkpoint` -- atomic ``best.pt`` / ``last.pt`` and resume state;
* :mod:`~escnet.training.records` -- ``split.json``, ``test_predictions.csv``;
* :mod:`~escnet.training.fold` -- :func:`train_fold`, one fold top to bottom;
* :mod:`~escnet.training.crossval` -- :func:`cross_validate`.

A fold's test figures (:class:`~escnet.metrics.fold.FoldResult`), ``metrics.csv`` and the run's
report are the next stage's, :mod:`escnet.metrics`.

What goes where, for a fold ``k`` held out for testing:

* the *training* clips (the other folds minus a validation share) are the only clips augmented:
  offline NAA (originals + 6 cached variants each), online NAA (a random NAA chain per clip and
  epoch, in DataLoader worker processes), TAA / SpecAugment on each training batch of images,
  mixup of each training batch -- whatever :attr:`TrainConfig.augment` names;
* the *validation* clips (``val_fraction`` of the training folds' recordings, grouped by
  recording, :func:`escnet.data.folds.fold_split`) choose the best epoch and stop training early;
* the *test* fold is looked at once, at the end, with the best checkpoint.

Distributed training: launched with ``torchrun --nproc_per_node N``, every function here joins
the process group (NCCL on CUDA, Gloo on CPU), wraps the model in DistributedDataParallel and
shards the training batches with a DistributedSampler, which pads the last round with repeated
clips so that every rank runs the same number of steps. Training loss, accuracy and counts are
summed over ranks (``all_reduce``). **Validation runs on all ranks**, each on a disjoint strided
shard of the validation clips (no padding, so no clip counts twice) and the sums are reduced;
the **final test evaluation runs on rank 0 only**, which needs every prediction for the confusion
matrix, and its result is broadcast. Only rank 0 writes files and shows progress bars.

Examples:
    >>> from escnet.training import TrainConfig, cross_validate
    >>> from escnet.training import FinetuneConfig
    >>> config = TrainConfig(dataset="esc10", model="cnn7", settings=FinetuneConfig(epochs=30))
    >>> results = cross_validate(config, "runs/esc10-cnn7")  # doctest: +SKIP
    >>> results["summary"]["accuracy"]  # doctest: +SKIP
    {'mean': 0.83, 'std': 0.02}
"""

from escnet.training.config import FinetuneConfig, PartialConfig, ProbeConfig, TrainConfig
from escnet.training.crossval import cross_validate
from escnet.training.data import FoldData, load_dataset, load_fold_data
from escnet.training.distributed import resolve_device, seed_everything
from escnet.training.fold import train_fold
from escnet.training.loop import warmup_cosine

__all__ = [
    "FinetuneConfig",
    "FoldData",
    "PartialConfig",
    "ProbeConfig",
    "TrainConfig",
    "cross_validate",
    "load_dataset",
    "load_fold_data",
    "resolve_device",
    "seed_everything",
    "train_fold",
    "warmup_cosine",
]
