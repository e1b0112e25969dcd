"""``embedding_cross_entropy``: full-softmax cross-entropy over class embeddings (recsys CE)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from shared.losses import embedding_cross_entropy


def naive(queries: torch.Tensor, classes: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Per query: log sum_c exp(q . e_c) - q . e_y, by loops over plain floats."""
    out = []
    for q, y in zip(queries.double().tolist(), targets.tolist(), strict=True):
        logits = [sum(a * b for a, b in zip(q, e, strict=True)) for e in classes.double().tolist()]
        top = max(logits)
        out.append(top + math.log(sum(math.exp(v - top) for v in logits)) - logits[y])
    return out


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def test_matches_the_naive_loop_and_f_cross_entropy(gen: torch.Generator) -> None:
    q, e = torch.randn(9, 5, generator=gen) * 2, torch.randn(13, 5, generator=gen)
    y = torch.randint(0, 13, (9,), generator=gen)
    per_query = embedding_cross_entropy(q, e, y, reduction="none")
    reference = torch.tensor(naive(q, e, y), dtype=torch.double)
    torch.testing.assert_close(per_query.double(), reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(embedding_cross_entropy(q, e, y), F.cross_entropy(q @ e.T, y))
    assert embedding_cross_entropy(q, e, y, reduction="sum").item() == pytest.approx(
        float(per_query.sum()), rel=1e-6
    )


def test_gradients_match_f_cross_entropy_and_gradcheck(gen: torch.Generator) -> None:
    q = torch.randn(6, 4, generator=gen, dtype=torch.double, requires_grad=True)
    e = torch.randn(8, 4, generator=gen, dtype=torch.double, requires_grad=True)
    y = torch.tensor([0, 7, 3, 3, 1, 7])  # repeated targets: their gradients add up
    got = torch.autograd.grad(embedding_cross_entropy(q, e, y), (q, e))
    expected = torch.autograd.grad(F.cross_entropy(q @ e.T, y), (q, e))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda a, b: embedding_cross_entropy(a, b, y), (q, e))


def test_temperature_divides_the_logits(gen: torch.Generator) -> None:
    q, e = torch.randn(5, 3, generator=gen), torch.randn(7, 3, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 6])
    got = embedding_cross_entropy(q, e, y, 0.2)
    torch.testing.assert_close(got, F.cross_entropy(q @ e.T / 0.2, y))


def test_large_logits_stay_finite(gen: torch.Generator) -> None:
    q, e = torch.randn(4, 3, generator=gen) * 100, torch.randn(6, 3, generator=gen) * 100
    y = torch.tensor([1, 2, 3, 4])
    got = embedding_cross_entropy(q, e, y)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, F.cross_entropy(q @ e.T, y))


def test_one_class_costs_nothing() -> None:
    q, e = torch.randn(3, 2), torch.randn(1, 2)
    assert embedding_cross_entropy(q, e, torch.zeros(3, dtype=torch.long)).item() == 0.0


@pytest.mark.parametrize(
    ("q", "e", "y", "message"),
    [
        (torch.randn(3), torch.randn(4, 3), torch.zeros(3, dtype=torch.long), "queries"),
        (torch.randn(2, 3), torch.randn(4, 2), torch.zeros(2, dtype=torch.long), "class_emb"),
        (torch.randn(2, 3), torch.randn(4, 3), torch.zeros(3, dtype=torch.long), "targets"),
        (torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 4]), r"\[0, 4\)"),
        (torch.randn(2, 3), torch.randn(4, 3), torch.tensor([-1, 0]), r"\[0, 4\)"),
    ],
)
def test_bad_input_names_what_was_expected(
    q: torch.Tensor, e: torch.Tensor, y: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        embedding_cross_entropy(q, e, y)
    with pytest.raises(ValueError, match="temperature"):
        embedding_cross_entropy(torch.randn(2, 3), torch.randn(4, 3), y[:2] * 0, 0.0)
    with pytest.raises(ValueError, match="reduction"):
        embedding_cross_entropy(torch.randn(2, 3), torch.randn(4, 3), y[:2] * 0, reduction="max")
