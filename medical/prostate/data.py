"""Dataset folders in the MSD layout: checks, case split, MONAI transforms and cached datasets.

A folder holds ``imagesTr/`` and ``labelsTr/`` (same file names), optionally ``imagesTs/``
(unlabelled images) and ``dataset.json`` (the MSD index; its ``training`` entries win when
present). Images are T2-weighted NIfTI, 3D or 4D with the channel last (the MSD prostate images
are T2 + ADC; channel 0, T2, is used). Labels are 0 background, 1 PZ, 2 TZ, 3 DPU, 4 AFS;
two-zone MSD labels (0, 1, 2) are accepted, and only the zones present in the folder are then
trained on (the others still have output channels, which the loss drives to zero) and scored.

Every check raises :class:`~shared.errors.InputError` naming the file: unreadable or missing
NIfTI, a 2D image, image and label of different shapes or affines, label values outside 0-4 or
not integers, an empty folder, a ``dataset.json`` naming files that do not exist.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai import transforms as mt
from monai.data import Dataset, PersistentDataset, list_data_collate
from scipy import ndimage

from medical.prostate import ZONES
from medical.prostate.config import DataConfig
from shared.errors import InputError

__all__ = [
    "Case",
    "DatasetIndex",
    "ImageOnlyCase",
    "SignedDistanced",
    "build_dataset",
    "collate",
    "eval_transforms",
    "read_label",
    "scan_dataset",
    "split_cases",
    "train_transforms",
    "validate_image",
]

logger = logging.getLogger(__name__)

_NIFTI = (".nii", ".nii.gz")
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


@dataclass(frozen=True)
class Case:
    """One labelled case.

    Attributes:
        name: The case name (image file name without ``.nii[.gz]``).
        image: Path of the image.
        label: Path of the label.
        zones: Label values (1-4) present in the label.
    """

    name: str
    image: Path
    label: Path
    zones: tuple[int, ...] = ()


@dataclass(frozen=True)
class ImageOnlyCase:
    """One unlabelled image (``imagesTs/`` or ``data.unlabelled_dir``)."""

    name: str
    image: Path


@dataclass(frozen=True)
class DatasetIndex:
    """The checked contents of a dataset folder.

    Attributes:
        root: The folder.
        cases: Labelled cases, sorted by name.
        unlabelled: Images without labels.
        zones: Zone label values present in any label (e.g. ``(1, 2)`` for MSD labels).
    """

    root: Path
    cases: tuple[Case, ...]
    unlabelled: tuple[ImageOnlyCase, ...] = ()
    zones: tuple[int, ...] = field(default=(1, 2, 3, 4))

    @property
    def zone_names(self) -> tuple[str, ...]:
        """Names of the zones present."""
        return tuple(ZONES[z - 1] for z in self.zones)


def case_name(path: Path) -> str:
    """The file name without ``.nii`` / ``.nii.gz``."""
    return path.name.removesuffix(".gz").removesuffix(".nii")


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_NIFTI)


def _load(path: Path) -> nib.Nifti1Image:
    if not path.exists():
        raise InputError(f"{path}: expected a NIfTI file, but it does not exist.")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise TypeError(f"a {type(img).__name__}, not NIfTI")
        img.header.get_data_shape()
        return img
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: expected a readable NIfTI image, but: {exc}") from None


def _data(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    try:
        return np.asarray(img.dataobj)
    except Exception as exc:
        raise InputError(f"{path}: the NIfTI data cannot be read ({exc}).") from None


def read_label(path: Path) -> tuple[np.ndarray, list[float]]:
    """Read a label volume: (labels as int64 (X, Y, Z), voxel spacing in mm).

    Raises:
        InputError: If it is missing or unreadable.
    """
    img = _load(Path(path))
    data = _data(img, Path(path))
    labels = data.reshape(img.shape[:3]).round().astype(np.int64)
    return labels, [float(s) for s in img.header.get_zooms()[:3]]


def validate_image(path: Path) -> nib.Nifti1Image:
    """Open an image and check that it is 3D or 4D (channel last) with readable data.

    Raises:
        InputError: If it is missing, unreadable, 2D (or has a single slice), over 4D, or holds
            NaN or infinite intensities.
    """
    img = _load(path)
    shape = img.shape
    if len(shape) < 3 or (len(shape) >= 3 and shape[2] < 2):
        raise InputError(
            f"{path}: expected a 3D image (x, y, slices) or 4D with a channel axis, but it has "
            f"shape {tuple(shape)} (a 2D image)."
        )
    if len(shape) > 4:
        raise InputError(f"{path}: expected a 3D or 4D image, but it has shape {tuple(shape)}.")
    data = _data(img, path)
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(
            f"{path}: expected finite intensities, but {bad} voxel(s) are NaN or infinite."
        )
    return img


def _validate_case(image: Path, label: Path) -> tuple[int, ...]:
    img = validate_image(image)
    lab = _load(label)
    lshape = lab.shape[:3] if len(lab.shape) == 4 and lab.shape[3] == 1 else lab.shape
    if len(lshape) != 3:
        raise InputError(f"{label}: expected a 3D label volume, but it has shape {lab.shape}.")
    if tuple(img.shape[:3]) != tuple(lshape):
        raise InputError(
            f"{label}: expected the shape of its image {image.name} {tuple(img.shape[:3])}, "
            f"but it has {tuple(lshape)}."
        )
    if not np.allclose(img.affine, lab.affine, atol=1e-3, rtol=1e-4):
        raise InputError(
            f"{label}: expected the affine of its image {image.name}, but they differ "
            f"(image origin {np.round(img.affine[:3, 3], 3).tolist()}, label origin "
            f"{np.round(lab.affine[:3, 3], 3).tolist()}; spacing "
            f"{np.round(img.header.get_zooms()[:3], 3).tolist()} vs "
            f"{np.round(lab.header.get_zooms()[:3], 3).tolist()})."
        )
    data = _data(lab, label)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
            raise InputError(
                f"{label}: expected integer zone labels 0-4, but it holds non-integer values."
            )
    values = np.unique(data).astype(np.int64)
    if values.min() < 0 or values.max() > 4:
        raise InputError(
            f"{label}: expected zone labels 0-4 (0 background, 1 PZ, 2 TZ, 3 DPU, 4 AFS), "
            f"but found {values.tolist()}."
        )
    return tuple(int(v) for v in values if v > 0)


def _resolve(root: Path, entry: str, what: str) -> Path:
    rel = entry.lstrip("/")
    rel = rel[2:] if rel.startswith("./") else rel
    path = root / rel
    if (
        not path.exists()
        and path.name.endswith(".nii")
        and path.with_name(path.name + ".gz").exists()
    ):
        path = path.with_name(path.name + ".gz")  # the MSD index names .nii, ships .nii.gz
    if not path.exists():
        raise InputError(
            f"{root / 'dataset.json'}: names {what} {entry!r}, but {path} does not exist."
        )
    return path


def scan_dataset(
    root: str | os.PathLike[str], *, unlabelled_dir: str | os.PathLike[str] | None = None
) -> DatasetIndex:
    """Find and check every case of an MSD-layout folder.

    Args:
        root: The dataset folder.
        unlabelled_dir: An extra folder of unlabelled images.

    Returns:
        The index (labelled cases checked: readable, shapes, affines, label values).

    Raises:
        InputError: On any bad input (the message names the file).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--data-dir {root}: expected a dataset folder, but it does not exist.")
    pairs: list[tuple[Path, Path]] = []
    unlabelled: list[Path] = []
    index_file = root / "dataset.json"
    if index_file.is_file():
        try:
            meta = json.loads(index_file.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{index_file}: expected valid JSON, but: {exc}") from None
        if not isinstance(meta, dict):
            raise InputError(f"{index_file}: expected a JSON object.")
        for entry in meta.get("training", []) or []:
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise InputError(
                    f"{index_file}: expected `training` entries {{'image': ..., 'label': ...}}, "
                    f"but got {entry!r}."
                )
            pairs.append(
                (_resolve(root, entry["image"], "image"), _resolve(root, entry["label"], "label"))
            )
        for entry in meta.get("test", []) or []:
            name = entry.get("image") if isinstance(entry, dict) else entry
            unlabelled.append(_resolve(root, str(name), "test image"))
    else:
        images = root / "imagesTr"
        if images.is_dir():
            for image in sorted(p for p in images.iterdir() if _is_nifti(p)):
                label = root / "labelsTr" / image.name
                if not label.exists():
                    raise InputError(
                        f"{image}: expected its label at {label}, but it does not exist."
                    )
                pairs.append((image, label))
        if (root / "imagesTs").is_dir():
            unlabelled = sorted(p for p in (root / "imagesTs").iterdir() if _is_nifti(p))
    if not pairs:
        raise InputError(
            f"--data-dir {root}: expected labelled cases (imagesTr/*.nii.gz with labelsTr/ of "
            "the same names, or a dataset.json `training` list), but found none."
        )
    if unlabelled_dir is not None:
        extra = Path(unlabelled_dir)
        if not extra.is_dir():
            raise InputError(f"data.unlabelled_dir {extra}: expected a folder of NIfTI images.")
        unlabelled += sorted(p for p in extra.iterdir() if _is_nifti(p))
    cases = []
    for image, label in sorted(pairs, key=lambda p: case_name(p[0])):
        zones = _validate_case(image, label)
        cases.append(Case(case_name(image), image, label, zones))
    for image in unlabelled:
        validate_image(image)
    zones = tuple(sorted({z for c in cases for z in c.zones}))
    if not zones:
        raise InputError(f"--data-dir {root}: every label is empty (no zone 1-4 anywhere).")
    if zones != (1, 2, 3, 4):
        logger.info(
            "labels of %s hold only %s: the model trains and is scored on these zones only",
            root,
            ", ".join(ZONES[z - 1] for z in zones),
        )
    return DatasetIndex(
        root=root,
        cases=tuple(cases),
        unlabelled=tuple(ImageOnlyCase(case_name(p), p) for p in unlabelled),
        zones=zones,
    )


def split_cases(
    cases: Sequence[Case], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Split case names into train / val / test (deterministic, by seed).

    At least one training case is kept; val and test get ``round(fraction * n)`` cases
    (at least one each when the fraction is > 0 and there are enough cases).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (names, sorted).
    """
    names = sorted(c.name for c in cases)
    order = np.random.default_rng(seed).permutation(len(names))
    n = len(names)
    n_test = max(1 if test_fraction > 0 and n >= 3 else 0, round(test_fraction * n))
    n_val = max(1 if val_fraction > 0 and n >= 3 else 0, round(val_fraction * n))
    while n_test + n_val >= n and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    test = sorted(names[i] for i in order[:n_test])
    val = sorted(names[i] for i in order[n_test : n_test + n_val])
    train = sorted(names[i] for i in order[n_test + n_val :])
    return {"train": train, "val": val, "test": test}


# ---------------------------------------------------------------------- transforms


def _first_channel(x: Any) -> Any:
    """Keep channel 0 (T2) of a channel-first image."""
    return x[:1]


class SignedDistanced(mt.MapTransform):
    """Add ``"sdm"``: the normalised signed distance map of each zone, from ``"label"``.

    For zone ``k`` with mask ``M``: ``d = dist_to(M) - dist_to(not M)`` in mm (negative inside,
    positive outside), divided by ``clip_mm`` and clipped to [-1, 1]; a zone absent from the
    volume is +1 everywhere.

    Args:
        spacing: Voxel spacing in mm of the (resampled) label.
        clip_mm: Distance that maps to 1.
    """

    def __init__(self, spacing: Sequence[float], clip_mm: float) -> None:
        super().__init__(keys=("label",))
        self.spacing = tuple(float(s) for s in spacing)
        self.clip_mm = float(clip_mm)

    def __call__(self, data: Any) -> dict[str, Any]:
        """Compute the maps.

        Shape:
            ``label``: (1, X, Y, Z); adds ``sdm``: (4, X, Y, Z), float32.
        """
        d = dict(data)
        label = np.asarray(d["label"])[0]
        d["sdm"] = torch.from_numpy(signed_distance_maps(label, self.spacing, self.clip_mm))
        return d


def signed_distance_maps(label: np.ndarray, spacing: Sequence[float], clip_mm: float) -> np.ndarray:
    """Normalised signed distance maps of zones 1-4 (see :class:`SignedDistanced`).

    Args:
        label: Labels 0-4. Shape: (X, Y, Z).
        spacing: Voxel spacing in mm.
        clip_mm: Distance mapped to 1.

    Returns:
        Float32 maps in [-1, 1]. Shape: (4, X, Y, Z).
    """
    out = np.ones((len(ZONES), *label.shape), np.float32)
    for k in range(1, len(ZONES) + 1):
        mask = label == k
        if not mask.any() or mask.all():
            continue
        outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
        inside = ndimage.distance_transform_edt(mask, sampling=spacing)
        out[k - 1] = np.clip((outside - inside) / clip_mm, -1, 1)
    return out


def _deterministic(cfg: DataConfig, with_label: bool, clip_mm: float) -> list[Any]:
    keys = ["image", "label"] if with_label else ["image"]
    ops: list[Any] = [
        mt.LoadImaged(keys=keys, ensure_channel_first=True, image_only=True),
        mt.Lambdad(keys="image", func=_first_channel),
        mt.Orientationd(keys=keys, axcodes="RAS", labels=_RAS_LABELS),
        mt.Spacingd(
            keys=keys,
            pixdim=cfg.spacing,
            mode=("bilinear", "nearest")[: len(keys)],
        ),
        mt.ScaleIntensityRangePercentilesd(
            keys="image",
            lower=cfg.percentiles[0],
            upper=cfg.percentiles[1],
            b_min=0.0,
            b_max=1.0,
            clip=True,
        ),
        mt.EnsureTyped(keys="image", dtype=torch.float32),
    ]
    if with_label:
        ops.append(SignedDistanced(cfg.spacing, clip_mm))
    return ops


def eval_transforms(cfg: DataConfig, with_label: bool = True, clip_mm: float = 20.0) -> mt.Compose:
    """Deterministic preprocessing: load, T2 channel, RAS, resample, percentile scaling.

    Invertible (``Invertd`` maps predictions back to the source grid).
    """
    return mt.Compose(_deterministic(cfg, with_label, clip_mm))


def train_transforms(cfg: DataConfig, clip_mm: float = 20.0, labelled: bool = True) -> mt.Compose:
    """Preprocessing plus padding to the ROI, class-balanced crops and augmentation.

    The deterministic part comes first, so a ``PersistentDataset`` caches it; the crops keep
    the small zones in view (``data.crop_ratios``). Unlabelled images get random crops.
    """
    keys = ["image", "label", "sdm"] if labelled else ["image"]
    ops = _deterministic(cfg, labelled, clip_mm)
    ops.append(mt.SpatialPadd(keys=keys[:2], spatial_size=cfg.roi, mode="constant"))
    if labelled:  # padding lies outside every zone: signed distance +1
        ops.append(mt.SpatialPadd(keys="sdm", spatial_size=cfg.roi, mode="constant", value=1.0))
    if labelled:
        ops.append(
            mt.RandCropByLabelClassesd(
                keys=keys,
                label_key="label",
                spatial_size=cfg.roi,
                ratios=list(cfg.crop_ratios),
                num_classes=len(ZONES) + 1,
                num_samples=cfg.samples_per_volume,
                warn=False,
            )
        )
    else:
        ops.append(
            mt.RandSpatialCropSamplesd(
                keys=keys, roi_size=cfg.roi, num_samples=cfg.samples_per_volume, random_size=False
            )
        )
    if cfg.augment:
        interp = ("bilinear", "nearest", "bilinear")[: len(keys)]
        ops += [
            mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),  # left-right
            mt.RandAffined(
                keys=keys,
                prob=0.3,
                rotate_range=(0.0, 0.0, 0.2),
                scale_range=(0.1, 0.1, 0.0),
                mode=interp,
                padding_mode="border",
            ),
            mt.RandBiasFieldd(keys="image", prob=0.3, coeff_range=(0.0, 0.2)),
            mt.RandAdjustContrastd(keys="image", prob=0.2, gamma=(0.8, 1.25)),
            mt.RandGaussianNoised(keys="image", prob=0.2, std=0.03),
        ]
    ops.append(mt.EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False))
    return mt.Compose(ops)


def build_dataset(
    items: Sequence[dict[str, str]], transform: mt.Compose, cache_dir: Path | None
) -> Dataset:
    """A MONAI dataset; with ``cache_dir``, a ``PersistentDataset`` caching the deterministic part.

    Args:
        items: ``{"image": path[, "label": path]}`` dicts.
        transform: The transforms.
        cache_dir: Where preprocessed volumes are kept (``None``: no cache).
    """
    data = [dict(item) for item in items]
    if cache_dir is None:
        return Dataset(data, transform)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return PersistentDataset(data, transform, cache_dir=cache_dir)


def collate(samples: list[Any]) -> dict[str, torch.Tensor]:
    """Collate MONAI samples (lists of crops are flattened) into plain tensors.

    Returns:
        ``image``: (B, 1, X, Y, Z) float; ``label``: (B, 1, X, Y, Z) long when present;
        ``sdm``: (B, 4, X, Y, Z) when present.
    """
    batch = list_data_collate(samples)
    out: dict[str, torch.Tensor] = {}
    for key in ("image", "label", "sdm", "u_image"):
        if key in batch:
            value = torch.as_tensor(batch[key])
            if hasattr(value, "as_tensor"):
                value = value.as_tensor()
            out[key] = value.long() if key == "label" else value.float()
    return out
