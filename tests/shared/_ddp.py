"""Helpers to run a function in two gloo processes on CPU (used by the ddp tests)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

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
        dist.destroy_process_group()


def run_gloo(fn: Callable[[int, int], None], world: int = 2) -> None:
    """Run ``fn(rank, world)`` in ``world`` processes; an exception in any of them fails the test.

    ``fn`` must be a module-level function (it is pickled to the children).
    """
    mp.spawn(_entry, args=(world, free_port(), fn), nprocs=world, join=True)
