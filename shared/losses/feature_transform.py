r"""Feature Transformation (FT): positive extrapolation and negative interpolation.

Zhu, Zhao, Liu, Sun, Chen, "Improving Contrastive Learning by Visualizing Feature
Transformation", ICCV 2021 (arXiv 2108.02982). The formulas and defaults follow the authors'
code (DTennant/CL-Visualizing-Feature-Transformation, ``memory/mem_moco.py``:
``RGBMoCo_dropmix_norm.forward`` with ``mixnorm_target="posneg"``, ``expolation_mask``,
``sep_alpha``, ``dim_mask="none"``, no post-mix normalisation; defaults from ``README.md``):

* **Positive extrapolation**: with :math:`\lambda^+ \sim \mathrm{Beta}(\alpha^+, \alpha^+) + 1`
  (so :math:`\lambda^+ \in [1, 2]`, one scalar per batch), the query and key become
  :math:`\hat q = \lambda^+ q + (1-\lambda^+) k` and :math:`\hat k = \lambda^+ k + (1-\lambda^+) q`:
  the pair moves apart, giving a harder positive.
* **Negative interpolation**: with :math:`\lambda^- \sim \mathrm{Beta}(\alpha^-, \alpha^-)` and a
  random permutation :math:`\pi` of the K queue entries, the negatives become
  :math:`\hat n = \lambda^- n + (1 - \lambda^-) n_{\pi}`. The authors' code *replaces* the queue
  by these mixes; ``append_negatives=True`` keeps the originals as well.
* The MoCo InfoNCE is then taken on :math:`\hat q, \hat k, \hat n` (the inputs are L2-normalised
  before mixing, not after). Defaults: :math:`\alpha^+ = 2.0`, :math:`\alpha^- = 1.6`, and the
  MoCo-v2 temperature 0.2.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.distributed import gather_no_grad
from shared.validation import check_dim, check_ndim, check_positive, check_reduction, reduce

__all__ = [
    "FeatureTransformLoss",
    "feature_transform",
    "feature_transform_info_nce",
    "negative_interpolation",
    "positive_extrapolation",
    "sample_feature_transform",
]

Coefficient = float | torch.Tensor


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _as_coefficient(lam: Coefficient, like: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``lam`` as a tensor broadcastable to ``like`` (a scalar, a column or full)."""
    t = torch.as_tensor(lam, dtype=like.dtype, device=like.device)
    if t.ndim > like.ndim or any(
        s not in (1, full) for s, full in zip(t.shape[::-1], like.shape[::-1])
    ):
        raise ValueError(
            f"Expected `{name}` to be a scalar or broadcastable to {tuple(like.shape)}, "
            f"but got shape {tuple(t.shape)}."
        )
    return t


def positive_extrapolation(
    query: torch.Tensor, key: torch.Tensor, lam: Coefficient
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mix a positive pair: :math:`(\lambda q + (1-\lambda)k,\ \lambda k + (1-\lambda)q)`.

    With :math:`\lambda > 1` this is the paper's extrapolation (the pair moves apart); with
    :math:`\lambda \in [0, 1]` an interpolation; :math:`\lambda = 1` is the identity.

    Args:
        query: Shape: (B, D), float.
        key: Shape: (B, D), float.
        lam: A float, or a tensor broadcastable to (B, D) (per-sample or per-dimension).

    Returns:
        The mixed ``(query, key)``, each of shape (B, D).

    Raises:
        ValueError: On shape mismatches.

    Examples:
        >>> q, k = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        >>> positive_extrapolation(q, k, 1.5)[0].tolist()
        [[1.5, -0.5]]
    """
    check_ndim(query, 2, "query", "(B, D)")
    if query.shape != key.shape:
        raise ValueError(
            f"Expected `query` and `key` to have the same shape (B, D), "
            f"but got {tuple(query.shape)} and {tuple(key.shape)}."
        )
    t = _as_coefficient(lam, query, "lam")
    return t * query + (1 - t) * key, t * key + (1 - t) * query


def negative_interpolation(
    negatives: torch.Tensor, lam: Coefficient, permutation: torch.Tensor
) -> torch.Tensor:
    r"""Mix every negative with a permuted one: :math:`\lambda n + (1-\lambda) n_{\pi}`.

    Args:
        negatives: The queue or negatives. Shape: (K, D), float.
        lam: A float, or a tensor broadcastable to (K, D).
        permutation: Indices into the K negatives. Shape: (K,), int64.

    Returns:
        Shape: (K, D).

    Raises:
        ValueError: On shape mismatches.

    Examples:
        >>> n = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> negative_interpolation(n, 0.5, torch.tensor([1, 0])).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    check_ndim(negatives, 2, "negatives", "(K, D)")
    check_ndim(permutation, 1, "permutation", "(K,)")
    check_dim(permutation, 0, negatives.shape[0], "permutation", "(K,)")
    t = _as_coefficient(lam, negatives, "lam")
    return t * negatives + (1 - t) * negatives[permutation]


def sample_feature_transform(
    num_negatives: int,
    *,
    pos_alpha: float = 2.0,
    neg_alpha: float = 1.6,
    extrapolate: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[float, float, torch.Tensor]:
    r"""Draw the FT coefficients as the authors' code does (one scalar each per batch).

    :math:`\lambda^+ \sim \mathrm{Beta}(\alpha^+, \alpha^+)` (+1 with ``extrapolate``),
    :math:`\lambda^- \sim \mathrm{Beta}(\alpha^-, \alpha^-)` and a random permutation of the
    negatives. The Beta draws use NumPy seeded from ``generator`` (or torch's global RNG), so a
    seeded ``torch.Generator`` makes everything reproducible.

    Args:
        num_negatives: K, the number of negatives to permute.
        pos_alpha: :math:`\alpha^+ > 0` (paper: 2.0).
        neg_alpha: :math:`\alpha^- > 0` (paper: 1.6).
        extrapolate: Shift :math:`\lambda^+` by +1 (the paper's extrapolation).
        generator: Source of randomness.

    Returns:
        ``(pos_lambda, neg_lambda, permutation)``; ``permutation`` has shape (K,), int64, on
        the CPU.

    Raises:
        ValueError: If ``num_negatives < 1`` or an alpha is not positive.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> pos, neg, perm = sample_feature_transform(5, generator=g)
        >>> 1.0 <= pos <= 2.0, 0.0 <= neg <= 1.0, sorted(perm.tolist())
        (True, True, [0, 1, 2, 3, 4])
    """
    check_positive(num_negatives, "num_negatives")
    check_positive(pos_alpha, "pos_alpha")
    check_positive(neg_alpha, "neg_alpha")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    rng = np.random.default_rng(seed)
    pos = float(rng.beta(pos_alpha, pos_alpha)) + (1.0 if extrapolate else 0.0)
    neg = float(rng.beta(neg_alpha, neg_alpha))
    permutation = torch.randperm(num_negatives, generator=generator)
    return pos, neg, permutation


def feature_transform(
    query: torch.Tensor,
    key: torch.Tensor,
    negatives: torch.Tensor,
    pos_lambda: Coefficient,
    neg_lambda: Coefficient,
    permutation: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply positive extrapolation and negative interpolation with given coefficients.

    Args:
        query: Shape: (B, D), float.
        key: Shape: (B, D), float.
        negatives: Shape: (K, D), float.
        pos_lambda: Final positive coefficient (already shifted: in [1, 2] to extrapolate).
        neg_lambda: Negative mixing coefficient, in [0, 1].
        permutation: Shape: (K,), int64.

    Returns:
        ``(query, key, negatives)`` transformed, shapes (B, D), (B, D), (K, D).

    Raises:
        ValueError: On shape mismatches.

    Examples:
        >>> q, k, n = torch.eye(2), torch.eye(2), torch.eye(2)
        >>> out = feature_transform(q, k, n, 1.0, 1.0, torch.tensor([1, 0]))
        >>> all(torch.equal(a, b) for a, b in zip(out, (q, k, n)))  # lambdas of 1: identity
        True
    """
    q, k = positive_extrapolation(query, key, pos_lambda)
    return q, k, negative_interpolation(negatives, neg_lambda, permutation)


def feature_transform_info_nce(
    query: torch.Tensor,
    key: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = 0.2,
    *,
    pos_lambda: Coefficient | None = None,
    neg_lambda: Coefficient | None = None,
    permutation: torch.Tensor | None = None,
    pos_alpha: float = 2.0,
    neg_alpha: float = 1.6,
    extrapolate_positive: bool = True,
    interpolate_negative: bool = True,
    append_negatives: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""MoCo InfoNCE on feature-transformed positives and negatives (Zhu et al., ICCV 2021).

    .. math::
        \ell_i = -\frac{\hat q_i \cdot \hat k_i}{\tau}
        + \log\Big(e^{\hat q_i \cdot \hat k_i/\tau} + \sum_{n} e^{\hat q_i \cdot \hat n/\tau}\Big)

    with :math:`\hat q, \hat k, \hat n` from :func:`feature_transform` (see the module
    docstring). Coefficients not given are drawn by :func:`sample_feature_transform`. The
    log-sum-exp runs in float32. In MoCo the keys come from the momentum encoder without
    gradient; the extrapolated key still depends on the query, as in the authors' code.

    Args:
        query: Queries. Shape: (B, D), float.
        key: Their positive keys. Shape: (B, D), float.
        negatives: Negatives, e.g. the MoCo queue. Shape: (K, D), float.
        temperature: Softmax temperature :math:`\tau > 0` (MoCo v2: 0.2).
        pos_lambda: Final positive coefficient (in [1, 2] to extrapolate), a float or a tensor
            broadcastable to (B, D). Drawn if None.
        neg_lambda: Negative coefficient in [0, 1], a float or broadcastable to (K, D).
        permutation: Partner of each negative. Shape: (K,), int64.
        pos_alpha: Beta parameter of :math:`\lambda^+` when drawn (paper: 2.0).
        neg_alpha: Beta parameter of :math:`\lambda^-` when drawn (paper: 1.6).
        extrapolate_positive: Apply positive extrapolation.
        interpolate_negative: Apply negative interpolation.
        append_negatives: Use the original negatives too (the code replaces them).
        normalize: L2-normalise ``query``, ``key`` and ``negatives`` before mixing.
        generator: Randomness for the coefficients that are drawn.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-query values of shape (B,) for ``"none"``; float32 (float64 for
        float64 input).

    Raises:
        ValueError: On shape mismatches or invalid hyper-parameters.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> q, k = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
        >>> queue = torch.randn(32, 8, generator=g)
        >>> loss = feature_transform_info_nce(q, k, queue, generator=g)
        >>> plain = feature_transform_info_nce(q, k, queue, pos_lambda=1.0, neg_lambda=1.0,
        ...                                    permutation=torch.arange(32))  # plain MoCo
        >>> bool(loss > 0), bool(plain > 0)
        (True, True)
    """
    check_positive(temperature, "temperature")
    check_reduction(reduction)
    check_positive(pos_alpha, "pos_alpha")
    check_positive(neg_alpha, "neg_alpha")
    check_ndim(query, 2, "query", "(B, D)")
    if query.shape != key.shape:
        raise ValueError(
            f"Expected `query` and `key` to have the same shape (B, D), "
            f"but got {tuple(query.shape)} and {tuple(key.shape)}."
        )
    check_ndim(negatives, 2, "negatives", "(K, D)")
    check_dim(negatives, 1, query.shape[1], "negatives", "(K, D)")
    if negatives.shape[0] < 1:
        raise ValueError(f"Expected at least 1 negative, but got shape {tuple(negatives.shape)}.")
    if permutation is not None:
        check_ndim(permutation, 1, "permutation", "(K,)")
        check_dim(permutation, 0, negatives.shape[0], "permutation", "(K,)")
    needs_pos = extrapolate_positive and pos_lambda is None
    needs_neg = interpolate_negative and (neg_lambda is None or permutation is None)
    pos_coef: Coefficient = 1.0 if pos_lambda is None else pos_lambda
    neg_coef: Coefficient = 1.0 if neg_lambda is None else neg_lambda
    perm = torch.arange(negatives.shape[0]) if permutation is None else permutation
    if needs_pos or needs_neg:
        drawn_pos, drawn_neg, drawn_perm = sample_feature_transform(
            negatives.shape[0],
            pos_alpha=pos_alpha,
            neg_alpha=neg_alpha,
            generator=generator,
        )
        pos_coef = drawn_pos if pos_lambda is None else pos_lambda
        neg_coef = drawn_neg if neg_lambda is None else neg_lambda
        perm = drawn_perm if permutation is None else permutation
    perm = perm.to(negatives.device)
    with torch.autocast(device_type=query.device.type, enabled=False):
        q, k, n = _upcast(query), _upcast(key), _upcast(negatives)
        if normalize:
            q, k, n = F.normalize(q, dim=-1), F.normalize(k, dim=-1), F.normalize(n, dim=-1)
        if extrapolate_positive:
            q, k = positive_extrapolation(q, k, pos_coef)
        if interpolate_negative:
            mixed = negative_interpolation(n, neg_coef, perm)
            n = torch.cat([n, mixed]) if append_negatives else mixed
        pos = (q * k).sum(dim=-1, keepdim=True)
        logits = torch.cat([pos, q @ n.T], dim=1) / temperature
        per_query = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return reduce(per_query, reduction)


class FeatureTransformLoss(nn.Module):
    """MoCo InfoNCE with Feature Transformation and an optional queue (Zhu et al., ICCV 2021).

    Holds the hyper-parameters and, with ``queue_size > 0``, a MoCo queue of L2-normalised keys
    (initialised with random unit vectors, as in the authors' code) that serves as the negatives
    when :meth:`forward` gets none and is updated with the (original, untransformed) keys after
    every call. With ``gather_distributed`` the keys of every rank are enqueued, so all ranks
    keep the same queue; then draw the coefficients identically on every rank (seed each rank's
    generator alike).

    Args:
        temperature: Softmax temperature (MoCo v2: 0.2).
        pos_alpha: Beta parameter of the positive coefficient (paper: 2.0).
        neg_alpha: Beta parameter of the negative coefficient (paper: 1.6).
        extrapolate_positive: Apply positive extrapolation.
        interpolate_negative: Apply negative interpolation.
        append_negatives: Keep the original negatives besides the mixed ones.
        queue_size: Size K of the queue (0: negatives must be passed to ``forward``).
        dim: Feature dimension D; required when ``queue_size > 0``.
        gather_distributed: Enqueue the keys of every rank.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: If a hyper-parameter is invalid.

    Examples:
        >>> loss_fn = FeatureTransformLoss(queue_size=16, dim=8)
        >>> g = torch.Generator().manual_seed(0)
        >>> q = torch.randn(4, 8, requires_grad=True)
        >>> loss_fn(q, torch.randn(4, 8), generator=g).backward()
        >>> q.grad.shape, int(loss_fn.queue_ptr)
        (torch.Size([4, 8]), 4)
    """

    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(
        self,
        temperature: float = 0.2,
        *,
        pos_alpha: float = 2.0,
        neg_alpha: float = 1.6,
        extrapolate_positive: bool = True,
        interpolate_negative: bool = True,
        append_negatives: bool = False,
        queue_size: int = 0,
        dim: int | None = None,
        gather_distributed: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_positive(temperature, "temperature")
        check_positive(pos_alpha, "pos_alpha")
        check_positive(neg_alpha, "neg_alpha")
        check_reduction(reduction)
        if queue_size < 0:
            raise ValueError(f"Expected `queue_size` to be >= 0, but got {queue_size}.")
        if queue_size > 0 and (dim is None or dim < 1):
            raise ValueError(f"Expected `dim` >= 1 when `queue_size` > 0, but got {dim}.")
        self.temperature = temperature
        self.pos_alpha = pos_alpha
        self.neg_alpha = neg_alpha
        self.extrapolate_positive = extrapolate_positive
        self.interpolate_negative = interpolate_negative
        self.append_negatives = append_negatives
        self.gather_distributed = gather_distributed
        self.reduction = reduction
        queue = torch.randn(queue_size, dim or 0) if queue_size > 0 else torch.zeros(0, 0)
        self.register_buffer("queue", F.normalize(queue, dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write L2-normalised ``keys`` into the ring queue (gathered from every rank if set).

        Args:
            keys: Shape: (B, D), float.
        """
        if self.queue.shape[0] == 0:
            return
        keys = F.normalize(keys.detach().to(self.queue.dtype), dim=1)
        if self.gather_distributed:
            keys = gather_no_grad(keys)
        size = self.queue.shape[0]
        index = (torch.arange(keys.shape[0], device=keys.device) + self.queue_ptr) % size
        self.queue.index_copy_(0, index, keys)
        self.queue_ptr.fill_(int((self.queue_ptr + keys.shape[0]) % size))

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        negatives: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Compute the loss, then enqueue ``key`` when the queue is used.

        Args:
            query: Shape: (B, D), float.
            key: Shape: (B, D), float.
            negatives: Shape: (K, D), float. Default: the queue.
            generator: Randomness for the coefficients.

        Returns:
            A scalar, or per-query values of shape (B,) for ``reduction="none"``.

        Raises:
            ValueError: On shape mismatches, or without negatives when there is no queue.
        """
        use_queue = negatives is None
        if use_queue:
            if self.queue.shape[0] == 0:
                raise ValueError(
                    "Expected `negatives` (K, D) when the module has no queue "
                    "(queue_size=0), but got None."
                )
            check_ndim(key, 2, "key", "(B, D)")
            check_dim(key, 1, self.queue.shape[1], "key", "(B, D)")
        loss = feature_transform_info_nce(
            query,
            key,
            self.queue.clone() if negatives is None else negatives,
            self.temperature,
            pos_alpha=self.pos_alpha,
            neg_alpha=self.neg_alpha,
            extrapolate_positive=self.extrapolate_positive,
            interpolate_negative=self.interpolate_negative,
            append_negatives=self.append_negatives,
            generator=generator,
            reduction=self.reduction,
        )
        if use_queue:
            self.enqueue(key)
        return loss
