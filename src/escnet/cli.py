"""The ``escnet`` command: a thin layer over the Python API, one sub-command per function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from escnet.datasets import Dataset
from escnet.errors import EscnetError

log = logging.getLogger("escnet")


def _dataset_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required, help="esc50, esc10, us8k or folder")
    p.add_argument("--root", help="the data set's own directory (for 'folder': required)")
    p.add_argument("--folds", help="use only these folds, e.g. '1-5' or '1,2'")
    p.add_argument("--folds-csv", help="folder data sets: CSV with columns filename, fold")
    p.add_argument("--group-pattern", help="folder data sets: regex whose match is a file's group")


def _load_dataset(args: argparse.Namespace) -> Dataset:
    from escnet.datasets import get_dataset
    from escnet.folds import parse_folds

    kwargs: dict[str, object] = {"root": args.root}
    if args.dataset != "folder":
        kwargs["data_dir"] = args.data_dir
    if args.folds:
        kwargs["folds"] = parse_folds(args.folds)
    if args.dataset == "folder":
        kwargs["folds_csv"] = args.folds_csv
        kwargs["group_pattern"] = args.group_pattern
    return get_dataset(args.dataset, **kwargs)


def cmd_datasets(args: argparse.Namespace) -> int:
    from escnet.datasets import DESCRIPTIONS
    from escnet.settings import data_dir

    root = data_dir(args.data_dir)
    print(f"data directory: {root}")
    for name, text in DESCRIPTIONS.items():
        where = root / ("esc50" if name == "esc10" else name)
        state = "present" if name != "folder" and where.is_dir() else ""
        print(f"  {name:<7} {text}" + (f"  [{state}: {where}]" if state else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = _load_dataset(args).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"{info['dataset']}: {info['clips']} clips, {info['classes']} classes, "
        f"{len(info['folds'])} folds, {info['groups']} recordings  ({info['root']})"
    )
    print("  clips per fold: " + ", ".join(f"{k}: {v}" for k, v in info["folds"].items()))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from escnet.download import DATASETS, download_dataset

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
    from escnet.plotting import save_spectrogram_png

    out = save_spectrogram_png(args.input, args.output, duration=args.duration)
    print(f"wrote {out}")
    return 0


def _print_skipped(skipped: Sequence[tuple[Path, str]]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} file(s) that could not be loaded:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")


def cmd_prepare(args: argparse.Namespace) -> int:
    from escnet.prepare import prepare_features

    ds = _load_dataset(args)
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
    _print_skipped(result.skipped)
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from escnet.augment.offline import expand_training_set
    from escnet.folds import fold_split

    ds = _load_dataset(args)
    split = fold_split(ds, args.test_fold, val_fraction=args.val_fraction)
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
    _print_skipped(result.skipped)
    return 0


def cmd_augment_gallery(args: argparse.Namespace) -> int:
    from escnet.augment.gallery import augment_gallery

    out = augment_gallery(_load_dataset(args), args.clip, args.out, seed=args.seed)
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
        print(f"{r['name']:<18} {r['params'] / 1e6:>8.2f}M  {shape:<24} {r['weights']}")
        print(f"{'':<18} {'':>9}  front end: {r['front_end']}")
    return 0


def _print_results(results: dict[str, Any], run_dir: Path) -> None:
    folds = results.get("folds") or []
    for f in folds:
        print(
            f"  fold {f['test_fold']}: accuracy {100 * f['accuracy']:.2f} %, "
            f"macro F1 {100 * f['macro_f1']:.2f} %, loss {f['loss']:.4f}"
            + (f", best epoch {f['best_epoch']}" if f.get("best_epoch") is not None else "")
        )
    acc = results["summary"]["accuracy"]
    std = acc["std"]
    print(
        f"accuracy over {len(folds)} fold(s): {100 * acc['mean']:.2f} %"
        + (f" +- {100 * std:.2f}" if std is not None and len(folds) > 1 else "")
    )
    print(f"report: {run_dir / 'report.md'}")


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from escnet.folds import parse_folds
    from escnet.train import TrainConfig, cross_validate

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    overrides: dict[str, Any] = {"data_dir": args.data_dir, "cache_dir": args.cache_dir}
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            overrides[field.name] = value
    if args.folds:
        overrides["folds"] = parse_folds(args.folds)
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    run_dir = (
        Path(args.run_dir)
        if args.run_dir
        else Path("runs")
        / (f"{config.dataset}-{config.model}-{config.augment}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    start = time.perf_counter()
    results = cross_validate(config, run_dir, resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun every rank returns the same results; rank 0 reports them
    print(
        f"{config.model} on {config.dataset}, augmentation {config.augment!r}, "
        f"official folds, {time.perf_counter() - start:.0f} s; run directory {run_dir}"
    )
    _print_results(results, run_dir)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from escnet.train import evaluate_run

    run_dir = Path(args.run_dir)
    results = evaluate_run(run_dir, fold=args.fold, progress=not args.quiet)
    print(f"test metrics recomputed from the checkpoints in {run_dir}:")
    _print_results(results, run_dir)
    match = results.get("matches_results")
    if match is not None:
        print("matches results.json" if match else "DIFFERS from results.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escnet", description="Environmental sound classification with spectral images."
    )
    parser.add_argument(
        "--data-dir", help="directory holding esc50/, us8k/ (default $ESCNET_DATA_DIR)"
    )
    parser.add_argument(
        "--cache-dir", help="cache directory (default $ESCNET_CACHE_DIR or ~/.cache/escnet)"
    )
    parser.add_argument("--weights-dir", help="pretrained weights (default $ESCNET_WEIGHTS_DIR)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the supported data sets and which are present")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("info", help="clips, classes and folds of a data set")
    _dataset_args(p)
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
    p.add_argument("--duration", type=float, help="pad or crop to this many seconds")
    p.set_defaults(func=cmd_spectrogram)

    p = sub.add_parser("prepare", help="compute and cache the spectral images of a data set")
    _dataset_args(p)
    p.add_argument("--workers", type=int, help="decoding threads (default: CPU cores)")
    p.add_argument("--no-cache", action="store_true", help="recompute and write no cache")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser(
        "augment", help="offline NAA expansion (7x) of one split's training folds, cached"
    )
    _dataset_args(p)
    p.add_argument("--test-fold", type=int, default=1, help="fold held out for testing")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training folds kept (unaugmented) for validation, as `train` does; "
        "0 expands every clip of the training folds",
    )
    p.add_argument("--seed", type=int, default=0, help="variant seed")
    p.add_argument("--workers", type=int, help="processes (default: CPU cores)")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("train", help="train and test on the official folds, leave-one-fold-out")
    p.add_argument("--dataset", help="esc50, esc10, us8k or folder")
    p.add_argument("--root", help="the data set's own directory (for 'folder')")
    p.add_argument("--model", help="registered model (see `escnet models`)")
    p.add_argument(
        "--augment",
        help="augmentation policy: none, taa, naa, naa-online, naa+taa, naa+mixup, specaug, "
        "specaug+mixup",
    )
    p.add_argument("--folds", help="test folds, e.g. '1-5' or '1' (default: every fold)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    p.add_argument(
        "--head-lr", type=float, help="peak learning rate of the new output layer (default: --lr)"
    )
    p.add_argument(
        "--linear-probe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the new output layer on frozen features before fine-tuning (LP-FT)",
    )
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--val-fraction", type=float, help="validation share of the training folds")
    p.add_argument("--early-stopping-patience", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the model's pretrained weights",
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory order (default: on; faster on CPUs and GPUs alike)",
    )
    p.add_argument("--config", help="a config.json to start from (options override it)")
    p.add_argument("--run-dir", help="where to write the run (default runs/<name>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="recompute a run's test metrics from its checkpoints")
    p.add_argument("run_dir")
    p.add_argument("--fold", type=int, help="only this test fold")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("models", help="registered models: parameters, input, weight source")
    p.add_argument("--num-classes", type=int, default=50, help="head size for the count")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("augment-gallery", help="PNG of a clip beside its NAA and TAA variants")
    _dataset_args(p)
    p.add_argument("--clip", required=True, help="clip id (file stem), e.g. 1-100032-A-0")
    p.add_argument("--out", default="gallery.png", help="PNG to write")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_augment_gallery)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="escnet: %(message)s", stream=sys.stderr)
    if args.weights_dir:
        os.environ["ESCNET_WEIGHTS_DIR"] = str(Path(args.weights_dir).expanduser())
    try:
        return int(args.func(args))
    except (EscnetError, ValueError) as exc:
        print(f"escnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"escnet {args.command}: interrupted; completed work is cached", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
