"""Random strokes on a canvas of any size: Random Actions' starting sets, test and benchmark paintings."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..limits import MAX_BOX_SIDE, MAX_CANVAS, MAX_NEW_STROKES
from .actions import NAKANO, BrushReach, get_layout, keep_inside
from .strokes import StrokeSet


def random_strokes(count: int, seed: int, width: int, height: int, min_size: float, max_size: float,
                   layout=None, brush: str = "classic/dry_brush", background=(1.0, 1.0, 1.0), order: str = "coarse_to_fine",
                   blend: str = "alpha", image: torch.Tensor | None = None, reach=None,
                   made_by: str = "random_strokes"):
    """A StrokeSet of `count` uniform random actions placed in random boxes.

    Box sides are log-uniform in [min_size, max_size] canvas pixels, centres uniform over the canvas;
    "coarse_to_fine" orders them large to small (large strokes painted first). With `image`
    ([1, 3, H, W] in 0..1) each stroke takes its colour from the image at its centre. Every stroke fits
    whole in a box (actions.keep_inside, with the painter's `reach`, else an upper bound for MyPaint's brushes)."""
    layout = get_layout(layout or NAKANO)
    if not 1 <= count <= MAX_NEW_STROKES:
        raise ValueError(f"count {count} is out of range 1..{MAX_NEW_STROKES}")
    if not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
        raise ValueError(f"canvas {width}x{height} is out of range 1..{MAX_CANVAS} px")
    if not 0 < min_size <= max_size:
        raise ValueError(f"stroke size range {min_size}..{max_size} px is empty: "
                        f"min_stroke_size must be positive and at most max_stroke_size")
    largest = MAX_BOX_SIDE * max(width, height)
    if max_size > largest:
        raise ValueError(f"max_stroke_size {max_size} px is more than {largest / max(width, height):g}x "
                        f"the canvas ({width}x{height}); use at most {largest:g}")
    rng = np.random.default_rng(int(seed))
    actions = torch.from_numpy(layout.sample(count, generator=rng))
    side = np.exp(rng.uniform(math.log(min_size), math.log(max_size), count))
    cx, cy = rng.uniform(0, width, count), rng.uniform(0, height, count)
    if order == "coarse_to_fine":
        idx = np.argsort(-side, kind="stable")
        side, cx, cy, actions = side[idx], cx[idx], cy[idx], actions[torch.from_numpy(idx)]
    elif order != "random":
        raise ValueError(f"order must be 'coarse_to_fine' or 'random', got {order!r}")
    if image is not None:
        img = torch.nn.functional.interpolate(image[:1].float(), size=(height, width), mode="bilinear",
                                              align_corners=False, antialias=True)[0]
        xi = torch.from_numpy(np.clip(cx, 0, width - 1).astype(np.int64))
        yi = torch.from_numpy(np.clip(cy, 0, height - 1).astype(np.int64))
        rgb = img[:, yi, xi].T.clamp(0, 1)                                  # [count, 3]
        actions[:, layout.indices("red", "green", "blue")] = rgb.to(actions.dtype)
    boxes = torch.from_numpy(np.stack([cx, cy, side], 1)).float()
    actions = keep_inside(layout, actions, reach or BrushReach())   # strokes whole
    return StrokeSet(actions, boxes, (height, width), layout, brush, tuple(background), blend,
                                    {"made_by": made_by, "seed": int(seed)})
