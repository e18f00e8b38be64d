"""Action layouts: what each number of a stroke's action vector means.

A layout is data (a list of fields with ranges and roles), so another stroke
parametrisation can be added without touching the painting programs' callers.
Every action is stored normalised to [0, 1]; `Field.low/high` give the physical
range it maps to, and the painting programs read fields by role, never by index.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

# Roles a painting program understands. Points are in stroke-canvas units (0..1).
ROLES = ("start_x", "start_y", "control_x", "control_y", "end_x", "end_y",
         "entry_pressure", "exit_pressure", "size", "red", "green", "blue")


@dataclass(frozen=True)
class Field:
    name: str
    role: str
    low: float = 0.0
    high: float = 1.0
    doc: str = ""


@dataclass(frozen=True)
class ActionLayout:
    name: str
    fields: tuple[Field, ...]

    def __post_init__(self):
        roles = [f.role for f in self.fields]
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or len(set(roles)) != len(roles):
            raise ValueError(f"layout {self.name!r}: roles must be unique and among {ROLES}, got {roles}")

    @property
    def dim(self) -> int:
        return len(self.fields)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def index(self, role: str) -> int:
        for i, f in enumerate(self.fields):
            if f.role == role:
                return i
        raise KeyError(f"layout {self.name!r} has no field with role {role!r}")

    def indices(self, *roles: str) -> list[int]:
        return [self.index(r) for r in roles]

    def to_physical(self, actions, role: str):
        """The physical value of one field (e.g. pressure 0..0.8) for an array or tensor of actions."""
        f = self.fields[self.index(role)]
        return f.low + actions[..., self.index(role)] * (f.high - f.low)

    def to_dict(self) -> dict:
        return {"name": self.name, "fields": [asdict(f) for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionLayout":
        return cls(d["name"], tuple(Field(**f) for f in d["fields"]))

    def sample(self, n: int, seed: int | None = None, generator: np.random.Generator | None = None) -> np.ndarray:
        """n uniform random actions in [0, 1], float32 [n, dim]."""
        rng = generator if generator is not None else np.random.default_rng(seed)
        return rng.random((n, self.dim), dtype=np.float64).astype(np.float32)

    def validate(self, actions, what: str = "actions"):
        """Raise ValueError naming the field when `actions` is not a finite [N, dim] array in [0, 1].

        Returns the input unchanged so callers can write `a = layout.validate(a)`."""
        shape = tuple(actions.shape)
        if len(shape) != 2 or shape[1] != self.dim:
            raise ValueError(f"{what} must have shape [N, {self.dim}] for the {self.name!r} layout "
                             f"({', '.join(self.names)}), got {list(shape)}")
        values = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        if values.size == 0:
            return actions
        bad_finite = ~np.isfinite(values)
        if bad_finite.any():
            row, col = np.argwhere(bad_finite)[0]
            raise ValueError(f"{what}[{row}] field {self.names[col]!r} is {values[row, col]}: actions must be finite")
        out = (values < 0) | (values > 1)
        if out.any():
            row, col = np.argwhere(out)[0]
            raise ValueError(f"{what}[{row}] field {self.names[col]!r} = {values[row, col]:.4g} is outside [0, 1]; "
                             f"actions are normalised (0..1 maps to {self.fields[col].low:g}..{self.fields[col].high:g})")
        return actions


# Nakano's MyPaint layout (reiinakano/neural-painters, generate_stroke_examples): 12 numbers in [0, 1].
NAKANO = ActionLayout("nakano12", (
    Field("pressure", "exit_pressure", 0.0, 0.8, "pressure at the stroke's end"),
    Field("size", "size", 0.0, 2.0, "MyPaint radius_logarithmic at a 64 px stroke (radius e^0..e^2 px)"),
    Field("control_x", "control_x", doc="point the curve passes through at t=0.5"),
    Field("control_y", "control_y"),
    Field("end_x", "end_x"),
    Field("end_y", "end_y"),
    Field("r", "red"),
    Field("g", "green"),
    Field("b", "blue"),
    Field("start_x", "start_x"),
    Field("start_y", "start_y"),
    Field("entry_pressure", "entry_pressure", 0.0, 0.8, "pressure at the stroke's start"),
))

LAYOUTS = {NAKANO.name: NAKANO}


def get_layout(name_or_dict) -> ActionLayout:
    if isinstance(name_or_dict, ActionLayout):
        return name_or_dict
    if isinstance(name_or_dict, dict):
        return ActionLayout.from_dict(name_or_dict)
    try:
        return LAYOUTS[name_or_dict]
    except KeyError:
        raise ValueError(f"unknown action layout {name_or_dict!r}; known: {sorted(LAYOUTS)}") from None


def bezier_points(layout: ActionLayout, actions, n_points: int):
    """Points along each stroke's quadratic Bezier (passing through the control point at t=0.5)
    and the pressure profile (entry -> mean over the first 25 %, flat, -> exit over the last 25 %).

    Works for numpy arrays and torch tensors alike; returns (x, y, pressure), each [N, n_points],
    coordinates in 0..1 stroke units, t = 1/n .. 1 (Nakano's sampling)."""
    xp = torch if isinstance(actions, torch.Tensor) else np
    sx, sy, cx, cy, ex, ey = (actions[..., i] for i in layout.indices(
        "start_x", "start_y", "control_x", "control_y", "end_x", "end_y"))
    p_in = layout.to_physical(actions, "entry_pressure")
    p_out = layout.to_physical(actions, "exit_pressure")
    if xp is torch:
        t = torch.arange(1, n_points + 1, dtype=actions.dtype, device=actions.device) / n_points
    else:
        t = np.arange(1, n_points + 1, dtype=np.float64) / n_points
    t = t[None, :]
    qx = 2 * cx - 0.5 * (sx + ex)
    qy = 2 * cy - 0.5 * (sy + ey)
    u = 1 - t
    x = u * u * sx[:, None] + 2 * u * t * qx[:, None] + t * t * ex[:, None]
    y = u * u * sy[:, None] + 2 * u * t * qy[:, None] + t * t * ey[:, None]
    p_in, p_out = p_in[:, None], p_out[:, None]
    p_mid = 0.5 * (p_in + p_out)
    head, tail = 0.25, 0.75
    pressure = xp.where(t < head, p_in + (p_mid - p_in) * t / head,
                        xp.where(t <= tail, p_mid + 0 * t, p_mid + (p_out - p_mid) * (t - tail) / (1 - tail)))
    return x, y, pressure


# ---------------------------------------------------------------------------------------------
# Strokes are never clipped by their box.
#
# A stroke's action places its path in a box (the painter's square tile); a real brush paints
# beyond the path (the dab radius, plus random dab offsets: about 4 radii for classic/dry_brush at
# full pressure). MyPaint on the canvas paints the whole stroke, but a painter learnt its 64 px
# tile, where MyPaint cut off whatever fell outside it. So before a painter renders a stroke, the
# stroke is moved into a box large enough to hold it: the same path and radius on the canvas, in a
# box k times larger (points pulled towards the centre by 1/k, log radius at 64 px lowered by
# ln k). The size field cannot go below 0, so k <= e^(size); the thinnest strokes are instead kept
# away from their box's edge by `keep_inside` (in the stored actions, so every renderer agrees).


@dataclass(frozen=True)
class BrushReach:
    """How far a brush paints from its stroke's path, in pixels of the layout's 64 px stroke box:
    base + per_radius * radius, radius = e^(log radius) at 64 px (an upper bound, measured at full
    pressure: painter_models.brush.mypaint.brush_reach)."""
    base: float = 1.5
    per_radius: float = 4.5

    def px(self, radius):
        return self.base + self.per_radius * radius

    def to_dict(self) -> dict:
        return {"base": self.base, "per_radius": self.per_radius}

    @classmethod
    def from_dict(cls, d: dict) -> "BrushReach":
        return cls(float(d["base"]), float(d["per_radius"]))


_POINTS = ("start_x", "start_y", "control_x", "control_y", "end_x", "end_y")
BOX = 64.0          # the stroke box the layout's size is defined for (see NAKANO's size field)


def _path_reach(layout: ActionLayout, actions: torch.Tensor) -> torch.Tensor:
    """How far each stroke's path goes from its box centre, in box units (0.5 = the edge): the
    farthest of start, end and the through-point, plus the 1/8 of the point spread by which a
    quadratic Bezier can overshoot them."""
    pts = actions[:, layout.indices(*_POINTS)] - 0.5
    far = pts.abs().amax(1)
    spread = torch.stack([pts[:, 0::2].amax(1) - pts[:, 0::2].amin(1), pts[:, 1::2].amax(1) - pts[:, 1::2].amin(1)],
                         1).amax(1)
    return far + spread / 8


def _radius(layout: ActionLayout, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(radius at 64 px, the most a box can grow: the factor that brings the size field to 0)."""
    log_radius = layout.to_physical(actions, "size")
    return torch.exp(log_radius), torch.exp(log_radius - layout.fields[layout.index("size")].low)


def keep_inside(layout: ActionLayout, actions: torch.Tensor, reach: BrushReach) -> torch.Tensor:
    """Actions whose strokes a box can hold: paths of strokes too thin to be moved into a larger box
    are pulled towards the centre until the brush's reach stays inside. Differentiable; other
    strokes come back unchanged."""
    radius, most = _radius(layout, actions)
    limit = (most * (0.5 - reach.base / BOX) - reach.per_radius * radius / BOX).clamp(min=1e-3)
    far = _path_reach(layout, actions)
    shrink = torch.where(far > limit, limit / far.clamp(min=1e-6), torch.ones_like(far))
    cols = list(actions.unbind(1))
    for i in layout.indices(*_POINTS):
        cols[i] = 0.5 + (cols[i] - 0.5) * shrink
    return torch.stack(cols, 1)


def hold_whole(layout: ActionLayout, actions: torch.Tensor, boxes: torch.Tensor, reach: BrushReach):
    """(actions, boxes) of the same strokes on the canvas in boxes that hold them whole (see above).

    The growth k is computed without gradient (the canvas geometry does not depend on it); the
    transformed actions and boxes stay differentiable in the originals."""
    with torch.no_grad():
        radius, most = _radius(layout, actions)
        need = (_path_reach(layout, actions) + reach.per_radius * radius / BOX) / (0.5 - reach.base / BOX)
        k = torch.minimum(need, most).clamp(min=1.0)
    size = layout.index("size")
    f = layout.fields[size]
    cols = list(actions.unbind(1))
    for i in layout.indices(*_POINTS):
        cols[i] = 0.5 + (cols[i] - 0.5) / k
    cols[size] = (cols[size] - torch.log(k) / (f.high - f.low)).clamp(min=0.0)   # k <= e^size: rounding only
    return torch.stack(cols, 1), torch.cat([boxes[:, :2], boxes[:, 2:3] * k[:, None]], 1)
