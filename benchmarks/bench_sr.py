"""PCL-SR costs: training steps with and without the PCL term, upscaling throughput, tiled memory.

One JSON document on stdout (progress on stderr):

* ``train``: seconds per training step (forward, backward, optimizer step) of an EDSR on random
  patches, L1 only vs L1 + PCL (which adds one discriminator update on 1 + n_pos real and
  1 + n_neg fake batches and the embedding of 9 batches up to ``pcl.layer``), for each
  discriminator width in ``--d-widths`` (the paper's is 64). The variants run interleaved,
  round by round, so that a busy machine slows them alike; medians over rounds.
  ``relative_cost`` = PCL step / L1 step.
* ``upscale``: megapixels (of output) per second of ``vision.sr.infer.upscale_tensor`` with
  tiles (``--tile``, ``--pad``) and of a plain ``model(lr)`` forward on the whole image (the
  image must exceed ``tile + 2 * pad`` to be tiled at all; the tiles' context is recomputed,
  which is the price of bounded memory).
* ``memory``: peak memory of whole-image vs tiled upscaling of a ``--memory-side`` LR image,
  each in a fresh subprocess: the growth of the resident set (CPU, ``ru_maxrss``) or
  ``torch.cuda.max_memory_allocated`` (CUDA).

Run::

    .venv/bin/python benchmarks/bench_sr.py > bench_sr.json
    .venv/bin/python benchmarks/bench_sr.py --size baseline --d-widths 64 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from vision.sr.config import PCLConfig
from vision.sr.infer import receptive_radius, upscale_tensor
from vision.sr.model import EDSR, count_parameters
from vision.sr.tasks import SRTask


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Median seconds per step of L1 and of L1 + PCL for each discriminator width."""
    torch.manual_seed(0)
    s = args.scale
    lr = torch.rand(args.batch, 3, args.patch // s, args.patch // s, device=device)
    hr = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    variants: dict[str, tuple[SRTask, torch.optim.Optimizer]] = {}
    for name, pcl in [("l1", None)] + [(f"pcl_d{w}", PCLConfig(d_width=w)) for w in args.d_widths]:
        task = SRTask(EDSR.from_size(s, args.size), pcl).to(device)
        opt: torch.optim.Optimizer = torch.optim.Adam(
            [p for p in task.parameters() if p.requires_grad], lr=1e-4
        )
        variants[name] = (task, opt)
    times: dict[str, list[float]] = {k: [] for k in variants}

    def step(task: SRTask, opt: torch.optim.Optimizer) -> None:
        out = task.training_step((lr, hr))
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for task, opt in variants.values():
        for _ in range(args.warmup):
            step(task, opt)
    for r in range(args.rounds):
        for name, (task, opt) in variants.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(task, opt)
            _sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)
        _log(
            f"train round {r + 1}/{args.rounds}: "
            + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items())
        )
    base = statistics.median(times["l1"])
    out: dict[str, Any] = {}
    for name, values in times.items():
        med = statistics.median(values)
        out[name] = {
            "seconds_per_step": med,
            "steps_per_second": 1.0 / med,
            "relative_cost": med / base,
            "rounds": values,
        }
    out["settings"] = {
        "size": args.size,
        "params": count_parameters(variants["l1"][0].model),
        "batch": args.batch,
        "hr_patch": args.patch,
        "scale": s,
        "n_pos": PCLConfig().n_pos,
        "n_neg": PCLConfig().n_neg,
    }
    return out


@torch.no_grad()
def bench_upscale(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Output megapixels per second: tiled upscale vs one plain forward."""
    torch.manual_seed(0)
    model = EDSR.from_size(args.scale, args.size).to(device).eval()
    lr = torch.rand(3, args.upscale_side, args.upscale_side, device=device)
    mp = (args.upscale_side * args.scale) ** 2 / 1e6
    runs = {
        "forward": lambda: model(lr[None]),
        "tiled": lambda: upscale_tensor(model, lr, args.scale, tile=args.tile, pad=args.pad),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in runs.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    pad = receptive_radius(model) if args.pad is None else args.pad
    return {
        name: {"seconds": statistics.median(v), "megapixels_per_second": mp / statistics.median(v)}
        for name, v in times.items()
    } | {"settings": {"lr_side": args.upscale_side, "tile": args.tile, "pad": pad}}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> int:
    """Reset the peak resident set (Linux ``clear_refs`` 5) and return the current one (KiB)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    current = _status_kib("VmRSS")
    return current if current is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    peak = _status_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_case(args: argparse.Namespace) -> dict[str, Any]:
    """(subprocess) Peak memory of one whole-image or tiled upscale."""
    device = torch.device(args.device)
    model = EDSR.from_size(args.scale, args.size).to(device).eval()
    lr = torch.rand(3, args.memory_side, args.memory_side, device=device)
    tile = None if args.memory_case == "whole" else args.tile
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 8, device=device))  # allocator and kernels warmed up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    before = _reset_peak_rss()
    upscale_tensor(model, lr, args.scale, tile=tile, pad=args.pad)
    _sync(device)
    out = {"rss_growth_mib": (_peak_rss_kib() - before) / 1024.0}
    if device.type == "cuda":
        out["cuda_peak_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return out


def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`memory_case` for whole and tiled in fresh subprocesses."""
    out: dict[str, Any] = {
        "settings": {"lr_side": args.memory_side, "tile": args.tile, "pad": args.pad}
    }
    for case in ("whole", "tiled"):
        cmd = [
            sys.executable, __file__, "--_memory-case", case, "--device", args.device,
            "--size", args.size, "--scale", str(args.scale), "--memory-side", str(args.memory_side),
            "--tile", str(args.tile), "--threads", str(args.threads),
        ] + ([] if args.pad is None else ["--pad", str(args.pad)])  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[case] = json.loads(result.stdout)
        _log(f"memory {case}: {out[case]}")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--size", default="tiny", choices=("tiny", "small", "baseline", "large"))
    p.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    p.add_argument("--batch", type=int, default=16, help="training batch (default: 16)")
    p.add_argument("--patch", type=int, default=64, help="HR training patch (default: 64)")
    p.add_argument("--d-widths", type=lambda t: [int(x) for x in t.split(",")], default=[32, 64])
    p.add_argument("--steps", type=int, default=3, help="timed steps per round (default: 3)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    p.add_argument("--upscale-side", type=int, default=320, help="LR side for throughput")
    p.add_argument("--memory-side", type=int, default=512, help="LR side for peak memory")
    p.add_argument("--tile", type=int, default=128, help="LR tile (default: 128)")
    p.add_argument(
        "--pad", type=int, default=None, help="LR context per tile side (default: receptive radius)"
    )
    p.add_argument("--skip", default="", help="comma list of parts to skip: train,upscale,memory")
    p.add_argument("--_memory-case", dest="memory_case", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_case:
        print(json.dumps(memory_case(args)))
        return 0
    device = torch.device(args.device)
    skip = set(filter(None, args.skip.split(",")))
    result: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": str(device),
            "threads": args.threads,
        }
    }
    if "train" not in skip:
        result["train"] = bench_train(args, device)
    if "upscale" not in skip:
        result["upscale"] = bench_upscale(args, device)
    if "memory" not in skip:
        result["memory"] = bench_memory(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
