"""MyPaint as the painting program: actions -> premultiplied RGBA stroke tiles, in batches.

Strokes follow Nakano's procedure (see actions.bezier_points): a quadratic Bezier
sampled at 100 points with a pressure ramp. Every stroke gets a fresh brush so the
same action always gives the same pixels: libmypaint seeds a brush's random
generator (dab jitter) when the brush is created and has no public reseed call.
`brush_seed` > 0 advances that generator with dabs painted outside the surface before the
stroke, which gives another equally valid rendering of the same action (used to measure the
program's own repeatability).

No input reaches libmypaint unchecked: it aborts the process on coordinates beyond 1e8, so
paint_stroke refuses coordinates that are not finite or approach that limit, and caps the base
radius at limits.MAX_BRUSH_RADIUS (libmypaint draws no larger dab, and its random dab offsets
grow with the base radius).

Owns MyPaintProgram (with its worker processes and its stroke-sized surface) and rgba_to_rgb.
"""
from __future__ import annotations

import colorsys
import ctypes
import math
import multiprocessing
import sys

import numpy as np

from ..actions import NAKANO, ActionLayout, bezier_points, get_layout
from ...limits import MAX_BRUSH_RADIUS
from .library import (FIX15, TILE, MyPaintRectangle, MyPaintTileRequest, MyPaintUnavailable, NativeHandles,
                      dab_density, load_library, resolve_brush)

N_POINTS = 100
MAX_BRUSH_SEED = 10_000          # throwaway dabs before a stroke (brush_seed); libmypaint asserts |x| < 1e8
LIBMYPAINT_COORDINATE_LIMIT = 1e7  # stroke_to asserts |x|, |y| < 1e8; nothing legal comes near either


class _StrokeSurface:
    """One libmypaint fixed tiled surface of `size` x `size` pixels: where the program paints each stroke."""

    def __init__(self, lib, size: int):
        self.lib, self.size = lib, size
        self.ntiles = (size + TILE - 1) // TILE
        self.fixed = lib.mypaint_fixed_tiled_surface_new(size, size)
        self.surface = lib.mypaint_fixed_tiled_surface_interface(self.fixed)
        self._tiles = []  # numpy view of each tile, row-major
        for ty in range(self.ntiles):
            for tx in range(self.ntiles):
                req = MyPaintTileRequest()
                lib.mypaint_tile_request_init(ctypes.byref(req), 0, tx, ty, 0)
                lib.mypaint_tiled_surface_tile_request_start(self.fixed, ctypes.byref(req))
                view = np.ctypeslib.as_array(req.buffer, shape=(TILE, TILE, 4))
                lib.mypaint_tiled_surface_tile_request_end(self.fixed, ctypes.byref(req))
                self._tiles.append(view)  # the fixed surface owns one buffer, so views stay valid

    def clear(self):
        for view in self._tiles:
            view.fill(0)

    def read_rgba8(self, out: np.ndarray):
        """Premultiplied RGBA as uint8 into out [size, size, 4]."""
        n = self.ntiles * TILE
        full = out if n == self.size else np.empty((n, n, 4), np.uint8)
        for i, view in enumerate(self._tiles):
            ty, tx = divmod(i, self.ntiles)
            block = full[ty * TILE:(ty + 1) * TILE, tx * TILE:(tx + 1) * TILE]
            np.right_shift(view.astype(np.uint32) * 255 + (FIX15 // 2), 15, out=block, casting="unsafe")
        if full is not out:
            out[...] = full[:self.size, :self.size]

    def close(self):
        self.lib.mypaint_surface_unref(self.surface)


class MyPaintProgram(NativeHandles):
    """Render actions with a MyPaint brush preset.

    render(actions) -> uint8 [N, size, size, 4], premultiplied RGBA on a transparent surface;
    `rgba_to_rgb(strokes)` composites them over white (what Nakano's dataset stores).
    Geometry and radius scale with `size`, so a stroke rendered at 256 px and box-downsampled
    to 64 px matches the 64 px rendering. `workers` > 1 renders batches in worker processes.
    """

    def __init__(self, brush: str = "classic/dry_brush", size: int = 64, layout: ActionLayout | str = NAKANO,
                 brush_seed: int = 0, workers: int = 1):
        if not 8 <= int(size) <= 4096:
            raise ValueError(f"stroke size {size} px is out of range: use 8..4096 (64 is the default)")
        if not 0 <= int(brush_seed) <= MAX_BRUSH_SEED:
            raise ValueError(f"brush_seed {brush_seed} is out of range: use 0..{MAX_BRUSH_SEED}")
        self.brush, self.size, self.layout = brush, int(size), get_layout(layout)
        self.brush_seed, self.workers = int(brush_seed), max(1, int(workers))
        self.lib = load_library()
        self.brush_path = resolve_brush(brush)
        with open(self.brush_path, "rb") as f:
            self._brush_json = f.read()
        self._settings = {name: self.lib.mypaint_brush_setting_from_cname(name.encode())
                          for name in ("color_h", "color_s", "color_v", "radius_logarithmic")}
        self.dab_density = dab_density(self._brush_json)
        self._canvas = None
        self._pool = None
        self._check_brush()

    # -- single-process rendering ---------------------------------------------------------
    def _new_brush(self):
        lib = self.lib
        brush = lib.mypaint_brush_new()
        lib.mypaint_brush_from_defaults(brush)
        if not lib.mypaint_brush_from_string(brush, self._brush_json):
            lib.mypaint_brush_unref(brush)
            raise MyPaintUnavailable(f"libmypaint could not parse the brush file {self.brush_path!r}")
        return brush

    def _check_brush(self):
        self.lib.mypaint_brush_unref(self._new_brush())

    def _render_one(self, action: np.ndarray, start, x, y, p, out: np.ndarray):
        self._canvas.clear()
        rgb = [float(action[self.layout.index(r)]) for r in ("red", "green", "blue")]
        log_radius = float(self.layout.to_physical(action, "size")) + math.log(self.size / 64.0)
        self.paint_stroke(self._canvas.surface, start, x, y, p, rgb, log_radius, far=-1e4 - 100.0 * self.size)
        self._canvas.read_rgba8(out)

    def paint_stroke(self, surface, start, x, y, pressure, rgb, log_radius: float, far: float):
        """Nakano's stroke procedure on a libmypaint surface, with a fresh brush (determinism).

        start (x, y) and the path x, y [P] are in surface pixels, pressure [P] physical;
        `far` is a point outside the surface where brush_seed's throwaway dabs land. The base
        radius is capped at MAX_BRUSH_RADIUS px; coordinates that are not finite or that approach
        libmypaint's assertion limit raise ValueError (callers check reach first: MyPaintCanvas)."""
        finite = math.isfinite(sum(x) + sum(y) + start[0] + start[1] + far + log_radius)   # NaN / inf spread
        lo, hi = (min(start[0], start[1], min(x), min(y), far), max(start[0], start[1], max(x), max(y))) \
            if finite else (math.nan, math.nan)
        if not (-LIBMYPAINT_COORDINATE_LIMIT < lo and hi < LIBMYPAINT_COORDINATE_LIMIT):
            raise ValueError(f"a stroke with coordinates {lo:g}..{hi:g} px and log radius {log_radius:g} cannot be "
                             f"painted: coordinates must be finite and within +-{LIBMYPAINT_COORDINATE_LIMIT:g} px")
        log_radius = min(log_radius, math.log(MAX_BRUSH_RADIUS))
        lib, st = self.lib, self._settings
        brush = self._new_brush()
        try:
            h, s, v = colorsys.rgb_to_hsv(*rgb)
            for key, value in (("color_h", h), ("color_s", s), ("color_v", v), ("radius_logarithmic", log_radius)):
                lib.mypaint_brush_set_base_value(brush, st[key], value)
            lib.mypaint_brush_reset(brush)
            lib.mypaint_brush_new_stroke(brush)
            stroke_to = lib.mypaint_brush_stroke_to
            lib.mypaint_surface_begin_atomic(surface)
            if self.brush_seed:
                # Dabs painted far outside the surface draw from the brush's random generator
                # and leave no pixels; a reset then clears every other brush state.
                for k in range(self.brush_seed):
                    stroke_to(brush, surface, far + k, far, 0.5, 0.0, 0.0, 0.1)
                lib.mypaint_brush_reset(brush)
                lib.mypaint_brush_new_stroke(brush)
            # Two pressure-0 moves settle MyPaint 2's brush state at the start point.
            for _ in range(2):
                stroke_to(brush, surface, start[0], start[1], 0.0, 0.0, 0.0, 0.1)
            for xi, yi, pi in zip(x, y, pressure):
                stroke_to(brush, surface, xi, yi, abs(pi), 0.0, 0.0, 0.1)
            stroke_to(brush, surface, x[-1], y[-1], 0.0, 0.0, 0.0, 0.1)
            lib.mypaint_surface_end_atomic(surface, ctypes.byref(MyPaintRectangle()))
        finally:
            lib.mypaint_brush_unref(brush)

    def _render_serial(self, actions: np.ndarray) -> np.ndarray:
        if self._canvas is None:
            self._canvas = _StrokeSurface(self.lib, self.size)
        a64 = actions.astype(np.float64)
        x, y, p = bezier_points(self.layout, a64, N_POINTS)
        start = a64[:, self.layout.indices("start_x", "start_y")] * self.size
        x, y = x * self.size, y * self.size
        out = np.empty((len(actions), self.size, self.size, 4), np.uint8)
        for i in range(len(actions)):
            self._render_one(a64[i], start[i].tolist(), x[i].tolist(), y[i].tolist(), p[i].tolist(), out[i])
        return out

    # -- public API -------------------------------------------------------------------------
    def render(self, actions, workers: int | None = None) -> np.ndarray:
        """Premultiplied RGBA strokes, uint8 [N, size, size, 4], one per action row."""
        actions = np.asarray(self.layout.validate(np.asarray(actions, dtype=np.float32)))
        workers = self.workers if workers is None else max(1, int(workers))
        if workers == 1 or len(actions) < 2 * workers:
            return self._render_serial(actions)
        pool = self._get_pool(workers)
        chunks = np.array_split(actions, min(len(actions), workers * 8))
        return np.concatenate(pool.map(_worker_render, chunks))

    def render_rgb(self, actions, background=(1.0, 1.0, 1.0), workers: int | None = None) -> np.ndarray:
        """Strokes composited over a background colour, float32 [N, size, size, 3] in 0..1."""
        return rgba_to_rgb(self.render(actions, workers), background)

    def _get_pool(self, workers):
        if self._pool is not None and self._pool_workers == workers:
            return self._pool
        self.close_pool()
        # fork keeps this module usable in the children even when it was imported under an
        # unusual name (ComfyUI loads packs by file path); the children only use numpy and ctypes.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        ctx = multiprocessing.get_context(method)
        init = (self.brush, self.size, self.layout.to_dict(), self.brush_seed)
        self._pool, self._pool_workers = ctx.Pool(workers, initializer=_worker_init, initargs=init), workers
        return self._pool

    def close_pool(self):
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def close(self):
        self.close_pool()
        if self._canvas is not None:
            self._canvas.close()
            self._canvas = None

    def __getstate__(self):
        raise TypeError("MyPaintProgram holds native handles; pass (brush, size, layout, brush_seed) instead")


_WORKER_PROGRAM: MyPaintProgram | None = None


def _worker_init(brush, size, layout, brush_seed):
    global _WORKER_PROGRAM
    _WORKER_PROGRAM = MyPaintProgram(brush, size, get_layout(layout), brush_seed)


def _worker_render(actions):
    return _WORKER_PROGRAM._render_serial(actions)


def rgba_to_rgb(strokes: np.ndarray, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Premultiplied RGBA (uint8 or float in 0..1) composited over a background -> float32 RGB."""
    s = strokes.astype(np.float32) / 255.0 if strokes.dtype == np.uint8 else strokes.astype(np.float32)
    bg = np.asarray(background, np.float32)
    return np.clip(s[..., :3] + (1.0 - s[..., 3:4]) * bg, 0.0, 1.0)

