"""The generated contrastive set with known factors (in the spirit of CIFAR-10-on-MNIST).

Background images are random crops of scikit-image's bundled natural textures (brick, grass,
gravel, moon surface: the **common** factor ``texture``, 4 classes), each crop resized to
``size`` x ``size`` and standardised to the same mean and spread so that the class shows only
in the structure. Target images are the same kind of crops with a scikit-learn handwritten
digit blended in (the **salient** factor ``digit``, 10 classes), as the paper's
``0.5 * CIFAR + 0.5 * MNIST``: background ``0.5 * texture``, target ``0.5 * texture + 0.5 *
digit``. Train and test crops come from disjoint parts of each texture image (top three
quarters / bottom quarter) and from disjoint digit writers, so the probes measure
generalisation.

No network: both sources ship inside the installed packages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import data as skdata
from skimage.transform import resize
from sklearn.datasets import load_digits

from shared.errors import InputError
from shared.io import atomic_write_bytes

__all__ = ["GENERATED_FILE", "TEXTURES", "make_generated", "write_generated"]

TEXTURES = ("brick", "grass", "gravel", "moon")
GENERATED_FILE = "sepclr_generated.npz"
#: Everything ``make-data`` writes; a folder holding only these (and the hidden temporary files
#: of an interrupted atomic write, ``.<name>.*.tmp``) is an earlier output that it may replace.
_OUTPUTS = (GENERATED_FILE, "preview.png")


def _crop(
    img: np.ndarray, rows: tuple[int, int], size: int, rng: np.random.Generator
) -> np.ndarray:
    lo, hi = rows
    side = int(rng.integers(min(48, hi - lo), min(128, hi - lo) + 1))
    r = int(rng.integers(lo, hi - side + 1))
    c = int(rng.integers(0, img.shape[1] - side + 1))
    patch = resize(img[r : r + side, c : c + side], (size, size), anti_aliasing=True)
    patch = (patch - patch.mean()) / (patch.std() + 1e-6)
    return np.clip(0.5 + 0.18 * patch, 0.0, 1.0)


def _digit(img8: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    side = round(size * 0.72)
    d = resize(img8 / 16.0, (side, side), order=1, anti_aliasing=False)
    out = np.zeros((size, size))
    r, c = (int(rng.integers(0, size - side + 1)) for _ in range(2))
    out[r : r + side, c : c + side] = d
    return np.clip(out, 0.0, 1.0)


def make_generated(n_per_group: int = 1200, size: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    """Make the generated set.

    Args:
        n_per_group: Training images per group; the test split gets a third of it (at least 20).
        size: Image side (>= 16).
        seed: Seed of every random choice.

    Returns:
        Arrays ``{train,test}_images`` (N, 1, size, size) uint8, ``{train,test}_groups`` (N,)
        (0 background, 1 target), ``{train,test}_texture`` (N,) 0..3, ``{train,test}_digit``
        (N,) 0..9 on targets and -1 on background, ``factor_roles`` (strings
        ``texture=common``, ``digit=salient``).

    Raises:
        InputError: If ``n_per_group < 10`` or ``size < 16``.

    Examples:
        >>> d = make_generated(n_per_group=10, size=16)
        >>> d["train_images"].shape, int(d["train_groups"].sum())
        ((20, 1, 16, 16), 10)
    """
    if n_per_group < 10:
        raise InputError(f"Expected --n-per-group to be >= 10, but got {n_per_group}.")
    if size < 16:
        raise InputError(f"Expected --size to be >= 16, but got {size}.")
    rng = np.random.default_rng(seed)
    textures = [getattr(skdata, name)().astype(np.float64) / 255.0 for name in TEXTURES]
    digits = load_digits()
    order = np.random.default_rng(seed + 1).permutation(len(digits.target))
    cut = len(order) * 2 // 3
    digit_pool = {"train": order[:cut], "test": order[cut:]}
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_per_group), ("test", max(20, n_per_group // 3))):
        images, groups, tex, dig = [], [], [], []
        for group in (0, 1):
            for _ in range(n):
                t = int(rng.integers(len(TEXTURES)))
                img = textures[t]
                h = img.shape[0]
                rows = (0, h * 3 // 4) if split == "train" else (h * 3 // 4, h)
                x = 0.5 * _crop(img, rows, size, rng)
                d = -1
                if group == 1:
                    k = int(rng.choice(digit_pool[split]))
                    d = int(digits.target[k])
                    x = x + 0.5 * _digit(digits.images[k], size, rng)
                images.append(np.round(x * 255).astype(np.uint8))
                groups.append(group)
                tex.append(t)
                dig.append(d)
        perm = rng.permutation(len(images))
        out[f"{split}_images"] = np.stack(images)[perm][:, None]
        out[f"{split}_groups"] = np.asarray(groups, dtype=np.int64)[perm]
        out[f"{split}_texture"] = np.asarray(tex, dtype=np.int64)[perm]
        out[f"{split}_digit"] = np.asarray(dig, dtype=np.int64)[perm]
    out["factor_roles"] = np.asarray(["texture=common", "digit=salient"])
    return out


def _ours(name: str) -> bool:
    return name in _OUTPUTS or any(
        name.startswith(f".{output}.") and name.endswith(".tmp") for output in _OUTPUTS
    )


def _check_out(out: Path) -> None:
    """Refuse ``out`` unless it is new, empty, or an earlier output of :func:`write_generated`."""
    if out.exists() and not out.is_dir():
        raise InputError(f"Expected --out {out} to be a folder, but it is a file.")
    foreign = sorted(p.name for p in out.iterdir() if not _ours(p.name)) if out.is_dir() else []
    if foreign:
        raise InputError(
            f"Expected --out {out} to be a new or empty folder (or an earlier make-data output: "
            f"{', '.join(_OUTPUTS)}), but it holds other files ({len(foreign)}, e.g. "
            f"{foreign[0]!r})."
        )


def write_generated(
    out_dir: str | Path, n_per_group: int = 1200, size: int = 28, seed: int = 0
) -> Path:
    """Write :func:`make_generated` to ``out_dir/sepclr_generated.npz`` (atomically) and a preview.

    Args:
        out_dir: Output folder (created).
        n_per_group: See :func:`make_generated`.
        size: See :func:`make_generated`.
        seed: See :func:`make_generated`.

    Returns:
        The path of the ``.npz`` file.

    Raises:
        InputError: If ``out_dir`` is a file, a non-empty folder that is not an earlier output,
            or the sizes are invalid.
    """
    out = Path(out_dir)
    _check_out(out)
    arrays = make_generated(n_per_group, size, seed)
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = out / GENERATED_FILE
    atomic_write_bytes(path, buffer.getvalue())
    _write_preview(out / "preview.png", arrays)
    return path


def _write_preview(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, g = arrays["train_images"][:, 0], arrays["train_groups"]
    tex, dig = arrays["train_texture"], arrays["train_digit"]
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
    for row, group in enumerate((0, 1)):
        idx = np.flatnonzero(g == group)[:8]
        for ax, i in zip(axes[row], idx, strict=False):
            ax.imshow(x[i], cmap="gray", vmin=0, vmax=255)
            label = TEXTURES[tex[i]] + ("" if dig[i] < 0 else f" / {dig[i]}")
            ax.set_title(label, fontsize=6)
            ax.axis("off")
    fig.suptitle("background (top) and target (bottom): texture / digit", fontsize=8)
    from shared.io import atomic_open

    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
