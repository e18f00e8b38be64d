"""Render Strokes (the painting of a stroke set) and Blend Canvas (strokes painted over an image)."""
from __future__ import annotations

import dataclasses

import torch

from ..painter_models import limits
from ..painter_models.painting import canvas
from . import comfy_adapter as comfy
from .common import (NEURAL_PAINTER, PAINTING, STROKES, NodeError, bchw_to_image, check_painter_matches,
                     image_to_bchw, mask_to_b1hw, user_errors)

MAX_RENDER_SIDE = 16384


def render(painter, strokes, background=None, scale: float = 1.0) -> torch.Tensor:
    """[1, 3, H, W] painting of `strokes` by `painter` (no gradients), on the painter's device.
    Cancel is checked before every group of strokes; a render above the work budget is refused."""
    scale = limits.finite_positive(scale, "scale")
    h, w = strokes.canvas_size
    if max(h, w) * scale > MAX_RENDER_SIDE:
        raise NodeError(f"a {round(w * scale)}x{round(h * scale)} px render is too large (at most {MAX_RENDER_SIDE} "
                        f"px a side): lower the scale")
    if scale != 1.0:
        strokes = strokes.scaled(scale)
    with torch.no_grad():
        return canvas.render_canvas(painter, strokes, background, check=comfy.check_interrupt)


def coverage(painter, strokes, scale: float = 1.0) -> torch.Tensor:
    """MASK [1, H, W]: 1 - the light that comes through all the strokes, i.e. the strokes painted in black
    over white, inverted (what covers a pixel is the strokes' alpha, whatever their colours)."""
    rgb = strokes.layout.indices("red", "green", "blue")
    black = strokes.actions.clone()
    black[:, rgb] = 0.0
    ink = dataclasses.replace(strokes, actions=black, background=(1.0, 1.0, 1.0), background_image=None)
    through = render(painter, ink, None, scale)[:, 0]
    return (1 - through).clamp(0, 1).to(comfy.intermediate_device())


def with_blend(strokes, blend: str):
    """The same strokes with another blend mode ("alpha" / "linear"); "as strokes" keeps theirs."""
    if blend in ("as strokes", strokes.blend):
        return strokes
    if blend not in ("alpha", "linear"):
        raise NodeError(f"blend must be 'as strokes', 'alpha' or 'linear', got {blend!r}")
    return dataclasses.replace(strokes, blend=blend)


class RenderStrokes:
    DESCRIPTION = ("Paints a stroke set with a neural painter: a preview of random or optimised strokes, "
                   "at the strokes' canvas size (or a multiple of it).")
    CATEGORY = PAINTING
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "coverage")
    OUTPUT_TOOLTIPS = ("The painting, one image.",
                       "How much paint covers each pixel (1: the strokes hide what is under them; 0: bare), e.g. "
                       "to composite the strokes elsewhere. Costs a second render.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "painter": (NEURAL_PAINTER, {"tooltip": "The painter that turns each action into a stroke."}),
                "strokes": (STROKES, {"tooltip": "The strokes to paint, in painting order."}),
                "scale": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 8.0, "step": 0.05,
                                    "tooltip": "Render at this multiple of the strokes' canvas size."}),
            },
            "optional": {
                "background": ("IMAGE", {"tooltip": "Optional: paint over this image (resized to the canvas) "
                                                    "instead of the strokes' own background (colour or image); a "
                                                    "batch: the strokes over each of its images."}),
            },
        }

    @user_errors("Render Strokes")
    def render(self, painter, strokes, scale=1.0, background=None):
        check_painter_matches(painter, strokes, "Render Strokes")
        backgrounds = [None] if background is None else list(image_to_bchw(background).split(1))
        out = []
        with comfy.on_compute_device(painter) as device:
            for bg in backgrounds:      # a background batch: the strokes over each of its images
                comfy.check_interrupt()
                out.append(bchw_to_image(render(painter, strokes, None if bg is None else bg.to(device),
                                                float(scale))))
            cover = coverage(painter, strokes, float(scale))
        return (torch.cat(out), cover)


class BlendCanvas:
    DESCRIPTION = ("Paints strokes over an existing image (every image of a batch) and blends the result "
                   "back with an opacity and an optional mask. The strokes are scaled to the image size.")
    CATEGORY = PAINTING
    FUNCTION = "blend"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The canvas with the strokes painted on it, same size and batch as the input.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "canvas": ("IMAGE", {"tooltip": "The image to paint on."}),
                "painter": (NEURAL_PAINTER, {"tooltip": "The painter that turns each action into a stroke."}),
                "strokes": (STROKES, {"tooltip": "The strokes to paint, in painting order; scaled to the canvas "
                                                 "(it must have the strokes' aspect ratio)."}),
                "blend": (["as strokes", "alpha", "linear"], {
                    "default": "as strokes", "tooltip": "How each stroke is laid down: the painter's alpha "
                                                        "(alpha), Nakano's darkness mask with the action colour "
                                                        "(linear), or what the strokes say."}),
                "opacity": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "Mix of the painted result over the original canvas."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: strokes only show where the mask is 1."}),
            },
        }

    @user_errors("Blend Canvas")
    def blend(self, canvas, painter, strokes, blend="as strokes", opacity=1.0, mask=None):
        check_painter_matches(painter, strokes, "Blend Canvas")
        if not 0.0 <= float(opacity) <= 1.0:   # NaN too: ComfyUI's min / max checks let it through
            raise NodeError(f"Blend Canvas: opacity must be a number in 0..1, got {opacity!r}")
        images = image_to_bchw(canvas)
        b, _, h, w = images.shape
        ch, cw = strokes.canvas_size
        factor = w / cw
        if abs(ch * factor - h) > max(1.0, 0.01 * h):
            raise NodeError(f"Blend Canvas: the canvas is {w}x{h} but the strokes were made for {cw}x{ch}; "
                            f"use an image with the same aspect ratio (e.g. {w}x{round(ch * factor)})")
        strokes = with_blend(strokes, blend)
        if strokes.canvas_size != (h, w):
            strokes = dataclasses.replace(strokes.scaled(factor), canvas_size=(h, w))
        m = mask_to_b1hw(mask, (h, w))
        out = []
        with comfy.on_compute_device(painter) as device:
            for i in range(b):
                comfy.check_interrupt()
                base = images[i:i + 1].to(device)
                painted = render(painter, strokes, base)
                mixed = base + (painted - base) * float(opacity)
                if m is not None:
                    mi = m[min(i, len(m) - 1):min(i, len(m) - 1) + 1].to(device)
                    mixed = base + (mixed - base) * mi
                out.append(bchw_to_image(mixed))
        return (torch.cat(out),)
