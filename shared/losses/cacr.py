r"""CACR: Contrastive Attraction and Contrastive Repulsion.

Zheng, Chen, Yao, Yang, Li, Zhang, Zhou, "Contrastive Attraction and Contrastive Repulsion for
Representation Learning", NeurIPS 2021 / TMLR 2023. The formulas and defaults follow the authors'
code (JegZheng/CACR-SSL, ``small_scale_experiments/losses/__init__.py``: ``our_loss1`` and
``forward_negative_loss``/``our_loss2`` with the Euclidean cost; defaults from
``small_scale_experiments/cifar10/main_ours.py``).

With V views :math:`z^{(0)}, \dots, z^{(V-1)}` of each sample (L2-normalised by the encoder)
and the squared Euclidean distance :math:`d(a, b) = \|a - b\|^2`:

* **Contrastive attraction** (CA): for each query view :math:`x`, the other V-1 views of the same
  sample are positives, weighted by the conditional distribution
  :math:`\pi^+(m) \propto \exp(t^+ d(z^{(x)}_b, z^{(m)}_b))` (farther positives weigh more);
  cost :math:`\alpha\, d`. :math:`\mathcal{L}_{CA} = \frac{1}{V}\sum_x \mathbb{E}_b
  \sum_{m \ne x} \pi^+(m)\, \alpha\, d(z^{(x)}_b, z^{(m)}_b)`.
* **Contrastive repulsion** (CR): for each pair of views :math:`x < y`, the anchors
  :math:`z^{(x)}_i` repel the other samples :math:`z^{(y)}_j, j \ne i`, weighted by
  :math:`\pi^-(j) \propto \exp(-t^- d(z^{(x)}_i, z^{(y)}_j))` (closer negatives weigh more);
  cost :math:`-\beta\, d`. :math:`\mathcal{L}_{CR}` is the mean over the pairs of views.

The weights keep their gradient, as in the authors' code. The total is
:math:`\mathcal{L}_{CA} + \mathcal{L}_{CR}`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.distributed import gather, rank
from shared.validation import check_dim, check_ndim, check_positive, check_reduction, reduce

__all__ = ["CACRLoss", "cacr"]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_non_negative(value: float, name: str) -> None:
    if not value >= 0:
        raise ValueError(f"Expected `{name}` to be >= 0, but got {value}.")


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact pairwise squared distances. Shapes: (B, D), (M, D) -> (B, M)."""
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(dim=-1)


def cacr(
    views: torch.Tensor,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    pos_temperature: float = 1.0,
    neg_temperature: float = 1.0,
    normalize: bool = True,
    views_all: torch.Tensor | None = None,
    offset: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""CACR loss: attraction within each sample's views plus repulsion from other samples.

    Per sample :math:`b` (see the module docstring for the notation):

    .. math::
        \ell_b = \frac{1}{V}\sum_{x}\sum_{m \ne x} \pi^+_{b,x}(m)\,\alpha\,d_{b}^{xm}
        + \frac{2}{V(V-1)}\sum_{x<y}\sum_{j \ne b} \pi^-_{b,xy}(j)\,(-\beta)\,d^{xy}_{bj},

    with :math:`\pi^+ = \mathrm{softmax}_m(t^+ d)` and :math:`\pi^- = \mathrm{softmax}_j(-t^- d)`.
    ``pos_temperature`` / ``neg_temperature`` are the paper's :math:`t^+`/:math:`t^-` (the
    code's ``tau_pos``/``tau_neg``): they *multiply* the squared distance. 0 gives uniform
    weights (the paper's ablations without :math:`\pi^+` or :math:`\pi^-`).

    Args:
        views: V augmented views of each sample. Shape: (B, V, D), float, V >= 2.
        alpha: Attraction cost scale :math:`\alpha > 0` (code default 1).
        beta: Repulsion cost scale :math:`\beta > 0` (code default 1).
        pos_temperature: :math:`t^+ \ge 0` of the positive conditional (code default 1).
        neg_temperature: :math:`t^- \ge 0` of the negative conditional (code default 1).
        normalize: L2-normalise the views inside (the authors' encoder ends with an L2 norm).
        views_all: Views gathered from every rank, the negatives' pool (distributed use).
            Shape: (N, V, D). Default: ``views``.
        offset: Index of this rank's first sample in ``views_all``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-sample values of shape (B,) for ``"none"``; float32 (float64 for
        float64 input).

    Raises:
        ValueError: On shape mismatches, fewer than 2 views or 2 samples in the negatives'
            pool, or invalid hyper-parameters.

    Examples:
        >>> views = torch.nn.functional.normalize(torch.randn(8, 3, 16), dim=-1)
        >>> cacr(views).shape, cacr(views, reduction="none").shape
        (torch.Size([]), torch.Size([8]))
        >>> same = views[:, :1].expand(8, 3, 16)  # identical views: no attraction cost
        >>> bool(cacr(same) < 0)
        True
    """
    check_reduction(reduction)
    check_positive(alpha, "alpha")
    check_positive(beta, "beta")
    _check_non_negative(pos_temperature, "pos_temperature")
    _check_non_negative(neg_temperature, "neg_temperature")
    check_ndim(views, 3, "views", "(B, V, D)")
    b, v, d = views.shape
    if v < 2:
        raise ValueError(
            f"Expected `views` to have shape (B, V, D) with V >= 2, but got {tuple(views.shape)}."
        )
    pool = views if views_all is None else views_all
    check_ndim(pool, 3, "views_all", "(N, V, D)")
    if pool.shape[1:] != views.shape[1:]:
        raise ValueError(
            f"Expected `views_all` to have shape (N, {v}, {d}), but got {tuple(pool.shape)}."
        )
    if pool.shape[0] < 2:
        raise ValueError(
            f"Expected at least 2 samples to draw negatives from, but got {pool.shape[0]}."
        )
    if not 0 <= offset <= pool.shape[0] - b:
        raise ValueError(
            f"Expected `offset` in [0, {pool.shape[0] - b}] for {b} local rows among "
            f"{pool.shape[0]}, but got {offset}."
        )
    with torch.autocast(device_type=views.device.type, enabled=False):
        z = _upcast(views)
        z_pool = _upcast(pool)
        if normalize:
            z = F.normalize(z, dim=-1)
            z_pool = F.normalize(z_pool, dim=-1)

        # Attraction: each query view against the V - 1 other views of its own sample.
        pos_d = (z[:, :, None, :] - z[:, None, :, :]).pow(2).sum(dim=-1)  # (B, V, V)
        off_diag = ~torch.eye(v, dtype=torch.bool, device=z.device)
        pos_d = pos_d[:, off_diag].view(b, v, v - 1)
        pos_w = torch.softmax(pos_temperature * pos_d, dim=-1)
        attraction = (alpha * pos_d * pos_w).sum(dim=-1).mean(dim=1)

        # Repulsion: view x anchors against view y of every other sample, for x < y.
        rows = torch.arange(b, device=z.device)
        self_mask = torch.zeros(b, pool.shape[0], dtype=torch.bool, device=z.device)
        self_mask[rows, rows + offset] = True
        repulsion = z.new_zeros(b)
        n_pairs = 0
        for x in range(v):
            for y in range(x + 1, v):
                neg_d = _sq_dist(z[:, x], z_pool[:, y])
                neg_w = torch.softmax(
                    (-neg_temperature * neg_d).masked_fill(self_mask, float("-inf")), dim=-1
                )
                repulsion = repulsion + (-beta * neg_d * neg_w).sum(dim=-1)
                n_pairs += 1
        per_sample = attraction + repulsion / n_pairs
    return reduce(per_sample, reduction)


class CACRLoss(nn.Module):
    """CACR loss module (Zheng et al., NeurIPS 2021); see :func:`cacr`.

    Args:
        alpha: Attraction cost scale (default 1).
        beta: Repulsion cost scale (default 1).
        pos_temperature: The paper's :math:`t^+` (default 1).
        neg_temperature: The paper's :math:`t^-` (default 1).
        normalize: L2-normalise the views inside.
        gather_distributed: Draw negatives from every rank's samples (:func:`gather` keeps the
            gradient); the anchors stay local.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: If a hyper-parameter is invalid.

    Examples:
        >>> loss_fn = CACRLoss()
        >>> views = torch.randn(8, 5, 16, requires_grad=True)  # the paper's 1 + 4 views
        >>> loss_fn(views).backward()
        >>> views.grad.shape
        torch.Size([8, 5, 16])
    """

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        pos_temperature: float = 1.0,
        neg_temperature: float = 1.0,
        normalize: bool = True,
        gather_distributed: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        check_positive(alpha, "alpha")
        check_positive(beta, "beta")
        _check_non_negative(pos_temperature, "pos_temperature")
        _check_non_negative(neg_temperature, "neg_temperature")
        self.alpha = alpha
        self.beta = beta
        self.pos_temperature = pos_temperature
        self.neg_temperature = neg_temperature
        self.normalize = normalize
        self.gather_distributed = gather_distributed
        self.reduction = reduction

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            views: Shape: (B, V, D), float, V >= 2.

        Returns:
            A scalar, or per-sample values of shape (B,) for ``reduction="none"``.

        Raises:
            ValueError: On an invalid shape (see :func:`cacr`).
        """
        check_ndim(views, 3, "views", "(B, V, D)")
        views_all, offset = None, 0
        if self.gather_distributed:
            views_all = gather(views)
            offset = rank() * views.shape[0]
            check_dim(views_all, 1, views.shape[1], "views_all", "(N, V, D)")
        return cacr(
            views,
            alpha=self.alpha,
            beta=self.beta,
            pos_temperature=self.pos_temperature,
            neg_temperature=self.neg_temperature,
            normalize=self.normalize,
            views_all=views_all,
            offset=offset,
            reduction=self.reduction,
        )
