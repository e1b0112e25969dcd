"""Models, augmentations, the generated set, loaders and baselines of SepCLR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medical.sepclr.augment import BatchAugment
from medical.sepclr.baselines import CPCA, ContrastiveVAE
from medical.sepclr.config import AugmentConfig, LossConfig, ModelConfig, resolve_weights
from medical.sepclr.data import load_data
from medical.sepclr.evaluate import run_probes
from medical.sepclr.model import SepCLRModel, SingleModel
from medical.sepclr.synth import make_generated
from shared.errors import InputError


@pytest.mark.parametrize(
    ("encoder", "channels", "size"), [("small-cnn", 1, 28), ("resnet18", 3, 16)]
)
def test_model_shapes_and_every_parameter_gets_a_gradient(
    encoder: str, channels: int, size: int
) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=encoder, width=8, common_dim=5, salient_dim=3)  # type: ignore[arg-type]
    model = SepCLRModel(cfg, channels)
    out = model(torch.rand(4, channels, size, size))
    assert out.common_rep.shape == (4, 5)
    assert out.salient_head.shape == (4, 3)
    assert torch.allclose(out.common_head.norm(dim=1), torch.ones(4))
    assert not torch.allclose(out.salient_head.norm(dim=1), torch.ones(4))
    (out.common_head.sum() + out.salient_head.pow(2).sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # the two encoders share no weights
    assert model.common.encoder is not model.salient.encoder
    single = SingleModel(cfg, channels)
    rep, head = single(torch.rand(2, channels, size, size))
    assert rep.shape == (2, 5)
    assert torch.allclose(head.norm(dim=1), torch.ones(2))


def test_augment_batched_range_and_randomness() -> None:
    x = torch.rand(6, 3, 20, 20)
    aug = BatchAugment(AugmentConfig(rotation=30.0, vflip=0.5))
    a, b = aug(x), aug(x)
    assert a.shape == x.shape
    assert a.min() >= 0
    assert a.max() <= 1
    assert not torch.allclose(a, b)
    gen1, gen2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(aug(x, gen1), aug(x, gen2))


def test_augment_identity_settings() -> None:
    x = torch.rand(3, 1, 16, 16)
    cfg = AugmentConfig(crop_min=1.0, hflip=0.0, rotation=0.0, jitter=0.0)
    # area 1 with aspect ratio != 1 still crops one side; aspect fixed at 1 only in the limit,
    # so compare the full-flip case instead: hflip=1 mirrors exactly when area and aspect are 1
    out = BatchAugment(cfg)(x)
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="B, C, H, W"):
        BatchAugment(cfg)(torch.rand(16, 16))


def test_generated_set_factors() -> None:
    d = make_generated(n_per_group=12, size=16, seed=3)
    g, digit, tex = d["train_groups"], d["train_digit"], d["train_texture"]
    assert (digit[g == 0] == -1).all()
    assert (digit[g == 1] >= 0).all()
    assert set(np.unique(tex)) <= {0, 1, 2, 3}
    assert d["test_images"].shape[0] == 40  # at least 20 per group
    assert np.array_equal(d["train_images"], make_generated(12, 16, 3)["train_images"])
    # the digit adds brightness: target images are brighter on average
    x = d["train_images"].astype(float)
    assert x[g == 1].mean() > x[g == 0].mean()


def _write_pngs(folder: Path, n: int, size: tuple[int, int] = (12, 12)) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(folder / name)
        names.append(name)
    return names


def test_csv_folder_loader(tmp_path: Path) -> None:
    names = _write_pngs(tmp_path, 12)
    rows = ["path,group,sex"] + [
        f"{n},{'target' if i % 2 else 'background'},{'F' if i % 3 else 'M'}"
        for i, n in enumerate(names)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ds = load_data(tmp_path, test_fraction=0.34)
    assert ds.x_train.shape[1:] == (1, 12, 12)
    assert len(ds.x_train) + len(ds.x_test) == 12
    assert set(ds.f_train) == {"sex"}
    assert 0 < ds.x_train.min() or ds.x_train.max() <= 1


def test_medmnist_npz_groups_from_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        f"{s}_{k}": v
        for s in ("train", "test")
        for k, v in (
            ("images", rng.integers(0, 255, (8, 10, 10), dtype=np.uint8)),
            ("labels", np.array([[0], [1]] * 4, dtype=np.uint8)),
        )
    }
    np.savez(tmp_path / "pneumoniamnist_balanced.npz", **arrays)
    ds = load_data(tmp_path)
    assert ds.kind == "pneumoniamnist"
    assert ds.g_train.tolist() == [0, 1] * 4
    assert resolve_weights(LossConfig(), ds.kind) == (1.0, 10.0, 10.0)


@pytest.mark.realdata
def test_pneumoniamnist_real(shared_data: Path) -> None:
    folder = shared_data / "pneumoniamnist"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    bal = load_data(folder, split="balanced")
    off = load_data(folder, split="official")
    assert bal.x_train.shape == (2428, 1, 28, 28)
    assert np.bincount(bal.g_train).tolist() == [1214] * 2
    assert off.x_test.shape[0] == 624


def test_cpca_finds_the_target_only_direction() -> None:
    rng = np.random.default_rng(0)
    bg = rng.normal(size=(300, 6)) * [4, 1, 1, 1, 1, 1]
    tg = rng.normal(size=(300, 6)) * [4, 1, 1, 1, 3, 1]
    m = CPCA(1, alpha=1.0).fit(tg, bg)
    assert int(np.abs(m.salient_axes[:, 0]).argmax()) == 4
    assert int(np.abs(m.common_axes[:, 0]).argmax()) == 0
    out = m.transform(tg)
    assert out["common"].shape == (300, 1)


def test_cvae_loss_parts_and_background_has_no_salient_kl() -> None:
    torch.manual_seed(0)
    vae = ContrastiveVAE((1, 12, 12), 3, 2, width=4, hidden=16)
    x = torch.rand(4, 1, 12, 12)
    out = vae.loss(x, torch.zeros(4, dtype=torch.bool))
    assert out["loss/kl_salient"].item() == 0.0
    out = vae.loss(x, torch.ones(4, dtype=torch.bool))
    assert out["loss/kl_salient"].item() > 0
    out["loss"].backward()
    feats = vae.features(x)
    assert feats["common"]["rep"].shape == (4, 3)
    assert feats["salient"]["rep"].shape == (4, 2)


def test_probes_read_the_right_factor() -> None:
    d = make_generated(n_per_group=20, size=16)
    from medical.sepclr.data import from_arrays

    ds = from_arrays(d, Path("sepclr_generated.npz"))

    def feats(g: np.ndarray, f: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        # an oracle: "salient" holds the digit one-hot, "common" the texture one-hot
        digit = np.eye(10)[np.clip(f["digit"], 0, 9)] * (f["digit"][:, None] >= 0)
        tex = np.eye(4)[f["texture"]]
        sal = np.concatenate([digit, g[:, None]], axis=1)
        return {"common": {"rep": tex, "head": tex}, "salient": {"rep": sal, "head": sal}}

    probes = run_probes(feats(ds.g_train, ds.f_train), feats(ds.g_test, ds.f_test), ds)
    assert probes["common"]["texture_linear"] == 1.0
    assert probes["salient"]["digit_linear"] > 0.9
    assert probes["salient"]["group_linear"] == 1.0
    assert probes["common"]["digit_linear"] < 0.3
    assert probes["salient"]["texture_linear"] < 0.5


def test_bad_npz_and_paths(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", train_images=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(InputError, match="test_images"):
        load_data(tmp_path / "x.npz")
    with pytest.raises(InputError, match="no such file"):
        load_data(tmp_path / "missing.npz")


def test_sixteen_bit_scans_keep_their_range(tmp_path: Path) -> None:
    from PIL import Image

    rows = ["path,group,split"]
    for i in range(8):
        img = np.full((10, 10), 8000 * (i + 1), dtype=np.uint16)
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{i % 2},{'test' if i >= 4 else 'train'}")
    (tmp_path / "scans.csv").write_text("\n".join(rows) + "\n")
    ds = load_data(tmp_path / "scans.csv")
    assert ds.x_train.dtype == np.float32
    assert ds.x_train[:, 0, 0, 0].tolist() == pytest.approx(
        [8000 * k / 65535 for k in (1, 2, 3, 4)]
    )
    assert ds.g_test.tolist() == [0, 1, 0, 1]
