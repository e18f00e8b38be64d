"""How much ink a brush lays down in a box of a given size, against its stroke in the painter's tile scaled to it.

A neural painter paints a stroke in its 64 px tile, and the canvas scales the tile into the stroke's box. MyPaint
paints the stroke at the box's own size, with the radius scaled: below a pixel or two of radius a brush's dabs
fade (deevad/brush in an 8 px box lays down about a fifth of the ink of its scaled tile; short_grass almost
none), and some brushes grow darker instead. `InkBySize` is that difference, measured on MyPaint
(neural_painters_training.ink fits it) and kept in the painter's file: a small network gives the brush's ink
efficiency for a stroke at a radius in pixels, and a stroke's gain in a box of side s is

    efficiency(its radius at s px) / efficiency(its radius at the tile's size)

so a stroke in a box the size of the painter's tile (64 px for every shipped painter) is left exactly as the painter
paints it. The canvas scales each stroke's colour and alpha by its gain (smoothly, so the optimiser learns that a
thin stroke in a small box is faint).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .actions import BOX, ActionLayout, bezier_points

FEATURES = ("log radius px", "entry pressure", "exit pressure", "log path length")
PATH_POINTS = 16


class InkBySize(nn.Module):
    """efficiency(features) > 0 for strokes at a radius in pixels; gain(layout, actions, side) per stroke.
    `tile`: the painter's stroke tile in px (the size its strokes are exact at); `log_radius_range` is the radius
    (log px) the fit saw: outside it the radius is held at its end."""

    def __init__(self, hidden: int = 32, log_radius_range: tuple[float, float] = (-2.1, 2.7), fit: dict | None = None,
                 tile: int = int(BOX)):
        super().__init__()
        self.tile = int(tile)
        self.log_radius_range = (float(log_radius_range[0]), float(log_radius_range[1]))
        self.fit = dict(fit or {})      # how it was measured: strokes, box sides, PSNR before and after
        self.net = nn.Sequential(nn.Linear(len(FEATURES), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))

    @staticmethod
    def features(layout: ActionLayout, actions: torch.Tensor) -> torch.Tensor:
        """[N, 4]: log radius at 64 px, entry and exit pressure (0..1), log path length (box units)."""
        x, y, _ = bezier_points(layout, actions, PATH_POINTS)
        length = torch.sqrt(x.diff(dim=1) ** 2 + y.diff(dim=1) ** 2 + 1e-12).sum(1)
        return torch.stack([layout.to_physical(actions, "size"), actions[:, layout.index("entry_pressure")],
                            actions[:, layout.index("exit_pressure")], torch.log(length + 0.02)], 1)

    def efficiency(self, features: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """[N]: the brush's ink per unit of stroke for strokes with `features` painted `log_scale` (ln side / 64)
        times their 64 px size."""
        lo, hi = self.log_radius_range
        radius = (features[:, 0] + log_scale).clamp(lo, hi)
        return F.softplus(self.net(torch.cat([radius[:, None], features[:, 1:]], 1)))[:, 0]

    def gain(self, layout: ActionLayout, actions: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """[N]: how much more (or less) ink MyPaint lays for each stroke in a box of `side` px than its tile
        scaled to that box."""
        f = self.features(layout, actions.to(self.dtype))
        log_scale = torch.log(side.to(self.dtype) / BOX)
        at_tile = torch.full_like(log_scale, math.log(self.tile / BOX))
        gain = self.efficiency(f, log_scale) / self.efficiency(f, at_tile).clamp_min(1e-6)
        return gain.to(actions.dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.net[0].weight.dtype

    def to_dict(self) -> dict:
        """JSON-ready: the network's weights as lists (about 1300 numbers), the radius range and the fit's record."""
        return {"features": list(FEATURES), "hidden": self.net[0].out_features, "tile": self.tile,
                "log_radius_range": list(self.log_radius_range), "fit": self.fit,
                "weights": {k: v.detach().cpu().double().tolist() for k, v in self.state_dict().items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "InkBySize":
        """The inverse of to_dict; ValueError naming what is wrong with a damaged record."""
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError(f"features {d.get('features')!r}, this code reads {list(FEATURES)}")
        lo, hi = (float(v) for v in d["log_radius_range"])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"log_radius_range {d['log_radius_range']!r} is not an interval")
        tile = int(d["tile"])
        if not 8 <= tile <= 4096:
            raise ValueError(f"tile {tile} px is out of range (8..4096)")
        ink = cls(int(d["hidden"]), (lo, hi), d.get("fit"), tile)
        state = {k: torch.tensor(v, dtype=torch.float32) for k, v in d["weights"].items()}
        expected = {k: tuple(v.shape) for k, v in ink.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if found != expected:
            raise ValueError(f"weights {found} do not match a network of {int(d['hidden'])} hidden units {expected}")
        if not all(torch.isfinite(v).all() for v in state.values()):
            raise ValueError("weights hold NaN or infinite values")
        ink.load_state_dict(state)
        return ink.requires_grad_(False).eval()
