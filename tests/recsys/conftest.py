"""Fixtures for the recsys tests: tiny generated data sets (no download, no real data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


ENCODER = {
    "n_layers": 2,
    "n_heads": 2,
    "hidden_size": 64,
    "inner_size": 64,
    "hidden_dropout_prob": 0.5,
    "attn_dropout_prob": 0.5,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
    "loss_type": "CE",
}


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny generated data set as a RecBole atomic folder (a DatasetSource)."""
    from recsys.data import resolve_dataset

    folder = tmp_path_factory.mktemp("tiny")
    return resolve_dataset(str(write_sequences(folder / "tiny.txt")), folder)


@pytest.fixture(scope="session")
def make_setup(tiny_source: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """``make_setup(model_cls, **settings) -> (config, dataset, train, valid, test)``, cached."""
    from recsys.loading import build_config, load_data

    cache: dict[Any, Any] = {}

    def make(model_cls: type, **settings: Any) -> Any:
        key = (model_cls, tuple(sorted((k, repr(v)) for k, v in settings.items())))
        if key not in cache:
            run = tmp_path_factory.mktemp("ck")
            merged = {**ENCODER, "train_batch_size": 16, "epochs": 2, **settings}
            config = build_config(model_cls, tiny_source, merged, checkpoint_dir=run, device="cpu")
            cache[key] = (config, *load_data(config))
        return cache[key]

    return make
