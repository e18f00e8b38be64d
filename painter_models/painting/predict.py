"""Predicting a painting's strokes: a stroke predictor (predictor.py) walked over the canvas coarse to fine,
every patch of a level in one batched forward pass, in a second or two where the optimiser takes minutes.

    result = predict_strokes(predictor, painter, target, 1000)   # target [1, 3, H, W] in 0..1
    result.strokes, result.canvas, result.renderer, result.levels, result.note

How:
  * Levels l = 0, 1, ...: square patches of side (longer canvas side) / 2^l, a grid of them over the canvas
    (the last row and column padded by replication). Levels are added until their K slots per patch hold
    the requested count and the patches are down to FINEST_SIDE px at 256 px (relative to the canvas
    above it); patches never go below MIN_PATCH_SIDE px, so a tiny canvas may hold fewer strokes than asked
    (the note says how many).
  * `level_counts` splits the count over the levels, doubling from one level to the next (the optimiser's
    counts go as 1 / stroke side), each capped by its slots. Within a level every proposed stroke is ranked
    by its confidence times the error of the canvas where it lands, and the best `count` are kept: the
    count is exact. They are painted slot by slot, then patch by patch (the order the network was trained
    in).
  * Between levels the canvas is painted by MyPaint where libmypaint is installed and the painter imitates
    a MyPaint brush (one surface for the whole painting: the final canvas is exactly
    rerender_mypaint(result.strokes, 1.0)), else by the neural painter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..brush.actions import get_layout, keep_inside
from ..brush.strokes import StrokeSet
from ..images import background_canvas, image_tensor, is_colour
from ..limits import BOX_CENTRE_MARGIN, MAX_NEW_STROKES
from .canvas import render
from .predictor import PredictorError, StrokePredictor, load_predictor
from .settings import PaintSettings

FINEST_SIDE = 16.0          # px at a 256 px canvas: the finest patches (their strokes are 8..32 px)
MIN_PATCH_SIDE = 4.0        # px: no finer patches, whatever the count
LEVEL_RATIO = 2.0           # strokes per level grow by this from one level to the next
FORWARD_BATCH = 1024        # patches per forward pass (bounds the network's memory on large canvases)


@dataclass
class PredictResult:
    strokes: StrokeSet
    canvas: torch.Tensor            # [1, 3, H, W] in 0..1: the painting of the strokes
    renderer: str                   # what painted it: "mypaint:<brush>" or "neural painter"
    levels: list = field(default_factory=list)   # (patch side px, strokes predicted there), coarse to fine
    note: str = ""                  # the nearest count possible when fewer were predicted; why not MyPaint


def plan_levels(n: int, k: int, canvas_size) -> list[tuple[float, int, int]]:
    """[(patch side px, rows, columns)] from one patch over the whole canvas down: enough slots (k a patch)
    for n strokes, and patches down to the finest side, never below MIN_PATCH_SIDE."""
    h, w = canvas_size
    longer = max(h, w)
    finest = max(FINEST_SIDE, FINEST_SIDE * longer / 256)
    levels, slots = [], 0
    for level in range(64):
        side = longer / 2 ** level
        rows, columns = math.ceil(h / side - 1e-6), math.ceil(w / side - 1e-6)
        levels.append((side, rows, columns))
        slots += k * rows * columns
        if (slots >= n and side / 2 < finest) or side / 2 < MIN_PATCH_SIDE:
            break
    return levels


def level_counts(n: int, slots: list[int], ratio: float = LEVEL_RATIO) -> list[int]:
    """n strokes split over levels of `slots` slots: shares growing by `ratio` a level, each capped by its
    slots (what a level cannot hold goes to the others); the counts add up to min(n, sum(slots))."""
    weights = [ratio ** level for level in range(len(slots))]
    counts, left, free = [0] * len(slots), min(n, sum(slots)), list(range(len(slots)))
    while left > 0 and free:
        total = sum(weights[i] for i in free)
        share = {i: left * weights[i] / total for i in free}
        full = [i for i in free if counts[i] + share[i] >= slots[i]]
        for i in full:
            left -= slots[i] - counts[i]
            counts[i] = slots[i]
            free.remove(i)
        if full:
            continue
        floors = {i: int(math.floor(share[i])) for i in free}
        for i in free:
            counts[i] += floors[i]
        rest = left - sum(floors.values())
        for i in sorted(free, key=lambda i: floors[i] - share[i])[:rest]:
            counts[i] += 1
        left = 0
    return counts


def grid_patches(image: torch.Tensor, side: float, rows: int, columns: int, px: int) -> torch.Tensor:
    """[rows * columns, 3, px, px]: the image (padded by replication to whole patches) cut into patches of
    `side` canvas px, each resampled to px."""
    h, w = image.shape[-2:]
    ph, pw = round(rows * side), round(columns * side)
    if (ph, pw) != (h, w):
        image = F.pad(image, (0, max(0, pw - w), 0, max(0, ph - h)), mode="replicate")[..., :ph, :pw]
    small = F.interpolate(image, size=(rows * px, columns * px), mode="bilinear", align_corners=False,
                          antialias=rows * px < ph)
    return small.view(1, 3, rows, px, columns, px).permute(0, 2, 4, 1, 3, 5).reshape(rows * columns, 3, px, px)


def box_blur(image: torch.Tensor, size: int) -> torch.Tensor:
    """A centred box filter of odd `size` with replicated edges (an integral image in float64 on the CPU: any
    size, linear time, exact enough)."""
    pad = size // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate").cpu().double()
    sums = F.pad(padded.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    window = sums[..., size:, size:] - sums[..., :-size, size:] - sums[..., size:, :-size] + sums[..., :-size, :-size]
    return (window / size ** 2).to(image.device, image.dtype)


class LevelPainter:
    """Paints each level's strokes over the canvas so far: MyPaint on one surface where it can, else the
    neural painter."""

    def __init__(self, painter, blank: StrokeSet, use_mypaint: bool, brush_seed: int):
        self.painter, self.blank, self.surface, self.note = painter, blank, None, ""
        self.renderer = "neural painter"
        if not use_mypaint:
            self.note = "real brush switched off: the painting is the neural painter's canvas"
            return
        from ..brush.mypaint import MyPaintUnavailable
        from ..brush.rerender import mypaint_brush_name, mypaint_canvas
        try:
            self.surface = mypaint_canvas(blank, brush_seed=brush_seed)
            self.renderer = f"mypaint:{mypaint_brush_name(blank.brush)}"
        except (MyPaintUnavailable, ValueError) as e:
            self.note = f"no real brush ({str(e).splitlines()[0]}): the painting is the neural painter's canvas"

    def paint(self, actions, boxes, canvas):
        """The canvas [1, 3, H, W] with these strokes painted over it."""
        if self.surface is None:
            device = self.painter.device
            return render(self.painter, actions.to(device), boxes.to(device), self.blank.canvas_size,
                          canvas.to(device)).to(canvas.device)
        from ..brush.rerender import mypaint_geometry
        level = StrokeSet(actions.cpu(), boxes.cpu(), self.blank.canvas_size, self.blank.layout, self.blank.brush)
        self.surface.paint_paths(*mypaint_geometry(self.surface, level, "of the predicted strokes",
                                                   "use fewer strokes or a smaller canvas"))
        image = torch.from_numpy(self.surface.read_rgb(dtype="float32"))
        return image.permute(2, 0, 1)[None].to(canvas.device)

    def close(self):
        if self.surface is not None:
            self.surface.close()


def level_strokes(predictor: StrokePredictor, painter, target, canvas, side: float, rows: int, columns: int,
                  count: int):
    """The `count` best strokes of one level: (actions [count, dim], boxes [count, 3] in canvas px) in
    painting order."""
    network, k = predictor.network, predictor.config.k
    patches = rows * columns
    targets = grid_patches(target, side, rows, columns, predictor.config.patch)
    canvases = grid_patches(canvas, side, rows, columns, predictor.config.patch)
    outputs = [network(targets[i:i + FORWARD_BATCH], canvases[i:i + FORWARD_BATCH])
               for i in range(0, patches, FORWARD_BATCH)]
    actions, boxes, confidence = (torch.cat(parts) for parts in zip(*outputs))
    actions = keep_inside(predictor.layout, actions.reshape(-1, actions.shape[-1]), painter.reach)
    row = torch.arange(rows, device=boxes.device).repeat_interleave(columns).float()[:, None]
    column = torch.arange(columns, device=boxes.device).repeat(rows).float()[:, None]
    boxes = torch.stack([(column + boxes[..., 0]) * side, (row + boxes[..., 1]) * side, boxes[..., 2] * side],
                        -1).reshape(-1, 3)
    h, w = target.shape[-2:]
    # a box centre a StrokeSet accepts (patches on the edge reach past the canvas)
    boxes[:, 0].clamp_(-BOX_CENTRE_MARGIN * w, (1 + BOX_CENTRE_MARGIN) * w)
    boxes[:, 1].clamp_(-BOX_CENTRE_MARGIN * h, (1 + BOX_CENTRE_MARGIN) * h)
    score = confidence.flatten() * _error_where(target, canvas, boxes, side)
    keep = torch.topk(score, min(count, score.numel())).indices
    keep = keep[torch.argsort((keep % k) * patches + keep // k)]          # slot by slot, then patch by patch
    return actions[keep], boxes[keep]


def _error_where(target, canvas, boxes, side: float) -> torch.Tensor:
    """The canvas's error (mean absolute, blurred over half a patch) at each box centre."""
    h, w = target.shape[-2:]
    error = box_blur((target - canvas).abs().mean(1, keepdim=True), max(1, int(side // 2) | 1))
    grid = torch.stack([boxes[:, 0] / w * 2 - 1, boxes[:, 1] / h * 2 - 1], -1).view(1, -1, 1, 2)
    return F.grid_sample(error, grid, align_corners=False, padding_mode="border").flatten()


@torch.no_grad()
def predict_strokes(predictor: StrokePredictor, painter, target: torch.Tensor, strokes: int, *, backdrop=None,
                    use_mypaint: bool = True, brush_seed: int = 0, progress=None) -> PredictResult:
    """`strokes` strokes for `target` [1, 3, H, W] in 0..1 (the canvas is its size), painted over `backdrop`
    (an RGB colour or an image; default white). use_mypaint: paint between levels with MyPaint where it can.
    progress(levels done, levels, canvas) after every level (raise in it to cancel)."""
    predictor.check_fits(painter)
    if not 1 <= strokes <= MAX_NEW_STROKES:
        raise ValueError(f"strokes must be 1..{MAX_NEW_STROKES} to predict, got {strokes}")
    target = target.to(predictor.device, torch.float32)
    size = tuple(target.shape[-2:])
    levels = plan_levels(strokes, predictor.config.k, size)
    counts = level_counts(strokes, [predictor.config.k * rows * columns for _, rows, columns in levels])
    blank = _blank(predictor, painter, size, backdrop)
    canvas = background_canvas(blank.backdrop, size, predictor.device)
    level_painter, chosen = LevelPainter(painter, blank, use_mypaint, brush_seed), []
    try:
        for done, ((side, rows, columns), count) in enumerate(zip(levels, counts), 1):
            if count:
                actions, boxes = level_strokes(predictor, painter, target, canvas, side, rows, columns, count)
                chosen.append((side, actions, boxes))
                canvas = level_painter.paint(actions, boxes, canvas)
            if progress is not None:
                progress(done, len(levels), canvas)
    finally:
        level_painter.close()
    predicted = StrokeSet(torch.cat([a for _, a, _ in chosen]).cpu(), torch.cat([b for _, _, b in chosen]).cpu(),
                          size, blank.layout, blank.brush, blank.background, "alpha",
                          {"predictor": predictor.name, "brush_seed": brush_seed}, blank.background_image)
    note = "; ".join(filter(None, [shortfall(strokes, len(predicted), size), level_painter.note]))
    return PredictResult(predicted, canvas, level_painter.renderer, [(side, len(a)) for side, a, _ in chosen], note)


def _blank(predictor, painter, size, backdrop) -> StrokeSet:
    """No strokes yet: the canvas, brush, layout and backdrop the predicted strokes will have."""
    chosen = (1.0, 1.0, 1.0) if backdrop is None else backdrop
    if is_colour(chosen):
        colour, image = tuple(float(c) for c in np.asarray(chosen, np.float64).reshape(-1)), None
    else:
        colour, image = (1.0, 1.0, 1.0), background_canvas(chosen, size)[0].cpu()
    layout = get_layout(predictor.layout)
    return StrokeSet(torch.zeros(0, layout.dim), torch.zeros(0, 3), size, layout, painter.brush, colour,
                     background_image=image)


def shortfall(asked: int, got: int, size) -> str:
    """What to say when a canvas holds fewer predicted strokes than asked ("" when it holds them all)."""
    if got >= asked:
        return ""
    h, w = size
    return (f"{asked} strokes asked for, but at most {got} fit a {w}x{h} canvas (patches of at least "
            f"{MIN_PATCH_SIDE:g} px): predicted {got}")


# ----------------------------------------------------------------------------------------------
# a painting that starts from predicted strokes (the init setting "predict")


def start_from_prediction(painter, canvas_size, settings: PaintSettings, target, backdrop=None, predictor=None,
                          progress=None):
    """(the prediction, the settings that refine it) for paint() with init="predict": settings.strokes strokes
    predicted for `target` (fitted to the canvas as the optimiser fits it) over the backdrop, painted between
    levels as the settings paint (real_brush, brush_seed); the refinement optimises all of them (strokes 0:
    within their own range of sizes, unless the settings set one). predictor: a StrokePredictor, a file, or None
    for the shipped one that fits the painter. progress: as predict_strokes'."""
    from ..objectives.image_ops import fit_to
    if target is None:
        raise ValueError("init=predict predicts the strokes from a photograph, and there is none: paint a "
                         "photograph, or start a text or class painting with init=seed")
    predictor = predictor_for(painter, predictor)
    target = fit_to(image_tensor(target).to(predictor.device), *canvas_size)
    chosen = settings.background_colour if backdrop is None else backdrop
    prediction = predict_strokes(predictor, painter, target, settings.strokes, backdrop=chosen,
                                 use_mypaint=settings.real_brush, brush_seed=settings.brush_seed, progress=progress)
    return prediction, settings.replace(init="seed", strokes=0)


def predictor_for(painter, predictor) -> StrokePredictor:
    """A StrokePredictor from one, a file, or (None) the shipped predictor for the painter's brush."""
    if isinstance(predictor, StrokePredictor):
        return predictor
    if predictor is not None:
        return load_predictor(str(predictor))
    from ..painter.shipped import find_predictor, shipped_predictors
    path = find_predictor(painter)
    if path is None:
        shipped = ", ".join(shipped_predictors()) or "none"
        raise PredictorError(f"no stroke predictor is shipped for this painter's brush {painter.brush!r} (shipped: "
                             f"{shipped}): paint with init=seed, or train one (neural-painters-train predictor "
                             f"--painter ... --out predictor.safetensors) and pass it as the predictor")
    return load_predictor(path)
