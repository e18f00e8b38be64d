"""StrokeSet: a painting as an ordered list of strokes in canvas coordinates.

Each stroke is a painter action (stroke-local, normalised to [0, 1] in its layout) plus a box:
the stroke's local square (what the painter renders at stroke_size px) is placed on the canvas
centred at (cx, cy) with side `side`, all in canvas pixels. Any canvas size, any stroke scale,
any position; the order is the painting order (first = bottom).

The strokes are painted over `background`, an RGB colour, or over `background_image` when there is
one (the colour then stays as the fallback, e.g. the SVG fill under the image).

Every StrokeSet keeps within painter_models.limits (canvas size, stroke count, box centres and
sides), so no stroke file or node input can hand a renderer geometry it cannot paint in bounded time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..images import background_canvas, is_colour, resize_hwc, to_hwc
from ..limits import MAX_CANVAS, check_geometry
from .actions import NAKANO, ActionLayout, bezier_points, get_layout


@dataclass
class StrokeSet:
    actions: torch.Tensor                 # [N, layout.dim] in [0, 1]
    boxes: torch.Tensor                   # [N, 3]: cx, cy, side in canvas pixels
    canvas_size: tuple[int, int]          # (height, width) in pixels
    layout: ActionLayout = NAKANO
    brush: str = "classic/dry_brush"      # the painting program the painter imitates
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blend: str = "alpha"                  # "alpha" or "linear"
    extra: dict = field(default_factory=dict)  # free-form provenance (painter file, loss, steps, ...)
    # An image under the strokes instead of the colour: float [3, h, w] in 0..1, normally at canvas
    # size. Kept at its own size by every copy (scaled() too): renderers stretch it to the canvas.
    background_image: torch.Tensor | None = None

    def __post_init__(self):
        self.layout = get_layout(self.layout)
        self.canvas_size = (int(self.canvas_size[0]), int(self.canvas_size[1]))
        h, w = self.canvas_size
        if not (1 <= h <= MAX_CANVAS and 1 <= w <= MAX_CANVAS):
            raise ValueError(f"canvas size {w}x{h} is out of range: width and height must be 1..{MAX_CANVAS} px")
        if self.blend not in ("alpha", "linear"):
            raise ValueError(f"blend must be 'alpha' or 'linear', got {self.blend!r}")
        self.actions = torch.as_tensor(self.actions, dtype=torch.float32)
        self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32)
        self.layout.validate(self.actions, "stroke actions")
        if self.boxes.shape != (len(self.actions), 3):
            raise ValueError(f"boxes must be [N, 3] (cx, cy, side) for {len(self.actions)} strokes, "
                             f"got {list(self.boxes.shape)}")
        check_geometry(self.boxes.detach().cpu().numpy(), self.canvas_size)
        if self.background_image is not None:
            self.background_image = _check_background_image(self.background_image)

    @property
    def backdrop(self):
        """What the strokes are painted over: the background image if there is one, else the colour."""
        return self.background if self.background_image is None else self.background_image

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, index) -> "StrokeSet":
        """A subset in painting order, e.g. strokes[:k] for the first k strokes of a time-lapse."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return StrokeSet(self.actions[index], self.boxes[index], self.canvas_size, self.layout, self.brush,
                         self.background, self.blend, dict(self.extra), self.background_image)

    def to(self, device) -> "StrokeSet":
        image = None if self.background_image is None else self.background_image.to(device)
        return StrokeSet(self.actions.to(device), self.boxes.to(device), self.canvas_size, self.layout,
                         self.brush, self.background, self.blend, dict(self.extra), image)

    def cpu(self) -> "StrokeSet":
        """The same strokes as detached CPU tensors (what files, SVGs and MyPaint are made from)."""
        image = None if self.background_image is None else self.background_image.detach().cpu()
        return StrokeSet(self.actions.detach().cpu(), self.boxes.detach().cpu(), self.canvas_size, self.layout,
                         self.brush, self.background, self.blend, dict(self.extra), image)

    def cat(self, other: "StrokeSet") -> "StrokeSet":
        if other.canvas_size != self.canvas_size or other.layout.to_dict() != self.layout.to_dict():
            raise ValueError("can only join stroke sets with the same canvas size and layout")
        return StrokeSet(torch.cat([self.actions, other.actions.to(self.actions.device)]),
                         torch.cat([self.boxes, other.boxes.to(self.boxes.device)]), self.canvas_size,
                         self.layout, self.brush, self.background, self.blend, dict(self.extra), self.background_image)

    def scaled(self, factor: float) -> "StrokeSet":
        """The same painting on a canvas `factor` times larger (for re-rendering at any scale).
        A background image is kept as it is (no resampling here): renderers stretch it to the canvas."""
        h, w = self.canvas_size
        return StrokeSet(self.actions, self.boxes * factor, (round(h * factor), round(w * factor)), self.layout,
                         self.brush, self.background, self.blend, dict(self.extra), self.background_image)

    def geometry(self, n_points: int = 100) -> dict[str, torch.Tensor]:
        """Each stroke in canvas pixels: Bezier points (start, through-point, end, true control point),
        the sampled path [N, n_points, 2], entry/exit pressure, MyPaint log radius and RGB colour.

        The log radius is what MyPaint's radius_logarithmic takes at this canvas scale: the layout's
        size is defined for a 64 px stroke box, so ln(side / 64) is added."""
        lay, a, b = self.layout, self.actions.double(), self.boxes.double()
        cx, cy, side = b[:, 0:1], b[:, 1:2], b[:, 2:3]

        def to_canvas(xr, yr):
            return torch.stack([cx + (a[:, lay.index(xr)][:, None] - 0.5) * side,
                                cy + (a[:, lay.index(yr)][:, None] - 0.5) * side], -1)[:, 0]

        start, through, end = to_canvas("start_x", "start_y"), to_canvas("control_x", "control_y"), to_canvas("end_x", "end_y")
        x, y, pressure = bezier_points(lay, a, n_points)
        path = torch.stack([cx + (x - 0.5) * side, cy + (y - 0.5) * side], -1)
        return {
            "start": start, "through": through, "end": end,
            "control": 2 * through - 0.5 * (start + end),
            "path": path, "pressure": pressure,
            "entry_pressure": lay.to_physical(a, "entry_pressure"),
            "exit_pressure": lay.to_physical(a, "exit_pressure"),
            "log_radius": lay.to_physical(a, "size") + torch.log(b[:, 2] / 64.0),
            "colour": a[:, lay.indices("red", "green", "blue")],
        }


def _check_background_image(image) -> torch.Tensor:
    """A background image as float32 [3, h, w] in 0..1 (a leading batch of one is dropped)."""
    img = torch.as_tensor(image)
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3 or img.shape[0] != 3 or img.shape[1] < 1 or img.shape[2] < 1:
        raise ValueError(f"background_image must be an RGB image [3, H, W] (or [1, 3, H, W]) in 0..1, got shape "
                         f"{list(img.shape)}; a ComfyUI IMAGE [1, H, W, 3] needs .permute(0, 3, 1, 2)")
    img = img.float()
    lo, hi = torch.aminmax(img.detach())
    if not (0.0 <= float(lo) and float(hi) <= 1.0):   # also false for NaN
        raise ValueError(f"background_image values must be in 0..1, got {float(lo):g}..{float(hi):g}: "
                         f"scale it to 0..1 and clamp it (.clamp(0, 1))")
    return img


def grid_boxes(canvas_size: tuple[int, int], side: float, overlap: float = 0.25) -> torch.Tensor:
    """Centres of a grid of stroke boxes of `side` px covering the canvas (boxes overlap by `overlap`)."""
    h, w = canvas_size
    step = max(1.0, side * (1 - overlap))
    ny, nx = max(1, math.ceil((h - side) / step) + 1), max(1, math.ceil((w - side) / step) + 1)
    ys = torch.linspace(side / 2, max(side / 2, h - side / 2), ny)
    xs = torch.linspace(side / 2, max(side / 2, w - side / 2), nx)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten(), torch.full((nx * ny,), float(side))], 1)


def canvas_image(strokes: StrokeSet) -> np.ndarray | None:
    """The StrokeSet's background image stretched to its canvas, float32 [H, W, 3], with the
    resize render_canvas uses (images.background_canvas), so every output shows the same pixels."""
    if strokes.background_image is None:
        return None
    img = background_canvas(strokes.background_image.detach().float().cpu(), strokes.canvas_size)
    return img[0].permute(1, 2, 0).numpy()


def own_backdrop(background, strokes: StrokeSet):
    """`background` if one is given, else the StrokeSet's: its image (HWC at canvas size) or its colour."""
    if background is not None:
        return background
    image = canvas_image(strokes)
    return strokes.background if image is None else image


def backdrop_image(background, strokes: StrokeSet) -> np.ndarray:
    """What strokes are painted over, as a float32 [H, W, 3] image at their canvas size: `background`
    (a colour or an image, resized) or, when None, the StrokeSet's own backdrop."""
    h, w = strokes.canvas_size
    bg = own_backdrop(background, strokes)
    if is_colour(bg):
        return np.broadcast_to(np.asarray(bg, np.float32), (h, w, 3)).copy()
    img = to_hwc(bg)
    if img.shape[:2] != (h, w):
        img = resize_hwc(img, w, h)
    return img
