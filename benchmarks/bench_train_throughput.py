"""Training throughput of every registered model on this machine's CPU.

One training step is forward + cross-entropy + backward + AdamW step on a batch of random
spectral images of the model's own input size for a 5 s clip (from its front end). A few
warm-up steps, then timed steps, once in PyTorch's default (contiguous, NCHW) memory order --
the reference -- and once in the channels-last order escnet trains in
(:attr:`escnet.training.TrainConfig.channels_last`); prints a Markdown table (model, params, input,
samples/s in each order, speed-up) with the machine line.

    python benchmarks/bench_train_throughput.py [--batch 32] [--steps 5] [--warmup 2]
        [--models cnn7,resnet18] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402
from escnet.models import count_parameters, create_model, input_shape, list_models  # noqa: E402


def seconds_per_step(
    name: str, batch: int, steps: int, warmup: int, channels_last: bool
) -> tuple[int, tuple, float]:
    """(parameters, input shape, mean seconds of one training step) for model ``name``."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=50)
    shape = input_shape(model.model_info.front_end, seconds=5.0)
    images = torch.randn(batch, *shape) * 20 - 30  # dB-like values
    if channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    labels = torch.randint(0, 50, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return count_parameters(model), shape, (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32, help="samples per step (default 32)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument(
        "--models",
        default=",".join(list_models()),
        help="comma-separated registered names (default: all)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--batch and --steps must be >= 1, --warmup >= 0")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        ap.error(f"unknown models {unknown}; choose from {', '.join(list_models())}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"Machine: {describe(('numpy', 'torch', 'torchvision', 'timm'))}")
    print(
        f"Training step (forward, backward, AdamW), batch {args.batch}, {args.warmup} warm-up + "
        f"{args.steps} timed steps, torch threads {torch.get_num_threads()}, random 5 s images\n"
    )
    print(
        "| model | params | input (C, mels, frames) | samples/s, contiguous (reference) "
        "| samples/s, channels-last (escnet) | speed-up |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for name in names:
        params, shape, ref_s = seconds_per_step(name, args.batch, args.steps, args.warmup, False)
        _, _, cl_s = seconds_per_step(name, args.batch, args.steps, args.warmup, True)
        print(
            f"| {name} | {params / 1e6:.2f} M | {shape} | {args.batch / ref_s:.1f} | "
            f"{args.batch / cl_s:.1f} | {ref_s / cl_s:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
