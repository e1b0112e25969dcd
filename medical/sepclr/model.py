"""SepCLR's architecture (methods.md 4.2): two independent encoders, each ``fc`` + projector.

Each branch is encoder -> ``fc`` Linear(F -> d) (the **representation**, used by the probes)
-> projector Linear(d -> 128) -> BN -> ReLU -> Linear(128 -> d) (the **head**, used by the
losses). The common head is L2-normalised (the hypersphere); the salient head is Euclidean.
Encoders follow the suite's interface (``num_features``, ``forward_features``): MONAI's 2-D
ResNet-18 (any number of input channels; ``cifar`` stem = conv 3 x 3 stride 1 without
max-pool, as the CIFAR-10-on-MNIST script) or a small CNN for 28 x 28 inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch import Tensor, nn

from medical.sepclr.config import ModelConfig
from shared.heads import ProjectionHead

__all__ = [
    "Branch",
    "ResNetEncoder",
    "SepCLRModel",
    "SepOutput",
    "SingleModel",
    "SmallCNN",
    "build_encoder",
]


class SmallCNN(nn.Module):
    """Four 3 x 3 conv blocks (conv-BN-ReLU, stride 2 from the second), global average pool.

    Args:
        in_channels: Input channels C.
        width: Channels of the first block, doubled at each of the next two.

    Shape:
        - Input: (B, C, H, W).
        - Output of :meth:`forward_features`: (B, num_features) with ``num_features = 4 width``.

    Examples:
        >>> SmallCNN(1, 8).forward_features(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 32])
    """

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, stride, 1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.num_features = chans[-1]

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features. Shape: (B, C, H, W) -> (B, num_features)."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(x)


class ResNetEncoder(nn.Module):
    """MONAI's 2-D ResNet-18 without its classifier (pooled 512 features at width 64).

    Args:
        in_channels: Input channels C (any number).
        stem: ``cifar`` (conv 3 x 3 stride 1, no max-pool) or ``standard`` (7 x 7 stride 2 +
            max-pool).
        width: Base width; 64 is the standard ResNet-18 (``widen_factor = width / 64``).

    Shape:
        - Input: (B, C, H, W).
        - Output of :meth:`forward_features`: (B, num_features).
    """

    def __init__(self, in_channels: int, stem: str = "cifar", width: int = 64) -> None:
        super().__init__()
        cifar = stem == "cifar"
        self.net = ResNet(
            block="basic",
            layers=[2, 2, 2, 2],
            block_inplanes=[64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=3 if cifar else 7,
            conv1_t_stride=1 if cifar else 2,
            no_max_pool=cifar,
            widen_factor=width / 64,
            feed_forward=False,
        )
        self.num_features = int(512 * width / 64)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features. Shape: (B, C, H, W) -> (B, num_features)."""
        return self.net(x)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(x)


def build_encoder(cfg: ModelConfig, in_channels: int) -> nn.Module:
    """The encoder named by ``cfg.encoder``, for ``in_channels`` input channels."""
    if cfg.encoder == "resnet18":
        return ResNetEncoder(in_channels, cfg.stem, cfg.width)
    return SmallCNN(in_channels, cfg.width)


class Branch(nn.Module):
    """Encoder -> ``fc`` (representation) -> projector (head).

    Args:
        encoder: Exposes ``num_features`` and ``forward_features``.
        dim: Dimension d of the representation and of the head.
        hidden: Projector hidden width (128 in the official code).

    Shape:
        - Input: (B, C, H, W).
        - Output: (rep (B, d), head (B, d)).
    """

    def __init__(self, encoder: nn.Module, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(int(encoder.num_features), dim)  # type: ignore[arg-type]
        self.projector = ProjectionHead(dim, hidden, dim, num_layers=2, norm="bn")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (representation, head)."""
        rep = self.fc(self.encoder.forward_features(x))  # type: ignore[operator]
        return rep, self.projector(rep)


class SepOutput(NamedTuple):
    """What :class:`SepCLRModel` returns for a batch (all of shape (B, d_c) or (B, d_s)).

    Attributes:
        common_rep: Common representation (``fc`` output).
        common_head: Common head, L2-normalised.
        salient_rep: Salient representation.
        salient_head: Salient head, Euclidean (not normalised).
    """

    common_rep: Tensor
    common_head: Tensor
    salient_rep: Tensor
    salient_head: Tensor


class SepCLRModel(nn.Module):
    """Two independent branches, common and salient (no weight sharing).

    Args:
        cfg: Model settings.
        in_channels: Input channels C.

    Shape:
        - Input: (B, C, H, W).
        - Output: :class:`SepOutput`.

    Examples:
        >>> m = SepCLRModel(ModelConfig(width=8, common_dim=4, salient_dim=3), 1)
        >>> out = m(torch.rand(2, 1, 16, 16))
        >>> out.common_head.norm(dim=1).round(decimals=4).tolist(), tuple(out.salient_head.shape)
        ([1.0, 1.0], (2, 3))
    """

    spaces = ("common", "salient")

    def __init__(self, cfg: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.common = Branch(build_encoder(cfg, in_channels), cfg.common_dim, cfg.proj_hidden)
        self.salient = Branch(build_encoder(cfg, in_channels), cfg.salient_dim, cfg.proj_hidden)

    def forward(self, x: Tensor) -> SepOutput:
        """Encode a batch (see the class docstring)."""
        c_rep, c_head = self.common(x)
        s_rep, s_head = self.salient(x)
        return SepOutput(c_rep, F.normalize(c_head, dim=1), s_rep, s_head)

    @torch.no_grad()
    def features(self, x: Tensor) -> dict[str, dict[str, Tensor]]:
        """Representations and heads of each space. ``{space: {"rep": (B, d), "head": (B, d)}}``."""
        out = self(x)
        return {
            "common": {"rep": out.common_rep, "head": out.common_head},
            "salient": {"rep": out.salient_rep, "head": out.salient_head},
        }


class SingleModel(nn.Module):
    """One branch (the SimCLR baseline): the space ``single``, its head L2-normalised.

    Args:
        cfg: Model settings (``common_dim`` is its dimension).
        in_channels: Input channels C.

    Shape:
        - Input: (B, C, H, W).
        - Output: (rep (B, d), normalised head (B, d)).
    """

    spaces = ("single",)

    def __init__(self, cfg: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.branch = Branch(build_encoder(cfg, in_channels), cfg.common_dim, cfg.proj_hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (representation, normalised head)."""
        rep, head = self.branch(x)
        return rep, F.normalize(head, dim=1)

    @torch.no_grad()
    def features(self, x: Tensor) -> dict[str, dict[str, Tensor]]:
        """``{"single": {"rep": (B, d), "head": (B, d)}}``."""
        rep, head = self(x)
        return {"single": {"rep": rep, "head": head}}
