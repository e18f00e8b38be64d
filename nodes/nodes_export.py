"""Stroke Timelapse (the painting stroke by stroke, as an IMAGE batch) and Re-render with MyPaint."""
from __future__ import annotations

import difflib

import numpy as np
import torch

from ..painter_models import limits
from ..painter_models.brush import mypaint, rerender
from ..painter_models.export import timelapse
from . import comfy_adapter as comfy
from .common import EXPORT, NEURAL_PAINTER, STROKES, NodeError, check_painter_matches, image_to_bchw, user_errors

MAX_FRAMES = 1000
MAX_RERENDER_SIDE = 8192


STROKES_BRUSH = "(the strokes' brush)"


def delivered_seed(strokes) -> int:
    """The brush seed the painting was delivered with (StrokeSet.extra, written by paint()), else 0."""
    seed = strokes.extra.get("brush_seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def one_background(background, node_name: str):
    """[1, 3, H, W] of a background IMAGE input, or None; a batch is refused, never cut to its first image."""
    if background is None:
        return None
    images = image_to_bchw(background)
    if len(images) > 1:
        raise NodeError(f"{node_name}: background is a batch of {len(images)} images and one painting has one "
                        f"background: split the batch into a list with the core node Rebatch Images (batch_size 1)")
    return images


def frames_to_image(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 [H, W, 3] frames -> ComfyUI IMAGE [T, H, W, 3] float32 in 0..1 (intermediate device)."""
    batch = torch.from_numpy(np.stack(frames)).float().div_(255.0)
    return batch.to(comfy.intermediate_device())


class StrokeTimelapse:
    DESCRIPTION = ("The painting stroke by stroke: frames from the bare canvas to the finished painting (by the "
                   "real MyPaint brush where it is installed), as an IMAGE batch for ComfyUI's animated save nodes "
                   "(Save Animated WEBP / PNG).")
    CATEGORY = EXPORT
    FUNCTION = "frames"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The frames, [frames, height, width, 3].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "painter": (NEURAL_PAINTER, {"tooltip": "The painter that renders the strokes."}),
                "strokes": (STROKES, {"tooltip": "The strokes, in painting order."}),
                "frames": ("INT", {"default": 48, "min": 2, "max": MAX_FRAMES, "step": 1, "tooltip":
                                   "Number of frames (at most one per stroke, plus the bare canvas)."}),
                "max_side": ("INT", {"default": 512, "min": 0, "max": 8192, "step": 8, "tooltip":
                                     "Shrink frames so their longer side is at most this (0: full size)."}),
                "hold_last": ("INT", {"default": 12, "min": 0, "max": 600, "step": 1, "tooltip":
                                      "Repeat the finished painting this many extra frames, so the animation "
                                      "rests on it before looping."}),
            },
            "optional": {
                "background": ("IMAGE", {"tooltip": "Optional: start from this image instead of the strokes' "
                                                    "own background (colour or image)."}),
                "real_brush": ("BOOLEAN", {"default": True, "tooltip":
                                           "Frames of the real brush's painting (MyPaint, as Optimize Actions "
                                           "delivers it with its real_brush on, same brush seed). Off, or without "
                                           "libmypaint: the painter's canvas."}),
            },
        }

    @user_errors("Stroke Timelapse")
    def frames(self, painter, strokes, frames=48, max_side=512, hold_last=12, background=None, real_brush=True):
        check_painter_matches(painter, strokes, "Stroke Timelapse")
        renderer = painter
        if real_brush and rerender.mypaint_brush_name(strokes.brush) is not None:
            try:
                mypaint.load_library()
                renderer = "mypaint"
            except mypaint.MyPaintUnavailable:
                pass   # the painter's canvas, as Optimize Actions paints without libmypaint
        brush_seed = delivered_seed(strokes)
        bg = one_background(background, "Stroke Timelapse")
        counts = timelapse.frame_counts(len(strokes), int(frames))
        h, w = timelapse.frame_size(strokes, int(max_side) or None)
        limits.check_batch(len(counts) + int(hold_last), h, w, "Stroke Timelapse",
                           "lower frames or hold_last, or set a smaller max_side")
        out = []
        with comfy.Progress(len(counts), "time-lapse") as progress, \
                comfy.on_compute_device(None if renderer == "mypaint" else painter):
            for i, (_, frame) in enumerate(timelapse.iter_timelapse(renderer, strokes, int(frames), bg,
                                                                    max_side=int(max_side) or None, counts=counts,
                                                                    check=comfy.check_interrupt,
                                                                    brush_seed=brush_seed)):
                out.append(frame)
                progress.update(i + 1, preview=lambda f=frame: torch.tensor(f).permute(2, 0, 1))
        out += [out[-1]] * int(hold_last)
        return (frames_to_image(out),)


class RerenderMyPaint:
    DESCRIPTION = ("Paints the strokes again with the real MyPaint brush (libmypaint), at any scale: e.g. a 512 px "
                   "painting re-rendered at 2048 px with true brush texture. Needs libmypaint and the MyPaint "
                   "brushes (Debian/Ubuntu: apt-get install libmypaint-1.5-1 mypaint-brushes).")
    CATEGORY = EXPORT
    FUNCTION = "rerender"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The MyPaint painting, scale times the strokes' canvas size.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "strokes": (STROKES, {"tooltip": "The strokes, in painting order."}),
                "scale": ("FLOAT", {"default": 2.0, "min": 0.25, "max": 16.0, "step": 0.25,
                                    "tooltip": "Output size as a multiple of the strokes' canvas."}),
                "brush": ([STROKES_BRUSH] + mypaint.list_brushes(), {"default": STROKES_BRUSH,
                          "tooltip": "The brush the strokes were made for, or another installed MyPaint preset "
                                     "(the same strokes with another brush)."}),
            },
            "optional": {
                "background": ("IMAGE", {"tooltip": "Optional: paint over this image instead of the strokes' "
                                                    "own background (colour or image)."}),
                "brush_seed": ("INT", {"default": -1, "min": -1, "max": 10000, "step": 1, "tooltip":
                                       "The brush's random texture: -1 is the seed the painting was delivered with "
                                       "(what Optimize Actions showed); another number, another draw of the "
                                       "brush's grain."}),
            },
        }

    @user_errors("Re-render with MyPaint")
    def rerender(self, strokes, scale=2.0, brush=STROKES_BRUSH, background=None, brush_seed=-1):
        scale = limits.finite_positive(scale, "scale")
        h, w = strokes.canvas_size
        if max(h, w) * scale > MAX_RERENDER_SIDE:
            raise NodeError(f"Re-render with MyPaint: {w}x{h} at scale {scale:g} is "
                            f"{round(w * scale)}x{round(h * scale)} px; at most {MAX_RERENDER_SIDE} px a side")
        preset = installed_preset(strokes.brush if brush in ("", STROKES_BRUSH) else brush)
        bg = one_background(background, "Re-render with MyPaint")
        seed = delivered_seed(strokes) if brush_seed < 0 else int(brush_seed)
        with comfy.Progress(max(1, len(strokes)), "MyPaint") as progress:
            image = rerender.rerender_mypaint(strokes, scale, preset, bg, check=comfy.check_interrupt,
                                              callback=lambda done, total: progress.update(done),
                                              brush_seed=seed)
        return (frames_to_image([image]),)


def installed_preset(brush: str) -> str:
    """The installed MyPaint preset a brush string names. A shared server paints with installed
    presets only: a file path (from a stroke file or the widget) is refused without looking at the
    disk, so the answer never tells whether a file exists."""
    name = rerender.mypaint_brush_name(brush)
    if name is None:
        raise NodeError(f"Re-render with MyPaint: these strokes were made for the torch rasteriser ({brush!r}), "
                        f"which has no MyPaint brush: pick a preset in brush, e.g. classic/dry_brush")
    installed = mypaint.list_brushes()
    if name not in installed:
        if not installed:
            raise NodeError(f"Re-render with MyPaint: no MyPaint brush presets are installed on this server.\n"
                            f"{mypaint.INSTALL_HINT}")
        close = difflib.get_close_matches(name, installed, 3, 0.6)
        raise NodeError(f"Re-render with MyPaint: {name!r} is not an installed MyPaint preset"
                        + (f" (did you mean {', '.join(close)}?)" if close else "")
                        + ": type a preset name such as classic/dry_brush (file paths are not accepted)")
    return name
