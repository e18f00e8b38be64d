"""Random Actions: a starting set of strokes (random actions in random boxes) on a canvas of any size."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import painter_models
from ..painter_models import limits
from .common import (MAX_SIDE, MAX_STROKES, NEURAL_PAINTER, PAINTING, SEED_MAX, STROKES, NodeError, colour_from_hex,
                     image_to_bchw, user_errors)


def random_strokes(count: int, seed: int, width: int, height: int, min_size: float, max_size: float,
                   layout=None, brush: str = "classic/dry_brush", background=(1.0, 1.0, 1.0), order: str = "coarse_to_fine",
                   blend: str = "alpha", image: torch.Tensor | None = None, reach=None):
    """A StrokeSet of `count` uniform random actions placed in random boxes.

    Box sides are log-uniform in [min_size, max_size] canvas pixels, centres uniform over the canvas;
    "coarse_to_fine" orders them large to small (large strokes painted first). With `image`
    ([1, 3, H, W] in 0..1) each stroke takes its colour from the image at its centre. Every stroke fits
    whole in a box (actions.keep_inside, with the painter's `reach`, else an upper bound for MyPaint's brushes)."""
    layout = painter_models.get_layout(layout or painter_models.NAKANO)
    if not 1 <= count <= MAX_STROKES:
        raise NodeError(f"Random Actions: count {count} is out of range 1..{MAX_STROKES}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise NodeError(f"Random Actions: canvas {width}x{height} is out of range 1..{MAX_SIDE} px")
    if not 0 < min_size <= max_size:
        raise NodeError(f"Random Actions: stroke size range {min_size}..{max_size} px is empty: "
                        f"min_stroke_size must be positive and at most max_stroke_size")
    largest = limits.MAX_BOX_SIDE * max(width, height)
    if max_size > largest:
        raise NodeError(f"Random Actions: max_stroke_size {max_size} px is more than {largest / max(width, height):g}x "
                        f"the canvas ({width}x{height}); use at most {largest:g}")
    rng = np.random.default_rng(int(seed))
    actions = torch.from_numpy(layout.sample(count, generator=rng))
    side = np.exp(rng.uniform(math.log(min_size), math.log(max_size), count))
    cx, cy = rng.uniform(0, width, count), rng.uniform(0, height, count)
    if order == "coarse_to_fine":
        idx = np.argsort(-side, kind="stable")
        side, cx, cy, actions = side[idx], cx[idx], cy[idx], actions[torch.from_numpy(idx)]
    elif order != "random":
        raise NodeError(f"Random Actions: order must be 'coarse_to_fine' or 'random', got {order!r}")
    if image is not None:
        img = torch.nn.functional.interpolate(image[:1].float(), size=(height, width), mode="bilinear",
                                              align_corners=False, antialias=True)[0]
        xi = torch.from_numpy(np.clip(cx, 0, width - 1).astype(np.int64))
        yi = torch.from_numpy(np.clip(cy, 0, height - 1).astype(np.int64))
        rgb = img[:, yi, xi].T.clamp(0, 1)                                  # [count, 3]
        actions[:, layout.indices("red", "green", "blue")] = rgb.to(actions.dtype)
    boxes = torch.from_numpy(np.stack([cx, cy, side], 1)).float()
    actions = painter_models.keep_inside(layout, actions, reach or painter_models.BrushReach())   # strokes whole
    return painter_models.StrokeSet(actions, boxes, (height, width), layout, brush, tuple(background), blend,
                                    {"made_by": "Random Actions", "seed": int(seed)})


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
                "count": ("INT", {"default": 200, "min": 1, "max": MAX_STROKES, "step": 1,
                                  "tooltip": "Number of strokes."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True,
                                 "tooltip": "Random seed: the same seed gives the same strokes."}),
                "width": ("INT", {"default": 512, "min": 16, "max": MAX_SIDE, "step": 8,
                                  "tooltip": "Canvas width in pixels."}),
                "height": ("INT", {"default": 512, "min": 16, "max": MAX_SIDE, "step": 8,
                                   "tooltip": "Canvas height in pixels."}),
                "min_stroke_size": ("INT", {"default": 24, "min": 2, "max": 4 * MAX_SIDE, "step": 1,
                                            "tooltip": "Smallest stroke box side in canvas pixels (the square a "
                                                       "stroke is drawn in)."}),
                "max_stroke_size": ("INT", {"default": 128, "min": 2, "max": 4 * MAX_SIDE, "step": 1,
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
        colour = colour_from_hex(background, "Random Actions: background")
        images = [None] if image is None else list(image_to_bchw(image).split(1))
        return ([random_strokes(count, seed, width, height, float(min_stroke_size), float(max_stroke_size),
                                layout, brush, colour, order, blend, img,
                                painter.reach if painter is not None else None)
                 for img in images],)
