"""Time-lapses of a painting: frames stroke by stroke (by a painter, a render function or the real
MyPaint brush) and animated WebP / GIF files of them. Frames x pixels are bounded (limits.check_batch)."""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import torch

from ..files import atomic_write
from ..brush.strokes import backdrop_image, canvas_image
from ..images import is_colour, to_hwc, to_uint8
from ..limits import check_batch
from ..brush.rerender import mypaint_canvas, mypaint_geometry
from ..brush.strokes import StrokeSet


def frame_counts(n_strokes: int, n_frames: int) -> list[int]:
    """Evenly spaced stroke counts from 0 (the bare background) to n_strokes (the full painting);
    at most n_strokes + 1 frames, no count repeated."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if n_frames == 1 or n_strokes == 0:
        return [n_strokes]
    t = min(n_frames, n_strokes + 1)
    return sorted(set(int(round(c)) for c in np.linspace(0, n_strokes, t)))


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
            geo = mypaint_geometry(canvas, strokes, "the time-lapse", "use fewer or smaller strokes")
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
            frame = backdrop_image(background, strokes)
            yield c, shrink(to_uint8(frame))
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
        yield c, shrink(to_uint8(to_hwc(out)))


def _renderer_function(renderer, check=None) -> Callable:
    """render(strokes, background) for a painter (canvas.render_canvas, checking `check()` per group
    of strokes) or a render function (checking it per call)."""
    from ..painter.checkpoint import NeuralPainter
    from ..painter.model import Generator
    if isinstance(renderer, (NeuralPainter, Generator)) or hasattr(renderer, "render_torch") or \
            (callable(renderer) and hasattr(renderer, "stroke_size")):
        from ..painting.canvas import as_painter, render_canvas
        painter = as_painter(renderer)

        @torch.no_grad()
        def render(strokes, background):
            if background is not None and not isinstance(background, torch.Tensor):
                background = (tuple(float(c) for c in np.asarray(background).reshape(-1)) if is_colour(background)
                              else torch.from_numpy(to_hwc(background)).permute(2, 0, 1)[None])
            return render_canvas(painter, strokes, background=background, check=check)
        return render
    if callable(renderer):
        @torch.no_grad()
        def render_fn(strokes, background):
            if check is not None:
                check()
            # a render function need not know about background images: hand it the strokes' image
            image = canvas_image(strokes) if background is None else None
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
    images = [Image.fromarray(f if f.dtype == np.uint8 else to_uint8(f)) for f in (np.asarray(x) for x in frames)]
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
