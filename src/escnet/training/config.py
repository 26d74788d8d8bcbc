"""The configuration of a training run and the result of one fold, as plain typed values.

:class:`TrainConfig` is saved as ``config.json`` beside every run, so that a run can be repeated
exactly; :class:`FoldResult` is one fold's entry of ``results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from escnet.augment.policy import get_policy
from escnet.data.folds import VAL_CLIPS_PER_RECORDING, check_protocol
from escnet.errors import EscnetError, ParameterError

__all__ = ["METRIC_COLUMNS", "FoldResult", "TrainConfig", "check_resumable"]

#: Columns of ``fold{k}/metrics.csv``, one row per epoch. Losses are means per clip: the
#: training loss is the objective optimised (with label smoothing and mixup targets when on), the
#: validation loss plain cross-entropy. ``lr`` is the rate of the epoch's last step;
#: ``train_samples`` / ``val_samples`` are totals over all ranks.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "train_samples",
    "val_samples",
)

#: Config fields that may differ when a run is resumed (they do not change the numbers).
_RESUME_FREE_FIELDS = frozenset(
    {"device", "workers", "data_dir", "cache_dir", "root", "checkpoint_interval_s"}
)


@dataclass
class TrainConfig:
    """Everything a training run depends on, as plain values; saved as ``config.json``.

    Attributes:
        dataset: data set name (:func:`escnet.data.datasets.get_dataset`): esc50, esc10, us8k,
            folder.
        model: registered model name (:func:`escnet.models.list_models`).
        augment: augmentation policy of the training clips
            (:data:`escnet.augment.policy.POLICIES`): none, taa, naa, naa-online, naa+taa,
            naa+mixup, specaug, specaug+mixup.
        folds: test folds to run, one training per fold (leave-one-fold-out); ``None``: every
            official fold of the data set.
        epochs: passes over the (augmented) training set.
        batch_size: clips per training step (per process when distributed).
        lr: peak learning rate of AdamW, reached after the warm-up.
        linear_probe: before the first epoch, fit the new output layer as a logistic regression
            on the frozen network's features of the training images (with offline NAA, all
            seven versions of each clip; per-batch TAA, SpecAugment and mixup do not apply), its
            L2 penalty chosen on the validation split (:mod:`escnet.training.linear_probe`; LP-FT).
            For
            models with a ``Linear`` head and image-based policies (not naa-online).
        head_lr: peak learning rate of the classifier's output layer
            (:attr:`escnet.models.SpectralClassifier.head`); ``None``: ``lr``. A fine-tuned
            pretrained body usually wants a smaller ``lr`` than its freshly initialised head.
        weight_decay: AdamW's decoupled weight decay.
        warmup_epochs: linear warm-up from ~0 to ``lr`` over this many epochs (counted in steps),
            then cosine decay to 0 at the last step.
        label_smoothing: label smoothing of the training loss (validation and test losses are
            plain cross-entropy).
        val_fraction: share of the training folds' recordings held out for model selection;
            0 trains on all of them and keeps the last epoch.
        val_clips_per_recording: at most this many clips of one recording in the validation
            split (:func:`escnet.data.folds.validation_split`); 0: no cap. A saved
            ``config.json`` without it (written before the cap) means 0.
        early_stopping_patience: stop after this many epochs without a better validation
            accuracy; ``None`` never stops early.
        seed: seeds everything: validation draw, NAA variants, initialisation, shuffling,
            augmentation.
        workers: decoding threads, NAA processes and online-NAA DataLoader workers; ``None``:
            the number of CPU cores, at most 8.
        pretrained: start from the model's pretrained weights; ``None`` (the default): yes when
            the model has pretrained weights on this machine (``escnet models``), which the
            run's ``config.json`` then records as ``true`` or ``false``. The probe and partial
            methods read the pretrained network: ``False`` is refused for them.
        data_dir: directory holding the data sets (default ``$ESCNET_DATA_DIR``).
        cache_dir: cache of spectral images and NAA variants (default ``$ESCNET_CACHE_DIR``).
        root: the data set's own directory (required for ``dataset="folder"``).
        data_folds: use only these folds of the data set (``--folds`` of ``escnet info``);
            ``None``: every fold the copy holds.
        folds_csv, group_pattern, num_folds: folder data sets: how clips are grouped into
            recordings and folds (:func:`escnet.data.datasets.load_folder`); saved so that
            ``escnet evaluate`` rebuilds the same split.
        clip_seconds: pad or crop every clip to this length instead of the data set's own
            (ESC: 5 s, UrbanSound8K: 4 s); ``None`` keeps the data set's.
        device: ``"auto"`` (CUDA, then MPS, then CPU), or a torch device such as ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        amp: mixed precision (bfloat16, or float16 with loss scaling) -- on CUDA only.
        channels_last: keep images and convolution weights in channels-last memory order; on
            this project's 2-core CPU it trains mn04_as 1.7x and cnn7 1.3x faster
            (``benchmarks/bench_train_throughput.py``), and it is the fast layout on GPUs too.
        max_train_batches: stop each epoch after this many batches (smoke tests); ``None``:
            the whole training set.
        checkpoint_interval_s: write ``last.pt`` (and a newer ``best.pt``) at most this often,
            in seconds; 0 writes them after every epoch. The last epoch is always written, and
            the best epoch's weights are kept in memory until then, so ``best.pt`` never runs
            ahead of ``last.pt``. An interrupted run loses at most this much training. Worth
            setting where epochs are short and the model large: on an H100, an ESC-10 epoch of
            resnet152 takes about a second and its checkpoint with AdamW's state (0.7 GB) took
            longer than that.
        method: ``"finetune"`` trains the network (everything above); ``"partial"`` trains
            only its blocks above ``partial_from`` (below); ``"probe"`` fits only a
            head on the frozen, pretrained ``mn04_as``'s pooled multi-level features
            (:mod:`escnet.training.probe.head`; ``model`` must be ``mn04_as``, ``pretrained`` is
            implied, ``augment`` is ``none`` or ``naa``; epochs, learning rates, batches and
            devices do not apply).
        probe_blocks: probe: blocks of ``mn04_as.features`` (0 stem .. 16 last convolution)
            whose outputs are mean- and max-pooled into the features.
        probe_embedding: probe: add the 512-d embedding (the AudioSet classifier's hidden
            layer).
        probe_head: probe: ``"linear"`` (logistic regression, L2 chosen on validation) or
            ``"mlp"`` (one hidden layer, weight decay chosen on validation).
        tta_shifts: probe: test-time augmentation, the time shifts (frames) of the views whose
            probabilities are averaged for validation and test clips (0: the clip itself);
            ``None``: no TTA.
        partial_from: partial: the last frozen block ``k`` of ``mn04_as.features`` (0 stem ..
            15); blocks ``k+1..16`` and the classifier are trained on the cached activations
            after block ``k`` (:mod:`escnet.training.probe.partial`; ``model`` must be ``mn04_as``,
            ``pretrained`` is implied, ``augment`` is ``none`` or ``naa``; the fine-tuning
            options -- epochs, learning rates, batches, devices -- do not apply: the method
            has its own, :data:`escnet.training.probe.partial.PARTIAL_EPOCHS` and beside it).
        probe_train_views: probe: the training rows of a clip besides its original: NAA
            variants (``shift``, ``pps``, ``nps``, ``sts``, ``fts``, ``ts``; they need
            ``augment="naa"``) and time rolls (``roll8``: rolled by 8 frames); ``None``: all
            six NAA variants with ``augment="naa"``, none otherwise.
        protocol: evaluation protocol (:data:`escnet.data.folds.PROTOCOLS`): ``official-folds``
            (the honest default), or the leaky ``random-split`` / ``augment-then-split``
            (:func:`escnet.data.folds.protocol_split`), run on purpose to measure the leak; the
            latter expands every clip with offline NAA before splitting, so it needs an
            offline-NAA policy.
    """

    dataset: str = "esc50"
    model: str = "cnn7"
    augment: str = "naa"
    folds: list[int] | None = None
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float | None = None
    linear_probe: bool = False
    weight_decay: float = 1e-2
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.0
    val_fraction: float = 0.1
    val_clips_per_recording: int = VAL_CLIPS_PER_RECORDING
    early_stopping_patience: int | None = None
    seed: int = 0
    workers: int | None = None
    pretrained: bool | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    root: str | None = None
    data_folds: list[int] | None = None
    folds_csv: str | None = None
    group_pattern: str | None = None
    num_folds: int | None = None
    clip_seconds: float | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    max_train_batches: int | None = None
    checkpoint_interval_s: float = 0.0
    method: str = "finetune"
    probe_blocks: list[int] = dataclasses.field(default_factory=lambda: [12, 16])
    probe_embedding: bool = True
    probe_head: str = "linear"
    tta_shifts: list[int] | None = None
    probe_train_views: list[str] | None = None
    partial_from: int = 12
    protocol: str = "official-folds"

    def __post_init__(self) -> None:
        def positive_int(name: str, value: object, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ParameterError(
                    f"TrainConfig.{name} must be an integer >= {minimum}, got {value!r}"
                )

        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        if self.folds is not None:
            if not self.folds:
                raise ParameterError("TrainConfig.folds must name at least one fold, or be None")
            for f in self.folds:
                positive_int("folds[]", f)
            self.folds = sorted(set(self.folds))
        if not self.lr > 0:
            raise ParameterError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.head_lr is not None and not self.head_lr > 0:
            raise ParameterError(f"TrainConfig.head_lr must be > 0 or None, got {self.head_lr}")
        if self.weight_decay < 0:
            raise ParameterError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_epochs < 0:
            raise ParameterError(
                f"TrainConfig.warmup_epochs must be >= 0, got {self.warmup_epochs}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ParameterError(
                f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ParameterError(
                f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}"
            )
        positive_int("val_clips_per_recording", self.val_clips_per_recording, minimum=0)
        if self.early_stopping_patience is not None:
            positive_int("early_stopping_patience", self.early_stopping_patience)
        if self.workers is not None:
            positive_int("workers", self.workers, minimum=0)
        if self.max_train_batches is not None:
            positive_int("max_train_batches", self.max_train_batches)
        if not self.checkpoint_interval_s >= 0:
            raise ParameterError(
                f"TrainConfig.checkpoint_interval_s must be >= 0, got {self.checkpoint_interval_s}"
            )
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ParameterError(
                f"TrainConfig.clip_seconds must be > 0 or None, got {self.clip_seconds}"
            )
        policy = get_policy(self.augment)  # ValueError listing the policies
        check_protocol(self.protocol)  # ValueError listing the protocols
        if self.protocol == "augment-then-split" and not policy.offline_naa:
            raise ParameterError(
                f"TrainConfig.protocol='augment-then-split' expands the data set with offline NAA "
                f"before splitting, but augment={self.augment!r} has none; use augment='naa' or "
                "'naa+taa', or protocol='random-split'"
            )
        self._check_method()
        if self.linear_probe and policy.online_naa:
            raise ParameterError(
                f"TrainConfig.linear_probe needs training images, but augment={self.augment!r} "
                "draws new audio every epoch; use augment='naa' or linear_probe=False"
            )

    def _check_method(self) -> None:
        if self.method not in ("finetune", "probe", "partial"):
            raise ParameterError(
                f"TrainConfig.method must be 'finetune', 'probe' or 'partial', got {self.method!r}"
            )
        if self.tta_shifts is not None:
            if not self.tta_shifts or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in self.tta_shifts
            ):
                raise ParameterError(
                    f"TrainConfig.tta_shifts must be a non-empty list of frame shifts or None, "
                    f"got {self.tta_shifts!r}"
                )
            self.tta_shifts = list(dict.fromkeys(self.tta_shifts))
        if self.method != "probe":
            if self.tta_shifts is not None or self.probe_train_views is not None:
                raise ParameterError(
                    "TrainConfig.tta_shifts (--tta) and probe_train_views (--probe-views) need "
                    "method='probe'"
                )
            if self.method == "finetune":
                return
        models = ("mn04_as",) if self.method == "partial" else ("mn04_as", "mn04_as_probe")
        if self.model not in models:
            raise ParameterError(
                f"TrainConfig.method={self.method!r} reads the frozen mn04_as; got "
                f"model={self.model!r}: use model='mn04_as' (--model mn04_as)"
            )
        if self.augment not in ("none", "naa"):
            raise ParameterError(
                f"TrainConfig.method={self.method!r} takes augment='none' or 'naa' (offline NAA "
                f"variants of the training clips), got {self.augment!r}"
            )
        if self.method == "partial":
            k = self.partial_from
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 15:
                raise ParameterError(
                    f"TrainConfig.partial_from must be a block index 0-15 of mn04_as.features "
                    f"(the last frozen one), got {k!r}"
                )
            self._needs_pretrained()  # fine-tuning the top of a random network means nothing
            return
        if self.probe_head not in ("linear", "mlp"):
            raise ParameterError(
                f"TrainConfig.probe_head must be 'linear' or 'mlp', got {self.probe_head!r}"
            )
        blocks = self.probe_blocks
        if len(set(blocks)) != len(blocks) or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 16 for b in blocks
        ):
            raise ParameterError(
                f"TrainConfig.probe_blocks must be distinct block indices 0-16, got {blocks!r}"
            )
        if not blocks and not self.probe_embedding:
            raise ParameterError("TrainConfig: a probe needs probe_blocks or probe_embedding")
        if self.probe_train_views is not None:
            self._check_train_views(self.probe_train_views)
        self.probe_blocks = sorted(blocks)
        self._needs_pretrained()  # a probe of a randomly initialised network means nothing

    def _needs_pretrained(self) -> None:
        if self.pretrained is False:
            raise ParameterError(
                f"TrainConfig.method={self.method!r} reads the pretrained mn04_as: drop "
                "pretrained=False (--no-pretrained)"
            )
        self.pretrained = True

    def _check_train_views(self, views: list[str]) -> None:
        from escnet.augment.audio import NAA_VARIANTS

        bad = [
            v
            for v in views
            if v not in NAA_VARIANTS and not (v.startswith("roll") and v[4:].lstrip("-").isdigit())
        ]
        if bad or len(set(views)) != len(views):
            raise ParameterError(
                f"TrainConfig.probe_train_views: {bad or views} (names once each: "
                f"{', '.join(NAA_VARIANTS)}, or roll<frames>)"
            )
        naa = [v for v in views if v in NAA_VARIANTS]
        # The report says which augmentation trained the model: the policy must say NAA.
        if naa and self.augment != "naa":
            raise ParameterError(
                f"TrainConfig.probe_train_views names NAA variants ({', '.join(naa)}): set "
                "augment='naa'"
            )
        if not naa and self.augment == "naa":
            raise ParameterError(
                "TrainConfig.augment='naa' but probe_train_views names no NAA variant: add one, "
                "or set augment='none'"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a mapping; keys that are not fields raise ValueError naming them (the
        ``environment`` block that :func:`cross_validate` adds is ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in values if k not in names and k != "environment")
        if unknown:
            raise ParameterError(
                f"{source}: unknown TrainConfig field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Load a ``config.json`` written by :func:`cross_validate` (or by hand)."""
        p = Path(path)
        try:
            values = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: no such config file") from None
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(values, dict):
            raise ParameterError(f"{p}: expected a JSON object of TrainConfig fields")
        values = {**SAVED_BEFORE, **values}
        return cls.from_dict(values, source=str(p))


@dataclass
class FoldResult:
    """Test metrics of one fold, computed once with the best checkpoint.

    Attributes:
        test_fold: the held-out fold.
        accuracy, macro_f1: on the test fold.
        loss: mean cross-entropy on the test fold.
        per_class_accuracy: per class (index = label), ``None`` for a class without test clips.
        confusion_matrix: rows = true class, columns = predicted class.
        best_epoch: the epoch (1-based) whose weights were tested.
        epochs_run: epochs trained (fewer than configured when stopped early).
        stopped_early: early stopping ended the training.
        selection: how ``best_epoch`` was chosen.
        train_clips, train_images, val_clips, test_clips: sizes (train_images counts NAA
            variants; with online NAA it equals train_clips).
        test_ids: the ids of the test fold's clips (``None`` in runs made before they were
            recorded), so that a rebuilt split can be checked to be the same.
    """

    test_fold: int
    accuracy: float
    macro_f1: float
    loss: float
    per_class_accuracy: list[float | None]
    confusion_matrix: list[list[int]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    selection: str
    train_clips: int
    train_images: int
    val_clips: int
    test_clips: int
    test_ids: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def tested(
        cls,
        test_fold: int,
        logits: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        *,
        selection: str,
        train_clips: int,
        train_images: int,
        val_clips: int,
        best_epoch: int = 0,
        epochs_run: int = 0,
        stopped_early: bool = False,
    ) -> FoldResult:
        """The one place a fold's test figures are computed: from the chosen model's logits on
        the test clips, (N, classes), and their labels, (N,)."""
        from escnet.training.metrics import classification_metrics

        metrics = classification_metrics(labels.numpy(), logits.argmax(1).numpy(), num_classes)
        return cls(
            test_fold=test_fold,
            accuracy=metrics["accuracy"],
            macro_f1=metrics["macro_f1"],
            loss=F.cross_entropy(logits, labels).item(),
            per_class_accuracy=metrics["per_class_accuracy"],
            confusion_matrix=metrics["confusion_matrix"],
            best_epoch=best_epoch,
            epochs_run=epochs_run,
            stopped_early=stopped_early,
            selection=selection,
            train_clips=train_clips,
            train_images=train_images,
            val_clips=val_clips,
            test_clips=len(labels),
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], classes: Sequence[str]) -> FoldResult:
        """From a fold entry of ``results.json`` (per-class accuracy keyed by class name)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        per_class = kept["per_class_accuracy"]
        if isinstance(per_class, Mapping):
            kept["per_class_accuracy"] = [per_class.get(c) for c in classes]
        for key in ("accuracy", "macro_f1", "loss"):
            kept[key] = nan_if_none(kept[key])
        return cls(**kept)


def nan_if_none(v: float | None) -> float:
    return math.nan if v is None else float(v)


#: What a setting added later means in a ``config.json`` written before it existed: runs
#: written before the validation cap drew their split without one, and must rebuild that very
#: split when they are resumed, evaluated or ensembled.
SAVED_BEFORE: dict[str, Any] = {"val_clips_per_recording": 0}


def check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    saved = {**SAVED_BEFORE, **saved}
    now = config.to_dict()
    diffs = [
        f"{k}: {saved.get(k)!r} there, {now[k]!r} now"
        for k in now
        if k not in _RESUME_FREE_FIELDS and k in saved and saved[k] != now[k]
    ]
    if diffs:
        raise EscnetError(
            f"{path}: cannot resume a run made with another configuration ({'; '.join(diffs)}); "
            "resume with the run's own config.json or start a new run directory"
        )
