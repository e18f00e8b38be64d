"""libmypaint through ctypes, and the brush presets it paints with.

Only the runtime library and the brush presets are needed (no headers, GTK or MyPaint's Python library):
  Debian/Ubuntu  apt-get install -y --no-install-recommends libmypaint-1.5-1 mypaint-brushes
  macOS          brew install libmypaint mypaint-brushes          (Homebrew; MacPorts' prefix is searched too)
  Windows        pacman -S mingw-w64-ucrt-x86_64-libmypaint mingw-w64-ucrt-x86_64-mypaint-brushes2   (MSYS2)
or NEURAL_PAINTERS_LIBMYPAINT names the library file (or its folder), NEURAL_PAINTERS_BRUSHES a brush folder.

Owns loading the library (load_library, library_version), its structs and tile format, the lifetime
of its native handles, finding brush presets (brush_dirs, list_brushes, resolve_brush) and reading
a preset's dab density.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import glob
import json
import math
import os
import sys
from functools import lru_cache

TILE = 64                 # libmypaint's tile side, px
FIX15 = 1 << 15           # libmypaint's fixed-point 1.0 (tile pixels are premultiplied RGBA in fix15)
APT_HINT = "apt-get install -y --no-install-recommends libmypaint-1.5-1 mypaint-brushes"
INSTALL_HINT = ("On Debian/Ubuntu:  " + APT_HINT +
                "\nOn macOS (Homebrew):  brew install libmypaint mypaint-brushes"
                "\nOn Windows (MSYS2):  pacman -S mingw-w64-ucrt-x86_64-libmypaint "
                "mingw-w64-ucrt-x86_64-mypaint-brushes2")
BRUSH_DIRS = ("/usr/share/mypaint-data/2.0/brushes", "/usr/share/mypaint-data/1.0/brushes",
              "/usr/local/share/mypaint-data/2.0/brushes", "/usr/share/mypaint/brushes")
# Package managers' prefixes beyond the system's: the library is in PREFIX/lib (PREFIX/bin on Windows), the
# presets in PREFIX/share/mypaint-data/*/brushes. libtool names the library libmypaint-1.5.so.1 (Linux),
# libmypaint-1.5.1.dylib (macOS), libmypaint-1.5-1.dll (MinGW), also for libmypaint 1.6.
PREFIXES = {"darwin": ("/opt/homebrew", "/usr/local", "/opt/local"),
            "win32": tuple(rf"{root}\{env}" for root in ("C:\\msys64", "C:\\msys2")
                           for env in ("ucrt64", "mingw64", "clang64"))}


class MyPaintUnavailable(RuntimeError):
    """libmypaint or a brush preset is missing; the message says what to install."""


class MyPaintTileRequest(ctypes.Structure):
    _fields_ = [("tx", ctypes.c_int), ("ty", ctypes.c_int), ("readonly", ctypes.c_int),
                ("buffer", ctypes.POINTER(ctypes.c_uint16)), ("context", ctypes.c_void_p),
                ("thread_id", ctypes.c_int), ("mipmap_level", ctypes.c_int)]


class MyPaintRectangle(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int)]


def platform_prefixes() -> list[str]:
    """This platform's package-manager prefixes that exist (Homebrew's own first where HOMEBREW_PREFIX is set)."""
    prefixes = ([os.environ["HOMEBREW_PREFIX"]] if sys.platform == "darwin" and os.environ.get("HOMEBREW_PREFIX")
                else []) + list(PREFIXES.get(sys.platform, ()))
    return [p for p in dict.fromkeys(prefixes) if os.path.isdir(p)]


def _libraries_in(folder: str) -> list[str]:
    """libmypaint files in a folder, the versioned names first (a bare libmypaint.so may be a dev symlink)."""
    names = {p for pattern in ("libmypaint*.so*", "libmypaint*.dylib", "libmypaint*.dll")
             for p in glob.glob(os.path.join(folder, pattern))}
    return sorted(names, key=lambda p: (os.path.basename(p).startswith("libmypaint."), p))


def _library_candidates():
    env = os.environ.get("NEURAL_PAINTERS_LIBMYPAINT")
    if env:
        yield from (_libraries_in(env) if os.path.isdir(env) else [env])
    found = ctypes.util.find_library("mypaint-1.5") or ctypes.util.find_library("mypaint")
    if found:
        yield found
    for prefix in platform_prefixes():
        yield from _libraries_in(os.path.join(prefix, "bin" if sys.platform == "win32" else "lib"))
    yield "libmypaint-1.5.so.1"
    yield "libmypaint.so"


def _open(path: str):
    """ctypes.CDLL, letting Windows find the library's own DLLs (json-c, glib) beside it: since Python 3.8 it
    no longer searches PATH for them."""
    if hasattr(os, "add_dll_directory") and os.path.dirname(path):
        os.add_dll_directory(os.path.dirname(os.path.abspath(path)))
    return ctypes.CDLL(path)


def _signatures() -> dict:
    """The libmypaint functions used here: name -> (argument types, result type)."""
    P, F, I, D = ctypes.c_void_p, ctypes.c_float, ctypes.c_int, ctypes.c_double
    return {
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
        "mypaint_surface_end_atomic": ([P, ctypes.POINTER(MyPaintRectangle)], None),
        "mypaint_surface_unref": ([P], None),
        "mypaint_tile_request_init": ([ctypes.POINTER(MyPaintTileRequest), I, I, I, I], None),
        "mypaint_tiled_surface_tile_request_start": ([P, ctypes.POINTER(MyPaintTileRequest)], None),
        "mypaint_tiled_surface_tile_request_end": ([P, ctypes.POINTER(MyPaintTileRequest)], None),
    }


@lru_cache(maxsize=None)
def load_library():
    """The ctypes handle of libmypaint, with argument types declared; raises MyPaintUnavailable."""
    env = os.environ.get("NEURAL_PAINTERS_LIBMYPAINT")
    if env and not os.path.exists(env):
        raise MyPaintUnavailable(f"libmypaint was not found: NEURAL_PAINTERS_LIBMYPAINT points to {env!r}, which "
                                 f"does not exist. Fix or unset it, or install the library.\n{INSTALL_HINT}")
    if env and os.path.isdir(env) and not _libraries_in(env):
        raise MyPaintUnavailable(f"libmypaint was not found: NEURAL_PAINTERS_LIBMYPAINT names the folder {env!r}, "
                                 f"which holds no libmypaint*.so / .dylib / .dll. Point it at the library file.")
    errors = []
    for name in _library_candidates():
        try:
            lib = _open(name)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise MyPaintUnavailable(
            "libmypaint was not found: install it, or set NEURAL_PAINTERS_LIBMYPAINT\n" + INSTALL_HINT +
            "\nor point NEURAL_PAINTERS_LIBMYPAINT at the library file (libmypaint-1.5.so.1, libmypaint-1.5.1.dylib, "
            "libmypaint-1.5-1.dll). (" + "; ".join(errors[:2]) + ")")
    for fn, (args, res) in _signatures().items():
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


class NativeHandles:
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


# -- brush presets ----------------------------------------------------------------------------------

def brush_dirs() -> list[str]:
    env = os.environ.get("NEURAL_PAINTERS_BRUSHES")
    prefixed = [os.path.join(p, "share", "mypaint-data", v, "brushes")
                for p in platform_prefixes() for v in ("2.0", "1.0")]
    return ([env] if env else []) + [d for d in dict.fromkeys(list(BRUSH_DIRS) + prefixed) if os.path.isdir(d)]


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
        raise MyPaintUnavailable("no MyPaint brush presets are installed.\n" + INSTALL_HINT +
                                 "\nor point NEURAL_PAINTERS_BRUSHES at a folder of .myb files.")
    installed = list_brushes()
    close = difflib.get_close_matches(brush, installed, 5, 0.6) or \
        [b for b in installed if brush.split("/")[-1] in b][:5]
    raise MyPaintUnavailable(f"unknown brush preset {brush!r}" + (f"; did you mean {close}?" if close else "") +
                             "; painter_models.list_brushes() lists the installed presets")


def dab_density(brush_json: bytes) -> tuple[float, float]:
    """(dabs per radius, dabs per second) from a brush file's base values: what MyPaintCanvas.work()
    counts (libmypaint's defaults where the file has none)."""
    try:
        settings = json.loads(brush_json).get("settings", {})
    except (ValueError, AttributeError):
        settings = {}

    def base(name, default):
        value = settings.get(name, {}).get("base_value", default) if isinstance(settings.get(name), dict) else default
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else default
    per_radius = max(0.0, base("dabs_per_actual_radius", 2.0)) + max(0.0, base("dabs_per_basic_radius", 0.0))
    return per_radius, max(0.0, base("dabs_per_second", 0.0))
