"""Linear-probe baseline: a logistic regression on a pretrained model's frozen features.

For each test fold: the training folds' clips (no augmentation) go through the frozen network,
a logistic regression is fitted on what enters its output layer, its L2 penalty is chosen on the
grouped validation split from the training folds (the same split ``escnet train`` uses), and
the test fold is scored once. This is the bar fine-tuning has to clear.

Usage::

    .venv/bin/python benchmarks/check_linear_probe.py [--model mn04_as] [--dataset esc50]
        [--folds 1,2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402
from escnet.data.datasets import Dataset, get_dataset  # noqa: E402
from escnet.data.folds import fold_split, parse_folds  # noqa: E402
from escnet.embeddings.outputs import head_inputs
from escnet.features.prepare import prepare_features  # noqa: E402
from escnet.features.spectrogram import FrontEndConfig  # noqa: E402
from escnet.models import create_model  # noqa: E402
from escnet.training.lp_ft import linear_probe_head  # noqa: E402


def images(
    ds: Dataset, indices: list[int], front_end: FrontEndConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached spectral images and labels of ``ds``'s clips ``indices``."""
    fs = prepare_features(ds.subset(indices), front_end, progress=False)
    return torch.from_numpy(fs.features), torch.from_numpy(fs.labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mn04_as", help="a pretrained registered model")
    ap.add_argument("--dataset", default="esc50")
    ap.add_argument("--folds", default="1", help="test folds, e.g. '1,2' or '1-5'")
    ap.add_argument("--data-dir", default=None, help="default: $ESCNET_DATA_DIR")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ds = get_dataset(args.dataset, data_dir=args.data_dir)
    print(f"Machine: {describe(('numpy', 'torch'))}")
    print(
        f"Linear probe of {args.model} (frozen, pretrained) on {args.dataset}; L2 chosen on "
        f"the validation split ({args.val_fraction:.0%} of the training folds' recordings)\n"
    )
    print("| test fold | train clips | chosen L2 | val acc | test acc | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for fold in parse_folds(args.folds):
        started = time.perf_counter()
        split = fold_split(ds, fold, val_fraction=args.val_fraction, seed=args.seed)
        model = create_model(args.model, ds.num_classes, pretrained=True)
        front_end = model.model_info.front_end

        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
            images(ds, indices, front_end) for indices in (split.train, split.val, split.test)
        )
        probe = linear_probe_head(model, x_tr, y_tr, x_va, y_va)
        feats = head_inputs(model, x_te)
        with torch.no_grad():
            test_acc = (model.head(feats).argmax(1) == y_te).float().mean().item()
        print(
            f"| {fold} | {len(y_tr)} | {probe.l2:g} | {probe.val_acc:.2%} | {test_acc:.2%} | "
            f"{time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
