"""The stroke file: a painting as JSON (schema in docs/stroke_json.md).

Every stroke keeps its raw normalised action and its box, so a file reloads to exactly the same
StrokeSet (float32 values round-trip bit for bit), plus derived, human- and plotter-friendly values in
canvas pixels (Bezier points, pressures, MyPaint log radius and radius, colour). The derived values are
informative: loading reads only the action and box. A background image is stored as a 16-bit RGB PNG
(base64), exact to half a 16-bit step. Reading is bounded (limits.py): a file is checked against the
limits before anything large is built.
"""
from __future__ import annotations

import base64
import binascii
import colorsys
import json
import math
import os

import numpy as np
import torch

from ..brush.actions import get_layout
from ..files import atomic_write
from ..brush.strokes import canvas_image
from ..images import hex_colour
from ..limits import MAX_STROKE_FILE_BYTES, MAX_STROKES
from ..brush.mypaint import N_POINTS
from .png16 import decode_rgb, encode_rgb16, png_size
from ..brush.strokes import StrokeSet

FORMAT = "neural-painters-strokes"
FORMAT_VERSION = 1


class StrokeFileError(ValueError):
    """A stroke file that cannot be loaded; the message says what is wrong and where."""


def _exact(values: np.ndarray) -> list:
    """float32 values as Python floats whose JSON text reads back to the same float32 bits:
    the shortest decimal of the float32 where it round-trips (0.3, not 0.30000001192092896),
    else the exact float64 value of the float32 (always round-trips)."""
    flat = np.asarray(values, np.float32).reshape(-1)
    short = np.array([float(str(v)) for v in flat], np.float64)   # numpy's shortest float32 repr
    same = (short.astype(np.float32).view(np.int32) == flat.view(np.int32))
    return np.where(same, short, flat.astype(np.float64)).tolist()


def _jsonable(value):
    """Free-form provenance (StrokeSet.extra) as plain JSON: tensors and arrays become lists,
    non-finite floats and unknown objects become strings."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist() if isinstance(value, np.ndarray) else value.detach().cpu().tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def _without_local_paths(extra: dict) -> dict:
    """Provenance fit to share: an absolute path (e.g. the painter file optimize.paint records)
    becomes its file name, so a stroke file does not reveal where things sit on this machine."""
    return {k: os.path.basename(v) if isinstance(v, str) and os.path.isabs(v) else v for k, v in extra.items()}


def strokes_to_json(strokes: StrokeSet) -> dict:
    """The stroke list as a JSON-ready dict (schema: docs/stroke_json.md, format_version 1)."""
    h, w = strokes.canvas_size
    s = strokes.cpu()
    items = []
    if len(s):
        geo = {k: v.numpy() for k, v in s.geometry(2).items()}   # the sampled path is not needed here
        colour = np.clip(geo["colour"], 0.0, 1.0)
        hexes = ["#%02x%02x%02x" % tuple(c) for c in np.round(colour * 255).astype(int).tolist()]
        hsv = np.round([colorsys.rgb_to_hsv(*c) for c in colour.tolist()], 4).tolist()
        points = {k: np.round(geo[k], 3).tolist() for k in ("start", "through", "control", "end")}
        scalars = {k: np.round(geo[k], 4).tolist() for k in ("entry_pressure", "exit_pressure", "log_radius")}
        radius = np.round(np.exp(geo["log_radius"]), 4).tolist()
        actions, boxes = _exact(s.actions.numpy()), _exact(s.boxes.numpy())
        dim = s.layout.dim
        for i in range(len(s)):
            items.append({
                "action": actions[i * dim:(i + 1) * dim],
                "box": boxes[i * 3:(i + 1) * 3],
                **{k: v[i] for k, v in points.items()},
                **{k: v[i] for k, v in scalars.items()},
                "radius_px": radius[i],
                "color": hexes[i],
                "hsv": hsv[i],
            })
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "canvas": {"width": w, "height": h},
        "background": {"rgb": [float(c) for c in strokes.background], "hex": hex_colour(strokes.background)},
        "blend": strokes.blend,
        "brush": strokes.brush,
        "layout": strokes.layout.to_dict(),
        "procedure": {
            "program": "libmypaint (MyPaint 2 brush engine)",
            "n_points": N_POINTS, "dtime": 0.1,
            "path": "quadratic Bezier start -> control -> end, sampled at t = k/n_points, k = 1..n_points",
            "pressure": "entry -> (entry+exit)/2 over the first 25 % of points, flat, -> exit over the last 25 %",
            "start": "two pressure-0 moves to the start point; a pressure-0 lift at the end point",
            "brush": "a fresh brush per stroke; base values color_h/s/v from the colour, radius_logarithmic = log_radius",
        },
        "extra": _jsonable(_without_local_paths(strokes.extra)),
        "n_strokes": len(strokes),
        "strokes": items,
        **({} if strokes.background_image is None else {"background_image": _image_json(canvas_image(strokes))}),
    }


def _image_json(image: np.ndarray) -> dict:
    """A canvas-size background image as JSON: a 16-bit RGB PNG in base64 (size and depth informative)."""
    h, w = image.shape[:2]
    return {"width": w, "height": h, "bit_depth": 16,
            "png_base64": base64.b64encode(encode_rgb16(image)).decode("ascii")}


def _image_from_json(value, canvas_size, source, check=None) -> torch.Tensor:
    """Decode and check the 'background_image' entry -> float32 [3, H, W]."""
    h, w = canvas_size
    drop = "or delete 'background_image' to paint over background.rgb"
    _need(isinstance(value, dict) and isinstance(value.get("png_base64"), str), source,
          f"'background_image' must be an object with 'png_base64' (a base64 PNG string); {drop}")
    try:
        data = base64.b64decode(value["png_base64"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise StrokeFileError(f"{source}: background_image.png_base64 is not valid base64 ({e}); "
                              f"re-save the painting, {drop}") from None
    try:
        size = png_size(data)   # checked before the pixels are inflated
        image = decode_rgb(data, check) if size == (h, w) else None
    except ValueError as e:
        raise StrokeFileError(f"{source}: background_image.png_base64 is not a readable PNG ({e}); "
                              f"re-save the painting, {drop}") from None
    _need(image is not None, source, f"background_image is {size[1]}x{size[0]} px but the canvas is {w}x{h}: "
                                     f"resize the image to {w}x{h}, {drop}")
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def _json_text(doc: dict) -> str:
    """Readable JSON: short values on one line, one layout field and one stroke per line.
    Numbers are written with json's float repr, so they read back to the same bits."""
    def value(v, indent):
        text = json.dumps(v, allow_nan=False)
        return text if len(text) <= 100 else json.dumps(v, indent=2, allow_nan=False).replace("\n", "\n" + indent)

    parts = []
    for key, v in doc.items():
        if key == "strokes":
            body = ",\n".join("    " + json.dumps(item, allow_nan=False) for item in v)
            parts.append('  "strokes": [' + ("\n" + body + "\n  " if body else "") + "]")
        elif key == "layout" and isinstance(v, dict) and "fields" in v:
            head = ", ".join(f"{json.dumps(k)}: {json.dumps(x)}" for k, x in v.items() if k != "fields")
            fields = ",\n".join("    " + json.dumps(f, allow_nan=False) for f in v["fields"])
            parts.append('  "layout": {' + head + (", " if head else "") + '"fields": [\n' + fields + "\n  ]}")
        else:
            parts.append(f"  {json.dumps(key)}: {value(v, '  ')}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def save_strokes(path: str, strokes: StrokeSet) -> str:
    """Write the stroke list as JSON (atomically: a crash never leaves a half-written file)."""
    text = _json_text(strokes_to_json(strokes))

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)
    return path


def _reject_constant(name):
    raise StrokeFileError(f"the file contains {name}: every number must be finite")


def _need(cond, where, message):
    if not cond:
        raise StrokeFileError(f"{where}: {message}")


def _numbers(values, n, where, field):
    _need(isinstance(values, list) and len(values) == n, where,
          f"{field!r} must be a list of {n} numbers, got "
          f"{len(values) if isinstance(values, list) else type(values).__name__}"
          f"{' values' if isinstance(values, list) else ''}")
    for k, v in enumerate(values):
        _need(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), where,
              f"{field}[{k}] = {v!r} is not a finite number")
    return values


def strokes_from_json(doc: dict, source: str = "stroke data", check=None) -> StrokeSet:
    """Rebuild the StrokeSet from a dict in the documented schema (only action and box are read
    per stroke; the derived values are informative). StrokeFileError says what is wrong, including
    every limit of painter_models.limits the strokes break. `check()` is called while a
    background image is decoded (raise in it to cancel)."""
    _need(isinstance(doc, dict), source, f"expected a JSON object, got {type(doc).__name__}")
    _need(doc.get("format") == FORMAT, source,
          f"not a stroke file (format is {doc.get('format')!r}, expected {FORMAT!r}); "
          f"stroke files are written by painter_models.export.stroke_file.save_strokes")
    version = doc.get("format_version")
    _need(isinstance(version, int) and not isinstance(version, bool) and version >= 1, source,
          f"format_version must be a positive integer, got {version!r}")
    _need(version <= FORMAT_VERSION, source,
          f"format_version {version} is newer than this version of neural-painters reads "
          f"({FORMAT_VERSION}); update the package")
    canvas = doc.get("canvas")
    _need(isinstance(canvas, dict), source, "'canvas' must be an object with 'width' and 'height'")
    for key in ("width", "height"):
        v = canvas.get(key)
        _need(isinstance(v, int) and not isinstance(v, bool) and v > 0, source,
              f"canvas {key} must be a positive integer, got {v!r}")
    bg = doc.get("background", {"rgb": [1.0, 1.0, 1.0]})
    bg = bg.get("rgb") if isinstance(bg, dict) else bg
    bg = _numbers(bg, 3, source, "background.rgb")
    _need(all(0 <= c <= 1 for c in bg), source, f"background.rgb {bg} must be in 0..1")
    brush = doc.get("brush", "classic/dry_brush")
    _need(isinstance(brush, str) and brush, source, f"'brush' must be a non-empty string, got {brush!r}")
    try:
        layout = get_layout(doc.get("layout", "nakano12"))
    except (ValueError, KeyError, TypeError) as e:
        raise StrokeFileError(f"{source}: bad 'layout' ({e})") from None
    items = doc.get("strokes")
    _need(isinstance(items, list), source, "'strokes' must be a list")
    _need(len(items) <= MAX_STROKES, source, f"the file holds {len(items)} strokes, more than the {MAX_STROKES} "
                                             f"a painting may have: split it into several files")
    if "n_strokes" in doc:
        _need(doc["n_strokes"] == len(items), source,
              f"n_strokes says {doc['n_strokes']!r} but the file holds {len(items)} strokes (truncated?)")
    extra = doc.get("extra", {})
    _need(isinstance(extra, dict), source, "'extra' must be an object")
    image = doc.get("background_image")
    if image is not None:
        image = _image_from_json(image, (canvas["height"], canvas["width"]), source, check)
    actions = np.zeros((len(items), layout.dim), np.float64)
    boxes = np.zeros((len(items), 3), np.float64)
    for i, item in enumerate(items):
        where = f"{source}: stroke {i}"
        _need(isinstance(item, dict), where, "must be an object with 'action' and 'box'")
        actions[i] = _numbers(item.get("action"), layout.dim, where, "action")
        boxes[i] = _numbers(item.get("box"), 3, where, "box")
    try:
        return StrokeSet(actions.astype(np.float32), boxes.astype(np.float32),
                         (canvas["height"], canvas["width"]), layout, brush, tuple(float(c) for c in bg),
                         doc.get("blend", "alpha"), dict(extra), image)
    except ValueError as e:
        raise StrokeFileError(f"{source}: {e}") from None


def load_strokes(path: str, name: str | None = None, check=None) -> StrokeSet:
    """Read a stroke file written by save_strokes; StrokeFileError for anything unusable.

    `name` is how messages call the file (default: its path; a server passes the name the user
    picked, so messages do not reveal its folders). Files over MAX_STROKE_FILE_BYTES are refused
    before they are read; `check()` is called while a background image is decoded."""
    label = repr(name if name is not None else path)
    doc = read_json_file(path, label, "stroke file", "split the painting or drop its background image")
    return strokes_from_json(doc, label, check)


def read_json_file(path: str, label: str, what: str, smaller: str):
    """The JSON document of a `what` (a stroke file, a clip's), refused with a StrokeFileError naming `label` when
    missing, over MAX_STROKE_FILE_BYTES (`smaller`: how to make it fit; nothing is read then), not text, not
    JSON, nested too deeply or holding NaN / Infinity."""
    if not os.path.isfile(path):
        raise StrokeFileError(f"{what} {label} does not exist")
    size = os.path.getsize(path)
    if size > MAX_STROKE_FILE_BYTES:
        raise StrokeFileError(f"{label} is {size / 2 ** 20:.0f} MiB; {what}s may be at most "
                              f"{MAX_STROKE_FILE_BYTES >> 20} MiB: {smaller}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.loads(f.read(MAX_STROKE_FILE_BYTES + 1), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise StrokeFileError(f"{label} is not a text file; {what}s are JSON") from None
    except json.JSONDecodeError as e:
        raise StrokeFileError(f"{label} is not valid JSON ({e}); it may be truncated or another format") from None
    except RecursionError:
        raise StrokeFileError(f"{label} nests JSON too deeply to be a {what}") from None
    except StrokeFileError as e:
        raise StrokeFileError(f"{label}: {e}") from None
