"""MCLRec's InfoNCE and contrastive regularizer R against naive per-row references."""

from __future__ import annotations

import math

import pytest
import torch

from recsys.losses import contrastive_regularizer, pair_info_nce, pair_scores


def naive_scores(a: torch.Tensor, b: torch.Tensor, tau: float, cos: bool = False):
    """Row i of z = [a; b]: positive = its counterpart, negatives = every other row, in order."""
    z = torch.cat([a, b]).double()
    if cos:
        z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    pos, neg = [], []
    for i in range(n2):
        j = (i + n2 // 2) % n2
        pos.append(float(z[i] @ z[j]) / tau)
        neg.append([float(z[i] @ z[k]) / tau for k in range(n2) if k not in (i, j)])
    return pos, neg


def naive_info_nce(a, b, tau, cos=False) -> float:
    pos, neg = naive_scores(a, b, tau, cos)
    rows = [math.log(math.exp(p) + sum(math.exp(x) for x in n)) - p for p, n in zip(pos, neg)]
    return sum(rows) / len(rows)


def naive_regularizer(a, b, tau) -> float:
    pos, neg = naive_scores(a, b, tau)
    first, second = [], []
    for p, n in zip(pos, neg):
        hardest = max(n)
        low, high = min(p, hardest), max(p, hardest)
        first.append(max(p - low, 0.0))
        second.extend(max(high - x, 0.0) for x in n)
    return sum(first) / len(first) + sum(second) / len(second)


@pytest.mark.parametrize(("tau", "cos"), [(1.0, False), (0.5, False), (0.2, True)])
def test_pair_info_nce_matches_naive_loop(tau: float, cos: bool) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    got = pair_info_nce(a, b, tau, normalize=cos).item()
    assert got == pytest.approx(naive_info_nce(a, b, tau, cos), rel=1e-5)


@pytest.mark.parametrize(("tau", "scale"), [(1.0, 1.0), (0.7, 3.0), (1.0, 0.05)])
def test_regularizer_matches_naive_loop(tau: float, scale: float) -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 4, generator=g) * scale
    b = a + 0.5 * torch.randn(6, 4, generator=g)  # positives sometimes above the hardest negative
    got = contrastive_regularizer(a, b, tau).item()
    assert got == pytest.approx(naive_regularizer(a, b, tau), rel=1e-5, abs=1e-7)
    assert got >= 0


def test_regularizer_cases_by_hand() -> None:
    # Positive below every negative: first term 0; second = mean(max(pos, hardest) - neg)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    pos, _neg = pair_scores(a, b)
    assert pos.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert contrastive_regularizer(a, b).item() == pytest.approx(naive_regularizer(a, b, 1.0))
    # Identical views: each positive = |a_i|^2 = 1 > hardest negative 0 -> 1 + 1
    assert contrastive_regularizer(a, a).item() == pytest.approx(2.0)


def test_regularizer_gradcheck() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: contrastive_regularizer(x, y, 0.5), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: pair_info_nce(x, y, 0.5), (a, b))


def test_bad_shapes_raise_value_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        pair_info_nce(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least 2 rows"):
        contrastive_regularizer(torch.zeros(1, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="temperature"):
        contrastive_regularizer(torch.zeros(2, 4), torch.zeros(2, 4), 0.0)


def _regularizer_by_definition(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """R on the (2B, 2B - 2) negatives as written (the form before the closed-form rewrite)."""
    pos, neg = pair_scores(a, b, tau)
    hardest = neg.max(dim=1).values
    low, high = torch.minimum(pos, hardest), torch.maximum(pos, hardest)
    return (pos - low).clamp(min=0).mean() + (high[:, None] - neg).clamp(min=0).mean()


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_regularizer_gradients_match_the_definition(tau: float) -> None:
    g = torch.Generator().manual_seed(3)
    a = (torch.randn(7, 5, generator=g) * 3).requires_grad_()
    b = torch.nn.functional.normalize(torch.randn(7, 5, generator=g), dim=1).requires_grad_()
    got = contrastive_regularizer(a, b, tau)
    expected = _regularizer_by_definition(a, b, tau)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(got, (a, b))
    ref = torch.autograd.grad(expected, (a, b))
    for x, y in zip(grads, ref):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
