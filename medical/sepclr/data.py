"""Contrastive-analysis data sets: background (group 0) and target (group 1) images.

Three inputs, one result (:class:`ContrastiveSet`):

* an ``.npz`` with ``{train,test}_images`` ((N, H, W) or (N, C, H, W); uint8 in [0, 255] or
  float in [0, 1]) and ``{train,test}_groups`` (0/1); MedMNIST files
  (``{split}_labels``, (N, 1)) are read with the label as the group, so PneumoniaMNIST gives
  normal = background and pneumonia = target. Any other ``{train,test}_<name>`` array of
  length N is a factor for the probes (a value < 0 = "not defined for this sample");
  ``factor_roles`` (strings ``name=common|salient``) says which space should hold it.
* a folder holding ``pneumoniamnist_<split>.npz`` (``data.split``: balanced or official) or
  ``sepclr_generated.npz``;
* a CSV ``path,group[,split][,attributes...]`` (or a folder with ``labels.csv``): image paths
  relative to the CSV, group ``0|1|background|target``, an optional ``split`` column
  (``train``/``test``; otherwise a seeded split), other columns are factors. 8-bit gray and
  RGB images are read as they are; 16-bit gray ones are scaled by 65535, 32-bit ones by their
  own range.

Every problem raises :class:`shared.errors.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import InputError

__all__ = ["ContrastiveSet", "from_arrays", "load_data"]

_GROUPS = {"0": 0, "1": 1, "background": 0, "target": 1, "bg": 0, "tg": 1}
_RESERVED = {"images", "groups", "labels"}


@dataclass
class ContrastiveSet:
    """Images of two groups with optional factors, split into train and test.

    Attributes:
        name: A short name (``generated``, ``pneumoniamnist-balanced``, the file stem).
        kind: ``generated``, ``pneumoniamnist`` or ``images`` (picks the loss preset).
        x_train: Shape: (N, C, H, W), float32 in [0, 1].
        g_train: Shape: (N,), int64, 0 background / 1 target.
        x_test: Shape: (M, C, H, W), float32.
        g_test: Shape: (M,), int64.
        f_train: Factor name -> (N,) int64 codes (< 0: undefined).
        f_test: Factor name -> (M,) int64 codes.
        roles: Factor name -> ``common`` or ``salient`` (the space that should hold it).
        source: The file(s) read, for the fingerprint.
    """

    name: str
    kind: str
    x_train: np.ndarray
    g_train: np.ndarray
    x_test: np.ndarray
    g_test: np.ndarray
    f_train: dict[str, np.ndarray] = field(default_factory=dict)
    f_test: dict[str, np.ndarray] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    source: list[Path] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


def _to_float(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = np.moveaxis(x, -1, 1)  # channels-last
    if x.ndim != 4:
        raise InputError(
            f"Expected {where} to have shape (N, H, W) or (N, C, H, W), but got {x.shape}."
        )
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / 255.0).astype(np.float32)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"Expected {where} to hold finite values, but it has NaN or inf.")
    if x.min() < 0 or x.max() > 1:
        raise InputError(
            f"Expected {where} to be uint8 or float in [0, 1], but its values span "
            f"[{x.min():.3g}, {x.max():.3g}]."
        )
    return x


def _groups(g: np.ndarray, where: str) -> np.ndarray:
    g = np.asarray(g).reshape(len(g), -1)
    if g.shape[1] != 1:
        raise InputError(f"Expected {where} to hold one group per image, but got {g.shape}.")
    g = g[:, 0]
    bad = ~np.isin(g, (0, 1))
    if bad.any():
        raise InputError(
            f"Expected {where} to hold 0 (background) or 1 (target), but found "
            f"{np.unique(g[bad])[:5].tolist()}."
        )
    return g.astype(np.int64)


def _check(ds: ContrastiveSet, where: str) -> ContrastiveSet:
    for split, g in (("train", ds.g_train), ("test", ds.g_test)):
        counts = np.bincount(g, minlength=2)
        if (counts < 2).any():
            raise InputError(
                f"Expected {where} to hold background (0) and target (1) images in its {split} "
                f"split, at least 2 of each, but found {counts[0]} background and {counts[1]} "
                "target: contrastive analysis needs both groups."
            )
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise InputError(
            f"Expected every image of {where} to have the same size, but train images are "
            f"{ds.x_train.shape[1:]} and test images {ds.x_test.shape[1:]}."
        )
    if min(ds.x_train.shape[2:]) < 8:
        raise InputError(f"Expected images of at least 8 x 8 in {where}, got {ds.image_shape}.")
    return ds


def _load_npz(path: Path) -> ContrastiveSet:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"Expected {path} to be a readable .npz file, but: {exc}") from exc
    return from_arrays(arrays, path)


def from_arrays(arrays: dict[str, np.ndarray], path: Path) -> ContrastiveSet:
    """Build a set from the arrays of an ``.npz`` (see the module docstring).

    Args:
        arrays: Name -> array, as in the file.
        path: The file they came from (names the set and the errors).

    Returns:
        The checked data set.

    Raises:
        InputError: If arrays are missing or malformed, or a group is (nearly) empty.
    """
    missing = [
        f"{s}_images" for s in ("train", "test") if f"{s}_images" not in arrays
    ] + [
        f"{s}_groups" for s in ("train", "test")
        if f"{s}_groups" not in arrays and f"{s}_labels" not in arrays
    ]  # fmt: skip
    if missing:
        raise InputError(
            f"Expected {path} to hold the arrays train_images, train_groups (or train_labels), "
            f"test_images, test_groups (or test_labels), but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (found: {', '.join(sorted(arrays))})."
        )
    xs, gs, fs = {}, {}, {}
    for s in ("train", "test"):
        xs[s] = _to_float(arrays[f"{s}_images"], f"{path.name}:{s}_images")
        graw = arrays.get(f"{s}_groups", arrays.get(f"{s}_labels"))
        gs[s] = _groups(graw, f"{path.name}:{s}_groups")  # type: ignore[arg-type]
        if len(gs[s]) != len(xs[s]):
            raise InputError(
                f"Expected {path.name}:{s}_groups to have one entry per image ({len(xs[s])}), "
                f"but it has {len(gs[s])}."
            )
        fs[s] = {
            k[len(s) + 1 :]: np.asarray(v).reshape(-1).astype(np.int64)
            for k, v in arrays.items()
            if k.startswith(f"{s}_")
            and k[len(s) + 1 :] not in _RESERVED
            and np.asarray(v).size == len(xs[s])
            and np.issubdtype(np.asarray(v).dtype, np.integer)
        }
    names = sorted(set(fs["train"]) & set(fs["test"]))
    roles = {}
    for item in arrays.get("factor_roles", np.asarray([], dtype=str)).tolist():
        name, _, role = str(item).partition("=")
        if name in names and role in ("common", "salient"):
            roles[name] = role
    is_pneu = path.name.startswith("pneumoniamnist")
    kind = "generated" if path.name == "sepclr_generated.npz" else (
        "pneumoniamnist" if is_pneu else "images"
    )  # fmt: skip
    name = "generated" if kind == "generated" else path.stem.replace("_", "-")
    ds = ContrastiveSet(
        name=name,
        kind=kind,
        x_train=xs["train"],
        g_train=gs["train"],
        x_test=xs["test"],
        g_test=gs["test"],
        f_train={k: fs["train"][k] for k in names},
        f_test={k: fs["test"][k] for k in names},
        roles=roles,
        source=[path],
    )
    return _check(ds, str(path))


def _read_image(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InputError(f"{where} names {path}, but that file does not exist.")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode.startswith("I;16"):  # 16-bit scans: full range kept, scaled by 65535
                arr = np.asarray(img, dtype=np.float64) / 65535.0
            elif mode in ("I", "F"):  # 32-bit: scaled by the image's own range
                arr = np.asarray(img, dtype=np.float64)
                arr = (arr - arr.min()) / max(float(np.ptp(arr)), 1e-12)
            else:
                arr = np.asarray(img.convert("RGB" if mode in ("RGB", "RGBA", "P") else "L"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"Expected {path} (named in {where}) to be an image, but: {exc}") from exc
    arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0.0, 1.0).astype(np.float32)
    return arr


def _load_csv(path: Path, test_fraction: float, split_seed: int) -> ContrastiveSet:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"Expected {path} to be a readable CSV file, but: {exc}") from exc
    if not rows:
        raise InputError(
            f"Expected {path} to list images (columns path,group,...), but it is empty."
        )
    cols = list(rows[0])
    if "path" not in cols or "group" not in cols:
        raise InputError(
            f"Expected {path} to have the columns path,group[,split][,attributes...], "
            f"but its header is {','.join(cols)}."
        )
    images: list[np.ndarray] = []
    groups: list[int] = []
    splits: list[str] = []
    for line, row in enumerate(rows, start=2):
        raw = (row["group"] or "").strip().lower()
        if raw not in _GROUPS:
            raise InputError(
                f"{path} line {line}: unknown group {row['group']!r}; expected one of "
                "0, 1, background, target."
            )
        groups.append(_GROUPS[raw])
        img = _read_image(path.parent / (row["path"] or "").strip(), f"{path} line {line}")
        if images and img.shape != images[0].shape:
            raise InputError(
                f"Expected every image of {path} to have the same size and channels as the "
                f"first, {images[0].shape} (C, H, W), but line {line} ({row['path']}) is "
                f"{img.shape}; resize them first."
            )
        images.append(img)
        splits.append((row.get("split") or "").strip().lower())
    x = _to_float(np.stack(images), str(path))
    g = np.asarray(groups, dtype=np.int64)
    if "split" in cols:
        bad = sorted({s for s in splits if s not in ("train", "test")})
        if bad:
            raise InputError(f"Expected the split column of {path} to be train or test, got {bad}.")
        is_test = np.asarray([s == "test" for s in splits])
    else:
        rng = np.random.default_rng(split_seed)
        is_test = np.zeros(len(g), dtype=bool)
        for group in (0, 1):  # stratified by group
            idx = rng.permutation(np.flatnonzero(g == group))
            is_test[idx[: round(len(idx) * test_fraction)]] = True
    factors: dict[str, np.ndarray] = {}
    for col in cols:
        if col in ("path", "group", "split"):
            continue
        values = [(row[col] or "").strip() for row in rows]
        levels = sorted({v for v in values if v != ""})
        factors[col] = np.asarray([levels.index(v) if v else -1 for v in values], dtype=np.int64)
    ds = ContrastiveSet(
        name=path.parent.name if path.name == "labels.csv" else path.stem,
        kind="images",
        x_train=x[~is_test],
        g_train=g[~is_test],
        x_test=x[is_test],
        g_test=g[is_test],
        f_train={k: v[~is_test] for k, v in factors.items()},
        f_test={k: v[is_test] for k, v in factors.items()},
        source=[path],
    )
    return _check(ds, str(path))


def load_data(
    path: str | Path,
    *,
    split: str = "balanced",
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> ContrastiveSet:
    """Load a contrastive data set from a file or folder (see the module docstring).

    Args:
        path: ``.npz``, CSV, or a folder holding one of them.
        split: PneumoniaMNIST file chosen in a folder: ``balanced`` or ``official``.
        test_fraction: Held-out fraction for a CSV without a ``split`` column.
        split_seed: Seed of that split.

    Returns:
        The data set.

    Raises:
        InputError: If the path does not exist or holds no readable data set of two groups.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"--data {p}: no such file or folder.")
    if not 0 < test_fraction < 1:
        raise InputError(f"Expected data.test_fraction in (0, 1), but got {test_fraction}.")
    if p.is_dir():
        for candidate in (p / f"pneumoniamnist_{split}.npz", p / "sepclr_generated.npz"):
            if candidate.is_file():
                return _load_npz(candidate)
        if (p / "labels.csv").is_file():
            return _load_csv(p / "labels.csv", test_fraction, split_seed)
        raise InputError(
            f"Expected the folder {p} to hold pneumoniamnist_{split}.npz, sepclr_generated.npz "
            "or labels.csv, but it holds none of them."
        )
    if p.suffix.lower() == ".npz":
        return _load_npz(p)
    if p.suffix.lower() == ".csv":
        return _load_csv(p, test_fraction, split_seed)
    raise InputError(f"Expected --data {p} to be an .npz file, a .csv file or a folder.")
