"""The anisotropic 3D U-Net baseline and the dual-path, multi-task net.

Both follow the UATS U-Net of the same lab (methods.md 5.2), in RAS tensor order
(B, C, X, Y, Z) with Z the slice axis: two in-plane poolings (2, 2, 1), then one through-plane
pooling (2, 2, 2), filters ``f, 2f`` per level as in UATS (16/32, 32/64, 64/128, bottleneck
256 for ``f = 16``), dropout in the bottleneck, transposed-convolution upsampling with the same
strides and skip concatenation.

* :class:`ZoneUNet`: one encoder, one decoder, five classes (background + 4 zones).
* :class:`DualPathNet`: one shared encoder and two decoders (path A and path B), each
  predicting all five classes (so the two paths' predictions of the same class can be
  compared), and per path an optional signed-distance-map head (4 channels, tanh).

Every model returns a dict of tensors from ``forward`` and fused class probabilities from
``predict_proba`` (what sliding-window inference calls).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from medical.prostate import ZONES
from medical.prostate.config import ModelConfig

__all__ = ["DualPathNet", "ZoneUNet", "build_model", "fuse_paths"]

N_CLASSES = len(ZONES) + 1
#: Pooling of each encoder level: in-plane, in-plane, then through-plane too.
POOLS: tuple[tuple[int, int, int], ...] = ((2, 2, 1), (2, 2, 1), (2, 2, 2))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.InstanceNorm3d(channels, affine=True)


class DoubleConv(nn.Sequential):
    """Two 3x3x3 convolutions, each followed by normalisation and ReLU."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, norm: str) -> None:
        super().__init__(
            nn.Conv3d(c_in, c_mid, 3, padding=1, bias=False),
            _norm(norm, c_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(c_mid, c_out, 3, padding=1, bias=False),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
        )


class Encoder(nn.Module):
    """The contracting path; returns the skip features and the bottleneck.

    Args:
        f: Base filters.
        norm: ``"instance"`` or ``"batch"``.
        dropout: Bottleneck dropout.
    """

    def __init__(self, f: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            [
                DoubleConv(1, f, 2 * f, norm),
                DoubleConv(2 * f, 2 * f, 4 * f, norm),
                DoubleConv(4 * f, 4 * f, 8 * f, norm),
            ]
        )
        self.pools = nn.ModuleList([nn.MaxPool3d(p, p) for p in POOLS])
        self.bottleneck = nn.Sequential(
            nn.Conv3d(8 * f, 16 * f, 3, padding=1, bias=False),
            _norm(norm, 16 * f),
            nn.ReLU(inplace=True),
            nn.Dropout3d(dropout),
            nn.Conv3d(16 * f, 16 * f, 3, padding=1, bias=False),
            _norm(norm, 16 * f),
            nn.ReLU(inplace=True),
        )
        self.skip_channels = (2 * f, 4 * f, 8 * f)
        self.out_channels = 16 * f

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Encode.

        Args:
            x: Image. Shape: (B, 1, X, Y, Z), X and Y divisible by 8, Z by 2.

        Returns:
            Skip features (full, 1/2, 1/4 in-plane resolution) and the bottleneck.
        """
        skips = []
        for level, pool in zip(self.levels, self.pools):
            x = level(x)
            skips.append(x)
            x = pool(x)
        return skips, self.bottleneck(x)


class Decoder(nn.Module):
    """The expanding path with a 1x1x1 classifier and an optional SDM head.

    Args:
        encoder: The encoder (for its channel counts).
        norm: Normalisation.
        n_classes: Classifier outputs.
        sdm: Whether to add a signed-distance-map head (``len(ZONES)`` channels, tanh).
        sdm_head: ``"linear"`` (a 1x1x1 convolution on the classifier's features) or
            ``"conv"`` (its own 3x3x3 convolution, normalisation and ReLU first).
    """

    def __init__(
        self, encoder: Encoder, norm: str, n_classes: int, sdm: bool, sdm_head: str = "linear"
    ) -> None:
        super().__init__()
        c = encoder.out_channels
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        for skip, pool in zip(reversed(encoder.skip_channels), reversed(POOLS)):
            self.ups.append(nn.ConvTranspose3d(c, skip, pool, pool))
            self.convs.append(DoubleConv(2 * skip, skip, skip, norm))
            c = skip
        self.classifier = nn.Conv3d(c, n_classes, 1)
        self.sdm: nn.Module | None = None
        if sdm and sdm_head == "conv":  # its own 3x3x3 layer: less pull on the class features
            self.sdm = nn.Sequential(
                nn.Conv3d(c, c, 3, padding=1, bias=False),
                _norm(norm, c),
                nn.ReLU(inplace=True),
                nn.Conv3d(c, len(ZONES), 1),
            )
        elif sdm:
            self.sdm = nn.Conv3d(c, len(ZONES), 1)

    def forward(self, skips: Sequence[Tensor], x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Decode.

        Returns:
            Logits (B, n_classes, X, Y, Z) and SDM predictions (B, 4, X, Y, Z) in [-1, 1] or
            ``None``.
        """
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips)):
            x = conv(torch.cat([up(x), skip], dim=1))
        sdm = torch.tanh(self.sdm(x)) if self.sdm is not None else None
        return self.classifier(x), sdm


class ZoneUNet(nn.Module):
    """The baseline: anisotropic 3D U-Net, one path for all zones (UATS-style).

    Args:
        base_filters: Filters of the first convolution (UATS: 16).
        norm: ``"instance"`` or ``"batch"``.
        dropout: Bottleneck dropout.

    Examples:
        >>> net = ZoneUNet(base_filters=2)
        >>> net(torch.zeros(1, 1, 16, 16, 4))["logits"].shape
        torch.Size([1, 5, 16, 16, 4])
    """

    def __init__(self, base_filters: int = 8, norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = Encoder(base_filters, norm, dropout)
        self.decoder = Decoder(self.encoder, norm, N_CLASSES, sdm=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Segment.

        Args:
            x: Image. Shape: (B, 1, X, Y, Z).

        Returns:
            ``{"logits": (B, 5, X, Y, Z)}``.
        """
        logits, _ = self.decoder(*self.encoder(x))
        return {"logits": logits}

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities. Shape: (B, 5, X, Y, Z)."""
        return torch.softmax(self.forward(x)["logits"], dim=1)


def fuse_paths(prob_a: Tensor, prob_b: Tensor, owner: Sequence[int], mode: str = "owner") -> Tensor:
    """Fuse the two paths' class probabilities into one prediction.

    ``"owner"``: zone class ``c`` takes its probability from the path that owns it
    (``owner[c]`` is 0 for path A, 1 for path B), background is the mean of both paths;
    ``"mean"``: the mean of both paths for every class. The result is renormalised to sum to 1.

    Args:
        prob_a: Path A probabilities. Shape: (B, 5, X, Y, Z).
        prob_b: Path B probabilities. Shape: (B, 5, X, Y, Z).
        owner: Owning path per class (index 0, background, is ignored).
        mode: ``"owner"`` or ``"mean"``.

    Returns:
        Probabilities. Shape: (B, 5, X, Y, Z).
    """
    if prob_a.shape != prob_b.shape:
        raise ValueError(
            f"Expected `prob_a` and `prob_b` to have the same shape, but got "
            f"{tuple(prob_a.shape)} and {tuple(prob_b.shape)}."
        )
    mean = 0.5 * (prob_a + prob_b)
    if mode == "mean":
        return mean
    sel = torch.tensor([0] + [int(o) for o in owner[1:]], device=prob_a.device).bool()
    sel = sel.view(1, -1, *([1] * (prob_a.ndim - 2)))
    fused = torch.where(sel, prob_b, prob_a)
    fused = torch.cat([mean[:, :1], fused[:, 1:]], dim=1)
    return fused / fused.sum(dim=1, keepdim=True).clamp_min(1e-8)


class DualPathNet(nn.Module):
    """Shared encoder, two decoder paths (each predicting all classes), optional SDM heads.

    Args:
        base_filters: Filters of the first convolution.
        norm: Normalisation.
        dropout: Bottleneck dropout.
        owner: Owning path per class index (0 = A, 1 = B; index 0, background, ignored).
        sdm: Whether each path has a signed-distance-map head (the multi-task head).
        fusion: ``"owner"`` or ``"mean"`` (see :func:`fuse_paths`).
        sdm_head: ``"linear"`` or ``"conv"`` (see :class:`Decoder`).

    Examples:
        >>> net = DualPathNet(base_filters=2, owner=(0, 0, 0, 1, 1))
        >>> out = net(torch.zeros(1, 1, 16, 16, 4))
        >>> sorted(out), tuple(out["sdm_b"].shape)
        (['logits_a', 'logits_b', 'sdm_a', 'sdm_b'], (1, 4, 16, 16, 4))
    """

    def __init__(
        self,
        base_filters: int = 8,
        norm: str = "instance",
        dropout: float = 0.0,
        owner: Sequence[int] = (0, 0, 0, 1, 1),
        sdm: bool = True,
        fusion: str = "owner",
        sdm_head: str = "linear",
    ) -> None:
        super().__init__()
        if len(owner) != N_CLASSES:
            raise ValueError(f"Expected `owner` to have {N_CLASSES} entries, got {len(owner)}.")
        self.encoder = Encoder(base_filters, norm, dropout)
        self.decoder_a = Decoder(self.encoder, norm, N_CLASSES, sdm, sdm_head)
        self.decoder_b = Decoder(self.encoder, norm, N_CLASSES, sdm, sdm_head)
        self.owner = tuple(int(o) for o in owner)
        self.fusion = fusion

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Segment with both paths.

        Args:
            x: Image. Shape: (B, 1, X, Y, Z).

        Returns:
            ``logits_a``, ``logits_b``: (B, 5, X, Y, Z); with SDM heads also ``sdm_a``,
            ``sdm_b``: (B, 4, X, Y, Z).
        """
        skips, bottom = self.encoder(x)
        logits_a, sdm_a = self.decoder_a(skips, bottom)
        logits_b, sdm_b = self.decoder_b(skips, bottom)
        out = {"logits_a": logits_a, "logits_b": logits_b}
        if sdm_a is not None and sdm_b is not None:
            out.update(sdm_a=sdm_a, sdm_b=sdm_b)
        return out

    def predict_proba(self, x: Tensor) -> Tensor:
        """Fused class probabilities (:func:`fuse_paths`). Shape: (B, 5, X, Y, Z)."""
        out = self.forward(x)
        return fuse_paths(
            torch.softmax(out["logits_a"], 1),
            torch.softmax(out["logits_b"], 1),
            self.owner,
            self.fusion,
        )


def owner_of(cfg: ModelConfig) -> tuple[int, ...]:
    """The owning path (0 = A, 1 = B) of each class index; background -> 0."""
    return (0, *(0 if zone in cfg.path_a else 1 for zone in ZONES))


def build_model(cfg: ModelConfig) -> ZoneUNet | DualPathNet:
    """Build the network named by ``cfg.name``."""
    if cfg.name == "baseline":
        return ZoneUNet(cfg.base_filters, cfg.norm, cfg.dropout)
    return DualPathNet(
        cfg.base_filters,
        cfg.norm,
        cfg.dropout,
        owner=owner_of(cfg),
        sdm=cfg.aux == "sdm",
        fusion=cfg.fusion,
        sdm_head=cfg.sdm_head,
    )
