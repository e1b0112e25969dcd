import pytest
import torch
import torch.nn.functional as F

from medical.prostate.losses import (
    consistency_loss,
    path_class_weights,
    sdm_loss,
    sigmoid_rampup,
    supervised_loss,
)


def _naive_dice_ce(logits, label, weight, smooth, lambda_dice=1.0, lambda_ce=1.0):
    """Loop reference: class-weighted soft Dice over the whole batch + weighted CE."""
    b, c = logits.shape[:2]
    prob = torch.softmax(logits, 1)
    dice_terms = []
    for k in range(c):
        inter = total_p = total_g = 0.0
        for i in range(b):
            p = prob[i, k].flatten()
            g = (label[i, 0].flatten() == k).double()
            inter = inter + (p * g).sum()
            total_p = total_p + p.sum()
            total_g = total_g + g.sum()
        dice_terms.append(weight[k] * (1 - (2 * inter + smooth) / (total_p + total_g + smooth)))
    dice = sum(dice_terms) / c
    num = den = 0.0
    logp = torch.log_softmax(logits, 1)
    for i in range(b):
        for v in range(label[i, 0].numel()):
            y = int(label[i, 0].flatten()[v])
            w = weight[y]
            num = num - w * logp[i, y].flatten()[v]
            den = den + w
    return lambda_dice * dice + lambda_ce * num / den


@pytest.mark.parametrize("weight", [None, (1.0, 0.5, 0.5, 1.0, 1.0)])
def test_supervised_loss_matches_loop_reference(weight):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 3, 2, generator=g, dtype=torch.float64)
    label = torch.randint(0, 5, (2, 1, 4, 3, 2), generator=g)
    w = torch.tensor(weight or (1.0,) * 5, dtype=torch.float64)
    got = supervised_loss(
        logits, label, None if weight is None else w.float(), lambda_dice=0.7, lambda_ce=1.3
    )
    ref = _naive_dice_ce(logits, label, w, smooth=1.0, lambda_dice=0.7, lambda_ce=1.3)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)


def test_supervised_loss_is_low_for_a_confident_correct_prediction():
    label = torch.randint(0, 5, (1, 1, 8, 8, 2), generator=torch.Generator().manual_seed(1))
    logits = 20 * F.one_hot(label[:, 0], 5).permute(0, 4, 1, 2, 3).float()
    assert supervised_loss(logits, label).item() < 0.05
    assert supervised_loss(-logits, label).item() > 1.0


def test_supervised_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="Expected `logits`"):
        supervised_loss(torch.zeros(1, 5, 4, 4, 2), torch.zeros(1, 1, 4, 4, 3, dtype=torch.long))


def test_consistency_loss_matches_loop_and_gradcheck():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(2, 5, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 5, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    total, n = 0.0, 0
    pa, pb = torch.softmax(a.detach(), 1), torch.softmax(b.detach(), 1)
    for idx in range(pa.numel()):
        total += float((pa.flatten()[idx] - pb.flatten()[idx]) ** 2)
        n += 1
    assert consistency_loss(a, b).item() == pytest.approx(total / n, rel=1e-5)
    # consistency_loss computes in float32 on purpose; check the maths in float64 here.
    assert torch.autograd.gradcheck(
        lambda x, y: (torch.softmax(x, 1) - torch.softmax(y, 1)).pow(2).mean(), (a, b)
    )
    consistency_loss(a, b).backward()
    assert a.grad is not None
    assert b.grad is not None
    assert a.grad.abs().sum() > 0
    assert consistency_loss(a.detach(), a.detach()).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        consistency_loss(a, b[:1])


def test_sdm_loss_only_uses_given_zones():
    pred = torch.zeros(1, 4, 2, 2, 2)
    target = torch.zeros(1, 4, 2, 2, 2)
    target[:, 3] = 1.0  # AFS wrong everywhere
    assert sdm_loss(pred, target, zones=(1, 2)).item() == 0.0
    assert sdm_loss(pred, target).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="same shape"):
        sdm_loss(pred, target[:, :2])


def test_path_weights_and_rampup():
    assert path_class_weights((0, 0, 0, 1, 1), 0, 0.25).tolist() == [1, 1, 1, 0.25, 0.25]
    assert sigmoid_rampup(5, 10) < sigmoid_rampup(8, 10) < sigmoid_rampup(10, 10) == 1.0
