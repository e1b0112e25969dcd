"""Speed and memory of the prostate dual-path net against MONAI's UNet and DynUNet; cache speed-up.

One JSON document on stdout (progress on stderr):

* ``models``: for the baseline ``ZoneUNet``, our ``DualPathNet`` (with SDM heads), MONAI's
  ``UNet`` and ``DynUNet`` (anisotropic strides, filters chosen for about the dual-path net's
  parameter count): parameters, training steps per second (Adam, Dice + CE on every output,
  batch ``--batch`` crops of ``--roi``; median of ``--steps`` steps after one warm-up step),
  sliding-window inference seconds per volume (``--volume``, MONAI
  ``sliding_window_inference`` with ``--roi`` windows, overlap 0.25, gaussian blending, median
  of ``--repeats``), and peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the peak
  resident set of a fresh process per model on the CPU (``ru_maxrss``, so it includes the
  ~300 MB of the Python + torch + MONAI runtime: compare differences, not absolute values).
* ``cache``: seconds to load and preprocess every volume of a phantom set with the training
  transforms' deterministic part (RAS, resampling, percentile scaling, signed distance maps)
  without a cache, the first epoch of a MONAI ``PersistentDataset`` (builds the cache) and the
  second (reads it), and the speed-up of the second over raw loading.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_prostate.py --threads 1
    .venv/bin/python benchmarks/bench_prostate.py --device cuda --roi 96,96,16 --base-filters 16
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import DynUNet, UNet

from medical.prostate.losses import supervised_loss
from medical.prostate.model import DualPathNet, ZoneUNet

STRIDES = ((2, 2, 1), (2, 2, 1), (2, 2, 2))


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def monai_unet(c: int) -> UNet:
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=5,
        channels=(2 * c, 4 * c, 8 * c, 16 * c),
        strides=STRIDES,
        num_res_units=1,
        norm="instance",
    )


def monai_dynunet(c: int) -> DynUNet:
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=5,
        kernel_size=[3, 3, 3, 3],
        strides=[1, *STRIDES],
        upsample_kernel_size=list(STRIDES),
        filters=[2 * c, 4 * c, 8 * c, 16 * c],
        norm_name="instance",
    )


BUILDERS = {"MONAI-UNet": monai_unet, "MONAI-DynUNet": monai_dynunet}


def matched_width(name: str, f: int) -> int:
    """The width whose parameter count is closest to the dual-path net's (run in the parent)."""
    target = _params(DualPathNet(f))
    best, best_gap, c = 1, float("inf"), 1
    while True:
        n = _params(BUILDERS[name](c))
        if abs(n - target) < best_gap:
            best, best_gap = c, abs(n - target)
        if n > target:
            return best
        c += 1


def build(name: str, f: int, width: int) -> torch.nn.Module:
    if name == "ZoneUNet":
        return ZoneUNet(f)
    if name == "DualPathNet":
        return DualPathNet(f)
    return BUILDERS[name](width)


def _logits(out: Any) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return [v for k, v in out.items() if k.startswith("logits")]
    return [out]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build(name, args.base_filters, args.width).to(device)
    roi = args.roi
    x = torch.randn(args.batch, 1, *roi, device=device)
    y = torch.randint(0, 5, (args.batch, 1, *roi), device=device)
    sdm = torch.rand(args.batch, 4, *roi, device=device) * 2 - 1
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.steps + 1):
        _sync(device)
        t = time.perf_counter()
        out = net(x)
        loss = torch.stack([supervised_loss(lg, y) for lg in _logits(out)]).sum()
        if isinstance(out, dict) and "sdm_a" in out:
            loss = loss + ((out["sdm_a"] - sdm) ** 2).mean() + ((out["sdm_b"] - sdm) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t)
    net.eval()
    volume = torch.randn(1, 1, *args.volume, device=device)

    def predictor(v: torch.Tensor) -> torch.Tensor:
        if isinstance(net, (ZoneUNet, DualPathNet)):
            return net.predict_proba(v)
        return torch.softmax(net(v), 1)

    infer = []
    with torch.no_grad():
        for i in range(args.repeats + 1):
            _sync(device)
            t = time.perf_counter()
            sliding_window_inference(volume, roi, 2, predictor, overlap=0.25, mode="gaussian")
            _sync(device)
            if i:
                infer.append(time.perf_counter() - t)
    step = statistics.median(times)
    result = {
        "params": _params(net),
        "train_step_s": round(step, 4),
        "train_steps_per_s": round(1 / step, 3),
        "sliding_window_s_per_volume": round(statistics.median(infer), 4),
    }
    if device.type == "cuda":
        result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_rss_mb"] = round(rss / 1024, 1)  # ru_maxrss is in KiB on Linux
    return result


def cache_speedup(args: argparse.Namespace) -> dict[str, Any]:
    from medical.prostate.config import DataConfig
    from medical.prostate.data import build_dataset, eval_transforms
    from medical.prostate.phantom import write_phantom_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = write_phantom_dataset(Path(tmp) / "data", args.cache_cases, seed=0, n_unlabelled=0)
        items = [
            {"image": str(p), "label": str(root / "labelsTr" / p.name)}
            for p in sorted((root / "imagesTr").iterdir())
        ]
        cfg = DataConfig(spacing=(0.5, 0.5, 3.0))
        transform = eval_transforms(cfg, True)

        def epoch(ds: Any) -> float:
            t = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            return time.perf_counter() - t

        raw = epoch(build_dataset(items, transform, None))
        cached = build_dataset(items, transform, Path(tmp) / "cache")
        first = epoch(cached)
        second = epoch(cached)
    return {
        "volumes": len(items),
        "volume_shape": [80, 80, 16],
        "resampled_to_mm": list(cfg.spacing),
        "raw_s": round(raw, 3),
        "persistent_first_epoch_s": round(first, 3),
        "persistent_second_epoch_s": round(second, 3),
        "speedup_second_vs_raw": round(raw / second, 2),
    }


def _triple(text: str) -> tuple[int, int, int]:
    a, b, c = (int(v) for v in text.split(","))
    return a, b, c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--roi", type=_triple, default=(32, 32, 16))
    parser.add_argument("--volume", type=_triple, default=(64, 64, 24))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--base-filters", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-cases", type=int, default=6)
    parser.add_argument("--models", default="ZoneUNet,DualPathNet,MONAI-UNet,MONAI-DynUNet")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--width", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--skip-cache", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one, args)))
        return
    models = {}
    for name in args.models.split(","):
        print(f"measuring {name} ...", file=sys.stderr)
        # a fresh process per model: its peak RSS is that model's alone
        width = matched_width(name, args.base_filters) if name in BUILDERS else 0
        cmd = [sys.executable, __file__, "--one", name, "--width", str(width), *sys.argv[1:]]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        models[name] = json.loads(done.stdout.strip().splitlines()[-1])
        if width:
            models[name]["width"] = width
    base = models.get("DualPathNet")
    if base:
        for m in models.values():
            m["train_speed_vs_dual_path"] = round(
                m["train_steps_per_s"] / base["train_steps_per_s"], 3
            )
    report = {
        "settings": {
            "device": args.device,
            "threads": args.threads,
            "roi": list(args.roi),
            "batch": args.batch,
            "volume": list(args.volume),
            "base_filters": args.base_filters,
            "steps": args.steps,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "models": models,
    }
    if not args.skip_cache:
        print("measuring the preprocessed cache ...", file=sys.stderr)
        report["cache"] = cache_speedup(args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
