"""Two gloo processes give the loss and the gradients of one process on the global batch.

Convention (shared/distributed.py): the mean over ranks of the local losses equals the global
loss, and each local input's gradient divided by the world size (DDP's averaging) equals the
global gradient of that slice.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from shared.losses import (
    DCLLoss,
    DCLWLoss,
    InfoNCELoss,
    NTXentLoss,
    SupConLoss,
    UniformityLoss,
    dcl,
    dclw,
    info_nce,
    nt_xent,
    sup_con,
    uniformity,
)
from tests.shared._ddp import run_gloo

pytestmark = pytest.mark.ddp

B_LOCAL = 3


def _global_inputs():
    g = torch.Generator().manual_seed(1)
    world = 2
    n = B_LOCAL * world
    return {
        "z1": torch.randn(n, 5, generator=g, dtype=torch.float64),
        "z2": torch.randn(n, 5, generator=g, dtype=torch.float64),
        "f": torch.randn(n, 2, 5, generator=g, dtype=torch.float64),
        "labels": torch.tensor([0, 1, 2, 0, 1, 1]),
    }


CASES = {
    "nt_xent": (
        lambda m, x: m(x["z1"], x["z2"]),
        NTXentLoss(0.3, gather_distributed=True),
        lambda x: nt_xent(x["z1"], x["z2"], 0.3),
        ("z1", "z2"),
    ),
    "dcl": (
        lambda m, x: m(x["z1"], x["z2"]),
        DCLLoss(0.3, gather_distributed=True),
        lambda x: dcl(x["z1"], x["z2"], 0.3),
        ("z1", "z2"),
    ),
    "dclw": (
        lambda m, x: m(x["z1"], x["z2"]),
        DCLWLoss(0.3, 0.5, gather_distributed=True),
        lambda x: dclw(x["z1"], x["z2"], 0.3, 0.5),
        ("z1", "z2"),
    ),
    "sup_con": (
        lambda m, x: m(x["f"], x["labels"]),
        SupConLoss(0.2, gather_distributed=True),
        lambda x: sup_con(x["f"], x["labels"], 0.2),
        ("f",),
    ),
    "sup_con_unlabelled": (
        lambda m, x: m(x["f"]),
        SupConLoss(0.2, gather_distributed=True),
        lambda x: sup_con(x["f"], None, 0.2),
        ("f",),
    ),
    "info_nce": (
        lambda m, x: m(x["z1"], x["z2"], torch.eye(x["z1"].shape[0], dtype=torch.bool)),
        InfoNCELoss(0.3, gather_distributed=True),
        lambda x: info_nce(x["z1"], x["z2"], torch.eye(x["z1"].shape[0], dtype=torch.bool), 0.3),
        ("z1", "z2"),
    ),
    "uniformity": (
        lambda m, x: m(x["z1"]),
        UniformityLoss(2, gather_distributed=True),
        lambda x: uniformity(x["z1"], 2),
        ("z1",),
    ),
}


def _check_all(rank: int, world: int) -> None:
    for name, (call, module, reference, grad_keys) in CASES.items():
        glob = {
            k: v.clone().requires_grad_(v.is_floating_point()) for k, v in _global_inputs().items()
        }
        expected = reference(glob)
        expected.backward()
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        local = {
            k: v.detach()[sl].clone().requires_grad_(v.is_floating_point()) for k, v in glob.items()
        }
        loss = call(module, local)
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= world
        torch.testing.assert_close(mean_loss, expected.detach(), msg=f"{name}: loss")
        for key in grad_keys:
            torch.testing.assert_close(
                local[key].grad / world, glob[key].grad[sl], msg=f"{name}: grad of {key}"
            )


def test_gathered_losses_match_single_process_loss_and_gradients():
    run_gloo(_check_all)
