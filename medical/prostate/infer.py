"""Inference: sliding window, back to the source grid, largest component per zone, NIfTI output.

:func:`predict_case` preprocesses an image exactly as in training (RAS, resampling, percentile
scaling), runs MONAI's sliding-window inference, maps the class probabilities back onto the
source image's voxel grid with MONAI ``Invertd`` (inverse resampling and orientation, linear
interpolation of the probabilities), takes the argmax and keeps the largest connected component
of each zone (26-connectivity; the removed islands become background, a simplification of the
UATS rule that gives them to the class of largest signed distance). :func:`write_label` saves
the map with the source image's affine and header (3D, uint8), so it lies on the image in
3D Slicer or ITK-SNAP.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai import transforms as mt
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from scipy import ndimage

from medical.prostate.config import DataConfig
from medical.prostate.data import eval_transforms, validate_image
from medical.prostate.model import DualPathNet, ZoneUNet
from shared.io import atomic_write_bytes

__all__ = ["keep_largest_component", "predict_case", "write_label"]


def keep_largest_component(labels: np.ndarray, zones: Sequence[int] = (1, 2, 3, 4)) -> np.ndarray:
    """Keep the largest 26-connected component of each zone; other voxels become background.

    Args:
        labels: Labels 0-4. Shape: (X, Y, Z).
        zones: Zone values to clean.

    Returns:
        A cleaned copy.

    Examples:
        >>> x = np.zeros((5, 5, 1), np.uint8); x[0, 0] = 1; x[2:5, 2:5] = 1
        >>> int(keep_largest_component(x).sum())
        9
    """
    out = labels.copy()
    structure = np.ones((3,) * labels.ndim, bool)
    for z in zones:
        mask = labels == z
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=structure)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        out[mask & (comp != 1 + int(np.argmax(sizes)))] = 0
    return out


@torch.no_grad()
def predict_case(
    net: ZoneUNet | DualPathNet,
    image_path: str | os.PathLike[str],
    data: DataConfig,
    *,
    device: torch.device | str = "cpu",
    postprocess: bool = True,
) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Segment one image and return the label map on its own voxel grid.

    Args:
        net: The trained net (in eval mode on ``device``).
        image_path: A 3D or 4D (channel last; channel 0 used) NIfTI image.
        data: The run's data settings (spacing, ROI, percentiles).
        device: Where to run.
        postprocess: Keep the largest component per zone.

    Returns:
        ``(labels, image)``: uint8 labels 0-4 with the image's spatial shape, and the source
        image (nibabel) whose affine and header the labels share.

    Raises:
        InputError: If the image is unreadable or not 3D/4D.
    """
    path = Path(image_path)
    source = validate_image(path)
    pre = eval_transforms(data, with_label=False)
    d = pre({"image": str(path)})
    image = d["image"]
    x = image.as_tensor().unsqueeze(0).to(device)
    net.eval()
    probs = sliding_window_inference(
        x, data.roi, sw_batch_size=2, predictor=net.predict_proba, overlap=0.25, mode="gaussian"
    )[0].cpu()
    d["pred"] = MetaTensor(probs, meta=image.meta, applied_operations=image.applied_operations)
    inverted = mt.Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False)(d)
    back = np.asarray(inverted["pred"])
    labels = back.argmax(0).astype(np.uint8)
    if labels.shape != tuple(source.shape[:3]):  # never expected: Invertd restores the grid
        raise RuntimeError(
            f"inverse transform gave shape {labels.shape}, image {tuple(source.shape[:3])}"
        )
    if postprocess:
        labels = keep_largest_component(labels)
    return labels, source


def write_label(labels: np.ndarray, source: nib.Nifti1Image, out: str | os.PathLike[str]) -> Path:
    """Write ``labels`` as NIfTI with the affine and header of ``source`` (atomically).

    The header is copied (orientation codes, qform/sform, units, description); its data type
    becomes uint8 with no intensity scaling, and a 4D source header becomes 3D.

    Args:
        labels: Labels 0-4 on the source grid. Shape: (X, Y, Z).
        source: The source image.
        out: ``.nii.gz`` (or ``.nii``) path.

    Returns:
        The path.
    """
    header = source.header.copy()
    header.set_data_dtype(np.uint8)
    image = nib.Nifti1Image(labels.astype(np.uint8), source.affine, header=header)
    image.header.set_slope_inter(1.0, 0.0)
    qform, qcode = source.get_qform(coded=True)
    sform, scode = source.get_sform(coded=True)
    if qform is not None:
        image.set_qform(qform, int(qcode))
    if sform is not None:
        image.set_sform(sform, int(scode))
    out = Path(out)
    raw = image.to_bytes()
    if out.name.endswith(".gz"):
        import gzip

        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    atomic_write_bytes(out, raw)
    return out
