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


def linear_blend(canvas: torch.Tensor, masks: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Nakano's linear blending: canvas <- mask * colour + (1 - mask) * canvas, stroke after stroke.

    canvas [B, 3, H, W]; masks [B, K, 1, H, W]; colours [B, K, 3] (the actions' RGB)."""
    return alpha_blend(canvas, colours[..., None, None].expand(*masks.shape[:2], 3, *masks.shape[-2:]), masks)


def alpha_blend(canvas: torch.Tensor, colours: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Alpha-over blending, stroke after stroke: canvas <- colour * alpha + canvas * (1 - alpha).

    canvas [B, 3, H, W]; colours [B, K, 3, H, W] (straight, not premultiplied); alphas [B, K, 1, H, W].
    Computed in one pass: each stroke's contribution is weighted by the transmittance of the
    strokes above it, which avoids a Python loop over K and keeps autograd memory at O(K)."""
    if alphas.shape[1] == 0:
        return canvas
    keep = 1 - alphas                                               # [B, K, 1, H, W]
    # transmittance of everything painted after stroke k: prod_{j>k} (1 - alpha_j)
    after = torch.flip(torch.cumprod(torch.flip(keep, [1]), 1), [1])
    after = torch.cat([after[:, 1:], torch.ones_like(after[:, :1])], 1)
    painted = (colours * alphas * after).sum(1)
    return painted + canvas * after[:, 0] * keep[:, 0]


def premultiplied_over(canvas: torch.Tensor, premultiplied: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Alpha-over for premultiplied strokes (what MyPaint renders on a transparent surface)."""
    safe = alphas.clamp_min(1e-6)
    return alpha_blend(canvas, (premultiplied / safe).clamp(0, 1), alphas)
