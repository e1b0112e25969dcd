"""A faster forward pass for RecBole's SASRec encoder, with the same parameters and the same maths.

RecBole's ``SASRec.forward`` runs every transformer layer on every position and then keeps the
output at position ``len - 1``. :func:`sasrec_encode` computes the same representation from the
same modules (so state_dicts are interchangeable and a model trained one way can be evaluated
the other) but:

* fuses the query/key/value projections into one matrix product and adds RecBole's additive
  mask (0 for allowed keys, -10000 for padding and future keys) inside the score product, so
  fully masked rows behave the same;
* runs the **last** layer for the query at ``len - 1`` only: with causal attention no other
  position of the last layer reaches the output, so its attention output projection, residual
  LayerNorm and feed-forward network shrink from ``L`` positions to one;
* runs the position-wise work of the other layers on the positions before ``len`` that hold an
  item only (packed): later positions are padding, and a masked item (id 0) is a masked key in
  every layer, so neither reaches the output unless it is the last position (17% of the
  positions are items in Beauty's training sequences, 78% in ml-100k's; the mask
  augmentation empties half of a view's);
* runs attention per group of rows of similar length, each on its own longest length instead of
  50 (keys after ``len`` get weight exactly 0 either way), with the groups cut where a cost
  model says (:func:`plan_length_groups`) and gathered in one index operation;
* uses the fused :func:`torch.nn.functional.gelu` (the exact erf form RecBole writes out by hand);
* draws dropout masks with :func:`torch.rand_like` and a comparison instead of ``bernoulli_``
  (same distribution; about 2.5x faster on CPU, where dropout was the largest cost after the
  matrix products).

In eval mode the output equals RecBole's up to float rounding for every row that holds at least
one item (tested; the augmentations never empty a row); in training mode the dropout masks are
drawn differently but from the same distribution.

:class:`FastSASRec` is RecBole's ``SASRec`` with this forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from recbole.model.layers import FeedForward, MultiHeadAttention
from recbole.model.sequential_recommender import SASRec
from torch import Tensor

from shared.losses import embedding_cross_entropy

__all__ = [
    "FastSASRec",
    "causal_padding_mask",
    "fast_dropout",
    "plan_length_groups",
    "sasrec_encode",
]

_MASKED = -10000.0  # RecBole's additive attention mask value


def causal_padding_mask(item_seq: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """RecBole's additive left-to-right mask: 0 where key ``j <= i`` holds an item, else -10000.

    Args:
        item_seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        dtype: Dtype of the mask.

    Returns:
        Shape: (B, 1, L, L).
    """
    length = item_seq.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=item_seq.device).tril()
    allowed = (item_seq != 0)[:, None, None, :] & causal
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=item_seq.device)
    return zeros.masked_fill(~allowed, _MASKED)


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout with the mask drawn by ``rand_like(x) >= p`` (same law as ``bernoulli``).

    Args:
        x: Any float tensor.
        p: Probability of zeroing an element, in [0, 1].
        training: Dropout is applied only in training.

    Returns:
        ``x`` scaled by ``1 / (1 - p)`` where kept, 0 elsewhere (``x`` itself when not training).
    """
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))  # in place: no bool-to-float copy
    return x * keep


def _attend(
    attn: MultiHeadAttention, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, training: bool
) -> Tensor:
    """Scaled dot-product attention with heads as column slices: (B, Q, H) -> (B, Q, H).

    ``k``, ``v``: (B, L, H); ``mask``: (B, Q, L), additive. Batched matrix products accept the
    strided slices, which avoids the permute-and-copy of a (B, heads, L, d) layout.
    """
    heads, head_dim = attn.num_attention_heads, attn.attention_head_size
    p = attn.attn_dropout.p if training else 0.0
    scale = head_dim**-0.5
    outputs = []
    for h in range(heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        scores = torch.baddbmm(mask, q[..., cols], k[..., cols].transpose(1, 2), alpha=scale)
        probs = fast_dropout(scores.softmax(dim=-1), p, training)
        outputs.append(torch.bmm(probs, v[..., cols]))
    return torch.cat(outputs, dim=-1) if heads > 1 else outputs[0]


def _add_norm(
    attn: MultiHeadAttention, context: Tensor, residual: Tensor, training: bool
) -> Tensor:
    out = fast_dropout(attn.dense(context), attn.out_dropout.p, training)
    return attn.LayerNorm(out + residual)


def _feed_forward(ff: FeedForward, hidden: Tensor, gelu: bool, training: bool) -> Tensor:
    inner = ff.dense_1(hidden)
    inner = F.gelu(inner) if gelu else ff.intermediate_act_fn(inner)
    out = fast_dropout(ff.dense_2(inner), ff.dropout.p, training)
    return ff.LayerNorm(out + hidden)


#: Packed token counts are rounded up to a multiple of this (see :func:`_packed_positions`).
PACK_BUCKET = 512


def _packed_positions(valid: Tensor) -> Tensor:
    """Flat indices of the ``valid`` positions, plus padding positions up to a bucket size.

    The number of packed tokens is rounded up to a multiple of :data:`PACK_BUCKET` (at most
    B * L) with unused padding positions: a handful of tensor sizes instead of a new size every
    batch keeps glibc's heap from fragmenting (with exact sizes the resident memory of a
    training process grew by about 300 MB a minute here). 512 keeps the padding small (a
    Beauty batch of 256 rows holds about 2,140 tokens: 2,560 packed, where 2,048 packed 4,096
    and made the FastSASRec step 14% slower) with still a handful of sizes per data set.
    """
    flat_valid = valid.view(-1).nonzero().squeeze(1)
    total = valid.numel()
    target = min(total, -(-flat_valid.numel() // PACK_BUCKET) * PACK_BUCKET)
    extra = target - flat_valid.numel()
    if extra <= 0:
        return flat_valid
    flat_pad = (~valid).view(-1).nonzero().squeeze(1)[:extra]
    return torch.cat([flat_valid, flat_pad])


#: Cost of one more attention group, in units of padded attention work ``rows * L_g * (L_g + H)``
#: (see :func:`plan_length_groups`): about the fixed cost of a group's dozen small operations
#: forward and backward, measured on Beauty's batches on one CPU thread.
GROUP_COST = 30_000


def plan_length_groups(lengths: Sequence[int], hidden: int) -> list[int]:
    """Where to cut rows sorted by length into attention groups, at the least modelled cost.

    A group of ``n`` rows whose longest has length ``l`` costs ``n * l * (l + hidden)`` (its
    padded attention and the gathers of its (n, l, H) layouts) plus :data:`GROUP_COST`. An
    exact dynamic programme over the distinct lengths (at most L of them, so at most L^2 / 2
    steps) picks the cuts. On Beauty's training batches it models 38% less attention work than four
    groups of equal size, whose longest group pads many short rows to 50.

    Args:
        lengths: Row lengths sorted ascending, each >= 1.
        hidden: Hidden size H.

    Returns:
        Increasing group ends (exclusive row indices into ``lengths``); the last is
        ``len(lengths)``. Empty for no rows.

    Examples:
        >>> plan_length_groups([2] * 100 + [50] * 4, 64)  # the long rows get their own group
        [100, 104]
        >>> plan_length_groups([3, 4, 5], 64)  # a group costs more than the padding it saves
        [3]
    """
    ends: list[int] = []  # row index after the last row of each distinct length
    values: list[int] = []
    for i, value in enumerate(lengths):
        if values and value == values[-1]:
            ends[-1] = i + 1
        else:
            values.append(value)
            ends.append(i + 1)
    starts = [0, *ends[:-1]]  # first row of each distinct length
    best = [0.0]  # best[k]: least cost of the rows before ends[k - 1] (best[0]: no rows)
    cut = [0]  # cut[k]: where the last group of that plan starts (an index into best)
    for k, (end, value) in enumerate(zip(ends, values, strict=True), start=1):
        width = value * (value + hidden)
        cost, start = best[0] + end * width, 0
        for j in range(1, k):
            option = best[j] + (end - starts[j]) * width
            if option < cost:
                cost, start = option, j
        best.append(cost + GROUP_COST)
        cut.append(start)
    plan: list[int] = []
    k = len(ends)
    while k:
        plan.append(ends[k - 1])
        k = cut[k]
    return plan[::-1]


class _Group(NamedTuple):
    """Rows of similar length, attended on a (rows, L_g, L_g) layout with L_g their max length."""

    rows: int  # B_g
    span: int  # L_g
    mask: Tensor  # (B_g, L_g, L_g) additive mask
    last_mask: Tensor  # (B_g, 1, L_g) the mask row of each row's position len - 1


class _Layout(NamedTuple):
    """Every group's padded layout, concatenated (group after group, row-major)."""

    groups: list[_Group]
    order: Tensor  # (B,) batch rows in group order
    gather: Tensor  # (P,) packed index of each layout position; 0 (any row) for padding
    src: Tensor  # (V,) layout positions that hold a packed token
    dest: Tensor  # (V,) their packed indices

    def split(self, packed: Tensor) -> list[Tensor]:
        """Gather packed rows (T, C) into each group's layout (B_g, L_g, C), in one index.

        A padding position of a layout holds a copy of packed row 0: as a key it is masked
        (weight exactly 0 after the softmax, so its value adds exactly 0 and gets no gradient),
        and as a query its output is never scattered back.
        """
        flat = packed[self.gather].split([g.rows * g.span for g in self.groups])
        return [f.view(g.rows, g.span, -1) for f, g in zip(flat, self.groups, strict=True)]

    def merge(self, parts: list[Tensor], packed: Tensor) -> Tensor:
        """Scatter each group's layout (B_g, L_g, C) back to packed rows like ``packed``."""
        layout = torch.cat([p.reshape(-1, p.shape[-1]) for p in parts])
        return packed.new_zeros(packed.shape).index_copy(0, self.dest, layout[self.src])


def _length_groups(
    item_seq: Tensor, lengths: Tensor, slot: Tensor, dtype: torch.dtype, hidden: int
) -> _Layout:
    """Split the rows by length so that attention runs on each group's own length.

    A key at a position ``>= len`` is masked (weight exactly 0 after the softmax: -10000 under
    float32's exp underflows), and no query at such a position reaches the output, so cutting
    a group's layout at its longest row changes nothing but the work. The cuts come from
    :func:`plan_length_groups`. The groups' layouts are gathered from (and scattered back to)
    the packed rows in one index operation each, so that a backward pass accumulates into one
    buffer instead of one per group.
    """
    batch, length = item_seq.shape
    order = torch.argsort(lengths, stable=True)
    slots = slot.view(batch, length)
    sorted_lengths = lengths[order].tolist()
    groups, indices = [], []
    start = 0
    for end in plan_length_groups(sorted_lengths, hidden):
        rows = order[start:end]
        span = sorted_lengths[end - 1]
        indices.append(slots[rows, :span].reshape(-1))
        mask = causal_padding_mask(item_seq[rows, :span], dtype)[:, 0]
        last = lengths[rows] - 1
        last_mask = mask[torch.arange(end - start, device=rows.device), last][:, None, :]
        groups.append(_Group(end - start, span, mask, last_mask))
        start = end
    index = torch.cat(indices)
    valid = index >= 0
    return _Layout(
        groups=groups,
        order=order,
        gather=torch.where(valid, index, torch.zeros_like(index)),
        src=valid.nonzero().squeeze(1),
        dest=index[valid],
    )


def sasrec_encode(model: SASRec, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
    """The sequence representation of RecBole's SASRec (output at ``len - 1``), computed faster.

    Position-wise work (embeddings, projections, LayerNorms, feed-forward networks) runs on the
    packed positions ``< len`` that hold an item, plus each row's position ``len - 1``: a
    position at or after ``len``, or one whose item is 0 (masked), is a masked key everywhere
    and, unless it is ``len - 1``, not the output position, so skipping it changes nothing
    that reaches the output. Attention runs on padded layouts with RecBole's mask, one per group
    of rows of similar length, each cut at its longest row (:func:`_length_groups`).

    Args:
        model: A RecBole ``SASRec`` (or a subclass with the same modules).
        item_seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        item_seq_len: Number of items per row, 1 <= len <= L. Shape: (B,), long.

    Returns:
        Shape: (B, H), float.
    """
    batch, length = item_seq.shape
    device = item_seq.device
    training = model.training
    lengths = item_seq_len.clamp(1, length)
    positions = torch.arange(length, device=device)
    rows = torch.arange(batch, device=device)
    # Positions before len that hold an item, and each row's last position (the output).
    # A masked item (id 0, the mask augmentation's) is a masked key in every layer, so its
    # hidden state reaches the output only at len - 1.
    last = positions[None, :] == (lengths - 1)[:, None]
    holds_item = (positions[None, :] < lengths[:, None]) & (item_seq != 0)
    flat = _packed_positions(holds_item | last)  # (T,)
    slot = torch.full((batch * length,), -1, dtype=torch.long, device=device)
    slot[flat] = torch.arange(flat.numel(), device=device)
    ends = slot[rows * length + lengths - 1]  # packed index of each row's position len - 1

    x = model.item_embedding(item_seq.view(-1)[flat]) + model.position_embedding(flat % length)
    x = fast_dropout(model.LayerNorm(x), model.dropout.p, training)  # (T, H)
    layout = _length_groups(item_seq, lengths, slot, x.dtype, x.shape[-1])
    groups = layout.groups
    gelu = getattr(model, "hidden_act", "gelu") == "gelu"
    layers = list(model.trm_encoder.layer)
    size = x.shape[-1]
    for i, layer in enumerate(layers):
        attn = layer.multi_head_attention
        if i < len(layers) - 1:
            weight = torch.cat([attn.query.weight, attn.key.weight, attn.value.weight])
            bias = torch.cat([attn.query.bias, attn.key.bias, attn.value.bias])
            qkv = F.linear(x, weight, bias)  # (T, 3H)
            parts = []
            for g, grouped in zip(groups, layout.split(qkv), strict=True):
                q, k, v = grouped.split(size, dim=-1)  # (B_g, L_g, H) each
                parts.append(_attend(attn, q, k, v, g.mask, training))
            x = _add_norm(attn, layout.merge(parts, x), x, training)
            x = _feed_forward(layer.feed_forward, x, gelu, training)
        else:
            weight = torch.cat([attn.key.weight, attn.value.weight])
            bias = torch.cat([attn.key.bias, attn.value.bias])
            kv = F.linear(x, weight, bias)  # (T, 2H)
            query_in = x.index_select(0, ends)  # (B, H)
            q = attn.query(query_in).index_select(0, layout.order)  # rows in group order
            parts = []
            queries = q.split([g.rows for g in groups])
            for g, grouped, q_g in zip(groups, layout.split(kv), queries, strict=True):
                k, v = grouped.split(size, dim=-1)
                parts.append(_attend(attn, q_g[:, None, :], k, v, g.last_mask, training)[:, 0])
            context = q.new_zeros(q.shape).index_copy(0, layout.order, torch.cat(parts))
            x = _add_norm(attn, context, query_in, training)
            return _feed_forward(layer.feed_forward, x, gelu, training)
    return x.index_select(0, ends)


class FastSASRec(SASRec):
    """RecBole's SASRec with the faster forward pass of :func:`sasrec_encode`.

    Same parameters, same initialisation, same losses and predictions as RecBole's ``SASRec``;
    its ``state_dict`` loads into either class.
    """

    def forward(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        """Return the sequence representation. Shape: (B, H)."""
        return sasrec_encode(self, item_seq, item_seq_len)

    def calculate_loss(self, interaction: Any) -> Tensor:
        """RecBole's loss; cross-entropy over all items on the core's fused log-sum-exp.

        :func:`shared.losses.embedding_cross_entropy` computes ``F.cross_entropy`` of the
        logits ``seq_output @ item_embedding.T`` (tested equal) with one (B, n_items) buffer
        instead of three. BPR is RecBole's.
        """
        if self.loss_type != "CE":
            return super().calculate_loss(interaction)
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return embedding_cross_entropy(
            seq_output, self.item_embedding.weight, interaction[self.POS_ITEM_ID]
        )
