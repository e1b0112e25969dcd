"""torch.distributed helpers: rank, world size and an all-gather that keeps gradients.

Convention (the same as DDP's): every rank computes the loss of its *local* anchors against the
*gathered* candidates and calls ``backward``; DDP then averages parameter gradients over ranks.
With :func:`gather`, the sum over ranks of the local losses' gradients reaches every local input,
so after DDP's averaging the gradients equal those of the mean loss on the global batch. The
tests check exactly this with two gloo processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from shared.errors import InputError

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def is_distributed() -> bool:
    """Return whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Return this process's rank (0 outside distributed runs)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Return the number of processes (1 outside distributed runs)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Return whether this process is rank 0."""
    return rank() == 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients of every rank and keeps the local slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([g.contiguous() for g in grads])
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dimension 0, keeping gradients.

    Outside a distributed run this returns ``x`` unchanged. Every rank must pass the same shape.

    Args:
        x: The local tensor. Shape: (B, ...).

    Returns:
        The global tensor, rank 0's rows first. Shape: (world_size * B, ...).
    """
    if world_size() == 1:
        return x
    return torch.cat(_GatherWithGrad.apply(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dimension 0 without autograd (labels, queues).

    Args:
        x: The local tensor. Shape: (B, ...).

    Returns:
        Shape: (world_size * B, ...).
    """
    if world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def all_reduce_sum_(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over ranks in place (no autograd); a no-op outside distributed runs."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def local_offset(batch_size: int) -> int:
    """Return the index of this rank's first row in a gathered tensor (per-rank ``batch_size``)."""
    return rank() * batch_size


def eye_rank(batch_size: int, device: torch.device | None = None) -> torch.Tensor:
    """Return the positive mask of local rows against gathered columns.

    Row ``i`` is True at column ``rank * batch_size + i`` (the same sample in the global batch).

    Args:
        batch_size: The local batch size B.
        device: Where to build the mask.

    Returns:
        Bool mask. Shape: (B, world_size * B).

    Examples:
        >>> eye_rank(2).int().tolist()
        [[1, 0], [0, 1]]
    """
    rows = torch.arange(batch_size, device=device)
    mask = torch.zeros(batch_size, world_size() * batch_size, dtype=torch.bool, device=device)
    mask[rows, rows + local_offset(batch_size)] = True
    return mask


def shuffled_loader(
    dataset: Dataset[Any], batch_size: int, *, seed: int, drop_last: bool = False, **kwargs: Any
) -> DataLoader[Any]:
    """Shuffled training batches of ``batch_size``; under DDP each rank's share of every epoch.

    Under ``torchrun`` a :class:`~torch.utils.data.DistributedSampler` (shuffled, seeded by
    ``seed``; the Trainer calls its ``set_epoch``) hands each rank a disjoint part of the data,
    so the global batch is ``world_size * batch_size``; alone, the usual shuffled loader.

    Args:
        dataset: The training set.
        batch_size: Samples per batch on each rank.
        seed: The sampler's seed (DDP only; alone the order follows torch's RNG).
        drop_last: Drop the last incomplete batch (every rank then takes the same batch size).
        **kwargs: Passed on to :class:`~torch.utils.data.DataLoader` (``collate_fn`` ...).

    Returns:
        The loader.
    """
    if world_size() == 1:
        return DataLoader(dataset, batch_size, shuffle=True, drop_last=drop_last, **kwargs)
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, world_size(), rank(), shuffle=True, seed=seed, drop_last=drop_last
    )
    return DataLoader(dataset, batch_size, sampler=sampler, drop_last=drop_last, **kwargs)


#: How long a rank waits in a collective: the others wait while rank 0 alone evaluates and
#: writes the reports at the end of a run, which may take longer than torch's default.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


def init_from_env(device: torch.device) -> None:
    """Start the process group under ``torchrun`` (``WORLD_SIZE`` > 1), once.

    Call it before any check or write that ranks must agree on (run folders, data caches):
    gloo on CPU, NCCL on CUDA, with :data:`PROCESS_GROUP_TIMEOUT`. Outside ``torchrun`` it does
    nothing.

    Args:
        device: This process's device.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)


def end_process_group(*, synchronise: bool) -> None:
    """Close the process group that :func:`init_from_env` started; nothing outside one.

    A gloo group left for the interpreter's exit to destroy can abort that process ("terminate
    called without an active exception", status -6, instead of the command's own status) after
    its work is done (pytorch/pytorch#190489), so every command run under ``torchrun`` ends
    here.

    Args:
        synchronise: After success: wait for every rank (a barrier), so that none tears its
            connections down while another still uses them, then close. After a failure
            (``False``): the other ranks may never arrive (``torchrun`` stops them when this
            one exits), so no barrier; a gloo group is closed locally, while an NCCL group is
            left to the exit, since its teardown is collective and could wait forever.
    """
    if not is_distributed():
        return
    if synchronise:
        dist.barrier()
    elif dist.get_backend() != "gloo":
        return
    dist.destroy_process_group()


def shared_generator() -> torch.Generator | None:
    """A CPU generator seeded from rank 0's torch RNG on every rank; ``None`` outside DDP.

    For random draws that must be the same on every rank although each rank's global RNG is
    seeded differently (coefficients of a loss computed over the gathered global batch).
    """
    if world_size() == 1:
        return None
    seed = torch.randint(0, 2**62, (1,))
    dist.broadcast(seed, src=0)
    return torch.Generator().manual_seed(int(seed.item()))


def on_rank0(fn: Callable[[], _T], *, everywhere: bool = False) -> _T:
    """Run ``fn`` on rank 0 first; then on the other ranks too, or hand them its result.

    Outside a distributed run this is ``fn()``. An :class:`~shared.errors.InputError` on rank 0
    is raised on every rank with the same message (each exits with status 2; on the others it is
    marked ``from_rank0``, so that only rank 0 prints it); any other
    exception on rank 0 is re-raised there and becomes a ``RuntimeError`` on the others, so no
    rank waits for one that stopped.

    Args:
        fn: The work: a check that writes (run folders), or loading that fills a cache.
        everywhere: Run ``fn`` on the other ranks after rank 0 succeeded (``True``), or give
            them rank 0's result (``False``; it must be picklable).

    Returns:
        ``fn()``'s result (rank 0's, when ``everywhere`` is ``False``).

    Examples:
        >>> on_rank0(lambda: 3)
        3
    """
    if world_size() == 1:
        return fn()
    box: list[Any] = [None]
    result: Any = None
    error: BaseException | None = None
    if is_main_process():
        try:
            result = fn()
            box[0] = ("ok", None if everywhere else result)
        except InputError as err:
            box[0], error = ("input", str(err)), err
        except BaseException as err:
            box[0], error = ("other", f"{type(err).__name__}: {err}"), err
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    kind, value = box[0]
    if kind == "input":
        reported = InputError(value)
        reported.from_rank0 = True  # rank 0 prints it
        raise reported
    if kind == "other":
        raise RuntimeError(f"rank 0 failed ({value}).")
    if is_main_process():
        return result
    return fn() if everywhere else value


def check_ranks_agree(model: nn.Module) -> None:
    """Under DDP: raise ``RuntimeError`` unless every rank holds exactly rank 0's weights.

    Args:
        model: The trained model (its whole ``state_dict``, buffers included, is hashed).

    Raises:
        RuntimeError: If the ranks' weights differ.
    """
    if world_size() == 1:
        return
    h = hashlib.sha1()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digests: list[Any] = [None] * world_size()
    dist.all_gather_object(digests, h.hexdigest())
    if len(set(digests)) != 1:
        raise RuntimeError(f"The ranks ended with different weights (sha1 {digests}).")
    logger.info("all %d ranks hold the same weights (sha1 %s).", world_size(), digests[0][:12])
