"""Every bound on what one painting may ask of the machine, in one place.

A shared ComfyUI server renders stroke files and node inputs from anyone who can reach it, so the
loaders, renderers and nodes all check these limits (with a message that says which input to
lower) before they allocate or call native code: a file or an input may be refused, but it never
crashes the process, hangs it or exhausts its memory.

Geometry (checked by StrokeSet, so every producer and loader is bound by it):
  a canvas is at most MAX_CANVAS px a side and holds at most MAX_STROKES strokes; a box centre lies
  within the canvas or at most BOX_CENTRE_MARGIN canvas widths (heights) beyond it; a box side is
  between MIN_BOX_SIDE px and MAX_BOX_SIDE times the canvas's longer side. A stroke's path stays
  within 0.625 box sides of its centre, so every point of a legal stroke lies within
  SURFACE_MARGIN canvas sides of the canvas: what MyPaintCanvas accepts.

Work (estimated before the work starts, refused above the budget): the torch renderer's crop
pixels plus a fixed cost per stroke (canvas.render_work), MyPaint's dab pixels (MyPaintCanvas.work), and
the pixels of an image batch (frames x pixels of a time-lapse, snapshots x pixels of an optimisation).
The budgets are about ten minutes of one CPU core (rates measured on a 2-core AMD EPYC: the torch
renderer ~1e7 crop pixels/s, libmypaint ~1e8 dab pixels/s): enough for every painting the nodes
make by default many times over, far below a job that would never end.
"""
from __future__ import annotations

import math

MAX_CANVAS = 8192                  # px a side
MAX_STROKES = 100_000              # strokes in one StrokeSet (a stroke file, a render)
MAX_NEW_STROKES = 20_000           # strokes one painting, one node or one command makes
SEED_MAX = 2 ** 64 - 1             # seeds are unsigned 64-bit numbers (ComfyUI's seed widgets)
BOX_CENTRE_MARGIN = 1.0            # canvas widths / heights a box centre may lie beyond the canvas
MIN_BOX_SIDE = 1 / 16              # px: the torch renderer's resampling filter grows as 1 / side
MAX_BOX_SIDE = 4.0                 # times the canvas's longer side (Random Actions' largest strokes)
SURFACE_MARGIN = 4.0               # canvas sides a legal stroke's path may reach beyond the canvas
MAX_STROKE_FILE_BYTES = 256 << 20  # a stroke file is read whole before parsing: 100k strokes are ~50 MB

MAX_RENDER_WORK = 6e9              # torch renderer: crop pixels (+ PAINTER_STROKE_WORK per stroke)
PAINTER_STROKE_WORK = 65_536       # one stroke through a network painter, in crop pixels (~5 ms)
MAX_MYPAINT_WORK = 6e10            # libmypaint: dab pixels written (~100 M/s)
MAX_BRUSH_RADIUS = 1000.0          # px: libmypaint's ACTUAL_RADIUS_MAX; it draws no larger dab
MAX_BATCH_PIXELS = 100_000_000     # frames x pixels of an IMAGE batch (1.2 GB as float32 RGB)


def check_geometry(boxes, canvas_size: tuple[int, int]):
    """Raise ValueError naming the first stroke whose box [N, 3] (cx, cy, side) breaks the limits.
    A pixel of slack absorbs the rounding of StrokeSet.scaled()'s canvas size."""
    import numpy as np
    b = np.asarray(boxes, np.float64).reshape(-1, 3)
    h, w = canvas_size
    if len(b) > MAX_STROKES:
        raise ValueError(f"{len(b)} strokes is more than the {MAX_STROKES} one painting may hold: "
                         f"split the painting or drop strokes")
    if not np.isfinite(b).all():
        i = int(np.argwhere(~np.isfinite(b))[0, 0])
        raise ValueError(f"stroke {i}: box {b[i].tolist()} is not finite: every box number must be a finite number")
    cx, cy, side = b[:, 0], b[:, 1], b[:, 2]
    longer = max(h, w)
    checks = [
        (side < MIN_BOX_SIDE, lambda i: f"box side {side[i]:g} px is below {MIN_BOX_SIDE:g} px: a stroke that "
                                        f"small paints nothing; drop it or enlarge its box"),
        (side > MAX_BOX_SIDE * longer + 1, lambda i: f"box side {side[i]:g} px is more than {MAX_BOX_SIDE:g}x the "
                                                     f"canvas's longer side ({longer} px); make it at most "
                                                     f"{MAX_BOX_SIDE * longer:g} px"),
        ((cx < -BOX_CENTRE_MARGIN * w - 1) | (cx > (1 + BOX_CENTRE_MARGIN) * w + 1),
         lambda i: f"box centre x = {cx[i]:g} px is too far from the {w} px wide canvas; keep it within "
                   f"{-BOX_CENTRE_MARGIN * w:g}..{(1 + BOX_CENTRE_MARGIN) * w:g}"),
        ((cy < -BOX_CENTRE_MARGIN * h - 1) | (cy > (1 + BOX_CENTRE_MARGIN) * h + 1),
         lambda i: f"box centre y = {cy[i]:g} px is too far from the {h} px high canvas; keep it within "
                   f"{-BOX_CENTRE_MARGIN * h:g}..{(1 + BOX_CENTRE_MARGIN) * h:g}"),
    ]
    for bad, message in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"stroke {i}: {message(i)}")


def check_work(work: float, budget: float, what: str, lower: str):
    """Refuse a job whose estimated work is above its budget, naming what to lower."""
    if not work <= budget:   # also refuses NaN
        raise ValueError(f"{what} is too much work: about {_si(work)} pixel operations, the limit is "
                         f"{_si(budget)} (about ten minutes of one CPU core): {lower}")


def check_batch(count: int, height: int, width: int, what: str, lower: str):
    """Refuse an image batch of `count` images of height x width above MAX_BATCH_PIXELS."""
    pixels = int(count) * int(height) * int(width)
    if pixels > MAX_BATCH_PIXELS:
        gib = pixels * 12 / 2 ** 30
        raise ValueError(f"{what}: {count} images of {width}x{height} px are {gib:.1f} GiB as a ComfyUI IMAGE "
                         f"batch, more than the {MAX_BATCH_PIXELS * 12 / 2 ** 30:.1f} GiB allowed: {lower}")


def finite_positive(value, name: str) -> float:
    """float(value), refused with a clear message unless it is a finite positive number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


def _si(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"
