"""T2-like prostate phantoms with four PI-RADS zones, written in the MSD dataset layout.

Two modes:

* **Procedural** (:func:`procedural_label`): an ellipsoidal gland with a smooth random shape
  modulation, placed in RAS voxel coordinates (x: right-left, y: posterior-anterior,
  z: inferior (apex) - superior (base)). Zones, by anatomical rule (assumptions of this
  phantom, not measurements): the transition zone (TZ) is an ellipsoid in the anterior, mid and
  basal gland; the anterior fibromuscular stroma (AFS) is the anterior rim of the gland in front
  of the TZ (base and mid-gland); the distal prostatic urethra (DPU) is a thin tube slightly
  anterior of the centre, from the apex to mid-gland; the peripheral zone (PZ) is the rest
  (posterior, lateral and the apex).
* **From real masks** (:func:`label_from_msd_mask`): the 32 radiologist masks of the Medical
  Segmentation Decathlon (PZ = 1, TZ = 2) keep their geometry, spacing and orientation (they are
  reoriented to RAS and cropped around the gland; the affine's origin moves with the crop, so
  world coordinates are unchanged). DPU and AFS are added by the same anatomical rules, measured
  in millimetres from the gland.

The image (:func:`synthesise_t2`) is synthesised from the label: bright PZ, intermediate and
mottled TZ, dark AFS, a bright urethra with a dark wall, fat, muscle and a rectum behind the
gland, a smooth multiplicative bias field, in-plane blur and Rician noise.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from shared.errors import InputError
from shared.io import atomic_write_bytes, read_json, write_json

__all__ = [
    "PhantomCase",
    "check_phantom_out",
    "label_from_msd_mask",
    "procedural_label",
    "synthesise_t2",
    "write_dataset",
    "write_phantom_dataset",
]


#: ``dataset.json``'s name of a phantom set (what ``phantom --out`` may overwrite).
PHANTOM_NAME = "contrasuite prostate phantoms"

logger = logging.getLogger(__name__)

LABELS = {"0": "background", "1": "PZ", "2": "TZ", "3": "DPU", "4": "AFS"}


@dataclass(frozen=True)
class PhantomCase:
    """One generated case.

    Attributes:
        name: Case name (file stem).
        image: T2-like volume, float32, shape (X, Y, Z).
        label: Zone labels 0-4, uint8, shape (X, Y, Z); ``None`` for an unlabelled case.
        affine: 4x4 voxel-to-world (RAS mm) matrix.
    """

    name: str
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (np.abs(field).max() + 1e-8)


def _add_urethra_and_afs(
    label: np.ndarray, spacing: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Add DPU (3) and AFS (4) to a PZ/TZ label in RAS voxel order, by anatomical rule.

    DPU: a tube of radius ~2.5 mm (at least one voxel) through the apical 45 % of the gland,
    centred on the TZ centroid of the slice (the gland centroid moved 10 % anteriorly where
    there is no TZ). AFS: gland voxels within ~4 mm of the anterior gland surface, in the central
    60 % of the gland's width, over the basal 70 % of its length.
    """
    out = label.copy()
    gland = label > 0
    if not gland.any():
        return out
    sx, sy, _ = (float(s) for s in spacing)
    zs = np.nonzero(gland.any(axis=(0, 1)))[0]
    z_lo, z_hi = int(zs.min()), int(zs.max())
    length = z_hi - z_lo + 1
    xx, yy = np.meshgrid(np.arange(label.shape[0]), np.arange(label.shape[1]), indexing="ij")
    radius_mm = float(rng.uniform(2.0, 3.0))
    afs_mm = float(rng.uniform(3.0, 5.0))
    for z in range(z_lo, z_hi + 1):
        sl = gland[:, :, z]
        if not sl.any():
            continue
        rel = (z - z_lo) / max(1, length - 1)  # 0 = apex, 1 = base
        gx, gy = np.nonzero(sl)
        if rel <= 0.45:
            tz = label[:, :, z] == 2
            if tz.any():
                cx, cy = np.nonzero(tz)[0].mean(), np.nonzero(tz)[1].mean()
            else:
                cx = gx.mean()
                cy = gy.mean() + 0.1 * (gy.max() - gy.min())
            r2 = ((xx - cx) * sx) ** 2 + ((yy - cy) * sy) ** 2
            tube = (r2 <= max(radius_mm, max(sx, sy)) ** 2) & sl
            if not tube.any():  # at least one voxel
                tube[round(cx), round(cy)] = True
            out[:, :, z][tube] = 3
        if rel >= 0.3:
            half = 0.3 * (gx.max() - gx.min() + 1)
            centre = gx.mean()
            front = np.full(label.shape[0], -1)
            for x in range(label.shape[0]):
                col = np.nonzero(sl[x])[0]
                if col.size:
                    front[x] = col.max()
            depth = (front[:, None] - yy) * sy  # mm behind the anterior surface
            band = sl & (depth < afs_mm) & (np.abs(xx - centre) <= half) & (out[:, :, z] != 3)
            out[:, :, z][band] = 4
    return out


def procedural_label(
    shape: Sequence[int], spacing: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """A four-zone label volume in RAS voxel order with random size, position and shape.

    Args:
        shape: Volume size (X, Y, Z).
        spacing: Voxel size in mm.
        rng: Random generator.

    Returns:
        Labels 0-4, uint8, shape ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    fov = np.array(shape) * np.array(spacing, dtype=float)
    centre = fov / 2 + rng.uniform(-0.05, 0.05, 3) * fov
    axes = np.array([0.30, 0.24, 0.36]) * fov * rng.uniform(0.85, 1.15, 3)
    coords = np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij")
    rel = [(c - m) / a for c, m, a in zip(coords, centre, axes)]
    wobble = 1 + 0.12 * _smooth_noise(rng, shape, sigma=max(2.0, shape[0] / 8))
    gland = (rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2) <= wobble
    # TZ: anterior, mid-gland and base (z up), smaller than the gland.
    tz_c = (0.0, 0.22 * rng.uniform(0.8, 1.2), 0.2 * rng.uniform(0.5, 1.5))
    tz_a = np.array([0.62, 0.55, 0.62]) * rng.uniform(0.85, 1.15, 3)
    tz = sum(((r - c) / a) ** 2 for r, c, a in zip(rel, tz_c, tz_a)) <= 1.0
    label = np.zeros(shape, np.uint8)
    label[gland] = 1
    label[gland & tz] = 2
    return _add_urethra_and_afs(label, spacing, rng)


def synthesise_t2(
    label: np.ndarray, spacing: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """A T2-weighted-looking image for a zone label in RAS voxel order.

    Args:
        label: Labels 0-4, shape (X, Y, Z).
        spacing: Voxel size in mm.
        rng: Random generator.

    Returns:
        The image, float32, shape (X, Y, Z), values roughly 0-1000.
    """
    shape = label.shape
    gland = label > 0
    img = np.full(shape, 0.30, np.float32)  # muscle / soft tissue
    # Fat: everything farther than ~6 mm from the gland, modulated.
    dist = ndimage.distance_transform_edt(~gland, sampling=spacing) if gland.any() else None
    if dist is not None:
        fat = dist > 6 + 4 * (_smooth_noise(rng, shape, 3) + 1)
        img[fat] = 0.70
        # Rectum: a dark oval with a bright wall, posterior of the gland.
        gx, gy, gz = (np.nonzero(gland)[i] for i in range(3))
        cx, cz = gx.mean(), gz.mean()
        cy = gy.min() - 9.0 / spacing[1]
        xx, yy, zz = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        r = ((xx - cx) * spacing[0] / 14) ** 2 + ((yy - cy) * spacing[1] / 8) ** 2
        r = r + ((zz - cz) * spacing[2] / 40) ** 2
        img[r <= 1.3] = 0.55
        img[r <= 1.0] = 0.12
    values = {1: 0.82, 2: 0.45, 3: 0.70, 4: 0.16}
    for zone, value in values.items():
        img[label == zone] = value * rng.uniform(0.9, 1.1)
    tz = label == 2
    img[tz] += 0.12 * _smooth_noise(rng, shape, 1.0)[tz]  # mottled BPH-like texture
    wall = (label == 3) ^ ndimage.binary_erosion(label == 3)
    img[wall & (label == 3)] = 0.35
    img = ndimage.gaussian_filter(img, sigma=(0.7, 0.7, 0.3))
    bias = np.exp(0.35 * _smooth_noise(rng, shape, max(shape) / 3))
    img = img * bias
    sigma = 0.03
    noisy = np.hypot(img + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    return (noisy * 1000).astype(np.float32)


def label_from_msd_mask(path: str | os.PathLike[str], rng: np.random.Generator) -> PhantomCase:
    """Build a four-zone case around one real MSD zone mask (PZ = 1, TZ = 2).

    The mask is reoriented to RAS (``nibabel.as_closest_canonical``) and cropped to the gland
    with a 12 mm in-plane margin and one slice above and below; the affine keeps its spacing
    and rotation, and its origin moves with the crop.

    Args:
        path: A ``.nii`` / ``.nii.gz`` mask.
        rng: Random generator (DPU/AFS sizes, image synthesis).

    Returns:
        The case (name = the file's stem).

    Raises:
        InputError: If the file cannot be read, is not 3D, or holds values other than 0-2.
    """
    path = Path(path)
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        mask = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: expected a readable NIfTI mask, but: {exc}") from None
    if mask.ndim != 3:
        raise InputError(f"{path}: expected a 3D mask, but it has shape {mask.shape}.")
    values = set(np.unique(mask).tolist())
    if not values <= {0, 1, 2}:
        raise InputError(f"{path}: expected MSD labels 0, 1, 2, but found {sorted(values)}.")
    spacing = [float(z) for z in img.header.get_zooms()[:3]]
    gland = mask > 0
    if not gland.any():
        raise InputError(f"{path}: the mask is empty.")
    idx = np.nonzero(gland)
    lo = [
        max(0, int(i.min()) - m)
        for i, m in zip(idx, (round(12 / spacing[0]), round(12 / spacing[1]), 1))
    ]
    hi = [
        min(n, int(i.max()) + 1 + m)
        for i, n, m in zip(idx, mask.shape, (round(12 / spacing[0]), round(12 / spacing[1]), 1))
    ]
    crop = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.uint8)
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ np.array(lo, float) + img.affine[:3, 3]
    label = _add_urethra_and_afs(crop, spacing, rng)
    image = synthesise_t2(label, spacing, rng)
    name = path.name.removesuffix(".gz").removesuffix(".nii")
    return PhantomCase(name=name, image=image, label=label, affine=affine)


def _affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    affine = np.diag([*map(float, spacing), 1.0])
    affine[:3, 3] = -np.array(shape) * np.array(spacing) / 2  # centred at the world origin
    return affine


def _nifti_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)


#: What a phantom set consists of in its folder; :func:`write_dataset` replaces all of them.
_ENTRIES = ("imagesTr", "labelsTr", "imagesTs", "dataset.json")
#: Name prefix of the folders in which :func:`write_dataset` stages a new set.
_STAGING = ".contrasuite-phantoms."


def _recover(root: Path) -> None:
    """Finish or undo a :func:`write_dataset` that was killed, from its staging folders.

    A set whose ``dataset.json`` is in place was swapped in completely (only the clean-up was
    cut short); without it the swap was cut short, and the earlier set's entries kept in the
    staging folder's ``old/`` are moved back. Either way the staging folders go.
    """
    for staging in sorted(root.glob(f"{_STAGING}*")):
        old = staging / "old"
        if not (root / "dataset.json").exists() and (old / "dataset.json").exists():
            _swap_back(root, old)
        shutil.rmtree(staging, ignore_errors=True)


def _swap_back(root: Path, old: Path) -> None:
    """Put the earlier set's entries in ``old`` back into ``root`` (over any new ones)."""
    for name in _ENTRIES:
        if (old / name).exists():
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(old / name, target)


def check_phantom_out(root: Path) -> None:
    """Refuse ``root`` as ``--out`` unless it is new, empty, or an earlier phantom set.

    An earlier call that was killed while writing is finished or undone first (see
    :func:`_recover`), so that its hidden staging folder neither counts as foreign nor stays.

    Raises:
        InputError: If ``root`` is a file or a non-empty folder that is not a phantom set.
    """
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root}: expected a folder, but it is a file.")
    if not root.is_dir():
        return
    _recover(root)
    if not any(root.iterdir()):
        return
    meta: object = None
    if (root / "dataset.json").is_file():
        with contextlib.suppress(InputError):
            meta = read_json(root / "dataset.json")
    name = meta.get("name") if isinstance(meta, dict) else None
    if name != PHANTOM_NAME:
        raise InputError(
            f"--out {root}: expected a new or empty folder (or an earlier phantom set), "
            "but it holds other files" + (f" (a data set named {name!r})." if name else ".")
        )


def write_dataset(out: str | os.PathLike[str], cases: Sequence[PhantomCase]) -> Path:
    """Write cases in the MSD layout: ``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``dataset.json``.

    Labelled cases go to ``imagesTr``/``labelsTr``, unlabelled ones to ``imagesTs``. The set is
    written into a hidden folder inside ``out`` first and then moved in by renames, replacing
    those four entries of an earlier set as a whole (no stale case survives, and a failure while
    writing leaves the earlier set as it was); other files in ``out`` are left alone.
    ``dataset.json`` goes first out and last in.

    Args:
        out: The dataset folder (created).
        cases: The cases.

    Returns:
        The folder.

    Raises:
        InputError: If ``out`` is a file, or a non-empty folder that is not a phantom set.
    """
    root = Path(out)
    check_phantom_out(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=root))
    new, old = staging / "new", staging / "old"
    try:
        _write_layout(new, cases)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old.mkdir()
    try:
        for name in _ENTRIES:  # dataset.json first: a half-swapped folder is no data set
            if (root / name).exists():
                os.replace(root / name, old / name)
        for name in reversed(_ENTRIES):  # dataset.json last
            if (new / name).exists():
                os.replace(new / name, root / name)
    except BaseException:
        if (old / "dataset.json").exists():  # the earlier set was moved out: put it back
            _swap_back(root, old)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_layout(root: Path, cases: Sequence[PhantomCase]) -> None:
    """Write the files of :func:`write_dataset` into the new folder ``root``."""
    training, test = [], []
    for case in cases:
        file = f"{case.name}.nii.gz"
        if case.label is None:
            atomic_write_bytes(root / "imagesTs" / file, _nifti_bytes(case.image, case.affine))
            test.append(f"./imagesTs/{file}")
            continue
        atomic_write_bytes(root / "imagesTr" / file, _nifti_bytes(case.image, case.affine))
        atomic_write_bytes(
            root / "labelsTr" / file, _nifti_bytes(case.label.astype(np.uint8), case.affine)
        )
        training.append({"image": f"./imagesTr/{file}", "label": f"./labelsTr/{file}"})
    meta = {
        "name": PHANTOM_NAME,
        "description": "T2-like phantoms with PI-RADS v2 zones (PZ, TZ, DPU, AFS)",
        "tensorImageSize": "3D",
        "modality": {"0": "T2"},
        "labels": LABELS,
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }
    write_json(root / "dataset.json", meta)


def write_phantom_dataset(
    out: str | os.PathLike[str],
    n_cases: int = 8,
    seed: int = 2020,
    *,
    n_unlabelled: int = 2,
    shape: Sequence[int] = (80, 80, 16),
    spacing: Sequence[float] = (0.8, 0.8, 3.0),
    from_masks: str | os.PathLike[str] | None = None,
) -> Path:
    """Generate and write a phantom dataset (procedural, or around real MSD masks).

    Args:
        out: The dataset folder.
        n_cases: Labelled cases (with ``from_masks``: at most the number of masks; all by
            default when ``n_cases`` is larger).
        seed: Random seed; the same seed gives the same files.
        n_unlabelled: Extra unlabelled images in ``imagesTs/`` (stage-2 consistency).
        shape: Procedural volume size (X, Y, Z).
        spacing: Procedural voxel size in mm.
        from_masks: A folder of MSD masks (``*.nii.gz`` / ``*.nii``), e.g.
            ``../shared/data/prostate-msd-labels``.

    Returns:
        The folder.

    Raises:
        InputError: If ``n_cases`` < 1, ``from_masks`` holds no masks, a mask is bad, or
            ``out`` is neither new, empty nor an earlier phantom set.
    """
    if n_cases < 1 or n_unlabelled < 0:
        raise InputError(f"--n-cases: expected >= 1, got {n_cases}.")
    check_phantom_out(Path(out))  # before the work of generating
    rng = np.random.default_rng(seed)
    cases: list[PhantomCase] = []
    if from_masks is not None:
        folder = Path(from_masks)
        if not folder.is_dir():
            raise InputError(f"--from-masks {folder}: expected a folder of NIfTI masks.")
        files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")))
        if not files:
            raise InputError(f"--from-masks {folder}: expected .nii.gz masks, found none.")
        n_lab = min(n_cases, len(files))
        n_unl = min(n_unlabelled, len(files) - n_lab)
        for i, file in enumerate(files[: n_lab + n_unl]):
            case = label_from_msd_mask(file, rng)
            if i >= n_lab:
                case = PhantomCase(case.name, case.image, None, case.affine)
            cases.append(case)
        if (n_lab, n_unl) != (n_cases, n_unlabelled):  # after the masks read well: one line
            logger.warning(
                "--from-masks %s holds %d masks (one case each): writing %d labelled cases "
                "(--n-cases %d) and %d unlabelled images (--n-unlabelled %d).",
                folder,
                len(files),
                n_lab,
                n_cases,
                n_unl,
                n_unlabelled,
            )
        logger.info("built %d phantoms around the masks of %s", len(cases), folder)
    else:
        affine = _affine(spacing, shape)
        for i in range(n_cases + n_unlabelled):
            label = procedural_label(shape, spacing, rng)
            image = synthesise_t2(label, spacing, rng)
            name = f"prostate_{i:03d}"
            cases.append(PhantomCase(name, image, label if i < n_cases else None, affine))
    return write_dataset(out, cases)


def read_dataset_json(root: Path) -> dict[str, object]:
    """Read ``root/dataset.json`` (helper for tests and the loader).

    Raises:
        InputError: If the file is not valid JSON.
    """
    try:
        return dict(json.loads((root / "dataset.json").read_text()))
    except (OSError, ValueError) as exc:
        raise InputError(f"{root / 'dataset.json'}: expected valid JSON, but: {exc}") from None
