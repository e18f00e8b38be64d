"""Measuring what a MyPaint brush paints, on MyPaint itself: how far it reaches from a stroke's path
(brush_reach: strokes kept whole in their tile) and its cross-section by radius and pressure
(brush_profile: strokes drawn as vector outlines).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..actions import NAKANO, BrushReach, bezier_points, get_layout
from .library import TILE
from .surface import MyPaintCanvas


@lru_cache(maxsize=None)
def brush_reach(brush: str, layout_name: str = NAKANO.name, samples: int = 60):
    """How far `brush` paints from a stroke's path (actions.BrushReach, pixels of a 64 px stroke box):
    measured on strokes at full and random pressure, sizes 0..1, each on a surface large enough to hold
    all of it, as the farthest visible pixel (8-bit alpha > 0) from the path; the envelope
    base + per_radius * radius over all of them, plus a pixel for the strokes not sampled. Deterministic;
    about 1 s."""
    layout = get_layout(layout_name)
    rng = np.random.default_rng(0)
    side, box = 3 * TILE, float(TILE)
    points = layout.indices("start_x", "start_y", "control_x", "control_y", "end_x", "end_y")
    radii, reaches = [], []
    with MyPaintCanvas(side, side, brush, layout) as canvas:
        for size in np.linspace(0.0, 1.0, 6):
            for k in range(samples):
                a = rng.random(layout.dim)
                a[points] = 0.4 + 0.2 * a[points]             # near the centre: nothing leaves the surface
                a[layout.index("size")] = size
                if k % 2 == 0:
                    a[layout.indices("entry_pressure", "exit_pressure")] = 1.0
                canvas.fill(None)
                canvas.paint(a[None].astype(np.float32), [[side / 2, side / 2, box]])
                ys, xs = np.nonzero(canvas.read_rgba()[..., 3] >= 0.5 / 255)
                if not len(xs):
                    continue
                x, y, _ = bezier_points(layout, a[None], 400)
                px, py = side / 2 + (x[0] - 0.5) * box, side / 2 + (y[0] - 0.5) * box
                d2 = (xs[:, None] + 0.5 - px[None]) ** 2 + (ys[:, None] + 0.5 - py[None]) ** 2
                reaches.append(float(np.sqrt(d2.min(1).max())))
                radii.append(math.exp(float(layout.to_physical(a, "size"))))
    r, w = np.asarray(radii), np.asarray(reaches)
    levels = np.unique(r)
    if len(levels) < 2:     # an eraser, a smudge-only or a transparent brush leaves nothing on a blank surface
        raise ValueError(f"MyPaint brush {brush!r} painted nothing visible on a blank canvas at "
                         f"{'any size' if not len(levels) else 'all but one size'} (an eraser, smudge-only or "
                         "transparent preset?): a painter can only be trained on a brush that deposits paint; "
                         "pick another preset")
    farthest = np.array([w[r == level].max() for level in levels])     # the envelope: one point per size
    per_radius = max(0.0, float(np.polyfit(levels, farthest, 1)[0]))
    return BrushReach(round(float((w - per_radius * r).max()) + 1.0, 3), round(per_radius, 3))


PROFILE_RADII = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)       # px
PROFILE_PRESSURES = tuple(np.linspace(0.0, 1.0, 9))    # the layout's normalised pressure


@lru_cache(maxsize=None)
def brush_profile(brush: str, layout_name: str = NAKANO.name) -> dict:
    """What `brush` paints across a stroke, by radius and pressure, for drawing strokes as vector outlines
    (painter_models.export.svg): {"radius": [R] px, "pressure": [P] physical, "width": [R][P], "opacity": [R][P]}.
    Measured on straight strokes at constant pressure, across their middle fifth: opacity is the peak
    alpha of the cross-section, width the width that carries the same paint at that opacity, in units
    of 2 * radius. Deterministic; well under a second."""
    layout = get_layout(layout_name)
    size_field = layout.fields[layout.index("size")]
    size = 0.5                                          # any size: the box sets the radius
    log_radius64 = size_field.low + size * (size_field.high - size_field.low)
    widths, opacities = [], []
    for radius in PROFILE_RADII:
        box = TILE * radius / math.exp(log_radius64)     # the box in which this size has this radius
        side = int(math.ceil(box * 1.2 + 8 * radius + 8))
        row_w, row_o = [], []
        for pressure in PROFILE_PRESSURES:
            a = np.zeros(layout.dim, np.float32)
            for role, v in (("start_x", 0.2), ("start_y", 0.5), ("control_x", 0.5), ("control_y", 0.5),
                            ("end_x", 0.8), ("end_y", 0.5), ("size", size), ("entry_pressure", pressure),
                            ("exit_pressure", pressure)):
                a[layout.index(role)] = v
            with MyPaintCanvas(side, side, brush, layout) as canvas:
                canvas.paint(a[None], [[side / 2, side / 2, box]])
                alpha = canvas.read_rgba()[..., 3]
            middle = slice(int(side / 2 - 0.06 * box), int(math.ceil(side / 2 + 0.06 * box)) + 1)
            section = alpha[:, middle].mean(1)
            peak = float(section.max())
            row_o.append(peak)
            row_w.append(float(section.sum()) / peak / (2 * radius) if peak > 1e-3 else 0.0)
        widths.append(row_w)
        opacities.append(row_o)
    pressure_field = layout.fields[layout.index("entry_pressure")]
    physical = [pressure_field.low + p * (pressure_field.high - pressure_field.low) for p in PROFILE_PRESSURES]
    return {"radius": list(PROFILE_RADII), "pressure": physical, "width": widths, "opacity": opacities}
