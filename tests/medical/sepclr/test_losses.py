"""SepCLR's loss against a naive loop transcription of methods.md 4.3 and the official script."""

from __future__ import annotations

import math

import pytest
import torch

from medical.sepclr.losses import SepCLRWeights, null_background, sepclr_loss


def _align(x: list[list[float]], y: list[list[float]]) -> float:
    if not x:
        return 0.0
    return sum(sum((a - b) ** 2 for a, b in zip(u, v)) for u, v in zip(x, y)) / len(x)


def _unif(x: list[list[float]], t: float) -> float:
    n = len(x)
    pairs = [
        math.exp(-t * sum((a - b) ** 2 for a, b in zip(x[i], x[j])))
        for i in range(n)
        for j in range(i + 1, n)
    ]
    return math.log(sum(pairs) / len(pairs))


def _kjem(c: list[list[float]], s: list[list[float]]) -> float:
    n = len(c)
    total = 0.0
    for i in range(n):
        acc = 0.0
        for j in range(n):
            dc = sum((a - b) ** 2 for a, b in zip(c[i], c[j]))
            ds = sum((a - b) ** 2 for a, b in zip(s[i], s[j]))
            acc += math.exp(-dc) * math.exp(-ds)
        total += math.log(acc / n)
    return total / n


def _naive(c1, c2, s1, s2, g, w: SepCLRWeights, t: float) -> dict[str, float]:
    c1, c2, s1, s2 = (v.tolist() for v in (c1, c2, s1, s2))
    g = g.tolist()
    tg = [i for i, v in enumerate(g) if v == 1]
    bg = [i for i, v in enumerate(g) if v == 0]
    s1p = [row if g[i] == 1 else [0.0] * len(row) for i, row in enumerate(s1)]
    s2p = [row if g[i] == 1 else [0.0] * len(row) for i, row in enumerate(s2)]
    parts = {
        "common_align": _align(c1, c2),
        "common_unif": 2 * 0.5 * (_unif(c1, t) + _unif(c2, t)),
        "salient_align": _align([s1[i] for i in tg], [s2[i] for i in tg]),
        "salient_unif": 2 * 0.5 * (_unif(s1p, t) + _unif(s2p, t)),
        "reg": 0.5
        * (
            _align([[0.0] * len(s1[0])] * len(bg), [s1[i] for i in bg])
            + _align([[0.0] * len(s2[0])] * len(bg), [s2[i] for i in bg])
        ),
        "kjem": 0.5 * (_kjem(c1, s1p) + _kjem(c2, s2p)),
    }
    parts["loss"] = (
        parts["common_align"]
        + parts["common_unif"]
        + w.beta_s * (parts["salient_align"] + parts["salient_unif"])
        + w.beta_reg * parts["reg"]
        + w.lambda_jem * parts["kjem"]
    )
    return parts


def _batch(b: int = 7, dc: int = 4, ds: int = 3, seed: int = 0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    c1 = torch.nn.functional.normalize(torch.randn(b, dc, generator=gen, dtype=dtype), dim=1)
    c2 = torch.nn.functional.normalize(torch.randn(b, dc, generator=gen, dtype=dtype), dim=1)
    s1 = torch.randn(b, ds, generator=gen, dtype=dtype)
    s2 = torch.randn(b, ds, generator=gen, dtype=dtype)
    g = torch.tensor([0, 1, 1, 0, 1, 0, 1][:b])
    return c1, c2, s1, s2, g


@pytest.mark.parametrize(("form", "t"), [("code", 1.0), ("paper", 2.0)])
def test_matches_naive_loop(form: str, t: float) -> None:
    c1, c2, s1, s2, g = _batch()
    w = SepCLRWeights(beta_s=3.0, beta_reg=5.0, lambda_jem=7.0)
    out = sepclr_loss(c1, c2, s1, s2, g, w, form=form)
    ref = _naive(c1, c2, s1, s2, g, w, t)
    for key, value in ref.items():
        name = "loss" if key == "loss" else f"loss/{key}"
        assert out[name].item() == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_default_weights_are_cifar_mnist_script() -> None:
    assert SepCLRWeights() == SepCLRWeights(1000.0, 1000.0, 10.0)


def test_lambda_zero_drops_kjem_gradient() -> None:
    c1, c2, s1, s2, g = _batch()
    c1 = c1.clone().requires_grad_()
    out0 = sepclr_loss(c1, c2, s1, s2, g, SepCLRWeights(1, 1, 0))
    out1 = sepclr_loss(c1, c2, s1, s2, g, SepCLRWeights(1, 1, 1))
    assert (out1["loss"] - out0["loss"]).item() == pytest.approx(out1["loss/kjem"].item())


def test_gradcheck() -> None:
    c1, c2, s1, s2, g = _batch(b=5, dc=3, ds=2)
    inputs = tuple(v.clone().requires_grad_() for v in (c1, c2, s1, s2))

    def fn(a, b, c, d):
        return sepclr_loss(a, b, c, d, g[:5], SepCLRWeights(2.0, 3.0, 4.0))["loss"]

    assert torch.autograd.gradcheck(fn, inputs)


def test_background_rows_get_gradient_only_from_regulariser() -> None:
    c1, c2, s1, s2, g = _batch()
    s1 = s1.clone().requires_grad_()
    # without the regulariser, background salient codes are replaced by 0: no gradient
    sepclr_loss(c1, c2, s1, s2, g, SepCLRWeights(1.0, 0.0, 1.0))["loss"].backward()
    assert s1.grad is not None
    assert torch.all(s1.grad[g == 0] == 0)
    assert torch.any(s1.grad[g == 1] != 0)


def test_null_background() -> None:
    s = torch.ones(3, 2, requires_grad=True)
    out = null_background(s, torch.tensor([True, False, True]))
    assert out[1].abs().sum() == 0
    out.sum().backward()
    assert s.grad is not None
    assert s.grad[1].abs().sum() == 0


def test_identical_views_have_zero_alignment_and_no_target_batch_is_finite() -> None:
    c1, _, s1, _, _ = _batch()
    out = sepclr_loss(c1, c1, s1, s1, torch.zeros(7, dtype=torch.long), SepCLRWeights())
    assert out["loss/common_align"].item() == 0.0
    assert out["loss/salient_align"].item() == 0.0  # no target: the term is 0, not NaN
    assert torch.isfinite(out["loss"])


def test_loss_decreases_on_free_embeddings() -> None:
    torch.manual_seed(0)
    c = torch.randn(8, 4, requires_grad=True)
    s = torch.randn(8, 3, requires_grad=True)
    g = torch.tensor([0, 1] * 4)
    opt = torch.optim.SGD([c, s], lr=0.05)
    w = SepCLRWeights(1.0, 1.0, 1.0)
    losses = []
    for _ in range(30):
        cn = torch.nn.functional.normalize(c, dim=1)
        loss = sepclr_loss(cn, cn, s, s, g, w)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (((4, 3), (4, 3), (4, 2), (5, 2)), "same shape"),
        (((4, 3), (4, 3), (3, 2), (3, 2)), "same shape"),
    ],
)
def test_shape_errors(shapes, match: str) -> None:
    c1, c2, s1, s2 = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match="Expected c1, c2"):
        sepclr_loss(c1, c2, s1, s2, torch.zeros(4), SepCLRWeights())


def test_group_shape_form_and_weight_errors() -> None:
    c1, c2, s1, s2, _ = _batch()
    with pytest.raises(ValueError, match="groups"):
        sepclr_loss(c1, c2, s1, s2, torch.zeros(3), SepCLRWeights())
    with pytest.raises(ValueError, match="form"):
        sepclr_loss(c1, c2, s1, s2, torch.zeros(7), SepCLRWeights(), form="other")
    with pytest.raises(ValueError, match="beta_s"):
        SepCLRWeights(beta_s=-1.0)
