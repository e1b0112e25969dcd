"""Helpers to run a function, or a ``contrasuite`` command, in two gloo processes on CPU."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, fn: Callable[[int, int], None]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(rank, world)
    finally:
        if dist.is_initialized():  # ``fn`` may close it itself
            dist.destroy_process_group()


def run_gloo(fn: Callable[[int, int], None], world: int = 2) -> None:
    """Run ``fn(rank, world)`` in ``world`` processes; an exception in any of them fails the test.

    ``fn`` must be a module-level function (it is pickled to the children).
    """
    mp.spawn(_entry, args=(world, free_port(), fn), nprocs=world, join=True)


REPO = Path(__file__).resolve().parents[2]


def start_torchrun(args: Sequence[str], cwd: Path, nproc: int = 2) -> subprocess.Popen[str]:
    """Start ``python -m pipelines ARGS`` under torchrun with ``nproc`` processes (one thread).

    The launcher and its workers form a process group of their own, so :func:`wait_ok` can
    stop them all.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), "-m", "pipelines", *args]
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,
    )


def wait_ok(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    """Wait for a :func:`start_torchrun`; its stdout, once status 0.

    After ``timeout`` seconds (a hang: a rank left waiting in a collective) the launcher and
    every worker are killed and the test fails.
    """
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        message = f"torchrun still running after {timeout} s: {stderr[-3000:]}"
        raise AssertionError(message) from None
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stdout
