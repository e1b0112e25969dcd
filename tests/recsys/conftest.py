"""Fixtures for the recsys tests: tiny generated data sets (no download, no real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_sequences(
    path: Path,
    n_users: int = 40,
    n_items: int = 30,
    seed: int = 0,
    min_len: int = 4,
    max_len: int = 12,
) -> Path:
    """A one-user-per-line text file with a learnable pattern (item i is often followed by i+1)."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(1, n_users + 1):
        length = int(rng.integers(min_len, max_len + 1))
        start = int(rng.integers(1, n_items + 1))
        seq = [(start + t - 1) % n_items + 1 for t in range(length)]
        noise = rng.random(length) < 0.2
        seq = [int(rng.integers(1, n_items + 1)) if n else s for s, n in zip(seq, noise)]
        lines.append(" ".join(map(str, [u, *seq])))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_text(tmp_path: Path) -> Path:
    """A generated text data set: 40 users, 30 items, 4 to 12 interactions each."""
    return write_sequences(tmp_path / "tiny.txt")
