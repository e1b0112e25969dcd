"""Prototype projection ("push", methods.md 1.6 stage 4), with provenance.

Every prototype :math:`p_j` of class ``c`` is replaced by the latent window of a real training
ECG: among the training ECGs with ``c`` present, the ECG and (in 2D) the window with the highest
activation :math:`a_{jw}`. It runs in eval mode under ``no_grad``. Afterwards each prototype is
*exactly* the latent of one training window, and the run folder records where it came from
(``ecg_id``, branch, class, window in samples and seconds, similarity).

A class without any training positive has no ECG to project onto; its prototypes go to the best
window of the whole training set instead (``class_positive: false`` in the provenance), so that
every prototype is still a real training window. The official code leaves that case undefined.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medical.ecg.model import PrototypeBranch

__all__ = ["project_prototypes"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def project_prototypes(
    branch: PrototypeBranch,
    batches: Iterable[tuple[Tensor, Tensor, Tensor]],
    *,
    label_index: Tensor,
    class_names: Sequence[str],
    ecg_ids: Sequence[int] | np.ndarray,
    folds: Sequence[int] | np.ndarray | None,
    sampling_rate: int,
    branch_name: str,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """Project every prototype of ``branch`` onto its best training window, in place.

    Args:
        branch: The branch; its ``prototype_vectors`` are overwritten. It is put in eval mode
            for the scan and back in its previous mode afterwards.
        batches: Training batches ``(x, y, index)``: ECGs (B, leads, T), multi-hot labels of the
            whole label set (B, C_all) and each ECG's row ``index`` in ``ecg_ids``.
        label_index: Columns of the branch's classes in ``y``. Shape: (C_b,), long.
        class_names: Codes of the branch's classes.
        ecg_ids: ``ecg_id`` of every row of the data set.
        folds: ``strat_fold`` of every row (recorded in the provenance), or ``None``.
        sampling_rate: Hz of the signals (for the window in seconds).
        branch_name: Recorded in the provenance.
        device: Where to compute.

    Returns:
        One provenance record per prototype: ``prototype``, ``branch``, ``class``,
        ``class_index``, ``ecg_id``, ``row``, ``fold``, ``window``, ``start_sample``,
        ``end_sample``, ``start_s``, ``end_s``, ``similarity`` (the activation that chose the
        window, before the prototype was replaced), ``class_positive`` and ``shift_cosine``
        (cosine between the old and the new prototype).

    Raises:
        ValueError: If ``batches`` is empty.
    """
    was_training = branch.training
    branch.eval()
    p = branch.num_prototypes
    classes = branch.prototype_classes().to(device)
    label_index = label_index.to(device)
    best = torch.full((p,), float("-inf"), device=device)
    best_any = torch.full((p,), float("-inf"), device=device)
    shape = tuple(branch.prototype_vectors.shape[1:])
    latents = torch.zeros((p, *shape), device=device, dtype=branch.prototype_vectors.dtype)
    latents_any = torch.zeros_like(latents)
    where = np.full((p, 2), -1, dtype=np.int64)  # (row, window)
    where_any = np.full((p, 2), -1, dtype=np.int64)
    seen = 0
    for x, y, index in batches:
        x, y = x.to(device), y.to(device)
        z = branch.latent(x)
        windows = branch.windows(z)  # (B, W, D*T_p)
        acts = branch.window_similarities(z)  # (B, P, W)
        positive = (y[:, label_index] > 0)[:, classes]  # (B, P)
        for mask, best_val, store, pos in (
            (positive, best, latents, where),
            (torch.ones_like(positive), best_any, latents_any, where_any),
        ):
            masked = acts.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            flat = masked.permute(1, 0, 2).reshape(p, -1)  # (P, B*W)
            value, arg = flat.max(dim=1)
            better = value > best_val
            if bool(better.any()):
                js = better.nonzero().flatten()
                b = arg[js] // acts.shape[2]
                w = arg[js] % acts.shape[2]
                best_val[js] = value[js]
                store[js] = windows[b, w].reshape(len(js), *shape)
                pos[js.cpu().numpy()] = np.stack(
                    [index[b.cpu()].cpu().numpy(), w.cpu().numpy()], axis=1
                )
        seen += len(x)
    if seen == 0:
        raise ValueError("Expected at least one training batch to project onto, but got none.")
    has_positive = torch.isfinite(best)
    old = branch.prototype_vectors.detach().clone()
    new = torch.where(has_positive.view(-1, *([1] * len(shape))), latents, latents_any)
    branch.prototype_vectors.data.copy_(new)
    shift = torch.nn.functional.cosine_similarity(old.flatten(1), new.flatten(1), dim=1)
    records: list[dict[str, Any]] = []
    for j in range(p):
        pos_ok = bool(has_positive[j])
        row, window = (where if pos_ok else where_any)[j]
        start, end = branch.window_samples(int(window))
        c = int(classes[j])
        records.append(
            {
                "prototype": j,
                "branch": branch_name,
                "class": str(class_names[c]),
                "class_index": c,
                "ecg_id": int(ecg_ids[row]),
                "row": int(row),
                "fold": None if folds is None else int(folds[row]),
                "window": int(window),
                "start_sample": start,
                "end_sample": end,
                "start_s": start / sampling_rate,
                "end_s": end / sampling_rate,
                "similarity": float((best if pos_ok else best_any)[j]),
                "class_positive": pos_ok,
                "shift_cosine": float(shift[j]),
            }
        )
    n_missing = int((~has_positive).sum())
    if n_missing:
        missing = sorted({r["class"] for r in records if not r["class_positive"]})
        logger.info(
            "%s: %d prototypes of classes without training positives (%s) were projected "
            "onto the best window of any training ECG.",
            branch_name,
            n_missing,
            ", ".join(missing[:10]),
        )
    unique = len({(r["row"], r["window"]) for r in records})
    logger.info(
        "%s: projected %d prototypes onto %d distinct training windows.", branch_name, p, unique
    )
    branch.train(was_training)
    return records
