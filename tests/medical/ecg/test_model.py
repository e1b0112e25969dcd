"""ProtoECGNet branches and fusion: shapes, the similarity formulas, gradients, frozen parts."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from medical.ecg.losses import LossConfig
from medical.ecg.model import (
    ProtoECGNet,
    PrototypeBranch,
    ResNet1D,
    ResNet1DClassifier,
    ResNet2D,
    latent_length,
    prototype_identity,
)
from medical.ecg.tasks import BranchSimilarities as _BranchSims
from medical.ecg.tasks import JointTask, LinearStageTask

T = 250  # 2.5 s at 100 Hz keeps the tests small; latent length 8
TINY: dict[str, Any] = {"width": 4, "layers": (1, 1, 1, 1)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # On a shared 2-core machine one intra-op thread is many times faster than two
    # (no spinning OpenMP barriers); restored afterwards for the other test modules.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _branch(kind="2d", c=3, ppc=2, t_p=3, **kw):
    torch.manual_seed(0)
    return PrototypeBranch(kind, c, ppc, T, proto_time_len=t_p, **TINY, **kw)


@pytest.mark.parametrize("length", [1000, 250, 5000, 333])
def test_latent_length_matches_both_backbones(length):
    x = torch.zeros(1, 12, length)
    assert ResNet1D(**TINY).feature_map(x).shape[-1] == latent_length(length)
    assert ResNet2D(**TINY).feature_map(x).shape[-1] == latent_length(length)


def test_resnet2d_collapses_leads_and_matches_the_paper_sizes():
    net = ResNet2D(width=8, layers=(1, 1, 1, 1))
    assert net.net.conv1.kernel_size == (12, 7)
    assert net.net.conv1.stride == (1, 2)
    assert net.net.conv1.padding == (0, 3)
    assert net.feature_map(torch.zeros(2, 12, 1000)).shape == (2, 64, 32)


def test_shapes_and_window_count():
    b = _branch(t_p=3)
    out = b(torch.randn(2, 12, T))
    assert out.logits.shape == (2, 3)
    assert out.similarities.shape == (2, 6)
    assert out.window_similarities.shape == (2, 6, latent_length(T) - 3 + 1)
    g = _branch(t_p=None)
    assert g.num_windows == 1
    assert g.proto_time_len == latent_length(T)
    r = _branch("1d")
    assert r(torch.randn(2, 12, T)).window_similarities.shape == (2, 6, 1)


def test_scale_factors_of_the_official_code():
    # D = 512: int(sqrt(512*3))/3 = 13 for partial prototypes, int(sqrt(512*32))/32 = 4 for global.
    part = PrototypeBranch("2d", 2, 1, 1000, proto_time_len=3, width=64, layers=(1, 1, 1, 1))
    glob = PrototypeBranch("2d", 2, 1, 1000, proto_time_len=None, width=64, layers=(1, 1, 1, 1))
    assert part.scale == 13.0
    assert glob.scale == 4.0
    assert part.num_windows == 30
    assert _branch("1d").scale == 1.0
    assert _branch(similarity_scale="cosine").scale == 1.0


def test_2d_window_similarity_matches_naive_formula():
    b = _branch(t_p=3)
    z = torch.rand(2, b.proto_dim, latent_length(T), dtype=torch.float64)
    b.double()
    a = b.window_similarities(z)
    protos = b.prototype_vectors.detach()
    ivl = int(math.sqrt(b.proto_dim * 3))
    for i in range(2):
        for j in range(b.num_prototypes):
            for w in range(b.num_windows):
                seg = z[i, :, w : w + 3]
                p = protos[j]
                cos = (
                    (seg * p).sum()
                    / torch.sqrt((seg**2).sum() + 1e-4)
                    / torch.sqrt((p**2).sum() + 1e-4)
                )
                assert a[i, j, w].item() == pytest.approx((ivl * cos / 3).item(), rel=1e-9)


def test_1d_similarity_is_cosine():
    b = _branch("1d")
    z = torch.rand(3, b.proto_dim)
    s = b.window_similarities(z)[..., 0]
    want = F.cosine_similarity(z[:, None, :], b.prototype_vectors[None].detach(), dim=-1)
    torch.testing.assert_close(s, want)


def test_pooling_max_and_mean():
    a = torch.tensor([[[0.1, 0.9, 0.2]]])
    assert _branch(pooling="max").pool(a).item() == pytest.approx(0.9)
    assert _branch(pooling="mean").pool(a).item() == pytest.approx(0.4)


def test_classifier_initialisation_and_identity():
    b = _branch(c=2, ppc=2)
    assert torch.equal(b.prototype_class_identity, prototype_identity(2, 2))
    assert b.classifier.weight.tolist() == [[1.0, 1.0, -0.5, -0.5], [-0.5, -0.5, 1.0, 1.0]]
    assert b.classifier.bias is None


def test_add_on_output_in_unit_interval():
    for kind in ("1d", "2d"):
        z = _branch(kind).latent(torch.randn(2, 12, T))
        assert float(z.detach().min()) >= 0
        assert float(z.detach().max()) <= 1


def test_window_samples_cover_the_signal():
    b = PrototypeBranch("2d", 2, 1, 1000, proto_time_len=3, **TINY)
    assert b.window_samples(0) == (0, 94)  # round(3 * 31.25) samples, 0.94 s
    assert b.window_samples(b.num_windows - 1)[1] == 1000
    assert _branch("1d").window_samples(0) == (0, T)


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_every_parameter_gets_a_gradient_in_the_joint_stage(kind):
    b = _branch(kind, dropout=0.1)
    task = JointTask(b, torch.arange(3), None, torch.eye(3), LossConfig())
    task.train()
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = task.training_step((torch.randn(2, 12, T), y, torch.arange(2)))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    for name, p in b.named_parameters():
        if name.startswith("classifier"):
            assert not p.requires_grad
            assert p.grad is None
        else:
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name


def test_fusion_model_concatenates_branches():
    torch.manual_seed(0)
    branches = {
        "global": PrototypeBranch("2d", 1, 2, T, proto_time_len=None, **TINY),
        "rhythm": PrototypeBranch("1d", 2, 3, T, **TINY),
    }
    model = ProtoECGNet(branches, {"rhythm": [0, 2], "global": [1]}, 3)
    assert list(model.branches) == ["rhythm", "global"]  # fusion order
    out = model(torch.randn(2, 12, T))
    assert out.similarities.shape == (2, 8)
    assert out.logits.shape == (2, 3)
    assert model.prototype_offsets() == {"rhythm": 0, "global": 6}
    assert model.label_index("rhythm").tolist() == [0, 2]
    with pytest.raises(ValueError, match="label indices"):
        ProtoECGNet(branches, {"rhythm": [0], "global": [1]}, 3)


def test_baseline_classifier():
    net = ResNet1DClassifier(5, **TINY)
    assert net(torch.randn(2, 12, T)).shape == (2, 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "3d"}, "kind"),
        ({"pooling": "sum"}, "pooling"),
        ({"t_p": 99}, "proto_time_len"),
        ({"similarity_scale": "x"}, "similarity_scale"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _branch(**kwargs)


def _bn_stats(module):
    return [
        m.running_mean.clone()
        for m in module.modules()
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)
    ]


@pytest.mark.parametrize("frozen_eval", [True, False])
def test_frozen_parts_stay_in_eval_mode(frozen_eval):
    b = _branch("2d", dropout=0.5)
    sims = _BranchSims(b)
    task = LinearStageTask(
        b.classifier,
        sims,
        [b.backbone, b.add_on],
        torch.arange(3),
        None,
        1e-4,
        frozen_eval=frozen_eval,
    )
    task.train()  # what the Trainer does every epoch
    before = _bn_stats(b.backbone)
    x, y = torch.randn(4, 12, T), torch.ones(4, 3)
    task.training_step((x, y, torch.arange(4)))["loss"].backward()
    after = _bn_stats(b.backbone)
    assert not any(p.requires_grad for p in b.backbone.parameters())
    assert b.classifier.weight.grad is not None
    if frozen_eval:  # the fix: BN statistics fixed, dropout off, outputs deterministic
        assert not b.backbone.training
        assert not b.backbone.dropout.training
        assert all(torch.equal(u, v) for u, v in zip(before, after))
        torch.testing.assert_close(task.logits(x), task.logits(x))
    else:  # the official behaviour: Lightning's train() reaches the frozen backbone
        assert b.backbone.training
        assert not all(torch.equal(u, v) for u, v in zip(before, after))


def test_prototype_stage_trains_only_prototypes():
    b = _branch("1d")
    task = JointTask(b, torch.arange(3), None, torch.eye(3), LossConfig(), prototypes_only=True)
    task.train()
    assert [n for n, p in b.named_parameters() if p.requires_grad] == ["prototype_vectors"]
    assert not b.backbone.training
    assert not b.add_on.training
