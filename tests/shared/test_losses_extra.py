"""SwAV, CACR, AMCL, Feature Transformation and SepCLR's k-JEM against naive loops.

Each loss gets: (a) a reference comparison with loops over the paper's / authors' formula,
(b) analytic values, (c) properties, (d) gradcheck in float64, (e) a few SGD steps lower it,
(f) every validation path, (g) reductions, dtypes and bfloat16 autocast.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from shared.losses.amcl import AMCLLoss, AMCLProjectionHeads, amcl, amcl_omega
from shared.losses.cacr import CACRLoss, cacr
from shared.losses.feature_transform import (
    FeatureTransformLoss,
    feature_transform,
    feature_transform_info_nce,
    negative_interpolation,
    positive_extrapolation,
    sample_feature_transform,
)
from shared.losses.kjem import (
    KJEMLoss,
    SepCLRUniformityLoss,
    kjem,
    sepclr_align,
    sepclr_uniformity,
)
from shared.losses.swav import SwAVLoss, sinkhorn_knopp, swav

REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _randn(gen: torch.Generator, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard normal draws made in float64 (the same values for every ``dtype``), then cast."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _sqd(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b))


def _unit(a: list[float]) -> list[float]:
    n = math.sqrt(_dot(a, a))
    return [x / n for x in a]


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [x / s for x in e]


def _lse(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


# ---------------------------------------------------------------- naive references (loops)


def ref_sinkhorn(out: list[list[float]], eps: float, iters: int) -> list[list[float]]:
    """facebookresearch/swav ``distributed_sinkhorn`` on one process, element by element."""
    b, k = len(out), len(out[0])
    q = [[math.exp(out[i][p] / eps) for i in range(b)] for p in range(k)]  # K x B
    total = sum(sum(row) for row in q)
    q = [[x / total for x in row] for row in q]
    for _ in range(iters):
        for p in range(k):
            r = sum(q[p])
            q[p] = [x / r / k for x in q[p]]
        for i in range(b):
            c = sum(q[p][i] for p in range(k))
            for p in range(k):
                q[p][i] = q[p][i] / c / b
    return [[q[p][i] * b for p in range(k)] for i in range(b)]


def ref_swav(scores, tau, eps, iters, crops, queue=None):
    """``train`` of main_swav.py: codes of each assignment crop, predicted by the others."""
    s = scores.tolist()  # B x V x K
    b, v = len(s), len(s[0])
    out = [0.0] * b
    for ai, a in enumerate(crops):
        assign = [s[i][a] for i in range(b)]
        if queue is not None:
            assign = queue[ai].tolist() + assign
        q = ref_sinkhorn(assign, eps, iters)[-b:]
        for i in range(b):
            sub = 0.0
            for o in range(v):
                if o == a:
                    continue
                logits = [x / tau for x in s[i][o]]
                lse = _lse(logits)
                sub -= sum(q[i][p] * (logits[p] - lse) for p in range(len(logits)))
            out[i] += sub / (v - 1) / len(crops)
    return torch.tensor(out, dtype=torch.float64)


def ref_cacr(views, alpha, beta, tp, tn):
    """JegZheng/CACR-SSL ``our_loss1`` + ``our_loss2`` (Euclidean cost), per sample."""
    z = [[_unit(vec) for vec in sample] for sample in views.tolist()]
    b, v = len(z), len(z[0])
    att = [0.0] * b
    for x in range(v):
        for i in range(b):
            ds = [_sqd(z[i][x], z[i][m]) for m in range(v) if m != x]
            ws = _softmax([tp * d for d in ds])
            att[i] += sum(alpha * d * w for d, w in zip(ds, ws)) / v
    rep = [0.0] * b
    pairs = 0
    for x in range(v):
        for y in range(x + 1, v):
            pairs += 1
            for i in range(b):
                ds = [_sqd(z[i][x], z[j][y]) for j in range(b) if j != i]
                ws = _softmax([-tn * d for d in ds])
                rep[i] += sum(-beta * d * w for d, w in zip(ds, ws))
    return torch.tensor([att[i] + rep[i] / pairs for i in range(b)], dtype=torch.float64)


def ref_amcl(z1, z2, phi, beta, tmin, tmax, top_k):
    """LeiWangR/cl ``AMCLNTXentLoss``: per head, both directions, hardest top-k negatives."""
    b, c, d = z1.shape
    a1, a2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    with torch.no_grad():
        f1, f2 = phi(a1).tolist(), phi(a2).tolist()
    a1l, a2l = a1.tolist(), a2.tolist()

    def tau(fa: list[float], fb: list[float]) -> float:
        return tmin + (tmax - tmin) / (1 + math.exp(_dot(fa, fb)))

    out = [0.0] * b
    for h in range(c):
        for (za, fa), (zp, fp) in (((a1l, f1), (a2l, f2)), ((a2l, f2), (a1l, f1))):
            for i in range(b):
                s_pos = _dot(za[i][h], zp[i][h])
                t_pos = tau(fa[i][h], fp[i][h])
                negs = [
                    (_dot(za[i][h], zz[j][h]), tau(fa[i][h], ff[j][h]))
                    for zz, ff in ((a1l, f1), (a2l, f2))
                    for j in range(b)
                    if j != i
                ]
                negs.sort(key=lambda st: -st[0])
                top = negs[:top_k]
                neg = sum(s / t for s, t in top) / len(top)
                reg_neg = sum(math.log(t) + 1 / t for _, t in top)
                omega = d / 2 * math.log(t_pos) + 1 / t_pos
                out[i] += 0.5 * (-s_pos / t_pos + neg + beta * omega - beta * reg_neg)
    return torch.tensor(out, dtype=torch.float64)


def ref_ft(query, key, negs, tau, lp, ln, perm, append=False):
    """DTennant/CL-Visualizing-Feature-Transformation ``RGBMoCo_dropmix_norm`` + MoCo CE."""
    q = [_unit(x) for x in query.tolist()]
    k = [_unit(x) for x in key.tolist()]
    n = [_unit(x) for x in negs.tolist()]
    qh = [[lp * a + (1 - lp) * c for a, c in zip(qi, ki)] for qi, ki in zip(q, k)]
    kh = [[lp * c + (1 - lp) * a for a, c in zip(qi, ki)] for qi, ki in zip(q, k)]
    nh = [[ln * a + (1 - ln) * c for a, c in zip(n[m], n[int(perm[m])])] for m in range(len(n))]
    if append:
        nh = n + nh
    out = []
    for i in range(len(q)):
        logits = [_dot(qh[i], kh[i]) / tau] + [_dot(qh[i], nm) / tau for nm in nh]
        out.append(_lse(logits) - logits[0])
    return torch.tensor(out, dtype=torch.float64)


def ref_kjem(c, s, tau):
    """neurospin 2024_rlouiset_sep_clr ``joint_entropy_loss``, element by element."""
    cl, sl = c.tolist(), s.tolist()
    b = len(cl)
    out = []
    for i in range(b):
        total = sum(
            math.exp(-_sqd(cl[i], cl[j]) / (2 * tau)) * math.exp(-_sqd(sl[i], sl[j]) / (2 * tau))
            for j in range(b)
        )
        out.append(math.log(total / b))
    return torch.tensor(out, dtype=torch.float64)


def ref_uniformity(x, tau):
    """``uniform_loss``: log mean over i < j of exp(-||x_i - x_j||^2 / (2 tau))."""
    xl = x.tolist()
    terms = [
        math.exp(-_sqd(xl[i], xl[j]) / (2 * tau))
        for i in range(len(xl))
        for j in range(i + 1, len(xl))
    ]
    return math.log(sum(terms) / len(terms))


def _phi(d: int, seed: int = 3, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, d)).to(
        dtype
    )


# ---------------------------------------------------------------- (a) reference comparisons


@pytest.mark.parametrize(("crops", "iters"), [((0, 1), 3), ((1,), 5), ((0, 2, 3), 1)])
def test_swav_matches_reference(gen, crops, iters):
    scores = F.normalize(_randn(gen, 5, 4, 6), dim=-1)
    got = swav(
        scores,
        0.1,
        epsilon=0.05,
        sinkhorn_iterations=iters,
        crops_for_assign=crops,
        reduction="none",
    )
    torch.testing.assert_close(got, ref_swav(scores, 0.1, 0.05, iters, crops))


def test_swav_with_queue_matches_reference(gen):
    scores = F.normalize(_randn(gen, 4, 3, 5), dim=-1)
    queue = F.normalize(_randn(gen, 2, 6, 5), dim=-1)
    got = swav(scores, 0.2, queue_scores=queue, reduction="none")
    torch.testing.assert_close(got, ref_swav(scores, 0.2, 0.05, 3, (0, 1), queue))


def test_sinkhorn_matches_reference_and_survives_large_scores(gen):
    scores = _randn(gen, 6, 4)
    torch.testing.assert_close(
        sinkhorn_knopp(scores, 0.3, 4),
        torch.tensor(ref_sinkhorn(scores.tolist(), 0.3, 4), dtype=torch.float64),
    )
    big = 50 * _randn(gen, 6, 4, dtype=torch.float32)  # exp(big / 0.05) overflows unshifted
    assert torch.isfinite(sinkhorn_knopp(big)).all()


@pytest.mark.parametrize(("tp", "tn"), [(1.0, 1.0), (2.0, 0.5), (0.0, 0.0)])
def test_cacr_matches_reference(gen, tp, tn):
    views = _randn(gen, 5, 3, 4)
    got = cacr(views, alpha=1.5, beta=0.7, pos_temperature=tp, neg_temperature=tn, reduction="none")
    torch.testing.assert_close(got, ref_cacr(views, 1.5, 0.7, tp, tn))


@pytest.mark.parametrize("top_k", [100, 3])
def test_amcl_matches_reference(gen, top_k):
    z1, z2 = _randn(gen, 4, 2, 5), _randn(gen, 4, 2, 5)
    phi = _phi(5)
    got = amcl(z1, z2, phi, beta=0.01, tau_min=0.05, tau_max=2.0, top_k=top_k, reduction="none")
    torch.testing.assert_close(got, ref_amcl(z1, z2, phi, 0.01, 0.05, 2.0, top_k))


@pytest.mark.parametrize("append", [False, True])
def test_feature_transform_matches_reference(gen, append):
    q, k, n = _randn(gen, 4, 5), _randn(gen, 4, 5), _randn(gen, 7, 5)
    perm = torch.randperm(7, generator=gen)
    got = feature_transform_info_nce(
        q,
        k,
        n,
        0.2,
        pos_lambda=1.6,
        neg_lambda=0.3,
        permutation=perm,
        append_negatives=append,
        reduction="none",
    )
    torch.testing.assert_close(got, ref_ft(q, k, n, 0.2, 1.6, 0.3, perm, append))


@pytest.mark.parametrize("tau", [0.5, 1.3])
def test_kjem_align_uniformity_match_reference(gen, tau):
    c, s = _randn(gen, 6, 3), _randn(gen, 6, 2)
    torch.testing.assert_close(kjem(c, s, tau, reduction="none"), ref_kjem(c, s, tau))
    x, y = _randn(gen, 6, 3), _randn(gen, 6, 3)
    expected = torch.tensor(
        [_sqd(a, b) / (2 * tau) for a, b in zip(x.tolist(), y.tolist())], dtype=torch.float64
    )
    torch.testing.assert_close(sepclr_align(x, y, tau, reduction="none"), expected)
    assert sepclr_uniformity(x, tau).item() == pytest.approx(ref_uniformity(x, tau), rel=1e-12)


def test_kjem_gram_form_float32_and_equal_rows(gen):
    """Gram-matrix distances: float32 at SepCLR's shapes within rounding of the naive loop;
    equal rows (the null background salient codes, translated far from 0) are 0 apart
    and the gradient stays finite; gathered candidates (anchors inside, not identical tensors)
    give the same values."""
    c = torch.nn.functional.normalize(_randn(gen, 40, 8), dim=1).float()
    s = 3.0 * _randn(gen, 40, 5).float()
    s[::2] = 0.0  # background rows
    c.requires_grad_()
    out = kjem(c, s + 50.0, reduction="none")
    torch.testing.assert_close(
        out.double(), ref_kjem(c.double(), s.double(), 0.5), atol=2e-5, rtol=0
    )
    out.sum().backward()
    assert torch.isfinite(c.grad).all()
    cands_c = torch.cat([c.detach(), torch.zeros(3, 8)])
    cands_s = torch.cat([s, torch.zeros(3, 5)])
    gathered = kjem(c.detach(), s, c_all=cands_c, s_all=cands_s, reduction="none")
    ref = ref_kjem(cands_c.double(), cands_s.double(), 0.5)[:40]
    torch.testing.assert_close(gathered.double(), ref, atol=2e-5, rtol=0)
    pair = torch.tensor([[1e3, 1e3], [1e3, 1e3]])  # large equal codes: no rounding residue
    assert sepclr_uniformity(pair).item() == 0.0


# ---------------------------------------------------------------- (b) analytic values


def test_swav_uniform_scores_give_log_k():
    scores = torch.zeros(4, 3, 7, dtype=torch.float64)
    assert swav(scores).item() == pytest.approx(math.log(7))


def test_sinkhorn_codes_are_assignments_and_equipartition(gen):
    q = sinkhorn_knopp(_randn(gen, 8, 4), 0.5, 50)
    torch.testing.assert_close(q.sum(1), torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(q.sum(0), torch.full((4,), 2.0, dtype=torch.float64))


def test_cacr_analytic_two_orthogonal_samples():
    e = torch.eye(2, dtype=torch.float64)
    views = torch.stack([e, e], dim=1)  # identical views: no attraction; one negative at d = 2
    assert cacr(views).item() == pytest.approx(-2.0)
    assert cacr(views, beta=0.5).item() == pytest.approx(-1.0)


def test_amcl_analytic_constant_temperature():
    b, c, d = 3, 2, 4
    z = torch.eye(d, dtype=torch.float64)[:b].unsqueeze(1).repeat(1, c, 1)  # orthonormal
    phi = torch.nn.Linear(d, d).double()
    torch.nn.init.zeros_(phi.weight)
    torch.nn.init.zeros_(phi.bias)  # score 0 -> tau0 = tau_min + (tau_max - tau_min) / 2
    beta, tmin, tmax = 0.01, 0.1, 1.1
    t0 = tmin + (tmax - tmin) / 2
    k = 2 * b - 2  # every negative has similarity 0
    per_head = -1 / t0 + beta * (d / 2 * math.log(t0) + 1 / t0) - beta * k * (math.log(t0) + 1 / t0)
    got = amcl(z, z, phi, beta=beta, tau_min=tmin, tau_max=tmax)
    assert got.item() == pytest.approx(c * per_head)
    assert amcl_omega(torch.tensor(2.0 / d), d).item() == pytest.approx(
        d / 2 * math.log(2 / d) + d / 2
    )


def test_feature_transform_analytic():
    e = torch.eye(3, dtype=torch.float64)
    q = k = e[:1]
    # identical pair: extrapolation is the identity; one orthogonal negative
    for lam in (1.0, 1.7):
        got = feature_transform_info_nce(
            q, k, e[1:2], 0.5, pos_lambda=lam, neg_lambda=1.0, permutation=torch.tensor([0])
        )
        assert got.item() == pytest.approx(math.log(1 + math.exp(-2.0)))
    # lambdas of 1: plain MoCo InfoNCE
    g = torch.Generator().manual_seed(1)
    q, k, n = _randn(g, 4, 5), _randn(g, 4, 5), _randn(g, 6, 5)
    qn, kn, nn_ = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(n, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ nn_.T], 1) / 0.2
    plain = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    got = feature_transform_info_nce(
        q, k, n, pos_lambda=1.0, neg_lambda=1.0, permutation=torch.arange(6)
    )
    torch.testing.assert_close(got, plain)
    # the extrapolated positive is harder: the loss grows with lambda when negatives are fixed
    harder = feature_transform_info_nce(
        q, k, n, pos_lambda=1.8, neg_lambda=1.0, permutation=torch.arange(6)
    )
    assert harder > got


def test_kjem_and_uniformity_analytic():
    assert kjem(torch.zeros(5, 2), torch.zeros(5, 3)).item() == 0.0
    far = 100 * torch.eye(4, dtype=torch.float64)
    assert kjem(far, torch.zeros(4, 1)).item() == pytest.approx(-math.log(4))
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert sepclr_uniformity(x).item() == pytest.approx(-4.0)
    assert sepclr_align(x, x).item() == 0.0


# ---------------------------------------------------------------- (c) properties


def test_swav_equivariant_to_samples_and_invariant_to_prototype_order(gen):
    scores = F.normalize(_randn(gen, 6, 3, 5), dim=-1)
    perm = torch.randperm(6, generator=gen)
    base = swav(scores, reduction="none")
    torch.testing.assert_close(swav(scores[perm], reduction="none"), base[perm])
    torch.testing.assert_close(
        swav(scores[:, :, torch.tensor([4, 2, 0, 1, 3])], reduction="none"), base
    )


def test_cacr_scale_invariant_and_equivariant(gen):
    views = _randn(gen, 6, 3, 4)
    perm = torch.randperm(6, generator=gen)
    base = cacr(views, reduction="none")
    torch.testing.assert_close(cacr(3.7 * views, reduction="none"), base)
    torch.testing.assert_close(cacr(views[perm], reduction="none"), base[perm])


def test_amcl_scale_invariant_and_equivariant(gen):
    z1, z2 = _randn(gen, 5, 2, 4), _randn(gen, 5, 2, 4)
    phi = _phi(4)
    perm = torch.randperm(5, generator=gen)
    base = amcl(z1, z2, phi, reduction="none")
    torch.testing.assert_close(amcl(2.5 * z1, 0.3 * z2, phi, reduction="none"), base)
    torch.testing.assert_close(amcl(z1[perm], z2[perm], phi, reduction="none"), base[perm])
    # one head duplicated: the heads are summed
    one = amcl(z1[:, :1], z2[:, :1], phi)
    two = amcl(z1[:, :1].repeat(1, 2, 1), z2[:, :1].repeat(1, 2, 1), phi)
    torch.testing.assert_close(two, 2 * one)


def test_feature_transform_scale_invariant_and_equivariant(gen):
    q, k, n = _randn(gen, 5, 4), _randn(gen, 5, 4), _randn(gen, 6, 4)
    kw: dict[str, Any] = {
        "pos_lambda": 1.4,
        "neg_lambda": 0.6,
        "permutation": torch.randperm(6, generator=gen),
        "reduction": "none",
    }
    base = feature_transform_info_nce(q, k, n, **kw)
    torch.testing.assert_close(feature_transform_info_nce(2 * q, 5 * k, 0.1 * n, **kw), base)
    perm = torch.randperm(5, generator=gen)
    torch.testing.assert_close(feature_transform_info_nce(q[perm], k[perm], n, **kw), base[perm])


def test_kjem_properties(gen):
    c, s = _randn(gen, 6, 3), _randn(gen, 6, 2)
    perm = torch.randperm(6, generator=gen)
    base = kjem(c, s, reduction="none")
    torch.testing.assert_close(kjem(c[perm], s[perm], reduction="none"), base[perm])
    torch.testing.assert_close(kjem(c + 3.0, s - 1.0, reduction="none"), base)  # translation
    torch.testing.assert_close(kjem(s, c), kjem(c, s))  # symmetric in (c, s)
    assert (base <= 0).all()


def test_feature_transform_sampling_is_reproducible_and_in_range():
    a = sample_feature_transform(9, generator=torch.Generator().manual_seed(5))
    b = sample_feature_transform(9, generator=torch.Generator().manual_seed(5))
    assert a[0] == b[0]
    assert a[1] == b[1]
    assert torch.equal(a[2], b[2])
    for seed in range(20):
        pos, neg, _ = sample_feature_transform(3, generator=torch.Generator().manual_seed(seed))
        assert 1.0 <= pos <= 2.0
        assert 0.0 <= neg <= 1.0
    pos, _, _ = sample_feature_transform(
        3, extrapolate=False, generator=torch.Generator().manual_seed(0)
    )
    assert 0.0 <= pos <= 1.0


def test_feature_transform_helpers_per_dimension_lambda(gen):
    q, k = _randn(gen, 3, 4), _randn(gen, 3, 4)
    lam = 1 + torch.rand(3, 4, generator=gen, dtype=torch.float64)
    qh, kh = positive_extrapolation(q, k, lam)
    torch.testing.assert_close(qh, lam * q + (1 - lam) * k)
    torch.testing.assert_close(qh + kh, q + k)  # mixing keeps the pair's sum
    n = _randn(gen, 5, 4)
    torch.testing.assert_close(negative_interpolation(n, 1.0, torch.tensor([4, 3, 2, 1, 0])), n)
    out = feature_transform(q, k, n, 1.0, 0.0, torch.tensor([4, 3, 2, 1, 0]))
    torch.testing.assert_close(out[2], n.flip(0))


def test_swav_module_queue_fills_then_joins_sinkhorn(gen):
    torch.manual_seed(0)
    loss_fn = SwAVLoss(dim=4, num_prototypes=5, queue_length=6).double()
    feats = [_randn(gen, 3, 3, 4) for _ in range(3)]
    loss_fn(feats[0])
    assert bool((loss_fn.queue[:, -1] == 0).all())  # not full yet: not used
    loss_fn(feats[1])
    queue = loss_fn.queue.clone()
    got = loss_fn(feats[2])
    w = F.normalize(loss_fn.prototypes.weight, dim=1)
    scores = F.normalize(feats[2], dim=-1) @ w.T
    expected = swav(scores, queue_scores=queue @ w.T)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        loss_fn.queue[:, :3], F.normalize(feats[2], dim=-1)[:, :2].transpose(0, 1)
    )


def test_feature_transform_module_queue_wraps(gen):
    loss_fn = FeatureTransformLoss(queue_size=5, dim=3).double()
    keys = [_randn(gen, 3, 3) for _ in range(2)]
    for key in keys:
        loss_fn(_randn(gen, 3, 3), key, generator=gen)
    expected = F.normalize(torch.cat(keys), dim=1)
    torch.testing.assert_close(loss_fn.queue[:3], expected[[5, 1, 2]])
    torch.testing.assert_close(loss_fn.queue[3:], expected[3:5])
    assert int(loss_fn.queue_ptr) == 1
    # with explicit negatives the queue is left alone
    before = loss_fn.queue.clone()
    loss_fn(_randn(gen, 3, 3), _randn(gen, 3, 3), _randn(gen, 4, 3), generator=gen)
    torch.testing.assert_close(loss_fn.queue, before)


def test_modules_match_functions(gen):
    views = _randn(gen, 5, 3, 4)
    assert CACRLoss(alpha=2.0)(views).item() == pytest.approx(cacr(views, alpha=2.0).item())
    z1, z2 = _randn(gen, 4, 2, 4), _randn(gen, 4, 2, 4)
    mod = AMCLLoss(4, 2, top_k=3).double()
    assert mod(z1, z2).item() == pytest.approx(amcl(z1, z2, mod.phi, top_k=3).item())
    c, s = _randn(gen, 5, 3), _randn(gen, 5, 2)
    assert KJEMLoss(0.7)(c, s).item() == pytest.approx(kjem(c, s, 0.7).item())
    assert SepCLRUniformityLoss()(c).item() == pytest.approx(sepclr_uniformity(c).item())
    heads = AMCLProjectionHeads(6, 4, num_heads=3, hidden_dim=8)
    out = heads(torch.randn(5, 6))
    assert out.shape == (5, 3, 4)
    assert not torch.allclose(out[:, 0], out[:, 1])  # independent weights


# ---------------------------------------------------------------- (d) gradcheck


def test_gradchecks(gen):
    high = F.normalize(_randn(gen, 3, 2, 4), dim=-1)  # codes come from these (no gradient)
    low = _randn(gen, 3, 2, 4).requires_grad_()

    def swav_low(x):
        return swav(torch.cat([high, x], dim=1), 0.5)

    assert torch.autograd.gradcheck(swav_low, (low,))

    views = _randn(gen, 4, 3, 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: cacr(v, pos_temperature=0.7), (views,))

    z1, z2 = _randn(gen, 3, 2, 3).requires_grad_(), _randn(gen, 3, 2, 3).requires_grad_()
    phi = _phi(3)
    assert torch.autograd.gradcheck(
        lambda a, b: amcl(a, b, phi, beta=0.01, tau_min=0.1, top_k=2), (z1, z2)
    )

    q, k = _randn(gen, 3, 4).requires_grad_(), _randn(gen, 3, 4).requires_grad_()
    n = _randn(gen, 5, 4).requires_grad_()
    perm = torch.randperm(5, generator=gen)
    assert torch.autograd.gradcheck(
        lambda a, b, c: feature_transform_info_nce(
            a, b, c, 0.3, pos_lambda=1.5, neg_lambda=0.4, permutation=perm
        ),
        (q, k, n),
    )

    c, s = _randn(gen, 4, 3).requires_grad_(), _randn(gen, 4, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: kjem(a, b, 0.8), (c, s))
    assert torch.autograd.gradcheck(lambda a: sepclr_uniformity(a, 0.5), (c,))
    assert torch.autograd.gradcheck(lambda a, b: sepclr_align(a, b), (c, c.detach().flip(0)))


# ---------------------------------------------------------------- (e) SGD lowers the loss


def _swav_case():
    torch.manual_seed(0)
    mod = SwAVLoss(dim=6, num_prototypes=4)
    x = torch.nn.Parameter(torch.randn(8, 3, 6))
    return [x, *mod.parameters()], lambda: mod(x), 0.5


def _cacr_case():
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.randn(8, 3, 6))
    return [x], lambda: cacr(x), 0.5


def _amcl_case():
    torch.manual_seed(0)
    mod = AMCLLoss(6, 2, beta=1e-3, tau_min=0.05)
    a, b = torch.nn.Parameter(torch.randn(8, 2, 6)), torch.nn.Parameter(torch.randn(8, 2, 6))
    return [a, b, *mod.parameters()], lambda: mod(a, b), 0.05


def _ft_case():
    torch.manual_seed(0)
    q, k = torch.nn.Parameter(torch.randn(8, 6)), torch.nn.Parameter(torch.randn(8, 6))
    negs = torch.randn(16, 6)
    g = torch.Generator().manual_seed(0)
    return [q, k], lambda: feature_transform_info_nce(q, k, negs, generator=g), 0.5


def _kjem_case():
    torch.manual_seed(0)
    c, s = torch.nn.Parameter(torch.randn(8, 3)), torch.nn.Parameter(torch.randn(8, 2))
    return [c, s], lambda: kjem(c, s) - sepclr_uniformity(c) + sepclr_align(c, c.flip(0)), 0.1


@pytest.mark.parametrize("case", [_swav_case, _cacr_case, _amcl_case, _ft_case, _kjem_case])
def test_sgd_lowers_loss(case):
    params, loss_fn, lr = case()
    opt = torch.optim.SGD(params, lr=lr)
    first = loss_fn().item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < first


# ---------------------------------------------------------------- (f) validation


def test_validation_errors_swav():
    s = torch.randn(4, 3, 5)
    cases = [
        (lambda: swav(torch.randn(4, 5)), r"shape \(B, V, K\).*\(4, 5\)"),
        (lambda: swav(torch.randn(4, 1, 5)), r"V >= 2"),
        (lambda: swav(s, crops_for_assign=(0, 3)), r"crops_for_assign"),
        (lambda: swav(s, crops_for_assign=(1, 1)), r"crops_for_assign"),
        (lambda: swav(s, crops_for_assign=()), r"crops_for_assign"),
        (lambda: swav(s, queue_scores=torch.randn(2, 6)), r"queue_scores"),
        (lambda: swav(s, queue_scores=torch.randn(3, 6, 5)), r"queue_scores.*size 2"),
        (lambda: swav(s, queue_scores=torch.randn(2, 6, 4)), r"queue_scores.*size 5"),
        (lambda: swav(s, 0.0), r"temperature"),
        (lambda: swav(s, epsilon=-1.0), r"epsilon"),
        (lambda: swav(s, sinkhorn_iterations=0), r"sinkhorn_iterations"),
        (lambda: swav(s, reduction="avg"), r"reduction"),
        (lambda: sinkhorn_knopp(torch.randn(3)), r"\(B, K\)"),
        (lambda: SwAVLoss(0), r"dim"),
        (lambda: SwAVLoss(4, 0), r"num_prototypes"),
        (lambda: SwAVLoss(4, temperature=-1.0), r"temperature"),
        (lambda: SwAVLoss(4, queue_length=-1), r"queue_length"),
        (lambda: SwAVLoss(4, crops_for_assign=(-1,)), r"crops_for_assign"),
        (lambda: SwAVLoss(4, reduction="mena"), r"Did you mean 'mean'"),
        (lambda: SwAVLoss(4)(torch.randn(4, 3, 5)), r"size 4 in dimension 2"),
        (lambda: SwAVLoss(5, queue_length=4, crops_for_assign=(0, 3))(s), r"more than 3 crops"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_validation_errors_cacr():
    v = torch.randn(4, 3, 5)
    cases = [
        (lambda: cacr(torch.randn(4, 5)), r"\(B, V, D\).*\(4, 5\)"),
        (lambda: cacr(torch.randn(4, 1, 5)), r"V >= 2"),
        (lambda: cacr(torch.randn(1, 2, 5)), r"at least 2 samples"),
        (lambda: cacr(v, views_all=torch.randn(8, 2, 5)), r"views_all.*\(N, 3, 5\)"),
        (lambda: cacr(v, views_all=torch.randn(8, 5)), r"views_all"),
        (lambda: cacr(v, views_all=torch.randn(8, 3, 5), offset=5), r"offset"),
        (lambda: cacr(v, alpha=0.0), r"alpha"),
        (lambda: cacr(v, beta=-1.0), r"beta"),
        (lambda: cacr(v, pos_temperature=-0.1), r"pos_temperature"),
        (lambda: cacr(v, neg_temperature=-0.1), r"neg_temperature"),
        (lambda: cacr(v, reduction="nope"), r"reduction"),
        (lambda: CACRLoss(alpha=-1.0), r"alpha"),
        (lambda: CACRLoss(neg_temperature=-1.0), r"neg_temperature"),
        (lambda: CACRLoss(reduction="x"), r"reduction"),
        (lambda: CACRLoss()(torch.randn(4, 5)), r"\(B, V, D\)"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_validation_errors_amcl():
    z = torch.randn(4, 2, 5)
    phi = torch.nn.Identity()
    cases = [
        (lambda: amcl(torch.randn(4, 5), z, phi), r"\(B, C, D\).*\(4, 5\)"),
        (lambda: amcl(z, torch.randn(4, 2, 6), phi), r"same shape.*\(4, 2, 6\)"),
        (lambda: amcl(torch.randn(1, 2, 5), torch.randn(1, 2, 5), phi), r"at least 2 samples"),
        (lambda: amcl(z, z, phi, z1_all=z), r"given together"),
        (
            lambda: amcl(z, z, phi, z1_all=torch.randn(8, 3, 5), z2_all=torch.randn(8, 3, 5)),
            r"z1_all.*\(N, 2, 5\)",
        ),
        (
            lambda: amcl(z, z, phi, z1_all=torch.randn(8, 2, 5), z2_all=torch.randn(6, 2, 5)),
            r"same shape",
        ),
        (lambda: amcl(z, z, phi, z1_all=z, z2_all=z, offset=1), r"offset"),
        (lambda: amcl(z, z, phi, beta=-1.0), r"beta"),
        (lambda: amcl(z, z, phi, tau_min=0.0), r"tau_min"),
        (lambda: amcl(z, z, phi, tau_min=2.0, tau_max=1.0), r"tau_min"),
        (lambda: amcl(z, z, phi, top_k=0), r"top_k"),
        (lambda: amcl(z, z, phi, reduction="x"), r"reduction"),
        (lambda: AMCLLoss(0), r"dim"),
        (lambda: AMCLLoss(5, 0), r"num_heads"),
        (lambda: AMCLLoss(5, hidden_dim=0), r"hidden_dim"),
        (lambda: AMCLLoss(5, top_k=0), r"top_k"),
        (lambda: AMCLLoss(5, tau_max=0.0), r"tau_min"),
        (lambda: AMCLLoss(5, beta=-0.1), r"beta"),
        (lambda: AMCLLoss(5, reduction="x"), r"reduction"),
        (lambda: AMCLLoss(5, num_heads=3)(z, z), r"size 3 in dimension 1"),
        (lambda: AMCLLoss(6, num_heads=2)(z, z), r"size 6 in dimension 2"),
        (lambda: AMCLProjectionHeads(0, 4), r"in_dim"),
        (lambda: AMCLProjectionHeads(5, 4)(torch.randn(3, 6)), r"size 5 in dimension 1"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_validation_errors_feature_transform():
    q, n = torch.randn(4, 5), torch.randn(6, 5)
    perm = torch.arange(6)
    cases = [
        (lambda: feature_transform_info_nce(torch.randn(4), q, n), r"query.*\(B, D\)"),
        (lambda: feature_transform_info_nce(q, torch.randn(4, 6), n), r"same shape.*\(4, 6\)"),
        (lambda: feature_transform_info_nce(q, q, torch.randn(6, 4)), r"negatives.*size 5"),
        (lambda: feature_transform_info_nce(q, q, torch.randn(6)), r"negatives"),
        (lambda: feature_transform_info_nce(q, q, torch.randn(0, 5)), r"at least 1 negative"),
        (
            lambda: feature_transform_info_nce(q, q, n, permutation=torch.arange(5)),
            r"permutation.*size 6",
        ),
        (
            lambda: feature_transform_info_nce(
                q, q, n, pos_lambda=torch.ones(3, 5), neg_lambda=1.0, permutation=perm
            ),
            r"broadcastable",
        ),
        (lambda: feature_transform_info_nce(q, q, n, 0.0), r"temperature"),
        (lambda: feature_transform_info_nce(q, q, n, pos_alpha=0.0), r"pos_alpha"),
        (lambda: feature_transform_info_nce(q, q, n, neg_alpha=-1.0), r"neg_alpha"),
        (lambda: feature_transform_info_nce(q, q, n, reduction="x"), r"reduction"),
        (lambda: positive_extrapolation(q, torch.randn(3, 5), 1.5), r"same shape"),
        (lambda: negative_interpolation(n, 0.5, torch.arange(4)), r"permutation"),
        (lambda: negative_interpolation(n, torch.ones(2, 5), perm), r"broadcastable"),
        (lambda: sample_feature_transform(0), r"num_negatives"),
        (lambda: FeatureTransformLoss(queue_size=-1), r"queue_size"),
        (lambda: FeatureTransformLoss(queue_size=4), r"dim"),
        (lambda: FeatureTransformLoss(temperature=-1.0), r"temperature"),
        (lambda: FeatureTransformLoss(reduction="x"), r"reduction"),
        (lambda: FeatureTransformLoss()(q, q), r"no queue"),
        (lambda: FeatureTransformLoss(queue_size=4, dim=3)(q, q), r"key.*size 3"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_validation_errors_kjem():
    c, s = torch.randn(4, 3), torch.randn(4, 2)
    cases = [
        (lambda: kjem(torch.randn(4), s), r"`c`.*\(B, D_c\)"),
        (lambda: kjem(c, torch.randn(4)), r"`s`.*\(B, D_s\)"),
        (lambda: kjem(c, torch.randn(5, 2)), r"`s`.*size 4 in dimension 0"),
        (lambda: kjem(c, s, c_all=c), r"given together"),
        (lambda: kjem(c, s, c_all=torch.randn(8, 2), s_all=torch.randn(8, 2)), r"c_all"),
        (lambda: kjem(c, s, c_all=torch.randn(8, 3), s_all=torch.randn(7, 2)), r"s_all"),
        (lambda: kjem(c, s, c_all=torch.randn(0, 3), s_all=torch.randn(0, 2)), r"at least 1"),
        (lambda: kjem(c, s, 0.0), r"temperature"),
        (lambda: kjem(c, s, reduction="x"), r"reduction"),
        (lambda: sepclr_align(c, s), r"same shape"),
        (lambda: sepclr_align(torch.randn(3), torch.randn(3)), r"\(B, D\)"),
        (lambda: sepclr_align(c, c, -1.0), r"temperature"),
        (lambda: sepclr_uniformity(torch.randn(1, 3)), r"at least 2"),
        (lambda: sepclr_uniformity(torch.randn(3)), r"\(B, D\)"),
        (lambda: sepclr_uniformity(c, 0.0), r"temperature"),
        (lambda: KJEMLoss(0.0), r"temperature"),
        (lambda: KJEMLoss(reduction="x"), r"reduction"),
        (lambda: KJEMLoss(gather_distributed=True)(c, torch.randn(5, 2)), r"`s`"),
        (lambda: SepCLRUniformityLoss(-1.0), r"temperature"),
        (lambda: SepCLRUniformityLoss(gather_distributed=True)(torch.randn(3)), r"\(B, D\)"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


# ---------------------------------------------------------------- (g) reductions, dtypes, amp


def _calls(gen: torch.Generator, dtype: torch.dtype):
    """Each loss as ``reduction -> value`` on fixed inputs of ``dtype``."""
    scores = F.normalize(_randn(gen, 5, 3, 6, dtype=dtype), dim=-1)
    views = _randn(gen, 5, 3, 4, dtype=dtype)
    z1, z2 = _randn(gen, 5, 2, 4, dtype=dtype), _randn(gen, 5, 2, 4, dtype=dtype)
    phi = _phi(4, dtype=torch.float32 if dtype != torch.float64 else torch.float64)
    q, k, n = (
        _randn(gen, 5, 4, dtype=dtype),
        _randn(gen, 5, 4, dtype=dtype),
        _randn(gen, 7, 4, dtype=dtype),
    )
    perm = torch.randperm(7, generator=gen)
    c, s = _randn(gen, 5, 3, dtype=dtype), _randn(gen, 5, 2, dtype=dtype)
    return {
        "swav": lambda r: swav(scores, reduction=r),
        "cacr": lambda r: cacr(views, reduction=r),
        "amcl": lambda r: amcl(z1, z2, phi, tau_min=0.05, reduction=r),
        "ft": lambda r: feature_transform_info_nce(
            q, k, n, pos_lambda=1.3, neg_lambda=0.5, permutation=perm, reduction=r
        ),
        "kjem": lambda r: kjem(c, s, reduction=r),
        "align": lambda r: sepclr_align(c, c.flip(0), reduction=r),
    }


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reductions_consistent(gen, reduction):
    for name, call in _calls(gen, torch.float64).items():
        per = call("none")
        assert per.shape == (5,), name
        value = call(reduction)
        expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
        torch.testing.assert_close(value, expected, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes(dtype):
    got = _calls(torch.Generator().manual_seed(2), dtype)
    ref = _calls(torch.Generator().manual_seed(2), torch.float64)
    for name in got:
        value = got[name]("mean")
        assert value.dtype == dtype, name
        torch.testing.assert_close(
            value.double(), ref[name]("mean"), rtol=1e-4, atol=1e-5, msg=name
        )


def test_bf16_inputs_under_autocast_match_float32(gen):
    """bfloat16 inputs under autocast: the losses upcast, so they equal the float32 value."""
    calls_bf16 = _calls(torch.Generator().manual_seed(4), torch.bfloat16)
    calls_f32 = _calls(torch.Generator().manual_seed(4), torch.float32)
    for name in calls_bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = calls_bf16[name]("mean")
        assert low.dtype == torch.float32, name
        assert torch.isfinite(low), name
        # the float32 inputs are not the rounded ones: only bfloat16 rounding separates them
        torch.testing.assert_close(low, calls_f32[name]("mean"), rtol=0.05, atol=0.05, msg=name)


def test_modules_under_bf16_autocast_are_finite_and_close(gen):
    torch.manual_seed(0)
    feats = torch.randn(6, 3, 8)
    modules = {
        "swav": (SwAVLoss(8, 5), (feats,)),
        "cacr": (CACRLoss(), (feats,)),
        "amcl": (AMCLLoss(8, 3, tau_min=0.05), (feats, feats.flip(0))),
        "ft": (FeatureTransformLoss(), (feats[:, 0], feats[:, 1], feats[:, 2])),
        "kjem": (KJEMLoss(), (feats[:, 0], feats[:, 1])),
    }
    for name, (mod, args) in modules.items():
        kwargs = {"generator": torch.Generator().manual_seed(0)} if name == "ft" else {}
        full = mod(*args, **kwargs)
        kwargs = {"generator": torch.Generator().manual_seed(0)} if name == "ft" else {}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = mod(*(a.bfloat16() for a in args), **kwargs)
        assert torch.isfinite(low), name
        torch.testing.assert_close(low.float(), full, rtol=0.05, atol=0.05, msg=name)
