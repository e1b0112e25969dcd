"""Forward+backward time and peak memory of nt_xent and sup_con next to their peers.

Compares, on identical inputs in one process, ``shared.losses.nt_xent`` / ``sup_con`` with
lightly's ``NTXentLoss`` and pytorch-metric-learning's ``NTXentLoss`` / ``SupConLoss``, after
checking that the values agree (float64, relative 1e-5). The floor is the bare similarity
matmul ``a @ b.T`` of the same (2B, D) operands, forward and backward. A second part runs the
chunked path at large batches (8192-32768) to show that its memory grows linearly.

Run it in the benchmark environment (``make bench-setup``), which has the peers::

    .venv-bench/bin/python benchmarks/bench_losses.py            # the full run (~15 min)
    .venv-bench/bin/python benchmarks/bench_losses.py --quick    # a smoke run (~1 min)

It also runs in ``.venv`` (peers then reported as missing). JSON goes to stdout, progress to
stderr. See benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from shared.losses import nt_xent, sup_con

NT_TEMPERATURE = 0.5  # SimCLR / lightly's default
SUPCON_TEMPERATURE = 0.1  # Khosla et al. / PML's default
N_CLASSES = 100  # sup_con labels: uniform over 100 classes (CIFAR-100-like)
REL_TOL = 1e-5
Step = Callable[[], None]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- peers (optional imports)


def import_peers() -> dict[str, Any]:
    """The peer loss classes that import here, and why the others do not."""
    peers: dict[str, Any] = {}
    try:
        from lightly.loss import NTXentLoss as LightlyNTXent

        peers["lightly"] = LightlyNTXent
    except Exception as exc:  # ImportError, or torchvision failing to load its ops
        peers["lightly"] = f"missing: {type(exc).__name__}: {exc}"
    try:
        from pytorch_metric_learning.losses import NTXentLoss as PMLNTXent
        from pytorch_metric_learning.losses import SupConLoss as PMLSupCon

        peers["pml"] = (PMLNTXent, PMLSupCon)
    except Exception as exc:
        peers["pml"] = f"missing: {type(exc).__name__}: {exc}"
    return peers


def peer_versions() -> dict[str, str]:
    out = {}
    for name, module in (
        ("lightly", "lightly"),
        ("pytorch-metric-learning", "pytorch_metric_learning"),
    ):
        try:
            out[name] = str(__import__(module).__version__)
        except Exception:
            out[name] = "missing"
    return out


# ---------------------------------------------------------------- inputs and cases


def make_inputs(size: int, dim: int, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(size)
    z1 = torch.randn(size, dim, generator=gen, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(size, dim, generator=gen, dtype=torch.float64)  # correlated views
    labels = torch.randint(0, N_CLASSES, (size,), generator=gen)
    return {
        "z1": z1.to(device, dtype),
        "z2": z2.to(device, dtype),
        "labels": labels.to(device),
    }


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


def loss_fn(name: str, peers: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """Loss of (z1 (B, D), z2 (B, D), labels (B,)) for each compared implementation."""
    if name == "ours.nt_xent":
        return lambda z1, z2, labels: nt_xent(z1, z2, NT_TEMPERATURE)
    if name == "ours.nt_xent[chunked]":
        return lambda z1, z2, labels: nt_xent(z1, z2, NT_TEMPERATURE, chunk_size=_chunk(z1))
    if name == "ours.sup_con":
        return lambda z1, z2, labels: sup_con(torch.stack([z1, z2], 1), labels, SUPCON_TEMPERATURE)
    if name == "ours.sup_con[chunked]":
        return lambda z1, z2, labels: sup_con(
            torch.stack([z1, z2], 1), labels, SUPCON_TEMPERATURE, chunk_size=_chunk(z1)
        )
    if name == "lightly.NTXentLoss":
        lightly_loss = peers["lightly"](temperature=NT_TEMPERATURE, memory_bank_size=0)
        return lambda z1, z2, labels: lightly_loss(z1, z2)
    if name == "pml.NTXentLoss":
        pml_nt = peers["pml"][0](temperature=NT_TEMPERATURE)

        def pml_nt_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            ids = torch.arange(z1.shape[0], device=z1.device)
            return pml_nt(torch.cat([z1, z2]), torch.cat([ids, ids]))

        return pml_nt_loss
    if name == "pml.SupConLoss":
        pml_sc = peers["pml"][1](temperature=SUPCON_TEMPERATURE)
        # View-major (2B, D), as sup_con flattens (B, V, D).
        return lambda z1, z2, labels: pml_sc(torch.cat([z1, z2]), torch.cat([labels, labels]))
    raise KeyError(name)


def _chunk(z1: torch.Tensor) -> int:
    """Rows per block on the chunked path: about 128 MiB of float32 logits per block."""
    from shared.losses._chunked import default_chunk_size

    return default_chunk_size(2 * z1.shape[0])


FAMILY = {
    "nt_xent": ["ours.nt_xent", "lightly.NTXentLoss", "pml.NTXentLoss"],
    "sup_con": ["ours.sup_con", "pml.SupConLoss"],
}
PEER_OF = {"lightly.NTXentLoss": "lightly", "pml.NTXentLoss": "pml", "pml.SupConLoss": "pml"}


def pml_ntxent_bytes(size: int) -> int:
    """PML NTXentLoss builds an (n_pos, n_neg) float mask: 2B x 2B(2B-2) entries, ~18 B each."""
    n = 2 * size
    return n * n * (n - 2) * 18


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def skip_reason(name: str, size: int, peers: dict[str, Any], device: str) -> str | None:
    peer = PEER_OF.get(name)
    if peer is not None and isinstance(peers[peer], str):
        return peers[peer]
    if name == "pml.NTXentLoss":
        need = pml_ntxent_bytes(size)
        have = (
            torch.cuda.get_device_properties(0).total_memory
            if device == "cuda"
            else available_bytes()
        )
        if need > 0.5 * have:
            return (
                f"skipped: would need ~{need / 2**30:.0f} GiB (its (2B, 2B(2B-2)) negative-pair "
                f"mask grows as B^3), {have / 2**30:.0f} GiB available"
            )
    return None


def build_step(name: str, size: int, dim: int, device: str, peers: dict[str, Any]) -> Step:
    """One forward+backward of case ``name`` on fresh leaf inputs (float32)."""
    inputs = make_inputs(size, dim, device, torch.float32)
    if name == "floor.matmul":
        # The same (2B, D) operands as the losses; both require grad; a dense upstream gradient.
        a = _leaf(torch.cat([inputs["z1"], inputs["z2"]]))
        b = _leaf(torch.cat([inputs["z2"], inputs["z1"]]))
        upstream = torch.randn(2 * size, 2 * size, device=device)

        def floor_step() -> None:
            a.grad = b.grad = None
            (a @ b.T).backward(upstream)

        return floor_step
    fn = loss_fn(name, peers)
    z1, z2, labels = _leaf(inputs["z1"]), _leaf(inputs["z2"]), inputs["labels"]

    def step() -> None:
        z1.grad = z2.grad = None
        fn(z1, z2, labels).backward()

    return step


# ---------------------------------------------------------------- value agreement


def check_values(size: int, dim: int, peers: dict[str, Any]) -> dict[str, Any]:
    """Losses in float64 on identical inputs; relative difference to ours."""
    inputs = make_inputs(size, dim, "cpu", torch.float64)
    z1, z2, labels = inputs["z1"], inputs["z2"], inputs["labels"]
    out: dict[str, Any] = {}
    for family, names in FAMILY.items():
        ours = float(loss_fn(names[0], peers)(z1, z2, labels))
        chunked = float(loss_fn(names[0] + "[chunked]", peers)(z1, z2, labels))
        fam: dict[str, Any] = {
            names[0]: ours,
            names[0] + "[chunked]": {"value": chunked, "rel_diff": abs(chunked - ours) / ours},
        }
        for name in names[1:]:
            reason = skip_reason(name, size, peers, "cpu")
            if reason is not None:
                fam[name] = reason
                continue
            value = float(loss_fn(name, peers)(z1, z2, labels))
            rel = abs(value - ours) / abs(ours)
            fam[name] = {"value": value, "rel_diff": rel, "agrees": rel <= REL_TOL}
        out[family] = fam
    return out


COMPARED = {
    "nt_xent": (
        f"nt_xent(z1, z2, temperature={NT_TEMPERATURE}) [mean over the 2B anchors] vs "
        f"lightly NTXentLoss(temperature={NT_TEMPERATURE}, memory_bank_size=0)(z1, z2) "
        "[cross-entropy mean over 2B rows] and pytorch-metric-learning "
        f"NTXentLoss(temperature={NT_TEMPERATURE})(cat([z1, z2]), labels=cat([arange(B)] * 2)) "
        "[mean over the 2B positive pairs; its + tiny inside the log is negligible]; all cosine"
    ),
    "sup_con": (
        f"sup_con(stack([z1, z2], 1), labels, temperature={SUPCON_TEMPERATURE}) [L_out, mean "
        "over anchors with a positive] vs pytorch-metric-learning "
        f"SupConLoss(temperature={SUPCON_TEMPERATURE})(cat([z1, z2]), cat([labels, labels])) "
        f"[AvgNonZeroReducer; every anchor has a positive here]; labels uniform over "
        f"{N_CLASSES} classes; lightly has no SupCon loss (lightly #1554)"
    ),
    "precision": f"float64 inputs, relative difference to ours <= {REL_TOL}",
}


# ---------------------------------------------------------------- timing and memory


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(
    steps: dict[str, Step], device: str, repeats: int, warmup: int, min_seconds: float = 2.0
) -> dict[str, dict[str, Any]]:
    """Median (and min) wall time of each step, the cases interleaved round-robin.

    Each case runs at least ``repeats`` times and, when it is fast, more (up to 100 runs or
    about ``min_seconds`` of its own time), so that short cases get enough samples. The cases
    take turns, so that load from other processes falls on all of them alike.
    """
    quota: dict[str, int] = {}
    for name, step in steps.items():
        quota[name] = repeats
        if warmup > 0:  # the warm-up runs also tell how many runs fit in min_seconds
            start = time.perf_counter()
            for _ in range(warmup):
                step()
            sync(device)
            each = (time.perf_counter() - start) / warmup
            quota[name] = max(repeats, min(100, int(min_seconds / max(each, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in steps}
    while any(len(times[name]) < quota[name] for name in steps):
        for name, step in steps.items():
            if len(times[name]) >= quota[name]:
                continue
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "median_s": statistics.median(ts),
            "min_s": min(ts),
            "runs": len(ts),
            "times_s": [round(t, 5) for t in ts] if len(ts) <= 10 else "omitted (>10 runs)",
        }
        for name, ts in times.items()
    }


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def measure_memory_here(name: str, size: int, dim: int, device: str) -> dict[str, Any]:
    """Peak memory growth of one forward+backward, in this (fresh) process."""
    peers = import_peers()
    if device == "cuda":
        step = build_step(name, size, dim, device, peers)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - base, "method": "cuda"}
    build_step(name, min(size, 64), dim, device, peers)()  # lazy buffers, thread pools
    step = build_step(name, size, dim, device, peers)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM, the peak resident set size
    base = _status_kib("VmRSS")
    step()
    return {"peak_bytes": (_status_kib("VmHWM") - base) * 1024, "method": "VmHWM-VmRSS"}


def measure_memory(name: str, size: int, dim: int, device: str) -> dict[str, Any]:
    """Run ``measure_memory_here`` in a subprocess so that earlier cases leave no trace."""
    if device == "cpu" and not os.access("/proc/self/clear_refs", os.W_OK):
        return {"error": "needs Linux /proc/self/clear_refs"}
    spec = json.dumps({"name": name, "size": size, "dim": dim, "device": device})
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_memory-case", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_cases(
    names: list[str],
    size: int,
    args: argparse.Namespace,
    device: str,
    peers: dict[str, Any],
    repeats: int,
    warmup: int,
) -> dict[str, Any]:
    """Time the cases together (interleaved), then measure each one's memory alone."""
    results: dict[str, Any] = {}
    steps: dict[str, Step] = {}
    for name in names:
        reason = skip_reason(name, size, peers, device)
        if reason is None:
            steps[name] = build_step(name, size, args.dim, device, peers)
        else:
            results[name] = {"skipped": reason}
            log(f"  {name:24s} B={size:6d}: {reason}")
    timed = time_steps(steps, device, repeats, warmup)
    steps.clear()
    for name in names:
        if name not in timed:
            continue
        result = timed[name]
        if not args.no_memory:
            result.update(measure_memory(name, size, args.dim, device))
        peak = result.get("peak_bytes")
        log(
            f"  {name:24s} B={size:6d}: median {result['median_s'] * 1e3:9.1f} ms"
            f"  min {result['min_s'] * 1e3:9.1f} ms"
            + (f"  peak {peak / 2**20:8.1f} MiB" if peak is not None else "")
        )
        results[name] = result
    return results


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def _ratios(cases: dict[str, Any], key: str) -> dict[str, Any]:
    floor = cases["floor.matmul"].get(key)
    out: dict[str, Any] = {}
    for family, names in FAMILY.items():
        ours = cases[names[0]].get(key)
        peer_times = {n: cases[n][key] for n in names[1:] if cases[n].get(key)}
        fastest = min(peer_times, key=lambda n: peer_times[n]) if peer_times else None
        out[family] = {
            "ours_over_floor": ratio(ours, floor),
            "chunked_over_floor": ratio(cases[names[0] + "[chunked]"].get(key), floor),
            "fastest_peer": fastest,
            "ours_over_fastest_peer": ratio(ours, peer_times.get(fastest or "")),
            **{f"{n}_over_ours": ratio(t, ours) for n, t in peer_times.items()},
        }
    return out


def run_device(args: argparse.Namespace, device: str, peers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}, "chunked_large": {}}
    names = ["floor.matmul"]
    for family_names in FAMILY.values():
        names += [family_names[0], family_names[0] + "[chunked]", *family_names[1:]]
    for size in args.sizes:
        log(f"[{device}] batch {size}")
        cases = run_cases(names, size, args, device, peers, args.repeats, args.warmup)
        out["sizes"][str(size)] = {
            "cases": cases,
            "ratios": _ratios(cases, "median_s"),
            "ratios_of_min": _ratios(cases, "min_s"),
        }
    for size in args.chunked_sizes:
        log(f"[{device}] chunked path, batch {size}")
        entry = run_cases(args.chunked_cases, size, args, device, peers, args.big_repeats, 0)
        for res in entry.values():
            logits = (2 * size) ** 2 * 4
            res["full_logits_bytes"] = logits
            if "peak_bytes" in res:
                res["peak_over_full_logits"] = round(res["peak_bytes"] / logits, 4)
        out["chunked_large"][str(size)] = entry
    return out


def targets(result: dict[str, Any], max_size: int) -> dict[str, Any]:
    """Which of the issue's targets this run meets (CPU results)."""
    cpu = result["devices"]["cpu"]
    faster: dict[str, Any] = {}
    for size, entry in cpu["sizes"].items():
        for family, r in entry["ratios"].items():
            value = r["ours_over_fastest_peer"]
            faster[f"{family}@{size}"] = None if value is None else value <= 1.0
    floor: dict[str, Any] = {}
    big = cpu["sizes"].get(str(max_size))
    if big is not None:
        for family, r in big["ratios"].items():
            value = r["ours_over_floor"]
            floor[f"{family}@{max_size}"] = {
                "ratio": value,
                "met": None if value is None else value <= 1.5,
            }
    memory: dict[str, Any] = {}
    for size, entry in cpu["chunked_large"].items():
        for name, res in entry.items():
            if "peak_bytes" in res:
                memory[f"{name}@{size}"] = {
                    "peak_gib": round(res["peak_bytes"] / 2**30, 3),
                    "under_8_gib": res["peak_bytes"] < 8 * 2**30,
                }
    return {
        "at_least_as_fast_as_fastest_peer": faster,
        "at_most_1.5x_floor_at_largest_size": floor,
        "chunked_peak_memory": memory,
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="JSON goes to stdout, progress to stderr.",
    )
    parser.add_argument(
        "--sizes",
        default="256,1024,4096",
        help="comma-separated batch sizes B (pairs) for the comparison (default: %(default)s)",
    )
    parser.add_argument(
        "--chunked-sizes",
        default="8192,16384,32768",
        help="batch sizes for the chunked path alone; '' for none (default: %(default)s)",
    )
    parser.add_argument(
        "--chunked-cases",
        default="ours.nt_xent[chunked]",
        help="which losses to run at --chunked-sizes, comma-separated; also "
        "ours.sup_con[chunked] (default: %(default)s)",
    )
    parser.add_argument("--dim", type=int, default=128, help="embedding dim D (default: 128)")
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed repeats per case (default: 7)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default: 2)")
    parser.add_argument(
        "--big-repeats",
        type=int,
        default=2,
        help="timed repeats at --chunked-sizes, no warmup (default: 2)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CPU, and CUDA too when a GPU is present (default: auto)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch.set_num_threads for the timings; 0 keeps the machine default (default: 0)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory subprocesses")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: sizes 256,1024, chunked 8192 (nt_xent), 2 repeats, 1 warmup",
    )
    parser.add_argument("--_memory-case", dest="memory_case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.chunked_sizes = "256,1024", "8192"
        args.chunked_cases = "ours.nt_xent[chunked]"
        args.repeats, args.warmup, args.big_repeats = 2, 1, 1
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.chunked_sizes = [int(s) for s in args.chunked_sizes.split(",") if s]
    args.chunked_cases = [s for s in args.chunked_cases.split(",") if s]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_case:
        spec = json.loads(args.memory_case)
        print(
            json.dumps(measure_memory_here(spec["name"], spec["size"], spec["dim"], spec["device"]))
        )
        return 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    peers = import_peers()
    devices = ["cpu"]
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices = ["cpu", "cuda"] if args.device == "auto" else ["cuda"]
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, devices {devices}")
    result: dict[str, Any] = {
        "env": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            **peer_versions(),
        },
        "setup": {
            "dim": args.dim,
            "dtype": "float32",
            "views": 2,
            "nt_xent_temperature": NT_TEMPERATURE,
            "sup_con_temperature": SUPCON_TEMPERATURE,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "timing": "wall time of forward+backward (grads w.r.t. both inputs); median_s "
            "(headline) and min_s over >= `repeats` runs (fast cases: up to 100 runs or ~2 s), "
            "the cases of one size interleaved round-robin after `warmup` runs each",
            "memory": (
                "peak resident-set growth of one forward+backward in a fresh subprocess "
                "(Linux VmHWM reset via /proc/self/clear_refs, minus VmRSS after the inputs "
                "exist); CUDA: torch.cuda.max_memory_allocated growth"
            ),
            "floor": "a @ b.T with a, b (2B, D) requiring grad, backward with a dense upstream "
            "gradient: 3 matmuls of the loss's size (for sup_con, (V B)^2 with V = 2: the same)",
        },
        "peers": {k: (v if isinstance(v, str) else "ok") for k, v in peers.items()},
        "compared": COMPARED,
        "values": {},
        "devices": {},
    }
    for size in args.sizes:
        log(f"values at batch {size} (float64)")
        result["values"][str(size)] = check_values(size, args.dim, peers)
    agree = [
        v["agrees"]
        for per_size in result["values"].values()
        for fam in per_size.values()
        for v in fam.values()
        if isinstance(v, dict) and "agrees" in v
    ]
    result["values_agree"] = all(agree) if agree else None
    for device in devices:
        result["devices"][device] = run_device(args, device, peers)
    result["env"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = targets(result, max(args.sizes)) if "cpu" in devices else None
    print(json.dumps(result, indent=1, default=_json_default))
    return 0


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    raise TypeError(type(x))


if __name__ == "__main__":
    sys.exit(main())
