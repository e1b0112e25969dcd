"""A faster forward pass for RecBole's SASRec encoder, with the same parameters and the same maths.

RecBole's ``SASRec.forward`` runs every transformer layer on every position and then keeps the
output at position ``len - 1``. :func:`sasrec_encode` computes the same representation from the
same modules (so state_dicts are interchangeable and a model trained one way can be evaluated
the other) but:

* fuses the query/key/value projections into one matrix product and calls
  :func:`torch.nn.functional.scaled_dot_product_attention` with RecBole's additive mask
  (0 for allowed keys, -10000 for padding and future keys), so fully masked rows behave the same;
* runs the **last** layer for the query at ``len - 1`` only: with causal attention no other
  position of the last layer reaches the output, so its attention output projection, residual
  LayerNorm and feed-forward network shrink from ``L`` positions to one;
* uses the fused :func:`torch.nn.functional.gelu` (the exact erf form RecBole writes out by hand).

In eval mode the output equals RecBole's up to float rounding (tested); in training mode the
dropout masks are drawn differently but from the same distribution.

:class:`FastSASRec` is RecBole's ``SASRec`` with this forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.layers import FeedForward, MultiHeadAttention
from recbole.model.sequential_recommender import SASRec
from torch import Tensor

__all__ = ["FastSASRec", "causal_padding_mask", "sasrec_encode"]

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


def _attention(
    attn: MultiHeadAttention, hidden: Tensor, query_in: Tensor, mask: Tensor, training: bool
) -> Tensor:
    """Multi-head attention of ``query_in`` (B, Q, H) over ``hidden`` (B, L, H), then add & norm."""
    batch, length, size = hidden.shape
    heads, head_dim = attn.num_attention_heads, attn.attention_head_size
    if query_in is hidden:
        weight = torch.cat([attn.query.weight, attn.key.weight, attn.value.weight])
        bias = torch.cat([attn.query.bias, attn.key.bias, attn.value.bias])
        qkv = F.linear(hidden, weight, bias).view(batch, length, 3, heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    else:
        weight = torch.cat([attn.key.weight, attn.value.weight])
        bias = torch.cat([attn.key.bias, attn.value.bias])
        kv = F.linear(hidden, weight, bias).view(batch, length, 2, heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        q = attn.query(query_in).view(batch, -1, heads, head_dim).transpose(1, 2)
    p = attn.attn_dropout.p if training else 0.0
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    context = context.transpose(1, 2).reshape(batch, -1, size)
    out = attn.out_dropout(attn.dense(context))
    return attn.LayerNorm(out + query_in)


def _feed_forward(ff: FeedForward, hidden: Tensor, gelu: bool) -> Tensor:
    inner = ff.dense_1(hidden)
    inner = F.gelu(inner) if gelu else ff.intermediate_act_fn(inner)
    out = ff.dropout(ff.dense_2(inner))
    return ff.LayerNorm(out + hidden)


def sasrec_encode(model: SASRec, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
    """The sequence representation of RecBole's SASRec (output at ``len - 1``), computed faster.

    Args:
        model: A RecBole ``SASRec`` (or a subclass with the same modules).
        item_seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        item_seq_len: Number of items per row, >= 1. Shape: (B,), long.

    Returns:
        Shape: (B, H), float.
    """
    batch, length = item_seq.shape
    positions = torch.arange(length, device=item_seq.device)
    hidden = model.item_embedding(item_seq) + model.position_embedding(positions)[None]
    hidden = model.dropout(model.LayerNorm(hidden))
    mask = causal_padding_mask(item_seq, hidden.dtype)
    gelu = getattr(model, "hidden_act", "gelu") == "gelu"
    layers = list(model.trm_encoder.layer)
    last = (item_seq_len - 1).clamp(min=0)
    rows = torch.arange(batch, device=item_seq.device)
    for i, layer in enumerate(layers):
        if i < len(layers) - 1:
            hidden = _attention(layer.multi_head_attention, hidden, hidden, mask, model.training)
            hidden = _feed_forward(layer.feed_forward, hidden, gelu)
        else:
            query = hidden[rows, last][:, None, :]
            query_mask = mask[rows, :, last][:, :, None, :]
            out = _attention(layer.multi_head_attention, hidden, query, query_mask, model.training)
            hidden = _feed_forward(layer.feed_forward, out, gelu)
    return hidden[:, 0] if layers else hidden[rows, last]


class FastSASRec(SASRec):
    """RecBole's SASRec with the faster forward pass of :func:`sasrec_encode`.

    Same parameters, same initialisation, same losses and predictions as RecBole's ``SASRec``;
    its ``state_dict`` loads into either class.
    """

    def forward(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        """Return the sequence representation. Shape: (B, H)."""
        return sasrec_encode(self, item_seq, item_seq_len)
