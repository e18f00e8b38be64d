"""A painting's files in one call: the stroke JSON, the SVG, the time-lapse, snapshots and the MyPaint
re-render, each written atomically where asked (`neural-painters paint`'s --json, --svg, --frames,
--snapshots and --rerender)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..brush import rerender
from . import stroke_file, svg, timelapse
from .image_files import save_image


@dataclass
class ExportRequest:
    json: str | None = None
    svg: str | None = None
    frames: str | None = None          # .webp or .gif
    frame_count: int = 60
    fps: float = 12.0
    snapshots: str | None = None       # a folder: step_00025.png, ...
    rerender: str | None = None        # a PNG painted by MyPaint at rerender_scale
    rerender_scale: float = 4.0


def write_exports(result, painter, request: ExportRequest) -> list[str]:
    """Write what `request` asks for of a paint() result; returns the paths written. The time-lapse is the
    painting's own: MyPaint's strokes where MyPaint painted it, else the neural painter's."""
    strokes, written = result.strokes, []
    if request.json:
        stroke_file.save_strokes(request.json, strokes)
        written.append(request.json)
    if request.svg:
        svg.save_svg(request.svg, strokes)
        written.append(request.svg)
    if request.frames:
        renderer = "mypaint" if result.renderer.startswith("mypaint:") else painter
        frames = timelapse.timelapse_frames(renderer, strokes, n_frames=request.frame_count,
                                            brush_seed=strokes.extra.get("brush_seed", 0))
        timelapse.save_animation(frames, request.frames, fps=request.fps)
        written.append(request.frames)
    if request.snapshots:
        os.makedirs(request.snapshots, exist_ok=True)
        for step, snapshot in result.snapshots:
            save_image(os.path.join(request.snapshots, f"step_{step:05d}.png"), snapshot)
        written.append(request.snapshots + os.sep)
    if request.rerender:
        brush = rerender.mypaint_brush_name(strokes.brush)
        big = rerender.rerender_mypaint(strokes, scale=request.rerender_scale,
                                        brush=None if brush else "classic/dry_brush")
        save_image(request.rerender, big)
        written.append(request.rerender)
    return written
