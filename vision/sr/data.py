"""The in-memory image store and the random HR/LR patch dataset.

Every image is decoded once, cropped to a multiple of the scale, and its bicubic LR computed
once (:func:`~vision.sr.imaging.bicubic_lr`, on the whole image as the benchmarks do); a training
sample is then two array slices and a flip/rotation, so loading never dominates a CPU step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import Dataset

from shared.errors import InputError
from vision.sr.imaging import (
    BUNDLED_TRAIN,
    BUNDLED_VAL,
    bicubic_lr,
    bundled_dir,
    list_images,
    mod_crop,
    read_image,
)

__all__ = [
    "ImagePair",
    "PatchDataset",
    "bundled_store",
    "check_scale",
    "folder_store",
    "load_pairs",
    "to_tensor",
    "to_uint8",
]


@dataclass(frozen=True)
class ImagePair:
    """One decoded image and its bicubic LR.

    Attributes:
        name: The file stem.
        hr: Shape: (H, W, 3), uint8, H and W multiples of the scale.
        lr: Shape: (H / scale, W / scale, 3), uint8.
        grey: Whether the source file was grey.
        path: The source file (``None`` for arrays).
    """

    name: str
    hr: NDArray[np.uint8]
    lr: NDArray[np.uint8]
    grey: bool = False
    path: Path | None = None


def check_scale(scale: int, option: str = "--scale") -> int:
    """Return ``scale`` if it is 2, 3 or 4.

    Raises:
        InputError: Otherwise, naming ``option``.
    """
    if scale not in (2, 3, 4):
        raise InputError(f"{option} {scale}: expected a super-resolution scale of 2, 3 or 4.")
    return scale


def load_pairs(
    paths: Sequence[str | os.PathLike[str]],
    scale: int,
    min_size: int = 1,
    why: str = "the HR patch size; lower data.patch_size or remove the file",
) -> list[ImagePair]:
    """Decode image files and compute their bicubic LR images.

    Args:
        paths: Image files.
        scale: 2, 3 or 4.
        min_size: The smallest HR height and width accepted (the HR patch size for training).
        why: What ``min_size`` is, for the error message.

    Returns:
        One :class:`ImagePair` per file.

    Raises:
        InputError: If a file is unreadable or truncated, or smaller than ``min_size``.
    """
    check_scale(scale)
    pairs = []
    for path in paths:
        image, grey = read_image(path)
        need = max(min_size, 2 * scale)
        if image.shape[0] < need or image.shape[1] < need:
            raise InputError(
                f"{path}: expected an image of at least {need}x{need} pixels ({why}), but it "
                f"is {image.shape[1]}x{image.shape[0]}."
            )
        hr = mod_crop(image, scale)
        pairs.append(ImagePair(Path(path).stem, hr, bicubic_lr(hr, scale), grey, Path(path)))
    return pairs


def folder_store(
    folder: str | os.PathLike[str], scale: int, min_size: int = 1, option: str = "--data-dir"
) -> list[ImagePair]:
    """Every image of a folder as :class:`ImagePair` objects (sorted by file name).

    Raises:
        InputError: If the folder is missing or empty, or an image is bad (see
            :func:`load_pairs`).
    """
    return load_pairs(list_images(folder, option), scale, min_size)


def bundled_store(scale: int, split: str = "train", min_size: int = 1) -> list[ImagePair]:
    """scikit-image's bundled natural images (``"train"`` or the held-out ``"val"`` ones)."""
    names = BUNDLED_TRAIN if split == "train" else BUNDLED_VAL
    return load_pairs([bundled_dir() / n for n in names], scale, min_size)


def to_tensor(image: NDArray[np.uint8]) -> Tensor:
    """An (H, W, 3) uint8 array as a (3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(image: Tensor) -> NDArray[np.uint8]:
    """A (3, H, W) tensor in [0, 1] as an (H, W, 3) uint8 array (rounded, clipped)."""
    arr = image.detach().float().clamp(0, 1).mul(255.0).round().byte().cpu()
    return np.ascontiguousarray(arr.permute(1, 2, 0).numpy())


class PatchDataset(Dataset[tuple[Tensor, Tensor]]):
    """Random aligned LR/HR patches with random flips and 90-degree rotations.

    Each item draws an image (with probability proportional to its number of possible patch
    positions), a position and an augmentation from its own generator, seeded by the item's
    index and ``torch.initial_seed()`` (which the Trainer sets at every epoch from the run's seed
    and the epoch). So an epoch's patches depend only on the seed and the epoch, never on other
    draws from the global RNG: the PCL run and its L1 control see the same patches.

    Args:
        pairs: The decoded images.
        scale: The SR scale of ``pairs``.
        patch_size: HR patch side (a multiple of ``scale``).
        length: Samples per epoch.
        augment: Random horizontal/vertical flips and transposition.

    Raises:
        InputError: If ``patch_size`` is not a multiple of ``scale`` or an image is smaller.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        scale: int,
        patch_size: int,
        length: int,
        augment: bool = True,
    ) -> None:
        if patch_size % scale or patch_size // scale < 2:
            raise InputError(
                f"data.patch_size={patch_size}: expected a multiple of the scale {scale} "
                f"(at least {2 * scale})."
            )
        if not pairs:
            raise InputError("Expected at least one training image, but got none.")
        for pair in pairs:
            if min(pair.hr.shape[:2]) < patch_size:
                where = pair.path or pair.name
                raise InputError(
                    f"{where}: expected an image of at least {patch_size}x{patch_size} pixels "
                    f"(data.patch_size), but it is {pair.hr.shape[1]}x{pair.hr.shape[0]}."
                )
        self.pairs, self.scale, self.patch, self.length = list(pairs), scale, patch_size, length
        self.augment = augment
        lp = patch_size // scale
        counts = [(p.lr.shape[0] - lp + 1) * (p.lr.shape[1] - lp + 1) for p in self.pairs]
        self.weights = torch.tensor(counts, dtype=torch.float64)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """Return one (LR, HR) pair: Shape: (3, P/s, P/s) and (3, P, P), float in [0, 1]."""
        g = torch.Generator().manual_seed((torch.initial_seed() * 1_000_003 + index) % 2**63)
        i = int(torch.multinomial(self.weights, 1, generator=g))
        pair, s, lp = self.pairs[i], self.scale, self.patch // self.scale
        y = int(torch.randint(pair.lr.shape[0] - lp + 1, (), generator=g))
        x = int(torch.randint(pair.lr.shape[1] - lp + 1, (), generator=g))
        lr = to_tensor(pair.lr[y : y + lp, x : x + lp])
        hr = to_tensor(pair.hr[y * s : (y + lp) * s, x * s : (x + lp) * s])
        if self.augment:
            flips = torch.randint(2, (3,), generator=g).tolist()
            if flips[0]:
                lr, hr = lr.flip(-1), hr.flip(-1)
            if flips[1]:
                lr, hr = lr.flip(-2), hr.flip(-2)
            if flips[2]:
                lr, hr = lr.transpose(-1, -2), hr.transpose(-1, -2)
        return lr.contiguous(), hr.contiguous()
