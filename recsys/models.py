"""CL4SRec and MCLRec as RecBole ``SequentialRecommender`` models (methods.md 2.3 to 2.6).

Both extend RecBole's ``SASRec`` (same encoder, tied item embeddings, cross-entropy over all
items, same initialisation) with the stochastic augmentation of :mod:`recsys.augment`:

* :class:`CL4SRec` (Xie et al., ICDE 2022): ``L = L_rec + lambda * InfoNCE(h1, h2)``.
* :class:`MCLRec` (Qin et al., SIGIR 2023): two learnable augmenters
  ``F_phi1, F_phi2`` (``Linear(64, 32) - GELU - Linear(32, 16) - GELU - Linear(16, 64)`` then L2
  normalisation, PyTorch's default initialisation) map the view representations ``h1, h2`` to
  ``z1, z2``, and

  - ``L_cl1 = InfoNCE_tau(h1, h2)`` (the config's ``tau`` and ``sim``);
  - ``L_cl2 = InfoNCE(h1, z2) + InfoNCE(h2, z1) + InfoNCE(z1, z2)`` (always dot product, tau 1);
  - ``R = 0.1 * (R(h1, z2) + R(h2, z1) + R(z1, z2))``
    (:func:`recsys.losses.contrastive_regularizer`);
  - encoder loss (paper eq. 14, gamma = 0.1 beta): ``L_rec + lambda L_cl1 + beta (L_cl2 + R)``;
  - augmenter loss (eq. 15 as the official code runs it, gamma = 0.1): ``L_cl2 + R`` (plus
    ``lambda L_cl1``, which does not depend on the augmenters).

  The alternating update lives in :class:`recsys.trainer.MCLRecTrainer`; ``calculate_loss`` is
  the joint variant (MCLRec-J: one optimizer over every parameter).

Every InfoNCE is :func:`shared.losses.info_nce` (through :func:`recsys.losses.pair_info_nce`), and
the cross-entropy over all items is :func:`shared.losses.embedding_cross_entropy`.
Settings are read from RecBole's config: ``cl_weight`` (lambda), ``beta``, ``tau``, ``sim``
(``"dot"``/``"cos"``), ``crop_keep``, ``mask_ratio``, ``reorder_ratio``, ``regularizer``,
``fast_encoder`` and ``augmenter_dims``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from recbole.model.sequential_recommender import SASRec
from torch import Tensor, nn

from recsys.augment import Views, augment_pair
from recsys.encoder import sasrec_encode
from recsys.losses import contrastive_regularizer, pair_info_nce
from shared.losses import embedding_cross_entropy

__all__ = ["MIN_CONTRAST_BATCH", "Augmenter", "CL4SRec", "DuoRec", "MCLRec", "Step"]

Step = Literal["encoder", "augmenter", "joint"]

#: Added to the sum of R over the three pairs (official ``meta_rl``).
R_SCALE = 0.1

#: The contrastive terms need at least this many rows (a row's negatives are the other rows).
#: RecBole keeps the last partial batch, so a batch of one row happens; its contrastive terms are
#: 0 (skipped) and only the recommendation loss trains on it.
MIN_CONTRAST_BATCH = 2


def _get(config: Any, key: str, default: Any) -> Any:
    value = config[key]
    return default if value is None else value


class Augmenter(nn.Module):
    """MCLRec's learnable model augmenter ``F_phi``: an MLP with GELU, then L2 normalisation.

    Args:
        dims: Layer widths, e.g. ``(64, 32, 16, 64)`` (the official code's).

    Shape:
        Input (B, dims[0]), output (B, dims[-1]), unit L2 norm per row.
    """

    def __init__(self, dims: Sequence[int] = (64, 32, 16, 64)) -> None:
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"Expected at least two layer widths, but got {list(dims)}.")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, h: Tensor) -> Tensor:
        """Map representations to the unit sphere. Shape: (B, D_in) -> (B, D_out)."""
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.gelu(h)
        return F.normalize(h, dim=-1)


class CL4SRec(SASRec):
    """SASRec + stochastic augmentation + InfoNCE between two views (RecBole model).

    Config keys (besides SASRec's): ``cl_weight`` (lambda, default 0.1), ``tau`` (1.0), ``sim``
    (``"dot"``), ``crop_keep`` (0.5), ``mask_ratio`` (0.5), ``reorder_ratio`` (0.8),
    ``fast_encoder`` (True: :func:`recsys.encoder.sasrec_encode`).
    """

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        if self.loss_type != "CE":
            raise ValueError(
                f"Expected loss_type 'CE' for {type(self).__name__}, got {self.loss_type!r}."
            )
        self.cl_weight = float(_get(config, "cl_weight", 0.1))
        self.tau = float(_get(config, "tau", 1.0))
        self.sim = str(_get(config, "sim", "dot"))
        if self.sim not in ("dot", "cos"):
            raise ValueError(f"Expected `sim` to be 'dot' or 'cos', but got {self.sim!r}.")
        self.crop_keep = float(_get(config, "crop_keep", 0.5))
        self.mask_ratio = float(_get(config, "mask_ratio", 0.5))
        self.reorder_ratio = float(_get(config, "reorder_ratio", 0.8))
        self.fast_encoder = bool(_get(config, "fast_encoder", True))
        self.last_terms: dict[str, float] = {}

    # ------------------------------------------------------------------ encoding

    def forward(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        """The sequence representation (output at ``len - 1``). Shape: (B, H)."""
        if self.fast_encoder:
            return sasrec_encode(self, item_seq, item_seq_len)
        return super().forward(item_seq, item_seq_len)

    def encode_many(self, pairs: Sequence[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """Encode several batches of sequences in one forward pass (same dropout distribution).

        Args:
            pairs: ``(item_seq (B, L), item_seq_len (B,))`` per batch; all of the same B and L.

        Returns:
            One (B, H) representation per input batch.
        """
        seqs = torch.cat([s for s, _ in pairs])
        lens = torch.cat([n for _, n in pairs])
        return list(self.forward(seqs, lens).split(pairs[0][0].shape[0]))

    def make_views(self, interaction: Any) -> Views:
        """Two augmented views of the batch's input sequences (two distinct operators each)."""
        return augment_pair(
            interaction[self.ITEM_SEQ],
            interaction[self.ITEM_SEQ_LEN],
            eta=self.crop_keep,
            gamma=self.mask_ratio,
            beta=self.reorder_ratio,
        )

    def rec_loss(self, seq_output: Tensor, interaction: Any) -> Tensor:
        """Cross-entropy of the next item over all items (tied item embeddings).

        :func:`shared.losses.embedding_cross_entropy`: ``F.cross_entropy`` of the logits
        ``seq_output @ item_embedding.T`` on the core's fused log-sum-exp (tested equal).
        """
        return embedding_cross_entropy(
            seq_output, self.item_embedding.weight, interaction[self.POS_ITEM_ID]
        )

    def _info_nce(self, a: Tensor, b: Tensor) -> Tensor:
        return pair_info_nce(a, b, self.tau, normalize=self.sim == "cos")

    # ------------------------------------------------------------------ losses

    def loss_terms(self, interaction: Any, views: Views, step: Step = "joint") -> dict[str, Tensor]:
        """The training loss and its named parts (``"loss"`` is the one to backpropagate).

        Args:
            interaction: A RecBole batch.
            views: From :meth:`make_views`.
            step: Only ``"joint"`` for CL4SRec.

        Returns:
            ``{"loss", "loss/rec", "loss/cl"}``.
        """
        h, h1, h2 = self.encode_many(
            [
                (interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]),
                (views.seq1, views.len1),
                (views.seq2, views.len2),
            ]
        )
        rec = self.rec_loss(h, interaction)
        if h1.shape[0] < MIN_CONTRAST_BATCH:
            cl = rec.new_zeros(())
        else:
            cl = self._info_nce(h1, h2)
        return {"loss": rec + self.cl_weight * cl, "loss/rec": rec, "loss/cl": cl}

    def training_terms(self, interaction: Any) -> dict[str, Tensor]:
        """The joint loss and its named parts on fresh views (what a training step minimises)."""
        return self.loss_terms(interaction, self.make_views(interaction), "joint")

    def calculate_loss(self, interaction: Any) -> Tensor:
        """RecBole's training entry point: draw views, return the loss to minimise."""
        terms = self.training_terms(interaction)
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        return terms["loss"]


class MCLRec(CL4SRec):
    """MCLRec (Qin et al., SIGIR 2023) as a RecBole model; see the module docstring.

    Config keys (besides CL4SRec's): ``cl_weight`` (lambda, default 0), ``beta`` (0.01),
    ``regularizer`` (True: add R), ``augmenter_dims`` (``[H, 32, 16, H]`` for H = 64: the
    official ``64-32-16-64``; in general ``[H, H/2, H/4, H]``).
    """

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.cl_weight = float(_get(config, "cl_weight", 0.0))
        self.beta = float(_get(config, "beta", 0.01))
        self.regularizer = bool(_get(config, "regularizer", True))
        hidden = self.hidden_size
        dims = _get(config, "augmenter_dims", [hidden, hidden // 2, hidden // 4, hidden])
        dims = [int(d) for d in dims]
        if dims[0] != hidden:
            raise ValueError(
                f"Expected augmenter_dims to start with hidden_size {hidden}, got {dims}."
            )
        # Created after SASRec's N(0, 0.02) initialisation: PyTorch's default init, as official.
        self.augmenter_1 = Augmenter(dims)
        self.augmenter_2 = Augmenter(dims)

    @property
    def recommendation_only(self) -> bool:
        """Whether ``beta = lambda = 0``.

        Then the encoder loss is ``L_rec`` alone and the augmenters never reach the encoder (the
        ``SASRec2Step`` control). The encoder step then skips the views, and the trainer the
        augmenter step: the encoder's updates are the same computation.
        """
        return self.beta == 0 and self.cl_weight == 0

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except the augmenters' (theta)."""
        return (p for n, p in self.named_parameters() if not n.startswith("augmenter_"))

    def augmenter_parameters(self) -> Iterator[nn.Parameter]:
        """The two augmenters' parameters (phi)."""
        yield from self.augmenter_1.parameters()
        yield from self.augmenter_2.parameters()

    def contrastive_terms(self, h1: Tensor, h2: Tensor) -> dict[str, Tensor]:
        """``L_cl1``, ``L_cl2`` and ``R`` (scaled by 0.1) from the two view representations.

        Args:
            h1: Encoder output of view 1. Shape: (B, H).
            h2: Encoder output of view 2. Shape: (B, H).

        Returns:
            ``{"loss/cl1", "loss/cl2", "loss/reg"}``; ``loss/reg`` is 0 without the regularizer;
            all three are 0 (without a graph) for a batch of fewer than
            :data:`MIN_CONTRAST_BATCH` rows.
        """
        if h1.shape[0] < MIN_CONTRAST_BATCH:
            zero = h1.new_zeros(())
            return {"loss/cl1": zero, "loss/cl2": zero, "loss/reg": zero}
        z1 = self.augmenter_1(h1)
        z2 = self.augmenter_2(h2)
        # With lambda = 0 (Beauty's setting) L_cl1 is only reported: no graph for a zero weight.
        with torch.no_grad() if self.cl_weight == 0 else contextlib.nullcontext():
            cl1 = self._info_nce(h1, h2)
        cl2 = pair_info_nce(h1, z2, 1.0) + pair_info_nce(h2, z1, 1.0) + pair_info_nce(z1, z2, 1.0)
        if self.regularizer:
            reg = R_SCALE * (
                contrastive_regularizer(h1, z2, self.tau)
                + contrastive_regularizer(h2, z1, self.tau)
                + contrastive_regularizer(z1, z2, self.tau)
            )
        else:
            reg = cl2.new_zeros(())
        return {"loss/cl1": cl1, "loss/cl2": cl2, "loss/reg": reg}

    def loss_terms(
        self, interaction: Any, views: Views | None, step: Step = "joint"
    ) -> dict[str, Tensor]:
        """The loss of one step of the alternating update (or of the joint variant).

        Args:
            interaction: A RecBole batch.
            views: From :meth:`make_views` (the same views for the three steps of a batch).
            step: ``"encoder"`` (steps 1 and 3) and ``"joint"``:
                ``L_rec + lambda L_cl1 + beta (L_cl2 + R)``; ``"augmenter"`` (step 2):
                ``lambda L_cl1 + L_cl2 + R``, with the encoder run without gradients (the
                official code computes encoder gradients in this step and throws them away;
                the augmenters' gradients are the same).

        Returns:
            ``{"loss", "loss/rec", "loss/cl1", "loss/cl2", "loss/reg"}`` (no ``loss/rec`` in the
            augmenter step).
        """
        if step == "augmenter":
            if views is None:
                raise ValueError("Expected two views (from make_views) for the augmenter step.")
            with torch.no_grad():
                h1, h2 = self.encode_many([(views.seq1, views.len1), (views.seq2, views.len2)])
            return self.augmenter_loss(h1, h2)
        if self.recommendation_only:
            rec = self.rec_loss(
                self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]),
                interaction,
            )
            zero = rec.new_zeros(())
            return {"loss": rec, "loss/rec": rec, "loss/cl1": zero, "loss/cl2": zero,
                    "loss/reg": zero}  # fmt: skip
        if views is None:
            raise ValueError("Expected two views (from make_views) when beta or lambda > 0.")
        return self.encoder_loss(interaction, *self.encode_batch(interaction, views))

    def encode_batch(self, interaction: Any, views: Views) -> tuple[Tensor, Tensor, Tensor]:
        """``h, h1, h2``: the input sequences and the two views, in one forward pass (B, H)."""
        h, h1, h2 = self.encode_many(
            [
                (interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]),
                (views.seq1, views.len1),
                (views.seq2, views.len2),
            ]
        )
        return h, h1, h2

    def encoder_loss(
        self, interaction: Any, h: Tensor, h1: Tensor, h2: Tensor
    ) -> dict[str, Tensor]:
        """``L_rec + lambda L_cl1 + beta (L_cl2 + R)`` from encoded batches (steps 1, 3, joint)."""
        terms = self.contrastive_terms(h1, h2)
        rec = self.rec_loss(h, interaction)
        terms["loss/rec"] = rec
        terms["loss"] = (
            rec
            + self.cl_weight * terms["loss/cl1"]
            + self.beta * (terms["loss/cl2"] + terms["loss/reg"])
        )
        return terms

    def augmenter_loss(self, h1: Tensor, h2: Tensor) -> dict[str, Tensor]:
        """``lambda L_cl1 + L_cl2 + R`` from encoded views (step 2; pass them detached)."""
        terms = self.contrastive_terms(h1, h2)
        terms["loss"] = self.cl_weight * terms["loss/cl1"] + terms["loss/cl2"] + terms["loss/reg"]
        return terms


class DuoRec(SASRec):
    """DuoRec (Qiu et al., WSDM 2022) as a RecBole model, on the core's InfoNCE.

    SASRec (cross-entropy over all items) plus contrastive regularisation of the sequence
    representations (the official ``duorec.py``; ``contrast`` selects the terms):

    * unsupervised (``"un"``, ``"us"``): model-level augmentation, the same sequence encoded
      twice with independent dropout masks; ``lmd * InfoNCE(h, h')``;
    * supervised (``"su"``, ``"us"``): a positive is another training sequence with the same
      target item, drawn uniformly per batch row; ``lmd_sem * InfoNCE(h, h_sem)``;
    * ``"us_x"`` (DuoRec as published and the default): ``lmd_sem * InfoNCE(h', h_sem)`` between
      a dropout view of the sequence and a same-target sequence.

    Every InfoNCE is :func:`recsys.losses.pair_info_nce` (NT-Xent over the 2B rows, both
    directions, 2B - 2 in-batch negatives; dot product or cosine over ``tau``), as the official
    ``info_nce`` with ``mask_correlated_samples``. Defaults (``DuoRec.yaml``, ``seq.yaml`` and
    ``duorec.sh`` of RuihongQiu/DuoRec at 4ebc30d, checked line by line): ``lmd`` 0.1,
    ``lmd_sem`` 0.1, ``tau`` 1, ``sim`` dot, ``contrast`` ``us_x``; its dropout 0.5 is here the
    data set's default (0.5 on the Amazon sets, as every model).

    As in the official ``duorec_aug``, the same-target positive is drawn uniformly among the
    other training sequences with that target, and a row whose target no other sequence has
    gets itself (encoded with its own dropout mask). One difference: the official code selects
    on MRR@10 (``seq.yaml``); ``recsys evaluate`` selects every model on ``trainer.monitor``
    (NDCG@10), so that all rows of a table use one rule.

    The same-target pools are built from the training split given to the constructor; the
    constructor adds an index column (``duorec_row``) to that split so that a row never draws
    itself while others exist.
    """

    ROW_FIELD = "duorec_row"

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        if self.loss_type != "CE":
            raise ValueError(f"Expected loss_type 'CE' for DuoRec, got {self.loss_type!r}.")
        self.lmd = float(_get(config, "lmd", 0.1))
        self.lmd_sem = float(_get(config, "lmd_sem", 0.1))
        self.tau = float(_get(config, "tau", 1.0))
        self.sim = str(_get(config, "sim", "dot"))
        self.contrast = str(_get(config, "contrast", "us_x"))
        if self.contrast not in ("us_x", "us", "un", "su"):
            raise ValueError(
                f"Expected `contrast` in 'us_x', 'us', 'un', 'su', but got {self.contrast!r}."
            )
        if self.sim not in ("dot", "cos"):
            raise ValueError(f"Expected `sim` to be 'dot' or 'cos', but got {self.sim!r}.")
        self.fast_encoder = bool(_get(config, "fast_encoder", True))
        feat = dataset.inter_feat
        targets = feat[self.POS_ITEM_ID].long()
        n = len(targets)
        if self.ROW_FIELD not in feat:
            feat[self.ROW_FIELD] = torch.arange(n)
        self._pool_seqs = feat[self.ITEM_SEQ]
        self._pool_lens = feat[self.ITEM_SEQ_LEN]
        self._order = torch.argsort(targets, stable=True)  # example rows sorted by target
        self._rank = torch.empty(n, dtype=torch.long)
        self._rank[self._order] = torch.arange(n)
        self._counts = torch.bincount(targets, minlength=self.n_items)
        self._starts = self._counts.cumsum(0) - self._counts
        self.last_terms: dict[str, float] = {}

    def forward(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        """The sequence representation (output at ``len - 1``). Shape: (B, H)."""
        if self.fast_encoder:
            return sasrec_encode(self, item_seq, item_seq_len)
        return super().forward(item_seq, item_seq_len)

    def same_target(
        self, interaction: Any, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw, per row, another training sequence with the same target item.

        Args:
            interaction: A RecBole training batch.
            generator: Random number generator (default: torch's global one).

        Returns:
            ``(item_seq, item_seq_len)`` of the drawn sequences, shapes (B, L) and (B,).
        """
        device = interaction[self.ITEM_SEQ].device
        targets = interaction[self.POS_ITEM_ID].long().cpu()
        counts = self._counts[targets]
        starts = self._starts[targets]
        rows = interaction[self.ROW_FIELD].cpu() if self.ROW_FIELD in interaction else None
        others = (counts - 1).clamp(min=1) if rows is not None else counts
        pick = torch.floor(torch.rand(len(targets), generator=generator) * others).long()
        if rows is not None:
            own = self._rank[rows] - starts  # the row's own place among its target's examples
            pick = torch.where(counts > 1, pick + (pick >= own).long(), own)
        chosen = self._order[starts + pick]
        return self._pool_seqs[chosen].to(device), self._pool_lens[chosen].to(device)

    def training_terms(self, interaction: Any) -> dict[str, Tensor]:
        """The loss and its named parts: ``loss``, ``loss/rec``, ``loss/un``, ``loss/su``."""
        seq, length = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        batch = [(seq, length)]
        unsupervised = self.contrast in ("us", "un", "us_x")
        supervised = self.contrast in ("us", "su", "us_x")
        if unsupervised:
            batch.append((seq, length))  # independent dropout masks: the model-level view
        if supervised:
            batch.append(self.same_target(interaction))
        encoded = torch.cat([s for s, _ in batch]), torch.cat([n for _, n in batch])
        parts = list(self.forward(*encoded).split(seq.shape[0]))
        h = parts[0]
        rec = embedding_cross_entropy(h, self.item_embedding.weight, interaction[self.POS_ITEM_ID])
        zero = rec.new_zeros(())
        terms = {"loss/rec": rec, "loss/un": zero, "loss/su": zero}
        if seq.shape[0] >= MIN_CONTRAST_BATCH:
            normalize = self.sim == "cos"
            if self.contrast == "us_x":
                terms["loss/su"] = pair_info_nce(parts[1], parts[2], self.tau, normalize=normalize)
            else:
                if unsupervised:
                    terms["loss/un"] = pair_info_nce(h, parts[1], self.tau, normalize=normalize)
                if supervised:
                    terms["loss/su"] = pair_info_nce(h, parts[-1], self.tau, normalize=normalize)
        terms["loss"] = rec + self.lmd * terms["loss/un"] + self.lmd_sem * terms["loss/su"]
        return terms

    def calculate_loss(self, interaction: Any) -> Tensor:
        """RecBole's training entry point."""
        terms = self.training_terms(interaction)
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        return terms["loss"]
