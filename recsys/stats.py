r"""Per-user metrics and paired tests between two models over the same test users (numpy only).

With leave-one-out each test user has one target; RecBole ranks it among all items. A user's
``position`` is the 1-based place of the target in the top ``K`` list (0 when it is not in the top
``K``), from which every metric at ``k <= K`` follows:

.. math::
    \mathrm{hit@k} = [1 \le p \le k], \quad \mathrm{ndcg@k} = \frac{[1 \le p \le k]}{\log_2(p + 1)},
    \quad \mathrm{mrr@k} = \frac{[1 \le p \le k]}{p}.

:func:`paired_test` compares two models on the same users: the mean per-user difference, a
paired bootstrap 95 % interval of it (users resampled with replacement) and a two-sided paired
permutation p-value (random sign flips of the per-user differences). Both use a fixed seed, so a
re-run on the saved per-user files gives the same numbers.

Examples:
    >>> import numpy as np
    >>> per_user_metric(np.array([1, 3, 0]), "ndcg@10").round(3).tolist()
    [1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["PairedTest", "paired_test", "per_user_metric"]

_METRIC = re.compile(r"^(hit|ndcg|mrr)@(\d+)$")


def per_user_metric(positions: np.ndarray, metric: str) -> np.ndarray:
    """One metric per user from the target's position in the top-K list.

    Args:
        positions: 1-based position of each user's target, 0 if not in the top K. Shape: (U,),
            int.
        metric: ``hit@k``, ``ndcg@k`` or ``mrr@k``.

    Returns:
        Shape: (U,), float64.

    Raises:
        ValueError: On an unknown metric name.
    """
    match = _METRIC.match(metric.lower())
    if match is None:
        raise ValueError(f"Expected a metric like 'ndcg@10' (hit, ndcg, mrr), but got {metric!r}.")
    kind, k = match.group(1), int(match.group(2))
    p = np.asarray(positions, dtype=np.float64)
    inside = (p >= 1) & (p <= k)
    safe = np.where(inside, p, 1.0)
    if kind == "hit":
        return inside.astype(np.float64)
    if kind == "ndcg":
        return np.where(inside, 1.0 / np.log2(safe + 1.0), 0.0)
    return np.where(inside, 1.0 / safe, 0.0)


@dataclass(frozen=True)
class PairedTest:
    """The outcome of :func:`paired_test` (``b`` minus ``a``).

    Attributes:
        n_users: Users compared.
        mean_a: Mean of ``a``.
        mean_b: Mean of ``b``.
        diff: Mean per-user difference ``b - a``.
        ci_low: Lower end of the paired bootstrap 95 % interval of ``diff``.
        ci_high: Upper end.
        p_value: Two-sided paired permutation (sign-flip) p-value of ``diff != 0``.
        resamples: Bootstrap resamples and permutations used.
    """

    n_users: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    resamples: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain JSON numbers."""
        return asdict(self)


def paired_test(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, seed: int = 0, chunk: int = 500
) -> PairedTest:
    """Paired bootstrap interval and permutation p-value of the mean difference ``b - a``.

    Args:
        a: Per-user values of the reference model. Shape: (U,), float.
        b: Per-user values of the other model, same users in the same order. Shape: (U,).
        resamples: Bootstrap resamples and sign-flip permutations.
        seed: Seed of the resampling.
        chunk: Resamples drawn at once (memory: ``chunk * U`` numbers).

    Returns:
        The :class:`PairedTest`. The p-value is ``(1 + #{|perm mean| >= |observed|}) /
        (1 + resamples)``, never 0.

    Raises:
        ValueError: If the shapes differ, there are no users, or ``resamples < 1``.

    Examples:
        >>> import numpy as np
        >>> t = paired_test(np.zeros(200), np.full(200, 0.1), resamples=200)
        >>> round(t.diff, 3), t.ci_low <= 0.1 <= t.ci_high, t.p_value < 0.01
        (0.1, True, True)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"Expected `a` and `b` of the same shape (U,), but got {a.shape} and {b.shape}."
        )
    if a.size == 0:
        raise ValueError("Expected at least one user, but got none.")
    if resamples < 1:
        raise ValueError(f"Expected `resamples` >= 1, but got {resamples}.")
    d = b - a
    n = d.size
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    extreme = 0
    tol = 1e-12 * max(1.0, abs(observed))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        index = rng.integers(0, n, size=(size, n))
        boot[start : start + size] = d[index].mean(axis=1)
        signs = rng.integers(0, 2, size=(size, n)) * 2 - 1
        perm = (signs * d).mean(axis=1)
        extreme += int(np.sum(np.abs(perm) >= abs(observed) - tol))
    low, high = np.percentile(boot, [2.5, 97.5])
    return PairedTest(
        n_users=n,
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        diff=observed,
        ci_low=float(low),
        ci_high=float(high),
        p_value=(1 + extreme) / (1 + resamples),
        resamples=resamples,
    )


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return mean, (0.0 if math.isnan(std) else std)
