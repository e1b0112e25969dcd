"""Contrastive losses: pure functions (:mod:`shared.losses.functional`) and thin modules."""

from shared.losses.functional import alignment, dcl, dclw, info_nce, nt_xent, sup_con, uniformity
from shared.losses.modules import (
    AlignmentLoss,
    DCLLoss,
    DCLWLoss,
    InfoNCELoss,
    NTXentLoss,
    SupConLoss,
    UniformityLoss,
)

__all__ = [
    "AlignmentLoss",
    "DCLLoss",
    "DCLWLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "SupConLoss",
    "UniformityLoss",
    "alignment",
    "dcl",
    "dclw",
    "info_nce",
    "nt_xent",
    "sup_con",
    "uniformity",
]
