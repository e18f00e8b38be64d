"""Where the optimiser's new strokes start: at the largest error, in the photograph's local colour, along
its edges.

A round's strokes are placed by greedy argmax on a blurred error map (|canvas - target|, or the loss
gradient's magnitude without a target), with soft suppression around each pick; their colour starts at the
target's local colour and their direction follows the local edge (the structure tensor).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..objectives.image_ops import gaussian_blur


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur, skipped below a third of a pixel (it would change nothing)."""
    return gaussian_blur(x, sigma) if sigma > 0.3 else x


def error_map(canvas, target, grad, side, max_side=128):
    """Error map at reduced resolution [h, w] and the scale factor canvas px per map px."""
    h, w = canvas.shape[-2:]
    f = max(1.0, max(h, w) / max_side)
    size = (max(1, round(h / f)), max(1, round(w / f)))
    if target is not None:
        e = (canvas - target).abs().mean(1, keepdim=True)
    else:
        e = grad.abs().sum(1, keepdim=True)
    e = F.interpolate(e, size=size, mode="area") if f > 1 else e
    e = blur(e, side / 4 / f)
    return e[0, 0], f


def seed_positions(err: torch.Tensor, f: float, n: int, side: float, gen: torch.Generator):
    """n positions (canvas px) by greedy argmax with soft suppression around each pick."""
    err = err.detach().cpu().double()   # small map; the CPU (and float64) everywhere, MPS included
    hh, ww = err.shape
    ys = torch.arange(hh, dtype=err.dtype, device=err.device)[:, None]
    xs = torch.arange(ww, dtype=err.dtype, device=err.device)[None, :]
    sigma = max(0.7, side / 3 / f)
    if float(err.max()) <= 0:
        err = err + 1.0
    err = err + 1e-6 * float(err.max()) * torch.rand(err.shape, generator=gen, dtype=err.dtype).to(err.device)
    out = []
    for _ in range(n):
        i = int(err.argmax())
        y, x = divmod(i, ww)
        out.append(((x + 0.5) * f, (y + 0.5) * f))
        err.mul_(1 - 0.85 * torch.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * sigma * sigma)))
    pos = torch.tensor(out, dtype=torch.float32)
    pos += (torch.rand(pos.shape, generator=gen) - 0.5) * (side / 4)
    return pos


def local_colour(image: torch.Tensor, pos: torch.Tensor, side: float) -> torch.Tensor:
    """Mean colour of image [1, 3, H, W] around each position (blur ~ side / 4)."""
    h, w = image.shape[-2:]
    f = max(1.0, max(h, w) / 256)
    small = F.interpolate(image, size=(max(1, round(h / f)), max(1, round(w / f))), mode="area") if f > 1 else image
    small = blur(small, side / 5 / f)
    gx = pos[:, 0].to(image.device) / w * 2 - 1
    gy = pos[:, 1].to(image.device) / h * 2 - 1
    grid = torch.stack([gx, gy], -1)[None, :, None]
    return F.grid_sample(small, grid.to(small.dtype), align_corners=False, padding_mode="border")[0, :, :, 0].t()


def orientation(image: torch.Tensor, pos: torch.Tensor, side: float) -> torch.Tensor | None:
    """Angle of the local edge direction (strokes follow edges), from the structure tensor."""
    g = image.mean(1, keepdim=True)
    h, w = g.shape[-2:]
    f = max(1.0, max(h, w) / 256)
    if f > 1:
        g = F.interpolate(g, size=(max(1, round(h / f)), max(1, round(w / f))), mode="area")
    gx = F.pad(g[..., :, 1:] - g[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(g[..., 1:, :] - g[..., :-1, :], (0, 0, 0, 1))
    t = torch.cat([gx * gx, gy * gy, gx * gy], 1)
    t = blur(t, max(1.0, side / 3 / f))
    grid = torch.stack([pos[:, 0] / w * 2 - 1, pos[:, 1] / h * 2 - 1], -1).to(g.device, g.dtype)[None, :, None]
    s = F.grid_sample(t, grid, align_corners=False, padding_mode="border")[0, :, :, 0]   # [3, n]
    jxx, jyy, jxy = s
    # the gradient direction is the main eigenvector; strokes run perpendicular to it
    theta = 0.5 * torch.atan2(2 * jxy, jxx - jyy) + math.pi / 2
    strength = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-8)
    return theta.cpu(), strength.cpu()


def seed_actions(layout, n, colours, gen, theta=None, strength=None):
    a = torch.rand(n, layout.dim, generator=gen)
    ang = torch.rand(n, generator=gen) * math.pi
    if theta is not None:
        use = (torch.rand(n, generator=gen) < strength.clamp(0, 1) * 1.5)
        ang = torch.where(use, theta.float(), ang)
    half = 0.22 + 0.12 * torch.rand(n, generator=gen)
    cx, cy = 0.5 + 0.05 * (torch.rand(n, generator=gen) - 0.5), 0.5 + 0.05 * (torch.rand(n, generator=gen) - 0.5)
    sx, sy = cx - half * torch.cos(ang), cy - half * torch.sin(ang)
    ex, ey = cx + half * torch.cos(ang), cy + half * torch.sin(ang)
    bend = 0.06 * (torch.rand(n, generator=gen) - 0.5)
    mx, my = cx - bend * torch.sin(ang), cy + bend * torch.cos(ang)
    vals = {"start_x": sx, "start_y": sy, "end_x": ex, "end_y": ey, "control_x": mx, "control_y": my,
            "size": 0.55 + 0.3 * torch.rand(n, generator=gen),
            "entry_pressure": 0.65 + 0.2 * torch.rand(n, generator=gen),
            "exit_pressure": 0.65 + 0.2 * torch.rand(n, generator=gen)}
    if colours is not None:
        vals.update(red=colours[:, 0], green=colours[:, 1], blue=colours[:, 2])
    for role, v in vals.items():
        try:
            a[:, layout.index(role)] = v.clamp(0.02, 0.98)
        except KeyError:
            pass
    return a
