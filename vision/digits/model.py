"""The digits encoder: a small CNN with timm's encoder interface."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["DigitsCNN"]


class DigitsCNN(nn.Module):
    """A small CNN encoder for 8x8 or 16x16 grayscale digits (timm's encoder interface).

    Five 3x3 conv + BatchNorm + ReLU layers with two 2x2 max-pools, then global average pooling.

    Args:
        width: Channels of the first stage (the second has ``2 * width``).
        num_features: Output features F (channels of the last conv layer).

    Shape:
        - Input: (B, 1, H, W) with H, W >= 4.
        - Output of :meth:`forward_features`: (B, num_features).

    Examples:
        >>> import torch
        >>> DigitsCNN(8, 16).forward_features(torch.rand(2, 1, 16, 16)).shape
        torch.Size([2, 16])
    """

    def __init__(self, width: int = 32, num_features: int = 128) -> None:
        super().__init__()
        if width < 1 or num_features < 1:
            raise ValueError(
                f"Expected `width` and `num_features` >= 1, but got {width} and {num_features}."
            )

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(1, width),
            *block(width, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            *block(2 * width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, num_features),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.num_features = num_features

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features. Shape: (B, 1, H, W) -> (B, num_features)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"Expected `x` to have shape (B, 1, H, W), but got {tuple(x.shape)}.")
        out: Tensor = self.features(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(x)
