"""Projection heads and the encoder interface shared by every domain.

Encoders follow timm's interface: they expose ``num_features`` and
``forward_features(x) -> (B, num_features)``. A contrastive model is an encoder plus a head,
by composition.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from shared.validation import look_up_option

NORMS = ("bn", "ln", "none")


@runtime_checkable
class Encoder(Protocol):
    """What every encoder of the suite exposes (timm's interface)."""

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return pooled features. Shape: (B, num_features)."""
        ...


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm1d(dim)
    if kind == "ln":
        return nn.LayerNorm(dim)
    return nn.Identity()


class ProjectionHead(nn.Module):
    """MLP projection head: ``num_layers`` linear layers, norm + ReLU between them.

    SimCLR's head is ``ProjectionHead(in_dim, 2048, 128, num_layers=2)``; with
    ``last_norm=True`` the output gets a final (affine-free) BatchNorm as in SimCLR v2/MoCo v3.

    Args:
        in_dim: Input features F.
        hidden_dim: Width of the hidden layers.
        out_dim: Output dimension D.
        num_layers: Number of linear layers (>= 1).
        norm: ``"bn"`` (BatchNorm1d), ``"ln"`` (LayerNorm) or ``"none"`` after hidden layers.
        last_norm: Add an affine-free BatchNorm1d after the last layer.

    Shape:
        - Input: (B, F).
        - Output: (B, D).

    Raises:
        ValueError: If ``num_layers < 1`` or ``norm`` is unknown.

    Examples:
        >>> head = ProjectionHead(32, 64, 16)
        >>> head(torch.randn(4, 32)).shape
        torch.Size([4, 16])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        norm: str = "bn",
        last_norm: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"Expected `num_layers` to be >= 1, but got {num_layers}.")
        look_up_option(norm, NORMS, "norm")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            # A bias right before a normalisation layer is cancelled by it: leave it out.
            followed_by_norm = (not last and norm != "none") or (last and last_norm)
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=not followed_by_norm))
            if not last:
                layers += [_norm(norm, dims[i + 1]), nn.ReLU(inplace=True)]
        if last_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project features. Shape: (B, F) -> (B, D)."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"Expected `x` to have shape (B, {self.in_dim}), but got {tuple(x.shape)}."
            )
        return self.layers(x)


class MultiHead(nn.Module):
    """Several projection heads over the same features (e.g. AMCL, SimCLR + SupCon).

    Args:
        heads: Named heads.

    Shape:
        - Input: (B, F).
        - Output: a dict ``{name: (B, D_name)}``.

    Examples:
        >>> mh = MultiHead({"a": ProjectionHead(8, 8, 4), "b": ProjectionHead(8, 8, 2)})
        >>> {k: tuple(v.shape) for k, v in mh(torch.randn(3, 8)).items()}
        {'a': (3, 4), 'b': (3, 2)}
    """

    def __init__(self, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("Expected `heads` to hold at least one head, but got none.")
        self.heads = nn.ModuleDict(heads)

    @classmethod
    def replicate(
        cls, n: int, in_dim: int, hidden_dim: int, out_dim: int, **kw: object
    ) -> MultiHead:
        """Build ``n`` identical-architecture heads named ``"0" .. "n-1"``."""
        return cls({str(i): ProjectionHead(in_dim, hidden_dim, out_dim, **kw) for i in range(n)})  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Apply every head. Shape: (B, F) -> {name: (B, D_name)}."""
        return {name: head(x) for name, head in self.heads.items()}


class ContrastiveModel(nn.Module):
    """An encoder and a projection head, by composition.

    Args:
        encoder: Any module with ``num_features`` and ``forward_features``.
        head: The projection head (input ``encoder.num_features``).

    Shape:
        - Input: whatever the encoder takes, batch first.
        - Output: ``(features (B, F), projections (B, D))``.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        if not isinstance(encoder, Encoder):
            raise ValueError(
                "Expected `encoder` to expose `num_features` and `forward_features`, "
                f"but got {type(encoder).__name__}."
            )
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return features and projections."""
        feats = self.encoder.forward_features(x)
        return feats, self.head(feats)
