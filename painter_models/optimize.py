"""Painting by optimising strokes through a frozen neural painter.

API (stable; the ComfyUI nodes and the CLI wrap it):

    from painter_models.optimize import paint, PaintResult, StopPainting
    result = paint(
        painter,                    # NeuralPainter (load_painter), Generator, RasterProgram, ...
        objective,                  # callable canvas [1, 3, H, W] in 0..1 -> scalar loss (losses.combine(...), ...)
        canvas_size,                # (H, W) or an int for a square canvas
        strokes=200,                # number of NEW strokes (added in `rounds`, on top of `init`)
        rounds=4,                   # coarse-to-fine rounds: stroke size goes max_size -> min_size
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
        target_for_seeding=None,    # image whose error map places new strokes (default: found in the objective)
        keep_training=False,        # False: earlier rounds are frozen (fast); True: all strokes keep training
        polish_steps=0,             # after the rounds, this many more steps with every stroke trainable
        optimize_boxes=True,        # positions and scales are optimised too (scale clamped to [min_size, max_size])
        callback=None,              # callback(PaintProgress) each step; return True (or raise StopPainting) to stop
        preview_every=0,            # put the current canvas in PaintProgress.preview every k steps
        snapshot_every=0,           # keep (step, canvas) in result.snapshots every k steps (and at round ends)
        device=None,                # default: the painter's device
    ) -> PaintResult(strokes: StrokeSet, canvas: Tensor [1, 3, H, W], history: list[dict],
                     snapshots: list[(step, Tensor)], cancelled: bool, seconds: float)

How it paints:
  * Parameters are raw logits; actions = sigmoid(logits) (gradients stay alive at the edges).
    Boxes are parametrised relative to their seed box: centre = seed + side0 * d, side = side0 * exp(s),
    projected after each step so the centre stays on the canvas and side in [min_size, max_size].
  * Palette: each stroke has logits over the palette entries; the forward pass uses the argmax
    colour exactly (the canvas is always painted in palette colours) and the gradient flows through
    the softmax (straight-through). Greyscale: one grey level per stroke (R = G = B).
  * Rounds: stroke sizes fall geometrically from max_size to min_size, more strokes in finer rounds.
    New strokes are seeded where the error is largest: the blurred |canvas - target| when a target
    image is known (PixelLoss / FeatureLoss inside the objective, or target_for_seeding), else the
    blurred magnitude of the loss gradient on the canvas. Their colour starts at the target's local
    colour. Frozen earlier rounds are rendered once into the background of the next round.
  * Adam with a cosine schedule per round (lr -> lr * min_lr_ratio); the best parameters of each
    round (lowest loss) are kept.
  * Cancellation: the callback returns True or raises StopPainting -> paint returns the best result so
    far with cancelled=True. Any other exception from the callback (e.g. ComfyUI's interrupt)
    propagates with the best result so far attached as `exception.paint_result`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .actions import get_layout
from .canvas import background_canvas, fast_painter, render
from .strokes import MAX_CANVAS, StrokeSet

__all__ = ["paint", "PaintResult", "PaintProgress", "StopPainting", "round_plan", "default_sizes",
           "image_objective", "find_target"]

MAX_STROKES = 100_000
LOGIT_LIMIT = 6.0


class StopPainting(Exception):
    """Raise from a paint() callback to stop; paint() returns the best result so far."""


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
    canvas: torch.Tensor            # [1, 3, H, W] in 0..1 (detached)
    history: list = field(default_factory=list)      # per step: step, round, loss, terms, lr, n_strokes
    snapshots: list = field(default_factory=list)    # (step, canvas [1, 3, H, W] on the CPU)
    cancelled: bool = False
    seconds: float = 0.0


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


def find_target(objective):
    """The image a loss compares the canvas with (PixelLoss.target, FeatureLoss.image), if any."""
    seen = set()
    stack = [objective]
    while stack:
        o = stack.pop(0)
        if o is None or id(o) in seen:
            continue
        seen.add(id(o))
        name = type(o).__name__
        if name == "PixelLoss" and isinstance(getattr(o, "target", None), torch.Tensor):
            return o.target
        if name == "FeatureLoss" and isinstance(getattr(o, "image", None), torch.Tensor):
            return o.image
        terms = getattr(o, "terms", None)
        if terms is not None:
            try:
                stack.extend(list(terms))
            except TypeError:
                pass
    return None


def image_objective(image, pixel: float = 1.0, feature: float = 0.0, backbone="efficientnet_lite0",
                    pixel_kind: str = "l2", blur_sigma: float = 0.0, mask=None):
    """The usual objective for painting a photograph: pixel distance plus (optionally) a feature loss."""
    from .losses import FeatureLoss, PixelLoss, combine
    terms = []
    if pixel:
        terms.append((pixel, PixelLoss(image, kind=pixel_kind, blur_sigma=blur_sigma, mask=mask)))
    if feature:
        terms.append((feature, FeatureLoss(image, backbone=backbone, mask=mask)))
    if not terms:
        raise ValueError("image_objective needs a positive pixel or feature weight")
    return combine(terms)


# ----------------------------------------------------------------------------------------------
# parameters


class _Params:
    """Trainable strokes of one round (or the init strokes)."""

    def __init__(self, actions, boxes, palette_logits=None, trainable=True):
        a = actions.clamp(1e-3, 1 - 1e-3)
        self.logits = torch.logit(a).clamp(-LOGIT_LIMIT, LOGIT_LIMIT).clone().requires_grad_(trainable)
        self.box0 = boxes.clone()
        self.d = torch.zeros(len(boxes), 2, device=boxes.device, requires_grad=trainable)
        self.s = torch.zeros(len(boxes), 1, device=boxes.device, requires_grad=trainable)
        self.pal = None if palette_logits is None else palette_logits.clone().requires_grad_(trainable)

    def tensors(self, boxes: bool = True):
        t = [self.logits] + ([self.d, self.s] if boxes else []) + ([self.pal] if self.pal is not None else [])
        return t

    def state(self):
        return [t.detach().clone() for t in self.tensors()]

    def load(self, state):
        with torch.no_grad():
            for t, s in zip(self.tensors(), state):
                t.copy_(s)

    def __len__(self):
        return len(self.box0)


class _Painting:
    """Materialises parameters into actions and boxes under the user's constraints."""

    def __init__(self, layout, canvas_size, min_size, max_size, palette, greyscale, opaque):
        self.layout = layout
        self.h, self.w = canvas_size
        self.min_size, self.max_size = float(min_size), float(max_size)
        self.palette = palette
        self.greyscale = greyscale
        self.opaque = opaque
        self.rgb = layout.indices("red", "green", "blue")
        self.pressure = layout.indices("entry_pressure", "exit_pressure")

    def actions(self, p: _Params) -> torch.Tensor:
        a = torch.sigmoid(p.logits)
        cols = list(range(a.shape[1]))
        replace = {}
        if self.palette is not None:
            probs = torch.softmax(p.pal, -1)
            hard = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
            rgb = (hard + probs - probs.detach()) @ self.palette
            replace.update(zip(self.rgb, rgb.unbind(1)))
        elif self.greyscale:
            g = a[:, self.rgb[0]]
            replace.update({i: g for i in self.rgb})
        if self.opaque:
            one = torch.ones_like(a[:, 0])
            replace.update({i: one for i in self.pressure})
        if not replace:
            return a
        return torch.stack([replace.get(i, a[:, i]) for i in cols], 1)

    def boxes(self, p: _Params) -> torch.Tensor:
        b0 = p.box0
        side0 = b0[:, 2:3]
        centre = b0[:, :2] + side0 * p.d
        side = side0 * torch.exp(p.s)
        return torch.cat([centre, side], 1)

    @torch.no_grad()
    def project(self, p: _Params):
        side0 = p.box0[:, 2:3]
        p.s.clamp_(min=torch.log(self.min_size / side0).clamp(max=0), max=torch.log(self.max_size / side0).clamp(min=0))
        lo = (-p.box0[:, :2]) / side0
        hi = (torch.tensor([self.w, self.h], device=side0.device, dtype=side0.dtype) - p.box0[:, :2]) / side0
        p.d.copy_(torch.maximum(torch.minimum(p.d, hi), lo))
        p.logits.clamp_(-LOGIT_LIMIT, LOGIT_LIMIT)


# ----------------------------------------------------------------------------------------------
# seeding


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from .losses import gaussian_blur
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
# main entry


def _canvas_size(canvas_size):
    if isinstance(canvas_size, int):
        canvas_size = (canvas_size, canvas_size)
    h, w = int(canvas_size[0]), int(canvas_size[1])
    if not (8 <= h <= MAX_CANVAS and 8 <= w <= MAX_CANVAS):
        raise ValueError(f"canvas size {w}x{h} is out of range: width and height must be 8..{MAX_CANVAS} px")
    return h, w


def paint(painter, objective, canvas_size, strokes: int = 200, rounds: int = 4, steps: int = 300,
          lr: float = 0.2, min_size: float | None = None, max_size: float | None = None, palette=None,
          greyscale: bool = False, opaque: bool = False, blend: str = "alpha", background=(1.0, 1.0, 1.0),
          seed: int = 0, init: StrokeSet | None = None, target_for_seeding=None, keep_training: bool = False,
          optimize_boxes: bool = True, box_lr_scale: float = 0.3, min_lr_ratio: float = 0.05,
          polish_steps: int = 0,
          callback=None, preview_every: int = 0, snapshot_every: int = 0, device=None,
          render_options: dict | None = None) -> PaintResult:
    """Paint by optimising strokes through `painter` to minimise `objective` (see the module docs).

    Gradients are switched on inside, so it can be called under torch.no_grad() (as ComfyUI runs nodes)."""
    with torch.enable_grad():
        return _paint(**locals())


def _paint(painter, objective, canvas_size, strokes, rounds, steps, lr, min_size, max_size, palette, greyscale,
           opaque, blend, background, seed, init, target_for_seeding, keep_training, optimize_boxes, box_lr_scale,
           min_lr_ratio, polish_steps, callback, preview_every, snapshot_every, device, render_options):
    t0 = time.perf_counter()
    if device is not None and hasattr(painter, "to"):
        painter.to(device)
    p = fast_painter(painter)
    dev = p.device
    layout = get_layout(p.layout)
    h, w = _canvas_size(canvas_size)
    strokes = int(strokes)
    if not 0 <= strokes <= MAX_STROKES:
        raise ValueError(f"strokes must be 0..{MAX_STROKES}, got {strokes}")
    if strokes == 0 and (init is None or len(init) == 0):
        raise ValueError("nothing to paint: strokes=0 and no init strokes")
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if blend not in ("alpha", "linear"):
        raise ValueError(f"blend must be 'alpha' or 'linear', got {blend!r}")
    if not callable(objective):
        raise TypeError("objective must be a callable loss(canvas) -> scalar (e.g. losses.combine(...))")
    lo, hi = default_sizes((h, w), max(1, strokes))
    min_size = float(min_size) if min_size else lo
    max_size = float(max_size) if max_size else max(hi, min_size)
    if not (1 <= min_size <= max_size):
        raise ValueError(f"stroke sizes must satisfy 1 <= min_size <= max_size, got {min_size}, {max_size}")
    ropts = dict(render_options or {})

    target = target_for_seeding if target_for_seeding is not None else find_target(objective)
    if target is not None:
        from .losses import fit_to, to_image_tensor
        target = fit_to(to_image_tensor(target).to(dev), h, w)

    pal = None
    if palette is not None and not (isinstance(palette, (list, tuple, str)) and len(palette) == 0):
        from .palette import greyscale_palette, kmeans_palette, parse_palette
        if isinstance(palette, int) and not isinstance(palette, bool):
            if target is None:
                raise ValueError("a k-means palette (palette=k) needs a target image (target_for_seeding)")
            pal = kmeans_palette(target, palette, seed=seed, greyscale=greyscale)
        else:
            pal = parse_palette(palette)
            if greyscale:
                pal = greyscale_palette(pal)
        pal = pal.to(dev)

    gen = torch.Generator().manual_seed(int(seed))
    P = _Painting(layout, (h, w), min_size, max_size, pal, greyscale, opaque)
    base = background_canvas(background, (h, w), dev)
    over_image = isinstance(background, torch.Tensor) and background.numel() > 3
    bg_colour = (1.0, 1.0, 1.0) if over_image else tuple(float(c) for c in base[0, :, 0, 0])

    def palette_logits(rgb):
        if pal is None:
            return None
        d = torch.cdist(rgb.to(dev).float(), pal.float())
        return -10.0 * d      # nearest entry first, the others within reach of a few Adam steps

    groups: list[_Params] = []
    if init is not None and len(init):
        if tuple(init.canvas_size) != (h, w):
            init = init.scaled(h / init.canvas_size[0])
        ia, ib = init.actions.to(dev).float(), init.boxes.to(dev).float()
        groups.append(_Params(ia, ib, palette_logits(ia[:, P.rgb]), trainable=keep_training or strokes == 0))

    plan = round_plan(strokes, rounds, min_size, max_size)
    if strokes == 0:
        plan = [(0, 0.0)]
    n_rounds = len(plan)
    per_round = [steps // n_rounds] * n_rounds
    for i in range(steps - sum(per_round)):
        per_round[-1 - i] += 1
    polish_steps = int(polish_steps)
    if polish_steps < 0:
        raise ValueError(f"polish_steps must be >= 0, got {polish_steps}")
    if polish_steps and strokes > 0:
        plan.append((0, 0.0))       # a last round with no new strokes: everything trains together
        per_round.append(polish_steps)
        n_rounds += 1
    total_steps = sum(per_round)

    history, snapshots = [], []
    state = {"step": 0, "cancelled": False}
    frozen_canvas = base
    train: list[_Params] = []
    best_state = None

    def trainable_groups():
        return [g for g in groups if g.logits.requires_grad]

    def materialise(gs):
        if not gs:
            return (torch.zeros(0, layout.dim, device=dev), torch.zeros(0, 3, device=dev))
        return (torch.cat([P.actions(g) for g in gs]), torch.cat([P.boxes(g) for g in gs]))

    def draw(gs, under):
        a, b = materialise(gs)
        return render(p, a, b, (h, w), under, blend=blend, layout=layout, **ropts)

    def result(cancelled):
        with torch.no_grad():
            a, b = materialise(groups)
            canvas = render(p, a, b, (h, w), base, blend=blend, layout=layout, **ropts)
        extra = {"painter": getattr(painter, "path", None), "steps": state["step"], "rounds": n_rounds,
                 "seed": seed, "min_size": min_size, "max_size": max_size, "greyscale": greyscale,
                 "opaque": opaque, "seconds": round(time.perf_counter() - t0, 3)}
        if pal is not None:
            from .palette import to_hex
            extra["palette"] = to_hex(pal)
        s = StrokeSet(a.detach().clamp(0, 1).cpu(), b.detach().cpu(), (h, w), layout,
                      getattr(painter, "brush", None) or getattr(p.fn, "brush", None) or "unknown",
                      bg_colour, blend, extra, base[0].detach().float().cpu() if over_image else None)
        return PaintResult(s, canvas.detach(), history, snapshots, cancelled, time.perf_counter() - t0)

    try:
        for r, ((count, side), n_steps) in enumerate(zip(plan, per_round)):
            # ---- seed this round's strokes where the error is largest
            if count > 0:
                with torch.no_grad():
                    current = draw(trainable_groups(), frozen_canvas)
                grad = None
                if target is None:
                    cur = current.detach().requires_grad_(True)
                    loss, _ = _evaluate(objective, cur)
                    grad = torch.autograd.grad(loss, cur)[0]
                err, f = _error_map(current, target, grad, side)
                pos = _seed_positions(err, f, count, side, gen)
                colours = theta = strength = None
                if target is not None:
                    colours = _local_colour(target, pos, side).cpu()
                    theta, strength = _orientation(target, pos, side)
                acts = _seed_actions(layout, count, colours, gen, theta, strength)
                if greyscale and pal is None:
                    from .palette import luminance
                    acts[:, P.rgb[0]] = luminance(acts[:, P.rgb]).clamp(0.02, 0.98)
                jitter = torch.exp((torch.rand(count, generator=gen) - 0.5) * 0.3)
                sides = (side * jitter).clamp(min_size, max_size)
                boxes = torch.cat([pos, sides[:, None]], 1).to(dev)
                if not keep_training:
                    # freeze everything painted so far into the background
                    with torch.no_grad():
                        frozen_canvas = current.detach()
                    for g in groups:
                        g.logits.requires_grad_(False), g.d.requires_grad_(False), g.s.requires_grad_(False)
                        if g.pal is not None:
                            g.pal.requires_grad_(False)
                groups.append(_Params(acts.to(dev), boxes, palette_logits(acts[:, P.rgb])))

            if count == 0 and r == n_rounds - 1 and polish_steps and strokes > 0:
                for g in groups:  # the polish round: every stroke trains again
                    for t in g.tensors():
                        t.requires_grad_(True)
                frozen_canvas = base
            train = trainable_groups()
            params = []
            for g in train:
                params.append({"params": [g.logits] + ([g.pal] if g.pal is not None else []), "lr": lr, "base": lr})
                if optimize_boxes:
                    params.append({"params": [g.d, g.s], "lr": lr * box_lr_scale, "base": lr * box_lr_scale})
            opt = torch.optim.Adam(params, betas=(0.9, 0.99)) if n_steps and params else None
            best_loss, best_state = math.inf, None
            n_on_canvas = sum(len(g) for g in groups)
            for i in range(n_steps):
                frac = i / max(1, n_steps - 1)
                scale = min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
                for group in opt.param_groups:
                    group["lr"] = group["base"] * scale
                canvas = draw(train, frozen_canvas)
                loss, terms = _evaluate(objective, canvas)
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"the loss became {lv} at step {state['step'] + 1}")
                if lv < best_loss:
                    best_loss, best_state = lv, [g.state() for g in train]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for g in train:
                    P.project(g)
                state["step"] += 1
                step = state["step"]
                history.append({"step": step, "round": r, "loss": lv, "terms": terms,
                                "lr": lr * scale, "n_strokes": n_on_canvas})
                if snapshot_every and step % snapshot_every == 0:
                    snapshots.append((step, canvas.detach().cpu().clone()))
                if callback is not None:
                    prev = None
                    if preview_every and (step % preview_every == 0 or step == total_steps):
                        prev = canvas.detach().clone()
                    stop = callback(PaintProgress(step, total_steps, r, n_rounds, lv, terms, n_on_canvas,
                                                  time.perf_counter() - t0, prev))
                    if stop is True:
                        raise StopPainting()
            # end of round: the last step's update is unevaluated; keep the best evaluated parameters
            # unless the final state is at least as good
            if best_state is not None and n_steps:
                with torch.no_grad():
                    final_loss = float(_evaluate(objective, draw(train, frozen_canvas))[0])
                if final_loss > best_loss:
                    for g, s in zip(train, best_state):
                        g.load(s)
            if snapshot_every:
                with torch.no_grad():
                    snapshots.append((state["step"], draw(trainable_groups(), frozen_canvas).cpu()))
    except StopPainting:
        state["cancelled"] = True
        if best_state is not None:
            for g, s in zip(train, best_state):
                g.load(s)
        return result(True)
    except BaseException as e:
        if best_state is not None:
            for g, s in zip(train, best_state):
                g.load(s)
        try:
            e.paint_result = result(True)
        except Exception:  # noqa: BLE001 - never hide the original error
            pass
        raise
    return result(False)
