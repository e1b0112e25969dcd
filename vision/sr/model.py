"""EDSR (Lim et al., CVPRW 2017), the Haar DWT and PCL-SR's patch discriminator.

The networks know nothing about losses or optimisers (BasicSR's arch/recipe split).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "EDSR",
    "EDSR_SIZES",
    "PatchDiscriminator",
    "count_parameters",
    "feature_stride",
    "haar_dwt",
    "haar_highpass",
]

#: ``size`` -> (residual blocks, channels, residual scaling). ``baseline`` and ``large`` are
#: the EDSR paper's two models; ``tiny`` and ``small`` are CPU-sized.
EDSR_SIZES: dict[str, tuple[int, int, float]] = {
    "tiny": (4, 32, 1.0),
    "small": (8, 48, 1.0),
    "baseline": (16, 64, 1.0),
    "large": (32, 256, 0.1),
}

#: DIV2K's RGB mean (EDSR's ``MeanShift``), for images in [0, 1].
_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


class _ResBlock(nn.Module):
    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """Enhanced deep residual network for single-image super-resolution.

    Head conv, ``n_blocks`` residual blocks (conv-ReLU-conv, no batch norm, output times
    ``res_scale``) with a long skip, a pixel-shuffle upsampler (one x2 or x3 stage, two x2 stages
    for x4) and a tail conv; inputs in [0, 1] are shifted by DIV2K's mean as in EDSR.

    Args:
        scale: 2, 3 or 4.
        n_blocks: Residual blocks.
        channels: Feature channels.
        res_scale: Residual scaling (EDSR-large: 0.1).
        n_colors: Image channels.

    Raises:
        ValueError: If ``scale`` is not 2, 3 or 4.

    Examples:
        >>> net = EDSR(2, n_blocks=1, channels=8)
        >>> net(torch.rand(1, 3, 5, 6)).shape
        torch.Size([1, 3, 10, 12])
    """

    def __init__(
        self,
        scale: int,
        n_blocks: int = 16,
        channels: int = 64,
        res_scale: float = 1.0,
        n_colors: int = 3,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"Expected `scale` in (2, 3, 4), but got {scale}.")
        self.scale = scale
        self.mean: Tensor
        self.register_buffer("mean", torch.tensor(_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(n_colors, channels, 3, padding=1)
        self.body = nn.Sequential(
            *(_ResBlock(channels, res_scale) for _ in range(n_blocks)),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        up: list[nn.Module] = []
        factors = [2, 2] if scale == 4 else [scale]
        for f in factors:
            up += [nn.Conv2d(channels, channels * f * f, 3, padding=1), nn.PixelShuffle(f)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(channels, n_colors, 3, padding=1)

    @classmethod
    def from_size(cls, scale: int, size: str, res_scale: float | None = None) -> EDSR:
        """Build one of :data:`EDSR_SIZES`.

        Raises:
            ValueError: If ``size`` is unknown.
        """
        if size not in EDSR_SIZES:
            raise ValueError(f"Expected `size` in {sorted(EDSR_SIZES)}, but got {size!r}.")
        blocks, channels, default_scale = EDSR_SIZES[size]
        return cls(scale, blocks, channels, default_scale if res_scale is None else res_scale)

    def forward(self, lr: Tensor) -> Tensor:
        """Super-resolve.

        Args:
            lr: Shape: (B, 3, H, W), float in [0, 1].

        Returns:
            Shape: (B, 3, scale * H, scale * W), float (about [0, 1]; not clamped).
        """
        x = self.head(lr - self.mean)
        x = x + self.body(x)
        return self.tail(self.upsample(x)) + self.mean


def haar_dwt(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One level of the orthonormal 2-D Haar DWT (``pytorch_wavelets.DWTForward(J=1, 'haar')``).

    For each 2x2 block ``[[a, b], [c, d]]``: LL = (a+b+c+d)/2, LH = (a+b-c-d)/2 (low-pass along
    the width, high-pass along the height), HL = (a-b+c-d)/2, HH = (a-b-c+d)/2.

    Args:
        x: Shape: (B, C, H, W), float, H and W even.

    Returns:
        ``(LL, LH, HL, HH)``, each Shape: (B, C, H/2, W/2).

    Raises:
        ValueError: If ``x`` is not 4-D or H or W is odd.

    Examples:
        >>> ll, lh, hl, hh = haar_dwt(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        >>> [t.item() for t in (ll, lh, hl, hh)]
        [5.0, -2.0, -1.0, 0.0]
    """
    if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"Expected `x` of shape (B, C, H, W) with even H, W, but got {x.shape}.")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (
        (a + b + c + d) / 2,
        (a + b - c - d) / 2,
        (a - b + c - d) / 2,
        (a - b - c + d) / 2,
    )


def haar_highpass(x: Tensor) -> Tensor:
    """PCL-SR's discriminator input: the Haar high-frequency bands, times 0.5 plus 0.5.

    Args:
        x: Shape: (B, 3, H, W), float in [0, 1], H and W even.

    Returns:
        ``cat(LH, HL, HH)`` along channels. Shape: (B, 9, H/2, W/2).
    """
    _, lh, hl, hh = haar_dwt(x)
    return torch.cat((lh, hl, hh), dim=1) * 0.5 + 0.5


class PatchDiscriminator(nn.Module):
    """The embedding network / discriminator of PCL-SR (``loss/discriminator.py``, patchD).

    Haar high-pass bands (9 channels) in; a stem Conv3x3 + BN + LeakyReLU(0.2) at ``width``
    channels, then 7 such blocks with (channels, stride) = (w, 2), (2w, 1), (2w, 2), (4w, 1),
    (4w, 2), (8w, 1), (8w, 2); convolutions have no bias. The patch head is AdaptiveAvgPool2d(4)
    and a 1x1 conv to one logit: 16 logits per image. ``width=64`` is the paper's network.

    Args:
        width: Channels of the stem (the paper: 64).
        n_colors: Image channels.

    Examples:
        >>> d = PatchDiscriminator(width=4)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> tuple(d(x).shape), tuple(d.features(x, 4).shape)
        ((2, 1, 4, 4), (2, 16, 4, 4))
    """

    def __init__(self, width: int = 64, n_colors: int = 3) -> None:
        super().__init__()
        channels = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 8 * width, 8 * width]
        strides = [1, 2, 1, 2, 1, 2, 1, 2]
        blocks = []
        c_in = 3 * n_colors
        for c_out, stride in zip(channels, strides):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.LeakyReLU(0.2),
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_in, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits.

        Args:
            x: Images. Shape: (B, 3, H, W), float in [0, 1], H and W even.

        Returns:
            Shape: (B, 1, 4, 4).
        """
        return self.logits(x)

    def logits(self, x: Tensor) -> Tensor:
        """Patch logits; see :meth:`forward`."""
        h = haar_highpass(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def features(self, x: Tensor, layer: int) -> Tensor:
        """The output of block ``layer`` (after its LeakyReLU); deeper blocks are not run.

        The released code asks for pre-activation features (``--before_relu``), but its
        in-place LeakyReLU overwrites them, so post-activation features are what it uses.

        Args:
            x: Images. Shape: (B, 3, H, W), float in [0, 1], H and W even.
            layer: Block index, 0..7 (PCL-SR: 4).

        Returns:
            Shape: (B, C_layer, H / s, W / s) with s = :func:`feature_stride` (layer).
        """
        h = haar_highpass(x)
        for block in self.blocks[: layer + 1]:
            h = block(h)
        return h


def feature_stride(layer: int) -> int:
    """Down-sampling of block ``layer``'s output relative to the HR image (with the DWT)."""
    return 2 * 2 ** math.ceil(layer / 2)
