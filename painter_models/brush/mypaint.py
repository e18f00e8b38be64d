"""MyPaint (libmypaint, through ctypes) as the painting program: action -> brushstroke.

Only the Debian/Ubuntu runtime packages are needed (no headers, GTK or MyPaint's
Python library):  apt-get install -y --no-install-recommends libmypaint-1.5-1 mypaint-brushes

Strokes follow Nakano's procedure (see actions.bezier_points): a quadratic Bezier
sampled at 100 points with a pressure ramp. Every stroke gets a fresh brush so the
same action always gives the same pixels: libmypaint seeds a brush's random
generator (dab jitter) when the brush is created and has no public reseed call.
`brush_seed` > 0 advances that generator with dabs painted outside the surface before the
stroke, which gives another equally valid rendering of the same action (used to measure the
program's own repeatability).

No input reaches libmypaint unchecked: it aborts the process on coordinates beyond 1e8 and, for
dabs far outside a surface, allocates and paints tiles in proportion to the distance and the
radius. So every stroke is checked before the first stroke_to (finite, within reach of the
surface), its base radius is capped at limits.MAX_BRUSH_RADIUS (libmypaint draws no larger dab, and
its random dab offsets grow with the base radius), and MyPaintCanvas.work() estimates a
painting's cost so callers can refuse it before painting.
"""
from __future__ import annotations

import colorsys
import ctypes
import ctypes.util
import difflib
import glob
import math
import multiprocessing
import os
import sys
from functools import lru_cache

import numpy as np

from .actions import NAKANO, ActionLayout, bezier_points, get_layout
from ..limits import MAX_BRUSH_RADIUS, SURFACE_MARGIN

TILE = 64
FIX15 = 1 << 15
APT_HINT = "apt-get install -y --no-install-recommends libmypaint-1.5-1 mypaint-brushes"
BRUSH_DIRS = ("/usr/share/mypaint-data/2.0/brushes", "/usr/share/mypaint-data/1.0/brushes",
              "/usr/local/share/mypaint-data/2.0/brushes", "/usr/share/mypaint/brushes")
N_POINTS = 100
MAX_BRUSH_SEED = 10_000          # throwaway dabs before a stroke (brush_seed); libmypaint asserts |x| < 1e8
LIBMYPAINT_COORDINATE_LIMIT = 1e7  # stroke_to asserts |x|, |y| < 1e8; nothing legal comes near either


class MyPaintUnavailable(RuntimeError):
    """libmypaint or a brush preset is missing; the message says what to install."""


class _TileRequest(ctypes.Structure):
    _fields_ = [("tx", ctypes.c_int), ("ty", ctypes.c_int), ("readonly", ctypes.c_int),
                ("buffer", ctypes.POINTER(ctypes.c_uint16)), ("context", ctypes.c_void_p),
                ("thread_id", ctypes.c_int), ("mipmap_level", ctypes.c_int)]


class _Rect(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int)]


def _library_candidates():
    env = os.environ.get("NEURAL_PAINTERS_LIBMYPAINT")
    if env:
        yield env
    found = ctypes.util.find_library("mypaint-1.5") or ctypes.util.find_library("mypaint")
    if found:
        yield found
    yield "libmypaint-1.5.so.1"
    yield "libmypaint.so"


@lru_cache(maxsize=None)
def load_library():
    """The ctypes handle of libmypaint, with argument types declared; raises MyPaintUnavailable."""
    env = os.environ.get("NEURAL_PAINTERS_LIBMYPAINT")
    if env and not os.path.exists(env):
        raise MyPaintUnavailable(f"libmypaint was not found: NEURAL_PAINTERS_LIBMYPAINT points to {env!r}, which "
                                 f"does not exist. Fix or unset it, or install the system library:\n  {APT_HINT}")
    errors = []
    for name in _library_candidates():
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise MyPaintUnavailable(
            "libmypaint was not found. On Debian/Ubuntu install it with:\n  " + APT_HINT +
            "\nor point NEURAL_PAINTERS_LIBMYPAINT at libmypaint-1.5.so.1. (" + "; ".join(errors[:2]) + ")")
    P, F, I, D = ctypes.c_void_p, ctypes.c_float, ctypes.c_int, ctypes.c_double
    signatures = {
        "mypaint_brush_new": ([], P),
        "mypaint_brush_unref": ([P], None),
        "mypaint_brush_from_defaults": ([P], None),
        "mypaint_brush_from_string": ([P, ctypes.c_char_p], I),
        "mypaint_brush_reset": ([P], None),
        "mypaint_brush_new_stroke": ([P], None),
        "mypaint_brush_set_base_value": ([P, I, F], None),
        "mypaint_brush_stroke_to": ([P, P, F, F, F, F, F, D], I),
        "mypaint_brush_setting_from_cname": ([ctypes.c_char_p], I),
        "mypaint_fixed_tiled_surface_new": ([I, I], P),
        "mypaint_fixed_tiled_surface_interface": ([P], P),
        "mypaint_surface_begin_atomic": ([P], None),
        "mypaint_surface_end_atomic": ([P, ctypes.POINTER(_Rect)], None),
        "mypaint_surface_unref": ([P], None),
        "mypaint_tile_request_init": ([ctypes.POINTER(_TileRequest), I, I, I, I], None),
        "mypaint_tiled_surface_tile_request_start": ([P, ctypes.POINTER(_TileRequest)], None),
        "mypaint_tiled_surface_tile_request_end": ([P, ctypes.POINTER(_TileRequest)], None),
    }
    for fn, (args, res) in signatures.items():
        f = getattr(lib, fn)
        f.argtypes, f.restype = args, res
    lib._path = getattr(lib, "_name", "libmypaint")
    return lib


def library_version() -> str:
    """The resolved file name of the loaded libmypaint (e.g. libmypaint-1.5.so.1.1.2), for manifests."""
    load_library()
    for line in open("/proc/self/maps") if os.path.exists("/proc/self/maps") else ():
        if "libmypaint" in line:
            return os.path.basename(line.split()[-1])
    return "libmypaint (version unknown)"


def brush_dirs() -> list[str]:
    env = os.environ.get("NEURAL_PAINTERS_BRUSHES")
    return ([env] if env else []) + [d for d in BRUSH_DIRS if os.path.isdir(d)]


def list_brushes() -> list[str]:
    """Installed brush presets by name, e.g. 'classic/dry_brush'."""
    names = set()
    for root in brush_dirs():
        for path in glob.glob(os.path.join(root, "**", "*.myb"), recursive=True):
            names.add(os.path.relpath(path, root)[:-4])
    return sorted(names)


def resolve_brush(brush: str) -> str:
    """Path of a brush given as a preset name ('classic/dry_brush') or a .myb path."""
    if brush.endswith(".myb"):
        if os.path.isfile(brush):
            return brush
        raise MyPaintUnavailable(f"brush file {brush!r} does not exist")
    for root in brush_dirs():
        path = os.path.join(root, brush + ".myb")
        if os.path.isfile(path):
            return path
    if not brush_dirs():
        raise MyPaintUnavailable("no MyPaint brush presets are installed. On Debian/Ubuntu:\n  " + APT_HINT +
                                 "\nor point NEURAL_PAINTERS_BRUSHES at a folder of .myb files.")
    installed = list_brushes()
    close = difflib.get_close_matches(brush, installed, 5, 0.6) or \
        [b for b in installed if brush.split("/")[-1] in b][:5]
    raise MyPaintUnavailable(f"unknown brush preset {brush!r}" + (f"; did you mean {close}?" if close else "") +
                             "; painter_models.list_brushes() lists the installed presets")


class _Canvas:
    """One libmypaint fixed tiled surface of `size` x `size` pixels."""

    def __init__(self, lib, size: int):
        self.lib, self.size = lib, size
        self.ntiles = (size + TILE - 1) // TILE
        self.fixed = lib.mypaint_fixed_tiled_surface_new(size, size)
        self.surface = lib.mypaint_fixed_tiled_surface_interface(self.fixed)
        self._tiles = []  # (request, numpy view of the tile) per tile, row-major
        for ty in range(self.ntiles):
            for tx in range(self.ntiles):
                req = _TileRequest()
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


class _NativeHandles:
    """Closed (the subclass's close()) by `with`, by calling close() and, failing both, when collected:
    libmypaint's surfaces and brushes are C allocations the garbage collector cannot see."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:   # noqa: BLE001 - an interpreter shutting down may have unloaded the library
            pass


class MyPaintProgram(_NativeHandles):
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
        self.dab_density = _dab_density(self._brush_json)
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
            lib.mypaint_surface_end_atomic(surface, ctypes.byref(_Rect()))
        finally:
            lib.mypaint_brush_unref(brush)

    def _render_serial(self, actions: np.ndarray) -> np.ndarray:
        if self._canvas is None:
            self._canvas = _Canvas(self.lib, self.size)
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


def _dab_density(brush_json: bytes) -> tuple[float, float]:
    """(dabs per radius, dabs per second) from a brush file's base values: what MyPaintCanvas.work()
    counts (libmypaint's defaults where the file has none)."""
    import json
    try:
        settings = json.loads(brush_json).get("settings", {})
    except (ValueError, AttributeError):
        settings = {}

    def base(name, default):
        value = settings.get(name, {}).get("base_value", default) if isinstance(settings.get(name), dict) else default
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else default
    per_radius = max(0.0, base("dabs_per_actual_radius", 2.0)) + max(0.0, base("dabs_per_basic_radius", 0.0))
    return per_radius, max(0.0, base("dabs_per_second", 0.0))


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


class MyPaintCanvas(_NativeHandles):
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
        req = _TileRequest()
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


@lru_cache(maxsize=None)
def brush_reach(brush: str, layout_name: str = NAKANO.name, samples: int = 60):
    """How far `brush` paints from a stroke's path (actions.BrushReach, pixels of a 64 px stroke box):
    measured on strokes at full and random pressure, sizes 0..1, each on a surface large enough to hold
    all of it, as the farthest visible pixel (8-bit alpha > 0) from the path; the envelope
    base + per_radius * radius over all of them, plus a pixel for the strokes not sampled. Deterministic;
    about 1 s."""
    from .actions import BrushReach
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
