"""A fast, batched, differentiable torch rasteriser with the same action layout as MyPaint.

Each stroke is the union of soft discs along its Bezier (radius from the size field, opacity
from the pressure ramp), in one flat colour. It is not a MyPaint substitute (no texture, no
dab dynamics): it exists for tests, for machines without libmypaint, and as a quick program
to train small painters on.

It is also part of the shipped painters' definition: a Generator with prior="raster" (every
painter in painter_models/weights/) adds the logit of render_torch's alpha to its alpha logit, so
any change to the values it computes changes those painters' strokes.
"""
from __future__ import annotations

import numpy as np
import torch

from .actions import NAKANO, ActionLayout, BrushReach, bezier_points, get_layout

N_POINTS = 48


class RasterProgram:
    """render(actions) -> uint8 [N, size, size, 4] premultiplied RGBA, like MyPaintProgram."""

    brush = "raster:soft_round"

    def __init__(self, size: int = 64, layout: ActionLayout | str = NAKANO, softness: float = 1.0,
                 batch: int = 256, device="cpu"):
        if not 8 <= int(size) <= 4096:
            raise ValueError(f"stroke size {size} px is out of range: use 8..4096 (64 is the default)")
        self.size, self.layout, self.softness = int(size), get_layout(layout), softness
        self.batch, self.device = batch, torch.device(device)
        # how far it paints from the path: radius * (0.35 + pressure <= 0.8), plus the soft edge down to
        # an 8-bit alpha of 0.5 / 255 (sigmoid(-6.23) at full opacity), plus a pixel (centres lie inside it)
        self.reach = BrushReach(6.3 * softness + 1.0, 1.15)

    def render_torch(self, actions: torch.Tensor):
        """Differentiable (colour [N, 3, S, S], alpha [N, 1, S, S]) for actions in [0, 1].

        alpha = max over the stroke's points of sigmoid((radius - distance) / edge) * opacity. The
        max is found without autograd (in place, one point at a time), then only each pixel's
        winning point is recomputed with gradients (the gradient of a max is the gradient of its
        argmax): the same values as a running torch.maximum, several times faster with gradients."""
        lay, s, n = self.layout, self.size, actions.shape[0]
        x, y, pressure = bezier_points(lay, actions, N_POINTS)                 # [N, P]
        radius = torch.exp(lay.to_physical(actions, "size"))[:, None] * (s / 64.0)
        radius = radius * (0.35 + pressure)                                    # harder press, wider
        opacity = (0.25 + pressure / 0.8 * 0.75).clamp(0, 1)
        grid = torch.arange(s, dtype=actions.dtype, device=actions.device) + 0.5
        edge = self.softness * s / 64.0  # edge width scales with the stroke, like the geometry
        with torch.no_grad():
            dx2 = (grid[None, None, :] - x.detach()[:, :, None] * s) ** 2      # [N, P, S]
            dy2 = (grid[None, None, :] - y.detach()[:, :, None] * s) ** 2
            r, o = radius.detach(), opacity.detach()
            best = actions.new_zeros(n, s, s)
            winner = torch.zeros(n, s, s, dtype=torch.long, device=actions.device)
            cover = torch.empty_like(best)
            wins = torch.empty(n, s, s, dtype=torch.bool, device=actions.device)
            for p in range(N_POINTS):  # one [N, S, S] map at a time keeps memory bounded
                torch.add(dy2[:, p, :, None], dx2[:, p, None, :], out=cover)
                cover.add_(1e-8).sqrt_()                                       # distance
                torch.sub(r[:, p, None, None], cover, out=cover)
                cover.div_(edge).sigmoid_().mul_(o[:, p, None, None])
                torch.gt(cover, best, out=wins)   # strict: ties keep the earlier point
                torch.maximum(best, cover, out=best)
                winner.masked_fill_(wins, p)
        if torch.is_grad_enabled() and actions.requires_grad:
            flat = winner.view(n, s * s)
            px = x.gather(1, flat).view(n, s, s) * s
            py = y.gather(1, flat).view(n, s, s) * s
            dist = torch.sqrt((grid[None, None, :] - px) ** 2 + (grid[None, :, None] - py) ** 2 + 1e-8)
            cover = torch.sigmoid((radius.gather(1, flat).view(n, s, s) - dist) / edge)
            alpha = cover * opacity.gather(1, flat).view(n, s, s)
        else:
            alpha = best
        rgb = actions[:, lay.indices("red", "green", "blue")]
        colour = rgb[:, :, None, None].expand(-1, -1, s, s)
        return colour, alpha[:, None]

    @torch.no_grad()
    def render(self, actions, workers: int | None = None) -> np.ndarray:
        actions = np.asarray(self.layout.validate(np.asarray(actions, dtype=np.float32)))
        out = np.empty((len(actions), self.size, self.size, 4), np.uint8)
        for i in range(0, len(actions), self.batch):
            a = torch.from_numpy(actions[i:i + self.batch]).to(self.device)
            colour, alpha = self.render_torch(a)
            rgba = torch.cat([colour * alpha, alpha], 1).permute(0, 2, 3, 1)
            out[i:i + len(a)] = (rgba * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
        return out

    def render_rgb(self, actions, background=(1.0, 1.0, 1.0), workers: int | None = None) -> np.ndarray:
        from .mypaint import rgba_to_rgb
        return rgba_to_rgb(self.render(actions), background)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_program(brush: str = "classic/dry_brush", size: int = 64, layout=NAKANO, brush_seed: int = 0,
                 workers: int = 1):
    """A painting program by name: 'raster' (or 'raster:soft_round') for the torch rasteriser,
    anything else is a MyPaint preset name or .myb path."""
    if brush.startswith("raster"):
        return RasterProgram(size, layout)
    from .mypaint import MyPaintProgram
    return MyPaintProgram(brush, size, layout, brush_seed=brush_seed, workers=workers)
