"""Augmentation semantics: crop lengths, masked ids, reorder spans, length-1 sequences."""

from __future__ import annotations

import math

import pytest
import torch

from recsys.augment import CROP, MASK, REORDER, augment_pair, crop, mask, reorder

L = 12


def batch(lengths: list[int], max_len: int = L) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows 100*r + 1, 100*r + 2, ... (all distinct), left-aligned, zero-padded."""
    seq = torch.zeros(len(lengths), max_len, dtype=torch.long)
    for r, n in enumerate(lengths):
        seq[r, :n] = torch.arange(1, n + 1) + 100 * r
    return seq, torch.tensor(lengths)


LENGTHS = [1, 2, 3, 4, 5, 7, 10, 12]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", range(5))
def test_crop_keeps_floor_half_consecutive_items_left_aligned(seed: int) -> None:
    seq, length = batch(LENGTHS)
    out, new_len = crop(seq, length, 0.5, generator=gen(seed))
    for r, n in enumerate(LENGTHS):
        k = n if n <= 1 else max(1, math.floor(0.5 * n))
        assert int(new_len[r]) == k
        kept = out[r, :k].tolist()
        row = seq[r, :n].tolist()
        start = row.index(kept[0])
        assert kept == row[start : start + k]  # consecutive items of the original
        assert out[r, k:].eq(0).all()  # left-aligned, zero padded


def test_crop_start_is_uniform() -> None:
    seq, length = batch([6] * 3000)
    out, _ = crop(seq, length, 0.5, generator=gen(1))
    starts = (out[:, 0] - 1 - 100 * torch.arange(3000)).bincount(minlength=4)
    assert len(starts) == 4  # start in {0, .., n - k} = {0, .., 3}
    assert (starts.float() / 3000 - 0.25).abs().max() < 0.04


@pytest.mark.parametrize("seed", range(5))
def test_mask_zeroes_floor_half_positions_and_keeps_length(seed: int) -> None:
    seq, length = batch(LENGTHS)
    out, new_len = mask(seq, length, 0.5, generator=gen(seed))
    assert torch.equal(new_len, length)
    for r, n in enumerate(LENGTHS):
        masked = out[r, :n].eq(0)
        assert int(masked.sum()) == (0 if n <= 1 else math.floor(0.5 * n))
        assert torch.equal(out[r, :n][~masked], seq[r, :n][~masked])  # others untouched
        assert out[r, n:].eq(0).all()


def test_mask_positions_are_uniform() -> None:
    seq, length = batch([4] * 4000)
    out, _ = mask(seq, length, 0.5, generator=gen(2))
    freq = out[:, :4].eq(0).float().mean(0)
    assert (freq - 0.5).abs().max() < 0.04


@pytest.mark.parametrize("seed", range(5))
def test_reorder_shuffles_one_span_of_floor_0_8_n(seed: int) -> None:
    seq, length = batch(LENGTHS)
    out, new_len = reorder(seq, length, 0.8, generator=gen(seed))
    assert torch.equal(new_len, length)
    for r, n in enumerate(LENGTHS):
        span = 0 if n <= 1 else math.floor(0.8 * n)
        row, got = seq[r, :n].tolist(), out[r, :n].tolist()
        assert sorted(got) == sorted(row)  # a permutation
        changed = [i for i in range(n) if got[i] != row[i]]
        if changed:
            assert changed[-1] - changed[0] + 1 <= span  # inside one span of that length
        assert out[r, n:].eq(0).all()


def test_reorder_permutations_are_uniform() -> None:
    seq, length = batch([3] * 6000)  # span floor(2.4) = 2 -> positions (0,1) or (1,2)
    out, _ = reorder(seq, length, 0.8, generator=gen(3))
    base = 100 * torch.arange(6000)[:, None]
    patterns = {tuple(p) for p in (out[:, :3] - base).tolist()}
    assert patterns == {(1, 2, 3), (2, 1, 3), (1, 3, 2)}
    unchanged = (out[:, :3] - base).eq(torch.tensor([1, 2, 3])).all(1).float().mean()
    assert abs(float(unchanged) - 0.5) < 0.03


def test_length_one_and_empty_rows_are_never_augmented() -> None:
    seq, length = batch([1, 1, 0])
    for op in (crop, mask, reorder):
        out, new_len = op(seq, length, generator=gen(0))
        assert torch.equal(out, seq)
        assert torch.equal(new_len, length)
    views = augment_pair(seq, length, generator=gen(0))
    assert torch.equal(views.seq1, seq)
    assert torch.equal(views.seq2, seq)
    assert views.ops.eq(-1).all()


def test_pair_uses_two_distinct_operators_with_their_semantics() -> None:
    lengths = [8] * 3000
    seq, length = batch(lengths)
    views = augment_pair(seq, length, generator=gen(4))
    first, second = views.ops[:, 0], views.ops[:, 1]
    assert (first != second).all()
    pairs = (first * 3 + second).bincount(minlength=9).float() / 3000
    for a in range(3):
        for b in range(3):
            expected = 0.0 if a == b else 1 / 6
            assert abs(float(pairs[a * 3 + b]) - expected) < 0.03
    for out, out_len, op in ((views.seq1, views.len1, first), (views.seq2, views.len2, second)):
        assert out_len[op == CROP].eq(4).all()
        assert out_len[op != CROP].eq(8).all()
        assert out[op == MASK, :8].eq(0).sum(1).eq(4).all()
        assert out[op == REORDER, :8].ne(0).all()


def test_generator_makes_views_reproducible() -> None:
    seq, length = batch(LENGTHS)
    a = augment_pair(seq, length, generator=gen(7))
    b = augment_pair(seq, length, generator=gen(7))
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_bad_inputs_raise_value_error() -> None:
    seq, length = batch([3, 4])
    with pytest.raises(ValueError, match=r"`seq` to have shape \(B, L\)"):
        crop(seq[0], length)
    with pytest.raises(ValueError, match=r"`length` to have shape \(B,\)"):
        mask(seq, length[:1])
    with pytest.raises(ValueError, match=r"`beta` to be in \[0, 1\]"):
        reorder(seq, length, 1.5)
