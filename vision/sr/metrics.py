"""PSNR and SSIM as the SR papers compute them (MATLAB / BasicSR conventions).

* Y channel: BT.601 ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` for RGB in [0, 1] (MATLAB's
  ``rgb2ycbcr``), not rounded; data range 255.
* A border of ``crop`` pixels (the scale) is removed before measuring.
* SSIM: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, over the 'valid' region of the
  window (MATLAB ``ssim_index``); on RGB the mean of the three channels' SSIM.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.ndimage import correlate1d
from torch import Tensor

__all__ = ["image_metrics", "psnr", "psnr_np", "rgb_to_y", "ssim_np"]

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(image: NDArray[np.generic]) -> NDArray[np.float64]:
    """BT.601 luma of an RGB image with values in [0, 255], in [16, 235].

    Args:
        image: Shape: (H, W, 3), values in [0, 255].

    Returns:
        Shape: (H, W), float64.

    Examples:
        >>> float(rgb_to_y(np.full((1, 1, 3), 255.0))[0, 0])
        235.0
    """
    x = image.astype(np.float64) / 255.0
    return 16.0 + x[..., 0] * _Y_WEIGHTS[0] + x[..., 1] * _Y_WEIGHTS[1] + x[..., 2] * _Y_WEIGHTS[2]


def _crop(x: NDArray[np.float64], crop: int) -> NDArray[np.float64]:
    return x[crop:-crop, crop:-crop] if crop > 0 else x


def psnr_np(a: NDArray[np.generic], b: NDArray[np.generic], crop: int = 0) -> float:
    """PSNR in dB of two images with values in [0, 255] (data range 255).

    Args:
        a: Shape: (H, W) or (H, W, C).
        b: Same shape.
        crop: Border removed on each side.

    Returns:
        The PSNR (``inf`` for identical images).

    Examples:
        >>> round(psnr_np(np.zeros((4, 4)), np.full((4, 4), 255.0)), 6)
        0.0
    """
    x = _crop(a.astype(np.float64), crop)
    y = _crop(b.astype(np.float64), crop)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gaussian_window() -> NDArray[np.float64]:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _filter_valid(x: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    y = correlate1d(correlate1d(x, g, axis=0, mode="nearest"), g, axis=1, mode="nearest")
    return y[5:-5, 5:-5]


def _ssim_channel(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mu_x**2
    syy = _filter_valid(y * y, g) - mu_y**2
    sxy = _filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def ssim_np(a: NDArray[np.generic], b: NDArray[np.generic], crop: int = 0) -> float:
    """MATLAB-style SSIM of two images with values in [0, 255].

    Args:
        a: Shape: (H, W) or (H, W, C), H and W at least ``11 + 2 * crop``.
        b: Same shape.
        crop: Border removed on each side before the windows.

    Returns:
        The SSIM (mean over channels for (H, W, C)).

    Raises:
        ValueError: If the shapes differ or the image is smaller than the window.
    """
    if a.shape != b.shape:
        raise ValueError(f"Expected images of one shape, but got {a.shape} and {b.shape}.")
    x, y = _crop(a.astype(np.float64), crop), _crop(b.astype(np.float64), crop)
    if min(x.shape[:2]) < 11:
        raise ValueError(f"Expected images of at least 11x11 after cropping, got {x.shape}.")
    if x.ndim == 2:
        return _ssim_channel(x, y)
    return float(np.mean([_ssim_channel(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def image_metrics(sr: NDArray[np.uint8], hr: NDArray[np.uint8], crop: int) -> dict[str, float]:
    """``psnr_y``, ``ssim_y``, ``psnr_rgb``, ``ssim_rgb`` of an SR image against its HR.

    Args:
        sr: Shape: (H, W, 3), uint8.
        hr: Shape: (H, W, 3), uint8.
        crop: Border removed (the scale).

    Returns:
        The four metrics.
    """
    ys, yh = rgb_to_y(sr), rgb_to_y(hr)
    return {
        "psnr_y": psnr_np(ys, yh, crop),
        "ssim_y": ssim_np(ys, yh, crop),
        "psnr_rgb": psnr_np(sr, hr, crop),
        "ssim_rgb": ssim_np(sr, hr, crop),
    }


def psnr(sr: Tensor, hr: Tensor, crop: int = 0, y_channel: bool = True) -> Tensor:
    """PSNR per image of batches in [0, 1], after rounding to 8 bits (torch; for validation).

    Args:
        sr: Shape: (B, 3, H, W), float in [0, 1].
        hr: Shape: (B, 3, H, W), float in [0, 1].
        crop: Border removed on each side.
        y_channel: On BT.601 Y (else on RGB).

    Returns:
        Shape: (B,), float64.
    """
    x = sr.detach().double().clamp(0, 1).mul(255).round()
    y = hr.detach().double().clamp(0, 1).mul(255).round()
    if y_channel:
        w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
        x = (x / 255 * w).sum(1, keepdim=True) + 16
        y = (y / 255 * w).sum(1, keepdim=True) + 16
    if crop > 0:
        x, y = x[..., crop:-crop, crop:-crop], y[..., crop:-crop, crop:-crop]
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)
