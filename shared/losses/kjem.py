r"""SepCLR's k-JEM mutual-information penalty and its alignment/uniformity terms.

Louiset, Duchesnay, Grigis, Gori, "Separating common from salient patterns with Contrastive
Representation Learning", ICLR 2024 (arXiv 2402.11928). The formulas follow the authors' code
(neurospin-projects/2024_rlouiset_sep_clr, ``losses.py``: ``joint_entropy_loss``,
``align_loss``, ``uniform_loss``), all with the Gaussian kernel bandwidth
:math:`\tau = 0.5`, i.e. :math:`\exp(-\|\cdot\|^2 / (2\tau)) = \exp(-\|\cdot\|^2)`:

* **k-JEM** (kernel joint-entropy minimisation) of common codes :math:`c` and salient codes
  :math:`s`: :math:`\frac{1}{B}\sum_i \log \frac{1}{B}\sum_j e^{-\|c_i-c_j\|^2/(2\tau)}
  e^{-\|s_i-s_j\|^2/(2\tau)}`, with :math:`j = i` included. It is minus a kernel estimate of
  the joint entropy :math:`H(c, s)`; minimising it (weight :math:`\lambda`, 10 in every script)
  together with the uniformity terms (which raise :math:`H(c)` and :math:`H(s)`) drives
  :math:`I(c; s)` towards 0.
* **align** :math:`\frac{1}{B}\sum_i \|x_i - y_i\|^2 / (2\tau)` and **unif**
  :math:`\log \frac{2}{B(B-1)}\sum_{i<j} e^{-\|x_i-x_j\|^2/(2\tau)}` (Wang & Isola with
  :math:`t = 1/(2\tau) = 1`, not 2).

In SepCLR the common head is L2-normalised and the salient head is not, and background rows of
the salient codes are replaced by the null vector before k-JEM and unif; the caller does that.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shared.distributed import gather
from shared.validation import check_dim, check_ndim, check_positive, check_reduction, reduce

__all__ = ["KJEMLoss", "SepCLRUniformityLoss", "kjem", "sepclr_align", "sepclr_uniformity"]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _sq_dist(a: torch.Tensor, b: torch.Tensor, *, same: bool = False) -> torch.Tensor:
    r"""Pairwise squared distances by the Gram matrix. (B, D), (M, D) -> (B, M).

    :math:`\|a_i\|^2 + \|b_j\|^2 - 2 a_i \cdot b_j` after centring both on the candidates' mean
    (distances do not change; codes far from the origin lose no precision), clamped at 0
    (rounding can make it slightly negative), with an exact 0 diagonal when ``same`` (``b`` is
    ``a``). One matrix product instead of a (B, M, D) difference tensor: k-JEM forward and
    backward 4.6x faster at B = 256 and 24x at B = 1024 on one CPU thread
    (``benchmarks/bench_sepclr.py``), equal to it within float rounding.
    """
    center = b.detach().mean(dim=0)
    a, b = a - center, (a - center if same else b - center)
    sq_a = a.pow(2).sum(dim=1)
    sq_b = sq_a if same else b.pow(2).sum(dim=1)
    d2 = torch.addmm(sq_a[:, None] + sq_b[None, :], a, b.T, alpha=-2).clamp_min(0)
    if same:
        d2 = d2.masked_fill(torch.eye(len(a), dtype=torch.bool, device=a.device), 0.0)
    return d2


def kjem(
    c: torch.Tensor,
    s: torch.Tensor,
    temperature: float = 0.5,
    *,
    c_all: torch.Tensor | None = None,
    s_all: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""k-JEM, SepCLR's kernel joint-entropy term (Louiset et al., ICLR 2024).

    Per anchor :math:`i`, against the M candidates :math:`j` (the batch itself, or the batch of
    every rank; :math:`j = i` included):

    .. math::
        \ell_i = \log \frac{1}{M}\sum_{j} \exp\!\Big(-\frac{\|c_i-c_j\|^2 + \|s_i-s_j\|^2}
        {2\tau}\Big) = \operatorname{logsumexp}_j(\cdot) - \log M .

    The log-sum-exp runs in float32. No normalisation is applied.

    Args:
        c: Common codes (L2-normalised in SepCLR). Shape: (B, D_c), float.
        s: Salient codes (Euclidean, background rows set to 0 in SepCLR). Shape: (B, D_s).
        temperature: Kernel bandwidth :math:`\tau > 0` (SepCLR: 0.5, a kernel
            :math:`e^{-\|\cdot\|^2}`).
        c_all: Candidates' common codes, e.g. gathered from every rank; must contain the anchors.
            Shape: (M, D_c). Default: ``c``.
        s_all: Candidates' salient codes. Shape: (M, D_s). Default: ``s``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-anchor values of shape (B,) for ``"none"``; float32 (float64 for
        float64 input). Always <= 0.

    Raises:
        ValueError: On shape mismatches or invalid hyper-parameters.

    Examples:
        >>> c = torch.zeros(4, 2)  # identical codes: every kernel value is 1
        >>> kjem(c, torch.zeros(4, 3)).item()
        0.0
        >>> far = 100 * torch.eye(4)  # far-apart codes: log(1/B)
        >>> round(kjem(far, torch.zeros(4, 1)).item(), 4) == round(-math.log(4), 4)
        True
    """
    check_positive(temperature, "temperature")
    check_reduction(reduction)
    check_ndim(c, 2, "c", "(B, D_c)")
    check_ndim(s, 2, "s", "(B, D_s)")
    check_dim(s, 0, c.shape[0], "s", "(B, D_s)")
    if (c_all is None) != (s_all is None):
        raise ValueError("Expected `c_all` and `s_all` to be given together, but got one.")
    cands_c = c if c_all is None else c_all
    cands_s = s if s_all is None else s_all
    check_ndim(cands_c, 2, "c_all", "(M, D_c)")
    check_ndim(cands_s, 2, "s_all", "(M, D_s)")
    check_dim(cands_c, 1, c.shape[1], "c_all", "(M, D_c)")
    check_dim(cands_s, 1, s.shape[1], "s_all", "(M, D_s)")
    check_dim(cands_s, 0, cands_c.shape[0], "s_all", "(M, D_s)")
    if cands_c.shape[0] < 1:
        raise ValueError(f"Expected at least 1 candidate, but got shape {tuple(cands_c.shape)}.")
    with torch.autocast(device_type=c.device.type, enabled=False):
        same = c_all is None
        d2 = _sq_dist(_upcast(c), _upcast(cands_c), same=same) + _sq_dist(
            _upcast(s), _upcast(cands_s), same=same
        )
        per_anchor = torch.logsumexp(-d2 / (2 * temperature), dim=1) - math.log(cands_c.shape[0])
    return reduce(per_anchor, reduction)


def sepclr_align(
    x: torch.Tensor,
    y: torch.Tensor,
    temperature: float = 0.5,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""SepCLR's alignment: :math:`\|x_i - y_i\|^2 / (2\tau)` (the mean squared distance at 0.5).

    Args:
        x: Shape: (B, D), float.
        y: Shape: (B, D), float.
        temperature: :math:`\tau > 0` (SepCLR: 0.5).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-pair values of shape (B,) for ``"none"``.

    Raises:
        ValueError: On shape mismatches or invalid hyper-parameters.

    Examples:
        >>> sepclr_align(torch.zeros(2, 3), torch.ones(2, 3)).item()
        3.0
    """
    check_positive(temperature, "temperature")
    check_reduction(reduction)
    check_ndim(x, 2, "x", "(B, D)")
    if x.shape != y.shape:
        raise ValueError(
            f"Expected `x` and `y` to have the same shape (B, D), "
            f"but got {tuple(x.shape)} and {tuple(y.shape)}."
        )
    with torch.autocast(device_type=x.device.type, enabled=False):
        per_pair = (_upcast(x) - _upcast(y)).pow(2).sum(dim=1) / (2 * temperature)
    return reduce(per_pair, reduction)


def sepclr_uniformity(x: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    r"""SepCLR's uniformity: :math:`\log \frac{2}{B(B-1)}\sum_{i<j} e^{-\|x_i-x_j\|^2/(2\tau)}`.

    Wang & Isola's uniformity with :math:`t = 1/(2\tau)` (1 for SepCLR's 0.5), computed as a
    log-sum-exp over the pairs :math:`i < j` in float32. It is a property of the whole set, so
    it has no per-sample form; for distributed use pass the gathered samples.

    Args:
        x: Shape: (B, D), float, B >= 2.
        temperature: :math:`\tau > 0` (SepCLR: 0.5).

    Returns:
        A scalar; float32 (float64 for float64 input).

    Raises:
        ValueError: If ``x`` is not (B, D) with B >= 2 or ``temperature`` is invalid.

    Examples:
        >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> sepclr_uniformity(x).item()  # log(exp(-4))
        -4.0
    """
    check_positive(temperature, "temperature")
    check_ndim(x, 2, "x", "(B, D)")
    if x.shape[0] < 2:
        raise ValueError(f"Expected `x` to have a batch of at least 2, but got {x.shape[0]}.")
    b = x.shape[0]
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf = _upcast(x)
        i, j = torch.triu_indices(b, b, offset=1, device=x.device)
        d2 = _sq_dist(xf, xf, same=True)[i, j]
        return torch.logsumexp(-d2 / (2 * temperature), dim=0) - math.log(b * (b - 1) / 2)


class KJEMLoss(nn.Module):
    """k-JEM module (Louiset et al., ICLR 2024); see :func:`kjem`.

    Args:
        temperature: Kernel bandwidth (SepCLR: 0.5).
        gather_distributed: Use the codes of every rank as candidates (:func:`gather` keeps
            the gradient); the anchors stay local, so the mean over ranks of the local losses
            is the loss of the global batch.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: If a hyper-parameter is invalid.

    Examples:
        >>> c = torch.nn.functional.normalize(torch.randn(8, 4), dim=1).requires_grad_()
        >>> s = torch.randn(8, 2)
        >>> KJEMLoss()(c, s).backward()
        >>> c.grad.shape
        torch.Size([8, 4])
    """

    def __init__(
        self,
        temperature: float = 0.5,
        *,
        gather_distributed: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_positive(temperature, "temperature")
        check_reduction(reduction)
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.reduction = reduction

    def forward(self, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Compute k-JEM.

        Args:
            c: Common codes. Shape: (B, D_c), float.
            s: Salient codes. Shape: (B, D_s), float.

        Returns:
            A scalar, or per-anchor values of shape (B,) for ``reduction="none"``.

        Raises:
            ValueError: On shape mismatches.
        """
        c_all = s_all = None
        if self.gather_distributed:
            check_ndim(c, 2, "c", "(B, D_c)")
            check_ndim(s, 2, "s", "(B, D_s)")
            check_dim(s, 0, c.shape[0], "s", "(B, D_s)")
            c_all, s_all = gather(c), gather(s)
        return kjem(c, s, self.temperature, c_all=c_all, s_all=s_all, reduction=self.reduction)


class SepCLRUniformityLoss(nn.Module):
    """SepCLR's uniformity over the (optionally gathered) batch; see :func:`sepclr_uniformity`.

    With ``gather_distributed`` every rank computes the uniformity of the global batch through
    :func:`gather`; after DDP's averaging the gradients are those of the global value.

    Args:
        temperature: Kernel bandwidth (SepCLR: 0.5).
        gather_distributed: Gather the samples of every rank first.

    Raises:
        ValueError: If ``temperature`` is not positive.

    Examples:
        >>> x = torch.randn(8, 4, requires_grad=True)
        >>> SepCLRUniformityLoss()(x).backward()
        >>> x.grad.shape
        torch.Size([8, 4])
    """

    def __init__(self, temperature: float = 0.5, *, gather_distributed: bool = False) -> None:
        super().__init__()
        check_positive(temperature, "temperature")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the uniformity.

        Args:
            x: Shape: (B, D), float.

        Returns:
            A scalar.

        Raises:
            ValueError: If ``x`` is not (B, D) with at least 2 samples overall.
        """
        if self.gather_distributed:
            check_ndim(x, 2, "x", "(B, D)")
            x = gather(x)
        return sepclr_uniformity(x, self.temperature)
