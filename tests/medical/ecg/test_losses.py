"""ProtoECGNet loss terms against naive loops of their formulas (methods.md 1.5), and gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medical.ecg.losses import (
    LossConfig,
    class_counts_pos_weight,
    clustering_separation,
    cooccurrence_contrastive,
    diversity,
    jaccard_matrix,
    prototype_loss,
    sparsity,
)
from medical.ecg.model import prototype_identity
from shared.losses import info_nce


def _inputs(b=5, c=3, ppc=2, d=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    p = c * ppc
    sims = torch.randn(b, p, generator=g, dtype=dtype)
    y = (torch.rand(b, c, generator=g) < 0.5).to(dtype)
    y[0] = 0  # an ECG without any label
    protos = torch.randn(p, d, 3, generator=g, dtype=dtype)
    identity = prototype_identity(c, ppc).to(dtype)
    return sims, y, protos, identity


def _naive_clst_sep(sims, y, identity):
    b, p = sims.shape
    c = y.shape[1]
    clst = sep = 0.0
    for i in range(b):
        for k in range(c):
            correct = [float(sims[i, j]) * float(identity[j, k] * y[i, k]) for j in range(p)]
            wrong = [float(sims[i, j]) * (1 - float(identity[j, k] * y[i, k])) for j in range(p)]
            clst += max(correct)
            sep += max(wrong)
    return -clst / (b * c), sep / (b * c)


def _naive_cosine(u, v):
    num = sum(a * b for a, b in zip(u, v))
    return num / math.sqrt(sum(a * a for a in u)) / math.sqrt(sum(b * b for b in v))


def test_clustering_separation_matches_naive_loop():
    sims, y, _, identity = _inputs()
    clst, sep = clustering_separation(sims, y, identity)
    n_clst, n_sep = _naive_clst_sep(sims, y, identity)
    assert clst.item() == pytest.approx(n_clst, abs=1e-12)
    assert sep.item() == pytest.approx(n_sep, abs=1e-12)


def test_clustering_counts_absent_classes_in_the_mean():
    # One ECG, two classes, class 1 absent: its term is max over zeros = 0 and still averaged.
    sims = torch.tensor([[0.8, -0.3]])
    clst, sep = clustering_separation(sims, torch.tensor([[1.0, 0.0]]), torch.eye(2))
    assert clst.item() == pytest.approx(-0.4)
    assert sep.item() == pytest.approx((0.0 + 0.8) / 2)  # present: max(0, -0.3) = 0 (masked = 0)


def test_sparsity_matches_naive_loop():
    sims, *_ = _inputs()
    naive = sum(sum(max(0.0, float(v)) for v in row) for row in sims) / len(sims)
    assert sparsity(sims).item() == pytest.approx(naive)


def test_diversity_matches_naive_loop():
    _, _, protos, _ = _inputs()
    flat = protos.flatten(1).tolist()
    p = len(flat)
    naive = (
        sum((_naive_cosine(flat[i], flat[j]) - (i == j)) ** 2 for i in range(p) for j in range(p))
        / p**2
    )
    assert diversity(protos).item() == pytest.approx(naive, rel=1e-10)


def test_diversity_zero_for_orthogonal_prototypes():
    assert diversity(torch.eye(4) * 3).item() == pytest.approx(0.0)


def test_cooccurrence_contrastive_matches_naive_loop():
    _, y, protos, identity = _inputs(b=12)
    cooc = jaccard_matrix(y).double()
    p, _c = identity.shape
    flat = protos.flatten(1).tolist()
    cls = identity.argmax(1).tolist()
    pos = [[float(cooc[cls[i], cls[j]]) for j in range(p)] for i in range(p)]
    neg = [[1 - v for v in row] for row in pos]
    sp, sn = sum(map(sum, pos)), sum(map(sum, neg))
    total_pos = total_neg = 0.0
    for i in range(p):
        for j in range(p):
            s = min(max(_naive_cosine(flat[i], flat[j]), -1 + 1e-6), 1 - 1e-6)
            total_pos += s * pos[i][j] / (sp + 1e-6)
            total_neg += s * neg[i][j] / (sn + 1e-6)
    naive = -(total_pos - total_neg) / math.sqrt(p)
    got = cooccurrence_contrastive(protos, identity, cooc)
    assert got.item() == pytest.approx(naive, rel=1e-9)


def test_cooccurrence_info_nce_form_reuses_the_core():
    _, y, protos, identity = _inputs(b=12)
    cooc = jaccard_matrix(y).double()
    p = identity.shape[0]
    eye = torch.eye(p, dtype=torch.bool)
    pos = (identity @ cooc @ identity.T) > 0
    expected = info_nce(protos.flatten(1), protos.flatten(1), pos & ~eye, 0.2, exclude_mask=eye)
    got = cooccurrence_contrastive(protos, identity, cooc, form="info_nce", temperature=0.2)
    assert got.item() == pytest.approx(expected.item())


def test_jaccard_matrix_matches_naive_loop():
    y = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    jac = jaccard_matrix(y)
    for i in range(4):
        for j in range(4):
            a, b = (
                set(torch.nonzero(y[:, i]).flatten().tolist()),
                set(torch.nonzero(y[:, j]).flatten().tolist()),
            )
            want = 1.0 if i == j else (len(a & b) / len(a | b) if a | b else 0.0)
            assert jac[i, j].item() == pytest.approx(want)


def test_pos_weight_modes():
    y = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 0]])  # n_c = 3, 2, 0; N = 4
    samples = class_counts_pos_weight(y, "samples")
    official = class_counts_pos_weight(y, "label_instances")
    assert samples is not None
    assert official is not None
    assert samples.tolist() == pytest.approx([1 / 3, 1.0, 3.0])  # absent class: n_c taken as 1
    # official: (sum_k n_k - n_c) / n_c with sum_k n_k = 5 label instances
    assert official.tolist() == pytest.approx([2 / 3, 1.5, 4.0])
    assert class_counts_pos_weight(y, "none") is None
    with pytest.raises(ValueError, match="pos_weight"):
        class_counts_pos_weight(y, "bogus")  # type: ignore[arg-type]


def test_classifier_stage_l1_only_covers_wrong_connections():
    from medical.ecg.tasks import LinearStageTask

    identity = prototype_identity(2, 2)
    linear = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0, -3.0, 4.0], [5.0, -6.0, 7.0, 8.0]]))
    task = LinearStageTask(
        linear, torch.nn.Identity(), [], torch.arange(2), None, 1.0, 1 - identity.T
    )
    out = task.training_step((torch.zeros(3, 4), torch.zeros(3, 2), torch.arange(3)))
    assert out["loss/l1"].item() == pytest.approx(3 + 4 + 5 + 6)


def test_prototype_loss_total_is_the_weighted_sum():
    sims, y, protos, identity = _inputs()
    logits = torch.randn(5, 3, dtype=torch.float64)
    cooc = jaccard_matrix(y).double()
    w = LossConfig(sparsity=0.5)
    pw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = prototype_loss(logits, y, sims, protos, identity, cooc, w, pw)
    bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw)
    assert out["loss/bce"].item() == pytest.approx(bce.item())
    total = (
        out["loss/bce"]
        + 0.004 * out["loss/clst"]
        + 0.0004 * out["loss/sep"]
        + 0.5 * out["loss/spars"]
        + 250 * out["loss/div"]
        + 300 * out["loss/cnrst"]
    )
    assert out["loss"].item() == pytest.approx(total.item())
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")


def test_paper_default_weights():
    w = LossConfig()
    assert (w.clustering, w.separation, w.sparsity, w.diversity, w.contrastive, w.l1) == (
        0.004,
        0.0004,
        0.0,
        250.0,
        300.0,
        1e-4,
    )


def test_gradcheck_every_term():
    sims, y, protos, identity = _inputs(b=3, c=2, ppc=2, d=3)
    sims.requires_grad_(True)
    protos.requires_grad_(True)
    cooc = jaccard_matrix(torch.tensor([[1, 1], [1, 0], [0, 1]])).double()
    # Perturb ties away: max() is differentiable almost everywhere.
    assert torch.autograd.gradcheck(
        lambda s: torch.stack(clustering_separation(s, y, identity)), (sims,)
    )
    assert torch.autograd.gradcheck(sparsity, (sims,))
    assert torch.autograd.gradcheck(diversity, (protos,))
    assert torch.autograd.gradcheck(
        lambda p: cooccurrence_contrastive(p, identity, cooc), (protos,)
    )
    assert torch.autograd.gradcheck(
        lambda p: cooccurrence_contrastive(p, identity, cooc, form="info_nce"), (protos,)
    )


def test_loss_decreases_on_free_prototypes():
    torch.manual_seed(0)
    identity = prototype_identity(3, 2)
    cooc = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    protos = torch.randn(6, 8, requires_grad=True)
    opt = torch.optim.SGD([protos], lr=0.5)
    values = []
    for _ in range(20):
        loss = 250 * diversity(protos) + 300 * cooccurrence_contrastive(protos, identity, cooc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert values[-1] < values[0]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: clustering_separation(torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(4, 2)),
            "agree",
        ),
        (
            lambda: clustering_separation(torch.zeros(4), torch.zeros(2, 3), torch.zeros(4, 3)),
            "similarities",
        ),
        (
            lambda: cooccurrence_contrastive(torch.zeros(4, 2), torch.zeros(4, 2), torch.eye(3)),
            "agree",
        ),
        (
            lambda: cooccurrence_contrastive(
                torch.ones(2, 2), torch.eye(2), torch.eye(2), form="x"
            ),
            "form",
        ),
        (lambda: LossConfig(diversity=-1), "loss.diversity"),
        (lambda: LossConfig(pos_weight="x"), "pos_weight"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
