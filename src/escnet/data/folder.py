"""A data set of one's own: any directory with one sub-directory of audio files per class.

Folds come from a CSV or from a stratified k-fold split that keeps each recording group (given
by a regular expression on the file names) in one fold. :func:`load_folder` is registered as the
``folder`` data set of :func:`escnet.data.datasets.get_dataset`.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from escnet.data.audio import AUDIO_EXTENSIONS
from escnet.data.clips import Clip, Dataset, fold_list, sorted_folds
from escnet.data.metadata import MAX_FOLD, check_unique, read_rows
from escnet.errors import DatasetError, ParameterError

__all__ = ["load_folder", "stratified_group_folds"]

log = logging.getLogger(__name__)


def _compile_group_pattern(group_pattern: str | None) -> re.Pattern[str] | None:
    if not group_pattern:
        return None
    try:
        return re.compile(group_pattern)
    except re.error as exc:
        raise DatasetError(
            f"folder: --group-pattern {group_pattern!r} is not a valid regular expression "
            f"({exc}); e.g. '^(rec\\d+)_' groups rec12_a.wav with rec12_b.wav"
        ) from None


def _class_files(
    base: Path, group_pattern: str | None
) -> tuple[list[str], list[tuple[Path, int, str]]]:
    """Class names and (path, label, group) per audio file; a class directory without audio is
    reported and left out, so that it does not become a class no clip can teach."""
    pattern = _compile_group_pattern(group_pattern)
    dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes: list[str] = []
    files: list[tuple[Path, int, str]] = []
    for d in dirs:
        audio = [
            p
            for p in sorted(d.iterdir())
            if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
        ]
        if not audio:
            log.warning(
                "folder: %s has no audio files (%s); it is not counted as a class",
                d,
                "/".join(AUDIO_EXTENSIONS),
            )
            continue
        for path in audio:
            group = f"{d.name}/{path.stem}"
            if pattern is not None:
                m = pattern.search(path.name)
                if m is None:
                    raise DatasetError(
                        f"folder: --group-pattern {group_pattern!r} does not match {path}; "
                        f"fix the pattern so that it matches every file name"
                    )
                group = (m.group(1) if m.groups() else m.group(0)) or ""
                if not group:
                    raise DatasetError(
                        f"folder: --group-pattern {group_pattern!r} matches an empty group in "
                        f"{path}; make the pattern match at least one character"
                    )
            files.append((path, len(classes), group))
        classes.append(d.name)
    return classes, files


def _folds_from_csv(base: Path, folds_csv: Path, files: Sequence[Path]) -> list[int]:
    rows = read_rows(folds_csv, ["filename", "fold"])
    check_unique(rows, "filename")
    fold_by_name = {r.text("filename"): r.integer("fold", 1, MAX_FOLD) for r in rows}
    assigned = []
    for path in files:
        fold = fold_by_name.get(path.relative_to(base).as_posix(), fold_by_name.get(path.name))
        if fold is None:
            raise DatasetError(f"folder: {path} has no row in {folds_csv} (column filename)")
        assigned.append(fold)
    return assigned


def load_folder(
    root: str | os.PathLike[str],
    *,
    folds_csv: str | os.PathLike[str] | None = None,
    num_folds: int = 5,
    group_pattern: str | None = None,
    seed: int = 0,
    folds: Iterable[int] | None = None,
    duration: float | None = 5.0,
) -> Dataset:
    """Any directory with one sub-directory of audio files per class.

    Folds come from ``folds_csv`` (columns ``filename`` and ``fold``; filename relative to
    ``root`` or a bare file name) or, without it, from a stratified k-fold split into
    ``num_folds`` folds that keeps every group in one fold. A group is the first match (group 1
    if the pattern has a group) of the regular expression ``group_pattern`` on the file name;
    without a pattern each file is its own group. A class directory without audio files is
    reported (a logged warning) and is not a class.

    Raises:
        DatasetError: ``root`` holds no class with audio, ``group_pattern`` is invalid or misses
            a file, ``folds`` asks for a fold the data set does not have, ...
        MetadataError: a row of ``folds_csv`` is wrong (a file listed twice, a fold that is not
            a whole number >= 1, ...).
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"folder: {base} is not a directory")
    if folds_csv is None and (isinstance(num_folds, bool) or not 2 <= num_folds <= MAX_FOLD):
        raise ParameterError(f"--num-folds / num_folds must be in 2..{MAX_FOLD}, got {num_folds}")
    classes, files = _class_files(base, group_pattern)
    if not classes:
        raise DatasetError(
            f"folder: {base} has no class sub-directory with audio files "
            f"({'/'.join(AUDIO_EXTENSIONS)}); expected {base}/<class>/*.wav"
        )
    if folds_csv is not None:
        assigned = _folds_from_csv(base, Path(folds_csv), [p for p, _, _ in files])
        source = f"{folds_csv}"
    else:
        assigned = stratified_group_folds(
            [label for _, label, _ in files], [g for _, _, g in files], num_folds, seed
        )
        source = f"--num-folds {num_folds}"
    clips = [
        Clip(path, label, fold, group, path.stem)
        for (path, label, group), fold in zip(files, assigned, strict=True)
    ]
    wanted = sorted_folds(folds)
    if wanted is not None:
        have = sorted(set(assigned))
        absent = [f for f in wanted if f not in have]
        if absent:
            raise DatasetError(
                f"folder: fold(s) {absent} requested but {base} has folds "
                f"{fold_list(have)} (from {source}); pass --folds among those"
                + ("" if folds_csv is not None else f", or --num-folds {max(absent)}")
            )
        clips = [c for c in clips if c.fold in wanted]
    # What rebuilds these very folds: a run saves it (Dataset.options).
    options: dict[str, object] = {"root": str(base), "group_pattern": group_pattern}
    if folds_csv is not None:
        options["folds_csv"] = str(folds_csv)
    else:
        options.update(num_folds=num_folds, seed=seed)
    options["folds"] = wanted
    return Dataset(
        "folder",
        base,
        classes,
        clips,
        duration,
        options={k: v for k, v in options.items() if v is not None},
    )


def stratified_group_folds(
    labels: Sequence[int], groups: Sequence[str], num_folds: int, seed: int = 0
) -> list[int]:
    """Assign folds 1..num_folds so every group lies in one fold and classes spread evenly.

    Groups are taken largest first (ties in a seeded random order) and each is put in the fold
    that currently holds the fewest clips of the group's majority class, then fewest overall.
    """
    if num_folds < 2:
        raise ParameterError(f"num_folds must be >= 2, got {num_folds}")
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    if len(members) < num_folds:
        raise DatasetError(
            f"folder: only {len(members)} recording group(s) for {num_folds} folds; "
            + (
                f"pass --num-folds {len(members)} or fewer, or a finer --group-pattern"
                if len(members) >= 2
                else "a split needs two groups or more: use a finer --group-pattern"
            )
        )
    rng = np.random.default_rng(seed)
    names = list(members)
    order = rng.permutation(len(names))
    ranked = sorted((names[i] for i in order), key=lambda g: -len(members[g]))
    num_classes = max(labels) + 1
    per_class = np.zeros((num_folds, num_classes), dtype=np.int64)
    total = np.zeros(num_folds, dtype=np.int64)
    result = [0] * len(labels)
    for g in ranked:
        idx = members[g]
        major = Counter(labels[i] for i in idx).most_common(1)[0][0]
        fold = min(range(num_folds), key=lambda f: (per_class[f, major], total[f], f))
        for i in idx:
            result[i] = fold + 1
            per_class[fold, labels[i]] += 1
        total[fold] += len(idx)
    return result
