"""The InfoNCE family against naive loops over the papers' formulas.

Each loss gets: (a) a reference comparison, (b) analytic values, (c) properties, (d) gradcheck,
(e) a few SGD steps lower it, (f) every validation path, (g) reductions, dtypes and autocast.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from shared.losses import (
    AlignmentLoss,
    DCLLoss,
    DCLWLoss,
    InfoNCELoss,
    NTXentLoss,
    SupConLoss,
    UniformityLoss,
    alignment,
    dcl,
    dclw,
    info_nce,
    nt_xent,
    sup_con,
    uniformity,
)

# ---------------------------------------------------------------- naive references (loops)


def _cos(a: torch.Tensor, b: torch.Tensor, normalize: bool = True) -> float:
    if normalize:
        return float(a @ b / (a.norm() * b.norm()))
    return float(a @ b)


def ref_nt_xent(z1, z2, tau, normalize=True):
    """SimCLR eq. 1: l(i, j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t), over all 2B views."""
    z = torch.cat([z1, z2]).double()
    n = z.shape[0]
    b = n // 2
    out = []
    for i in range(n):
        j = (i + b) % n
        denom = sum(math.exp(_cos(z[i], z[k], normalize) / tau) for k in range(n) if k != i)
        out.append(-math.log(math.exp(_cos(z[i], z[j], normalize) / tau) / denom))
    return torch.tensor(out, dtype=torch.float64)


def ref_info_nce(a, c, pos, tau, exclude=None, extra=None, normalize=True):
    out = []
    for i in range(a.shape[0]):
        terms = [
            _cos(a[i], c[m], normalize) / tau
            for m in range(c.shape[0])
            if exclude is None or not exclude[i, m]
        ]
        if extra is not None:
            terms += [_cos(a[i], extra[k], normalize) / tau for k in range(extra.shape[0])]
        log_denom = math.log(sum(math.exp(t) for t in terms))
        positives = [m for m in range(c.shape[0]) if pos[i, m]]
        if not positives:
            out.append(float("nan"))
            continue
        out.append(
            -sum(_cos(a[i], c[p], normalize) / tau - log_denom for p in positives) / len(positives)
        )
    return torch.tensor(out, dtype=torch.float64)


def ref_sup_con(features, labels, tau):
    """Khosla et al. eq. 2 (L_out), every view an anchor."""
    b, v, _ = features.shape
    views = [(s, k) for k in range(v) for s in range(b)]  # view-major order
    out = []
    for s, k in views:
        anchor = features[s, k]
        others = [(t, m) for (t, m) in views if (t, m) != (s, k)]
        denom = sum(math.exp(_cos(anchor, features[t, m]) / tau) for t, m in others)
        positives = [(t, m) for t, m in others if labels[t] == labels[s]]
        if not positives:
            out.append(0.0)
            continue
        out.append(
            -sum(
                math.log(math.exp(_cos(anchor, features[t, m]) / tau) / denom) for t, m in positives
            )
            / len(positives)
        )
    return torch.tensor(out, dtype=torch.float64)


def ref_dcl(z1, z2, tau, weights=None):
    """Yeh et al. eq. 6: positive term, log-sum-exp over negatives of both views only."""
    z = torch.cat([z1, z2]).double()
    n = z.shape[0]
    b = n // 2
    out = []
    for i in range(n):
        j = (i + b) % n
        w = 1.0 if weights is None else float(weights[i % b])
        denom = sum(math.exp(_cos(z[i], z[k]) / tau) for k in range(n) if k not in (i, j))
        out.append(-w * _cos(z[i], z[j]) / tau + math.log(denom))
    return torch.tensor(out, dtype=torch.float64)


def ref_vmf_weights(z1, z2, sigma):
    s = [_cos(z1[i], z2[i]) for i in range(z1.shape[0])]
    mean = sum(math.exp(x / sigma) for x in s) / len(s)
    return [2 - math.exp(x / sigma) / mean for x in s]


def ref_uniformity(x, t):
    x = F.normalize(x.double(), dim=1)
    n = x.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return math.log(
        sum(math.exp(-t * float((x[i] - x[j]).pow(2).sum())) for i, j in pairs) / len(pairs)
    )


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def randn(*shape, gen, dtype=torch.float64, requires_grad=False):
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_(requires_grad)


# ---------------------------------------------------------------- (a) references


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_reference(gen, normalize, tau):
    z1, z2 = randn(5, 7, gen=gen), randn(5, 7, gen=gen)
    if not normalize:
        z1, z2 = z1 * 0.3, z2 * 0.3
    expected = ref_nt_xent(z1, z2, tau, normalize)
    got = nt_xent(z1, z2, tau, normalize=normalize, reduction="none")
    torch.testing.assert_close(got, expected.to(got.dtype))
    torch.testing.assert_close(nt_xent(z1, z2, tau, normalize=normalize), expected.mean())


def test_info_nce_matches_reference_multi_positive_exclude_and_queue(gen):
    a, c, q = randn(4, 6, gen=gen), randn(9, 6, gen=gen), randn(3, 6, gen=gen)
    pos = torch.rand(4, 9, generator=gen) < 0.3
    pos[0] = False  # an anchor without a positive
    pos[1, 2] = True
    exclude = (torch.rand(4, 9, generator=gen) < 0.2) & ~pos
    expected = ref_info_nce(a, c, pos, 0.2, exclude, q)
    got = info_nce(a, c, pos, 0.2, exclude_mask=exclude, extra_negatives=q, reduction="none")
    valid = ~torch.isnan(expected)
    torch.testing.assert_close(got[valid], expected[valid].double())
    assert got[0].item() == 0.0
    mean = info_nce(a, c, pos, 0.2, exclude_mask=exclude, extra_negatives=q)
    torch.testing.assert_close(mean, expected[valid].mean().double())


def test_info_nce_dot_product(gen):
    a, c = randn(3, 4, gen=gen) * 0.5, randn(5, 4, gen=gen) * 0.5
    pos = torch.zeros(3, 5, dtype=torch.bool)
    pos[torch.arange(3), torch.arange(3)] = True
    expected = ref_info_nce(a, c, pos, 1.0, normalize=False)
    got = info_nce(a, c, pos, 1.0, normalize=False, reduction="none")
    torch.testing.assert_close(got, expected.double())
    # With one positive and no exclusions this is plain cross-entropy over the logits.
    torch.testing.assert_close(got, F.cross_entropy(a @ c.T, torch.arange(3), reduction="none"))


@pytest.mark.parametrize("v", [1, 2, 3])
def test_sup_con_matches_reference(gen, v):
    f = randn(6, v, 5, gen=gen)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])  # label 3 is a singleton
    expected = ref_sup_con(f, labels, 0.1)
    got = sup_con(f, labels, 0.1, reduction="none")
    torch.testing.assert_close(got, expected.double())
    has_pos = torch.tensor([True, True, True, v > 1, True, v > 1]).repeat(v)
    torch.testing.assert_close(sup_con(f, labels, 0.1), expected[has_pos].mean().double())


def test_sup_con_without_labels_is_nt_xent(gen):
    z1, z2 = randn(5, 6, gen=gen), randn(5, 6, gen=gen)
    f = torch.stack([z1, z2], dim=1)
    torch.testing.assert_close(
        sup_con(f, None, 0.3, reduction="none"), nt_xent(z1, z2, 0.3, reduction="none")
    )


def test_sup_con_base_temperature_scales(gen):
    f, labels = randn(4, 2, 3, gen=gen), torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(
        sup_con(f, labels, 0.07, base_temperature=0.14), 0.5 * sup_con(f, labels, 0.07)
    )


def test_dcl_and_dclw_match_reference(gen):
    z1, z2 = randn(5, 4, gen=gen), randn(5, 4, gen=gen)
    torch.testing.assert_close(dcl(z1, z2, 0.2, reduction="none"), ref_dcl(z1, z2, 0.2).double())
    w = ref_vmf_weights(z1, z2, 0.5)
    torch.testing.assert_close(
        dclw(z1, z2, 0.2, 0.5, reduction="none"), ref_dcl(z1, z2, 0.2, w).double()
    )


def test_alignment_and_uniformity_match_reference(gen):
    x, y = randn(6, 3, gen=gen), randn(6, 3, gen=gen)
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    torch.testing.assert_close(alignment(x, y), (xn - yn).norm(dim=1).pow(2).mean())
    torch.testing.assert_close(alignment(x, y, alpha=1), (xn - yn).norm(dim=1).mean())
    assert uniformity(x).item() == pytest.approx(ref_uniformity(x, 2), rel=1e-10)
    assert uniformity(x, t=0.5).item() == pytest.approx(ref_uniformity(x, 0.5), rel=1e-10)
    # Wang & Isola's reference code: pdist -> pow(2) -> mul(-t) -> exp -> mean -> log.
    torch.testing.assert_close(
        uniformity(x), torch.pdist(xn, p=2).pow(2).mul(-2).exp().mean().log()
    )
    per = uniformity(x, reduction="none")
    torch.testing.assert_close(torch.logsumexp(per, 0) - math.log(6), uniformity(x))


# ---------------------------------------------------------------- (b) analytic values


def test_nt_xent_analytic_orthogonal():
    # Orthogonal samples, identical views: positive sim 1, 2B - 2 negatives with sim 0.
    b, tau = 4, 0.5
    z = torch.eye(b)
    expected = -1 / tau + math.log(math.exp(1 / tau) + 2 * b - 2)
    assert nt_xent(z, z, tau).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_all_identical_is_log_2b_minus_1():
    z = torch.ones(3, 4)
    assert nt_xent(z, z, 0.1).item() == pytest.approx(math.log(5), rel=1e-6)


def test_alignment_zero_and_uniformity_antipodal():
    x = torch.randn(4, 3)
    assert alignment(x, 2 * x).item() == pytest.approx(0.0, abs=1e-6)
    antipodal = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    assert uniformity(antipodal).item() == pytest.approx(-8.0)


# ---------------------------------------------------------------- (c) properties


def test_nt_xent_symmetric_scale_and_permutation_invariant(gen):
    z1, z2 = randn(6, 5, gen=gen), randn(6, 5, gen=gen)
    base = nt_xent(z1, z2)
    torch.testing.assert_close(nt_xent(z2, z1), base)
    torch.testing.assert_close(nt_xent(3 * z1, 0.5 * z2), base)
    perm = torch.randperm(6, generator=gen)
    per = nt_xent(z1, z2, reduction="none")
    per_perm = nt_xent(z1[perm], z2[perm], reduction="none")
    torch.testing.assert_close(per_perm, torch.cat([per[:6][perm], per[6:][perm]]))


def test_sup_con_permutation_equivariant(gen):
    f, labels = randn(6, 2, 4, gen=gen), torch.tensor([0, 1, 2, 0, 1, 2])
    perm = torch.randperm(6, generator=gen)
    per = sup_con(f, labels, reduction="none").view(2, 6)
    per_perm = sup_con(f[perm], labels[perm], reduction="none").view(2, 6)
    torch.testing.assert_close(per_perm, per[:, perm])


def test_dcl_below_nt_xent(gen):
    # Removing the positive from the denominator can only lower each term.
    z1, z2 = randn(5, 4, gen=gen), randn(5, 4, gen=gen)
    assert bool((dcl(z1, z2, 0.5, reduction="none") < nt_xent(z1, z2, 0.5, reduction="none")).all())


# ---------------------------------------------------------------- (d) gradcheck


def _gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_gradchecks(gen):
    z1, z2 = randn(4, 3, gen=gen, requires_grad=True), randn(4, 3, gen=gen, requires_grad=True)
    _gradcheck(lambda a, b: nt_xent(a, b, 0.5), z1, z2)
    _gradcheck(lambda a, b: nt_xent(a, b, 0.5, normalize=False, reduction="none"), z1, z2)
    _gradcheck(lambda a, b: dcl(a, b, 0.5), z1, z2)
    _gradcheck(lambda a, b: dclw(a, b, 0.5, 0.5), z1, z2)
    _gradcheck(lambda a, b: alignment(a, b), z1, z2)
    _gradcheck(lambda a: uniformity(a), z1)
    _gradcheck(lambda a: uniformity(a, reduction="none"), z1)
    f = randn(4, 2, 3, gen=gen, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1])
    _gradcheck(lambda x: sup_con(x, labels, 0.5), f)
    c = randn(5, 3, gen=gen, requires_grad=True)
    pos = torch.zeros(4, 5, dtype=torch.bool)
    pos[:, 0] = True
    pos[1, 3] = True
    _gradcheck(lambda a, b: info_nce(a, b, pos, 0.5, reduction="sum"), z1, c)


# ---------------------------------------------------------------- (e) optimisation lowers it


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda a, b: nt_xent(a, b, 0.5),
        lambda a, b: dcl(a, b, 0.5),
        lambda a, b: dclw(a, b, 0.5),
        lambda a, b: sup_con(torch.stack([a, b], 1), torch.tensor([0, 1, 0, 1, 2, 2])),
        lambda a, b: alignment(a, b) + uniformity(a),
    ],
    ids=["nt_xent", "dcl", "dclw", "sup_con", "align+unif"],
)
def test_sgd_lowers_loss(loss_fn):
    torch.manual_seed(0)
    a = torch.randn(6, 8, requires_grad=True)
    b = torch.randn(6, 8, requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=0.5)
    first = loss_fn(a, b).item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(a, b)
        loss.backward()
        opt.step()
    assert loss_fn(a, b).item() < first - 0.05


# ---------------------------------------------------------------- (f) validation


def test_validation_errors():
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"same shape \(B, D\), but got \(4, 8\) and \(4, 7\)"):
        nt_xent(z, torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"`z1` to have shape \(B, D\)"):
        nt_xent(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="`temperature` to be > 0"):
        nt_xent(z, z, 0.0)
    with pytest.raises(ValueError, match="Did you mean 'mean'"):
        nt_xent(z, z, reduction="meen")
    with pytest.raises(ValueError, match=r"`positive_mask` to have shape \(B, M\)"):
        info_nce(z, z, torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="`positive_mask` to be bool"):
        info_nce(z, z, torch.ones(4, 4))
    eye = torch.eye(4, dtype=torch.bool)
    with pytest.raises(ValueError, match="both positive and excluded"):
        info_nce(z, z, eye, exclude_mask=eye)
    with pytest.raises(ValueError, match="finite"):
        info_nce(torch.full((4, 8), float("nan")), z, torch.eye(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"`features` to have shape \(B, V, D\)"):
        sup_con(z)
    with pytest.raises(ValueError, match=r"`labels` to have shape \(B,\)"):
        sup_con(z[:, None], torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        dcl(z[:1], z[:1])
    with pytest.raises(ValueError, match="`sigma` to be > 0"):
        dclw(z, z, sigma=-1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        uniformity(z[:1])
    with pytest.raises(ValueError, match="`alpha` to be > 0"):
        alignment(z, z, alpha=0)
    with pytest.raises(ValueError, match="`dim`"):
        InfoNCELoss(queue_size=4)
    with pytest.raises(ValueError, match="`temperature` to be > 0"):
        NTXentLoss(temperature=-1)


# ---------------------------------------------------------------- (g) reductions, dtypes, AMP


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_consistent(gen, reduction):
    z1, z2 = randn(4, 5, gen=gen), randn(4, 5, gen=gen)
    per = {
        "nt_xent": nt_xent(z1, z2, reduction="none"),
        "dcl": dcl(z1, z2, reduction="none"),
        "alignment": alignment(z1, z2, reduction="none"),
    }
    for name, values in per.items():
        fns: dict[str, Callable[..., torch.Tensor]] = {
            "nt_xent": nt_xent,
            "dcl": dcl,
            "alignment": alignment,
        }
        fn = fns[name]
        got = fn(z1, z2, reduction=reduction)
        expected = {"mean": values.mean(), "sum": values.sum(), "none": values}[reduction]
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes(gen, dtype):
    z1, z2 = randn(4, 5, gen=gen, dtype=dtype), randn(4, 5, gen=gen, dtype=dtype)
    for fn in (nt_xent, dcl, dclw, alignment):
        assert fn(z1, z2).dtype == dtype
    assert sup_con(torch.stack([z1, z2], 1)).dtype == dtype


@pytest.mark.parametrize("tau", [0.01, 0.1])
def test_bf16_autocast_is_finite_and_close(gen, tau):
    z1, z2 = (
        randn(16, 32, gen=gen, dtype=torch.float32),
        randn(16, 32, gen=gen, dtype=torch.float32),
    )
    f = torch.stack([z1, z2], 1)
    labels = torch.arange(16) % 4
    cases = {
        "nt_xent": lambda: nt_xent(z1, z2, tau),
        "sup_con": lambda: sup_con(f, labels, tau),
        "dcl": lambda: dcl(z1, z2, tau),
        "uniformity": lambda: uniformity(z1),
    }
    for name, fn in cases.items():
        full = fn()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fn()
        assert torch.isfinite(low), name
        # bf16 keeps ~3 significant digits; the logits are scaled by 1/tau.
        assert low.item() == pytest.approx(full.item(), rel=0.05, abs=0.05 / tau * 0.1), name


def test_float16_inputs_small_temperature_stay_finite(gen):
    z1 = randn(8, 16, gen=gen, dtype=torch.float32).half()
    z2 = randn(8, 16, gen=gen, dtype=torch.float32).half()
    assert torch.isfinite(nt_xent(z1, z2, 0.01))  # exp(1/0.01) would overflow in float16


# ---------------------------------------------------------------- modules


def test_modules_match_functions(gen):
    z1, z2 = randn(4, 5, gen=gen), randn(4, 5, gen=gen)
    torch.testing.assert_close(NTXentLoss(0.3)(z1, z2), nt_xent(z1, z2, 0.3))
    torch.testing.assert_close(DCLLoss(0.3)(z1, z2), dcl(z1, z2, 0.3))
    torch.testing.assert_close(DCLWLoss(0.3, 0.4)(z1, z2), dclw(z1, z2, 0.3, 0.4))
    f, labels = torch.stack([z1, z2], 1), torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(SupConLoss(0.2)(f, labels), sup_con(f, labels, 0.2))
    torch.testing.assert_close(AlignmentLoss()(z1, z2), alignment(z1, z2))
    torch.testing.assert_close(UniformityLoss()(z1), uniformity(z1))


def test_moco_queue_adds_negatives_and_wraps(gen):
    loss = InfoNCELoss(temperature=0.2, queue_size=5, dim=3).double()
    q1, k1 = randn(2, 3, gen=gen), randn(2, 3, gen=gen)
    eye = torch.eye(2, dtype=torch.bool)
    first = loss.moco(q1, k1)
    torch.testing.assert_close(first, info_nce(q1, k1, eye, 0.2))
    q2, k2 = randn(2, 3, gen=gen), randn(2, 3, gen=gen)
    second = loss.moco(q2, k2)
    expected = info_nce(q2, k2, eye, 0.2, extra_negatives=F.normalize(k1, dim=1))
    torch.testing.assert_close(second, expected)
    for _ in range(3):
        loss.enqueue(randn(2, 3, gen=gen))
    assert int(loss.queue_len) == 5
    assert int(loss.queue_ptr) == (2 * 2 + 3 * 2) % 5
