"""Two gloo processes reproduce the single-process loss and gradients of the extra losses.

For every module with ``gather_distributed=True`` (SwAV, CACR, AMCL, Feature Transformation,
k-JEM, SepCLR uniformity): each rank holds its half of a global batch; the mean over ranks of
the local losses equals the loss of one process on the global batch, and each local input's
gradient divided by the world size (DDP's averaging, see shared/distributed.py) equals the
global batch's gradient of that slice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from shared.losses.amcl import AMCLLoss
from shared.losses.cacr import CACRLoss
from shared.losses.feature_transform import FeatureTransformLoss
from shared.losses.kjem import KJEMLoss, SepCLRUniformityLoss
from shared.losses.swav import SwAVLoss, swav
from tests.shared._ddp import run_gloo

pytestmark = pytest.mark.ddp

B_LOCAL = 3
WORLD = 2


def _global_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    n = B_LOCAL * WORLD
    return {
        "views": torch.randn(n, 3, 5, generator=g, dtype=torch.float64),
        "z1": torch.randn(n, 2, 5, generator=g, dtype=torch.float64),
        "z2": torch.randn(n, 2, 5, generator=g, dtype=torch.float64),
        "q": torch.randn(n, 5, generator=g, dtype=torch.float64),
        "k": torch.randn(n, 5, generator=g, dtype=torch.float64),
        "c": torch.randn(n, 4, generator=g, dtype=torch.float64),
        "s": torch.randn(n, 2, generator=g, dtype=torch.float64),
    }


def _seeded(factory: Callable[[bool], torch.nn.Module], gather: bool) -> torch.nn.Module:
    torch.manual_seed(0)  # identical parameters and buffers on every rank and for the reference
    return factory(gather).double()


Call = Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor]

# name: (module factory taking gather_distributed, call, keys whose gradients are compared)
CASES: dict[str, tuple[Callable[[bool], torch.nn.Module], Call, tuple[str, ...]]] = {
    "swav": (
        lambda d: SwAVLoss(5, 4, gather_distributed=d),
        lambda m, x: m(x["views"]),
        ("views",),
    ),
    "cacr": (
        lambda d: CACRLoss(pos_temperature=0.5, gather_distributed=d),
        lambda m, x: m(x["views"]),
        ("views",),
    ),
    "amcl": (
        lambda d: AMCLLoss(5, 2, beta=0.01, tau_min=0.05, top_k=4, gather_distributed=d),
        lambda m, x: m(x["z1"], x["z2"]),
        ("z1", "z2"),
    ),
    "feature_transform": (
        lambda d: FeatureTransformLoss(queue_size=8, dim=5, gather_distributed=d),
        lambda m, x: m(x["q"], x["k"], generator=torch.Generator().manual_seed(3)),
        ("q", "k"),
    ),
    "kjem": (
        lambda d: KJEMLoss(0.5, gather_distributed=d),
        lambda m, x: m(x["c"], x["s"]),
        ("c", "s"),
    ),
    "sepclr_uniformity": (
        lambda d: SepCLRUniformityLoss(0.5, gather_distributed=d),
        lambda m, x: m(x["c"]),
        ("c",),
    ),
}


def _mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def _check_modules(rank: int, world: int) -> None:
    sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
    for name, (factory, call, grad_keys) in CASES.items():
        glob = {k: v.clone().requires_grad_() for k, v in _global_inputs().items()}
        reference = _seeded(factory, False)
        expected = call(reference, glob)
        expected.backward()
        local = {k: v.detach()[sl].clone().requires_grad_() for k, v in glob.items()}
        module = _seeded(factory, True)
        loss = call(module, local)
        loss.backward()
        torch.testing.assert_close(_mean_over_ranks(loss), expected.detach(), msg=f"{name}: loss")
        for key in grad_keys:
            grad, expected_grad = local[key].grad, glob[key].grad
            assert grad is not None, f"{name}: no gradient for {key}"
            assert expected_grad is not None, f"{name}: no reference gradient for {key}"
            torch.testing.assert_close(
                grad / world, expected_grad[sl], msg=f"{name}: grad of {key}"
            )
        for buf_name, buf in module.named_buffers():  # queues stay identical to one process's
            torch.testing.assert_close(
                buf, dict(reference.named_buffers())[buf_name], msg=f"{name}: {buf_name}"
            )


def _check_swav_queue_and_sinkhorn_sums(rank: int, world: int) -> None:
    """SwAV's distributed Sinkhorn with per-rank queues equals one Sinkhorn on everything."""
    g = torch.Generator().manual_seed(11)
    n, q_local = B_LOCAL * world, 2
    scores = F.normalize(torch.randn(n, 3, 6, generator=g, dtype=torch.float64), dim=-1)
    queue = F.normalize(torch.randn(2, q_local * world, 6, generator=g, dtype=torch.float64), -1)
    glob = scores.clone().requires_grad_()
    expected = swav(glob, queue_scores=queue)
    expected.backward()
    sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
    local = scores[sl].clone().requires_grad_()
    local_queue = queue[:, rank * q_local : (rank + 1) * q_local]
    loss = swav(local, queue_scores=local_queue, gather_distributed=True)
    loss.backward()
    torch.testing.assert_close(_mean_over_ranks(loss), expected.detach())
    assert local.grad is not None
    assert glob.grad is not None
    torch.testing.assert_close(local.grad / world, glob.grad[sl])


def _check_all(rank: int, world: int) -> None:
    _check_modules(rank, world)
    _check_swav_queue_and_sinkhorn_sums(rank, world)


def test_extra_losses_gathered_match_single_process_loss_and_gradients() -> None:
    run_gloo(_check_all, world=WORLD)


def test_cases_cover_every_module() -> None:
    kinds: set[Any] = {type(factory(True)) for factory, _, _ in CASES.values()}
    assert kinds == {
        SwAVLoss,
        CACRLoss,
        AMCLLoss,
        FeatureTransformLoss,
        KJEMLoss,
        SepCLRUniformityLoss,
    }
