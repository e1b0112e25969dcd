"""shared.distributed's process-group lifecycle, in two gloo processes."""

from __future__ import annotations

from unittest import mock

import torch
import torch.distributed as dist

from shared.distributed import end_process_group, is_distributed, world_size
from tests.shared._ddp import run_gloo


def _end_then_alone(rank: int, world: int) -> None:
    total = torch.ones(1)
    dist.all_reduce(total)
    assert total.item() == world
    end_process_group(synchronise=True)
    assert not is_distributed()
    assert world_size() == 1
    end_process_group(synchronise=True)  # a second call, or one outside a group, does nothing


def _end_after_failure(rank: int, world: int) -> None:
    if rank == 0:  # "failed": it never reaches the end, so no rank may wait for it there
        return
    with mock.patch.object(dist, "barrier", side_effect=AssertionError("waited after a failure")):
        end_process_group(synchronise=False)
    assert not is_distributed()


def test_end_process_group_closes_the_group_on_every_rank():
    run_gloo(_end_then_alone)


def test_end_process_group_after_a_failure_does_not_wait_for_the_others():
    run_gloo(_end_after_failure)


def test_end_process_group_outside_a_group_does_nothing():
    assert not is_distributed()
    end_process_group(synchronise=True)
    end_process_group(synchronise=False)
