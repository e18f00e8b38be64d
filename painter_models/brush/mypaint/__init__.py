"""MyPaint (libmypaint, through ctypes) as the painting program: action -> brushstroke.
One job a module: the library and brush presets (library.py), the stroke program (program.py),
a whole painting's surface (surface.py) and measuring a brush (measure.py)."""
from .library import (APT_HINT, INSTALL_HINT, MyPaintUnavailable, brush_dirs, library_version, list_brushes,
                      load_library, resolve_brush)
from .measure import brush_profile, brush_reach
from .program import N_POINTS, MyPaintProgram, rgba_to_rgb
from .surface import MyPaintCanvas

__all__ = ["APT_HINT", "INSTALL_HINT", "N_POINTS", "MyPaintCanvas", "MyPaintProgram", "MyPaintUnavailable",
           "brush_dirs", "brush_profile", "brush_reach", "library_version", "list_brushes", "load_library", "resolve_brush",
           "rgba_to_rgb"]
