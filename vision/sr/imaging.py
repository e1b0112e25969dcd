"""Image files, MATLAB-style bicubic resizing and the bundled training images.

Images are ``uint8`` arrays of shape (H, W, 3); grey files are replicated to three channels
(:func:`read_image` says whether the file was grey, so that :func:`write_image` can write a grey
result back).

:func:`imresize` is MATLAB's ``imresize(img, scale, 'bicubic')`` (cubic kernel with a = -0.5,
the kernel widened by ``1/scale`` when shrinking, i.e. antialiasing, and symmetric border
handling): the convention with which every SR benchmark makes its LR images. It works in float
throughout and rounds once at the end (BasicSR's port; MATLAB rounds a ``uint8`` image after each
axis, which changes a few pixels by one level).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from shared.errors import InputError
from shared.io import atomic_write_bytes

__all__ = [
    "BUNDLED_TRAIN",
    "BUNDLED_VAL",
    "IMAGE_SUFFIXES",
    "bicubic_lr",
    "bundled_dir",
    "bundled_images",
    "cubic",
    "imresize",
    "list_images",
    "mod_crop",
    "read_image",
    "write_image",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: scikit-image's bundled natural images used for training (no download needed).
BUNDLED_TRAIN = (
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "ihc.png",
    "hubble_deep_field.jpg",
)
#: Held out for validation and the demo's evaluation.
BUNDLED_VAL = ("chelsea.png", "coffee.png")


def read_image(path: str | os.PathLike[str]) -> tuple[NDArray[np.uint8], bool]:
    """Read a PNG/JPEG/... file as an RGB ``uint8`` array.

    Args:
        path: The image file.

    Returns:
        The image (Shape: (H, W, 3), uint8) and whether the file was grey.

    Raises:
        InputError: If the file cannot be read or decoded (missing, truncated, not an image),
            or has an unsupported layout or bit depth.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decodes everything now: a truncated file fails here
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise InputError(
                    f"{path}: expected an 8-bit image, but it has mode {mode} (16/32-bit)."
                )
            arr = np.array(im.convert("RGB"), dtype=np.uint8)
            grey = mode in ("L", "1", "LA") or (mode == "P" and _is_grey(arr))
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(
            f"{path}: expected a readable PNG/JPEG image, but decoding failed ({err}); "
            "the file is corrupt or truncated."
        ) from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{path}: expected a 2-D image, but got shape {arr.shape}.")
    return np.ascontiguousarray(arr), bool(grey)


def _is_grey(arr: NDArray[np.uint8]) -> bool:
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())


def write_image(path: str | os.PathLike[str], image: NDArray[np.uint8], grey: bool = False) -> None:
    """Write an RGB ``uint8`` image as PNG, atomically.

    Args:
        path: The target ``.png`` file.
        image: Shape: (H, W, 3), uint8.
        grey: Write one channel (the rounded mean of the three).
    """
    import io

    from PIL import Image

    if grey:
        im = Image.fromarray(np.rint(image.astype(np.float64).mean(axis=2)).astype(np.uint8), "L")
    else:
        im = Image.fromarray(np.ascontiguousarray(image), "RGB")
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def list_images(folder: str | os.PathLike[str], option: str = "--data-dir") -> list[Path]:
    """The image files directly inside ``folder``, sorted by name.

    Args:
        folder: A folder of images.
        option: The option that named the folder (for error messages).

    Returns:
        The paths.

    Raises:
        InputError: If the folder is missing or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{option} {folder}: expected a folder of PNG/JPEG images.")
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise InputError(
            f"{option} {folder}: expected PNG/JPEG images ({', '.join(IMAGE_SUFFIXES)}), "
            "but the folder holds none."
        )
    return paths


def bundled_images(names: Sequence[str]) -> list[tuple[str, NDArray[np.uint8]]]:
    """scikit-image's bundled images (files shipped inside the package) as RGB ``uint8`` arrays.

    Args:
        names: File names in ``skimage/data`` (see :data:`BUNDLED_TRAIN`).

    Returns:
        ``(stem, image)`` pairs; image Shape: (H, W, 3), uint8.
    """
    return [(Path(name).stem, read_image(bundled_dir() / name)[0]) for name in names]


def bundled_dir() -> Path:
    """The folder of scikit-image's bundled data files."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def mod_crop(image: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    """Crop the bottom/right so that height and width are multiples of ``scale``.

    Args:
        image: Shape: (H, W, C).
        scale: The SR scale.

    Returns:
        Shape: (H - H % scale, W - W % scale, C).
    """
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:h, :w]


def cubic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``).

    Args:
        x: Distances. Any shape.

    Returns:
        Kernel values, same shape.

    Examples:
        >>> cubic(np.array([0.0, 0.5, 1.0, 1.5, 2.0])).tolist()
        [1.0, 0.5625, 0.0, -0.0625, 0.0]
    """
    a = np.abs(x)
    a2, a3 = a * a, a * a * a
    return (1.5 * a3 - 2.5 * a2 + 1) * (a <= 1) + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * (
        (a > 1) & (a <= 2)
    )


def _weights(in_len: int, out_len: int, scale: float) -> NDArray[np.float64]:
    """The (out_len, in_len) matrix of MATLAB's ``contributions`` along one axis."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if antialias else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), w.ravel())
    return matrix


def imresize(image: NDArray[np.generic], scale: float) -> NDArray[np.float64]:
    """MATLAB's ``imresize(image, scale, 'bicubic')`` with antialiasing, in float64.

    Args:
        image: Shape: (H, W) or (H, W, C), any real dtype (values are not rescaled).
        scale: Size factor (0.5 halves, 2 doubles); the output is ``ceil(H * scale)`` by
            ``ceil(W * scale)``.

    Returns:
        The resized image in float64 (round and clip it yourself for ``uint8``).

    Raises:
        ValueError: If ``image`` is not 2-D or 3-D or ``scale`` is not positive.

    Examples:
        >>> ramp = np.arange(1.0, 9.0)[None, :].repeat(4, axis=0)
        >>> imresize(ramp, 0.5)[0, 1]  # interior: 3.5, minus the mirrored tap's share
        3.48828125
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"Expected `image` of shape (H, W) or (H, W, C), but got {image.shape}.")
    if not scale > 0:
        raise ValueError(f"Expected `scale` > 0, but got {scale}.")
    h, w = image.shape[:2]
    out_h, out_w = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
    rows, cols = _weights(h, out_h, scale), _weights(w, out_w, scale)
    img = image.astype(np.float64)
    if img.ndim == 2:
        return rows @ img @ cols.T
    return np.einsum("oh,hwc,pw->opc", rows, img, cols, optimize=True)


def bicubic_lr(hr: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    """The LR image of the SR benchmarks: MATLAB bicubic down by ``scale``, rounded to uint8.

    Args:
        hr: Shape: (H, W, 3), uint8, with H and W multiples of ``scale`` (see :func:`mod_crop`).
        scale: 2, 3 or 4.

    Returns:
        Shape: (H / scale, W / scale, 3), uint8.
    """
    return np.clip(np.rint(imresize(hr, 1.0 / scale)), 0, 255).astype(np.uint8)
