"""The configuration of a training run, as plain typed values.

:class:`TrainConfig` is saved as ``config.json`` beside every run, so that a run can be repeated
exactly (one fold's entry of ``results.json``: :class:`escnet.metrics.fold.FoldResult`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from escnet.augment.policy import get_policy
from escnet.data.datasets import Dataset
from escnet.data.folds import (
    VAL_CLIPS_PER_RECORDING,
    ImageSplit,
    Split,
    check_protocol,
    protocol_split,
)
from escnet.errors import EscnetError, ParameterError

__all__ = [
    "METHODS",
    "FinetuneConfig",
    "PartialConfig",
    "ProbeConfig",
    "TrainConfig",
    "check_resumable",
]

#: Config fields that may differ when a run is resumed (they do not change the numbers).
_RESUME_FREE_FIELDS = frozenset(
    {"device", "workers", "data_dir", "cache_dir", "root", "checkpoint_interval_s"}
)


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


#: What a setting added later means in a ``config.json`` written before it existed: runs
#: written before the validation cap drew their split without one, and must rebuild that very
#: split when they are resumed, evaluated or ensembled.
SAVED_BEFORE: dict[str, Any] = {"val_clips_per_recording": 0}


def _whole(owner: str, name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")


def _positive(owner: str, name: str, value: float | None, *, zero: bool = False) -> None:
    if value is not None and not (value >= 0 if zero else value > 0):
        raise ParameterError(f"{owner}.{name} must be {'>= 0' if zero else '> 0'}, got {value}")


def _share(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ParameterError(f"{owner}.{name} must be in [0, 1), got {value}")


@dataclass
class FinetuneConfig:
    """``method="finetune"``: the whole network trained by AdamW (:mod:`escnet.training.fold`).

    Attributes:
        epochs: passes over the (augmented) training set.
        batch_size: clips per training step (per process when distributed).
        lr: peak learning rate of AdamW, reached after the warm-up.
        head_lr: peak learning rate of the output layer
            (:attr:`escnet.models.SpectralClassifier.head`); ``None``: ``lr``. A fine-tuned
            pretrained body usually wants a smaller ``lr`` than its freshly initialised head.
        lp_ft: before the first epoch, fit the output layer as a logistic regression on the
            frozen network's features of the training images (offline NAA: all seven versions
            of each clip; per-batch TAA, SpecAugment and mixup do not apply), its L2 penalty
            chosen on validation (:mod:`escnet.training.lp_ft`, ``--linear-probe``). For models
            with a ``Linear`` head and image-based policies (not naa-online).
        weight_decay: AdamW's decoupled weight decay.
        warmup_epochs: linear warm-up from ~0 to ``lr`` over this many epochs (counted in steps),
            then cosine decay to 0 at the last step.
        label_smoothing: label smoothing of the training loss (validation and test losses are
            plain cross-entropy).
        early_stopping_patience: stop after this many epochs without a better validation
            accuracy; ``None`` never stops early.
        amp: mixed precision (bfloat16, or float16 with loss scaling) -- on CUDA only.
        channels_last: keep images and convolution weights in channels-last memory order; on
            this project's 2-core CPU it trains mn04_as 1.7x and cnn7 1.3x faster
            (``benchmarks/bench_train_throughput.py``), and it is the fast layout on GPUs too.
        max_train_batches: stop each epoch after this many batches (smoke tests); ``None``:
            the whole training set.
        checkpoint_interval_s: write ``last.pt`` (and a newer ``best.pt``) at most this often,
            in seconds; 0 after every epoch. The last epoch is always written, and the best
            epoch's weights are kept in memory until then, so ``best.pt`` never runs ahead of
            ``last.pt``. Worth setting where epochs are short and checkpoints large.
    """

    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float | None = None
    lp_ft: bool = False
    weight_decay: float = 1e-2
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None
    amp: bool = True
    channels_last: bool = True
    max_train_batches: int | None = None
    checkpoint_interval_s: float = 0.0

    def __post_init__(self) -> None:
        owner = "FinetuneConfig"
        _whole(owner, "epochs", self.epochs)
        _whole(owner, "batch_size", self.batch_size)
        _positive(owner, "lr", self.lr)
        _positive(owner, "head_lr", self.head_lr)
        _positive(owner, "weight_decay", self.weight_decay, zero=True)
        _positive(owner, "warmup_epochs", self.warmup_epochs, zero=True)
        _positive(owner, "checkpoint_interval_s", self.checkpoint_interval_s, zero=True)
        _share(owner, "label_smoothing", self.label_smoothing)
        if self.early_stopping_patience is not None:
            _whole(owner, "early_stopping_patience", self.early_stopping_patience)
        if self.max_train_batches is not None:
            _whole(owner, "max_train_batches", self.max_train_batches)


@dataclass
class ProbeConfig:
    """``method="probe"``: a head fitted on the frozen, pretrained ``mn04_as``'s pooled
    multi-level features (:mod:`escnet.training.frozen.probe`).

    Attributes:
        blocks: blocks of ``mn04_as.features`` (0 stem .. 16 last convolution) whose outputs
            are mean- and max-pooled into the features, in increasing order.
        embedding: add the 512-d embedding (the AudioSet classifier's hidden layer).
        head: ``"linear"`` (logistic regression, its L2 penalty chosen on validation among
            :data:`escnet.training.logistic.L2_GRID`) or ``"mlp"`` (one hidden layer, its
            weight decay chosen on validation among ``mlp_weight_decays``).
        train_views: the training rows of a clip besides its original: NAA variants
            (``shift``, ``pps``, ``nps``, ``sts``, ``fts``, ``ts``; they need ``augment="naa"``)
            and time rolls (``roll8``: rolled by 8 frames); ``None``: all six NAA variants with
            ``augment="naa"``, none otherwise.
        tta_shifts: test-time views, the time shifts (frames) whose probabilities are averaged
            for validation and test clips (0: the clip itself), each once; ``None``: no TTA.
        mlp_hidden: the MLP head's hidden width (``head="mlp"`` only, as every ``mlp_*``).
        mlp_dropout: its dropout.
        mlp_epochs: its epochs (AdamW with a one-cycle schedule, the one training loop).
        mlp_lr: its peak learning rate.
        mlp_batch_size: its rows per step.
        mlp_label_smoothing: its training loss's label smoothing.
        mlp_weight_decays: the weight decays validation chooses from.
    """

    blocks: list[int] = dataclasses.field(default_factory=lambda: [12, 16])
    embedding: bool = True
    head: str = "linear"
    train_views: list[str] | None = None
    tta_shifts: list[int] | None = None
    mlp_hidden: int = 512
    mlp_dropout: float = 0.5
    mlp_epochs: int = 30
    mlp_lr: float = 1e-3
    mlp_batch_size: int = 256
    mlp_label_smoothing: float = 0.1
    mlp_weight_decays: list[float] = dataclasses.field(default_factory=lambda: [1e-2, 1e-1])

    def __post_init__(self) -> None:
        owner = "ProbeConfig"
        if self.head not in ("linear", "mlp"):
            raise ParameterError(f"{owner}.head must be 'linear' or 'mlp', got {self.head!r}")
        blocks = self.blocks
        if blocks != sorted(set(blocks)) or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 16 for b in blocks
        ):
            raise ParameterError(
                f"{owner}.blocks (--probe-blocks) must be increasing, distinct block indices 0-16, "
                f"got {blocks!r}"
            )
        if not blocks and not self.embedding:
            raise ParameterError(f"{owner}: a probe needs blocks or the embedding")
        if self.tta_shifts is not None and (
            not self.tta_shifts
            or len(set(self.tta_shifts)) != len(self.tta_shifts)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.tta_shifts)
        ):
            raise ParameterError(
                f"{owner}.tta_shifts must be distinct frame shifts, or None, got "
                f"{self.tta_shifts!r}"
            )
        _whole(owner, "mlp_hidden", self.mlp_hidden)
        _whole(owner, "mlp_epochs", self.mlp_epochs)
        _whole(owner, "mlp_batch_size", self.mlp_batch_size)
        _positive(owner, "mlp_lr", self.mlp_lr)
        _share(owner, "mlp_dropout", self.mlp_dropout)
        _share(owner, "mlp_label_smoothing", self.mlp_label_smoothing)
        if not self.mlp_weight_decays or min(self.mlp_weight_decays) < 0:
            raise ParameterError(f"{owner}.mlp_weight_decays must name weight decays >= 0")
        if self.head == "linear":  # the MLP's settings are the MLP head's alone
            default = ProbeConfig.__dataclass_fields__
            changed = [
                f.name
                for f in dataclasses.fields(self)
                if f.name.startswith("mlp_") and getattr(self, f.name) != _default(default[f.name])
            ]
            if changed:
                raise ParameterError(
                    f"{owner}: head 'linear' does not read {', '.join(changed)}; drop them or set "
                    "head='mlp'"
                )

    def check_train_views(self, augment: str) -> None:
        """Refuse unknown views, and NAA variants the augmentation policy does not name."""
        from escnet.augment.audio import NAA_VARIANTS

        views = self.train_views
        if views is None:
            return
        bad = [
            v
            for v in views
            if v not in NAA_VARIANTS and not (v.startswith("roll") and v[4:].lstrip("-").isdigit())
        ]
        if bad or len(set(views)) != len(views):
            raise ParameterError(
                f"ProbeConfig.train_views (--probe-views): {bad or views} (names once each: "
                f"{', '.join(NAA_VARIANTS)}, or roll<frames>)"
            )
        naa = [v for v in views if v in NAA_VARIANTS]
        # The report says which augmentation trained the model: the policy must say NAA.
        if naa and augment != "naa":
            raise ParameterError(
                f"ProbeConfig.train_views names NAA variants ({', '.join(naa)}): set augment='naa'"
            )
        if not naa and augment == "naa":
            raise ParameterError(
                "TrainConfig.augment='naa' but ProbeConfig.train_views names no NAA variant: add "
                "one, or set augment='none'"
            )


@dataclass
class PartialConfig:
    """``method="partial"``: the pretrained ``mn04_as``'s blocks above ``from_block`` and its
    classifier trained on cached activations (:mod:`escnet.training.frozen.partial`).

    Attributes:
        from_block: the last frozen block ``k`` of ``mn04_as.features`` (0 stem .. 15).
        epochs: passes over the training clips, one view of each.
        body_lr, head_lr: peak learning rates of AdamW for the upper blocks and the hidden
            layer, and for the output layer.
        weight_decay: AdamW's weight decay (not on biases and norms).
        label_smoothing: of the training loss.
        batch_size: clips per step.
        warmup_epochs: linear warm-up, then cosine decay.
    """

    from_block: int = 12
    epochs: int = 10
    body_lr: float = 2e-4
    head_lr: float = 5e-4
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    batch_size: int = 32
    warmup_epochs: int = 1

    def __post_init__(self) -> None:
        owner = "PartialConfig"
        k = self.from_block
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 15:
            raise ParameterError(
                f"{owner}.from_block (--partial-from) must be a block index 0-15 of "
                f"mn04_as.features (the last frozen one), got {k!r}"
            )
        _whole(owner, "epochs", self.epochs)
        _whole(owner, "batch_size", self.batch_size)
        _whole(owner, "warmup_epochs", self.warmup_epochs, minimum=0)
        _positive(owner, "body_lr", self.body_lr)
        _positive(owner, "head_lr", self.head_lr)
        _positive(owner, "weight_decay", self.weight_decay, zero=True)
        _share(owner, "label_smoothing", self.label_smoothing)


MethodConfig = FinetuneConfig | ProbeConfig | PartialConfig
#: The methods by name, as ``config.json`` and ``--method`` spell them.
METHODS: dict[str, type[FinetuneConfig] | type[ProbeConfig] | type[PartialConfig]] = {
    "finetune": FinetuneConfig,
    "probe": ProbeConfig,
    "partial": PartialConfig,
}
#: The flat ``config.json`` of earlier versions: its method fields, by section field.
_FLAT_NAMES = {
    "finetune": {f.name: f.name for f in dataclasses.fields(FinetuneConfig)}
    | {"lp_ft": "linear_probe"},
    "probe": {
        "blocks": "probe_blocks",
        "embedding": "probe_embedding",
        "head": "probe_head",
        "train_views": "probe_train_views",
        "tta_shifts": "tta_shifts",
    },
    "partial": {"from_block": "partial_from"},
}
#: Command-line options spelt otherwise than their flat field.
_OPTIONS = {"probe_train_views": "--probe-views", "tta_shifts": "--tta"}
#: Every method field a flat mapping (old config.json, grid file, command line) may hold.
FLAT_METHOD_FIELDS = frozenset(n for names in _FLAT_NAMES.values() for n in names.values())


@dataclass
class TrainConfig:
    """Everything a training run depends on, as plain values; saved as ``config.json``.

    The fields below are shared by every method; ``settings`` holds the chosen method's own
    (:class:`FinetuneConfig`, :class:`ProbeConfig` or :class:`PartialConfig`), so that a
    setting the method does not read cannot be set.

    Attributes:
        dataset: data set name (:func:`escnet.data.datasets.get_dataset`): esc50, esc10, us8k,
            folder.
        model: registered model name (:func:`escnet.models.list_models`); the probe and
            partial methods read ``mn04_as``.
        augment: augmentation policy of the training clips
            (:data:`escnet.augment.policy.POLICIES`); the probe and partial methods take
            ``none`` or ``naa`` (offline NAA variants).
        folds: test folds to run, one training per fold (leave-one-fold-out), in increasing
            order; ``None``: every fold of the data set.
        settings: the method and its settings.
        val_fraction: share of the training folds' recordings held out for model selection;
            0 trains on all of them (and keeps the last epoch or the grid's middle value).
        val_clips_per_recording: at most this many clips of one recording in the validation
            split (:func:`escnet.data.folds.validation_split`); 0: no cap. A saved
            ``config.json`` without it (written before the cap) means 0.
        seed: seeds everything: validation draw, NAA variants, initialisation, shuffling,
            augmentation.
        workers: decoding threads, NAA processes and online-NAA DataLoader workers; ``None``:
            the number of CPU cores, at most 8.
        pretrained: start from the model's pretrained weights; ``None`` (the default): yes when
            the model has pretrained weights on this machine (``escnet models``), which the
            run's ``config.json`` then records. The probe and partial methods read the
            pretrained network: ``False`` is refused for them.
        data_dir: directory holding the data sets (default ``$ESCNET_DATA_DIR``).
        cache_dir: cache of spectral images, NAA variants and features (default
            ``$ESCNET_CACHE_DIR``).
        root: the data set's own directory (required for ``dataset="folder"``).
        data_folds: use only these folds of the data set; ``None``: every fold the copy holds.
        folds_csv, group_pattern, num_folds: folder data sets: how clips are grouped into
            recordings and folds (:func:`escnet.data.datasets.load_folder`); saved so that
            ``escnet evaluate`` rebuilds the same split.
        clip_seconds: pad or crop every clip to this length instead of the data set's own;
            ``None`` keeps the data set's.
        device: ``"auto"`` (CUDA, then MPS, then CPU), or a torch device such as ``"cpu"``,
            ``"cuda:1"``, ``"mps"``.
        protocol: evaluation protocol (:data:`escnet.data.folds.PROTOCOLS`): ``official-folds``
            (the honest default), or the leaky ``random-split`` / ``augment-then-split``
            (:func:`escnet.data.folds.protocol_split`), run on purpose to measure the leak.
    """

    dataset: str = "esc50"
    model: str = "cnn7"
    augment: str = "naa"
    folds: list[int] | None = None
    settings: MethodConfig = dataclasses.field(default_factory=FinetuneConfig)
    val_fraction: float = 0.1
    val_clips_per_recording: int = VAL_CLIPS_PER_RECORDING
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
    protocol: str = "official-folds"

    def __post_init__(self) -> None:
        owner = "TrainConfig"
        if not isinstance(self.settings, FinetuneConfig | ProbeConfig | PartialConfig):
            raise ParameterError(
                f"{owner}.settings must be a FinetuneConfig, ProbeConfig or PartialConfig, got "
                f"{type(self.settings).__name__}"
            )
        if self.folds is not None:
            if not self.folds or self.folds != sorted(set(self.folds)):
                raise ParameterError(
                    f"{owner}.folds must name distinct test folds in increasing order, or be "
                    f"None, got {self.folds!r}"
                )
            for f in self.folds:
                _whole(owner, "folds[]", f)
        _share(owner, "val_fraction", self.val_fraction)
        _whole(owner, "val_clips_per_recording", self.val_clips_per_recording, minimum=0)
        if self.workers is not None:
            _whole(owner, "workers", self.workers, minimum=0)
        _positive(owner, "clip_seconds", self.clip_seconds)
        policy = get_policy(self.augment)  # ValueError listing the policies
        check_protocol(self.protocol)  # ValueError listing the protocols
        if self.protocol == "augment-then-split" and not policy.offline_naa:
            raise ParameterError(
                f"{owner}.protocol='augment-then-split' expands the data set with offline NAA "
                f"before splitting, but augment={self.augment!r} has none; use augment='naa' or "
                "'naa+taa', or protocol='random-split'"
            )
        if isinstance(self.settings, FinetuneConfig):
            if self.settings.lp_ft and policy.online_naa:
                raise ParameterError(
                    f"FinetuneConfig.lp_ft needs training images, but augment={self.augment!r} "
                    "draws new audio every epoch; use augment='naa' or lp_ft=False"
                )
            return
        self._check_frozen()

    def _check_frozen(self) -> None:
        """The probe and partial methods read the frozen, pretrained mn04_as."""
        models = ("mn04_as",) if self.method == "partial" else ("mn04_as", "mn04_as_probe")
        if self.model not in models:
            raise ParameterError(
                f"TrainConfig: method {self.method!r} reads the frozen mn04_as; got "
                f"model={self.model!r}: use model='mn04_as' (--model mn04_as)"
            )
        if self.augment not in ("none", "naa"):
            raise ParameterError(
                f"TrainConfig: method {self.method!r} takes augment='none' or 'naa' (offline NAA "
                f"variants of the training clips), got {self.augment!r}"
            )
        if self.pretrained is False:  # a head on a randomly initialised network means nothing
            raise ParameterError(
                f"TrainConfig: method {self.method!r} reads the pretrained mn04_as: drop "
                "pretrained=False (--no-pretrained)"
            )
        if isinstance(self.settings, ProbeConfig):
            self.settings.check_train_views(self.augment)

    @property
    def method(self) -> str:
        """``"finetune"``, ``"probe"`` or ``"partial"``: the kind of ``settings``."""
        return next(name for name, kind in METHODS.items() if isinstance(self.settings, kind))

    @property
    def finetune(self) -> FinetuneConfig:
        return self._section(FinetuneConfig)

    @property
    def probe(self) -> ProbeConfig:
        return self._section(ProbeConfig)

    @property
    def partial(self) -> PartialConfig:
        return self._section(PartialConfig)

    def _section(self, kind: type[Any]) -> Any:
        if not isinstance(self.settings, kind):
            raise ParameterError(f"TrainConfig: method {self.method!r} has no {kind.__name__}")
        return self.settings

    def split(self, dataset: Dataset, test_fold: int) -> Split | ImageSplit:
        """Test fold ``test_fold``'s split of ``dataset`` by this config's protocol, validation
        share and seed (:func:`escnet.data.folds.protocol_split`)."""
        return protocol_split(
            dataset,
            self.protocol,
            test_fold,
            val_fraction=self.val_fraction,
            seed=self.seed,
            val_clips_per_recording=self.val_clips_per_recording,
        )

    def to_dict(self) -> dict[str, Any]:
        """``config.json``'s content: the shared fields, ``method`` and its section."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del values["settings"]
        return {**asdict_values(values), "method": self.method, self.method: asdict(self.settings)}

    def flat(self) -> dict[str, Any]:
        """Every setting by one name (the section's fields prefixed with the method)."""
        out = self.to_dict()
        for key, value in out.pop(self.method).items():
            out[f"{self.method}.{key}"] = value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from ``config.json``'s content (:meth:`to_dict`), or from a flat mapping as
        earlier versions, grid files and the command line spell it (``method``, ``epochs``,
        ``probe_blocks``...): the one converter.

        In a flat mapping, a method field the method does not read is refused, unless the
        mapping is a saved run's (it holds ``environment``), whose every field was written;
        keys that are no field raise ValueError naming them.
        """
        values = dict(values)
        saved = values.pop("environment", None) is not None
        if saved:
            values = {**SAVED_BEFORE, **values}
        method = values.pop("method", "finetune")
        if method not in METHODS:
            raise ParameterError(
                f"{source}: method must be 'finetune', 'probe' or 'partial', got {method!r}"
            )
        section = values.pop(method, None) or {}
        if not isinstance(section, Mapping):
            raise ParameterError(f"{source}: {method} must be an object of its settings")
        section = {**section, **_from_flat(values, method, source, lenient=saved)}
        shared = {f.name for f in dataclasses.fields(cls)} - {"settings"}
        unknown = sorted(set(values) - shared)
        if unknown:
            raise ParameterError(
                f"{source}: unknown TrainConfig field(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(shared | FLAT_METHOD_FIELDS | {'method'}))}"
            )
        kind = METHODS[method]
        names = {f.name for f in dataclasses.fields(kind)}
        extra = sorted(set(section) - names)
        if extra:
            raise ParameterError(
                f"{source}: unknown {kind.__name__} field(s) {', '.join(extra)}; known: "
                f"{', '.join(sorted(names))}"
            )
        return cls(settings=kind(**section), **{k: values[k] for k in shared if k in values})

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Load a ``config.json`` written by :func:`cross_validate` (any version) or by hand."""
        p = Path(path)
        try:
            values = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: no such config file") from None
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(values, dict):
            raise ParameterError(f"{p}: expected a JSON object of TrainConfig fields")
        return cls.from_dict(values, source=str(p))


def asdict_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Lists copied, so that the dict does not share them with the config."""
    return {k: list(v) if isinstance(v, list) else v for k, v in values.items()}


def _from_flat(
    values: dict[str, Any], method: str, source: str, *, lenient: bool
) -> dict[str, Any]:
    """Take the method fields out of a flat mapping: the method's own become its section;
    another method's are refused (``lenient``: dropped, as a saved run's ignored fields)."""
    section = {}
    for name, flat in _FLAT_NAMES[method].items():
        if flat in values:
            section[name] = values.pop(flat)
    if method == "probe" and isinstance(section.get("blocks"), list):
        section["blocks"] = sorted(section["blocks"])
    others = sorted(n for n in FLAT_METHOD_FIELDS & set(values) if values[n] is not None)
    for name in FLAT_METHOD_FIELDS & set(values):
        values.pop(name)
    if others and not lenient:
        named = [f"{n} ({_OPTIONS.get(n, '--' + n.replace('_', '-'))})" for n in others]
        raise ParameterError(
            f"{source}: method {method!r} does not read {', '.join(named)}; drop "
            f"{'it' if len(others) == 1 else 'them'} or choose the method that reads "
            f"{'it' if len(others) == 1 else 'them'}"
        )
    return section


def check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    """Refuse to resume a run whose saved config (any version) differs from ``config`` in a
    field that changes the numbers."""
    try:
        then = TrainConfig.from_dict({**saved, "environment": {}}, source=str(path)).flat()
    except (ParameterError, TypeError) as exc:
        raise EscnetError(f"{path}: its saved configuration cannot be read ({exc})") from None
    now = config.flat()
    diffs = [
        f"{k}: {then.get(k)!r} there, {now[k]!r} now"
        for k in sorted(set(now) | set(then))
        if k.rpartition(".")[2] not in _RESUME_FREE_FIELDS and then.get(k) != now.get(k)
    ]
    if diffs:
        raise EscnetError(
            f"{path}: cannot resume a run made with another configuration ({'; '.join(diffs)}); "
            "resume with the run's own config.json or start a new run directory"
        )
