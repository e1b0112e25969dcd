"""Contrastive losses: pure functions (:mod:`shared.losses.functional`) and thin modules."""

from shared.losses.amcl import AMCLLoss, AMCLProjectionHeads, amcl, amcl_omega
from shared.losses.cacr import CACRLoss, cacr
from shared.losses.cross_entropy import embedding_cross_entropy
from shared.losses.feature_transform import (
    FeatureTransformLoss,
    feature_transform,
    feature_transform_info_nce,
    negative_interpolation,
    positive_extrapolation,
    sample_feature_transform,
)
from shared.losses.functional import (
    alignment,
    dcl,
    dclw,
    info_nce,
    nt_xent,
    sup_con,
    uniformity,
)
from shared.losses.kjem import KJEMLoss, SepCLRUniformityLoss, kjem, sepclr_align, sepclr_uniformity
from shared.losses.modules import (
    AlignmentLoss,
    DCLLoss,
    DCLWLoss,
    InfoNCELoss,
    NTXentLoss,
    SupConLoss,
    UniformityLoss,
)
from shared.losses.swav import SwAVLoss, sinkhorn_knopp, swav

__all__ = [
    "AMCLLoss",
    "AMCLProjectionHeads",
    "AlignmentLoss",
    "CACRLoss",
    "DCLLoss",
    "DCLWLoss",
    "FeatureTransformLoss",
    "InfoNCELoss",
    "KJEMLoss",
    "NTXentLoss",
    "SepCLRUniformityLoss",
    "SupConLoss",
    "SwAVLoss",
    "UniformityLoss",
    "alignment",
    "amcl",
    "amcl_omega",
    "cacr",
    "dcl",
    "dclw",
    "embedding_cross_entropy",
    "feature_transform",
    "feature_transform_info_nce",
    "info_nce",
    "kjem",
    "negative_interpolation",
    "nt_xent",
    "positive_extrapolation",
    "sample_feature_transform",
    "sepclr_align",
    "sepclr_uniformity",
    "sinkhorn_knopp",
    "sup_con",
    "swav",
    "uniformity",
]
