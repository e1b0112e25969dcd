"""PCL-SR's positives (sharpened HR) and negatives (blurred HR, bicubic-upsampled LR), in torch.

They transcribe the kornia calls of the released code (``kornia.enhance.sharpness``,
``kornia.filters.gaussian_blur2d``) so that kornia is not a dependency.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "blur_anisotropic",
    "gaussian_kernel1d",
    "quantize",
    "random_negatives",
    "random_positives",
    "sharpen",
    "upsample_bicubic",
]


def quantize(x: Tensor) -> Tensor:
    """Round images in [0, 1] to the 256 levels of 8 bits (the released code re-quantises)."""
    return x.clamp(0, 1).mul(255.0).round().div(255.0)


def sharpen(images: Tensor, factor: Tensor) -> Tensor:
    """PIL/kornia ``sharpness``: blend each image with its 3x3-smoothed copy.

    ``out = smooth + factor * (image - smooth)`` inside the one-pixel border (the border is kept),
    clamped to [0, 1]; the smoothing kernel is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13. A factor
    above 1 sharpens, below 1 softens, 1 is the identity.

    Args:
        images: Shape: (B, C, H, W), float in [0, 1].
        factor: One factor per image. Shape: (B,), float.

    Returns:
        Shape: (B, C, H, W).

    Examples:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> torch.allclose(sharpen(x, torch.ones(2)), x)
        True
    """
    b, c = images.shape[:2]
    kernel = images.new_tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    smooth = F.conv2d(images, kernel.expand(c, 1, 3, 3), groups=c).clamp(0, 1)
    smooth = F.pad(smooth, (1, 1, 1, 1))
    border = torch.ones_like(images, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    smooth = torch.where(border, images, smooth)
    f = factor.to(images.dtype).view(b, 1, 1, 1)
    return (smooth + (images - smooth) * f).clamp(0, 1)


def gaussian_kernel1d(size: Tensor, sigma: Tensor, max_size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels of odd ``size``, zero-padded to ``max_size`` taps.

    Args:
        size: Odd kernel sizes <= ``max_size``. Shape: (B,), int.
        sigma: Standard deviations. Shape: (B,), float.
        max_size: Odd number of taps of the output.

    Returns:
        Shape: (B, max_size), each row summing to 1 over its central ``size`` taps.
    """
    x = torch.arange(max_size, device=sigma.device, dtype=sigma.dtype) - max_size // 2
    inside = x.abs()[None, :] <= (size[:, None] // 2)
    g = torch.exp(-(x[None, :] ** 2) / (2 * sigma[:, None] ** 2)) * inside
    return g / g.sum(dim=1, keepdim=True)


def blur_anisotropic(
    images: Tensor,
    size_x: Tensor,
    size_y: Tensor,
    sigma_x: Tensor,
    sigma_y: Tensor,
    max_size: int = 11,
) -> Tensor:
    """Axis-aligned anisotropic Gaussian blur with one kernel per image (reflect borders).

    Matches ``kornia.filters.gaussian_blur2d(img, (ky, kx), (sy, sx))`` image by image.

    Args:
        images: Shape: (B, C, H, W), float, H and W > ``max_size // 2``.
        size_x: Odd kernel widths. Shape: (B,), int.
        size_y: Odd kernel heights. Shape: (B,), int.
        sigma_x: Shape: (B,), float.
        sigma_y: Shape: (B,), float.
        max_size: The largest kernel size.

    Returns:
        Shape: (B, C, H, W).
    """
    b, c, h, w = images.shape
    kx = gaussian_kernel1d(size_x, sigma_x.to(images.dtype), max_size)
    ky = gaussian_kernel1d(size_y, sigma_y.to(images.dtype), max_size)
    r = max_size // 2
    x = F.pad(images, (r, r, r, r), mode="reflect").reshape(1, b * c, h + 2 * r, w + 2 * r)
    wx = kx.repeat_interleave(c, dim=0).view(b * c, 1, 1, max_size)
    wy = ky.repeat_interleave(c, dim=0).view(b * c, 1, max_size, 1)
    x = F.conv2d(x, wx, groups=b * c)
    x = F.conv2d(x, wy, groups=b * c)
    return x.view(b, c, h, w)


def upsample_bicubic(lr: Tensor, size: Sequence[int]) -> Tensor:
    """The released code's LR negative: bicubic (align_corners=True) to HR size, clamped.

    Args:
        lr: Shape: (B, C, h, w).
        size: The HR (H, W).

    Returns:
        Shape: (B, C, H, W), in [0, 1].
    """
    up = F.interpolate(lr, size=tuple(size), mode="bicubic", align_corners=True)
    return up.clamp(0, 1)


def random_positives(
    hr: Tensor, n: int, low: float, high: float, generator: torch.Generator | None = None
) -> list[Tensor]:
    """``n`` sharpened copies of ``hr``, one factor ~ U[low, high] per image and copy."""
    out = []
    for _ in range(n):
        f = torch.rand(hr.shape[0], generator=generator, device=hr.device) * (high - low) + low
        out.append(quantize(sharpen(hr, f)))
    return out


def random_negatives(
    hr: Tensor,
    n: int,
    sizes: Sequence[int],
    sigma_low: float,
    sigma_high: float,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """``n`` blurred copies of ``hr``: kernel sizes drawn from ``sizes``, sigmas uniform."""
    out = []
    b, dev = hr.shape[0], hr.device
    choices = torch.tensor(list(sizes), device=dev)
    for _ in range(n):
        pick = torch.randint(len(sizes), (2, b), generator=generator, device=dev)
        sig = torch.rand(2, b, generator=generator, device=dev) * (sigma_high - sigma_low)
        sig = sig + sigma_low
        blurred = blur_anisotropic(
            hr, choices[pick[0]], choices[pick[1]], sig[0], sig[1], max(sizes)
        )
        out.append(blurred)
    return out
