"""Data sets with their official folds: ESC-50, ESC-10, UrbanSound8K and any class-per-folder tree.

A :class:`Dataset` is a list of :class:`Clip` records (audio path, label, fold, group) plus the
class names. Nothing is decoded here: audio is loaded by :mod:`escnet.data.audio`, split by fold in
:mod:`escnet.data.folds`. Each clip's *group* is the recording it was cut from (ESC-50's
``src_file``,
UrbanSound8K's ``fsID``): clips of one group must never be on both sides of a split.

A clip's audio is found by the metadata filename's stem with any of ``.wav``, ``.flac``, ``.ogg``,
because re-encoded copies of these data sets are common.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from escnet.data.audio import AUDIO_EXTENSIONS
from escnet.data.metadata import (
    MAX_FOLD,
    Row,
    check_unique,
    class_table,
    contiguous_classes,
    read_rows,
)
from escnet.errors import DatasetError, ParameterError
from escnet.settings import data_dir as default_data_dir

log = logging.getLogger(__name__)


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

    def copy_info(self) -> dict[str, Any]:
        """Which copy of the data set this is: its directory's name, its audio's container,
        codec and sample rate (of the first clip), and a digest of its metadata tables (every
        ``*.csv`` in the root and ``meta/``, e.g. the metadata and a provenance list), so that a
        figure says what it was measured on."""
        import hashlib

        import soundfile

        digest = hashlib.sha256()
        for table in sorted([*self.root.glob("*.csv"), *self.root.glob("meta/*.csv")]):
            digest.update(table.name.encode() + b"\0" + table.read_bytes())
        audio = "none"
        if self.clips:
            try:
                sf = soundfile.info(str(self.clips[0].path))
                audio = f"{sf.format.lower()}/{sf.subtype.lower()} {sf.samplerate} Hz"
            except (RuntimeError, OSError) as exc:  # named, not fatal: this only describes
                audio = f"unreadable ({exc})"
        return {
            "dataset": self.name,
            # The root's last two parts tell copies apart ("data/esc50", "datasets/esc50")
            # without printing where on a machine they are.
            "copy": f"{self.root.parent.name}/{self.root.name}",
            "audio": audio,
            "metadata_sha256": digest.hexdigest()[:16],
        }

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


def _stem(filename: str) -> str:
    return Path(filename).stem


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


def _fold_list(folds: Iterable[int]) -> str:
    """``1,2,10``: a fold list as --folds takes it."""
    return ",".join(str(f) for f in sorted(folds))


#: ESC-10's classes in escnet's label order: sorted by their ESC-50 target number.
ESC10_CLASSES: tuple[str, ...] = (
    "dog", "rooster", "rain", "sea_waves", "crackling_fire",
    "crying_baby", "sneezing", "clock_tick", "helicopter", "chainsaw",
)  # fmt: skip


#: ESC-50's classes in target order: the data set's fixed class set. A partial copy whose
#: targets have gaps (a subset of the metadata's rows) keeps all 50 outputs, so its models and
#: labels stay those of ESC-50; a copy whose targets run 0..K-1 keeps its own K classes.
ESC50_CLASSES: tuple[str, ...] = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm", "crying_baby", "sneezing", "clapping",
    "breathing", "coughing", "footsteps", "laughing", "brushing_teeth", "snoring",
    "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks",
    "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train",
    "church_bells", "airplane", "fireworks", "hand_saw",
)  # fmt: skip


def _fixed_classes(table: dict[int, tuple[str, Row]], classes: Sequence[str], name: str) -> None:
    """Check a copy's (target, category) pairs against the data set's fixed classes: an id
    beyond them, or a name that is not the id's, is refused on its line; absent ids are fine."""
    for cid, (category, row) in sorted(table.items()):
        if cid >= len(classes):
            raise row.error(
                "target",
                f"class id {cid} is beyond {name}'s {len(classes)} classes (0-{len(classes) - 1});"
                " fix the id, or remove the row",
            )
        if category != classes[cid]:
            raise row.error(
                "category",
                f"class {cid} is {classes[cid]!r} in {name}, not {category!r}; fix the row",
            )


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

    Raises:
        MetadataError: a row of the CSV would give wrong data (a file listed twice, a fold or
            target that is not a whole number in range, a target beyond ESC-50's 50 classes or
            a category that is not its target's, a missing field, a category with two
            targets); the message names the file, line and column. Gaps in the targets are
            fine: such a partial copy keeps ESC-50's fixed class set (targets 0..K-1 without a
            gap keep the copy's own K classes).
        DatasetError: the metadata or audio is missing, or a requested fold is not in it.
    """
    name = "esc10" if esc10 else "esc50"
    base = _resolve_root("esc50", root, data_dir)
    meta = base / "meta" / "esc50.csv"
    if not meta.is_file():
        raise DatasetError(
            f"{name}: {meta} not found. Download the data set with `escnet download esc50`, or "
            f"point --data-dir / $ESCNET_DATA_DIR at a directory that holds esc50/."
        )
    rows = read_rows(meta, ["filename", "fold", "target", "category", "esc10", "src_file"])
    # Every row is checked, whatever folds are asked for: one bad row means a bad copy.
    check_unique(rows, "filename", key=_stem)
    fold_of = [r.integer("fold", 1, MAX_FOLD) for r in rows]
    groups = [r.text("src_file") for r in rows]
    in_esc10 = [r.boolean("esc10") for r in rows]
    chosen = [i for i in range(len(rows)) if in_esc10[i] or not esc10]
    table = class_table((rows[i] for i in chosen), "target", "category")
    if esc10:
        classes = [table[t][0] for t in sorted(table)]
        remap = {t: i for i, t in enumerate(sorted(table))}
    elif table and max(table) + 1 == len(table):
        classes = contiguous_classes(table, "target")  # targets 0..K-1: the copy's own classes
        remap = {t: t for t in table}
    else:  # gaps in the targets: a partial copy, which keeps ESC-50's fixed class set
        _fixed_classes(table, ESC50_CLASSES, "ESC-50")
        classes = list(ESC50_CLASSES)
        remap = {t: t for t in table}
    wanted = _parse_folds(folds)
    if wanted is not None:
        present = {fold_of[i] for i in chosen}
        absent = [f for f in wanted if f not in present]
        if absent:
            raise DatasetError(
                f"{name}: fold(s) {absent} not in {meta}; it has folds {sorted(present)}"
            )
        chosen = [i for i in chosen if fold_of[i] in wanted]

    audio_dir = base / "audio"
    if not audio_dir.is_dir():
        raise DatasetError(f"{name}: audio directory {audio_dir} not found")
    index = _audio_index(audio_dir)
    clips, missing = [], []
    for i in chosen:
        stem = _stem(rows[i].text("filename"))
        path = index.get(stem)
        if path is None:
            missing.append(stem)
            continue
        label = remap[rows[i].integer("target", 0, 10**9)]
        clips.append(Clip(path, label, fold_of[i], f"esc:{groups[i]}", stem))
    if missing:
        raise _missing_audio_error(name, audio_dir, missing, len(chosen))
    return Dataset(name, base, classes, clips, 5.0)


def load_esc10(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
) -> Dataset:
    """ESC-10: the ``esc10 == True`` rows of ESC-50; 400 clips, 10 classes, 5 folds of 80."""
    return load_esc50(root, data_dir=data_dir, folds=folds, esc10=True)


def _us8k_folds(base: Path, listed: set[int], folds: Iterable[int] | None) -> list[int]:
    """The folds to load: those asked for, or every listed fold whose directory the copy holds."""
    audio = base / "audio"
    have = sorted(f for f in listed if (audio / f"fold{f}").is_dir())
    wanted = _parse_folds(folds)
    if wanted is None:
        if not have:
            raise DatasetError(
                f"us8k: {audio} holds none of the fold directories the metadata lists "
                f"(fold1 ... fold10). Download the data set with `escnet download us8k`, or "
                f"point --root at a copy."
            )
        return have
    absent = [f for f in wanted if f not in have]
    if absent:
        raise DatasetError(
            f"us8k: fold(s) {absent} requested but {audio} has no "
            f"{', '.join(f'fold{f}' for f in absent)}; this copy holds folds {have}. "
            f"Pass --folds {_fold_list(have) or '...'}, or leave --folds out to use every fold "
            "the copy holds."
        )
    return wanted


def load_us8k(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
) -> Dataset:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/fold1..fold10``; 8732 clips of up to
    4 s (zero-padded to 4 s), 10 classes, 10 official folds; group = Freesound ID ``fsID``.

    Args:
        folds: the folds to use (default: every fold whose directory the copy holds, so a
            partial copy works as it is); a requested fold whose directory is missing raises
            :class:`DatasetError`.

    Raises:
        MetadataError: a row of the CSV would give wrong data (see :func:`load_esc50`).
        DatasetError: the metadata, a fold directory or a listed clip's audio is missing.
    """
    base = _resolve_root("us8k", root, data_dir)
    meta = base / "metadata" / "UrbanSound8K.csv"
    if not meta.is_file():
        raise DatasetError(
            f"us8k: {meta} not found. Download the data set with `escnet download us8k`, or "
            f"point --data-dir / $ESCNET_DATA_DIR at a directory that holds us8k/."
        )
    rows = read_rows(meta, ["slice_file_name", "fsID", "fold", "classID", "class"])
    check_unique(rows, "slice_file_name", key=_stem)
    fold_of = [r.integer("fold", 1, MAX_FOLD) for r in rows]
    groups = [r.text("fsID") for r in rows]
    classes = contiguous_classes(class_table(rows, "classID", "class"), "classID")
    wanted = _us8k_folds(base, set(fold_of), folds)
    clips, missing = [], []
    for fold in wanted:
        index = _audio_index(base / "audio" / f"fold{fold}")
        for i, r in enumerate(rows):
            if fold_of[i] != fold:
                continue
            stem = _stem(r.text("slice_file_name"))
            path = index.get(stem)
            if path is None:
                missing.append(f"fold{fold}/{stem}")
                continue
            label = r.integer("classID", 0, 10**9)
            clips.append(Clip(path, label, fold, f"fs:{groups[i]}", stem))
    if missing:
        raise _missing_audio_error("us8k", base / "audio", missing, len(clips) + len(missing))
    return Dataset("us8k", base, classes, clips, 4.0)


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
    wanted = _parse_folds(folds)
    if wanted is not None:
        have = sorted(set(assigned))
        absent = [f for f in wanted if f not in have]
        if absent:
            raise DatasetError(
                f"folder: fold(s) {absent} requested but {base} has folds "
                f"{_fold_list(have)} (from {source}); pass --folds among those"
                + ("" if folds_csv is not None else f", or --num-folds {max(absent)}")
            )
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
        >>> from escnet.data.datasets import get_dataset
        >>> ds = get_dataset("esc10", data_dir="../shared/datasets")  # doctest: +SKIP
        >>> len(ds), ds.num_classes, ds.fold_sizes()  # doctest: +SKIP
        (400, 10, {1: 80, 2: 80, 3: 80, 4: 80, 5: 80})
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ParameterError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}"
        ) from None
    if name == "folder" and kwargs.get("root") is None:
        raise ParameterError(
            "dataset 'folder' needs root= (the directory with one sub-directory per class)"
        )
    return loader(**kwargs)


def describe_copy(info: Mapping[str, Any]) -> str:
    """A data copy's record (:meth:`Dataset.copy_info`) in one line, e.g.
    ``"data/esc50: ogg/opus 48000 Hz, metadata 1f0e2c3d4b5a6978"``.

    >>> describe_copy({"copy": "datasets/esc50", "audio": "flac/pcm_16 16000 Hz",
    ...                "metadata_sha256": "0123456789abcdef"})
    'datasets/esc50: flac/pcm_16 16000 Hz, metadata 0123456789abcdef'
    """
    copy, audio, digest = (info.get(k, "?") for k in ("copy", "audio", "metadata_sha256"))
    return f"{copy}: {audio}, metadata {digest}"
