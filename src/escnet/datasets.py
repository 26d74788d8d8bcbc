"""Data sets with their official folds: ESC-50, ESC-10, UrbanSound8K and any class-per-folder tree.

A :class:`Dataset` is a list of :class:`Clip` records (audio path, label, fold, group) plus the
class names. Nothing is decoded here: audio is loaded by :mod:`escnet.audio`, split by fold in
:mod:`escnet.folds`. Each clip's *group* is the recording it was cut from (ESC-50's ``src_file``,
UrbanSound8K's ``fsID``): clips of one group must never be on both sides of a split.

A clip's audio is found by the metadata filename's stem with any of ``.wav``, ``.flac``, ``.ogg``,
because re-encoded copies of these data sets are common.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from escnet.audio import AUDIO_EXTENSIONS
from escnet.errors import DatasetError
from escnet.settings import data_dir as default_data_dir


@dataclass(frozen=True)
class Clip:
    """One labelled audio clip of a data set."""

    path: Path
    label: int
    fold: int
    group: str
    clip_id: str


@dataclass
class Dataset:
    """Clips, class names and the audio settings the data set was recorded for.

    Attributes:
        name: registry name (``esc50``, ``esc10``, ``us8k``, ``folder``).
        root: directory the data set was read from.
        classes: class names; a clip's ``label`` indexes this list.
        clips: the clips, in metadata order.
        duration: clip length in seconds that loading pads or crops to (ESC: 5 s, UrbanSound8K:
            4 s, zero-padded); ``None`` keeps each file's length.
    """

    name: str
    root: Path
    classes: list[str]
    clips: list[Clip]
    duration: float | None = 5.0

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Clip:
        return self.clips[index]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def folds(self) -> list[int]:
        return sorted({c.fold for c in self.clips})

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=np.int64)

    @property
    def fold_of(self) -> np.ndarray:
        return np.array([c.fold for c in self.clips], dtype=np.int64)

    def fold_sizes(self) -> dict[int, int]:
        return dict(sorted(Counter(c.fold for c in self.clips).items()))

    def subset(self, indices: Iterable[int]) -> Dataset:
        """A data set of the same classes holding only the clips at ``indices``."""
        return Dataset(
            self.name, self.root, self.classes, [self.clips[i] for i in indices], self.duration
        )

    def info(self) -> dict[str, Any]:
        """Summary used by ``escnet info``: counts of clips, classes, folds and groups."""
        per_class = Counter(c.label for c in self.clips)
        return {
            "dataset": self.name,
            "root": str(self.root),
            "clips": len(self.clips),
            "classes": self.num_classes,
            "folds": self.fold_sizes(),
            "groups": len({c.group for c in self.clips}),
            "clips_per_class": {"min": min(per_class.values()), "max": max(per_class.values())}
            if per_class
            else {},
            "duration_s": self.duration,
        }


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: metadata file not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}"
            )
        return list(reader)


def _audio_index(directory: Path) -> dict[str, Path]:
    """Map stem -> audio path for one directory, preferring extensions in AUDIO_EXTENSIONS order."""
    found: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
    with os.scandir(directory) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            ext = ext.lower()
            if ext in rank and (stem not in found or rank[ext] < rank[found[stem].suffix.lower()]):
                found[stem] = Path(entry.path)
    return found


def _missing_audio_error(
    name: str, directory: Path, missing: list[str], total: int
) -> DatasetError:
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    exts = "/".join(AUDIO_EXTENSIONS)
    return DatasetError(
        f"{name}: {len(missing)} of {total} clips listed in the metadata have no audio file "
        f"({exts}) in {directory}: {shown}. The copy is incomplete: download it again with "
        f"`escnet download {name}` or point --data-dir / $ESCNET_DATA_DIR at a complete copy."
    )


def _resolve_root(
    name: str, root: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] | None
) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return default_data_dir(data_dir) / name


def _parse_folds(folds: Iterable[int] | None) -> list[int] | None:
    return None if folds is None else sorted({int(f) for f in folds})


#: ESC-10's classes in escnet's label order: sorted by their ESC-50 target number.
ESC10_CLASSES: tuple[str, ...] = (
    "dog", "rooster", "rain", "sea_waves", "crackling_fire",
    "crying_baby", "sneezing", "clock_tick", "helicopter", "chainsaw",
)  # fmt: skip


def load_esc50(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
    esc10: bool = False,
) -> Dataset:
    """ESC-50 (or its ESC-10 subset with ``esc10=True``) from ``meta/esc50.csv`` + ``audio/``.

    2000 clips of 5 s, 50 classes, official folds 1-5 (400 clips each); group = ``src_file``.
    ESC-10 keeps the 400 ``esc10 == True`` rows and renumbers their labels 0-9 in the order of
    :data:`ESC10_CLASSES` (ascending ESC-50 target).

    Args:
        root: the data set's own directory; default ``<data_dir>/esc50``.
        data_dir: directory holding ``esc50/``; default ``$ESCNET_DATA_DIR``.
        folds: keep only these folds (default: all five).
        esc10: return the ESC-10 subset.
    """
    name = "esc10" if esc10 else "esc50"
    base = _resolve_root("esc50", root, data_dir)
    meta = base / "meta" / "esc50.csv"
    if not meta.is_file():
        raise DatasetError(
            f"{name}: {meta} not found. Download the data set with `escnet download esc50`, or "
            f"point --data-dir / $ESCNET_DATA_DIR at a directory that holds esc50/."
        )
    rows = _read_csv(meta, ["filename", "fold", "target", "category", "esc10", "src_file"])
    if esc10:
        rows = [r for r in rows if r["esc10"].strip().lower() == "true"]
    wanted = _parse_folds(folds)
    if wanted is not None:
        present = {int(r["fold"]) for r in rows}
        absent = [f for f in wanted if f not in present]
        if absent:
            raise DatasetError(
                f"{name}: fold(s) {absent} not in {meta}; it has folds {sorted(present)}"
            )
        rows = [r for r in rows if int(r["fold"]) in wanted]

    by_target = {int(r["target"]): r["category"] for r in rows}
    if esc10:
        classes = [by_target[t] for t in sorted(by_target)]
        remap = {t: i for i, t in enumerate(sorted(by_target))}
    else:
        classes = (
            [by_target.get(t, f"class_{t}") for t in range(max(by_target) + 1)] if by_target else []
        )
        remap = {t: t for t in by_target}

    audio_dir = base / "audio"
    if not audio_dir.is_dir():
        raise DatasetError(f"{name}: audio directory {audio_dir} not found")
    index = _audio_index(audio_dir)
    clips, missing = [], []
    for r in rows:
        stem = Path(r["filename"]).stem
        path = index.get(stem)
        if path is None:
            missing.append(stem)
            continue
        clips.append(
            Clip(path, remap[int(r["target"])], int(r["fold"]), f"esc:{r['src_file']}", stem)
        )
    if missing:
        raise _missing_audio_error(name, audio_dir, missing, len(rows))
    return Dataset(name, base, classes, clips, 5.0)


def load_esc10(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
) -> Dataset:
    """ESC-10: the ``esc10 == True`` rows of ESC-50; 400 clips, 10 classes, 5 folds of 80."""
    return load_esc50(root, data_dir=data_dir, folds=folds, esc10=True)


def load_us8k(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
) -> Dataset:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/fold1..fold10``; 8732 clips of up to
    4 s (zero-padded to 4 s), 10 classes, 10 official folds; group = Freesound ID ``fsID``.

    Args:
        folds: the folds to use (default: all ten). A partial copy works when told which folds it
            holds; a requested fold whose directory is missing raises :class:`DatasetError`.
    """
    base = _resolve_root("us8k", root, data_dir)
    meta = base / "metadata" / "UrbanSound8K.csv"
    if not meta.is_file():
        raise DatasetError(
            f"us8k: {meta} not found. Download the data set with `escnet download us8k`, or "
            f"point --data-dir / $ESCNET_DATA_DIR at a directory that holds us8k/."
        )
    rows = _read_csv(meta, ["slice_file_name", "fsID", "fold", "classID", "class"])
    wanted = _parse_folds(folds) or list(range(1, 11))
    absent = [f for f in wanted if not (base / "audio" / f"fold{f}").is_dir()]
    if absent:
        have = sorted(
            int(p.name[4:]) for p in (base / "audio").glob("fold*") if p.name[4:].isdigit()
        )
        raise DatasetError(
            f"us8k: fold(s) {absent} requested but {base / 'audio'} has no "
            f"{', '.join(f'fold{f}' for f in absent)}; this copy holds folds {have}. "
            f"Pass --folds {','.join(map(str, have)) or '...'} to use only those."
        )
    classes_by_id = {int(r["classID"]): r["class"] for r in rows}
    classes = [classes_by_id.get(i, f"class_{i}") for i in range(max(classes_by_id) + 1)]
    clips, missing = [], []
    for fold in wanted:
        fold_dir = base / "audio" / f"fold{fold}"
        index = _audio_index(fold_dir)
        for r in rows:
            if int(r["fold"]) != fold:
                continue
            stem = Path(r["slice_file_name"]).stem
            path = index.get(stem)
            if path is None:
                missing.append(f"fold{fold}/{stem}")
                continue
            clips.append(Clip(path, int(r["classID"]), fold, f"fs:{r['fsID']}", stem))
    if missing:
        raise _missing_audio_error("us8k", base / "audio", missing, len(clips) + len(missing))
    return Dataset("us8k", base, classes, clips, 4.0)


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
    ``root`` or a bare file name) or, without it, from a stratified k-fold split that keeps every
    group in one fold. A group is the first match (group 1 if the pattern has a group) of the
    regular expression ``group_pattern`` on the file name; without a pattern each file is its own
    group.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"folder: {base} is not a directory")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(
            f"folder: {base} has no class sub-directories (expected {base}/<class>/*.wav)"
        )
    pattern = re.compile(group_pattern) if group_pattern else None
    files: list[tuple[Path, int, str]] = []
    for label, cls in enumerate(classes):
        for path in sorted((base / cls).iterdir()):
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                continue
            group = path.stem
            if pattern is not None:
                m = pattern.search(path.name)
                if m is None:
                    raise DatasetError(
                        f"folder: --group-pattern {group_pattern!r} does not match {path}; "
                        f"fix the pattern so that it matches every file name"
                    )
                group = m.group(1) if m.groups() else m.group(0)
            files.append((path, label, f"{cls}/{group}" if pattern is None else group))
    if not files:
        raise DatasetError(f"folder: no audio files ({'/'.join(AUDIO_EXTENSIONS)}) under {base}")

    if folds_csv is not None:
        rows = _read_csv(Path(folds_csv), ["filename", "fold"])
        fold_by_name = {r["filename"]: int(r["fold"]) for r in rows}
        assigned = []
        for path, _, _ in files:
            rel = path.relative_to(base).as_posix()
            fold = fold_by_name.get(rel, fold_by_name.get(path.name))
            if fold is None:
                raise DatasetError(f"folder: {path} has no row in {folds_csv} (column filename)")
            assigned.append(fold)
    else:
        assigned = stratified_group_folds(
            [label for _, label, _ in files], [g for _, _, g in files], num_folds, seed
        )
    clips = [
        Clip(path, label, fold, group, path.stem)
        for (path, label, group), fold in zip(files, assigned, strict=True)
    ]
    wanted = _parse_folds(folds)
    if wanted is not None:
        clips = [c for c in clips if c.fold in wanted]
    return Dataset("folder", base, classes, clips, duration)


def stratified_group_folds(
    labels: Sequence[int], groups: Sequence[str], num_folds: int, seed: int = 0
) -> list[int]:
    """Assign folds 1..num_folds so every group lies in one fold and classes spread evenly.

    Groups are taken largest first (ties in a seeded random order) and each is put in the fold
    that currently holds the fewest clips of the group's majority class, then fewest overall.
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}")
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    if len(members) < num_folds:
        raise DatasetError(
            f"only {len(members)} groups for {num_folds} folds; "
            "use fewer folds or a finer --group-pattern"
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


#: Loaders by registry name; ``get_dataset`` and the CLI use this table.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "esc50": load_esc50,
    "esc10": load_esc10,
    "us8k": load_us8k,
    "folder": load_folder,
}

DESCRIPTIONS: dict[str, str] = {
    "esc50": "ESC-50: 2000 clips of 5 s, 50 classes, 5 official folds (CC BY-NC 3.0, K. J. Piczak)",
    "esc10": "ESC-10: the 400 esc10 rows of ESC-50, 10 classes, 5 official folds (CC BY 3.0)",
    "us8k": "UrbanSound8K: 8732 clips of <= 4 s, 10 classes, 10 official folds (CC BY-NC 3.0)",
    "folder": "any directory with one sub-directory per class; folds from a CSV or grouped k-fold",
}


def get_dataset(name: str, **kwargs: object) -> Dataset:
    """Load a data set by registry name; keyword arguments go to its loader.

    Examples:
        >>> from escnet.datasets import get_dataset
        >>> ds = get_dataset("esc10", data_dir="../shared/datasets")  # doctest: +SKIP
        >>> len(ds), ds.num_classes, ds.fold_sizes()  # doctest: +SKIP
        (400, 10, {1: 80, 2: 80, 3: 80, 4: 80, 5: 80})
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
    if name == "folder" and kwargs.get("root") is None:
        raise ValueError(
            "dataset 'folder' needs root= (the directory with one sub-directory per class)"
        )
    return loader(**kwargs)
