"""Differentiable, batched blending of strokes onto canvases.

Shapes: canvas [B, 3, H, W]; strokes [B, K, ...] are painted in order k = 0..K-1.
Both blends are exact closed forms (see tests/test_blending.py).
"""
from __future__ import annotations

import torch

EMPTY_STROKE = 1e-2  # a stroke whose darkest pixel is lighter than this is treated as no stroke


def darkness_mask(strokes_rgb: torch.Tensor, eps: float = EMPTY_STROKE) -> torch.Tensor:
    """Nakano's mask from a stroke rendered over white: 1 - mean over channels, divided by its maximum.

    strokes_rgb [..., 3, H, W] -> mask [..., 1, H, W] in [0, 1]. A near-empty stroke (max darkness
    below `eps`) is not blown up to full opacity: it is divided by `eps` instead, so it stays faint."""
    dark = (1 - strokes_rgb.mean(-3, keepdim=True)).clamp(0, 1)
    peak = dark.amax(dim=(-2, -1), keepdim=True).clamp_min(eps)
    return dark / peak


def over(canvas: torch.Tensor, premultiplied: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Alpha-over of K premultiplied layers, k = 0 at the bottom: canvas <- layer + canvas * (1 - alpha).

    canvas [B, 3, H, W]; premultiplied [B, K, C, H, W] (colour x alpha, what MyPaint renders on a
    transparent surface and what painters give); alphas [B, K, 1, H, W]. Computed in one pass: each
    layer is weighted by the transmittance of the layers above it (a reverse cumulative product), which
    avoids a Python loop over K and keeps autograd memory at O(K). The canvas renderer's compositor."""
    k = alphas.shape[1]
    if k == 0:
        return canvas
    if k == 1:
        return premultiplied[:, 0] + canvas * (1 - alphas[:, 0])
    keep = 1 - alphas
    through = torch.flip(torch.cumprod(torch.flip(keep, [1]), 1), [1])         # prod_{j >= k} (1 - alpha_j)
    above = torch.cat([through[:, 1:], torch.ones_like(through[:, :1])], 1)     # prod_{j > k}
    return (premultiplied * above).sum(1) + canvas * through[:, 0]


def alpha_blend(canvas: torch.Tensor, colours: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Alpha-over of straight (not premultiplied) colours [B, K, 3, H, W] with alphas [B, K, 1, H, W]."""
    return over(canvas, colours * alphas, alphas)


def linear_blend(canvas: torch.Tensor, masks: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Nakano's linear blending: canvas <- mask * colour + (1 - mask) * canvas, stroke after stroke.

    canvas [B, 3, H, W]; masks [B, K, 1, H, W]; colours [B, K, 3] (the actions' RGB)."""
    return alpha_blend(canvas, colours[..., None, None].expand(*masks.shape[:2], 3, *masks.shape[-2:]), masks)
