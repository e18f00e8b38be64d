"""A whole painting on one libmypaint surface: strokes in canvas pixels, painted in order.

No input reaches libmypaint unchecked: for dabs far outside a surface it allocates and paints
tiles in proportion to the distance and the radius, so every stroke is checked before the first
is painted (finite, within reach of the surface), and MyPaintCanvas.work() estimates a painting's
cost so callers can refuse it before painting.

Owns MyPaintCanvas.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np

from ..actions import NAKANO, ActionLayout, bezier_points, get_layout
from ...limits import MAX_BRUSH_RADIUS, SURFACE_MARGIN
from .library import FIX15, TILE, MyPaintTileRequest, NativeHandles
from .program import N_POINTS, MyPaintProgram


class MyPaintCanvas(NativeHandles):
    """A whole painting on one libmypaint surface of any size: strokes in canvas pixels, painted in order.

    Each stroke follows MyPaintProgram's procedure (a fresh brush per stroke, so the same stroke
    always gives the same pixels; two pressure-0 moves at the start; the sampled Bezier with its
    pressure ramp, dtime 0.1; a pressure-0 lift), but its path and log radius are given in canvas
    pixels, so a stroke can sit anywhere at any size and later strokes paint over earlier ones
    exactly as in MyPaint itself. Parts of strokes beyond the canvas are dropped.

    The surface starts transparent (background=None; read_rgba gives premultiplied RGBA) or filled
    with an opaque background colour or image [H, W, 3] in 0..1 (what a smudging brush would pick
    up in MyPaint). Memory: 8 bytes per pixel (a 2048 px canvas holds 32 MiB).
    """

    def __init__(self, width: int, height: int, brush: str = "classic/dry_brush",
                 layout: ActionLayout | str = NAKANO, background=None, brush_seed: int = 0):
        width, height = int(width), int(height)
        if not (1 <= width <= 16384 and 1 <= height <= 16384):
            raise ValueError(f"MyPaint canvas {width}x{height} px is out of range: use 1..16384 px a side")
        self.width, self.height, self.layout = width, height, get_layout(layout)
        self.brush_seed = int(brush_seed)
        # A 64 px program supplies the brush (parsing, settings); it never renders here.
        self._program = MyPaintProgram(brush, TILE, self.layout, brush_seed=self.brush_seed)
        self.brush, self.brush_path, self.lib = brush, self._program.brush_path, self._program.lib
        lib = self.lib
        self.tiles_x, self.tiles_y = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
        self.fixed = lib.mypaint_fixed_tiled_surface_new(width, height)
        if not self.fixed:
            raise MemoryError(f"libmypaint could not allocate a {width}x{height} surface")
        self.surface = lib.mypaint_fixed_tiled_surface_interface(self.fixed)
        # The fixed surface keeps its tiles in one row-major buffer: view it whole, [ty, tx, 64, 64, 4].
        req = MyPaintTileRequest()
        lib.mypaint_tile_request_init(ctypes.byref(req), 0, 0, 0, 0)
        lib.mypaint_tiled_surface_tile_request_start(self.fixed, ctypes.byref(req))
        self._tiles = np.ctypeslib.as_array(req.buffer, shape=(self.tiles_y, self.tiles_x, TILE, TILE, 4))
        lib.mypaint_tiled_surface_tile_request_end(self.fixed, ctypes.byref(req))
        self.n_painted = 0
        self.fill(background)

    # -- surface contents ---------------------------------------------------------------------
    def fill(self, background=None):
        """Reset the surface: transparent (None), an RGB colour or an image [H, W, 3] in 0..1."""
        if background is None:
            self._tiles.fill(0)
        else:
            bg = np.asarray(background, np.float64)
            if bg.shape == (3,):
                self._tiles[...] = np.round(np.append(np.clip(bg, 0, 1), 1.0) * FIX15).astype(np.uint16)
            elif bg.shape == (self.height, self.width, 3):
                for ty in range(self.tiles_y):  # one band of tiles at a time keeps memory small
                    rows = bg[ty * TILE:(ty + 1) * TILE]
                    band = np.full((TILE, self.tiles_x * TILE, 4), FIX15, np.uint16)
                    band[:len(rows), :self.width, :3] = np.round(np.clip(rows, 0, 1) * FIX15)
                    self._tiles[ty] = band.reshape(TILE, self.tiles_x, TILE, 4).transpose(1, 0, 2, 3)
            else:
                raise ValueError(f"background must be an RGB colour or an image of shape "
                                 f"[{self.height}, {self.width}, 3], got {list(bg.shape)}")
        self.n_painted = 0

    def _bands(self):
        """(row slice, premultiplied fix15 RGBA band [rows, width, 4]) per band of tiles."""
        for ty in range(self.tiles_y):
            rows = min(TILE, self.height - ty * TILE)
            band = self._tiles[ty].transpose(1, 0, 2, 3).reshape(TILE, self.tiles_x * TILE, 4)
            yield slice(ty * TILE, ty * TILE + rows), band[:rows, :self.width]

    def read_rgba(self) -> np.ndarray:
        """Premultiplied RGBA, float32 [H, W, 4] in 0..1."""
        out = np.empty((self.height, self.width, 4), np.float32)
        for rows, band in self._bands():
            np.multiply(band, 1.0 / FIX15, out=out[rows], casting="unsafe")
        return out

    def read_rgb(self, background=(1.0, 1.0, 1.0), dtype=np.float32) -> np.ndarray:
        """The painting composited over `background` (colour or [H, W, 3] image; ignored where the
        surface is already opaque), [H, W, 3] as float32 in 0..1 or uint8."""
        bg = np.asarray(background, np.float32)
        out = np.empty((self.height, self.width, 3), np.dtype(dtype))
        to_uint8 = out.dtype == np.uint8
        scale = (255.0 if to_uint8 else 1.0) / FIX15
        for rows, band in self._bands():
            rgb = band[..., :3].astype(np.float32)      # premultiplied, fix15
            rgb += (FIX15 - band[..., 3:4].astype(np.float32)) * (bg if bg.ndim == 1 else bg[rows])
            rgb *= scale
            if to_uint8:
                rgb += 0.5
                np.clip(rgb, 0.0, 255.0, out=rgb)
            else:
                np.clip(rgb, 0.0, 1.0, out=rgb)
            out[rows] = rgb
        return out

    # -- painting -----------------------------------------------------------------------------
    def paint(self, actions, boxes):
        """Paint strokes given as actions [N, dim] in 0..1 plus boxes [N, 3] = (cx, cy, side) px,
        the stroke's local square placed on the canvas (the StrokeSet convention)."""
        a = np.asarray(self.layout.validate(np.asarray(actions, dtype=np.float32)), np.float64)
        b = np.asarray(boxes, np.float64).reshape(len(a), 3)
        cx, cy, side = b[:, 0:1], b[:, 1:2], b[:, 2:3]
        x, y, p = bezier_points(self.layout, a, N_POINTS)
        lay = self.layout
        start = np.stack([cx[:, 0] + (a[:, lay.index("start_x")] - 0.5) * side[:, 0],
                          cy[:, 0] + (a[:, lay.index("start_y")] - 0.5) * side[:, 0]], -1)
        path = np.stack([cx + (x - 0.5) * side, cy + (y - 0.5) * side], -1)
        log_radius = lay.to_physical(a, "size") + np.log(side[:, 0] / 64.0)
        self.paint_paths(start, path, p, log_radius, a[:, lay.indices("red", "green", "blue")])

    def paint_paths(self, start, path, pressure, log_radius, colour, check=None):
        """Paint strokes from their geometry in canvas pixels: start [N, 2], path [N, P, 2],
        pressure [N, P] (physical, 0..1), MyPaint log radius [N], RGB colour [N, 3] in 0..1.

        Every stroke is checked before any is painted: finite, and within SURFACE_MARGIN surface
        sides of the surface (every stroke of a StrokeSet is); ValueError names the first that is
        not. `check()` is called before each stroke (raise in it to cancel)."""
        start, path = np.asarray(start, np.float64), np.asarray(path, np.float64)
        pressure, log_radius = np.asarray(pressure, np.float64), np.asarray(log_radius, np.float64)
        colour = np.asarray(colour, np.float64)
        self._check_reach(start, path, pressure, log_radius, colour)
        far = -1e4 - 100.0 * max(self.width, self.height)
        for i in range(len(path)):
            if check is not None:
                check()
            self._program.paint_stroke(self.surface, start[i].tolist(), path[i, :, 0].tolist(), path[i, :, 1].tolist(),
                                       pressure[i].tolist(), colour[i].tolist(), float(log_radius[i]), far)
            self.n_painted += 1

    def _check_reach(self, start, path, pressure, log_radius, colour):
        for name, values in (("start", start), ("path", path), ("pressure", pressure), ("log_radius", log_radius),
                             ("colour", colour)):
            if not np.isfinite(values).all():
                i = int(np.argwhere(~np.isfinite(values.reshape(len(values), -1)))[0, 0])
                raise ValueError(f"stroke {i}: its {name} is not finite: every number of a stroke must be finite")
        if not len(path):
            return
        margin = SURFACE_MARGIN * max(self.width, self.height)
        xs = np.concatenate([path[..., 0], start[:, :1]], 1)
        ys = np.concatenate([path[..., 1], start[:, 1:]], 1)
        beyond = np.maximum.reduce([-xs.min(1), xs.max(1) - self.width, -ys.min(1), ys.max(1) - self.height])
        if (beyond > margin).any():
            i = int(np.argmax(beyond > margin))
            raise ValueError(f"stroke {i} reaches {beyond[i]:.4g} px beyond the {self.width}x{self.height} px canvas; "
                             f"a stroke may reach at most {margin:g} px ({SURFACE_MARGIN:g} canvas sides) beyond it")

    def work(self, path, log_radius) -> float:
        """Estimated pixels libmypaint writes for strokes path [N, P, 2] with log radius [N] (to
        compare with limits.MAX_MYPAINT_WORK): dabs along the path (the brush's dabs per radius
        and per second) times the pixels of a dab, plus a fixed cost per dab. Dabs beyond the
        surface cost as much as the others (libmypaint paints them into a scratch tile)."""
        path = np.asarray(path, np.float64)
        if not len(path):
            return 0.0
        length = np.hypot(*np.diff(path, axis=1).transpose(2, 0, 1)).sum(1)
        radius = np.clip(np.exp(np.minimum(np.asarray(log_radius, np.float64), math.log(MAX_BRUSH_RADIUS))),
                         0.2, MAX_BRUSH_RADIUS)
        per_radius, per_second = self._program.dab_density
        dabs = length / radius * per_radius + path.shape[1] * 0.1 * per_second + path.shape[1]
        return float((dabs * ((2 * radius + 2) ** 2 + 256)).sum())

    # -- lifetime -----------------------------------------------------------------------------
    def close(self):
        if getattr(self, "surface", None) is not None:
            self._tiles = None
            self.lib.mypaint_surface_unref(self.surface)
            self.surface = None
        if getattr(self, "_program", None) is not None:
            self._program.close()

    def __getstate__(self):
        raise TypeError("MyPaintCanvas holds native handles and cannot be pickled")
