"""Image metrics for strokes: PSNR, SSIM (Gaussian window), alpha IoU, and "over white" helpers.

All functions are batched torch code: images are float tensors [N, C, H, W] in 0..1 and the
per-image functions return [N]. Dataset-level aggregates (`psnr_of_mse`, `iou_from_counts`) let an
evaluation sum over batches without averaging away the meaning:

* PSNR of a set = 10 log10(1 / mean squared error over every pixel of the set) (identical -> inf).
* SSIM follows Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03 and
  population statistics, which is scikit-image's
  `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1)`; the mean is over the "valid" region (no padding), as scikit-image crops.
* Alpha IoU thresholds both alphas and compares the covered pixel sets (two empty strokes -> 1).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["over_white", "rgba_to_tensors", "mse", "psnr", "psnr_of_mse", "ssim", "gaussian_window",
           "alpha_iou", "iou_counts", "iou_from_counts"]


# -- strokes over white -------------------------------------------------------------------------
def over_white(colour: torch.Tensor, alpha: torch.Tensor, background: float = 1.0) -> torch.Tensor:
    """Straight colour [N, 3, H, W] with alpha [N, 1, H, W] composited over a flat background."""
    return colour * alpha + background * (1 - alpha)


def rgba_to_tensors(rgba, device=None, dtype=torch.float32):
    """Premultiplied RGBA strokes (uint8 [N, H, W, 4] array or tensor, as the painting programs
    render) -> (stroke over white [N, 3, H, W], alpha [N, 1, H, W]) as floats in 0..1."""
    t = rgba if isinstance(rgba, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(rgba))
    integer = not torch.is_floating_point(t)
    if device is not None:
        t = t.to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).to(dtype)
    if integer:
        t = t / 255.0
    premult, alpha = t[:, :3], t[:, 3:4]
    return (premult + (1 - alpha)).clamp(0, 1), alpha


# -- PSNR ---------------------------------------------------------------------------------------
def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, [N]."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def psnr_of_mse(m, data_range: float = 1.0):
    """PSNR in dB for a mean squared error (tensor or float); 0 error -> inf."""
    if isinstance(m, torch.Tensor):
        return 10 * torch.log10(data_range ** 2 / m)  # x/0 = inf in torch
    return math.inf if m <= 0 else 10 * math.log10(data_range ** 2 / m)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, [N] (inf where the images are identical)."""
    return psnr_of_mse(mse(a, b), data_range)


# -- SSIM ---------------------------------------------------------------------------------------
def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of `size` taps."""
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter per channel."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03, reduce_channels: bool = True) -> torch.Tensor:
    """Structural similarity per image, [N] (or [N, C] with reduce_channels=False).

    Images smaller than the window are filtered with a window shrunk to the image (odd size)."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim wants two [N, C, H, W] tensors of the same shape, got {list(a.shape)} and {list(b.shape)}")
    x, y = a.double(), b.double()
    win = min(window, x.shape[-1], x.shape[-2])
    win -= 1 - win % 2
    g = gaussian_window(win, sigma, x.device, x.dtype)
    mu_x, mu_y = _filter(x, g), _filter(y, g)
    xx, yy, xy = _filter(x * x, g), _filter(y * y, g), _filter(x * y, g)
    var_x, var_y, cov = xx - mu_x ** 2, yy - mu_y ** 2, xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    s = s.mean((-2, -1))
    return (s.mean(1) if reduce_channels else s).to(a.dtype if a.is_floating_point() else torch.float32)


# -- alpha IoU ----------------------------------------------------------------------------------
def iou_counts(pred_alpha: torch.Tensor, true_alpha: torch.Tensor, threshold: float = 0.5):
    """(intersection, union) pixel counts per image, each [N] (float)."""
    p = pred_alpha.flatten(1) > threshold
    t = true_alpha.flatten(1) > threshold
    return (p & t).sum(1).float(), (p | t).sum(1).float()


def iou_from_counts(intersection, union):
    """IoU from counts (tensors or floats); an empty union (both strokes empty) counts as 1."""
    if isinstance(union, torch.Tensor):
        return torch.where(union > 0, intersection / union.clamp_min(1), torch.ones_like(union))
    return 1.0 if union <= 0 else float(intersection) / float(union)


def alpha_iou(pred_alpha: torch.Tensor, true_alpha: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union of the pixels whose alpha exceeds `threshold`, per image [N]."""
    return iou_from_counts(*iou_counts(pred_alpha, true_alpha, threshold))
