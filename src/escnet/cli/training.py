"""Sub-commands of training and evaluation on a data set's folds."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from escnet.cli._common import (
    MAX_SEED,
    dataset_args,
    finite_number,
    path_text,
    print_results,
    whole_number,
)
from escnet.errors import EscnetError, ParameterError

#: ``--tta`` given without shifts: the clip and three rolls that move it against the body's
#: stride-32 grid.
DEFAULT_TTA = "0,8,16,24"


def name_list(text: str) -> list[str]:
    """An argparse ``type``: comma-separated names (``'none'``: an empty list)."""
    if text.strip().lower() == "none":
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


def int_list(text: str) -> list[int]:
    """An argparse ``type``: comma-separated whole numbers (``'none'``: an empty list)."""
    if text.strip().lower() == "none":
        return []
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers, e.g. '12,16', got {text!r}"
        ) from None


#: The largest --batch-size: far above any memory, low enough to fail as one line.
MAX_BATCH = 65536


class _DeprecatedFolds(argparse.Action):
    """``train --folds``, the old spelling of ``--test-folds``: still works for this release."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        print(
            "escnet: train --folds is deprecated and will be removed in the next release: "
            "use --test-folds (the same values)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from escnet.cache import check_output_dir
    from escnet.data.folds import parse_folds
    from escnet.training import TrainConfig, cross_validate, load_dataset
    from escnet.training.config import FLAT_METHOD_FIELDS

    if args.run_dir:
        check_output_dir(args.run_dir, "--run-dir")
    if args.refit and args.method not in (None, "probe"):
        raise ParameterError("--refit applies to --method probe runs; drop it or use a probe")
    # One mapping of the options onto the config (the converter of TrainConfig.from_dict): an
    # option the chosen method does not read is refused there, naming it.
    values = TrainConfig.from_json(args.config).to_dict() if args.config else {}
    if args.method is not None and args.method != values.get("method", args.method):
        values.pop(values["method"])  # another method's settings do not carry over
    shared = {f.name for f in dataclasses.fields(TrainConfig)} | FLAT_METHOD_FIELDS | {"method"}
    options = {"data_dir": args.data_dir, "cache_dir": args.cache_dir}
    options |= {name: getattr(args, name, None) for name in shared}
    if args.test_folds:
        options["folds"] = parse_folds(args.test_folds)
    values |= {k: v for k, v in options.items() if v is not None}
    config = TrainConfig.from_dict(values, source="escnet train")
    run_dir = (
        Path(args.run_dir)
        if args.run_dir
        else Path("runs")
        / (
            f"{config.dataset}-{config.model}"
            f"{'' if config.method == 'finetune' else '-' + config.method}-"
            f"{config.augment}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
    )
    dataset = load_dataset(config)  # once: a folder's note is said once
    check_not_in_dataset(str(run_dir), "--run-dir", dataset)
    start = time.perf_counter()
    results = cross_validate(
        config, run_dir, dataset=dataset, resume=args.resume, progress=not args.quiet
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun every rank returns the same results; rank 0 reports them
    method = "" if config.method == "finetune" else f"{config.method} of "
    print(
        f"{method}{config.model} on {config.dataset}, augmentation {config.augment!r}, "
        f"{time.perf_counter() - start:.0f} s; run directory {run_dir}"
    )
    print_results(results, run_dir)
    diverged = [f["test_fold"] for f in results["folds"] if f.get("loss") is None]
    if diverged:
        raise EscnetError(
            f"the training diverged on fold(s) {','.join(map(str, diverged))}: the loss is not "
            f"finite; lower --lr (now {config.finetune.lr:g}) or --head-lr"
        )
    if args.refit:
        from escnet.cli.ensemble import print_refit
        from escnet.training.refit import refit_probe_run

        print_refit(refit_probe_run(run_dir, progress=not args.quiet))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from escnet.results.evaluate import evaluate_run

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        state = "is a file" if run_dir.exists() else "does not exist"
        raise ParameterError(
            f"RUN_DIR {run_dir} {state}; give a run directory written by escnet train"
        )
    if not (run_dir / "config.json").is_file():
        raise ParameterError(
            f"RUN_DIR {run_dir} holds no config.json: it is not a run directory written by "
            "escnet train"
        )
    results = evaluate_run(run_dir, fold=args.fold, progress=not args.quiet)
    print(f"test metrics recomputed from the checkpoints in {run_dir}:")
    print_results(results, run_dir)
    match = results.get("matches_results")
    if match is not None:
        print("matches results.json" if match else "DIFFERS from results.json")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from escnet.cache import check_output_dir
    from escnet.cli._common import load_dataset
    from escnet.data.folds import parse_folds
    from escnet.recipes.fit import fit

    check_output_dir(args.out, "--out")
    dataset = load_dataset(args)
    check_not_in_dataset(args.out, "--out", dataset)
    fit(
        dataset,
        args.recipe,
        args.out,
        test_folds=parse_folds(args.test_folds) if args.test_folds else None,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        workers=args.workers,
        progress=not args.quiet,
    )
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from escnet.recipes import Recipe

    for recipe in Recipe:
        spec = recipe.value
        members = ", ".join(m.name for m in spec.members)
        print(f"{spec.name}: {spec.description}")
        print(f"  members: {members}; body passes per clip: {spec.body_passes_per_clip}")
        for name, m in spec.measured.items():
            print(
                f"  {name}: {100 * m.mean:.2f} % +- {100 * m.std:.2f} over {len(m.folds)} "
                f"folds ({m.data})"
            )
    return 0


def check_not_in_dataset(path: str, option: str, dataset: Any) -> None:
    """Refuse an output directory inside a data set's directory: a run's files must never
    land among its clips (nor be read back as clips by a folder data set)."""
    target = Path(path).expanduser().resolve()
    root = Path(dataset.root).expanduser().resolve()
    if target == root or root in target.parents:
        raise ParameterError(
            f"{option} {path} is inside the data set's directory {dataset.root}; write runs "
            "elsewhere (e.g. runs/NAME)"
        )


def _add_optimisation_options(p: argparse.ArgumentParser) -> None:
    """``escnet train``'s options for fine-tuning: schedule, regularisation, data loading."""
    p.add_argument("--epochs", type=whole_number(1), help="passes over the training set (60)")
    p.add_argument(
        "--batch-size",
        type=whole_number(1, MAX_BATCH, "clips per step"),
        help="clips per training step (32)",
    )
    p.add_argument("--lr", type=finite_number, help="peak learning rate (AdamW)")
    p.add_argument(
        "--head-lr",
        type=finite_number,
        help="peak learning rate of the new output layer (default: --lr)",
    )
    p.add_argument(
        "--linear-probe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the new output layer on frozen features before fine-tuning (LP-FT)",
    )
    p.add_argument("--weight-decay", type=finite_number, help="AdamW's weight decay (0.01)")
    p.add_argument(
        "--warmup-epochs",
        type=finite_number,
        help="epochs of linear warm-up to --lr before the cosine decay (3)",
    )
    p.add_argument(
        "--label-smoothing", type=finite_number, help="label smoothing of the training loss (0)"
    )
    p.add_argument(
        "--val-fraction", type=finite_number, help="validation share of the training folds"
    )
    p.add_argument(
        "--val-clips-per-recording",
        type=whole_number(0),
        help="at most this many clips of one recording in validation; the rest of a recording "
        "drawn for validation trains on neither side (8; 0: no cap)",
    )
    p.add_argument(
        "--early-stopping-patience",
        type=whole_number(1),
        help="stop after this many epochs without a better validation accuracy (default: never)",
    )
    p.add_argument(
        "--seed",
        type=whole_number(0, MAX_SEED, "numpy's largest seed"),
        help="seeds the validation draw, augmentation, initialisation and shuffling (0)",
    )
    p.add_argument(
        "--workers",
        type=whole_number(0),
        help="decoding threads and data-loading processes (default: CPU cores, <= 8; 0: load "
        "in the training process)",
    )
    p.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the model's pretrained weights (default: yes where they are on this "
        "machine, see escnet models; --no-pretrained: random weights)",
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory order (default: on; faster on CPUs and GPUs alike)",
    )


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """``escnet train``'s options choosing the method (fine-tune, probe, partial) and its knobs."""
    p.add_argument(
        "--method",
        choices=("finetune", "probe", "partial"),
        help="finetune (default): train the network; probe: fit a head on the frozen mn04_as's "
        "pooled multi-level features (fast on a CPU; --model mn04_as, --augment none|naa); "
        "partial: train only mn04_as's blocks above --partial-from, on cached activations",
    )
    p.add_argument(
        "--partial-from",
        type=whole_number(0),
        help="partial: the last frozen mn04_as block (0-15, default 12); the blocks above it "
        "and the classifier are trained",
    )
    p.add_argument(
        "--probe-blocks",
        type=int_list,
        help="probe: mn04_as blocks (0-16) whose outputs are mean/max-pooled, e.g. '12,16' "
        "(default); 'none' for the embedding alone",
    )
    p.add_argument(
        "--probe-embedding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="probe: add the 512-d embedding (default: on)",
    )
    p.add_argument("--probe-head", choices=("linear", "mlp"), help="probe: head (default linear)")
    p.add_argument(
        "--probe-views",
        dest="probe_train_views",
        type=name_list,
        help="probe: training rows per clip besides the original, e.g. 'shift,roll8': NAA "
        "variants (shift, pps, nps, sts, fts, ts; with --augment naa) and time rolls "
        "(default: all six NAA variants with --augment naa)",
    )
    p.add_argument(
        "--tta",
        dest="tta_shifts",
        nargs="?",
        type=int_list,
        const=int_list(DEFAULT_TTA),
        help="probe: test-time augmentation, average the probabilities of the clip rolled by "
        f"these frame shifts (default with no value: {DEFAULT_TTA})",
    )


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``escnet`` parser."""
    p = sub.add_parser("train", help="train and test on the official folds, leave-one-fold-out")
    dataset_args(p, required=False, folds=False)
    p.add_argument("--model", help="registered model (see `escnet models`)")
    p.add_argument(
        "--augment",
        help="augmentation policy: none, taa, naa, naa-online, naa+taa, naa+mixup, specaug, "
        "specaug+mixup",
    )
    p.add_argument(
        "--test-folds", help="test folds, e.g. '1-5' or '1' (default: every fold), one run each"
    )
    p.add_argument("--folds", dest="test_folds", action=_DeprecatedFolds, help=argparse.SUPPRESS)
    _add_optimisation_options(p)
    _add_method_options(p)
    p.add_argument("--config", help="a config.json to start from (options override it)")
    p.add_argument(
        "--run-dir",
        type=path_text("--run-dir"),
        help="where to write the run (default runs/<name>-<time>)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument(
        "--refit",
        action="store_true",
        help="then refit the probe on all the folds' clips: RUN_DIR/final (see escnet refit)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "fit",
        help="run a recipe: cross-validate its members, ensemble them, refit on every clip",
    )
    p.add_argument("--recipe", default="main", help="a recipe of `escnet recipes` (main)")
    dataset_args(p)
    p.add_argument(
        "--test-folds", help="test folds, e.g. '1-5' (default: every fold), one run each"
    )
    p.add_argument(
        "--out",
        required=True,
        type=path_text("--out"),
        help="output directory; OUT/final is the model `escnet predict OUT` uses; a rerun resumes",
    )
    p.add_argument("--workers", type=whole_number(0), help="decoding threads (default: cores)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("recipes", help="list the recipes of escnet fit, with measured accuracy")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("evaluate", help="recompute a run's test metrics from its checkpoints")
    p.add_argument("run_dir")
    p.add_argument("--fold", type=whole_number(1), help="only this test fold")
    p.set_defaults(func=cmd_evaluate)
