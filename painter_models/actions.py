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
