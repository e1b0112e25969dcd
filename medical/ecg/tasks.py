"""One Task per ProtoECGNet stage (methods.md 1.6), for the shared Trainer.

* :class:`FeatureTask`: backbone + linear head, BCE (stage ``feature``).
* :class:`JointTask`: the whole prototype loss of one branch (``joint``; ``prototypes`` with
  ``prototypes_only``).
* :class:`LinearStageTask`: one linear layer on fixed similarities, BCE + L1 (``classifier``
  and ``fusion``); the fusion layer's input standardization and pruning mask are part of its
  state.
* :class:`SupervisedTask`: the black-box ResNet1D baseline.

Every task validates with whole-fold macro AUROC computed from logits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medical.ecg.evaluate import auroc_metrics
from medical.ecg.losses import LossConfig, prototype_loss
from medical.ecg.model import ProtoECGNet, PrototypeBranch, set_frozen
from shared.training.task import Task

__all__ = [
    "BranchSimilarities",
    "FeatureTask",
    "FusionSimilarities",
    "JointTask",
    "LinearStageTask",
    "StageTask",
    "SupervisedTask",
    "fusion_statistics",
]


def _auroc_epoch_end(outputs: list[Mapping[str, Tensor | float]]) -> dict[str, float]:
    scores = torch.cat([torch.as_tensor(o["scores"]) for o in outputs]).numpy()
    targets = torch.cat([torch.as_tensor(o["targets"]) for o in outputs]).numpy()
    names = [str(i) for i in range(scores.shape[1])]
    m = auroc_metrics(scores, targets, names)
    losses = [
        float(torch.as_tensor(o["loss"])) * len(torch.as_tensor(o["scores"])) for o in outputs
    ]
    return {
        "macro_auc": float(m["macro_auc"]),  # type: ignore[arg-type]
        "weighted_auc": float(m["weighted_auc"]),  # type: ignore[arg-type]
        "loss": sum(losses) / len(scores),
    }


class StageTask(Task):
    """Base of the stage tasks: frozen modules stay in eval mode; whole-fold AUROC validation.

    Args:
        label_index: Columns of the task's classes in the batch labels. Shape: (C_t,).
        pos_weight: BCE ``pos_weight``. Shape: (C_t,), or ``None``.
        frozen_eval: Keep the modules in :attr:`frozen` in eval mode during training.
    """

    label_index: Tensor
    pos_weight: Tensor | None

    def __init__(
        self, label_index: Tensor, pos_weight: Tensor | None, frozen_eval: bool = True
    ) -> None:
        super().__init__()
        self.register_buffer("label_index", label_index.long(), persistent=False)
        self.register_buffer("pos_weight", pos_weight, persistent=False)
        self.frozen_eval = frozen_eval
        self.frozen: list[nn.Module] = []

    def train(self, mode: bool = True) -> StageTask:
        """Set train/eval mode; with ``frozen_eval`` the frozen modules stay in eval mode."""
        super().train(mode)
        if mode and self.frozen_eval:
            for module in self.frozen:
                module.eval()
        return self

    def freeze(self, *modules: nn.Module) -> None:
        """Freeze ``modules`` (no gradient; eval mode while training with ``frozen_eval``)."""
        for module in modules:
            set_frozen(module, True)
            self.frozen.append(module)

    def targets(self, y: Tensor) -> Tensor:
        """The task's columns of the batch labels. Shape: (B, C_all) -> (B, C_t)."""
        return y[:, self.label_index]

    def logits(self, inputs: Tensor) -> Tensor:
        """Logits of the task's classes. Shape: (B, C_t)."""
        raise NotImplementedError

    def bce(self, logits: Tensor, y: Tensor) -> Tensor:
        """BCE with logits and the task's ``pos_weight``."""
        return F.binary_cross_entropy_with_logits(
            logits.float(), y.float(), pos_weight=self.pos_weight
        )

    def validation_step(self, batch: Any) -> dict[str, Tensor]:
        """Scores and targets of the batch (AUROC needs the whole fold), and the BCE."""
        inputs, y, _ = batch
        logits = self.logits(inputs).float()
        y = self.targets(y)
        # AUROC ranks the logits: a float32 sigmoid would tie very negative logits.
        return {"scores": logits, "targets": y, "loss": self.bce(logits, y)}

    def validation_epoch_end(self, outputs: list[Mapping[str, Tensor | float]]) -> dict[str, float]:
        """Whole-fold macro and weighted AUROC and the mean BCE."""
        return _auroc_epoch_end(outputs)


class FeatureTask(StageTask):
    """Stage 1: the branch backbone with a linear head, BCE.

    1D: on the pooled features; 2D: on the flattened feature map, ``Linear(D * T', C)`` as in
    the official code.
    """

    def __init__(
        self,
        branch: PrototypeBranch,
        label_index: Tensor,
        pos_weight: Tensor | None,
        frozen_eval: bool = True,
    ) -> None:
        super().__init__(label_index, pos_weight, frozen_eval)
        self.branch = branch
        dim = branch.proto_dim * (1 if branch.kind == "1d" else branch.latent_length)
        self.head = nn.Linear(dim, branch.num_classes)
        set_frozen(branch, True)
        set_frozen(branch.backbone, False)

    def logits(self, inputs: Tensor) -> Tensor:
        """Backbone + linear head."""
        backbone = self.branch.backbone
        if self.branch.kind == "1d":
            return self.head(backbone.forward_features(inputs))
        return self.head(backbone.feature_map(inputs).flatten(1))

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE of the head."""
        x, y, _ = batch
        loss = self.bce(self.logits(x), self.targets(y))
        return {"loss": loss, "loss/bce": loss.detach()}


class JointTask(StageTask):
    """Stage 2 (and 3 with ``prototypes_only``): the whole prototype loss of one branch.

    Args:
        branch: The branch.
        label_index: The branch's columns.
        pos_weight: BCE ``pos_weight`` of the branch's classes.
        cooccurrence: Jaccard matrix of the branch's training labels. Shape: (C_b, C_b).
        weights: Loss weights.
        prototypes_only: Train only the prototype vectors (stage ``prototypes``).
        frozen_eval: See :class:`StageTask`.
    """

    cooccurrence: Tensor

    def __init__(
        self,
        branch: PrototypeBranch,
        label_index: Tensor,
        pos_weight: Tensor | None,
        cooccurrence: Tensor,
        weights: LossConfig,
        *,
        prototypes_only: bool = False,
        frozen_eval: bool = True,
    ) -> None:
        super().__init__(label_index, pos_weight, frozen_eval)
        self.branch = branch
        self.weights = weights
        self.register_buffer("cooccurrence", cooccurrence.float(), persistent=False)
        set_frozen(branch, False)
        if prototypes_only:
            self.freeze(branch.backbone, branch.add_on, branch.classifier)
        else:
            self.freeze(branch.classifier)

    def logits(self, inputs: Tensor) -> Tensor:
        """The branch's logits."""
        return self.branch(inputs).logits

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE + clustering + separation + sparsity + diversity + co-occurrence contrastive."""
        x, y, _ = batch
        out = self.branch(x)
        b = self.branch
        return prototype_loss(
            out.logits.float(),
            self.targets(y),
            out.similarities.float(),
            b.prototype_vectors,
            b.prototype_class_identity,
            self.cooccurrence,
            self.weights,
            self.pos_weight,
        )


class LinearStageTask(StageTask):
    """Stages 5 and 6: one linear layer on fixed similarities, BCE + L1.

    The input of a batch is either raw ECGs (B, leads, T), run through ``similarities``, or
    precomputed similarities (B, P) (possible when the frozen parts are in eval mode; then
    ``similarities`` may be ``nn.Identity()``, which keeps the frozen network out of this
    stage's checkpoints).

    Args:
        linear: The layer being trained (a branch classifier or the fusion layer).
        similarities: Maps ECGs to the similarities the layer reads.
        frozen: The modules behind ``similarities`` (frozen).
        label_index: Columns of the layer's classes.
        pos_weight: BCE ``pos_weight``.
        l1: Weight of the L1 term.
        l1_mask: Which weights the L1 term covers (1.0) — the wrong-class connections of a
            branch classifier; ``None``: the whole matrix (fusion). Shape: like the weight.
        frozen_eval: See :class:`StageTask`.
        weight_mask: 0.0 where a weight is pruned (held at 0), else 1.0; ``None``: no pruning.
            Shape: like the weight.
        input_stats: ``(mean, std)`` the layer's input is standardized with (the fusion
            layer's training-set statistics), or ``None`` for raw input. Shape: (P,) each.

    The weight mask and the input statistics are persistent buffers: they are part of the
    stage's ``state.pt`` and ``weights.pt``, so that a resumed run (even one killed after this
    stage finished) gets back everything the layer needs at inference.
    """

    l1_mask: Tensor | None
    weight_mask: Tensor | None
    input_mean: Tensor | None
    input_std: Tensor | None

    def __init__(
        self,
        linear: nn.Linear,
        similarities: nn.Module,
        frozen: Sequence[nn.Module],
        label_index: Tensor,
        pos_weight: Tensor | None,
        l1: float,
        l1_mask: Tensor | None = None,
        frozen_eval: bool = True,
        weight_mask: Tensor | None = None,
        input_stats: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        super().__init__(label_index, pos_weight, frozen_eval)
        self.linear = linear
        self.similarities = similarities
        self.l1 = l1
        self.register_buffer("l1_mask", l1_mask, persistent=False)
        self.register_buffer("weight_mask", weight_mask)
        mean, std = input_stats if input_stats is not None else (None, None)
        self.register_buffer("input_mean", None if mean is None else mean.clone().float())
        self.register_buffer("input_std", None if std is None else std.clone().float())
        self.freeze(*frozen)
        set_frozen(linear, False)

    def weight(self) -> Tensor:
        """The layer's weight with pruned entries at 0."""
        w = self.linear.weight
        return w if self.weight_mask is None else w * self.weight_mask

    def logits(self, inputs: Tensor) -> Tensor:
        """The layer applied to (precomputed or computed, then standardized) similarities."""
        sims = inputs if inputs.ndim == 2 else self.similarities(inputs)
        if self.input_mean is not None and self.input_std is not None:
            sims = (sims - self.input_mean) / self.input_std
        return F.linear(sims, self.weight(), self.linear.bias)

    @torch.no_grad()
    def bake_mask(self) -> None:
        """Write the pruned weight into the layer (after training)."""
        if self.weight_mask is not None:
            self.linear.weight.mul_(self.weight_mask)

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE + l1 * L1 norm of the (masked) weight."""
        inputs, y, _ = batch
        bce = self.bce(self.logits(inputs), self.targets(y))
        w = self.weight()
        l1 = (w if self.l1_mask is None else w * self.l1_mask).abs().sum()
        return {"loss": bce + self.l1 * l1, "loss/bce": bce.detach(), "loss/l1": l1.detach()}


class SupervisedTask(StageTask):
    """The black-box baseline: a classifier trained with BCE on the whole label set."""

    def __init__(self, net: nn.Module, label_index: Tensor, pos_weight: Tensor | None) -> None:
        super().__init__(label_index, pos_weight)
        self.net = net

    def logits(self, inputs: Tensor) -> Tensor:
        """The network's logits."""
        out: Tensor = self.net(inputs)
        return out

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE."""
        x, y, _ = batch
        loss = self.bce(self.logits(x), self.targets(y))
        return {"loss": loss, "loss/bce": loss.detach()}


class BranchSimilarities(nn.Module):
    """Pooled similarities of one branch (the input of its classifier stage)."""

    def __init__(self, branch: PrototypeBranch) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: Tensor) -> Tensor:
        """Similarities. Shape: (B, leads, T) -> (B, P)."""
        return self.branch(x).similarities


class FusionSimilarities(nn.Module):
    """Raw concatenated similarities of every branch (the fusion task standardizes them)."""

    def __init__(self, model: ProtoECGNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """Concatenated raw similarities. Shape: (B, leads, T) -> (B, sum P)."""
        return torch.cat([b(x).similarities for b in self.model.branches.values()], dim=1)


def fusion_statistics(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Training-set mean and std of every similarity, the fusion layer's standardization.

    Args:
        raw: Raw similarities of the training ECGs. Shape: (N, P).

    Returns:
        ``(mean, std)``, std clamped at 1e-4 (a prototype every ECG matches equally). Shape:
        (P,) each, float32.
    """
    raw = raw.double()
    return raw.mean(dim=0).float(), raw.std(dim=0).clamp_min(1e-4).float()
