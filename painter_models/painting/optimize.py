"""Painting by optimising strokes through a frozen neural painter.

API (the ComfyUI nodes and the CLI wrap it):

    from painter_models.painting.optimize import paint, PaintResult, StopPainting
    result = paint(
        painter,                    # NeuralPainter (load_painter), Generator, RasterProgram, ...
        objective,                  # callable canvas [1, 3, H, W] in 0..1 -> scalar loss (losses.combine(...), ...)
        canvas_size,                # (H, W) or an int for a square canvas
        settings=None,              # a PaintSettings (settings.py: strokes, rounds, steps, sizes, palette, ...)
        init=None,                  # a StrokeSet to continue from (kept under the new strokes), or "predict":
                                    # the init setting (a stroke predictor proposes the strokes, the steps refine them)
        target_for_seeding=None,    # image whose error map places new strokes (losses.target_image(objective))
        backdrop=None,              # what the strokes are painted over when not settings.background: an RGB
                                    # colour or an image tensor (kept in result.strokes.background_image)
        require_real_brush=False,   # True: refuse to paint without MyPaint in the loop
        callback=None,              # callback(PaintProgress) each step; return True (or raise StopPainting) to stop
        preview_every=0,            # put the current canvas in PaintProgress.preview every k steps
        device=None,                # default: the painter's device
        predictor=None,             # init "predict": a StrokePredictor or its file (default: the shipped one that fits)
        **changes,                  # settings by name: paint(..., strokes=500) is settings.replace(strokes=500)
    ) -> PaintResult(strokes, canvas, neural_canvas, renderer, history, snapshots, cancelled, seconds, note,
                     timed_out)

How it paints:
  * Parameters are raw logits; actions = sigmoid(logits) (gradients stay alive at the edges).
    Boxes are parametrised relative to their seed box: centre = seed + side0 * d, side = side0 * exp(s),
    projected after each step so the centre stays on the canvas and side in [min, max] stroke size.
  * Palette: each stroke has logits over the palette entries; the forward pass uses the argmax
    colour exactly (the canvas is always painted in palette colours) and the gradient flows through
    the softmax (straight-through). Greyscale: one grey level per stroke (R = G = B).
  * Rounds: stroke sizes fall geometrically from the largest to the smallest, more strokes in finer
    rounds (settings.round_plan). New strokes start where the error is largest (seeding.py). Frozen
    earlier rounds are rendered once into the background of the next round.
  * Adam with a cosine schedule per round (learning_rate -> learning_rate * min_lr_ratio); the best
    parameters of each round (lowest loss) are kept.
  * The real brush: when the painter imitates a MyPaint brush, libmypaint is installed and
    settings.real_brush is on, every canvas the loss sees is MyPaint's own painting of the strokes (frozen
    rounds included) and the gradient is the painter's (real_brush.straight_through). The error map
    that places new strokes is then the real brush's, and result.canvas is MyPaint's painting of the
    returned strokes: exactly what rerender.rerender_mypaint(result.strokes, 1.0) gives. Otherwise the
    painting is the painter's canvas and result.note says why.
  * Cancellation: the callback returns True or raises StopPainting -> paint returns the best result so
    far with cancelled=True; past settings.time_limit it does the same with timed_out=True. Any other
    exception from the callback (e.g. ComfyUI's interrupt) propagates with the best result so far
    attached as `exception.paint_result`.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..brush.actions import get_layout, keep_inside
from ..brush.rerender import mypaint_brush_name, rerender_mypaint
from ..brush.strokes import StrokeSet
from ..images import background_canvas, image_tensor
from ..limits import MAX_CANVAS, MAX_STROKES, check_batch
from . import seeding
from .canvas import fast_painter, render
from .predict import shortfall, start_from_prediction
from .settings import PaintSettings, round_plan, split_steps, stroke_sizes

__all__ = ["paint", "PaintResult", "PaintProgress", "StopPainting", "PaintingJob"]

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
# strokes as parameters


class StrokeGroup:
    """The trainable parameters of the strokes seeded together (one round, or the init strokes)."""

    def __init__(self, actions, boxes, palette_logits=None, trainable=True, rates=None, given=False):
        self.rates = rates           # [N, 1] per-stroke factors of the learning rates, or None (all 1)
        self.given = given           # init strokes: a centre beyond the canvas may stay there (see project)
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
                rows = group.get("rows")       # per-stroke factors [N, 1] of the learning rate
                p.addcdiv_(mean if rows is None else mean * rows, denominator,
                           value=-group["lr"] / (1 - beta1 ** steps))


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
        if g.given:   # centres stay on the canvas, but a given stroke beyond it (a clip's, leaving the picture)
            lo, hi = lo.clamp(max=0), hi.clamp(min=0)     # may stay where it is, not go further out
        g.d.copy_(torch.maximum(torch.minimum(g.d, hi), lo))
        g.logits.clamp_(-LOGIT_LIMIT, LOGIT_LIMIT)


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


def _canvas_size(canvas_size) -> tuple[int, int]:
    if isinstance(canvas_size, int):
        canvas_size = (canvas_size, canvas_size)
    h, w = int(canvas_size[0]), int(canvas_size[1])
    if not (8 <= h <= MAX_CANVAS and 8 <= w <= MAX_CANVAS):
        raise ValueError(f"canvas size {w}x{h} is out of range: width and height must be 8..{MAX_CANVAS} px")
    return h, w


def _open_real_brush(painter, settings: PaintSettings, required: bool, canvas_size, layout):
    """(RealBrush or None, note): MyPaint in the loop where the painter imitates a MyPaint brush, libmypaint
    is here and settings.real_brush is on; `required` makes that a requirement."""
    if not settings.real_brush:
        if required:
            raise ValueError("require_real_brush=True with the real_brush setting off: switch one of them")
        return None, "real brush switched off: the painting is the neural painter's canvas"
    from ..brush.mypaint import MyPaintUnavailable
    from ..brush.real_brush import RealBrush
    brush = getattr(painter, "brush", None)
    preset = mypaint_brush_name(brush) if brush and brush != "unknown" else None
    if preset is None:
        if required:
            raise ValueError(f"the real brush needs a painter that imitates a MyPaint brush; this one imitates "
                             f"{brush!r}: load a painter trained on a MyPaint brush, or paint without the real brush")
        return None, f"the painter imitates no MyPaint brush ({brush!r}): the painting is its own canvas"
    try:
        return RealBrush(preset, canvas_size, layout, settings.brush_seed), ""
    except MyPaintUnavailable as e:
        if required:
            raise
        reason = str(e).splitlines()[0]
        return None, f"no real brush ({reason}): the painting is the neural painter's canvas"


class PaintingJob:
    """One painting: plan the rounds, then per round seed strokes where the error is largest and
    optimise them; optionally polish everything together. See the module docs for the method.

    Strokes live in StrokeGroups (one per round, plus the init strokes). Groups that no longer train
    are painted once into `frozen` (the canvas under the trainable strokes): by the real brush when it
    is in the loop, else by the neural painter."""

    def __init__(self, painter, objective, canvas_size, settings: PaintSettings, init=None, target=None,
                 backdrop=None, require_real_brush=False, callback=None, preview_every=0, device=None,
                 render_options=None, init_rates=None):
        self.t0 = time.perf_counter()
        if not callable(objective):
            raise TypeError("objective must be a callable loss(canvas) -> scalar (e.g. losses.combine(...))")
        if device is not None and hasattr(painter, "to"):
            painter.to(device)
        self.source, self.painter = painter, fast_painter(painter)
        self.device, self.layout = self.painter.device, get_layout(self.painter.layout)
        self.objective, self.settings = objective, settings
        self.size = _canvas_size(canvas_size)
        self.callback, self.preview_every = callback, preview_every
        self.render_options = dict(render_options or {})
        self.n_new = settings.strokes
        self._check_stroke_count(0 if init is None else len(init))
        self.min_size, self.max_size = stroke_sizes(settings, self.size, self.n_new, _init_sides(init, self.size))
        self.target = None if target is None else _fit_target(target, self.size, self.device)
        self.palette = self._palette()
        self.constraints = StrokeConstraints(self.layout, self.size, self.min_size, self.max_size, self.palette,
                                             settings.greyscale, settings.opaque, self.painter.reach)
        self.gen = torch.Generator().manual_seed(settings.seed % 2 ** 63)
        self._set_backdrop(backdrop)
        self.groups: list[StrokeGroup] = []
        if init is not None and len(init):
            self._add_init(init, init_rates)
        self._plan_steps()
        self.real_brush, self.note = _open_real_brush(painter, settings, require_real_brush, self.size, self.layout)
        self.frozen = self.backdrop
        if self.groups and not self.groups[0].trainable:
            with torch.no_grad():    # frozen init strokes: painted once, under everything new
                self.frozen = self.canvas(self.groups, self.backdrop)
        self.step = 0
        self.history, self.snapshots = [], []
        self._training: list[StrokeGroup] = []
        self._best_state = None

    # -- set-up ----------------------------------------------------------------------------------
    def _check_stroke_count(self, n_init: int):
        if self.n_new > MAX_STROKES - n_init:
            raise ValueError(f"strokes must be 0..{MAX_STROKES - n_init} (at most {MAX_STROKES} with the "
                             f"{n_init} init strokes), got {self.n_new}")
        if self.n_new == 0 and n_init == 0:
            raise ValueError("nothing to paint: strokes=0 and no init strokes")

    def _set_backdrop(self, backdrop):
        """What the strokes are painted over: `backdrop` (a colour or an image) or the settings' colour."""
        chosen = self.settings.background_colour if backdrop is None else backdrop
        self.backdrop = background_canvas(chosen, self.size, self.device)
        self.over_image = isinstance(chosen, torch.Tensor) and chosen.numel() > 3
        self.background_colour = (1.0, 1.0, 1.0) if self.over_image else \
            tuple(float(c) for c in self.backdrop[0, :, 0, 0])

    def _add_init(self, init: StrokeSet, init_rates=None):
        """The init strokes: one group under the new strokes, trainable only with keep_training (or alone)."""
        h = self.size[0]
        if tuple(init.canvas_size) != self.size:
            init = init.scaled(h / init.canvas_size[0])
        actions, boxes = init.actions.to(self.device).float(), init.boxes.to(self.device).float()
        trainable = self.settings.keep_training or self.n_new == 0
        rates = None
        if init_rates is not None:
            rates = torch.as_tensor(init_rates, dtype=torch.float32, device=self.device).reshape(-1, 1)
            if len(rates) != len(init) or not bool(torch.isfinite(rates).all() and (rates >= 0).all()):
                raise ValueError(f"init_rates must be {len(init)} finite numbers >= 0, one per init stroke")
        self.groups.append(StrokeGroup(actions, boxes, self._palette_logits(actions[:, self.constraints.rgb]),
                                       trainable=trainable, rates=rates, given=True))

    def _plan_steps(self):
        s = self.settings
        self.steps = s.steps
        self.rounds = round_plan(self.n_new, s.rounds, self.min_size, self.max_size)
        self.round_steps = split_steps(self.steps, max(1, len(self.rounds)))
        self.polish_steps = s.polish_steps if self.n_new else 0    # the init strokes train in every step already
        self.total_steps = self.steps + self.polish_steps
        self.n_rounds = max(1, len(self.rounds)) + (1 if self.polish_steps else 0)
        if s.snapshot_every:   # every snapshot_every steps, plus one at the end of each round and of the polish
            check_batch(self.total_steps // s.snapshot_every + len(self.rounds) + 1, *self.size, "snapshots",
                        "raise snapshot_every (0: none), or lower steps")

    def _palette(self):
        palette, s = self.settings.palette_value, self.settings
        if palette is None:
            return None
        from .palette import greyscale_palette, kmeans_palette
        if isinstance(palette, int):
            if self.target is None:
                raise ValueError("a k-means palette (palette=k) needs a target image (target_for_seeding)")
            return kmeans_palette(self.target, palette, seed=s.seed, greyscale=s.greyscale).to(self.device)
        return (greyscale_palette(palette) if s.greyscale else palette).to(self.device)

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
        return render(self.painter, actions, boxes, self.size, under, blend=self.settings.blend, layout=self.layout,
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
        err, f = seeding.error_map(current, self.target, grad, side)
        gen = self.gen
        pos = seeding.seed_positions(err, f, count, side, gen)
        colours = theta = strength = None
        if self.target is not None:
            colours = seeding.local_colour(self.target, pos, side).cpu()
            theta, strength = seeding.orientation(self.target, pos, side)
        actions = seeding.seed_actions(self.layout, count, colours, gen, theta, strength)
        rgb = self.constraints.rgb
        if self.settings.greyscale and self.palette is None:
            from .palette import luminance
            actions[:, rgb[0]] = luminance(actions[:, rgb]).clamp(0.02, 0.98)
        jitter = torch.exp((torch.rand(count, generator=gen) - 0.5) * 0.3)
        sides = (side * jitter).clamp(self.min_size, self.max_size)
        boxes = torch.cat([pos, sides[:, None]], 1).to(self.device)
        if not self.settings.keep_training:
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
        opt = self._optimiser(train) if n_steps else None
        best_loss, self._best_state = math.inf, None
        n_on_canvas = sum(len(g) for g in self.groups)
        for i in range(n_steps):
            scale = self._lr_scale(i, n_steps)
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
                                 "lr": self.settings.learning_rate * scale, "n_strokes": n_on_canvas})
            self._after_step(canvas, value, terms, round_index, n_on_canvas)
        self._end_round(train, best_loss, n_steps)

    def _optimiser(self, train) -> StrokeAdam | None:
        s, params = self.settings, []
        for g in train:
            params.append({"params": [g.logits] + ([g.pal] if g.pal is not None else []),
                           "lr": s.learning_rate, "base": s.learning_rate, "rows": g.rates})
            if s.optimize_boxes:
                scaled = s.learning_rate * s.box_lr_scale
                params.append({"params": [g.d, g.s], "lr": scaled, "base": scaled, "rows": g.rates})
        return StrokeAdam(params, betas=(0.9, 0.99)) if params else None

    def _lr_scale(self, i: int, n_steps: int) -> float:
        """The cosine schedule of a round: 1 at its first step, min_lr_ratio at its last."""
        low = self.settings.min_lr_ratio
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * i / max(1, n_steps - 1)))

    def _after_step(self, canvas, loss, terms, round_index, n_on_canvas):
        every, time_limit = self.settings.snapshot_every, self.settings.time_limit
        if every and self.step % every == 0:
            self.snapshots.append((self.step, canvas.detach().cpu().clone()))
        self._report(canvas, loss, terms, round_index, n_on_canvas)
        if time_limit and time.perf_counter() - self.t0 >= time_limit:
            raise _TimeUp()

    def _end_round(self, train, best_loss, n_steps):
        # the last step's update is unevaluated: keep the best evaluated parameters unless the final
        # state is at least as good
        if self._best_state is not None and n_steps:
            with torch.no_grad():
                final_loss = float(_evaluate(self.objective, self.canvas(train, self.frozen))[0])
            if final_loss > best_loss:
                self._restore_best()
        self._best_state = None
        if self.settings.snapshot_every:
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
                 "rounds": self.n_rounds, "seed": self.settings.seed, "min_size": self.min_size,
                 "max_size": self.max_size, "greyscale": self.settings.greyscale, "opaque": self.settings.opaque}
        if self.palette is not None:
            from .palette import to_hex
            extra["palette"] = to_hex(self.palette)
        brush = getattr(self.source, "brush", None) or getattr(self.painter.fn, "brush", None) or "unknown"
        strokes = StrokeSet(actions.detach().clamp(0, 1).cpu(), boxes.detach().cpu(), self.size, self.layout, brush,
                            self.background_colour, self.settings.blend, extra,
                            self.backdrop[0].detach().float().cpu() if self.over_image else None)
        canvas, renderer = neural, "neural painter"
        if self.real_brush is not None:
            image = rerender_mypaint(strokes, 1.0, dtype="float32", brush_seed=self.settings.brush_seed)
            canvas = torch.from_numpy(image).permute(2, 0, 1)[None].to(self.device)
            renderer = f"mypaint:{self.real_brush.brush}"
            extra.update(renderer=renderer, brush_seed=self.settings.brush_seed)
        extra["seconds"] = round(time.perf_counter() - self.t0, 3)
        if timed_out:
            extra["timed_out"] = True
        return PaintResult(strokes, canvas.detach(), neural.detach(), renderer, self.history, self.snapshots,
                           cancelled, time.perf_counter() - self.t0, self.note, timed_out)




def _init_sides(init: StrokeSet | None, canvas_size) -> torch.Tensor | None:
    """The init strokes' box sides in px of this canvas (_add_init scales them to it)."""
    if init is None or not len(init):
        return None
    return init.boxes[:, 2].detach().cpu() * canvas_size[0] / init.canvas_size[0]


def _fit_target(target, canvas_size, device) -> torch.Tensor:
    from ..objectives.image_ops import fit_to
    return fit_to(image_tensor(target).to(device), *canvas_size)


def paint(painter, objective, canvas_size, settings: PaintSettings | None = None, *,
          init: StrokeSet | str | None = None, target_for_seeding=None, backdrop=None, require_real_brush: bool = False,
          callback=None, preview_every: int = 0, device=None, render_options: dict | None = None, predictor=None,
          init_rates=None, **changes) -> PaintResult:
    """Paint by optimising strokes through `painter` to minimise `objective` (see the module docs).

    With the init setting "predict" (or init="predict"), a stroke predictor (`predictor`: a StrokePredictor or
    a file; None: the shipped one for the painter) predicts settings.strokes strokes for target_for_seeding
    first, and the steps refine them all (predict.start_from_prediction).
    init_rates: one factor >= 0 per init stroke on the learning rates of the strokes that train (a clip keeps
    still the strokes where its picture did not change: painting/video.py).
    Gradients are switched on inside, so it can be called under torch.no_grad() (as ComfyUI runs nodes)."""
    settings = (settings or PaintSettings()).replace(**changes)
    if isinstance(init, str):     # the init setting by name, not strokes to continue from
        settings, init = settings.replace(init=init), None
    prediction, asked = None, settings.strokes
    if settings.init == "predict":
        if init is not None:
            raise ValueError("init=predict predicts every stroke on a bare canvas, and init strokes were given: set "
                             "init to seed to continue from them")
        prediction, settings = start_from_prediction(painter, _canvas_size(canvas_size), settings, target_for_seeding,
                                                     backdrop, predictor)
        init = prediction.strokes
    with torch.enable_grad():
        job = PaintingJob(painter, objective, canvas_size, settings, init, target_for_seeding, backdrop,
                          require_real_brush, callback, preview_every, device, render_options, init_rates)
        result = job.run()
    if prediction is not None:
        result.strokes.extra.update(init="predict", predictor=prediction.strokes.extra["predictor"],
                                    predicted_levels=[[side, n] for side, n in prediction.levels])
        result.note = "; ".join(filter(None, [shortfall(asked, len(prediction.strokes), job.size), result.note]))
    return result
