"""The digits data: a fixed stratified split of scikit-learn's 8x8 digits, and random views.

Data come from scikit-learn's bundled ``load_digits`` (1,797 images, no network).

Augmentations are batched torch ops (``affine_grid``/``grid_sample``), so they run on the
Trainer's device inside the task's step: random resized crop (zoom + aspect), shift, small
rotation, intensity jitter, gaussian noise and random erasing. No horizontal flip: digits are
not flip-invariant (a flipped 2 is not a 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DigitAugment", "DigitsSplit", "load_digits_split", "resize"]


@dataclass(frozen=True)
class DigitsSplit:
    """A fixed stratified train/test split of the digits.

    Attributes:
        x_train: Training images in [0, 1]. Shape: (N_train, 1, 8, 8), float32.
        y_train: Training labels 0..9. Shape: (N_train,), int64.
        x_test: Test images. Shape: (N_test, 1, 8, 8), float32.
        y_test: Test labels. Shape: (N_test,), int64.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_split(test_fraction: float = 0.3, split_seed: int = 0) -> DigitsSplit:
    """Load scikit-learn's digits and split them, stratified by class, reproducibly.

    Args:
        test_fraction: Fraction of the images held out for testing, in (0, 1).
        split_seed: Seed of the split (independent of the training seed).

    Returns:
        The split, pixel values scaled from 0..16 to [0, 1].

    Raises:
        ValueError: If ``test_fraction`` is not in (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"Expected `test_fraction` to be in (0, 1), but got {test_fraction}.")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )

    def images(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0

    return DigitsSplit(
        images(x_tr),
        torch.as_tensor(y_tr, dtype=torch.long),
        images(x_te),
        torch.as_tensor(y_te, dtype=torch.long),
    )


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of a batch of images (what the encoder sees at evaluation).

    The same resampling as :class:`DigitAugment` with every random draw at its identity (zero
    padding outside the image), so that training views and evaluation inputs agree.

    Args:
        x: Images. Shape: (B, 1, H, W), float.
        size: Output side.

    Returns:
        Shape: (B, 1, size, size).
    """
    if x.shape[-2:] == (size, size):
        return x
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _uniform(n: int, low: float, high: float, like: Tensor, gen: torch.Generator | None) -> Tensor:
    u = torch.rand(n, generator=gen, device=like.device if gen is None else gen.device)
    return (low + (high - low) * u).to(like.device, like.dtype)


class DigitAugment(nn.Module):
    """Random views of small grayscale images, batched (one draw per image).

    Args:
        out_size: Side of the output views (the input is resampled, e.g. 8 -> 16).
        scale: Zoom range of the random resized crop, ``(min, max)``; 0.7 = a crop of 70 % of
            the side, enlarged.
        aspect: Log aspect-ratio jitter: the ratio is ``exp(U(-aspect, aspect))``.
        shift: Maximum shift, as a fraction of the side.
        rotation: Maximum rotation in degrees.
        intensity: Brightness jitter: pixels times ``U(1 - intensity, 1 + intensity)``.
        noise_std: Standard deviation of the additive gaussian noise.
        noise_prob: Probability that a view gets noise.
        erase_prob: Probability of erasing one random square.
        erase_area: Largest erased area, as a fraction of the image (the smallest is 0.02).

    Shape:
        - Input: (B, 1, H, W), float in [0, 1].
        - Output: (B, 1, out_size, out_size).

    Examples:
        >>> aug = DigitAugment(out_size=16)
        >>> aug(torch.rand(4, 1, 8, 8)).shape
        torch.Size([4, 1, 16, 16])
    """

    def __init__(
        self,
        out_size: int = 16,
        scale: tuple[float, float] = (0.7, 1.0),
        aspect: float = 0.15,
        shift: float = 0.15,
        rotation: float = 15.0,
        intensity: float = 0.3,
        noise_std: float = 0.1,
        noise_prob: float = 0.5,
        erase_prob: float = 0.25,
        erase_area: float = 0.2,
    ) -> None:
        super().__init__()
        if out_size < 2:
            raise ValueError(f"Expected `out_size` to be >= 2, but got {out_size}.")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"Expected `scale` to be (min, max) with 0 < min <= max, got {scale}.")
        for name, value in (("noise_prob", noise_prob), ("erase_prob", erase_prob)):
            if not 0 <= value <= 1:
                raise ValueError(f"Expected `{name}` to be in [0, 1], but got {value}.")
        if not 0.02 <= erase_area <= 1:
            raise ValueError(f"Expected `erase_area` to be in [0.02, 1], but got {erase_area}.")
        self.out_size = out_size
        self.scale, self.aspect, self.shift, self.rotation = scale, aspect, shift, rotation
        self.intensity, self.noise_std, self.noise_prob = intensity, noise_std, noise_prob
        self.erase_prob, self.erase_area = erase_prob, erase_area

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one random view of every image.

        Args:
            x: Images. Shape: (B, 1, H, W), float.
            generator: Optional RNG (on ``x``'s device) for reproducible views.

        Returns:
            Views. Shape: (B, 1, out_size, out_size).
        """
        b, size, g = x.shape[0], self.out_size, generator
        zoom = _uniform(b, self.scale[0], self.scale[1], x, g)
        ratio = torch.exp(_uniform(b, -self.aspect, self.aspect, x, g))
        angle = _uniform(b, -self.rotation, self.rotation, x, g) * (math.pi / 180)
        tx = _uniform(b, -self.shift, self.shift, x, g) * 2  # grid coordinates span [-1, 1]
        ty = _uniform(b, -self.shift, self.shift, x, g) * 2
        cos, sin = torch.cos(angle), torch.sin(angle)
        sx, sy = zoom * ratio.sqrt(), zoom / ratio.sqrt()
        theta = torch.stack(
            [torch.stack([sx * cos, -sy * sin, tx], 1), torch.stack([sx * sin, sy * cos, ty], 1)],
            1,
        )
        grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
        views = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        gain = _uniform(b, 1 - self.intensity, 1 + self.intensity, x, g).view(b, 1, 1, 1)
        views = views * gain
        if self.noise_std > 0 and self.noise_prob > 0:
            on = (_uniform(b, 0, 1, x, g) < self.noise_prob).to(x.dtype).view(b, 1, 1, 1)
            noise = torch.randn(views.shape, generator=g, device=g.device if g else x.device)
            views = views + self.noise_std * on * noise.to(x.device, x.dtype)
        if self.erase_prob > 0:
            side = (_uniform(b, 0.02, self.erase_area, x, g).sqrt() * size).view(b, 1, 1)
            cy = (_uniform(b, 0, 1, x, g) * size).view(b, 1, 1)
            cx = (_uniform(b, 0, 1, x, g) * size).view(b, 1, 1)
            on = (_uniform(b, 0, 1, x, g) < self.erase_prob).view(b, 1, 1)
            pos = torch.arange(size, device=x.device, dtype=x.dtype) + 0.5
            inside = ((pos.view(1, size, 1) - cy).abs() < side / 2) & (
                (pos.view(1, 1, size) - cx).abs() < side / 2
            )
            views = views.masked_fill((inside & on).unsqueeze(1), 0.0)
        return views
