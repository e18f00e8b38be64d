import math

import numpy as np
import pytest
import torch

from painter_models.metrics import (alpha_iou, iou_counts, iou_from_counts, mse, over_white, psnr, psnr_of_mse,
                                    rgba_to_tensors, ssim)


def _pair(seed=0, n=3, c=3, s=48, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, c, s, s, generator=g)
    b = (a + noise * torch.randn(n, c, s, s, generator=g)).clamp(0, 1)
    return a, b


def test_identical_images():
    a, _ = _pair()
    assert torch.isinf(psnr(a, a)).all()
    assert torch.allclose(ssim(a, a), torch.ones(3))
    assert psnr_of_mse(0.0) == math.inf


def test_psnr_known_value():
    a = torch.zeros(2, 3, 8, 8)
    b = torch.full_like(a, 0.1)  # mse 0.01 -> 20 dB
    assert torch.allclose(psnr(a, b), torch.full((2,), 20.0), atol=1e-4)
    assert torch.allclose(mse(a, b), torch.full((2,), 0.01))
    assert abs(psnr_of_mse(0.001) - 30.0) < 1e-9


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_ssim_matches_skimage(noise):
    import skimage.metrics as skm
    a, b = _pair(noise=noise)
    ours = ssim(a, b)
    for i in range(a.shape[0]):
        ref = skm.structural_similarity(a[i].numpy(), b[i].numpy(), channel_axis=0, data_range=1.0,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(float(ours[i]) - float(ref)) < 1e-4


def test_ssim_orders_by_noise_and_is_batched():
    a, b1 = _pair(noise=0.05)
    _, b2 = _pair(noise=0.3)
    assert (ssim(a, b1) > ssim(a, b2)).all()
    assert ssim(a, b1, reduce_channels=False).shape == (3, 3)


def test_ssim_small_images_shrink_window():
    a, b = _pair(s=6)
    v = ssim(a, b)
    assert v.shape == (3,) and torch.isfinite(v).all()


def test_alpha_iou():
    t = torch.zeros(2, 1, 4, 4)
    p = torch.zeros(2, 1, 4, 4)
    t[0, 0, :2] = 1          # 8 pixels
    p[0, 0, 1:3] = 1         # 8 pixels, 4 shared -> 4 / 12
    # image 1: both empty -> 1
    iou = alpha_iou(p, t)
    assert torch.allclose(iou, torch.tensor([4 / 12, 1.0]))
    i, u = iou_counts(p, t)
    assert iou_from_counts(float(i.sum()), float(u.sum())) == pytest.approx(4 / 12)
    assert iou_from_counts(0.0, 0.0) == 1.0
    assert alpha_iou(t, t)[0] == 1.0


def test_over_white_and_rgba_conversion():
    colour = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    alpha = torch.full((1, 1, 2, 2), 0.5)
    rgb = over_white(colour, alpha)
    assert torch.allclose(rgb, torch.tensor([0.6, 0.7, 0.8]).view(1, 3, 1, 1).expand(1, 3, 2, 2))
    # premultiplied uint8 RGBA -> over white, alpha
    rgba = np.zeros((1, 2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., 0] = 255  # opaque red
    rgb2, a2 = rgba_to_tensors(rgba)
    assert rgb2.shape == (1, 3, 2, 2) and a2.shape == (1, 1, 2, 2)
    assert torch.allclose(rgb2[:, 0], torch.ones(1, 2, 2)) and torch.allclose(rgb2[:, 1:], torch.zeros(1, 2, 2, 2))
    transparent = np.zeros((1, 2, 2, 4), np.uint8)
    rgb3, a3 = rgba_to_tensors(torch.from_numpy(transparent))
    assert torch.allclose(rgb3, torch.ones_like(rgb3)) and torch.all(a3 == 0)
