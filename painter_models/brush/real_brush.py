"""The real brush in the optimisation loop: MyPaint paints the strokes that are being optimised.

MyPaint is not differentiable, so the loss is taken on MyPaint's canvas and its gradient flows back
through the neural painter's canvas (straight-through):

    canvas = neural + (mypaint - neural).detach()

The forward value is exactly what the real brush paints (its grain, its holes, the parts of a stroke
beyond its box); the backward pass is the painter's Jacobian, evaluated against MyPaint's residual.
Strokes are painted the way `rerender.rerender_mypaint` paints a stroke file (StrokeSet.geometry, one
surface, in painting order), so the canvas seen here is the one a re-render of the saved strokes gives.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from .mypaint import N_POINTS, MyPaintCanvas
from .strokes import StrokeSet


class RealBrush:
    """One MyPaint surface the size of the canvas, repainted for every forward pass.

    paint(actions, boxes, under) -> [1, 3, H, W]: the strokes painted by MyPaint, in order, over the
    opaque image `under` (the backdrop, or the real-brush painting of strokes that are frozen).
    start(...) does the same in a thread of its own and returns a Future: libmypaint runs outside
    Python's lock, so MyPaint paints on one core while torch renders the painter's canvas."""

    def __init__(self, brush: str, canvas_size: tuple[int, int], layout, brush_seed: int = 0):
        self.brush, self.canvas_size, self.layout, self.brush_seed = brush, tuple(canvas_size), layout, int(brush_seed)
        h, w = self.canvas_size
        self._surface = MyPaintCanvas(w, h, brush, layout, background=(1.0, 1.0, 1.0), brush_seed=self.brush_seed)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mypaint")

    def paint(self, actions: torch.Tensor, boxes: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        return self.start(actions, boxes, under).result()

    @torch.no_grad()
    def start(self, actions: torch.Tensor, boxes: torch.Tensor, under: torch.Tensor) -> Future:
        background = under[0].detach().permute(1, 2, 0).double().cpu().numpy()
        geo = None
        if len(actions):
            strokes = StrokeSet(actions.detach().float().clamp(0, 1).cpu(), boxes.detach().float().cpu(),
                                self.canvas_size, self.layout)
            geo = strokes.geometry(N_POINTS)
            geo = [geo[k].numpy() for k in ("start", "path", "pressure", "log_radius", "colour")]
        device, dtype = under.device, under.dtype

        def paint():
            surface = self._surface
            surface.fill(background)
            if geo is not None:
                surface.paint_paths(*geo)
            image = torch.from_numpy(np.ascontiguousarray(surface.read_rgb()))
            return image.permute(2, 0, 1)[None].to(device=device, dtype=dtype)
        return self._thread.submit(paint)

    def close(self):
        self._thread.shutdown(wait=True)
        self._surface.close()


def straight_through(neural: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """real's values with neural's gradient."""
    return neural + (real - neural).detach()
