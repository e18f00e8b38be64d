"""Neural painters: a generator that imitates a painting program (action -> stroke) and a critic.

The generator predicts a stroke's alpha and colour separately, so strokes can be alpha-blended
exactly. With `colour="action"` (the default, right for every brush that lays down the colour it
is given, as MyPaint's non-smudging brushes do) the colour *is* the action's colour and the
network predicts alpha only: a learned colour residual there is pure error the action optimiser
learns to exploit (painted strokes then look lighter than MyPaint renders them). With
`colour="residual"` the colour head is a residual on the action's colour (logit space), for
brushes that mix or tint. With `prior="raster"` the alpha head is a
residual on the torch rasteriser's soft stroke (logit space, learned gain): the network only
learns how the brush differs from a plain Bezier, which trains several times faster on a CPU
and keeps exact gradients with respect to position and size. Everything is defined by a config dataclass so a
checkpoint's metadata rebuilds the exact architecture.
"""
from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .actions import NAKANO, get_layout
from .raster import RasterProgram

PRIORS = ("none", "raster")
COLOURS = ("action", "residual")
MAX_ACTION_DIM = 256        # plausibility bounds for configs read from checkpoint files
MAX_STROKE_SIZE = 512
MAX_CHANNELS = 4096


@dataclass
class GeneratorConfig:
    action_dim: int = 12
    noise_dim: int = 0          # Nakano's GAN painter uses 16; fixed at 0.5 at inference
    stroke_size: int = 64       # 4 * 2 ** len(channels)
    channels: tuple[int, ...] = (256, 128, 64, 32)
    colour_indices: tuple[int, int, int] = (6, 7, 8)  # where R, G, B sit in the action
    prior: str = "none"         # "raster": alpha is a residual on the rasterised Bezier
    layout: str = "nakano12"    # action layout the prior reads the stroke geometry from
    colour: str = "action"      # "residual": a learned colour head on top of the action's colour

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        self.colour_indices = tuple(int(c) for c in self.colour_indices)
        # plausible sizes first: a config read from a file must not ask for an impossible network
        for name, value, lo, hi in (("action_dim", self.action_dim, 1, MAX_ACTION_DIM),
                                    ("noise_dim", self.noise_dim, 0, MAX_ACTION_DIM),
                                    ("stroke_size", self.stroke_size, 8, MAX_STROKE_SIZE)):
            try:
                ok = lo <= operator.index(value) <= hi
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(f"GeneratorConfig: {name} must be an integer in {lo}..{hi}, got {value!r}")
        if not self.channels or not all(1 <= c <= MAX_CHANNELS for c in self.channels):
            raise ValueError(f"GeneratorConfig: channels must be 1..{MAX_CHANNELS} each, got {list(self.channels)}")
        if len(self.colour_indices) != 3 or not all(0 <= i < self.action_dim for i in self.colour_indices):
            raise ValueError(f"GeneratorConfig: colour_indices must be 3 positions of the {self.action_dim} action "
                             f"numbers (0..{self.action_dim - 1}), got {list(self.colour_indices)}")
        if self.prior not in PRIORS:
            raise ValueError(f"GeneratorConfig: unknown prior {self.prior!r}; choose one of {PRIORS}")
        if self.colour not in COLOURS:
            raise ValueError(f"GeneratorConfig: unknown colour {self.colour!r}; choose one of {COLOURS}")
        if 4 * 2 ** len(self.channels) != self.stroke_size:
            raise ValueError(f"GeneratorConfig: {len(self.channels)} upsampling stages give "
                             f"{4 * 2 ** len(self.channels)} px strokes, not stroke_size={self.stroke_size}")

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"GeneratorConfig has no fields {sorted(unknown)} (a newer checkpoint format?)")
        return cls(**d)


@dataclass
class CriticConfig:
    action_dim: int = 12
    conditional: bool = True    # Nakano: the action is added per channel after the first conv
    stroke_size: int = 64
    in_channels: int = 4        # stroke over white (RGB) + alpha
    channels: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        reduction = 2 ** len(self.channels)
        if self.stroke_size < reduction or self.stroke_size % reduction:
            raise ValueError(f"CriticConfig: {len(self.channels)} stride-2 stages need a stroke_size that is a "
                             f"multiple of {reduction}, got {self.stroke_size}")

    @classmethod
    def from_dict(cls, d: dict) -> "CriticConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"CriticConfig has no fields {sorted(unknown)} (a newer checkpoint format?)")
        return cls(**d)


def _nakano_layout_colour():
    return tuple(NAKANO.indices("red", "green", "blue"))


# Named configurations. "nakano": the size of Nakano's GAN painter (about 0.8 M parameters);
# "large": twice the width (about 3.2 M); "nakano128": the Nakano width at 128 px strokes.
GENERATOR_CONFIGS = {
    "tiny": dict(channels=(32, 16, 16, 8)),
    "nakano": dict(channels=(256, 128, 64, 32)),
    "large": dict(channels=(512, 256, 128, 64)),
    "nakano128": dict(channels=(256, 128, 64, 32, 16), stroke_size=128),
}
# Any of them takes prior="raster" (see the module docstring); the shipped painters use it.
CRITIC_CONFIGS = {
    "tiny": dict(channels=(8, 16, 16, 32)),
    "nakano": dict(channels=(16, 32, 64, 128)),
    "large": dict(channels=(32, 64, 128, 256)),
}


def generator_config(name: str, **overrides) -> GeneratorConfig:
    if name not in GENERATOR_CONFIGS:
        raise ValueError(f"unknown generator config {name!r}; choose one of {sorted(GENERATOR_CONFIGS)}")
    return GeneratorConfig(**{**GENERATOR_CONFIGS[name], **overrides})


def critic_config(name: str, **overrides) -> CriticConfig:
    if name not in CRITIC_CONFIGS:
        raise ValueError(f"unknown critic config {name!r}; choose one of {sorted(CRITIC_CONFIGS)}")
    return CriticConfig(**{**CRITIC_CONFIGS[name], **overrides})


class Generator(nn.Module):
    """action [N, action_dim] (+ noise [N, noise_dim]) -> (colour [N, 3, S, S], alpha [N, 1, S, S]).

    Nakano's layout: Linear -> 4x4 map -> transposed convs doubling the size per stage."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.fc = nn.Linear(config.action_dim + config.noise_dim, 4 * 4 * c[0])
        self.fc_norm = nn.BatchNorm2d(c[0])
        stages = []
        for c_in, c_out in zip(c[:-1], c[1:]):
            stages += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        self.stages = nn.Sequential(*stages)
        # last stage: the alpha logit (+ the colour residual in logit space, zero at the start)
        self.head = nn.ConvTranspose2d(c[-1], head_channels(config), 4, 2, 1)
        nn.init.zeros_(self.head.weight[:, 1:])
        nn.init.zeros_(self.head.bias)
        if config.prior == "raster":
            self.raster = RasterProgram(config.stroke_size, get_layout(config.layout))
            self.prior_gain = nn.Parameter(torch.ones(()))

    def forward(self, actions: torch.Tensor, noise: torch.Tensor | None = None):
        cfg = self.config
        if actions.ndim != 2 or actions.shape[1] != cfg.action_dim:
            raise ValueError(f"the generator takes actions [N, {cfg.action_dim}], got {list(actions.shape)}")
        if cfg.noise_dim:
            if noise is None:  # deterministic inference: Nakano fixes the noise at 0.5
                noise = actions.new_full((actions.shape[0], cfg.noise_dim), 0.5)
            x = torch.cat([actions, noise], 1)
        else:
            x = actions
        h = F.relu(self.fc_norm(self.fc(x).view(-1, cfg.channels[0], 4, 4)))
        out = self.head(self.stages(h))
        alpha_logit = out[:, :1]
        if cfg.prior == "raster":
            _, raster_alpha = self.raster.render_torch(actions)
            alpha_logit = alpha_logit + self.prior_gain * torch.logit(raster_alpha.clamp(1e-3, 1 - 1e-3))
        alpha = torch.sigmoid(alpha_logit)
        rgb = actions[:, list(cfg.colour_indices)]
        if cfg.colour == "action":
            return rgb[:, :, None, None].expand(-1, -1, *alpha.shape[-2:]), alpha
        colour = torch.sigmoid(torch.logit(rgb.clamp(1e-3, 1 - 1e-3))[:, :, None, None] + out[:, 1:])
        return colour, alpha

    def render(self, actions: torch.Tensor, background: float = 1.0) -> torch.Tensor:
        """Strokes over a flat background, [N, 3, S, S] (what MyPaint renders over white)."""
        colour, alpha = self(actions)
        return colour * alpha + background * (1 - alpha)


class Critic(nn.Module):
    """(stroke [N, in_channels, S, S], action) -> logit [N]; conditioned on the action (Nakano) or not."""

    def __init__(self, config: CriticConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.first = nn.Conv2d(config.in_channels, c[0], 4, 2, 1)
        self.condition = nn.Linear(config.action_dim, c[0]) if config.conditional else None
        layers = []
        for c_in, c_out in zip(c[:-1], c[1:]):
            # no batch norm: WGAN-GP's gradient penalty needs per-sample gradients
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers)
        side = config.stroke_size // 2 ** len(c)
        self.out = nn.Linear(c[-1] * side * side, 1)

    def forward(self, strokes: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if strokes.shape[1:] != (cfg.in_channels, cfg.stroke_size, cfg.stroke_size):
            raise ValueError(f"the critic takes strokes [N, {cfg.in_channels}, {cfg.stroke_size}, "
                             f"{cfg.stroke_size}], got {list(strokes.shape)}")
        h = self.first(strokes)
        if self.condition is not None:
            if actions is None:
                raise ValueError("this critic is conditioned on the action: pass actions")
            h = h + self.condition(actions)[:, :, None, None]
        h = self.body(F.leaky_relu(h, 0.2))
        return self.out(h.flatten(1)).squeeze(1)


def head_channels(config: GeneratorConfig) -> int:
    return 1 if config.colour == "action" else 4


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_macs(config: GeneratorConfig) -> int:
    """Multiply-accumulates of one generator forward pass (per stroke)."""
    c = config.channels
    macs = (config.action_dim + config.noise_dim) * 16 * c[0]
    side = 4
    for c_in, c_out in zip(c, list(c[1:]) + [head_channels(config)]):
        side *= 2
        macs += c_in * c_out * 16 * (side // 2) ** 2  # each input pixel scatters a 4x4 kernel
    return macs


def config_to_dict(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
