"""``contrasuite sr evaluate``: PSNR/SSIM (Y and RGB) of bicubic, L1-only and PCL per set.

A data folder is one set (its images) or several (its sub-folders of images, e.g.
``../shared/data/sr`` holds ``Set5`` and ``Set14``). Each HR image is cropped to a multiple of
the scale, its LR made with MATLAB bicubic (:func:`~vision.sr.imaging.bicubic_lr`), and each
model's output rounded to 8 bits before measuring with a ``scale``-pixel border crop.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from shared.errors import InputError
from shared.io import read_json
from shared.runtime import resolve_device
from shared.training.run import FolderFiles, OutputFolder, RunFolder
from vision.sr.data import ImagePair, load_pairs
from vision.sr.imaging import IMAGE_SUFFIXES, imresize, list_images
from vision.sr.infer import upscale_array
from vision.sr.metrics import image_metrics
from vision.sr.train import MODELS, load_models

__all__ = [
    "KEYS",
    "ROW_NAMES",
    "bicubic_up",
    "discover_sets",
    "evaluate_loaded",
    "evaluate_pairs",
    "evaluate_run",
    "results_markdown",
]

logger = logging.getLogger(__name__)

KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
#: Row labels of the results table.
ROW_NAMES = {"bicubic": "Bicubic", "l1": "L1-only (control)", "pcl": "L1 + PCL"}


def bicubic_up(lr: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    """The bicubic baseline: MATLAB bicubic up by ``scale``, rounded to uint8."""
    return np.clip(np.rint(imresize(lr, float(scale))), 0, 255).astype(np.uint8)


def _natural(path: Path) -> list[Any]:
    """Sort key that puts Set5 before Set14."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def discover_sets(folder: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """``{set name: image files}`` of a folder of images or of sub-folders of images.

    Raises:
        InputError: If the folder is missing or holds neither images nor image sub-folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--data-dir {folder}: expected a folder of images or of image folders.")
    has_images = any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())
    if has_images:
        return {folder.name: list_images(folder)}
    subs = sorted((p for p in folder.iterdir() if p.is_dir()), key=_natural)
    sets = {
        p.name: list_images(p)
        for p in subs
        if any(q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir())
    }
    if not sets:
        raise InputError(
            f"--data-dir {folder}: expected PNG/JPEG images, or sub-folders of them (one per "
            "set), but found none."
        )
    return sets


def evaluate_pairs(
    models: Mapping[str, nn.Module],
    pairs: list[ImagePair],
    scale: int,
    device: torch.device | str = "cpu",
    tile: int | None = 128,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """Measure bicubic and every model on one set.

    Returns:
        ``(per_set, per_image)``: ``{model: {metric: mean}}`` and
        ``{image: {model: {metric: value}}}``; models ``bicubic`` and the keys of ``models``.
    """
    per_image: dict[str, dict[str, dict[str, float]]] = {}
    for pair in pairs:
        row = {"bicubic": image_metrics(bicubic_up(pair.lr, scale), pair.hr, scale)}
        for name, model in models.items():
            sr = upscale_array(model, pair.lr, scale, tile=tile, device=device)
            row[name] = image_metrics(sr, pair.hr, scale)
        per_image[pair.name] = row
    names = ["bicubic", *models]
    per_set = {
        m: {k: float(np.mean([per_image[i][m][k] for i in per_image])) for k in KEYS} for m in names
    }
    return per_set, per_image


def results_markdown(sets: Mapping[str, Mapping[str, Mapping[str, float]]], scale: int) -> str:
    """The results table: rows bicubic / L1-only / PCL, one column per set (Y, then RGB)."""
    names = list(sets)
    lines = [f"# Super-resolution x{scale}: bicubic vs L1-only vs L1 + PCL", ""]
    for space in ("y", "rgb"):
        title = "Y channel (BT.601)" if space == "y" else "RGB"
        lines += [
            f"## PSNR (dB) / SSIM, {title}, border {scale} px",
            "",
            "| model | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for model in ("bicubic", *MODELS):
            cells = [
                f"{sets[s][model][f'psnr_{space}']:.2f} / {sets[s][model][f'ssim_{space}']:.4f}"
                if model in sets[s]
                else "-"
                for s in names
            ]
            lines.append(f"| {ROW_NAMES[model]} | " + " | ".join(cells) + " |")
        lines.append("")
    pcl_gain = [
        f"{s}: {sets[s]['pcl']['psnr_y'] - sets[s]['l1']['psnr_y']:+.3f} dB"
        for s in names
        if "pcl" in sets[s] and "l1" in sets[s]
    ]
    if pcl_gain:
        lines += ["PCL minus its L1-only control (Y-PSNR): " + ", ".join(pcl_gain) + ".", ""]
    return "\n".join(lines)


def evaluate_run(
    run_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    device: str = "auto",
    *,
    out: OutputFolder | None = None,
) -> dict[str, Any]:
    """Evaluate a finished run on every set of ``data_dir``; write metrics.json and results.md.

    ``RUN/metrics.json`` keeps what training wrote and gains ``sets`` (``{set: {model:
    {psnr_y, ssim_y, psnr_rgb, ssim_rgb}}}``, models ``bicubic``, ``l1``, ``pcl``),
    ``per_image``, ``scale``, ``data_dir`` (this call's folder) and ``data_dirs`` (each set's
    folder). Sets evaluated by an earlier call on another folder are kept; a set of the same
    name is replaced by this call's. With ``out`` (``--out``), the files go there instead
    (with ``run``, the run folder), merged with ``out``'s own earlier ``metrics.json`` the
    same way, and nothing is written into the run.

    Raises:
        InputError: On a bad run folder, data folder or image (checked before any write).
    """
    run, cfg, models = load_models(run_path)
    scale = cfg.data.scale
    loaded = {
        name: load_pairs(
            paths, scale, min_size=11 + 2 * scale, why="the SSIM window plus the border crop"
        )
        for name, paths in discover_sets(data_dir).items()
    }
    label = str(Path(data_dir).resolve())
    return evaluate_loaded(run, models, loaded, scale, label, device, out=out)


def evaluate_loaded(
    run: RunFolder,
    models: nn.ModuleDict,
    loaded: Mapping[str, list[ImagePair]],
    scale: int,
    data_label: str,
    device: str = "auto",
    *,
    out: OutputFolder | None = None,
) -> dict[str, Any]:
    """Evaluate decoded sets with a run's models and write ``metrics.json`` and ``results.md``.

    They go into the run, or into ``out`` (created here) when given.
    """
    dev = resolve_device(device)
    models.to(dev)
    results: dict[str, Any] = {}
    per_image: dict[str, Any] = {}
    dest: FolderFiles = run if out is None else out.create()
    with dest.logging("vision.sr"):
        for name, pairs in loaded.items():
            results[name], per_image[name] = evaluate_pairs(
                {m: models[m] for m in MODELS}, pairs, scale, dev
            )
            logger.info(
                "sr evaluate %s (%d images): Y-PSNR bicubic %.3f, l1 %.3f, pcl %.3f",
                name,
                len(pairs),
                *(results[name][m]["psnr_y"] for m in ("bicubic", *MODELS)),
            )
        previous: dict[str, Any] = {}
        if (dest.path / "metrics.json").is_file():
            data = read_json(dest.path / "metrics.json")
            previous = dict(data) if isinstance(data, dict) else {}
        # sets evaluated earlier from other folders stay; a set evaluated again is replaced,
        # and one of this folder that is gone from it is dropped
        earlier_dirs = dict(previous.get("data_dirs", {}))
        gone = {name for name, where in earlier_dirs.items() if where == data_label}
        sets = {
            **{k: v for k, v in previous.get("sets", {}).items() if k not in gone},
            **results,
        }
        data_dirs = {**earlier_dirs, **dict.fromkeys(results, data_label)}
        metrics = {
            **previous,
            "scale": scale,
            "sets": sets,
            "per_image": {
                **{k: v for k, v in previous.get("per_image", {}).items() if k not in gone},
                **per_image,
            },
            "data_dir": data_label,
            "data_dirs": {name: data_dirs[name] for name in sets if name in data_dirs},
        }
        if out is not None:
            metrics["run"] = str(run.path)
        dest.write_json("metrics.json", metrics)
        dest.write_text("results.md", results_markdown(sets, scale))
    return metrics
