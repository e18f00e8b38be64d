"""Outputs of a painting: the stroke list as JSON, time-lapse frames and animations, and a
re-rendering with the real MyPaint brush at any scale.

JSON (schema in docs/stroke_json.md): every stroke keeps its raw normalised action and its box, so
a file reloads to exactly the same StrokeSet (float32 values round-trip bit for bit), plus derived,
human- and plotter-friendly values in canvas pixels (Bezier points, pressures, MyPaint log radius
and radius, colour). The derived values are informative: loading reads only the action and box.
A background image is stored as a 16-bit RGB PNG (base64), exact to half a 16-bit step.

The SVG writer is painter_models.svg.
"""
from __future__ import annotations

import base64
import binascii
import colorsys
import json
import math
import os
from typing import Callable, Iterator

import numpy as np
import torch

from .actions import get_layout
from .checkpoint import atomic_write
from .limits import MAX_MYPAINT_WORK, MAX_STROKE_FILE_BYTES, MAX_STROKES, check_batch, check_work, finite_positive
from .png16 import decode_rgb, encode_rgb16, png_size
from .strokes import StrokeSet

FORMAT = "neural-painters-strokes"
FORMAT_VERSION = 1
N_POINTS = 100          # points per stroke in MyPaint's procedure (MyPaintProgram, MyPaintCanvas)

# -- brush names ----------------------------------------------------------------------------------


def mypaint_brush_name(brush: str) -> str | None:
    """The MyPaint preset (or .myb path) a brush string names, or None for the torch rasteriser.
    Accepts 'classic/dry_brush', 'mypaint:classic/dry_brush', '/path/brush.myb', 'raster[:...]'."""
    if brush.startswith("raster"):
        return None
    return brush[len("mypaint:"):] if brush.startswith("mypaint:") else brush


def _cpu(strokes: StrokeSet) -> StrokeSet:
    """The same strokes as detached CPU tensors (exports never need gradients)."""
    image = None if strokes.background_image is None else strokes.background_image.detach().cpu()
    return StrokeSet(strokes.actions.detach().cpu(), strokes.boxes.detach().cpu(), strokes.canvas_size,
                     strokes.layout, strokes.brush, strokes.background, strokes.blend, dict(strokes.extra), image)


def _canvas_image(strokes: StrokeSet) -> np.ndarray | None:
    """The StrokeSet's background image stretched to its canvas, float32 [H, W, 3], with the
    resize render_canvas uses (canvas.background_canvas), so every output shows the same pixels."""
    if strokes.background_image is None:
        return None
    from .canvas import background_canvas
    img = background_canvas(strokes.background_image.detach().float().cpu(), strokes.canvas_size)
    return img[0].permute(1, 2, 0).numpy()


def _own_backdrop(background, strokes: StrokeSet):
    """`background` if one is given, else the StrokeSet's: its image (HWC at canvas size) or its colour."""
    if background is not None:
        return background
    image = _canvas_image(strokes)
    return strokes.background if image is None else image


def _hex(rgb) -> str:
    r, g, b = (int(round(min(1.0, max(0.0, float(c))) * 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


# -- JSON -----------------------------------------------------------------------------------------


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
    s = _cpu(strokes)
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
        "background": {"rgb": [float(c) for c in strokes.background], "hex": _hex(strokes.background)},
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
        **({} if strokes.background_image is None else {"background_image": _image_json(_canvas_image(strokes))}),
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
          f"stroke files are written by painter_models.export.save_strokes")
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
    if not os.path.isfile(path):
        raise StrokeFileError(f"stroke file {label} does not exist")
    size = os.path.getsize(path)
    if size > MAX_STROKE_FILE_BYTES:
        raise StrokeFileError(f"{label} is {size / 2 ** 20:.0f} MiB; stroke files may be at most "
                              f"{MAX_STROKE_FILE_BYTES >> 20} MiB: split the painting or drop its background image")
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = json.loads(f.read(MAX_STROKE_FILE_BYTES + 1), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise StrokeFileError(f"{label} is not a text file; stroke files are JSON") from None
    except json.JSONDecodeError as e:
        raise StrokeFileError(f"{label} is not valid JSON ({e}); it may be truncated or another format") from None
    except RecursionError:
        raise StrokeFileError(f"{label} nests JSON too deeply to be a stroke file") from None
    except StrokeFileError as e:
        raise StrokeFileError(f"{label}: {e}") from None
    return strokes_from_json(doc, label, check)


# -- time-lapse -----------------------------------------------------------------------------------


def frame_counts(n_strokes: int, n_frames: int) -> list[int]:
    """Evenly spaced stroke counts from 0 (the bare background) to n_strokes (the full painting);
    at most n_strokes + 1 frames, no count repeated."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if n_frames == 1 or n_strokes == 0:
        return [n_strokes]
    t = min(n_frames, n_strokes + 1)
    return sorted(set(int(round(c)) for c in np.linspace(0, n_strokes, t)))


def _to_hwc(image) -> np.ndarray:
    """[1, 3, H, W] / [3, H, W] tensor or array, or [H, W, 3] array (float 0..1 or uint8) -> float32 HWC."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    a = np.asarray(image)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise ValueError(f"expected an RGB image, got shape {list(np.shape(image))}")
    a = a[..., :3]
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def _is_colour(bg) -> bool:
    """An RGB colour (tuple, list, 1-d array or tensor of 3 numbers), not an image."""
    return isinstance(bg, (tuple, list)) or (np.ndim(bg) == 1 and np.size(bg) == 3)


def _background_image(background, strokes: StrokeSet) -> np.ndarray:
    h, w = strokes.canvas_size
    bg = _own_backdrop(background, strokes)
    if _is_colour(bg):
        return np.broadcast_to(np.asarray(bg, np.float32), (h, w, 3)).copy()
    img = _to_hwc(bg)
    if img.shape[:2] != (h, w):
        img = _resize(img, w, h)
    return img


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """float HWC image resized with Pillow (Lanczos; box filter when shrinking a lot)."""
    from PIL import Image
    u8 = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(u8.resize((width, height), Image.LANCZOS), np.float32) / 255.0


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _frame_resizer(strokes: StrokeSet, max_side: int | None):
    h, w = frame_size(strokes, max_side)
    if (h, w) == strokes.canvas_size:
        return lambda frame: frame
    from PIL import Image
    return lambda frame: np.asarray(Image.fromarray(frame).resize((w, h), Image.LANCZOS))


def frame_size(strokes: StrokeSet, max_side: int | None) -> tuple[int, int]:
    """(height, width) of time-lapse frames: the canvas, shrunk to max_side if that is smaller."""
    h, w = strokes.canvas_size
    if not max_side or max(h, w) <= max_side:
        return h, w
    f = max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def iter_timelapse(renderer, strokes: StrokeSet, n_frames: int = 48, background=None,
                   incremental: bool = True, max_side: int | None = None,
                   counts: list[int] | None = None, check=None,
                   brush_seed: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (stroke count, uint8 frame [H, W, 3]) for the time-lapse; see timelapse_frames.
    `check()` is called before each stroke (MyPaint) or group of strokes (a painter): raise in it
    to cancel. The painting is checked against the renderer's work budget before the first frame."""
    counts = frame_counts(len(strokes), n_frames) if counts is None else sorted(set(int(c) for c in counts))
    if counts and not 0 <= counts[0] <= counts[-1] <= len(strokes):
        raise ValueError(f"frame stroke counts must be within 0..{len(strokes)}")
    shrink = _frame_resizer(strokes, max_side)
    if isinstance(renderer, str):
        name = renderer
        if name != "mypaint" and not name.startswith("mypaint:"):
            raise ValueError(f"unknown renderer {renderer!r}: pass a NeuralPainter, a render function "
                             f"render_fn(strokes, background) or 'mypaint' / 'mypaint:<brush>'")
        brush = name.split(":", 1)[1] if ":" in name else None
        with mypaint_canvas(strokes, brush=brush, background=background, brush_seed=brush_seed) as canvas:
            geo = _mypaint_geometry(canvas, strokes, "the time-lapse", "use fewer or smaller strokes")
            done = 0
            for c in counts:
                if c > done:
                    canvas.paint_paths(*(p[done:c] for p in geo), check=check)
                    done = c
                yield c, shrink(canvas.read_rgb(dtype=np.uint8))
        return
    render = _renderer_function(renderer, check)
    base = background
    canvas, done = None, 0
    for c in counts:
        if c == 0:
            frame = _background_image(background, strokes)
            yield c, shrink(_to_uint8(frame))
            continue
        if incremental:
            # Strokes are painted in order over what is already there, so the strokes since the
            # last frame painted over the last frame give the same canvas as all of them at once.
            under = base if canvas is None else canvas
            canvas = render(strokes[done:c], under)
            done = c
            out = canvas
        else:
            out = render(strokes[:c], base)
        yield c, shrink(_to_uint8(_to_hwc(out)))


def _renderer_function(renderer, check=None) -> Callable:
    """render(strokes, background) for a painter (canvas.render_canvas, checking `check()` per group
    of strokes) or a render function (checking it per call)."""
    from .checkpoint import NeuralPainter
    from .model import Generator
    if isinstance(renderer, (NeuralPainter, Generator)) or hasattr(renderer, "render_torch") or \
            (callable(renderer) and hasattr(renderer, "stroke_size")):
        from .canvas import as_painter, render_canvas
        painter = as_painter(renderer)

        @torch.no_grad()
        def render(strokes, background):
            if background is not None and not isinstance(background, torch.Tensor):
                background = (tuple(float(c) for c in np.asarray(background).reshape(-1)) if _is_colour(background)
                              else torch.from_numpy(_to_hwc(background)).permute(2, 0, 1)[None])
            return render_canvas(painter, strokes, background=background, check=check)
        return render
    if callable(renderer):
        @torch.no_grad()
        def render_fn(strokes, background):
            if check is not None:
                check()
            # a render function need not know about background images: hand it the strokes' image
            image = _canvas_image(strokes) if background is None else None
            return renderer(strokes, background if image is None else torch.from_numpy(image).permute(2, 0, 1)[None])
        return render_fn
    raise TypeError(f"renderer must be a painter (NeuralPainter, Generator, RasterProgram), a function "
                    f"render_fn(strokes, background) or 'mypaint', got {type(renderer).__name__}")


def timelapse_frames(renderer, strokes: StrokeSet, n_frames: int = 48, background=None,
                     incremental: bool = True, max_side: int | None = None, brush_seed: int = 0) -> np.ndarray:
    """Frames of the painting stroke by stroke: uint8 [T, H, W, 3], T = min(n_frames, N + 1).

    Frame k shows the first c_k strokes, c evenly spaced from 0 (the background) to N (the full
    painting). `renderer` is a NeuralPainter (rendered with canvas.render_canvas), a function
    render_fn(strokes, background) -> image ([1, 3, H, W] / [H, W, 3], 0..1) that paints `strokes`
    over `background` (None: the StrokeSet's colour; the StrokeSet's background image is passed as
    a [1, 3, H, W] tensor; later calls get what the previous call returned), or
    'mypaint' for the real brush on one MyPaint surface (with `brush_seed`'s texture: the frames end on
    rerender_mypaint(strokes, 1.0, brush_seed=...)). With `incremental`, each frame paints only
    the strokes since the previous frame over it (N strokes rendered in all, not N * T / 2).
    `background`: a colour or image for the first frame, default the StrokeSet's (background_image,
    else background); `max_side` shrinks frames (Lanczos). Frames x pixels above
    limits.MAX_BATCH_PIXELS are refused before rendering."""
    h, w = frame_size(strokes, max_side)
    check_batch(len(frame_counts(len(strokes), n_frames)), h, w, "time-lapse", "use fewer frames or a smaller max_side")
    frames = [frame for _, frame in iter_timelapse(renderer, strokes, n_frames, background, incremental, max_side,
                                                   brush_seed=brush_seed)]
    return np.stack(frames)


def save_animation(frames, path: str, fps: float = 12.0, loop: int = 0, hold_last: float = 1.0,
                   quality: int = 90, lossless: bool = False) -> str:
    """Write frames (uint8 [T, H, W, 3] or a list of such frames) as an animated WebP or GIF, chosen
    by the file extension; atomic. `loop` = 0 repeats forever; the last frame stays `hold_last`
    seconds longer. GIF: one 256-colour palette for all frames (no dithering), and Pillow merges
    consecutive identical frames."""
    from PIL import Image
    ext = os.path.splitext(path)[1].lower()
    fmt = {".gif": "GIF", ".webp": "WEBP"}.get(ext)
    if fmt is None:
        raise ValueError(f"animation path must end in .gif or .webp, got {path!r}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [Image.fromarray(f if f.dtype == np.uint8 else _to_uint8(f)) for f in (np.asarray(x) for x in frames)]
    if not images:
        raise ValueError("no frames to save")
    step = max(10, int(round(1000.0 / fps / 10)) * 10) if fmt == "GIF" else max(1, int(round(1000.0 / fps)))
    durations = [step] * len(images)
    durations[-1] += int(round(hold_last * 1000))
    kwargs = dict(save_all=True, append_images=images[1:], duration=durations, loop=int(loop))
    if fmt == "WEBP":
        kwargs.update(quality=int(quality), lossless=bool(lossless), method=4)
    else:
        # One palette for the whole animation (median cut over the first, middle and last frames),
        # applied without dithering: no palette flicker, no dither shimmer in unchanged areas, and
        # much faster than Pillow quantising every RGB frame on its own.
        sample = [images[k].copy() for k in sorted({0, len(images) // 2, len(images) - 1})]
        for im in sample:
            im.thumbnail((256, 256))
        montage = Image.new("RGB", (sum(im.width for im in sample), max(im.height for im in sample)))
        x = 0
        for im in sample:
            montage.paste(im, (x, 0))
            x += im.width
        palette = montage.quantize(256, method=Image.Quantize.MEDIANCUT)
        images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
        kwargs.update(append_images=images[1:], optimize=False, disposal=1)

    def write(tmp):
        images[0].save(tmp, format=fmt, **kwargs)
    atomic_write(path, write)
    return path


# -- MyPaint re-render ----------------------------------------------------------------------------


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
    bg = _own_backdrop(background, strokes)
    bg = tuple(float(c) for c in np.asarray(bg).reshape(-1)) if _is_colour(bg) else _background_image(bg, strokes)
    return MyPaintCanvas(w, h, preset, strokes.layout, background=bg, brush_seed=brush_seed)


def _mypaint_geometry(canvas, strokes: StrokeSet, what: str, lower: str) -> list[np.ndarray]:
    """The strokes' MyPaint geometry (start, path, pressure, log radius, colour as arrays), after
    checking the painting against limits.MAX_MYPAINT_WORK (ValueError naming what to lower)."""
    geo = _cpu(strokes).geometry(N_POINTS)
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
    big = _cpu(strokes).scaled(finite_positive(scale, "scale"))
    with mypaint_canvas(big, brush=brush, background=background, brush_seed=brush_seed) as canvas:
        if len(big):
            parts = _mypaint_geometry(canvas, big, f"at scale {float(scale):g}",
                                      "lower the scale, or use fewer or smaller strokes")
            for i in range(0, len(big), chunk):
                canvas.paint_paths(*(p[i:i + chunk] for p in parts), check=check)
                if callback is not None:
                    callback(min(i + chunk, len(big)), len(big))
        return canvas.read_rgb(dtype=dtype)
