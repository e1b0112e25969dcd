"""The chunked log-sum-exp path (shared.losses._chunked) against the full path.

Values and gradients must agree in float64 for every chunk size (divisors or not), reduction,
normalisation and the distributed arguments; gradcheck passes; bf16 autocast stays finite; and
the chunked path's peak memory stays far below one (B, M) logit matrix.
"""

from __future__ import annotations

import gc
import os

import pytest
import torch
import torch.nn.functional as F

from shared.losses import nt_xent, sup_con
from shared.losses._chunked import (
    AUTO_CHUNK_BYTES,
    default_chunk_size,
    masked_logsumexp,
)

CHUNKS = [1, 3, 4, 7, 64]  # with B = 6 pairs (12 anchors): divisors, non-divisors, > rows


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def randn(*shape, gen, dtype=torch.float64):
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_(True)


def _value_and_grads(fn, *inputs):
    out = fn(*inputs)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out * weights).sum(), inputs)
    return out.detach(), grads


def _assert_same(full, chunked):
    torch.testing.assert_close(chunked[0], full[0], rtol=1e-10, atol=1e-12)
    for g_full, g_chunk in zip(full[1], chunked[1], strict=True):
        torch.testing.assert_close(g_chunk, g_full, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- the kernel itself


def test_masked_logsumexp_matches_naive(gen):
    a, c = randn(5, 3, gen=gen), randn(7, 3, gen=gen)
    exclude = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4], [4, 4]])
    logits = 2.0 * a @ c.T
    masked = logits.clone()
    masked[torch.arange(5)[:, None], exclude] = float("-inf")
    expected = torch.logsumexp(masked, dim=1)
    for chunk in (None, 1, 2, 5, 9):
        got = masked_logsumexp(a, c, 2.0, exclude, chunk_size=chunk)
        torch.testing.assert_close(got, expected)
        assert got.dtype == torch.float64


def test_masked_logsumexp_all_excluded_row_is_neg_inf_with_zero_grad(gen):
    a, c = randn(2, 3, gen=gen), randn(2, 3, gen=gen)
    exclude = torch.tensor([[0, 1], [0, 0]])  # row 0 excludes every candidate
    for chunk in (None, 1):
        out = masked_logsumexp(a, c, 1.0, exclude, chunk_size=chunk)
        assert out[0].item() == float("-inf")
        ga, gc_ = torch.autograd.grad(out[1], (a, c))
        assert torch.isfinite(ga).all()
        assert torch.isfinite(gc_).all()


@pytest.mark.parametrize("chunk", [None, 2, 3])
def test_masked_logsumexp_gradcheck(gen, chunk):
    a, c = randn(5, 3, gen=gen), randn(4, 3, gen=gen)
    exclude = torch.tensor([[0], [1], [2], [3], [0]])
    assert torch.autograd.gradcheck(
        lambda x, y: masked_logsumexp(x, y, 1.7, exclude, chunk_size=chunk), (a, c)
    )
    # The same tensor as anchors and candidates (the no-gather case).
    assert torch.autograd.gradcheck(
        lambda x: masked_logsumexp(x, x, 0.9, exclude[:4], chunk_size=chunk), (c,)
    )


@pytest.mark.parametrize("chunk", [None, 2, 3])
@pytest.mark.parametrize("same", [True, False])
def test_masked_logsumexp_positives_match_naive_and_gradcheck(gen, chunk, same):
    a = randn(4, 3, gen=gen)
    c = a if same else randn(4, 3, gen=gen)
    exclude = torch.tensor([[0], [1], [2], [3]])
    positives = torch.tensor([[1, 2], [0, 0], [3, 1], [2, 0]])  # K = 2, a duplicate in row 1
    logits = 1.5 * a @ c.T
    masked = logits.clone()
    masked[torch.arange(4)[:, None], exclude] = float("-inf")
    expected = torch.logsumexp(masked, 1) - logits.gather(1, positives).mean(1)
    got = masked_logsumexp(a, c, 1.5, exclude, positives=positives, chunk_size=chunk)
    torch.testing.assert_close(got, expected)
    inputs = (a,) if same else (a, c)

    def fn(*xs):
        x, y = (xs[0], xs[0]) if same else xs
        return masked_logsumexp(x, y, 1.5, exclude, positives=positives, chunk_size=chunk)

    assert torch.autograd.gradcheck(fn, inputs)


def test_masked_logsumexp_backward_twice_with_retain_graph(gen):
    a = randn(5, 3, gen=gen)
    exclude, positives = torch.arange(5)[:, None], torch.tensor([[1], [0], [3], [2], [0]])
    for chunk in (None, 2):
        out = masked_logsumexp(a, a, 2.0, exclude, positives=positives, chunk_size=chunk).sum()
        (first,) = torch.autograd.grad(out, a, retain_graph=True)
        (second,) = torch.autograd.grad(out, a)
        torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_chunk_size_validation(gen):
    a = randn(3, 2, gen=gen)
    with pytest.raises(ValueError, match="`chunk_size` to be a positive int"):
        masked_logsumexp(a, a, 1.0, chunk_size=0)
    with pytest.raises(ValueError, match="`chunk_size` to be a positive int"):
        nt_xent(a, a, chunk_size=-2)


def test_default_chunk_size_and_auto_switch():
    assert default_chunk_size(65536) == 512  # 128 MiB blocks of float32 logits
    assert default_chunk_size(1 << 40) == 1
    assert AUTO_CHUNK_BYTES == 2 << 30


# ---------------------------------------------------------------- nt_xent: chunked == full


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("normalize", [True, False])
def test_nt_xent_chunked_matches_full(gen, chunk, reduction, normalize):
    z1, z2 = randn(6, 5, gen=gen), randn(6, 5, gen=gen)

    def fn(c):
        return lambda a, b: nt_xent(a, b, 0.3, normalize=normalize, reduction=reduction, **c)

    _assert_same(
        _value_and_grads(fn({}), z1, z2), _value_and_grads(fn({"chunk_size": chunk}), z1, z2)
    )


@pytest.mark.parametrize("chunk", [1, 5, None])
def test_nt_xent_chunked_distributed_arguments(gen, chunk):
    """Rank 1 of 3 (offset 4 of N = 12): chunked and full paths agree, gradients included."""
    z1_all, z2_all = randn(12, 5, gen=gen), randn(12, 5, gen=gen)

    def fn(chunk_size):
        def loss(a_all, b_all):
            return nt_xent(
                a_all[4:8],
                b_all[4:8],
                0.2,
                z1_all=a_all,
                z2_all=b_all,
                offset=4,
                reduction="none",
                chunk_size=chunk_size,
            )

        return loss

    full = _value_and_grads(fn(None), z1_all, z2_all)
    _assert_same(full, _value_and_grads(fn(chunk), z1_all, z2_all))
    # And the gathered form equals the single-process loss on the global batch, rows 4..7.
    single = nt_xent(z1_all, z2_all, 0.2, reduction="none").detach()
    torch.testing.assert_close(full[0], torch.cat([single[4:8], single[16:20]]))


def test_nt_xent_chunked_gradcheck(gen):
    z1, z2 = randn(4, 3, gen=gen), randn(4, 3, gen=gen)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.5, chunk_size=3), (z1, z2))
    assert torch.autograd.gradcheck(
        lambda a, b: nt_xent(a, b, 0.5, normalize=False, reduction="none", chunk_size=2),
        (z1, z2),
    )


# ---------------------------------------------------------------- sup_con: chunked == full


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_labels", [True, False])
def test_sup_con_chunked_matches_full(gen, chunk, reduction, with_labels):
    f = randn(6, 2, 5, gen=gen)
    labels = torch.tensor([0, 1, 0, 2, 1, 3]) if with_labels else None  # class 2, 3: 1 sample

    def fn(c):
        return lambda x: sup_con(x, labels, 0.2, reduction=reduction, **c)

    _assert_same(_value_and_grads(fn({}), f), _value_and_grads(fn({"chunk_size": chunk}), f))


def test_sup_con_matches_masked_reference(gen):
    """The class-sum positive term equals the mask form of Khosla et al.'s L_out."""
    f = randn(6, 3, 4, gen=gen)
    labels = torch.tensor([5, 1, 5, 7, 1, 9])
    anchors = F.normalize(f.detach(), dim=-1).transpose(0, 1).reshape(-1, 4)
    logits = anchors @ anchors.T / 0.3
    lab = labels.repeat(3)
    eye = torch.eye(18, dtype=torch.bool)
    pos = (lab[:, None] == lab[None, :]) & ~eye
    log_prob = logits - torch.logsumexp(logits.masked_fill(eye, float("-inf")), 1, keepdim=True)
    expected = -(log_prob * pos).sum(1) / pos.sum(1).clamp_min(1)
    expected = torch.where(pos.any(1), expected, 0.0)
    for chunk in (None, 4):
        got = sup_con(f, labels, 0.3, reduction="none", chunk_size=chunk)
        torch.testing.assert_close(got.detach(), expected)


@pytest.mark.parametrize("with_labels", [True, False])
def test_sup_con_chunked_distributed_arguments(gen, with_labels):
    f_all = randn(6, 2, 4, gen=gen)
    labels_all = torch.tensor([0, 1, 0, 1, 2, 2]) if with_labels else None

    def fn(chunk_size):
        return lambda x: sup_con(
            x[2:4],
            None if labels_all is None else labels_all[2:4],
            0.2,
            features_all=x,
            labels_all=labels_all,
            offset=2,
            reduction="sum",
            chunk_size=chunk_size,
        )

    _assert_same(_value_and_grads(fn(None), f_all), _value_and_grads(fn(3), f_all))
    single = sup_con(f_all, labels_all, 0.2, reduction="none").detach().view(2, 6)
    torch.testing.assert_close(_value_and_grads(fn(3), f_all)[0], single[:, 2:4].sum())


def test_sup_con_chunked_gradcheck(gen):
    f = randn(4, 2, 3, gen=gen)
    labels = torch.tensor([0, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda x: sup_con(x, labels, 0.5, chunk_size=3), (f,))
    assert torch.autograd.gradcheck(
        lambda x: sup_con(x, None, 0.5, normalize=False, reduction="none", chunk_size=5), (f,)
    )


# ---------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("tau", [0.01, 0.1])
def test_chunked_bf16_autocast_is_finite_and_close(gen, tau):
    z1 = torch.randn(16, 32, generator=gen)
    z2 = torch.randn(16, 32, generator=gen)
    labels = torch.arange(16) % 4
    cases = {
        "nt_xent": lambda x, y: nt_xent(x, y, tau, chunk_size=5),
        "sup_con": lambda x, y: sup_con(torch.stack([x, y], 1), labels, tau, chunk_size=5),
    }
    for name, fn in cases.items():
        full = fn(z1, z2)
        a = z1.clone().requires_grad_(True)
        b = z2.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fn(a @ torch.eye(32), b @ torch.eye(32))  # bf16 activations, as from a head
        grad_a, grad_b = torch.autograd.grad(low, (a, b))
        assert torch.isfinite(low), name
        assert torch.isfinite(grad_a).all(), name
        assert torch.isfinite(grad_b).all(), name
        assert low.item() == pytest.approx(full.item(), rel=0.05, abs=0.05 / tau * 0.1), name


def test_half_inputs_small_temperature_chunked(gen):
    z1 = torch.randn(8, 16, generator=gen).half()
    z2 = torch.randn(8, 16, generator=gen).half()
    out = nt_xent(z1, z2, 0.01, chunk_size=3)
    assert out.dtype == torch.float16
    assert torch.isfinite(out)


# ---------------------------------------------------------------- memory (not a timing)


def _rss_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def _peak_growth_bytes(fn) -> int:
    """Peak resident-set growth while ``fn`` runs (Linux: VmHWM reset via clear_refs)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - before) * 1024


_can_reset_peak = os.access("/proc/self/clear_refs", os.W_OK) and os.path.exists(
    "/proc/self/status"
)


@pytest.mark.skipif(not _can_reset_peak, reason="needs Linux /proc/self/clear_refs")
def test_chunked_peak_memory_is_far_below_the_logit_matrix():
    """B = 2048 pairs: one (2B, 2B) float32 matrix is 64 MiB; blocks of 256 rows are 4 MiB."""
    torch.manual_seed(0)
    z1 = torch.randn(2048, 8, requires_grad=True)
    z2 = torch.randn(2048, 8, requires_grad=True)
    matrix = (2 * 2048) ** 2 * 4

    def run(chunk):
        def step():
            nt_xent(z1, z2, 0.5, chunk_size=chunk).backward()

        return step

    run(256)()  # warm up lazily allocated buffers (thread pools, BLAS workspaces)
    chunked = _peak_growth_bytes(run(256))
    full = _peak_growth_bytes(run(None))
    assert full > 0.9 * matrix, "the measurement must see the full path's matrix"
    assert chunked < 0.25 * matrix, f"chunked peak {chunked / 2**20:.1f} MiB"
