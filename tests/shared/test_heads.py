from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.distributed import eye_rank, gather, local_offset, rank, world_size
from shared.heads import ContrastiveModel, Encoder, MultiHead, ProjectionHead
from shared.validation import closest, look_up_option, reduce


class TinyEncoder(nn.Module):
    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.mark.parametrize("norm", ["bn", "ln", "none"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_projection_head_every_parameter_gets_a_gradient(norm, num_layers):
    torch.manual_seed(0)
    head = ProjectionHead(6, 10, 4, num_layers=num_layers, norm=norm, last_norm=num_layers > 1)
    out = head(torch.randn(5, 6))
    assert out.shape == (5, 4)
    assert torch.isfinite(out).all()
    (out * torch.randn(5, 4)).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 1e-6, name


def test_projection_head_layout_and_errors():
    head = ProjectionHead(6, 10, 4, num_layers=3)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 10), (10, 10), (10, 4)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head.modules()) == 2
    with pytest.raises(ValueError, match=r"shape \(B, 6\), but got \(5, 7\)"):
        head(torch.randn(5, 7))
    with pytest.raises(ValueError, match="num_layers"):
        ProjectionHead(6, 10, 4, num_layers=0)
    with pytest.raises(ValueError, match="Did you mean 'bn'"):
        ProjectionHead(6, 10, 4, norm="bnn")


def test_multi_head_and_contrastive_model():
    enc = TinyEncoder()
    assert isinstance(enc, Encoder)
    model = ContrastiveModel(enc, MultiHead.replicate(3, 6, 8, 4))
    feats, proj = model(torch.randn(2, 3, 4))
    assert feats.shape == (2, 6)
    assert set(proj) == {"0", "1", "2"}
    assert all(v.shape == (2, 4) for v in proj.values())
    with pytest.raises(ValueError, match="forward_features"):
        ContrastiveModel(nn.Linear(2, 2), ProjectionHead(2, 2, 2))


def test_distributed_helpers_single_process():
    assert (rank(), world_size(), local_offset(4)) == (0, 1, 0)
    x = torch.randn(3, 2, requires_grad=True)
    assert gather(x) is x
    assert torch.equal(eye_rank(3), torch.eye(3, dtype=torch.bool))


def test_validation_helpers():
    assert closest("lrr", ["lr", "epochs"]) == "lr"
    assert closest("zzz", ["lr"]) is None
    with pytest.raises(ValueError, match="Did you mean 'sum'"):
        look_up_option("summ", ("mean", "sum"), "reduction")
    v = torch.tensor([1.0, 2.0, 3.0])
    w = torch.tensor([1.0, 0.0, 1.0])
    assert reduce(v, "mean", w).item() == pytest.approx(2.0)
    assert reduce(v, "sum").item() == pytest.approx(6.0)
    assert torch.equal(reduce(v, "none"), v)
