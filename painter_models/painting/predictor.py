"""The stroke predictor: a network that looks at a patch of the photograph and of the canvas painted so far
and proposes K strokes for it in one forward pass (painting/predict.py walks it over a canvas, coarse to
fine). Owns its validated config, the network, and its files.

    predictor = load_predictor("painter_models/predictors/soft_brush.safetensors")
    predictor.check_fits(painter)          # trained for this painter's brush and action layout, or an error

The network sees the target and the canvas over one square patch, both resampled to `patch` px, plus their
difference and two coordinate channels; seven convolutions and an MLP give K strokes, each an action, a box
in patch units (centre in [-m, 1 + m], side in [side_min, side_max] patch sides) and a confidence. A
stroke's colour is a residual (logit space) on the blurred target where the stroke passes (its
through-point), so every stroke starts from the right colour.

A predictor file is a safetensors file whose metadata (each value JSON) says format "stroke-predictor",
version, config, the brush and action layout of the painter it was trained with (its strokes are that
brush's) and a free-form training summary. It is trained by `neural-painters-train predictor`.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..brush.actions import NAKANO, ActionLayout, get_layout
from ..painter.checkpoint import FORMAT as PAINTER_FORMAT
from ..painter.checkpoint import check_finite, check_tensor_shapes, read_file_metadata, save_tensors
from ..painter.model import check_int_fields, config_from_dict

FORMAT = "stroke-predictor"
VERSION = 1
POINTS = ("start_x", "start_y", "control_x", "control_y", "end_x", "end_y")
BOX, CONFIDENCE = 3, 1                  # numbers per stroke besides the action: (cx, cy, side), confidence


class PredictorError(ValueError):
    """A file that is not a usable stroke predictor, or one trained for another painter; the message says
    why and what to do."""


@dataclass
class PredictorConfig:
    patch: int = 32              # px of a patch as the network sees it (a multiple of 8: three stride-2 convs)
    k: int = 8                   # strokes per patch
    width: int = 32              # base convolution channels
    hidden: int = 384            # MLP width
    action_dim: int = 12
    centre_margin: float = 0.15  # box centre in [-m, 1 + m] patch units
    side_min: float = 0.5        # box side in patch sides
    side_max: float = 2.0
    colour_blur: int = 5         # px (at `patch` px) of the box filter under the base colour

    def __post_init__(self):
        check_int_fields(self, (("patch", 8, 256), ("k", 1, 64), ("width", 1, 1024), ("hidden", 1, 16384),
                                ("action_dim", 1, 256), ("colour_blur", 1, 31)))
        if self.patch % 8:
            raise ValueError(f"PredictorConfig: patch must be a multiple of 8 (three stride-2 convolutions), "
                             f"got {self.patch}")
        if self.colour_blur % 2 == 0:
            raise ValueError(f"PredictorConfig: colour_blur must be odd (a centred box filter), got {self.colour_blur}")
        if not 0.0 <= float(self.centre_margin) <= 1.0:
            raise ValueError(f"PredictorConfig: centre_margin must be in 0..1 patch sides, got {self.centre_margin!r}")
        if not 0.0 < float(self.side_min) < float(self.side_max) <= 4.0:
            raise ValueError(f"PredictorConfig: box sides need 0 < side_min < side_max <= 4 patch sides, got "
                             f"{self.side_min!r}, {self.side_max!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "PredictorConfig":
        return config_from_dict(cls, d, "predictor")


class PredictorNetwork(nn.Module):
    """target, canvas patches [B, 3, P, P] -> K strokes per patch (see the module doc)."""

    def __init__(self, config: PredictorConfig, layout: ActionLayout = NAKANO):
        super().__init__()
        self.config, self.layout = config, get_layout(layout)
        if self.layout.dim != config.action_dim:
            raise ValueError(f"PredictorConfig: action_dim {config.action_dim} but layout {self.layout.name!r} has "
                             f"{self.layout.dim} numbers")
        self.out = config.action_dim + BOX + CONFIDENCE
        w, act = config.width, nn.GELU
        self.body = nn.Sequential(
            nn.Conv2d(11, w, 3, 1, 1), act(),
            nn.Conv2d(w, w, 3, 1, 1), act(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), act(),           # /2
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), act(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), act(),       # /4
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1), act(),
            nn.Conv2d(4 * w, 4 * w, 3, 2, 1), act(),       # /8
        )
        features = 4 * w * (config.patch // 8) ** 2
        self.head = nn.Sequential(nn.Linear(features, config.hidden), act(), nn.Linear(config.hidden, config.hidden),
                                  act(), nn.Linear(config.hidden, config.k * self.out))
        self._start_spread()

    @torch.no_grad()
    def _start_spread(self):
        """An untrained network proposes medium, fairly opaque strokes spread over the patch on a grid."""
        cfg, lay, d = self.config, self.layout, self.config.action_dim
        self.head[-1].weight.mul_(0.1)
        bias = self.head[-1].bias.view(cfg.k, self.out)
        bias.zero_()
        g, m = math.ceil(math.sqrt(cfg.k)), cfg.centre_margin
        for i in range(cfg.k):
            u, v = ((i % g) + 0.5) / g, ((i // g) + 0.5) / g
            bias[i, d] = math.log((u + m) / (1 - u + m))       # logit of the centre's place in [-m, 1 + m]
            bias[i, d + 1] = math.log((v + m) / (1 - v + m))
        bias[:, lay.index("size")] = 0.5
        bias[:, lay.indices("entry_pressure", "exit_pressure")] = 1.0
        bias[:, d + BOX] = 1.0

    def forward(self, target: torch.Tensor, canvas: torch.Tensor):
        """target, canvas [B, 3, P, P] -> actions [B, K, dim] in 0..1 (not yet kept inside their box),
        boxes [B, K, 3] in patch units (cx, cy, side), confidence [B, K] in 0..1."""
        cfg, d = self.config, self.config.action_dim
        n, _, p, _ = target.shape
        ramp = torch.linspace(-1, 1, p, device=target.device, dtype=target.dtype)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij"))[None].expand(n, 2, p, p)
        x = torch.cat([target, canvas, target - canvas, coords], 1)
        out = self.head(self.body(x).flatten(1)).view(n, cfg.k, self.out)
        m = cfg.centre_margin
        centre = torch.sigmoid(out[..., d:d + 2]) * (1 + 2 * m) - m
        lo, hi = math.log(cfg.side_min), math.log(cfg.side_max)
        side = torch.exp(lo + torch.sigmoid(out[..., d + 2:d + 3]) * (hi - lo))
        boxes = torch.cat([centre, side], -1)
        actions = torch.sigmoid(out[..., :d])
        rgb = self.layout.indices("red", "green", "blue")
        colour = self._colour(target, actions, boxes, out[..., rgb])
        columns = list(actions.unbind(-1))
        for j, i in enumerate(rgb):
            columns[i] = colour[..., j]
        return torch.stack(columns, -1), boxes, torch.sigmoid(out[..., d + BOX])

    def _colour(self, target, actions, boxes, residual):
        """[B, K, 3]: the blurred target at each stroke's through-point, moved by the learnt residual."""
        cfg, (cx, cy) = self.config, self.layout.indices("control_x", "control_y")
        n = target.shape[0]
        through = boxes[..., :2] + (actions[..., [cx, cy]] - 0.5) * boxes[..., 2:3]
        pad = cfg.colour_blur // 2
        blurred = F.avg_pool2d(F.pad(target, (pad,) * 4, mode="replicate"), cfg.colour_blur, 1)
        grid = (through * 2 - 1).view(n, cfg.k, 1, 2)
        base = F.grid_sample(blurred, grid, align_corners=False, padding_mode="border")[..., 0].transpose(1, 2)
        return torch.sigmoid(torch.logit(base.clamp(0.01, 0.99)) + residual)


@dataclass
class StrokePredictor:
    """A predictor network with what it was trained for: the painter's brush and action layout."""
    network: PredictorNetwork
    brush: str
    layout: ActionLayout
    training: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def config(self) -> PredictorConfig:
        return self.network.config

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device) -> "StrokePredictor":
        self.network.to(device)
        return self

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.path else "a stroke predictor"

    def check_fits(self, painter):
        """Refuse a painter of another brush or action layout: the strokes would be another brush's."""
        brush, layout = getattr(painter, "brush", None), get_layout(getattr(painter, "layout", NAKANO))
        if brush != self.brush or layout.to_dict() != self.layout.to_dict():
            raise PredictorError(f"the stroke predictor {self.name!r} was trained for a painter of brush "
                                 f"{self.brush!r} (action layout {self.layout.name!r}), not this painter's {brush!r} "
                                 f"({layout.name!r}): use a predictor trained for it (neural-painters-train "
                                 f"predictor --painter ...)")


def predictor_metadata(config: PredictorConfig, brush: str, layout: ActionLayout, training: dict | None) -> dict:
    return {"format": FORMAT, "version": VERSION, "config": asdict(config), "brush": brush,
            "layout": get_layout(layout).to_dict(), "training": training or {}}


def save_predictor(path: str, network: PredictorNetwork, brush: str, training: dict | None = None):
    """Write a predictor file atomically: the network's weights and its metadata (see the module doc)."""
    save_tensors(path, network.state_dict(), predictor_metadata(network.config, brush, network.layout, training))


def read_predictor_metadata(path: str) -> dict:
    """The decoded metadata of a predictor file, checked to be one; PredictorError otherwise."""
    meta = read_file_metadata(path, PredictorError, "stroke predictor",
                              "stroke predictors are .safetensors files written by neural-painters-train predictor")
    if meta.get("format") == PAINTER_FORMAT:
        raise PredictorError(f"{os.path.basename(path)!r} is a neural painter, not a stroke predictor: pass it as "
                             f"the painter, and as the predictor a file written by neural-painters-train predictor")
    if meta.get("format") != FORMAT:
        raise PredictorError(f"{os.path.basename(path)!r} is a safetensors file but not a stroke predictor (metadata "
                             f"format={meta.get('format')!r}): use a file written by neural-painters-train predictor")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise PredictorError(f"{os.path.basename(path)!r} has stroke predictor version {meta.get('version')!r}; this "
                             f"code reads up to {VERSION}: update comfyui-neural-painters")
    return meta


def load_predictor(path: str, device="cpu") -> StrokePredictor:
    """A predictor file, frozen and in eval mode; PredictorError for anything that is not a sound one."""
    from safetensors.torch import load_file
    meta = read_predictor_metadata(path)
    name = os.path.basename(path)
    try:
        config = PredictorConfig.from_dict(meta["config"])
        layout = get_layout(meta["layout"])
        brush = str(meta["brush"])
    except (KeyError, TypeError, ValueError) as e:
        raise PredictorError(f"{name!r} has a damaged stroke predictor header: {e}") from None
    check_tensor_shapes(path, lambda: PredictorNetwork(config, layout), PredictorError)
    state = load_file(path, device="cpu")
    check_finite(path, state, PredictorError, "every stroke would be predicted wrong")
    network = PredictorNetwork(config, layout)
    network.load_state_dict(state)
    network.requires_grad_(False).eval().to(device)
    return StrokePredictor(network, brush, layout, meta.get("training", {}), path)
