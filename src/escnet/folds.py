"""Fold splits: which clips train, which validate, which test.

Accuracy is only honest on the official folds: :func:`fold_split` holds one fold out for testing
and never lets a clip of that fold, or of a recording (group) that has a clip in it, into training.
Model selection uses :func:`validation_split`, carved out of the *training* folds by group.
:func:`random_split` reproduces the leaky protocol some papers used, on purpose and labelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from escnet.datasets import Dataset


@dataclass(frozen=True)
class Split:
    """Indices into a :class:`~escnet.datasets.Dataset` for one train/validation/test split."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    test_fold: int | None
    protocol: str = "official-folds"

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


def fold_split(
    dataset: Dataset, test_fold: int, *, val_fraction: float = 0.1, seed: int = 0
) -> Split:
    """Hold out ``test_fold``; split the other folds into train and a grouped validation set.

    Args:
        test_fold: an official fold of ``dataset``.
        val_fraction: share of the training folds' *groups* kept for validation (0 for none).
        seed: seeds the validation draw.
    """
    if test_fold not in dataset.folds:
        raise ValueError(
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
    train, val = validation_split(dataset, train_idx, val_fraction, seed)
    return Split(tuple(train), tuple(val), tuple(test_idx), test_fold)


def validation_split(
    dataset: Dataset, indices: Iterable[int], fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (train, val) by recording group, stratified by class.

    For each class, whole groups whose majority class it is are drawn (seeded) until about
    ``fraction`` of that class's clips are in validation.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    idx = [int(i) for i in indices]
    if fraction == 0.0 or not idx:
        return idx, []
    members: dict[str, list[int]] = {}
    for i in idx:
        members.setdefault(dataset[i].group, []).append(i)
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
            taken += len(members[groups[j]])
    train = [i for i in idx if dataset[i].group not in val_groups]
    val = [i for i in idx if dataset[i].group in val_groups]
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

    Fragments of one recording land on both sides, which inflates accuracy by 10-15 points on
    UrbanSound8K. Offered only to show where such numbers come from; results carry
    ``protocol="random-split (leaky)"``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(len(dataset))
    n_test = int(round(test_fraction * len(dataset)))
    return Split(
        tuple(int(i) for i in perm[n_test:]),
        (),
        tuple(int(i) for i in perm[:n_test]),
        None,
        protocol="random-split (leaky)",
    )


def parse_folds(text: str) -> list[int]:
    """Parse a fold list as given on the command line: ``"1-5"``, ``"1,3,5"``, ``"2"``."""
    folds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                folds.extend(range(lo, hi + 1))
            else:
                folds.append(int(part))
        except ValueError:
            raise ValueError(f"--folds {text!r}: expected e.g. '1-5' or '1,3,5'") from None
    if not folds:
        raise ValueError(f"--folds {text!r}: no fold given")
    return sorted(set(folds))
