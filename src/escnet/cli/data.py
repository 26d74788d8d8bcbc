"""Sub-commands of the data stages: data sets, spectral images, augmentation, models."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from escnet.cli._common import (
    MAX_SEED,
    dataset_args,
    load_dataset,
    print_skipped,
    seconds,
    whole_number,
)
from escnet.data.clips import fold_range
from escnet.data.folds import VAL_CLIPS_PER_RECORDING


def cmd_datasets(args: argparse.Namespace) -> int:
    from escnet.data.datasets import DESCRIPTIONS
    from escnet.settings import data_dir

    root = data_dir(args.data_dir)
    print(f"data directory: {root}")
    for name, text in DESCRIPTIONS.items():
        where = root / ("esc50" if name == "esc10" else name)
        state = "present" if name != "folder" and where.is_dir() else ""
        print(f"  {name:<7} {text}" + (f"  [{state}: {where}]" if state else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = load_dataset(args).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"{info['dataset']}: {info['clips']} clips, {info['classes']} classes, "
        f"{len(info['folds'])} folds, {info['groups']} recordings  ({info['root']})"
    )
    print("  clips per fold: " + ", ".join(f"{k}: {v}" for k, v in info["folds"].items()))
    if info.get("official_folds"):
        # A partial copy: which official folds are here, against the complete metadata.
        counts = info["official_folds"]
        absent = [f for f, c in counts.items() if not c["present"]]
        partial = [
            f"{f}: {c['present']} of {c['complete']}"
            for f, c in counts.items()
            if 0 < c["present"] < c["complete"]
        ]
        print(
            f"  official folds: {info['coverage'] or 'all present and complete'}"
            + (f"; partial: {', '.join(partial)}" if partial else "")
            + (f"; absent: {fold_range(absent)}" if absent else "")
        )
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from escnet.data.download import DATASETS, download_dataset

    path = download_dataset(
        args.name,
        args.data_dir,
        progress=not args.quiet,
        cache_dir=args.cache_dir,
        url=args.url,
        sha256=args.sha256,
        keep_archive=args.keep_archive,
    )
    source = DATASETS[args.name]
    print(f"{args.name} is ready in {path}")
    print(f"licence: {source.license}; {source.attribution}")
    return 0


def cmd_spectrogram(args: argparse.Namespace) -> int:
    from escnet.cache import check_output_file
    from escnet.features.plotting import save_spectrogram_png

    check_output_file(args.output, "OUTPUT")
    out = save_spectrogram_png(args.input, args.output, duration=args.duration)
    print(f"wrote {out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from escnet.features.prepare import prepare_features

    ds = load_dataset(args)
    start = time.perf_counter()
    result = prepare_features(
        ds,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        workers=args.workers,
        progress=not args.quiet,
    )
    took = time.perf_counter() - start
    n = len(ds)
    print(
        f"{ds.name}: {len(result.indices)} of {n} clips ready in {took:.1f} s "
        f"({n / took:.0f} clips/s), {result.cache_hits} from the cache, "
        f"images {tuple(result.features.shape[1:])}"
    )
    print_skipped(result.skipped)
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from escnet.data.folds import fold_split
    from escnet.features.offline_naa import expand_training_set

    ds = load_dataset(args)
    split = fold_split(
        ds,
        args.test_fold,
        val_fraction=args.val_fraction,
        val_clips_per_recording=args.val_clips_per_recording,
    )
    start = time.perf_counter()
    result = expand_training_set(
        ds,
        split,
        seed=args.seed,
        cache_dir=args.cache_dir,
        workers=args.workers,
        progress=not args.quiet,
    )
    took = time.perf_counter() - start
    n = len(split.train)
    print(
        f"{ds.name}, test fold {args.test_fold} held out: {n} training clips -> "
        f"{len(result.features)} images (originals + NAA variants) in {took:.1f} s "
        f"({n / took:.1f} clips/s); validation and test clips untouched"
    )
    print_skipped(result.skipped)
    return 0


def cmd_augment_gallery(args: argparse.Namespace) -> int:
    from escnet.cache import check_output_file
    from escnet.features.gallery import augment_gallery

    check_output_file(args.out, "--out")
    out = augment_gallery(load_dataset(args), args.clip, args.out, seed=args.seed)
    print(f"wrote {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from escnet.models import describe_models

    rows = describe_models(num_classes=args.num_classes)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'model':<18} {'params':>9}  {'input (C, mels, frames)':<24} weights")
    for r in rows:
        shape = "x".join(str(v) for v in r["input"])
        where = " [weights not on this machine yet]" if r["weights_here"] is False else ""
        print(f"{r['name']:<18} {r['params'] / 1e6:>8.2f}M  {shape:<24} {r['weights']}{where}")
        print(f"{'':<18} {'':>9}  front end: {r['front_end']}")
    return 0


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``escnet`` parser."""
    from escnet.data.audio import MAX_SPECTROGRAM_S

    p = sub.add_parser("datasets", help="list the supported data sets and which are present")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("info", help="clips, classes and folds of a data set")
    dataset_args(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("download", help="download a data set into the data directory")
    p.add_argument("name", choices=["esc50", "us8k"])
    p.add_argument("--url", help="download from this mirror instead of the canonical source")
    p.add_argument("--sha256", help="expected SHA-256 of the archive (checked when given)")
    p.add_argument("--keep-archive", action="store_true", help="keep the archive in the cache")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("spectrogram", help="draw an audio file's spectral image as a PNG")
    p.add_argument("input", help="audio file (wav, flac, ogg)")
    p.add_argument("output", help="PNG to write")
    p.add_argument(
        "--duration",
        type=seconds(MAX_SPECTROGRAM_S),
        help=f"pad or crop to this many seconds (at most {MAX_SPECTROGRAM_S:g}; only that much "
        "of the file is read)",
    )
    p.set_defaults(func=cmd_spectrogram)

    p = sub.add_parser("prepare", help="compute and cache the spectral images of a data set")
    dataset_args(p)
    p.add_argument(
        "--workers", type=whole_number(1), help="decoding threads (default: CPU cores, <= 8)"
    )
    p.add_argument("--no-cache", action="store_true", help="recompute and write no cache")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser(
        "augment", help="offline NAA expansion (7x) of one split's training folds, cached"
    )
    dataset_args(p)
    p.add_argument("--test-fold", type=whole_number(1), default=1, help="fold held out for testing")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training folds kept (unaugmented) for validation, as `train` does; "
        "0 expands every clip of the training folds",
    )
    p.add_argument(
        "--val-clips-per-recording",
        type=whole_number(0),
        default=VAL_CLIPS_PER_RECORDING,
        help="at most this many clips of one recording in validation, as `train` does "
        "(default: %(default)s; 0: no cap)",
    )
    p.add_argument(
        "--seed",
        type=whole_number(0, MAX_SEED, "numpy's largest seed"),
        default=0,
        help="variant seed",
    )
    p.add_argument("--workers", type=whole_number(1), help="processes (default: CPU cores)")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("models", help="registered models: parameters, input, weight source")
    p.add_argument(
        "--num-classes", type=whole_number(1), default=50, help="head size for the count"
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("augment-gallery", help="PNG of a clip beside its NAA and TAA variants")
    dataset_args(p)
    p.add_argument("--clip", required=True, help="clip id (file stem), e.g. 1-100032-A-0")
    p.add_argument("--out", default="gallery.png", help="PNG to write")
    p.add_argument("--seed", type=whole_number(0, MAX_SEED, "numpy's largest seed"), default=0)
    p.set_defaults(func=cmd_augment_gallery)
