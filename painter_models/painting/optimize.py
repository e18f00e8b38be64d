"""Painting by optimising strokes through a frozen neural painter.

API (stable; the ComfyUI nodes and the CLI wrap it):

    from painter_models.painting.optimize import paint, PaintResult, StopPainting
    result = paint(
        painter,                    # NeuralPainter (load_painter), Generator, RasterProgram, ...
        objective,                  # callable canvas [1, 3, H, W] in 0..1 -> scalar loss (losses.combine(...), ...)
        canvas_size,                # (H, W) or an int for a square canvas
        strokes=200,                # number of NEW strokes (added in `rounds`, on top of `init`)
        rounds=3,                   # coarse-to-fine rounds: stroke size goes max_size -> min_size
        steps=300,                  # Adam steps in all, split over the rounds
        lr=0.2,                     # learning rate of the action logits (boxes: lr * box_lr_scale)
        min_size=None, max_size=None,   # stroke box side in canvas px (None: from canvas and stroke count)
        palette=None,               # None, [K, 3] colours / hex list ("#rrggbb"), or an int k (k-means of the target)
        greyscale=False,            # grey strokes only
        opaque=False,               # full pressure (the brush's most opaque stroke)
        blend="alpha",              # "alpha" (painter alpha) or "linear" (Nakano's darkness mask)
        background=(1, 1, 1),       # RGB colour or image tensor under the strokes (an image is kept in
                                    # result.strokes.background_image at canvas size)
        seed=0,                     # everything random derives from it: same seed, same painting
        init=None,                  # a StrokeSet to continue from (kept under the new strokes)
        target_for_seeding=None,    # image whose error map places new strokes (losses.target_image(objective))
        keep_training=False,        # False: earlier rounds are frozen (fast); True: all strokes keep training
        polish_steps=0,             # after the rounds, this many more steps with every stroke trainable
        optimize_boxes=True,        # positions and scales are optimised too (scale clamped to [min_size, max_size])
        real_brush="auto",          # MyPaint in the loop (see below): "auto", True (required) or False
        time_limit=None,            # seconds: stop then with the best painting so far (result.timed_out)
        brush_seed=0,               # the real brush's random texture (as rerender.rerender_mypaint's brush_seed)
        callback=None,              # callback(PaintProgress) each step; return True (or raise StopPainting) to stop
        preview_every=0,            # put the current canvas in PaintProgress.preview every k steps
        snapshot_every=0,           # keep (step, canvas) in result.snapshots every k steps (and at round ends)
        device=None,                # default: the painter's device
    ) -> PaintResult(strokes, canvas, neural_canvas, renderer, history, snapshots, cancelled, seconds, note,
                     timed_out)

How it paints:
  * Parameters are raw logits; actions = sigmoid(logits) (gradients stay alive at the edges).
    Boxes are parametrised relative to their seed box: centre = seed + side0 * d, side = side0 * exp(s),
    projected after each step so the centre stays on the canvas and side in [min_size, max_size].
  * Palette: each stroke has logits over the palette entries; the forward pass uses the argmax
    colour exactly (the canvas is always painted in palette colours) and the gradient flows through
    the softmax (straight-through). Greyscale: one grey level per stroke (R = G = B).
  * Rounds: stroke sizes fall geometrically from max_size to min_size, more strokes in finer rounds.
    New strokes are seeded where the error is largest: the blurred |canvas - target| when a target
    image is given (target_for_seeding; losses.target_image finds a loss's photograph), else the
    blurred magnitude of the loss gradient on the canvas. Their colour starts at the target's local
    colour. Frozen earlier rounds are rendered once into the background of the next round.
  * Adam with a cosine schedule per round (lr -> lr * min_lr_ratio); the best parameters of each
    round (lowest loss) are kept.
  * The real brush: when the painter imitates a MyPaint brush and libmypaint is installed
    (real_brush="auto"), every canvas the loss sees is MyPaint's own painting of the strokes (frozen
    rounds included) and the gradient is the painter's (real_brush.straight_through). The error map
    that places new strokes is then the real brush's, and result.canvas is MyPaint's painting of the
    returned strokes: exactly what rerender.rerender_mypaint(result.strokes, 1.0) gives. Otherwise the
    painting is the painter's canvas and result.note says why.
  * Cancellation: the callback returns True or raises StopPainting -> paint returns the best result so
    far with cancelled=True; past time_limit it does the same with timed_out=True. Any other exception
    from the callback (e.g. ComfyUI's interrupt)
    propagates with the best result so far attached as `exception.paint_result`.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..brush.actions import get_layout, keep_inside
from ..images import background_canvas
from .canvas import fast_painter, render
from ..images import image_tensor
from ..limits import MAX_BOX_SIDE, MAX_STROKES, check_batch, finite_positive
from ..brush.rerender import mypaint_brush_name, rerender_mypaint
from ..brush.strokes import MAX_CANVAS, StrokeSet

__all__ = ["paint", "PaintResult", "PaintProgress", "StopPainting", "PaintingJob", "round_plan", "default_sizes",
           "image_objective"]

LOGIT_LIMIT = 6.0


class StopPainting(Exception):
    """Raise from a paint() callback to stop; paint() returns the best result so far."""


class _TimeUp(StopPainting):
    """paint()'s time_limit was reached."""


@dataclass
class PaintProgress:
    step: int                       # steps done (1-based)
    total: int                      # steps in all
    round: int                      # current round (0-based)
    rounds: int
    loss: float
    terms: dict                     # per-term (unweighted) losses when the objective reports them
    n_strokes: int                  # strokes on the canvas now
    elapsed: float                  # seconds since paint() started
    preview: torch.Tensor | None = None   # [1, 3, H, W] canvas every `preview_every` steps, else None


@dataclass
class PaintResult:
    strokes: StrokeSet
    canvas: torch.Tensor            # [1, 3, H, W] in 0..1 (detached): the painting delivered
    neural_canvas: torch.Tensor     # the neural painter's canvas of the same strokes
    renderer: str                   # what painted `canvas`: "mypaint:<brush>" or "neural painter"
    history: list = field(default_factory=list)      # per step: step, round, loss, terms, lr, n_strokes
    snapshots: list = field(default_factory=list)    # (step, canvas [1, 3, H, W] on the CPU)
    cancelled: bool = False
    seconds: float = 0.0
    note: str = ""                  # why the real brush did not paint, when it did not
    timed_out: bool = False         # stopped at time_limit (the painting so far: maybe fewer strokes)


# ----------------------------------------------------------------------------------------------
# planning


def default_sizes(canvas_size, n_strokes: int) -> tuple[float, float]:
    """(min_size, max_size) of stroke boxes in px for n strokes: a stroke covers about a tenth of
    its box, so boxes are a few times sqrt(area / n) across."""
    h, w = canvas_size
    natural = math.sqrt(h * w / max(1, n_strokes))
    lo = max(4.0, min(1.0 * natural, min(h, w)))
    hi = max(lo, min(5.0 * natural, 0.6 * min(h, w)))
    return lo, hi


def round_plan(n_strokes: int, rounds: int, min_size: float, max_size: float) -> list[tuple[int, float]]:
    """[(count, side)] per round: sides geometric from max_size to min_size, counts ~ 1 / side."""
    rounds = max(1, min(int(rounds), n_strokes)) if n_strokes > 0 else 0
    if rounds == 0:
        return []
    if rounds == 1:
        sides = [math.sqrt(min_size * max_size)]
    else:
        sides = [max_size * (min_size / max_size) ** (r / (rounds - 1)) for r in range(rounds)]
    weights = [1.0 / s for s in sides]
    total = sum(weights)
    counts = [max(1, int(n_strokes * wt / total)) for wt in weights]
    counts[-1] += n_strokes - sum(counts)
    while counts[-1] < 1:  # rounding took too many from the last round
        i = max(range(rounds - 1), key=lambda k: counts[k])
        counts[i] -= 1
        counts[-1] += 1
    return list(zip(counts, sides))


def split_steps(steps: int, rounds: int) -> list[int]:
    """`steps` split over `rounds` as evenly as possible, the remainder going to the last rounds."""
    per_round = [steps // rounds] * rounds
    for i in range(steps - sum(per_round)):
        per_round[-1 - i] += 1
    return per_round


def image_objective(image, pixel: float = 1.0, feature: float = 0.0, backbone="efficientnet_lite0",
                    pixel_kind: str = "l2", blur_sigma: float = 0.0, mask=None):
    """The usual objective for painting a photograph: pixel distance plus (optionally) a feature loss."""
    from ..objectives.losses import FeatureLoss, PixelLoss, combine
    terms = []
    if pixel:
        terms.append((pixel, PixelLoss(image, kind=pixel_kind, blur_sigma=blur_sigma, mask=mask)))
    if feature:
        terms.append((feature, FeatureLoss(image, backbone=backbone, mask=mask)))
    if not terms:
        raise ValueError("image_objective needs a positive pixel or feature weight")
    return combine(terms)


# ----------------------------------------------------------------------------------------------
# strokes as parameters


class StrokeGroup:
    """The trainable parameters of the strokes seeded together (one round, or the init strokes)."""

    def __init__(self, actions, boxes, palette_logits=None, trainable=True):
        a = actions.clamp(1e-3, 1 - 1e-3)
        self.logits = torch.logit(a).clamp(-LOGIT_LIMIT, LOGIT_LIMIT).clone().requires_grad_(trainable)
        self.box0 = boxes.clone()
        self.d = torch.zeros(len(boxes), 2, device=boxes.device, requires_grad=trainable)
        self.s = torch.zeros(len(boxes), 1, device=boxes.device, requires_grad=trainable)
        self.pal = None if palette_logits is None else palette_logits.clone().requires_grad_(trainable)

    def tensors(self):
        return [self.logits, self.d, self.s] + ([self.pal] if self.pal is not None else [])

    @property
    def trainable(self) -> bool:
        return self.logits.requires_grad

    def set_trainable(self, on: bool):
        for t in self.tensors():
            t.requires_grad_(on)

    def state(self):
        return [t.detach().clone() for t in self.tensors()]

    def load(self, state):
        with torch.no_grad():
            for t, s in zip(self.tensors(), state):
                t.copy_(s)

    def __len__(self):
        return len(self.box0)


class StrokeAdam:
    """Adam as torch.optim.Adam computes it (no weight decay; per-group "lr"), for the few stroke
    tensors of a painting. torch.optim's first step imports torch._dynamo, 2 of the 60 seconds a
    CLI painting is allowed; these tensors need only the update."""

    def __init__(self, param_groups, betas=(0.9, 0.999), eps=1e-8):
        self.param_groups, self.betas, self.eps = param_groups, betas, eps
        self.state = {}        # parameter -> [steps, first moment, second moment]

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p not in self.state:
                    self.state[p] = [0, torch.zeros_like(p), torch.zeros_like(p)]
                state = self.state[p]
                state[0] += 1
                steps, mean, square = state
                mean.lerp_(p.grad, 1 - beta1)
                square.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denominator = (square.sqrt() / math.sqrt(1 - beta2 ** steps)).add_(self.eps)
                p.addcdiv_(mean, denominator, value=-group["lr"] / (1 - beta1 ** steps))


class StrokeConstraints:
    """Turns a group's parameters into actions and boxes under the user's constraints (palette,
    greyscale, opaque, box sizes, canvas) and the brush's: a stroke stays whole in a box
    (actions.keep_inside)."""

    def __init__(self, layout, canvas_size, min_size, max_size, palette, greyscale, opaque, reach):
        self.layout, self.reach = layout, reach
        self.h, self.w = canvas_size
        self.min_size, self.max_size = float(min_size), float(max_size)
        self.palette = palette
        self.greyscale = greyscale
        self.opaque = opaque
        self.rgb = layout.indices("red", "green", "blue")
        self.pressure = layout.indices("entry_pressure", "exit_pressure")

    def actions(self, g: StrokeGroup) -> torch.Tensor:
        a = torch.sigmoid(g.logits)
        replace = {}
        if self.palette is not None:
            probs = torch.softmax(g.pal, -1)
            hard = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
            rgb = (hard + probs - probs.detach()) @ self.palette
            replace.update(zip(self.rgb, rgb.unbind(1)))
        elif self.greyscale:
            grey = a[:, self.rgb[0]]
            replace.update({i: grey for i in self.rgb})
        if self.opaque:
            one = torch.ones_like(a[:, 0])
            replace.update({i: one for i in self.pressure})
        if replace:
            a = torch.stack([replace.get(i, a[:, i]) for i in range(a.shape[1])], 1)
        return keep_inside(self.layout, a, self.reach)

    def boxes(self, g: StrokeGroup) -> torch.Tensor:
        side0 = g.box0[:, 2:3]
        centre = g.box0[:, :2] + side0 * g.d
        side = side0 * torch.exp(g.s)
        return torch.cat([centre, side], 1)

    @torch.no_grad()
    def project(self, g: StrokeGroup):
        side0 = g.box0[:, 2:3]
        g.s.clamp_(min=torch.log(self.min_size / side0).clamp(max=0), max=torch.log(self.max_size / side0).clamp(min=0))
        lo = (-g.box0[:, :2]) / side0
        hi = (torch.tensor([self.w, self.h], device=side0.device, dtype=side0.dtype) - g.box0[:, :2]) / side0
        g.d.copy_(torch.maximum(torch.minimum(g.d, hi), lo))
        g.logits.clamp_(-LOGIT_LIMIT, LOGIT_LIMIT)


# ----------------------------------------------------------------------------------------------
# seeding


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from ..objectives.losses import gaussian_blur
    return gaussian_blur(x, sigma) if sigma > 0.3 else x


def _error_map(canvas, target, grad, side, max_side=128):
    """Error map at reduced resolution [h, w] and the scale factor canvas px per map px."""
    h, w = canvas.shape[-2:]
    f = max(1.0, max(h, w) / max_side)
    size = (max(1, round(h / f)), max(1, round(w / f)))
    if target is not None:
        e = (canvas - target).abs().mean(1, keepdim=True)
    else:
        e = grad.abs().sum(1, keepdim=True)
    e = F.interpolate(e, size=size, mode="area") if f > 1 else e
    e = _blur(e, side / 4 / f)
    return e[0, 0], f


def _seed_positions(err: torch.Tensor, f: float, n: int, side: float, gen: torch.Generator):
    """n positions (canvas px) by greedy argmax with soft suppression around each pick."""
    err = err.detach().cpu().double()   # small map; the CPU (and float64) everywhere, MPS included
    hh, ww = err.shape
    ys = torch.arange(hh, dtype=err.dtype, device=err.device)[:, None]
    xs = torch.arange(ww, dtype=err.dtype, device=err.device)[None, :]
    sigma = max(0.7, side / 3 / f)
    if float(err.max()) <= 0:
        err = err + 1.0
    err = err + 1e-6 * float(err.max()) * torch.rand(err.shape, generator=gen, dtype=err.dtype).to(err.device)
    out = []
    for _ in range(n):
        i = int(err.argmax())
        y, x = divmod(i, ww)
        out.append(((x + 0.5) * f, (y + 0.5) * f))
        err.mul_(1 - 0.85 * torch.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * sigma * sigma)))
    pos = torch.tensor(out, dtype=torch.float32)
    pos += (torch.rand(pos.shape, generator=gen) - 0.5) * (side / 4)
    return pos


def _local_colour(image: torch.Tensor, pos: torch.Tensor, side: float) -> torch.Tensor:
    """Mean colour of image [1, 3, H, W] around each position (blur ~ side / 4)."""
    h, w = image.shape[-2:]
    f = max(1.0, max(h, w) / 256)
    small = F.interpolate(image, size=(max(1, round(h / f)), max(1, round(w / f))), mode="area") if f > 1 else image
    small = _blur(small, side / 5 / f)
    gx = pos[:, 0].to(image.device) / w * 2 - 1
    gy = pos[:, 1].to(image.device) / h * 2 - 1
    grid = torch.stack([gx, gy], -1)[None, :, None]
    return F.grid_sample(small, grid.to(small.dtype), align_corners=False, padding_mode="border")[0, :, :, 0].t()


def _orientation(image: torch.Tensor, pos: torch.Tensor, side: float) -> torch.Tensor | None:
    """Angle of the local edge direction (strokes follow edges), from the structure tensor."""
    g = image.mean(1, keepdim=True)
    h, w = g.shape[-2:]
    f = max(1.0, max(h, w) / 256)
    if f > 1:
        g = F.interpolate(g, size=(max(1, round(h / f)), max(1, round(w / f))), mode="area")
    gx = F.pad(g[..., :, 1:] - g[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(g[..., 1:, :] - g[..., :-1, :], (0, 0, 0, 1))
    t = torch.cat([gx * gx, gy * gy, gx * gy], 1)
    t = _blur(t, max(1.0, side / 3 / f))
    grid = torch.stack([pos[:, 0] / w * 2 - 1, pos[:, 1] / h * 2 - 1], -1).to(g.device, g.dtype)[None, :, None]
    s = F.grid_sample(t, grid, align_corners=False, padding_mode="border")[0, :, :, 0]   # [3, n]
    jxx, jyy, jxy = s
    # the gradient direction is the main eigenvector; strokes run perpendicular to it
    theta = 0.5 * torch.atan2(2 * jxy, jxx - jyy) + math.pi / 2
    strength = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-8)
    return theta.cpu(), strength.cpu()


def _seed_actions(layout, n, colours, gen, theta=None, strength=None):
    a = torch.rand(n, layout.dim, generator=gen)
    ang = torch.rand(n, generator=gen) * math.pi
    if theta is not None:
        use = (torch.rand(n, generator=gen) < strength.clamp(0, 1) * 1.5)
        ang = torch.where(use, theta.float(), ang)
    half = 0.22 + 0.12 * torch.rand(n, generator=gen)
    cx, cy = 0.5 + 0.05 * (torch.rand(n, generator=gen) - 0.5), 0.5 + 0.05 * (torch.rand(n, generator=gen) - 0.5)
    sx, sy = cx - half * torch.cos(ang), cy - half * torch.sin(ang)
    ex, ey = cx + half * torch.cos(ang), cy + half * torch.sin(ang)
    bend = 0.06 * (torch.rand(n, generator=gen) - 0.5)
    mx, my = cx - bend * torch.sin(ang), cy + bend * torch.cos(ang)
    vals = {"start_x": sx, "start_y": sy, "end_x": ex, "end_y": ey, "control_x": mx, "control_y": my,
            "size": 0.55 + 0.3 * torch.rand(n, generator=gen),
            "entry_pressure": 0.65 + 0.2 * torch.rand(n, generator=gen),
            "exit_pressure": 0.65 + 0.2 * torch.rand(n, generator=gen)}
    if colours is not None:
        vals.update(red=colours[:, 0], green=colours[:, 1], blue=colours[:, 2])
    for role, v in vals.items():
        try:
            a[:, layout.index(role)] = v.clamp(0.02, 0.98)
        except KeyError:
            pass
    return a


# ----------------------------------------------------------------------------------------------
# objective


def _evaluate(objective, canvas):
    out = objective(canvas)
    terms = {}
    if isinstance(out, tuple):
        out, terms = out[0], dict(out[1])
    elif isinstance(out, dict):
        terms = {k: v for k, v in out.items()}
        out = terms.pop("total") if "total" in terms else sum(terms.values())
    elif hasattr(objective, "last_terms"):
        try:
            terms = dict(objective.last_terms)
        except Exception:  # noqa: BLE001 - logging only
            terms = {}
    terms = {k: float(v) for k, v in terms.items()}
    return out, terms


# ----------------------------------------------------------------------------------------------
# the painting job


def _canvas_size(canvas_size):
    if isinstance(canvas_size, int):
        canvas_size = (canvas_size, canvas_size)
    h, w = int(canvas_size[0]), int(canvas_size[1])
    if not (8 <= h <= MAX_CANVAS and 8 <= w <= MAX_CANVAS):
        raise ValueError(f"canvas size {w}x{h} is out of range: width and height must be 8..{MAX_CANVAS} px")
    return h, w


def _open_real_brush(painter, real_brush, canvas_size, layout, brush_seed):
    """(RealBrush or None, note): MyPaint in the loop where the painter imitates a MyPaint brush and
    libmypaint is here; real_brush=True makes that a requirement, False switches it off."""
    if real_brush not in (True, False, "auto"):
        raise ValueError(f"real_brush must be True, False or 'auto', got {real_brush!r}")
    if real_brush is False:
        return None, "real brush switched off: the painting is the neural painter's canvas"
    from ..brush.mypaint import MyPaintUnavailable
    from ..brush.real_brush import RealBrush
    brush = getattr(painter, "brush", None)
    preset = mypaint_brush_name(brush) if brush and brush != "unknown" else None
    if preset is None:
        if real_brush is True:
            raise ValueError(f"real_brush=True needs a painter that imitates a MyPaint brush; this one imitates "
                             f"{brush!r}: load a painter trained on a MyPaint brush, or pass real_brush=False")
        return None, f"the painter imitates no MyPaint brush ({brush!r}): the painting is its own canvas"
    try:
        return RealBrush(preset, canvas_size, layout, brush_seed), ""
    except MyPaintUnavailable as e:
        if real_brush is True:
            raise
        reason = str(e).splitlines()[0]
        return None, f"no real brush ({reason}): the painting is the neural painter's canvas"


class PaintingJob:
    """One painting: plan the rounds, then per round seed strokes where the error is largest and
    optimise them; optionally polish everything together. See the module docs for the method.

    Strokes live in StrokeGroups (one per round, plus the init strokes). Groups that no longer train
    are painted once into `frozen` (the canvas under the trainable strokes): by the real brush when it
    is in the loop, else by the neural painter."""

    def __init__(self, painter, objective, canvas_size, strokes, rounds, steps, lr, min_size, max_size, palette,
                 greyscale, opaque, blend, background, seed, init, target_for_seeding, keep_training,
                 optimize_boxes, box_lr_scale, min_lr_ratio, polish_steps, real_brush, brush_seed, time_limit,
                 callback, preview_every, snapshot_every, device, render_options):
        self.t0 = time.perf_counter()
        if device is not None and hasattr(painter, "to"):
            painter.to(device)
        self.source = painter
        self.painter = fast_painter(painter)
        self.device = dev = self.painter.device
        self.layout = get_layout(self.painter.layout)
        self.size = h, w = _canvas_size(canvas_size)
        self.n_new = int(strokes)
        n_init = 0 if init is None else len(init)
        if not 0 <= self.n_new <= MAX_STROKES - n_init:
            raise ValueError(f"strokes must be 0..{MAX_STROKES - n_init} (at most {MAX_STROKES} with the "
                             f"{n_init} init strokes), got {strokes}")
        if self.n_new == 0 and n_init == 0:
            raise ValueError("nothing to paint: strokes=0 and no init strokes")
        lr = finite_positive(lr, "lr")
        self.time_limit = None if time_limit is None else finite_positive(time_limit, "time_limit")
        self.steps = int(steps)
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.polish_steps = int(polish_steps)
        if self.polish_steps < 0:
            raise ValueError(f"polish_steps must be >= 0, got {polish_steps}")
        if blend not in ("alpha", "linear"):
            raise ValueError(f"blend must be 'alpha' or 'linear', got {blend!r}")
        if not callable(objective):
            raise TypeError("objective must be a callable loss(canvas) -> scalar (e.g. losses.combine(...))")
        self.objective, self.blend = objective, blend
        lo, hi = default_sizes(self.size, max(1, self.n_new))
        min_size = float(min_size) if min_size else lo
        max_size = float(max_size) if max_size else max(hi, min_size)
        if not (1 <= min_size <= max_size):
            raise ValueError(f"stroke sizes must satisfy 1 <= min_size <= max_size, got {min_size}, {max_size}")
        if max_size > MAX_BOX_SIDE * max(h, w):
            raise ValueError(f"max_size {max_size:g} px is more than {MAX_BOX_SIDE:g}x the {w}x{h} canvas; "
                             f"use at most {MAX_BOX_SIDE * max(h, w):g}")
        self.render_options = dict(render_options or {})
        self.lr, self.box_lr_scale, self.min_lr_ratio = lr, box_lr_scale, min_lr_ratio
        self.optimize_boxes, self.keep_training, self.seed = optimize_boxes, keep_training, seed
        self.callback, self.preview_every, self.snapshot_every = callback, preview_every, snapshot_every

        target = target_for_seeding
        if target is not None:
            from ..objectives.losses import fit_to
            target = fit_to(image_tensor(target).to(dev), h, w)
        self.target = target
        self.palette = self._palette(palette, greyscale)
        self.constraints = StrokeConstraints(self.layout, self.size, min_size, max_size, self.palette, greyscale,
                                             opaque, self.painter.reach)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.backdrop = background_canvas(background, self.size, dev)
        self.over_image = isinstance(background, torch.Tensor) and background.numel() > 3
        self.background_colour = (1.0, 1.0, 1.0) if self.over_image else \
            tuple(float(c) for c in self.backdrop[0, :, 0, 0])

        self.groups: list[StrokeGroup] = []
        if init is not None and len(init):
            if tuple(init.canvas_size) != self.size:
                init = init.scaled(h / init.canvas_size[0])
            ia, ib = init.actions.to(dev).float(), init.boxes.to(dev).float()
            self.groups.append(StrokeGroup(ia, ib, self._palette_logits(ia[:, self.constraints.rgb]),
                                           trainable=keep_training or self.n_new == 0))
        self.rounds = round_plan(self.n_new, rounds, min_size, max_size)
        self.round_steps = split_steps(self.steps, max(1, len(self.rounds)))
        if self.n_new == 0:
            self.polish_steps = 0    # the init strokes train in every step already
        self.total_steps = self.steps + self.polish_steps
        if snapshot_every:   # every snapshot_every steps, plus one at the end of each round and of the polish
            check_batch((self.steps + self.polish_steps) // int(snapshot_every) + len(self.rounds) + 1, h, w,
                        "snapshots", "raise snapshot_every (0: none), or lower steps")
        self.n_rounds = max(1, len(self.rounds)) + (1 if self.polish_steps else 0)
        self.real_brush, self.note = _open_real_brush(painter, real_brush, self.size, self.layout, brush_seed)
        self.brush_seed = int(brush_seed)
        self.frozen = self.backdrop
        if self.groups and not self.groups[0].trainable:
            with torch.no_grad():    # frozen init strokes: painted once, under everything new
                self.frozen = self.canvas(self.groups, self.backdrop)
        self.step = 0
        self.history, self.snapshots = [], []
        self._training: list[StrokeGroup] = []
        self._best_state = None
        self.min_size, self.max_size, self.greyscale, self.opaque = min_size, max_size, greyscale, opaque

    # -- set-up helpers ---------------------------------------------------------------------------
    def _palette(self, palette, greyscale):
        if palette is None or (isinstance(palette, (list, tuple, str)) and len(palette) == 0):
            return None
        from .palette import greyscale_palette, kmeans_palette, parse_palette
        if isinstance(palette, int) and not isinstance(palette, bool):
            if self.target is None:
                raise ValueError("a k-means palette (palette=k) needs a target image (target_for_seeding)")
            pal = kmeans_palette(self.target, palette, seed=self.seed, greyscale=greyscale)
        else:
            pal = parse_palette(palette)
            if greyscale:
                pal = greyscale_palette(pal)
        return pal.to(self.device)

    def _palette_logits(self, rgb):
        if self.palette is None:
            return None
        distance = torch.cdist(rgb.to(self.device).float(), self.palette.float())
        return -10.0 * distance      # nearest entry first, the others within reach of a few Adam steps

    # -- canvases ---------------------------------------------------------------------------------
    def materialise(self, groups):
        if not groups:
            return (torch.zeros(0, self.layout.dim, device=self.device), torch.zeros(0, 3, device=self.device))
        c = self.constraints
        return torch.cat([c.actions(g) for g in groups]), torch.cat([c.boxes(g) for g in groups])

    def neural_canvas(self, actions, boxes, under):
        return render(self.painter, actions, boxes, self.size, under, blend=self.blend, layout=self.layout,
                      **self.render_options)

    def canvas(self, groups, under):
        """The canvas the loss sees: `groups` painted over `under`, by the real brush when it is in the
        loop (with the neural painter's gradient), else by the neural painter."""
        actions, boxes = self.materialise(groups)
        if self.real_brush is None:
            return self.neural_canvas(actions, boxes, under)
        from ..brush.real_brush import straight_through
        real = self.real_brush.start(actions, boxes, under)     # MyPaint paints while the painter renders
        return straight_through(self.neural_canvas(actions, boxes, under), real.result())

    def trainable_groups(self):
        return [g for g in self.groups if g.trainable]

    # -- phases -----------------------------------------------------------------------------------
    def run(self) -> PaintResult:
        try:
            for index, ((count, side), steps) in enumerate(zip(self.rounds, self.round_steps)):
                self.seed_round(count, side)
                self.optimise(steps, index)
            if not self.rounds:          # no new strokes: the init strokes are refined
                self.optimise(self.steps, 0)
            if self.polish_steps:
                self.polish()
        except StopPainting as stop:
            self._restore_best()
            timed_out = isinstance(stop, _TimeUp)
            return self.result(cancelled=not timed_out, timed_out=timed_out)
        except BaseException as e:
            self._restore_best()
            try:
                e.paint_result = self.result(cancelled=True)
            except Exception:  # noqa: BLE001 - never hide the original error
                pass
            raise
        finally:
            if self.real_brush is not None:
                self.real_brush.close()
        return self.result(cancelled=False)

    @torch.no_grad()
    def seed_round(self, count: int, side: float):
        """Add `count` strokes of box side ~`side` where the error of the current canvas is largest;
        unless keep_training, everything painted so far is frozen into the canvas under them."""
        current = self.canvas(self.trainable_groups(), self.frozen)
        grad = None
        if self.target is None:
            with torch.enable_grad():
                probe = current.detach().requires_grad_(True)
                loss, _ = _evaluate(self.objective, probe)
                grad = torch.autograd.grad(loss, probe)[0]
        err, f = _error_map(current, self.target, grad, side)
        gen = self.gen
        pos = _seed_positions(err, f, count, side, gen)
        colours = theta = strength = None
        if self.target is not None:
            colours = _local_colour(self.target, pos, side).cpu()
            theta, strength = _orientation(self.target, pos, side)
        actions = _seed_actions(self.layout, count, colours, gen, theta, strength)
        rgb = self.constraints.rgb
        if self.greyscale and self.palette is None:
            from .palette import luminance
            actions[:, rgb[0]] = luminance(actions[:, rgb]).clamp(0.02, 0.98)
        jitter = torch.exp((torch.rand(count, generator=gen) - 0.5) * 0.3)
        sides = (side * jitter).clamp(self.min_size, self.max_size)
        boxes = torch.cat([pos, sides[:, None]], 1).to(self.device)
        if not self.keep_training:
            self.frozen = current
            for g in self.groups:
                g.set_trainable(False)
        self.groups.append(StrokeGroup(actions.to(self.device), boxes, self._palette_logits(actions[:, rgb])))

    def polish(self):
        """Every stroke (earlier rounds and init strokes too) trains again, over the bare backdrop."""
        for g in self.groups:
            g.set_trainable(True)
        self.frozen = self.backdrop
        self.optimise(self.polish_steps, self.n_rounds - 1)

    def optimise(self, n_steps: int, round_index: int):
        """Adam on the trainable groups with a cosine schedule; keeps the round's best parameters."""
        train = self._training = self.trainable_groups()
        params = []
        for g in train:
            params.append({"params": [g.logits] + ([g.pal] if g.pal is not None else []), "lr": self.lr,
                           "base": self.lr})
            if self.optimize_boxes:
                scaled = self.lr * self.box_lr_scale
                params.append({"params": [g.d, g.s], "lr": scaled, "base": scaled})
        opt = StrokeAdam(params, betas=(0.9, 0.99)) if n_steps and params else None
        best_loss, self._best_state = math.inf, None
        n_on_canvas = sum(len(g) for g in self.groups)
        for i in range(n_steps):
            frac = i / max(1, n_steps - 1)
            scale = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
            for group in opt.param_groups:
                group["lr"] = group["base"] * scale
            canvas = self.canvas(train, self.frozen)
            loss, terms = _evaluate(self.objective, canvas)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss became {value} at step {self.step + 1}")
            if value < best_loss:
                best_loss, self._best_state = value, [g.state() for g in train]
            opt.zero_grad()
            loss.backward()
            opt.step()
            for g in train:
                self.constraints.project(g)
            self.step += 1
            self.history.append({"step": self.step, "round": round_index, "loss": value, "terms": terms,
                                 "lr": self.lr * scale, "n_strokes": n_on_canvas})
            if self.snapshot_every and self.step % self.snapshot_every == 0:
                self.snapshots.append((self.step, canvas.detach().cpu().clone()))
            self._report(canvas, value, terms, round_index, n_on_canvas)
            if self.time_limit is not None and time.perf_counter() - self.t0 >= self.time_limit:
                raise _TimeUp()
        # the last step's update is unevaluated: keep the best evaluated parameters unless the final
        # state is at least as good
        if self._best_state is not None and n_steps:
            with torch.no_grad():
                final_loss = float(_evaluate(self.objective, self.canvas(train, self.frozen))[0])
            if final_loss > best_loss:
                self._restore_best()
        self._best_state = None
        if self.snapshot_every:
            with torch.no_grad():
                self.snapshots.append((self.step, self.canvas(self.trainable_groups(), self.frozen).cpu()))

    def _report(self, canvas, loss, terms, round_index, n_on_canvas):
        if self.callback is None:
            return
        preview = None
        if self.preview_every and (self.step % self.preview_every == 0 or self.step == self.total_steps):
            preview = canvas.detach().clone()
        stop = self.callback(PaintProgress(self.step, self.total_steps, round_index, self.n_rounds, loss, terms,
                                           n_on_canvas, time.perf_counter() - self.t0, preview))
        if stop is True:
            raise StopPainting()

    def _restore_best(self):
        if self._best_state is not None:
            for g, s in zip(self._training, self._best_state):
                g.load(s)

    # -- the result -------------------------------------------------------------------------------
    @torch.no_grad()
    def result(self, cancelled: bool, timed_out: bool = False) -> PaintResult:
        actions, boxes = self.materialise(self.groups)
        neural = self.neural_canvas(actions, boxes, self.backdrop)
        painter_file = getattr(self.source, "path", None)
        extra = {"painter": os.path.basename(painter_file) if painter_file else None, "steps": self.step,
                 "rounds": self.n_rounds, "seed": self.seed, "min_size": self.min_size, "max_size": self.max_size,
                 "greyscale": self.greyscale, "opaque": self.opaque}
        if self.palette is not None:
            from .palette import to_hex
            extra["palette"] = to_hex(self.palette)
        brush = getattr(self.source, "brush", None) or getattr(self.painter.fn, "brush", None) or "unknown"
        strokes = StrokeSet(actions.detach().clamp(0, 1).cpu(), boxes.detach().cpu(), self.size, self.layout, brush,
                            self.background_colour, self.blend, extra,
                            self.backdrop[0].detach().float().cpu() if self.over_image else None)
        canvas, renderer = neural, "neural painter"
        if self.real_brush is not None:
            image = rerender_mypaint(strokes, 1.0, dtype="float32", brush_seed=self.brush_seed)
            canvas = torch.from_numpy(image).permute(2, 0, 1)[None].to(self.device)
            renderer = f"mypaint:{self.real_brush.brush}"
            extra.update(renderer=renderer, brush_seed=self.brush_seed)
        extra["seconds"] = round(time.perf_counter() - self.t0, 3)
        if timed_out:
            extra["timed_out"] = True
        return PaintResult(strokes, canvas.detach(), neural.detach(), renderer, self.history, self.snapshots,
                           cancelled, time.perf_counter() - self.t0, self.note, timed_out)


def paint(painter, objective, canvas_size, strokes: int = 200, rounds: int = 3, steps: int = 300,
          lr: float = 0.2, min_size: float | None = None, max_size: float | None = None, palette=None,
          greyscale: bool = False, opaque: bool = False, blend: str = "alpha", background=(1.0, 1.0, 1.0),
          seed: int = 0, init: StrokeSet | None = None, target_for_seeding=None, keep_training: bool = False,
          optimize_boxes: bool = True, box_lr_scale: float = 0.3, min_lr_ratio: float = 0.05,
          polish_steps: int = 0, real_brush="auto", brush_seed: int = 0, time_limit: float | None = None,
          callback=None, preview_every: int = 0, snapshot_every: int = 0, device=None,
          render_options: dict | None = None) -> PaintResult:
    """Paint by optimising strokes through `painter` to minimise `objective` (see the module docs).

    Gradients are switched on inside, so it can be called under torch.no_grad() (as ComfyUI runs nodes)."""
    with torch.enable_grad():
        job = PaintingJob(painter, objective, canvas_size, strokes, rounds, steps, lr, min_size, max_size, palette,
                          greyscale, opaque, blend, background, seed, init, target_for_seeding, keep_training,
                          optimize_boxes, box_lr_scale, min_lr_ratio, polish_steps, real_brush, brush_seed, time_limit,
                          callback, preview_every, snapshot_every, device, render_options)
        return job.run()
