"""The real brush paints a stroke file: MyPaint (libmypaint) paints the strokes in order on one
surface at any scale, their geometry and radius scaled with the canvas, so the brush's texture is
painted natively at the new size. Bounded by limits.MAX_MYPAINT_WORK."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..images import is_colour
from .strokes import backdrop_image, own_backdrop
from ..limits import MAX_MYPAINT_WORK, check_work, finite_positive
from .mypaint import N_POINTS
from .strokes import StrokeSet


def mypaint_brush_name(brush: str) -> str | None:
    """The MyPaint preset (or .myb path) a brush string names, or None for the torch rasteriser.
    Accepts 'classic/dry_brush', 'mypaint:classic/dry_brush', '/path/brush.myb', 'raster[:...]'."""
    if brush.startswith("raster"):
        return None
    return brush[len("mypaint:"):] if brush.startswith("mypaint:") else brush


def mypaint_canvas(strokes: StrokeSet, brush: str | None = None, background=None, brush_seed: int = 0):
    """A MyPaintCanvas the size of `strokes`' canvas, filled with `background` (colour or image;
    default the StrokeSet's background image, else its colour)."""
    from .mypaint import MyPaintCanvas
    name = brush or strokes.brush
    preset = mypaint_brush_name(name)
    if preset is None:
        raise ValueError(f"these strokes were made for the torch rasteriser ({name!r}), which has no MyPaint "
                         f"brush: pass brush='classic/dry_brush' (or another MyPaint preset) to re-render them")
    h, w = strokes.canvas_size
    bg = own_backdrop(background, strokes)
    bg = tuple(float(c) for c in np.asarray(bg).reshape(-1)) if is_colour(bg) else backdrop_image(bg, strokes)
    return MyPaintCanvas(w, h, preset, strokes.layout, background=bg, brush_seed=brush_seed)


def mypaint_geometry(canvas, strokes: StrokeSet, what: str, lower: str) -> list[np.ndarray]:
    """The strokes' MyPaint geometry (start, path, pressure, log radius, colour as arrays), after
    checking the painting against limits.MAX_MYPAINT_WORK (ValueError naming what to lower)."""
    geo = strokes.cpu().geometry(N_POINTS)
    parts = [geo[k].numpy() for k in ("start", "path", "pressure", "log_radius", "colour")]
    check_work(canvas.work(parts[1], parts[3]), MAX_MYPAINT_WORK, f"MyPaint painting {what}", lower)
    return parts


def rerender_mypaint(strokes: StrokeSet, scale: float = 4.0, brush: str | None = None, background=None,
                     dtype=np.uint8, callback: Callable[[int, int], None] | None = None,
                     chunk: int = 64, brush_seed: int = 0, check: Callable[[], None] | None = None) -> np.ndarray:
    """Paint the strokes with the real MyPaint brush, in order, on one surface `scale` times the
    canvas size: [round(H * scale), round(W * scale), 3] as uint8 (or float32 in 0..1).

    Geometry and radius scale with the canvas (StrokeSet.scaled(scale).geometry(): the log radius
    includes ln(side / 64)), so the brush's texture is rendered natively at the new size, not
    upsampled. `brush` overrides the StrokeSet's brush (needed for strokes made with the
    'raster' program). `background`: colour or image (resized to fit); default the StrokeSet's
    background_image (stretched to the re-render's size), else its colour.
    `callback(done, total)` is called after every `chunk` strokes, `check()` before every stroke
    (raise in either to cancel). The painting is checked against limits.MAX_MYPAINT_WORK first.
    `brush_seed` picks the brush's random texture (another seed: the same strokes as MyPaint
    would paint them on another day, which is how re-render fidelity is judged).
    Raises MyPaintUnavailable when libmypaint or the brush is missing."""
    big = strokes.cpu().scaled(finite_positive(scale, "scale"))
    with mypaint_canvas(big, brush=brush, background=background, brush_seed=brush_seed) as canvas:
        if len(big):
            parts = mypaint_geometry(canvas, big, f"at scale {float(scale):g}",
                                     "lower the scale, or use fewer or smaller strokes")
            for i in range(0, len(big), chunk):
                canvas.paint_paths(*(p[i:i + chunk] for p in parts), check=check)
                if callback is not None:
                    callback(min(i + chunk, len(big)), len(big))
        return canvas.read_rgb(dtype=dtype)
