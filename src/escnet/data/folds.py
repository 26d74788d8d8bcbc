"""Fold splits: which clips train, which validate, which test.

Accuracy is only honest on the official folds: :func:`fold_split` holds one fold out for testing
and never lets a clip of that fold, or of a recording (group) that has a clip in it, into training.
Model selection uses :func:`validation_split`, carved out of the *training* folds by group.

Three evaluation protocols are named in :data:`PROTOCOLS`; :func:`protocol_split` looks one up.
Only the first is honest; the other two reproduce, on purpose and labelled ``(leaky)``, how
published figures far above the official-fold ones can arise:

``official-folds`` (:func:`fold_split`)
    leave-one-fold-out on the official folds, recordings grouped, augmentation of training only.
``random-split`` (:func:`random_fold_split`)
    clips dealt into as many folds as the data set has, at random, ignoring folds and
    recordings: fragments of one recording land in training and test.
``augment-then-split`` (:func:`augment_then_split`)
    every clip expanded (original + NAA variants) *first*, then the expanded images dealt into
    folds at random: variants of a test clip are trained on. The split is over images
    (:class:`ImageSplit`), not clips.

:func:`random_split` is the older one-shot leaky clip split (a test fraction, no folds).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from escnet.data.datasets import Dataset
from escnet.errors import ParameterError


@dataclass(frozen=True)
class Split:
    """Indices into a :class:`~escnet.data.clips.Dataset` for one train/validation/test split."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    test_fold: int | None
    protocol: str = "official-folds"

    def test_ids(self, dataset: Dataset) -> list[str] | None:
        """The clip ids of the test fold, so that a rebuilt split can be checked to be the same."""
        return [dataset[i].clip_id for i in self.test]

    def check_disjoint(self, dataset: Dataset) -> None:
        """Raise AssertionError if any clip or recording group is on two sides of the split."""
        sides = {"train": self.train, "val": self.val, "test": self.test}
        seen: dict[int, str] = {}
        for side, idx in sides.items():
            for i in idx:
                if i in seen:
                    raise AssertionError(
                        f"clip {dataset[i].clip_id} is in both {seen[i]} and {side}"
                    )
                seen[i] = side
        if self.protocol != "official-folds":
            return
        group_side: dict[str, str] = {}
        for side, idx in sides.items():
            for i in idx:
                g = dataset[i].group
                if group_side.setdefault(g, side) != side:
                    raise AssertionError(f"recording {g} is in both {group_side[g]} and {side}")

    def check_training_sources(self, sources: Iterable[int], dataset: Dataset, what: str) -> None:
        """Raise RuntimeError if rows made for training (``what``, e.g. "probe training rows")
        come from a clip outside ``train``: the guard behind "never a validation or test clip's
        features or variants"."""
        # Both tests: a split that names a clip on two sides must not let it through either.
        train, held_out = set(self.train), set(self.val) | set(self.test)
        leaked = sorted(s for s in {int(s) for s in sources} if s not in train or s in held_out)
        if leaked:
            raise RuntimeError(
                f"{what} come from clips outside the training split: "
                f"{[dataset[i].clip_id for i in leaked[:5]]}"
            )


#: At most this many clips of one recording stand for it in a validation split. Data sets cut
#: into many slices per recording (UrbanSound8K: up to 79 slices of one Freesound recording in
#: its three folds here) otherwise fill a class's validation share with one or two recordings, and
#: a validation score that rests on so few recordings predicts the test fold poorly. ESC-50's
#: recordings give at most 8 clips, so the cap never binds there.
VAL_CLIPS_PER_RECORDING = 8


def fold_split(
    dataset: Dataset,
    test_fold: int,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    val_clips_per_recording: int = VAL_CLIPS_PER_RECORDING,
) -> Split:
    """Hold out ``test_fold``; split the other folds into train and a grouped validation set.

    Args:
        test_fold: an official fold of ``dataset``.
        val_fraction: share of the training folds' *groups* kept for validation (0 for none).
        seed: seeds the validation draw.
        val_clips_per_recording: at most this many clips of one recording in validation
            (:func:`validation_split`); 0: no cap.
    """
    if test_fold not in dataset.folds:
        raise ParameterError(
            f"test_fold {test_fold} is not a fold of {dataset.name}; folds: {dataset.folds}"
        )
    folds = dataset.fold_of
    test_idx = [int(i) for i in np.flatnonzero(folds == test_fold)]
    test_groups = {dataset[i].group for i in test_idx}
    # Official folds already keep recordings together; this guards user-made fold files.
    train_idx = [
        int(i)
        for i in np.flatnonzero(folds != test_fold)
        if dataset[int(i)].group not in test_groups
    ]
    train, val = validation_split(
        dataset, train_idx, val_fraction, seed, max_per_recording=val_clips_per_recording
    )
    return Split(tuple(train), tuple(val), tuple(test_idx), test_fold)


def validation_split(
    dataset: Dataset,
    indices: Iterable[int],
    fraction: float,
    seed: int = 0,
    *,
    max_per_recording: int = VAL_CLIPS_PER_RECORDING,
) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (train, val) by recording group, stratified by class.

    For each class, whole groups whose majority class it is are drawn (seeded) until about
    ``fraction`` of that class's clips are in validation. A drawn group with more than
    ``max_per_recording`` clips gives that many to validation, spread evenly over its clips, and
    the rest to neither side: training on them would put the recording on both sides. ``0``
    lifts the cap.
    """
    if not 0.0 <= fraction < 1.0:
        raise ParameterError(f"val_fraction must be in [0, 1), got {fraction}")
    if max_per_recording < 0:
        raise ParameterError(f"max_per_recording must be >= 0 (0: no cap), got {max_per_recording}")
    idx = [int(i) for i in indices]
    if fraction == 0.0 or not idx:
        return idx, []
    members: dict[str, list[int]] = {}
    for i in idx:
        members.setdefault(dataset[i].group, []).append(i)
    cap = max_per_recording or max(len(m) for m in members.values())
    by_class: dict[int, list[str]] = {}
    for g, m in members.items():
        labels = [dataset[i].label for i in m]
        by_class.setdefault(max(set(labels), key=labels.count), []).append(g)
    rng = np.random.default_rng(seed)
    val_groups: set[str] = set()
    for label in sorted(by_class):
        groups = sorted(by_class[label])
        target = fraction * sum(len(members[g]) for g in groups)
        taken = 0
        for j in rng.permutation(len(groups)):
            if taken >= target - 0.5:
                break
            val_groups.add(groups[j])
            taken += min(len(members[groups[j]]), cap)
    val_set: set[int] = set()
    for g in val_groups:
        clips = sorted(members[g], key=lambda i: dataset[i].clip_id)
        picks = np.linspace(0, len(clips) - 1, min(len(clips), cap)).round().astype(int)
        val_set.update(clips[int(k)] for k in picks)
    train = [i for i in idx if dataset[i].group not in val_groups]
    val = [i for i in idx if i in val_set]
    return train, val


def leave_one_fold_out(
    dataset: Dataset,
    folds: Iterable[int] | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Iterator[Split]:
    """One :func:`fold_split` per test fold in ``folds`` (default: every fold)."""
    for fold in folds if folds is not None else dataset.folds:
        yield fold_split(dataset, fold, val_fraction=val_fraction, seed=seed)


def random_split(dataset: Dataset, test_fraction: float = 0.2, *, seed: int = 0) -> Split:
    """The LEAKY protocol: a random clip-level split that ignores folds and recordings.

    Fragments of one recording land on both sides; published work reports that this inflates
    accuracy by 10-15 points on UrbanSound8K, and escnet's own grid measured
    smaller gains on ESC-10 and ESC-50 (the README's leakage tables). Offered only to show where
    such numbers come from; results carry ``protocol="random-split (leaky)"``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ParameterError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(len(dataset))
    n_test = int(round(test_fraction * len(dataset)))
    return Split(
        tuple(int(i) for i in perm[n_test:]),
        (),
        tuple(int(i) for i in perm[:n_test]),
        None,
        protocol="random-split (leaky)",
    )


# --------------------------------------------------------------------------------------------
# Evaluation protocols

#: Evaluation protocols by name, the honest one first (the default of training).
PROTOCOLS: tuple[str, ...] = ("official-folds", "random-split", "augment-then-split")
#: The protocols that let near-copies of test clips into training, on purpose.
LEAKY_PROTOCOLS: frozenset[str] = frozenset({"random-split", "augment-then-split"})
#: Images per clip after the paper's offline NAA expansion: the original + 6 variants.
NAA_IMAGES_PER_CLIP = 7


def check_protocol(name: str) -> str:
    """``name`` if it is one of :data:`PROTOCOLS`; ValueError listing them otherwise."""
    if name not in PROTOCOLS:
        raise ParameterError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return name


def is_leaky(protocol: str) -> bool:
    """Whether ``protocol`` (a name of :data:`PROTOCOLS`, or a label) leaks test material."""
    return protocol.removesuffix(" (leaky)") in LEAKY_PROTOCOLS


def protocol_label(protocol: str) -> str:
    """The label every table, plot and file name shows: ``"random-split (leaky)"`` for a leaky
    protocol, the name itself for ``official-folds``."""
    name = check_protocol(protocol.removesuffix(" (leaky)"))
    return f"{name} (leaky)" if name in LEAKY_PROTOCOLS else name


def _check_test_fold(dataset: Dataset, test_fold: int) -> None:
    if test_fold not in dataset.folds:
        raise ParameterError(
            f"test_fold {test_fold} is not a fold of {dataset.name}; folds: {dataset.folds}"
        )


def _deal(n: int, folds: Sequence[int], seed: int) -> np.ndarray:
    """A fold for each of ``n`` items: a seeded permutation dealt round-robin, so fold sizes
    differ by at most one."""
    order = np.random.default_rng(seed).permutation(n)
    assigned = np.empty(n, dtype=np.int64)
    assigned[order] = np.asarray(folds, dtype=np.int64)[np.arange(n) % len(folds)]
    return assigned


def _random_val(indices: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) of ``indices``, ``fraction`` of them drawn at random into val."""
    if not 0.0 <= fraction < 1.0:
        raise ParameterError(f"val_fraction must be in [0, 1), got {fraction}")
    idx = list(indices)
    n_val = int(round(fraction * len(idx)))
    # Its own stream: the validation draw must not repeat the fold draw's permutation.
    chosen = set(np.random.default_rng([seed, 1]).permutation(len(idx))[:n_val].tolist())
    train = [i for j, i in enumerate(idx) if j not in chosen]
    val = [i for j, i in enumerate(idx) if j in chosen]
    return train, val


def random_folds(dataset: Dataset, *, seed: int = 0) -> np.ndarray:
    """A random fold for every clip, ignoring the official folds and the recordings: the clips
    are dealt into ``dataset.folds`` (same fold numbers, sizes within one of each other)."""
    return _deal(len(dataset), dataset.folds, seed)


def random_fold_split(
    dataset: Dataset, test_fold: int, *, val_fraction: float = 0.1, seed: int = 0
) -> Split:
    """The LEAKY ``random-split`` protocol: hold out ``test_fold`` of :func:`random_folds`.

    Clips of one recording land on both sides; validation clips are drawn at random from the
    training clips (``val_fraction`` of them). Every ``test_fold`` under one ``seed`` uses the
    same random folds, so the folds of a run partition the data set.
    """
    _check_test_fold(dataset, test_fold)
    folds = random_folds(dataset, seed=seed)
    test = [int(i) for i in np.flatnonzero(folds == test_fold)]
    train, val = _random_val(
        [int(i) for i in np.flatnonzero(folds != test_fold)], val_fraction, seed
    )
    return Split(tuple(train), tuple(val), tuple(test), test_fold, protocol_label("random-split"))


@dataclass(frozen=True)
class ImageSplit:
    """A split of the *expanded* data set (``augment-then-split``): indices are image numbers.

    Image ``m`` is version ``m % per_clip`` of clip ``m // per_clip`` of the data set; version 0
    is the original, versions 1.. the NAA variants in the order the expansion produced them.
    """

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    test_fold: int | None
    per_clip: int = NAA_IMAGES_PER_CLIP
    protocol: str = "augment-then-split (leaky)"

    def clips(self, side: str) -> list[int]:
        """Sorted data set indices of the clips with an image on ``side`` (train, val, test)."""
        return sorted({m // self.per_clip for m in getattr(self, side)})

    def leaked_clips(self) -> list[int]:
        """Clips with one image in test and another in training: the leak this protocol makes."""
        return sorted(set(self.clips("test")) & set(self.clips("train")))

    def test_ids(self, dataset: Dataset) -> list[str] | None:
        """``None``: a split of images has no test clips to record (:meth:`Split.test_ids`)."""
        return None

    def check_disjoint(self, dataset: Dataset | None = None) -> None:
        """Raise AssertionError if an image is on two sides (clips may be, by design)."""
        seen: dict[int, str] = {}
        for side in ("train", "val", "test"):
            for m in getattr(self, side):
                if m in seen:
                    raise AssertionError(f"image {m} is in both {seen[m]} and {side}")
                seen[m] = side


def augment_then_split(
    dataset: Dataset,
    test_fold: int,
    *,
    per_clip: int = NAA_IMAGES_PER_CLIP,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> ImageSplit:
    """The LEAKIEST protocol, ``augment-then-split``: split the expanded images at random.

    The data set is thought of as expanded first (each clip -> ``per_clip`` images: original and
    NAA variants); the ``len(dataset) * per_clip`` images are dealt into ``dataset.folds`` at
    random, ``test_fold``'s images are tested, ``val_fraction`` of the rest drawn at random for
    validation. Variants of almost every test clip are therefore in training.
    """
    _check_test_fold(dataset, test_fold)
    if isinstance(per_clip, bool) or not isinstance(per_clip, int) or per_clip < 1:
        raise ParameterError(f"per_clip must be an integer >= 1, got {per_clip!r}")
    folds = _deal(len(dataset) * per_clip, dataset.folds, seed)
    test = [int(m) for m in np.flatnonzero(folds == test_fold)]
    train, val = _random_val(
        [int(m) for m in np.flatnonzero(folds != test_fold)], val_fraction, seed
    )
    return ImageSplit(tuple(train), tuple(val), tuple(test), test_fold, per_clip)


def protocol_split(
    dataset: Dataset,
    protocol: str,
    test_fold: int,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    per_clip: int = NAA_IMAGES_PER_CLIP,
    val_clips_per_recording: int = VAL_CLIPS_PER_RECORDING,
) -> Split | ImageSplit:
    """The split of ``test_fold`` under ``protocol`` (one of :data:`PROTOCOLS`);
    ``val_clips_per_recording`` caps the official folds' validation (:func:`fold_split`).

    ``official-folds`` -> :func:`fold_split`, ``random-split`` -> :func:`random_fold_split`
    (both a clip :class:`Split`), ``augment-then-split`` -> :func:`augment_then_split` (an
    :class:`ImageSplit` over ``per_clip`` images per clip).
    """
    name = check_protocol(protocol.removesuffix(" (leaky)"))
    if name == "official-folds":
        return fold_split(
            dataset,
            test_fold,
            val_fraction=val_fraction,
            seed=seed,
            val_clips_per_recording=val_clips_per_recording,
        )
    if name == "random-split":
        return random_fold_split(dataset, test_fold, val_fraction=val_fraction, seed=seed)
    return augment_then_split(
        dataset, test_fold, per_clip=per_clip, val_fraction=val_fraction, seed=seed
    )


#: Most folds a --folds list may name (a typo such as ``1-1000000`` must not allocate a million).
MAX_FOLDS = 1000


def parse_folds(text: str) -> list[int]:
    """Parse a fold list as given on the command line: ``"1-5"``, ``"1,3,5"``, ``"2"``.

    Raises:
        ValueError: naming ``--folds``, for anything but whole numbers >= 1 and increasing
            ranges of them.
    """
    folds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        bounds = [b.strip() for b in part.split("-", 1)]
        if not all(b.isascii() and b.isdigit() and len(b) <= 9 for b in bounds):
            raise ParameterError(
                f"--folds {text!r}: {part!r} is not a fold number or range; folds are whole "
                "numbers from 1, e.g. '1-5' or '1,3,5'"
            )
        lo, hi = int(bounds[0]), int(bounds[-1])
        if lo < 1:
            raise ParameterError(f"--folds {text!r}: folds are numbered from 1, not {lo}")
        if hi < lo:
            raise ParameterError(
                f"--folds {text!r}: the range {part!r} runs backwards; write {hi}-{lo}"
            )
        if hi - lo + 1 > MAX_FOLDS or hi > MAX_FOLDS:
            raise ParameterError(f"--folds {text!r}: at most fold {MAX_FOLDS}")
        folds.update(range(lo, hi + 1))
    if not folds:
        raise ParameterError(f"--folds {text!r}: no fold given")
    return sorted(folds)
