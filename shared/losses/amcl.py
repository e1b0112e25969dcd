r"""AMCL: Adaptive Multi-head Contrastive Learning, SimCLR form.

Wang, Koniusz, Gedeon, Zheng, "Adaptive Multi-head Contrastive Learning", ECCV 2024
(arXiv 2310.05615). The paper's body (its eq. 2.1, 3 and 5) could not be retrieved here; the
loss below follows the authors' released code, LeiWangR/cl, ``amcl/losses.py``
(``omega``, ``TemperatureHead``, ``AMCLNTXentLoss``) with the defaults of ``amcl/train.py``
for SimCLR, whose comments cite those equations:

* C projection heads (independent weights, same architecture) give C features per view.
* A temperature network :math:`\phi` (Linear-ReLU-Linear, :math:`D \to D`, shared by all heads)
  gives every pair :math:`(a, b)` the temperature
  :math:`\tau_{ab} = \tau_{min} + (\tau_{max} - \tau_{min})\,\mathrm{sigmoid}(-\langle\phi(a),
  \phi(b)\rangle)`, i.e. the paper's :math:`\sigma(r) = \iota/(1 + e^{r}) + \eta`.
* For anchor :math:`i` of head :math:`c` with positive :math:`p` (cosine similarity :math:`s`),
  and the top-k hardest of its 2B-2 negatives :math:`\mathcal{N}_k(i)` (the paper's Top-k
  approximation of the log-sum-exp),

  .. math::
      \ell^c_i = -\frac{s_{ip}}{\tau_{ip}}
      + \frac{1}{k}\sum_{n \in \mathcal{N}_k} \frac{s_{in}}{\tau_{in}}
      + \beta\,\Omega(\tau_{ip}) - \beta \sum_{n \in \mathcal{N}_k} (\log\tau_{in} + 1/\tau_{in}),
      \qquad \Omega(\tau) = \tfrac{D}{2}\log\tau + \tfrac{1}{\tau}.

* Both views serve as anchors (mean of the two directions) and the heads are summed.

Note that, as in the released code, the negatives enter linearly (a top-k mean), not through a
log-sum-exp, so there is no exponential to stabilise; the temperatures and the ``1/tau`` terms are
computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from shared.distributed import gather, rank
from shared.validation import check_dim, check_ndim, check_positive, check_reduction, reduce

__all__ = ["AMCLLoss", "AMCLProjectionHeads", "amcl", "amcl_omega"]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_tau_range(tau_min: float, tau_max: float) -> None:
    if not 0.0 < tau_min < tau_max:
        raise ValueError(
            f"Expected 0 < `tau_min` < `tau_max`, but got tau_min={tau_min}, tau_max={tau_max}."
        )


def _check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"Expected `top_k` to be an int >= 1, but got {top_k!r}.")


def _check_beta(beta: float) -> None:
    if not beta >= 0:
        raise ValueError(f"Expected `beta` to be >= 0, but got {beta}.")


def amcl_omega(tau: torch.Tensor, dim: int) -> torch.Tensor:
    r"""AMCL's temperature regulariser :math:`\Omega(\tau) = \frac{D}{2}\log\tau + 1/\tau`.

    Its minimum is at :math:`\tau = 2/D`.

    Args:
        tau: Temperatures, any shape, > 0.
        dim: Feature dimension D of the head.

    Returns:
        Same shape as ``tau``.

    Examples:
        >>> round(amcl_omega(torch.tensor(1.0), 4).item(), 4)
        1.0
    """
    return 0.5 * dim * torch.log(tau) + torch.reciprocal(tau)


def _temperature(score: torch.Tensor, tau_min: float, tau_max: float) -> torch.Tensor:
    return tau_min + (tau_max - tau_min) * torch.sigmoid(-score)


def amcl(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature_net: Callable[[torch.Tensor], torch.Tensor],
    *,
    beta: float = 1e-4,
    tau_min: float = 1e-5,
    tau_max: float = 2.0,
    top_k: int = 100,
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""AMCL loss for two views of C heads with pair-adaptive temperatures (SimCLR negatives).

    See the module docstring for the formula. Features are L2-normalised inside, and the
    temperature network sees the normalised features.

    Args:
        z1: First view, one feature per head. Shape: (B, C, D), float.
        z2: Second view. Shape: (B, C, D), float.
        temperature_net: The shared map :math:`\phi`, applied to the last dimension
            ((..., D) -> (..., D')); e.g. ``AMCLLoss.phi``. It runs in float32.
        beta: Regulariser weight :math:`\beta \ge 0` (authors' SimCLR/MoCo default 1e-4).
        tau_min: Lower temperature bound :math:`\eta` (default 1e-5).
        tau_max: Upper temperature bound :math:`\eta + \iota` (default 2.0).
        top_k: Number of hardest negatives kept per anchor (default 100; all if fewer).
        z1_all: First views gathered from every rank (the negatives' pool). Shape: (N, C, D).
        z2_all: Second views gathered from every rank. Shape: (N, C, D).
        offset: Index of this rank's first sample in ``z1_all``/``z2_all``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-sample values of shape (B,) for ``"none"`` (sum over heads of the mean
        over the two directions); float32 (float64 for float64 input).

    Raises:
        ValueError: On shape mismatches, fewer than 2 samples in the pool, or invalid
            hyper-parameters.

    Examples:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> phi = torch.nn.Linear(16, 16)
        >>> z1, z2 = torch.randn(8, 3, 16), torch.randn(8, 3, 16)  # 3 heads
        >>> amcl(z1, z2, phi).shape, amcl(z1, z2, phi, reduction="none").shape
        (torch.Size([]), torch.Size([8]))
    """
    check_reduction(reduction)
    _check_beta(beta)
    _check_tau_range(tau_min, tau_max)
    _check_top_k(top_k)
    check_ndim(z1, 3, "z1", "(B, C, D)")
    if z1.shape != z2.shape:
        raise ValueError(
            f"Expected `z1` and `z2` to have the same shape (B, C, D), "
            f"but got {tuple(z1.shape)} and {tuple(z2.shape)}."
        )
    b, c, d = z1.shape
    if (z1_all is None) != (z2_all is None):
        raise ValueError("Expected `z1_all` and `z2_all` to be given together, but got one.")
    pool1 = z1 if z1_all is None else z1_all
    pool2 = z2 if z2_all is None else z2_all
    for name, pool in (("z1_all", pool1), ("z2_all", pool2)):
        check_ndim(pool, 3, name, "(N, C, D)")
        if pool.shape[1:] != z1.shape[1:]:
            raise ValueError(
                f"Expected `{name}` to have shape (N, {c}, {d}), but got {tuple(pool.shape)}."
            )
    if pool1.shape != pool2.shape:
        raise ValueError(
            f"Expected `z1_all` and `z2_all` to have the same shape (N, C, D), "
            f"but got {tuple(pool1.shape)} and {tuple(pool2.shape)}."
        )
    n = pool1.shape[0]
    if n < 2:
        raise ValueError(f"Expected at least 2 samples to draw negatives from, but got {n}.")
    if not 0 <= offset <= n - b:
        raise ValueError(
            f"Expected `offset` in [0, {n - b}] for {b} local rows among {n}, but got {offset}."
        )
    with torch.autocast(device_type=z1.device.type, enabled=False):
        a1 = F.normalize(_upcast(z1), dim=-1)
        a2 = F.normalize(_upcast(z2), dim=-1)
        p1 = F.normalize(_upcast(pool1), dim=-1)
        p2 = F.normalize(_upcast(pool2), dim=-1)
        phi_a1, phi_a2 = temperature_net(a1), temperature_net(a2)
        phi_p1, phi_p2 = temperature_net(p1), temperature_net(p2)

        rows = torch.arange(b, device=z1.device)
        own = torch.zeros(b, n, dtype=torch.bool, device=z1.device)
        own[rows, rows + offset] = True
        own = torch.cat([own, own], dim=1)  # the anchor's own sample in both views
        k = min(top_k, 2 * n - 2)

        def direction(
            anchor: torch.Tensor,
            positive: torch.Tensor,
            phi_anchor: torch.Tensor,
            phi_positive: torch.Tensor,
            cands: torch.Tensor,
            phi_cands: torch.Tensor,
        ) -> torch.Tensor:
            s_pos = (anchor * positive).sum(-1)
            tau_pos = _temperature((phi_anchor * phi_positive).sum(-1), tau_min, tau_max)
            s_neg = (anchor @ cands.T).masked_fill(own, float("-inf"))
            values, index = s_neg.topk(k, dim=1)
            tau_neg = _temperature(phi_anchor @ phi_cands.T, tau_min, tau_max).gather(1, index)
            neg = (values / tau_neg).mean(dim=1)
            reg_neg = (torch.log(tau_neg) + torch.reciprocal(tau_neg)).sum(dim=1)
            return -s_pos / tau_pos + neg + beta * amcl_omega(tau_pos, d) - beta * reg_neg

        per_sample = a1.new_zeros(b)
        for h in range(c):
            cands = torch.cat([p1[:, h], p2[:, h]])
            phi_cands = torch.cat([phi_p1[:, h], phi_p2[:, h]])
            forward_dir = direction(
                a1[:, h], a2[:, h], phi_a1[:, h], phi_a2[:, h], cands, phi_cands
            )
            backward_dir = direction(
                a2[:, h], a1[:, h], phi_a2[:, h], phi_a1[:, h], cands, phi_cands
            )
            per_sample = per_sample + 0.5 * (forward_dir + backward_dir)
    return reduce(per_sample, reduction)


class AMCLProjectionHeads(nn.Module):
    """C independent projection heads of the same architecture (AMCL's multi-head projector).

    Each head is Linear(in_dim, hidden_dim) - ReLU - Linear(hidden_dim, out_dim), the SimCLR head
    of the authors' code (hidden 512, out 128 on CIFAR).

    Args:
        in_dim: Backbone feature dimension F.
        out_dim: Projection dimension D.
        num_heads: Number of heads C (paper: 3).
        hidden_dim: Hidden width (authors: 512).

    Raises:
        ValueError: If a size is not positive.

    Examples:
        >>> heads = AMCLProjectionHeads(32, 16, num_heads=3, hidden_dim=64)
        >>> heads(torch.randn(8, 32)).shape
        torch.Size([8, 3, 16])
    """

    def __init__(self, in_dim: int, out_dim: int, num_heads: int = 3, hidden_dim: int = 512):
        super().__init__()
        for value, name in (
            (in_dim, "in_dim"),
            (out_dim, "out_dim"),
            (num_heads, "num_heads"),
            (hidden_dim, "hidden_dim"),
        ):
            check_positive(value, name)
        self.in_dim = in_dim
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
            for _ in range(num_heads)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project backbone features with every head.

        Args:
            x: Shape: (B, F), float.

        Returns:
            Shape: (B, C, D).

        Raises:
            ValueError: If ``x`` is not (B, F) with this F.
        """
        check_ndim(x, 2, "x", "(B, F)")
        check_dim(x, 1, self.in_dim, "x", "(B, F)")
        return torch.stack([head(x) for head in self.heads], dim=1)


class AMCLLoss(nn.Module):
    r"""AMCL loss holding the shared temperature network :math:`\phi` (Wang et al., ECCV 2024).

    :math:`\phi` is Linear(D, hidden) - ReLU - Linear(hidden, D), shared across heads, as in the
    authors' ``TemperatureHead``. See :func:`amcl`.

    Args:
        dim: Feature dimension D of every head.
        num_heads: Number of heads C the inputs must have (paper: 3).
        hidden_dim: Hidden width of :math:`\phi` (default: D; the authors' runs used 128).
        beta: Regulariser weight (SimCLR default 1e-4).
        tau_min: Lower temperature bound (default 1e-5).
        tau_max: Upper temperature bound (default 2.0).
        top_k: Hardest negatives kept per anchor (default 100).
        gather_distributed: Draw negatives from every rank (:func:`gather` keeps the
            gradient); the anchors stay local.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: If a hyper-parameter is invalid.

    Examples:
        >>> loss_fn = AMCLLoss(dim=16, num_heads=3)
        >>> z1 = torch.randn(8, 3, 16, requires_grad=True)
        >>> loss_fn(z1, torch.randn(8, 3, 16)).backward()
        >>> z1.grad.shape
        torch.Size([8, 3, 16])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 3,
        *,
        hidden_dim: int | None = None,
        beta: float = 1e-4,
        tau_min: float = 1e-5,
        tau_max: float = 2.0,
        top_k: int = 100,
        gather_distributed: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_positive(dim, "dim")
        check_positive(num_heads, "num_heads")
        hidden = dim if hidden_dim is None else hidden_dim
        check_positive(hidden, "hidden_dim")
        _check_beta(beta)
        _check_tau_range(tau_min, tau_max)
        _check_top_k(top_k)
        check_reduction(reduction)
        self.dim = dim
        self.num_heads = num_heads
        self.beta = beta
        self.tau_min = tau_min
        self.tau_max = tau_max
        self.top_k = top_k
        self.gather_distributed = gather_distributed
        self.reduction = reduction
        self.phi = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            z1: First view, one feature per head. Shape: (B, C, D), float.
            z2: Second view. Shape: (B, C, D), float.

        Returns:
            A scalar, or per-sample values of shape (B,) for ``reduction="none"``.

        Raises:
            ValueError: If the inputs are not (B, C, D) with this module's C and D.
        """
        check_ndim(z1, 3, "z1", "(B, C, D)")
        check_dim(z1, 1, self.num_heads, "z1", "(B, C, D)")
        check_dim(z1, 2, self.dim, "z1", "(B, C, D)")
        z1_all = z2_all = None
        offset = 0
        if self.gather_distributed:
            check_ndim(z2, 3, "z2", "(B, C, D)")
            z1_all, z2_all = gather(z1), gather(z2)
            offset = rank() * z1.shape[0]
        return amcl(
            z1,
            z2,
            self.phi,
            beta=self.beta,
            tau_min=self.tau_min,
            tau_max=self.tau_max,
            top_k=self.top_k,
            z1_all=z1_all,
            z2_all=z2_all,
            offset=offset,
            reduction=self.reduction,
        )
