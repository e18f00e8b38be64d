"""Pure image operations the objectives share, on tensors [N, C, H, W]: fitting an image to a canvas size,
Gaussian blur, sRGB -> OKLab, a perspective warp, and cutting a loss's gradient outside a mask.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["fit_to", "gate_gradient", "gaussian_blur", "perspective_warp", "srgb_to_oklab"]


def fit_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize [N, C, H, W] to (h, w): plain resize when the aspect ratio matches (within 1 %), else
    resize to cover and centre-crop."""
    H, W = x.shape[-2:]
    if (H, W) == (h, w):
        return x
    if abs(H / W - h / w) > 0.01 * (h / w):
        s = max(h / H, w / W)
        nh, nw = max(h, round(H * s)), max(w, round(W * s))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - h) // 2, (nw - w) // 2
        return x[..., top:top + h, left:left + w]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding); sigma in pixels, 0 = identity."""
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    r_h, r_w = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    x = F.pad(x, (r_w, r_w, r_h, r_h), mode="reflect" if min(r_h, r_w) > 0 else "replicate")
    kh = k[r - r_h: r + r_h + 1].view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kw = k[r - r_w: r + r_w + 1].view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def gate_gradient(canvas: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Same values; gradient only where the mask is > 0."""
    if m is None:
        return canvas
    return torch.where(m > 0, canvas, canvas.detach())


def srgb_to_oklab(x: torch.Tensor) -> torch.Tensor:
    """sRGB [B, 3, H, W] in 0..1 -> OKLab (L 0..1, a and b about -0.3..0.3; Ottosson 2020). The cube
    root has a linear toe below (6/29)^3, as CIELab's, so black has a finite gradient."""
    x = x.clamp(0, 1)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    lms = torch.einsum("ij,bjhw->bihw", x.new_tensor(_OKLAB_M1), linear)
    toe = (6 / 29) ** 3
    root = torch.where(lms > toe, lms.clamp_min(toe) ** (1 / 3), lms * toe ** (-2 / 3))
    return torch.einsum("ij,bjhw->bihw", x.new_tensor(_OKLAB_M2), root)


_OKLAB_M1 = [[0.4122214708, 0.5363325363, 0.0514459929],
             [0.2119034982, 0.6806995451, 0.1073969566],
             [0.0883024619, 0.2817188376, 0.6299787005]]
_OKLAB_M2 = [[0.2104542553, 0.7936177850, -0.0040720468],
             [1.9779984951, -2.4285922050, 0.4505937099],
             [0.0259040371, 0.7827717662, -0.8086757660]]


def perspective_warp(x: torch.Tensor, start, end, fill: float = 1.0) -> torch.Tensor:
    """Warp [N, C, H, W] so that the pixel at `start[i]` lands on `end[i]` (4 corner pairs, (x, y) pixel
    coordinates, as torchvision's perspective), bilinear, `fill` outside. Differentiable in x. Unlike
    torchvision's bilinear fill (which blends the already zero-padded sample once more and leaves a dark
    seam), the sample is composited exactly: sample + (1 - coverage) * fill."""
    n, c, h, w = x.shape
    rows, rhs = [], []
    for (qx, qy), (px, py) in zip(start, end):  # output point p -> input point q
        rows.append([px, py, 1, 0, 0, 0, -qx * px, -qx * py])
        rows.append([0, 0, 0, px, py, 1, -qy * px, -qy * py])
        rhs += [qx, qy]
    A = torch.tensor(rows, dtype=torch.float64)
    coef = torch.linalg.solve(A, torch.tensor(rhs, dtype=torch.float64)).tolist()
    a, b, cc, d, e, f, g, hh = coef
    dt = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=dt), torch.arange(w, device=x.device, dtype=dt),
                            indexing="ij")
    den = g * xs + hh * ys + 1
    xin, yin = (a * xs + b * ys + cc) / den, (d * xs + e * ys + f) / den
    grid = torch.stack([(2 * xin + 1) / w - 1, (2 * yin + 1) / h - 1], -1).to(x.dtype)
    grid = grid[None].expand(n, h, w, 2)
    ones = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
    out = F.grid_sample(torch.cat([x, ones], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :c] + (1 - out[:, c:]) * fill
