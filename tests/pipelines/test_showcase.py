"""The core showcase's building blocks: data split, augmentations, encoder and tasks."""

from __future__ import annotations

import pytest
import torch

from pipelines._digits import (
    DigitAugment,
    DigitsCNN,
    SimCLRTask,
    SupConTask,
    load_digits_split,
    resize,
)
from pipelines.showcase import QUICK, SMOKE, ShowcaseConfig
from shared.config import ConfigError, from_dict
from shared.heads import Encoder, ProjectionHead


def test_split_is_fixed_stratified_and_scaled():
    a = load_digits_split(0.3, 0)
    b = load_digits_split(0.3, 0)
    assert a.x_train.shape == (1257, 1, 8, 8)
    assert a.x_test.shape == (540, 1, 8, 8)
    assert torch.equal(a.x_test, b.x_test)
    assert torch.equal(a.y_test, b.y_test)
    assert 0.0 <= float(a.x_train.min())
    assert float(a.x_train.max()) <= 1.0
    counts = torch.bincount(a.y_test, minlength=10)
    assert int(counts.min()) >= 50  # every digit is in the test split, in proportion
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(1.5)


def test_augment_shapes_range_and_reproducibility():
    x = load_digits_split().x_test[:16]
    aug = DigitAugment(out_size=16)
    v = aug(x)
    assert v.shape == (16, 1, 16, 16)
    assert torch.isfinite(v).all()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(aug(x, generator=g1), aug(x, generator=g2))
    assert not torch.equal(aug(x), aug(x))  # random otherwise


def test_augment_without_randomness_is_a_resize():
    x = load_digits_split().x_test[:8]
    still = DigitAugment(
        out_size=16,
        scale=(1.0, 1.0),
        aspect=0.0,
        shift=0.0,
        rotation=0.0,
        intensity=0.0,
        noise_std=0.0,
        erase_prob=0.0,
    )
    torch.testing.assert_close(still(x), resize(x, 16), atol=1e-5, rtol=0)


def test_augment_never_flips():
    # An asymmetric image: mass on the left. With zoom in [0.7, 1], shifts up to 15 % and
    # rotations up to 15 degrees, the mass stays on the left; a flip would move it right.
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 2:6, 0:2] = 1.0
    v = DigitAugment(out_size=16, erase_prob=0.0, noise_std=0.0)(x)
    cols = torch.arange(16, dtype=torch.float32)
    centre = (v.sum(dim=(1, 2)) * cols).sum(1) / v.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    assert bool((centre < 7.5).all())


def test_augment_validates_arguments():
    with pytest.raises(ValueError, match="scale"):
        DigitAugment(scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="erase_prob"):
        DigitAugment(erase_prob=2.0)


@pytest.mark.parametrize("size", [8, 16])
def test_encoder_interface(size):
    enc = DigitsCNN(8, 24)
    assert isinstance(enc, Encoder)
    assert enc.num_features == 24
    assert enc.forward_features(torch.rand(3, 1, size, size)).shape == (3, 24)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        enc.forward_features(torch.rand(3, 8, 8))


@pytest.mark.parametrize("task_cls", [SimCLRTask, SupConTask])
def test_every_parameter_gets_a_gradient(task_cls):
    torch.manual_seed(0)
    enc = DigitsCNN(4, 8)
    task = task_cls(enc, ProjectionHead(8, 8, 4), DigitAugment(out_size=8), 0.2)
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    out = task.training_step((x, y))
    assert set(out) == {"loss", f"loss/{'nt_xent' if task_cls is SimCLRTask else 'sup_con'}"}
    assert torch.isfinite(out["loss"])
    assert not out[next(k for k in out if k != "loss")].requires_grad
    out["loss"].backward()
    for name, p in task.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_task_checks_temperature():
    with pytest.raises(ValueError, match="temperature"):
        SimCLRTask(DigitsCNN(4, 8), ProjectionHead(8, 8, 4), DigitAugment(), 0.0)


def test_config_presets_load():
    for preset in (QUICK, SMOKE):
        from pipelines.common import build_config

        cfg = build_config(ShowcaseConfig, preset)
        assert cfg.trainer.weights == "last"  # the showcase's trainer defaults survive
    with pytest.raises(ConfigError, match="methods"):
        from_dict(ShowcaseConfig, {"methods": []})
    with pytest.raises(ConfigError, match="simclr"):
        from_dict(ShowcaseConfig, {"methods": ["simclr", "byol"]})
    with pytest.raises(ConfigError, match="image_size"):
        from_dict(ShowcaseConfig, {"data": {"image_size": 2}})


def test_methods_table_matches_the_config_choices():
    from typing import get_args

    from pipelines.showcase import METHODS, Method

    assert set(METHODS) == set(get_args(Method))
    assert set(ShowcaseConfig().methods) == set(METHODS)
