r"""ProtoECGNet (Sethi et al., MLHC 2025; arXiv 2504.08713): prototype branches and their fusion.

Three branches, each a backbone + add-on layers + prototypes + a ProtoPNet-style classifier:

* **rhythm** (1D, global prototypes): ResNet1D-18 on ``(B, 12, T)``, global average pooling,
  add-on ``Linear-ReLU-Linear-Sigmoid``; the similarity of prototype :math:`p_j` is the plain
  cosine :math:`s_j = \cos(f, p_j)`.
* **morphology** (2D, time-localized partial prototypes, ``T_p = 3``) and **global** (2D,
  ``T_p`` = the whole latent length): ResNet-18 on ``(B, 1, 12, T)`` whose first convolution
  (kernel ``(12, 7)``, stride ``(1, 2)``, no padding over leads) collapses the 12 leads to height
  1; add-on ``Conv1x1-ReLU-Conv1x1-Sigmoid``. For every latent window ``w`` the activation is the
  scaled cosine :math:`a_{jw} = \mathrm{int}(\sqrt{D T_p}) \cos(X_w, p_j) / T_p` (13 cos for
  ``T_p = 3``, 4 cos for ``T_p = 32``), pooled over windows.

The fusion model concatenates every branch's pooled similarities and maps them with one
``Linear(sum P, C, bias=True)`` to the logits of the whole label set.

Backbones are MONAI ResNets (no torchvision, no downloaded weights). Everything is randomly
initialised; the official ResNet2D is ImageNet-initialised except its first convolution, which a
no-op "adaptation" leaves random (methods.md 1.9 item 1), so with no pretrained weights at hand
our 2D branch is random throughout.

Deviations from the official code, each an option (see :class:`PrototypeBranch`):

* ``pooling``: the official code **mean**-pools the window activations for training and
  inference but projects prototypes onto the **max** window (methods.md 1.9 item 2). The
  default here is ``"max"`` in both places, so the highlighted window of an explanation is
  exactly what produced the similarity; ``"mean"`` reproduces the official behaviour.
* ``similarity_scale``: ``"official"`` keeps the 13/4/1 scale factors; ``"cosine"`` uses plain
  cosines in every branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch import Tensor, nn

__all__ = [
    "BRANCHES",
    "BranchOutput",
    "FusionOutput",
    "ProtoECGNet",
    "PrototypeBranch",
    "ResNet1D",
    "ResNet1DClassifier",
    "ResNet2D",
    "latent_length",
    "prototype_identity",
    "set_frozen",
]

#: Branch names, in the order the fusion layer concatenates their similarities.
BRANCHES = ("rhythm", "morphology", "global")

Kind = Literal["1d", "2d"]
Pooling = Literal["max", "mean"]
Scale = Literal["official", "cosine"]

_EPS_2D = 1e-4  # added under the square root of the window and prototype norms (official code)


def latent_length(signal_length: int) -> int:
    """Latent time length of both ResNets for an input of ``signal_length`` samples.

    Stride-2 stem convolution (kernel 7, padding 3), stride-2 max-pool (kernel 3, padding 1) and
    three stride-2 stages (kernel 3, padding 1): 1000 -> 500 -> 250 -> 125 -> 63 -> 32.

    Args:
        signal_length: Samples per lead (1000 at 100 Hz, 5000 at 500 Hz).

    Returns:
        The latent length ``T'``.

    Examples:
        >>> latent_length(1000), latent_length(5000)
        (32, 157)
    """
    t = (signal_length + 2 * 3 - 7) // 2 + 1
    for _ in range(4):  # max-pool, layer2, layer3, layer4
        t = (t + 2 - 3) // 2 + 1
    return t


def _monai_resnet(spatial_dims: int, in_channels: int, width: int, layers: Sequence[int]) -> ResNet:
    return ResNet(
        block="basic",
        layers=list(layers),
        block_inplanes=[width, 2 * width, 4 * width, 8 * width],
        spatial_dims=spatial_dims,
        n_input_channels=in_channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        feed_forward=False,
        bias_downsample=False,  # torchvision / PTB-XL benchmark ResNets have no bias here
    )


class ResNet1D(nn.Module):
    """ResNet1D of the PTB-XL benchmark (BasicBlock, kernel 3), built from MONAI's ResNet.

    ``Conv1d(leads, w, 7, stride 2)`` -> BN -> ReLU -> ``MaxPool1d(3, 2, 1)`` -> four stages of
    BasicBlocks with widths ``w, 2w, 4w, 8w`` (stride 2 on stages 2-4).

    Args:
        leads: Input channels.
        width: Width ``w`` of the first stage (64 for resnet1d18).
        layers: Blocks per stage ((2, 2, 2, 2) for resnet1d18).

    Attributes:
        num_features: Channels of the feature map, ``8 * width``.
    """

    def __init__(
        self, leads: int = 12, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2)
    ) -> None:
        super().__init__()
        self.net = _monai_resnet(1, leads, width, layers)
        self.num_features = 8 * width

    def feature_map(self, x: Tensor) -> Tensor:
        """Return the last feature map. Shape: (B, leads, T) -> (B, 8w, T')."""
        n = self.net
        x = n.maxpool(n.act(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        """Globally average-pooled features. Shape: (B, leads, T) -> (B, 8w)."""
        return self.feature_map(x).mean(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(x)


class ResNet2D(nn.Module):
    """ProtoECGNet's ResNet2D: a ResNet-18 whose stem collapses the leads to height 1.

    The ECG ``(B, leads, T)`` is read as a one-channel image ``(B, 1, leads, T)``; the stem is
    ``Conv2d(1, w, kernel=(leads, 7), stride=(1, 2), padding=(0, 3))``, then BN, ReLU, max-pool,
    stages 1-3, ``Dropout(dropout)`` (the only dropout), stage 4. The height-1 map is squeezed.

    Args:
        leads: ECG leads (the stem's kernel height).
        width: Width of the first stage (64 for resnet18).
        layers: Blocks per stage.
        dropout: Dropout probability between stages 3 and 4.

    Attributes:
        num_features: Channels of the feature map, ``8 * width``.
    """

    def __init__(
        self,
        leads: int = 12,
        width: int = 64,
        layers: Sequence[int] = (2, 2, 2, 2),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = _monai_resnet(2, 1, width, layers)
        self.net.conv1 = nn.Conv2d(
            1, width, kernel_size=(leads, 7), stride=(1, 2), padding=(0, 3), bias=False
        )
        nn.init.kaiming_normal_(self.net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.dropout = nn.Dropout(dropout)
        self.num_features = 8 * width

    def feature_map(self, x: Tensor) -> Tensor:
        """Return the last feature map. Shape: (B, leads, T) -> (B, 8w, T')."""
        n = self.net
        x = n.maxpool(n.act(n.bn1(n.conv1(x.unsqueeze(1)))))
        x = self.dropout(n.layer3(n.layer2(n.layer1(x))))
        return n.layer4(x).squeeze(2)

    def forward_features(self, x: Tensor) -> Tensor:
        """Globally average-pooled features. Shape: (B, leads, T) -> (B, 8w)."""
        return self.feature_map(x).mean(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(x)


def prototype_identity(num_classes: int, prototypes_per_class: int) -> Tensor:
    """The prototype-class identity matrix ``A``: prototype ``j*ppc + k`` belongs to class ``j``.

    Args:
        num_classes: ``C``.
        prototypes_per_class: ``ppc``.

    Returns:
        ``A``, 1.0 where prototype ``j`` belongs to class ``c``. Shape: (C * ppc, C), float.

    Examples:
        >>> prototype_identity(2, 2).tolist()
        [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """
    return torch.eye(num_classes).repeat_interleave(prototypes_per_class, dim=0)


@dataclass
class BranchOutput:
    """What a branch returns.

    Attributes:
        logits: Shape: (B, C).
        similarities: Pooled prototype similarities. Shape: (B, P).
        window_similarities: Similarity of every prototype at every latent window
            (one window in the 1D branch). Shape: (B, P, W).
    """

    logits: Tensor
    similarities: Tensor
    window_similarities: Tensor


class PrototypeBranch(nn.Module):
    """One ProtoECGNet branch: backbone, add-on layers, prototypes and the branch classifier.

    Args:
        kind: ``"1d"`` (ResNet1D, global prototypes, cosine similarity) or ``"2d"`` (ResNet2D,
            prototypes spanning ``proto_time_len`` latent steps, scaled cosine per window).
        num_classes: Classes of the branch ``C``.
        prototypes_per_class: ``ppc``; ``P = C * ppc``.
        signal_length: Samples per lead ``T`` of the input.
        proto_time_len: ``T_p`` of 2D prototypes (3: partial; ``None``: the whole latent length,
            i.e. global). Ignored in 1D.
        leads: Input leads.
        width: Backbone width (prototype dimension ``D = 8 * width``; 512 for ResNet-18).
        layers: Backbone blocks per stage.
        dropout: Dropout of the 2D backbone (the official 1D backbone accepts and ignores it).
        pooling: How window activations are pooled: ``"max"`` (default; what projection uses)
            or ``"mean"`` (the official training/inference pooling).
        similarity_scale: ``"official"`` (``int(sqrt(D T_p)) / T_p`` in 2D, 1 in 1D) or
            ``"cosine"`` (1 everywhere).

    Raises:
        ValueError: On an invalid option or a prototype longer than the latent length.
    """

    prototype_class_identity: Tensor

    def __init__(
        self,
        kind: Kind,
        num_classes: int,
        prototypes_per_class: int,
        signal_length: int,
        *,
        proto_time_len: int | None = 3,
        leads: int = 12,
        width: int = 64,
        layers: Sequence[int] = (2, 2, 2, 2),
        dropout: float = 0.0,
        pooling: Pooling = "max",
        similarity_scale: Scale = "official",
    ) -> None:
        super().__init__()
        if kind not in ("1d", "2d"):
            raise ValueError(f"Expected `kind` to be '1d' or '2d', but got {kind!r}.")
        if pooling not in ("max", "mean"):
            raise ValueError(f"Expected `pooling` to be 'max' or 'mean', but got {pooling!r}.")
        if similarity_scale not in ("official", "cosine"):
            raise ValueError(
                "Expected `similarity_scale` to be 'official' or 'cosine', "
                f"but got {similarity_scale!r}."
            )
        if num_classes < 1 or prototypes_per_class < 1:
            raise ValueError(
                f"Expected num_classes and prototypes_per_class >= 1, but got "
                f"{num_classes} and {prototypes_per_class}."
            )
        self.kind: Kind = kind
        self.num_classes = num_classes
        self.prototypes_per_class = prototypes_per_class
        self.signal_length = signal_length
        self.latent_length = latent_length(signal_length)
        self.pooling: Pooling = pooling
        self.similarity_scale: Scale = similarity_scale
        self.backbone: ResNet1D | ResNet2D
        dim = 8 * width
        self.proto_dim = dim
        if kind == "1d":
            self.backbone = ResNet1D(leads, width, layers)
            self.add_on: nn.Module = nn.Sequential(
                nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.Sigmoid()
            )
            self.proto_time_len = 1
            shape: tuple[int, ...] = (num_classes * prototypes_per_class, dim)
            self.scale = 1.0
        else:
            self.backbone = ResNet2D(leads, width, layers, dropout)
            self.add_on = nn.Sequential(
                nn.Conv1d(dim, dim, 1), nn.ReLU(), nn.Conv1d(dim, dim, 1), nn.Sigmoid()
            )
            t_p = self.latent_length if proto_time_len is None else int(proto_time_len)
            if not 1 <= t_p <= self.latent_length:
                raise ValueError(
                    f"Expected `proto_time_len` in [1, {self.latent_length}] for signals of "
                    f"{signal_length} samples, but got {t_p}."
                )
            self.proto_time_len = t_p
            shape = (num_classes * prototypes_per_class, dim, t_p)
            # The official code's input_vector_length / prototype_shape[-1]: 13 for T_p=3, 4 for 32.
            self.scale = int(math.sqrt(dim * t_p)) / t_p
        if similarity_scale == "cosine":
            self.scale = 1.0
        for m in self.add_on.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)) and kind == "2d":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.prototype_vectors = nn.Parameter(torch.randn(*shape))
        self.register_buffer(
            "prototype_class_identity", prototype_identity(num_classes, prototypes_per_class)
        )
        self.classifier = nn.Linear(shape[0], num_classes, bias=False)
        self.reset_classifier()

    # ------------------------------------------------------------------ structure

    @property
    def num_prototypes(self) -> int:
        """``P``, the number of prototypes."""
        return int(self.prototype_vectors.shape[0])

    @property
    def num_windows(self) -> int:
        """Latent windows ``W`` a prototype is compared with (1 for global prototypes)."""
        return 1 if self.kind == "1d" else self.latent_length - self.proto_time_len + 1

    def prototype_classes(self) -> Tensor:
        """Class index of every prototype. Shape: (P,), long."""
        return self.prototype_class_identity.argmax(dim=1)

    def window_samples(self, window: int) -> tuple[int, int]:
        """Input samples ``[start, end)`` covered by latent window ``window``.

        The latent grid is mapped linearly onto the input (``T / T'`` samples per latent
        step; the official code shows ``int(T_p * 31.25)`` samples for ``T_p`` steps at 100 Hz).
        A 1D prototype covers the whole signal.

        Args:
            window: Index in ``[0, W)``.

        Returns:
            ``(start, end)`` sample indices.
        """
        if self.kind == "1d":
            return 0, self.signal_length
        step = self.signal_length / self.latent_length
        start = round(window * step)
        end = min(self.signal_length, round((window + self.proto_time_len) * step))
        return start, end

    @torch.no_grad()
    def reset_classifier(self, correct: float = 1.0, incorrect: float = -0.5) -> None:
        """ProtoPNet initialisation: ``correct`` on own-class connections, else ``incorrect``."""
        identity = self.prototype_class_identity.T
        self.classifier.weight.copy_(correct * identity + incorrect * (1 - identity))

    # ------------------------------------------------------------------ forward

    def latent(self, x: Tensor) -> Tensor:
        """Add-on features of the backbone.

        Args:
            x: ECGs. Shape: (B, leads, T), float.

        Returns:
            1D: Shape (B, D), in (0, 1). 2D: Shape (B, D, T'), in (0, 1).
        """
        if self.kind == "1d":
            return self.add_on(self.backbone.forward_features(x))
        return self.add_on(self.backbone.feature_map(x))

    def windows(self, z: Tensor) -> Tensor:
        """Every latent window, flattened like the prototypes.

        Args:
            z: Latent of :meth:`latent`. Shape: (B, D) in 1D, (B, D, T') in 2D.

        Returns:
            Shape: (B, W, D) in 1D (W = 1), (B, W, D * T_p) in 2D.
        """
        if self.kind == "1d":
            return z.unsqueeze(1)
        # (B, D, W, T_p) -> (B, W, D, T_p): flattened in the (D, T_p) order of the prototypes.
        return z.unfold(2, self.proto_time_len, 1).permute(0, 2, 1, 3).flatten(2)

    def window_similarities(self, z: Tensor) -> Tensor:
        r"""Similarity of every prototype with every latent window.

        Args:
            z: Latent of :meth:`latent`.

        Returns:
            1D: :math:`\cos(f, p_j)`; 2D: ``scale`` times the cosine of the flattened window and
            prototype, with norms :math:`\sqrt{\sum x^2 + 10^{-4}}` as in the official code.
            Shape: (B, P, W).
        """
        windows = self.windows(z)
        protos = self.prototype_vectors.flatten(1)
        if self.kind == "1d":
            cos = F.normalize(windows, dim=-1) @ F.normalize(protos, dim=-1).T
        else:
            w_unit = windows / torch.sqrt(windows.pow(2).sum(-1, keepdim=True) + _EPS_2D)
            p_unit = protos / torch.sqrt(protos.pow(2).sum(-1, keepdim=True) + _EPS_2D)
            cos = w_unit @ p_unit.T
        return (self.scale * cos).transpose(1, 2)

    def pool(self, window_similarities: Tensor) -> Tensor:
        """Pool window similarities (``pooling``). Shape: (B, P, W) -> (B, P)."""
        if self.pooling == "mean":
            return window_similarities.mean(dim=-1)
        return window_similarities.amax(dim=-1)

    def forward(self, x: Tensor) -> BranchOutput:
        """Classify ECGs by their similarity to the prototypes.

        Args:
            x: Shape: (B, leads, T), float.

        Returns:
            Logits ``W s``, pooled similarities ``s`` and window similarities.
        """
        window_sims = self.window_similarities(self.latent(x))
        sims = self.pool(window_sims)
        return BranchOutput(self.classifier(sims), sims, window_sims)


@dataclass
class FusionOutput:
    """What the fusion model returns.

    Attributes:
        logits: Logits of the whole label set. Shape: (B, C).
        similarities: Concatenated pooled similarities of every branch. Shape: (B, sum P).
        branches: Each branch's own output, by name.
    """

    logits: Tensor
    similarities: Tensor
    branches: dict[str, BranchOutput]


class ProtoECGNet(nn.Module):
    """The branches and the fusion classifier over all their similarities.

    ``logits = fusion((s - fusion_mean) / fusion_std)``. The two buffers are 0 and 1 (the
    official fusion on raw similarities) unless the fusion stage standardizes its inputs with
    training-set statistics (``stages.fusion_input="standardized"``): the cosines of
    sigmoid features all lie close to 1 (spread ~0.01), which a linear layer from the default
    initialisation learns to separate only very slowly. Standardizing is an affine
    reparametrisation of the same linear model, so explanations stay exact:
    prototype ``j`` adds ``W[c, j] * (s_j - mean_j) / std_j`` to logit ``c``.

    Args:
        branches: Branch name -> branch, concatenated in :data:`BRANCHES` order (unknown
            names after them, in the given order).
        label_index: Branch name -> indices of the branch's classes in the fused label set
            (its targets are ``y[:, label_index[name]]``).
        num_classes: ``C`` of the fused label set.

    Raises:
        ValueError: If a branch's ``label_index`` does not match its class count.
    """

    fusion_mean: Tensor
    fusion_std: Tensor

    def __init__(
        self,
        branches: Mapping[str, PrototypeBranch],
        label_index: Mapping[str, Sequence[int]],
        num_classes: int,
    ) -> None:
        super().__init__()
        order = [n for n in BRANCHES if n in branches] + [n for n in branches if n not in BRANCHES]
        self.branches = nn.ModuleDict({n: branches[n] for n in order})
        for name, branch in self.branches.items():
            assert isinstance(branch, PrototypeBranch)  # for the type checker
            idx = torch.as_tensor(list(label_index[name]), dtype=torch.long)
            if idx.numel() != branch.num_classes:
                raise ValueError(
                    f"Expected {branch.num_classes} label indices for branch {name!r}, "
                    f"but got {idx.numel()}."
                )
            self.register_buffer(f"label_index_{name}", idx)
        total = sum(b.num_prototypes for b in self.branch_list())
        self.num_classes = num_classes
        self.fusion = nn.Linear(total, num_classes, bias=True)
        self.register_buffer("fusion_mean", torch.zeros(total))
        self.register_buffer("fusion_std", torch.ones(total))

    def label_index(self, name: str) -> Tensor:
        """Indices of branch ``name``'s classes in the fused label set. Shape: (C_b,), long."""
        out: Tensor = getattr(self, f"label_index_{name}")
        return out

    def prototype_offsets(self) -> dict[str, int]:
        """Column of each branch's first prototype in the fused similarity vector."""
        offsets, start = {}, 0
        for name, branch in zip(self.branches, self.branch_list()):
            offsets[name] = start
            start += branch.num_prototypes
        return offsets

    def branch_list(self) -> list[PrototypeBranch]:
        """The branches, in fusion order."""
        return [b for b in self.branches.values() if isinstance(b, PrototypeBranch)]

    def branch(self, name: str) -> PrototypeBranch:
        """Branch ``name``."""
        b = self.branches[name]
        assert isinstance(b, PrototypeBranch)  # for the type checker
        return b

    def forward(self, x: Tensor) -> FusionOutput:
        """Run every branch and the fusion classifier.

        Args:
            x: Shape: (B, leads, T), float.

        Returns:
            Fused logits, concatenated similarities and every branch's output.
        """
        outs = {name: branch(x) for name, branch in self.branches.items()}
        sims = torch.cat([o.similarities for o in outs.values()], dim=1)
        return FusionOutput(self.fusion(self.fusion_input(sims)), sims, outs)

    def fusion_input(self, similarities: Tensor) -> Tensor:
        """Standardize concatenated similarities for the fusion layer. Shape: (B, sum P)."""
        return (similarities - self.fusion_mean) / self.fusion_std

    def contributions(self, similarities: Tensor) -> Tensor:
        """Each prototype's additive contribution to each fused logit.

        ``logits = contributions.sum(-1) + fusion.bias``.

        Args:
            similarities: Concatenated pooled similarities. Shape: (B, sum P).

        Returns:
            Shape: (B, C, sum P).
        """
        return self.fusion_input(similarities)[:, None, :] * self.fusion.weight[None]


class ResNet1DClassifier(nn.Module):
    """The black-box baseline: ResNet1D + global average pooling + ``Linear(8w, C)``.

    Args:
        num_classes: ``C``.
        leads: Input leads.
        width: Backbone width.
        layers: Blocks per stage.
    """

    def __init__(
        self,
        num_classes: int,
        leads: int = 12,
        width: int = 64,
        layers: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        self.backbone = ResNet1D(leads, width, layers)
        self.fc = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits. Shape: (B, leads, T) -> (B, C)."""
        return self.fc(self.backbone.forward_features(x))


def set_frozen(module: nn.Module, frozen: bool) -> None:
    """Set ``requires_grad = not frozen`` on every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(not frozen)
