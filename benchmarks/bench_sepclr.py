"""SepCLR's training cost next to SimCLR's, the share spent in augmentation, and k-JEM's cost.

Three measurements, one JSON document on stdout (progress on stderr):

* ``throughput``: training samples per second of one full step (two augmented views, forward,
  loss, backward, Adam step) of SepCLR (two encoders, the loss of methods.md 4.3) and of SimCLR
  (one encoder, NT-Xent) with the same encoder and batch, interleaved step by step so that
  both see the same machine load; ``ratio`` = SimCLR samples/s / SepCLR samples/s (SepCLR
  runs two encoders, so about 2 is expected).
* ``augmentation_share``: the time of the two :class:`BatchAugment` calls of a SepCLR step,
  divided by the time of the whole step (medians).
* ``kjem``: forward+backward time of :func:`shared.losses.kjem` (Gram-matrix distances) and,
  beside it, of ``sepclr_uniformity`` and of the (B, B, D) difference-tensor form of k-JEM (the
  official code's; ``speedup_over_difference_form``) at batch 256 and 1024 with SepCLR's
  dimensions (32 / 32).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sepclr.py            # ~2 min on 1 CPU
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sepclr.py --quick    # ~20 s
    .venv/bin/python benchmarks/bench_sepclr.py --device cuda --encoder resnet18 --width 64
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from medical.sepclr.augment import BatchAugment
from medical.sepclr.config import AugmentConfig, ModelConfig
from medical.sepclr.losses import SepCLRWeights
from medical.sepclr.model import SepCLRModel, SingleModel
from medical.sepclr.tasks import SepCLRTask, SimCLRTask
from shared.losses import kjem, sepclr_uniformity


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _step_fn(task: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> Callable[[], None]:
    opt = torch.optim.Adam(task.parameters(), lr=3e-4)

    def step() -> None:
        out = task.training_step(batch)  # type: ignore[operator]
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    return step


def throughput(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=args.encoder, width=args.width)
    aug = BatchAugment(AugmentConfig())
    x = torch.rand(args.batch, args.channels, args.size, args.size, device=device)
    g = (torch.rand(args.batch, device=device) < 0.5).long()
    sep = SepCLRTask(SepCLRModel(cfg, args.channels), aug, SepCLRWeights()).to(device)
    sim = SimCLRTask(SingleModel(cfg, args.channels), aug).to(device)
    steps = {"sepclr": _step_fn(sep, (x, g)), "simclr": _step_fn(sim, (x, g))}
    for fn in steps.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    aug_times: list[float] = []
    for _ in range(args.repeats):
        for name, fn in steps.items():
            times[name].append(_timed(fn, device))
        aug_times.append(_timed(lambda: (aug(x), aug(x)), device))
    med = {k: statistics.median(v) for k, v in times.items()}
    rates = {k: args.batch / v for k, v in med.items()}
    return {
        "encoder": args.encoder,
        "width": args.width,
        "batch": args.batch,
        "image": [args.channels, args.size, args.size],
        "step_seconds": {k: round(v, 5) for k, v in med.items()},
        "samples_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ratio_simclr_over_sepclr": round(rates["simclr"] / rates["sepclr"], 3),
        "augmentation_seconds_per_step": round(statistics.median(aug_times), 5),
        "augmentation_share": round(statistics.median(aug_times) / med["sepclr"], 4),
        "repeats": args.repeats,
    }


def kjem_difference(c: torch.Tensor, s: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """k-JEM with squared distances from the (B, B, D) difference tensor (O(B^2 D) memory).

    How the official code and the core before this change computed it; the reference against
    which the core's Gram-matrix form is timed (same value up to rounding, checked in
    :func:`kjem_cost`).
    """

    def sq(x: torch.Tensor) -> torch.Tensor:
        return (x[:, None, :] - x[None, :, :]).pow(2).sum(-1)

    d2 = sq(c) + sq(s)
    lse = torch.logsumexp(-d2 / (2 * temperature), dim=1)
    return (lse - torch.log(torch.tensor(float(c.shape[0])))).mean()


def kjem_cost(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for b in args.kjem_batches:
        c = torch.nn.functional.normalize(torch.randn(b, 32, device=device), dim=1)
        c.requires_grad_()
        s = torch.randn(b, 32, device=device, requires_grad=True)

        def kj(c: torch.Tensor = c, s: torch.Tensor = s) -> None:
            kjem(c, s).backward()

        def un(s: torch.Tensor = s) -> None:
            sepclr_uniformity(s).backward()

        def diff(c: torch.Tensor = c, s: torch.Tensor = s) -> None:
            kjem_difference(c, s).backward()

        for fn in (kj, un, diff):
            fn()
        # With unit-variance s only the j = i kernel term matters, so the values are also
        # compared at 0.1 * s, where many terms of the sum do.
        with torch.no_grad():
            gap = max((kjem(c, x) - kjem_difference(c, x)).abs().item() for x in (s, 0.1 * s))

        def median_ms(fn: Any) -> float:
            return round(
                1000 * statistics.median(_timed(fn, device) for _ in range(args.repeats)), 3
            )

        core, reference = median_ms(kj), median_ms(diff)
        out[str(b)] = {
            "kjem_fwd_bwd_ms": core,
            "kjem_difference_form_fwd_bwd_ms": reference,
            "speedup_over_difference_form": round(reference / core, 2),
            "abs_diff_to_difference_form": gap,
            "uniformity_fwd_bwd_ms": median_ms(un),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batch")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--encoder", default="small-cnn", choices=("small-cnn", "resnet18"))
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.batch = 3, 128
    args.kjem_batches = (256, 1024)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log(f"throughput: {args.encoder} width {args.width}, batch {args.batch}")
    result: dict[str, Any] = {
        "benchmark": "sepclr",
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "throughput": throughput(args, device),
    }
    log("k-JEM cost")
    result["kjem"] = kjem_cost(args, device)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
