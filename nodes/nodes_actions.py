"""Random Actions: a starting set of strokes (random actions in random boxes) on a canvas of any size."""
from __future__ import annotations

from ..painter_models import limits
from ..painter_models.brush.random_strokes import random_strokes
from ..painter_models.painting.palette import PaletteError, parse_hex
from .common import NEURAL_PAINTER, PAINTING, STROKES, NodeError, image_to_bchw, user_errors


class RandomActions:
    DESCRIPTION = ("Random strokes to start a painting from: random actions (position, curve, pressure, size, "
                   "colour) placed in random boxes on a canvas of any size, large strokes first.")
    CATEGORY = PAINTING
    FUNCTION = "make"
    RETURN_TYPES = (STROKES,)
    RETURN_NAMES = ("strokes",)
    OUTPUT_IS_LIST = (True,)       # one stroke set per image of an image batch: ComfyUI maps later nodes over them
    OUTPUT_TOOLTIPS = ("The strokes (actions in canvas coordinates), ready for Optimize Actions or Render Strokes; "
                       "with an image batch, one set per image (later nodes run once per set).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "count": ("INT", {"default": 200, "min": 1, "max": limits.MAX_NEW_STROKES, "step": 1,
                                  "tooltip": "Number of strokes."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": limits.SEED_MAX, "control_after_generate": True,
                                 "tooltip": "Random seed: the same seed gives the same strokes."}),
                "width": ("INT", {"default": 512, "min": 16, "max": limits.MAX_CANVAS, "step": 8,
                                  "tooltip": "Canvas width in pixels."}),
                "height": ("INT", {"default": 512, "min": 16, "max": limits.MAX_CANVAS, "step": 8,
                                   "tooltip": "Canvas height in pixels."}),
                "min_stroke_size": ("INT", {"default": 24, "min": 2, "max": limits.MAX_BOX_SIDE * limits.MAX_CANVAS, "step": 1,
                                            "tooltip": "Smallest stroke box side in canvas pixels (the square a "
                                                       "stroke is drawn in)."}),
                "max_stroke_size": ("INT", {"default": 128, "min": 2, "max": limits.MAX_BOX_SIDE * limits.MAX_CANVAS, "step": 1,
                                            "tooltip": "Largest stroke box side in canvas pixels. Sizes are "
                                                       "spread log-uniformly between min and max."}),
                "order": (["coarse_to_fine", "random"], {"default": "coarse_to_fine",
                                                         "tooltip": "coarse_to_fine paints large strokes first "
                                                                    "(under the small ones)."}),
            },
            "optional": {
                "painter": (NEURAL_PAINTER, {"tooltip": "Optional: take the action layout and brush from this "
                                                        "painter (otherwise Nakano's 12-number MyPaint layout)."}),
                "image": ("IMAGE", {"tooltip": "Optional: colour each stroke from this image at the stroke's "
                                               "centre (a good start for image to painting); a batch gives one "
                                               "set of strokes per image."}),
                "background": ("STRING", {"default": "#ffffff", "tooltip": "Canvas colour under the strokes, "
                                                                           "#rrggbb."}),
                "blend": (["alpha", "linear"], {"default": "alpha",
                                                "tooltip": "alpha: the painter's own alpha (exact); linear: Nakano's "
                                                           "darkness mask with the action's colour."}),
            },
        }

    @user_errors("Random Actions")
    def make(self, count, seed, width, height, min_stroke_size, max_stroke_size, order="coarse_to_fine",
             painter=None, image=None, background="#ffffff", blend="alpha"):
        layout = painter.layout if painter is not None else None
        brush = painter.brush if painter is not None else "classic/dry_brush"
        try:
            colour = parse_hex(background)
        except PaletteError as e:
            raise NodeError(f"Random Actions: background: {e}") from None
        images = [None] if image is None else list(image_to_bchw(image).split(1))
        return ([random_strokes(count, seed, width, height, float(min_stroke_size), float(max_stroke_size),
                                layout, brush, colour, order, blend, img,
                                painter.reach if painter is not None else None, "Random Actions")
                 for img in images],)
