"""Images, MATLAB bicubic, the patch store, PSNR/SSIM and tiled upscaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from shared.errors import InputError
from vision.sr.data import PatchDataset, folder_store, to_tensor
from vision.sr.imaging import bicubic_lr, cubic, imresize, read_image, write_image
from vision.sr.infer import receptive_radius, upscale_tensor
from vision.sr.metrics import image_metrics, psnr, psnr_np, rgb_to_y, ssim_np
from vision.sr.model import EDSR

# MATLAB's cubic kernel (a = -0.5) at the distances of a x0.5 antialiased resize: the kernel is
# stretched by 2, so the taps sit at 0.25, 0.75, 1.25, 1.75 (in units of the stretched kernel).
W = {0.25: 0.8671875, 0.75: 0.2265625, 1.25: -0.0703125, 1.75: -0.0234375}


def test_cubic_kernel_hand_values():
    assert cubic(np.array(list(W))).tolist() == list(W.values())


def test_imresize_matches_the_hand_computed_matlab_value():
    ramp = np.arange(1.0, 9.0)[None, :].repeat(3, axis=0)
    out = imresize(ramp, 0.5)
    assert out.shape == (2, 4)
    # output 1: centre u = 1.5; taps at input indices -2..5 (1-based), mirrored at the border
    # (0 -> 1, -1 -> 2, -2 -> 3), weights 0.5 * cubic(0.5 * (u - i)).
    first = 0.5 * (
        W[1.75] * 3
        + W[1.25] * 2
        + W[0.75] * 1
        + W[0.25] * 1
        + W[0.25] * 2
        + W[0.75] * 3
        + W[1.25] * 4
        + W[1.75] * 5
    )
    assert out[0, 0] == pytest.approx(first, abs=1e-12)
    assert out[0, 0] == pytest.approx(1.44921875, abs=1e-12)
    # a ramp is reproduced exactly (cubic reproduces lines) except where a tap is mirrored:
    # output 2 (u = 3.5) reads input 0 as input 1, output 3 (u = 5.5) input 9 as input 8.
    assert out[0, 1] == pytest.approx(3.5 + 0.5 * W[1.75] * (1 - 0), abs=1e-12)
    assert out[0, 2] == pytest.approx(5.5 + 0.5 * W[1.75] * (8 - 9), abs=1e-12)
    up = imresize(ramp, 2.0)
    assert up.shape == (6, 16)
    assert up[0, 4:12] == pytest.approx(np.arange(2.75, 6.75, 0.5), abs=1e-12)


def test_bicubic_lr_shape_dtype_and_constant():
    img = np.full((12, 18, 3), 77, dtype=np.uint8)
    lr = bicubic_lr(img, 3)
    assert lr.shape == (4, 6, 3)
    assert lr.dtype == np.uint8
    assert (lr == 77).all()


def _png(path, array, mode="RGB"):
    Image.fromarray(array, mode).save(path)
    return path


def test_read_image_grey_rgb_and_bad_files(tmp_path):
    rgb = (np.arange(8 * 10 * 3) % 256).astype(np.uint8).reshape(8, 10, 3)
    image, grey = read_image(_png(tmp_path / "a.png", rgb))
    assert grey is False
    assert np.array_equal(image, rgb)
    g = (np.arange(80) % 256).astype(np.uint8).reshape(8, 10)
    image, grey = read_image(_png(tmp_path / "g.png", g, "L"))
    assert grey is True
    assert image.shape == (8, 10, 3)
    assert np.array_equal(image[..., 1], g)
    write_image(tmp_path / "out.png", image, grey=True)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), g)
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.png.*corrupt or truncated"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match=r"text\.png"):
        read_image(tmp_path / "text.png")


def test_folder_store_and_patch_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        _png(tmp_path / f"im{i}.png", rng.integers(0, 256, (20, 26, 3), dtype=np.uint8))
    pairs = folder_store(tmp_path, 2, min_size=8)
    assert [p.name for p in pairs] == ["im0", "im1"]
    assert pairs[0].hr.shape == (20, 26, 3)
    assert pairs[0].lr.shape == (10, 13, 3)
    ds = PatchDataset(pairs, 2, 8, length=6)
    torch.manual_seed(5)
    a = [ds[i] for i in range(6)]
    torch.rand(100)  # other draws from the global RNG do not change the patches
    b = [ds[i] for i in range(6)]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    lr, hr = a[0]
    assert lr.shape == (3, 4, 4)
    assert hr.shape == (3, 8, 8)
    torch.manual_seed(6)
    assert not all(torch.equal(x[1], ds[i][1]) for i, x in enumerate(a))
    # every LR patch is the bicubic image of its HR patch's position (no augmentation)
    plain = PatchDataset(pairs, 2, 8, length=4, augment=False)
    for i in range(4):
        lr, hr = plain[i]
        for pair in pairs:
            h = to_tensor(pair.hr)
            hits = [
                (y, x)
                for y in range(0, h.shape[1] - 7, 2)
                for x in range(0, h.shape[2] - 7, 2)
                if torch.equal(h[:, y : y + 8, x : x + 8], hr)
            ]
            for y, x in hits:
                assert torch.equal(
                    to_tensor(pair.lr)[:, y // 2 : y // 2 + 4, x // 2 : x // 2 + 4], lr
                )
    with pytest.raises(InputError, match=r"data\.patch_size"):
        PatchDataset(pairs, 2, 64, length=1)
    with pytest.raises(InputError, match="multiple of the scale"):
        PatchDataset(pairs, 3, 8, length=1)


def test_psnr_ssim_against_hand_values_and_skimage():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (40, 36, 3)).astype(np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    y = rgb_to_y(hr)
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == 16.0
    assert y[3, 4] == pytest.approx(
        16 + (65.481 * hr[3, 4, 0] + 128.553 * hr[3, 4, 1] + 24.966 * hr[3, 4, 2]) / 255
    )
    mse = np.mean((sr[2:-2, 2:-2].astype(float) - hr[2:-2, 2:-2]) ** 2)
    assert psnr_np(sr, hr, crop=2) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert psnr_np(sr, hr, 2) == pytest.approx(
        peak_signal_noise_ratio(hr[2:-2, 2:-2], sr[2:-2, 2:-2], data_range=255)
    )
    ys, yh = rgb_to_y(sr), rgb_to_y(hr)
    ref = structural_similarity(
        yh[2:-2, 2:-2],
        ys[2:-2, 2:-2],
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim_np(ys, yh, crop=2) == pytest.approx(ref, abs=1e-6)
    ref_rgb = structural_similarity(
        hr[2:-2, 2:-2].astype(float),
        sr[2:-2, 2:-2].astype(float),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    assert ssim_np(sr, hr, crop=2) == pytest.approx(ref_rgb, abs=1e-6)
    assert ssim_np(hr, hr) == pytest.approx(1.0)
    m = image_metrics(sr, hr, 2)
    assert set(m) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}
    t = psnr(to_tensor(sr)[None], to_tensor(hr)[None], crop=2, y_channel=True)
    assert float(t[0]) == pytest.approx(m["psnr_y"], abs=1e-6)


def test_tiled_upscale_equals_whole_image():
    torch.manual_seed(7)
    model = EDSR(2, n_blocks=2, channels=8).eval()
    lr = torch.rand(3, 45, 38)
    radius = receptive_radius(model)
    whole = upscale_tensor(model, lr, 2, tile=None)
    tiled = upscale_tensor(model, lr, 2, tile=16, pad=radius)
    assert tiled.shape == whole.shape == (3, 90, 76)
    assert torch.allclose(tiled, whole, atol=1e-5)
    rough = upscale_tensor(model, lr, 2, tile=16, pad=1)  # too little context: seams
    assert not torch.allclose(rough, whole, atol=1e-5)
