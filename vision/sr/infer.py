"""Super-resolve whole images, tiled with overlap so that memory stays bounded.

Each tile is a ``tile`` x ``tile`` LR core plus ``pad`` LR pixels of context on every side
(clipped at the image border); only the core's SR pixels are kept. The default ``pad`` is the
network's receptive radius (:func:`receptive_radius`: EDSR-tiny 12 LR pixels, EDSR-baseline
36), so the result equals the untiled one up to float rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from vision.sr.data import to_tensor, to_uint8

__all__ = ["receptive_radius", "upscale_array", "upscale_tensor"]


def receptive_radius(model: nn.Module) -> int:
    """LR pixels of context that one output pixel of an EDSR depends on (3x3 convs)."""
    convs = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    return convs


@torch.no_grad()
def upscale_tensor(
    model: nn.Module, lr: torch.Tensor, scale: int, tile: int | None = 128, pad: int | None = None
) -> torch.Tensor:
    """Super-resolve one image, tile by tile.

    Args:
        model: An SR network, ``forward(lr) -> sr`` (in eval mode).
        lr: Shape: (3, H, W), float in [0, 1], on the model's device.
        scale: The model's scale.
        tile: LR core size of a tile; ``None`` runs the whole image at once.
        pad: LR context around each core; ``None``: the model's receptive radius, which makes
            the tiled result equal to the whole-image one (up to float rounding).

    Returns:
        Shape: (3, scale * H, scale * W), float in [0, 1] (clamped).
    """
    _, h, w = lr.shape
    pad = receptive_radius(model) if pad is None else pad
    if tile is None or (h <= tile + 2 * pad and w <= tile + 2 * pad):
        return model(lr[None])[0].clamp(0, 1)
    out = lr.new_zeros(3, h * scale, w * scale)
    for ty in range(math.ceil(h / tile)):
        for tx in range(math.ceil(w / tile)):
            y0, x0 = ty * tile, tx * tile
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(0, y0 - pad), max(0, x0 - pad)
            py1, px1 = min(h, y1 + pad), min(w, x1 + pad)
            sr = model(lr[None, :, py0:py1, px0:px1])[0]
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = sr[
                :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
    return out.clamp(0, 1)


def upscale_array(
    model: nn.Module,
    lr: NDArray[np.uint8],
    scale: int,
    tile: int | None = 128,
    pad: int | None = None,
    device: torch.device | str = "cpu",
) -> NDArray[np.uint8]:
    """Super-resolve an (H, W, 3) uint8 image; returns (scale*H, scale*W, 3) uint8."""
    x = to_tensor(lr).to(device)
    return to_uint8(upscale_tensor(model, x, scale, tile, pad))
