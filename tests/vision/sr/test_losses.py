"""PCL-SR losses, the Haar DWT, the degradations and the discriminator's gradient isolation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from vision.sr.config import PCLConfig
from vision.sr.degrade import blur_anisotropic, sharpen
from vision.sr.losses import dual_contrastive_loss, pcl_info_nce
from vision.sr.model import EDSR, haar_dwt, haar_highpass
from vision.sr.tasks import SRTask


def _released_nce(sr, hrs, lrs):
    """Naive transcription of the released ``Adversarial.nce`` (loss/adversarial.py)."""
    b = sr.shape[0]
    neg_logits = [
        torch.sum(F.normalize(sr, dim=1) * F.normalize(f, dim=1), dim=1).mean(dim=[-1, -2])[:, None]
        for f in lrs
    ]
    loss = torch.zeros((), dtype=sr.dtype)
    for f_hr in hrs:
        pos = torch.sum(F.normalize(sr, dim=1) * F.normalize(f_hr, dim=1), dim=1)
        logits = torch.cat([pos.mean(dim=[-1, -2])[:, None], *neg_logits], dim=1)
        loss = loss + F.cross_entropy(logits, torch.zeros(b, dtype=torch.long))
    return loss / len(hrs)


def _naive_pcl(sr, hrs, lrs):
    """The same loss with explicit per-image, per-positive loops in float64."""
    total, count = 0.0, 0
    for b in range(sr.shape[0]):

        def sim(x, y, b=b):
            num = 0.0
            h, w = x.shape[-2:]
            for i in range(h):
                for j in range(w):
                    u, v = x[b, :, i, j], y[b, :, i, j]
                    num += float(u @ v) / (float(u.norm()) * float(v.norm()))
            return num / (h * w)

        negs = [sim(sr, n) for n in lrs]
        for p in hrs:
            s = sim(sr, p)
            total += -s + math.log(math.exp(s) + sum(math.exp(n) for n in negs))
            count += 1
    return total / count


@pytest.mark.parametrize(("n_pos", "n_neg"), [(1, 1), (4, 4), (2, 3)])
def test_pcl_info_nce_matches_released_and_naive_loops(n_pos, n_neg):
    torch.manual_seed(0)
    sr = torch.randn(3, 5, 3, 2, dtype=torch.float64)
    hrs = [torch.randn_like(sr) for _ in range(n_pos)]
    lrs = [torch.randn_like(sr) for _ in range(n_neg)]
    ours = pcl_info_nce(sr, hrs, lrs)
    assert torch.allclose(ours, _released_nce(sr, hrs, lrs), atol=1e-10)
    assert ours.item() == pytest.approx(_naive_pcl(sr, hrs, lrs), abs=1e-9)


def test_pcl_info_nce_gradcheck_and_validation():
    torch.manual_seed(1)
    sr = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    pos = [torch.randn(2, 3, 2, 2, dtype=torch.float64) for _ in range(2)]
    neg = [torch.randn(2, 3, 2, 2, dtype=torch.float64) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda x: pcl_info_nce(x, pos, neg), (sr,))
    with pytest.raises(ValueError, match="at least one positive"):
        pcl_info_nce(sr, [], neg)
    with pytest.raises(ValueError, match="anchor's shape"):
        pcl_info_nce(sr, [torch.randn(2, 3, 2, 1, dtype=torch.float64)], neg)


def test_dual_contrastive_loss_matches_naive_cross_entropy():
    torch.manual_seed(2)
    r = torch.randn(2, 1, 2, 2, dtype=torch.float64)
    f = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    rr, ff = r.reshape(-1), f.reshape(-1)
    first = sum(
        -rr[i] + torch.logsumexp(torch.cat([rr[i : i + 1], ff]), 0) for i in range(len(rr))
    ) / len(rr)
    second = sum(
        ff[j] + torch.logsumexp(torch.cat([-ff[j : j + 1], -rr]), 0) for j in range(len(ff))
    ) / len(ff)
    assert dual_contrastive_loss(r, f).item() == pytest.approx(float(first + second), abs=1e-12)
    r.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: dual_contrastive_loss(x, f), (r,))


def test_haar_dwt_hand_values_and_energy():
    x = torch.tensor([[[[1.0, 2.0, 0.0, 0.0], [3.0, 4.0, 0.0, 2.0]]]])
    ll, lh, hl, hh = haar_dwt(x)
    # block [[1, 2], [3, 4]]: (a+b+c+d)/2, (a+b-c-d)/2, (a-b+c-d)/2, (a-b-c+d)/2
    assert ll.flatten().tolist() == [5.0, 1.0]
    assert lh.flatten().tolist() == [-2.0, -1.0]
    assert hl.flatten().tolist() == [-1.0, -1.0]
    assert hh.flatten().tolist() == [0.0, 1.0]
    y = torch.randn(2, 3, 6, 8)
    bands = torch.stack(haar_dwt(y))
    assert bands.pow(2).sum().item() == pytest.approx(
        y.pow(2).sum().item(), rel=1e-5
    )  # orthonormal
    flat = haar_highpass(torch.full((1, 3, 4, 4), 0.7))
    assert flat.shape == (1, 9, 2, 2)
    assert torch.allclose(flat, torch.full_like(flat, 0.5))  # no detail -> 0 * 0.5 + 0.5
    with pytest.raises(ValueError, match="even"):
        haar_dwt(torch.zeros(1, 1, 3, 4))


def test_sharpen_and_blur_behave_like_kornia():
    torch.manual_seed(3)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(sharpen(x, torch.ones(2)), x, atol=1e-6)
    sharp = sharpen(x, torch.tensor([3.0, 3.0]))
    soft = sharpen(x, torch.tensor([0.0, 0.0]))
    assert torch.equal(sharp[..., 0, :], x[..., 0, :])  # border kept
    hf = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean()  # noqa: E731
    assert hf(sharp) > hf(x) > hf(soft)
    # smoothing kernel by hand at one interior pixel
    k = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    assert soft[0, 0, 5, 7].item() == pytest.approx(float((x[0, 0, 4:7, 6:9] * k).sum()), abs=1e-6)
    # a 1x1 kernel is the identity; blur keeps the mean of a constant and lowers detail
    one = torch.ones(2, dtype=torch.long)
    assert torch.allclose(blur_anisotropic(x, one, one, torch.ones(2), torch.ones(2)), x)
    k11 = torch.full((2,), 11)
    blurred = blur_anisotropic(x, k11, torch.full((2,), 3), torch.full((2,), 2.0), torch.ones(2))
    assert hf(blurred) < hf(x)
    c = torch.full((1, 3, 12, 12), 0.3)
    out = blur_anisotropic(
        c, torch.tensor([5]), torch.tensor([7]), torch.tensor([1.0]), torch.tensor([0.5])
    )
    assert torch.allclose(out, c, atol=1e-6)


def _task(grad_to_sr: bool) -> Any:
    torch.manual_seed(4)
    return SRTask(
        EDSR(2, n_blocks=1, channels=8), PCLConfig(d_width=4, grad_to_sr=grad_to_sr, weight=1.0)
    )


@pytest.mark.parametrize("grad_to_sr", [True, False])
def test_pcl_gradient_reaches_sr_net_only_with_grad_to_sr(grad_to_sr):
    task = _task(grad_to_sr)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    sr = task.model(lr)
    positives = [hr, sharpen(hr, torch.full((2,), 2.0))]
    negatives = [F.interpolate(lr, size=(16, 16)), hr * 0.9]
    pcl, _ = task.pcl_term(sr, positives, negatives)
    assert pcl.requires_grad is grad_to_sr
    if grad_to_sr:
        pcl.backward()
        grads = [p.grad for p in task.model.parameters()]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in task.disc.parameters())  # never into the discriminator
    assert not any(p.requires_grad for p in task.disc.parameters())


def test_discriminator_is_outside_the_generator_optimiser_and_trains():
    task = _task(True)
    trainable = {id(p) for p in task.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in task.model.parameters()}
    before = [p.detach().clone() for p in task.disc.parameters()]
    out = task.training_step((torch.rand(4, 3, 8, 8), torch.rand(4, 3, 16, 16)))
    assert {"loss", "loss/l1", "loss/pcl", "loss/disc", "pcl/acc"} <= set(out)
    assert out["loss"].requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, task.disc.parameters()))
    out["loss"].backward()
    assert all(p.grad is None for p in task.disc.parameters())
