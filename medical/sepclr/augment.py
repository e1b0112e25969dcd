"""Batched, on-device augmentations for whole image tensors (the kornia pipelines of 4.4).

One ``affine_grid`` + ``grid_sample`` call does the random resized crop, the flips and the
rotation of a whole batch at once (one 2 x 3 matrix per image); the intensity jitter
(brightness, contrast, and for RGB saturation and random grayscale) is a few broadcast ops.
Nothing loops over images, so augmentation stays a small share of an epoch on the CPU
(``benchmarks/bench_sepclr.py`` measures it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medical.sepclr.config import AugmentConfig

__all__ = ["BatchAugment", "affine_params"]


def affine_params(
    n: int,
    cfg: AugmentConfig,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one 2 x 3 sampling matrix per image (crop, flips, rotation).

    A random resized crop of area fraction ``a ~ U(crop_min, 1)`` and aspect ratio ``r``
    (log-uniform in [3/4, 4/3]) covers ``w = sqrt(a r)`` x ``h = sqrt(a / r)`` of the image
    (clipped to 1), centred anywhere it fits; the rotation is ``U(-rotation, rotation)``
    degrees; a flip negates one axis. ``affine_grid`` maps output to input coordinates.

    Args:
        n: Number of images.
        cfg: Augmentation settings.
        device: Device of the result.
        generator: Optional torch generator (tests).

    Returns:
        Shape: (n, 2, 3), float32.
    """

    def u(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)

    area = u(cfg.crop_min, 1.0)
    log_r = u(math.log(3 / 4), math.log(4 / 3))
    w = torch.sqrt(area * log_r.exp()).clamp(max=1.0)
    h = torch.sqrt(area / log_r.exp()).clamp(max=1.0)
    tx = u(-1.0, 1.0) * (1 - w)
    ty = u(-1.0, 1.0) * (1 - h)
    fx = torch.where(u(0, 1) < cfg.hflip, -1.0, 1.0)
    fy = torch.where(u(0, 1) < cfg.vflip, -1.0, 1.0)
    angle = u(-1.0, 1.0) * math.radians(cfg.rotation)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [
            torch.stack([cos * w * fx, -sin * h * fy, tx], dim=1),
            torch.stack([sin * w * fx, cos * h * fy, ty], dim=1),
        ],
        dim=1,
    )
    return theta


class BatchAugment(nn.Module):
    """Random resized crop, flips, rotation and intensity jitter of a whole batch.

    Args:
        cfg: Augmentation settings.

    Shape:
        - Input: (B, C, H, W), float in [0, 1], C = 1 or 3.
        - Output: (B, C, H, W), float in [0, 1], a new random view of each image.

    Raises:
        ValueError: If the input is not (B, C, H, W).

    Examples:
        >>> aug = BatchAugment(AugmentConfig())
        >>> aug(torch.rand(4, 1, 28, 28)).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        self.cfg = cfg

    @torch.no_grad()
    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return one random view of every image (see the class docstring)."""
        if x.ndim != 4:
            raise ValueError(f"Expected `x` to have shape (B, C, H, W), but got {tuple(x.shape)}.")
        cfg, b, dev = self.cfg, x.shape[0], x.device
        theta = affine_params(b, cfg, device=dev, generator=generator).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        if cfg.jitter > 0 and cfg.jitter_p > 0:
            shape = (b, 1, 1, 1)

            def u(lo: float, hi: float) -> Tensor:
                return lo + (hi - lo) * torch.rand(shape, device=dev, generator=generator)

            apply = (u(0, 1) < cfg.jitter_p).to(x.dtype)
            j = cfg.jitter
            bright = 1 + apply * u(-j, j)
            contrast = 1 + apply * u(-j, j)
            out = out * bright
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = (out - mean) * contrast + mean
            if x.shape[1] == 3:
                gray = out.mean(dim=1, keepdim=True)
                sat = 1 + apply * u(-j, j)
                out = (out - gray) * sat + gray
                to_gray = (u(0, 1) < cfg.gray_p).to(x.dtype)
                out = out * (1 - to_gray) + out.mean(dim=1, keepdim=True) * to_gray
            out = out.clamp(0.0, 1.0)
        return out
