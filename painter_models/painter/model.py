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
and keeps exact gradients with respect to position and size. `prior="capsule"` is the same idea
with the stroke drawn as a chain of capsules (segments of the Bezier with a radius and an opacity
varying along them) instead of discs at 48 points: thin strokes come out continuous, where the
discs leave beads the network must learn to fill. Everything is defined by a config dataclass so a
checkpoint's metadata rebuilds the exact architecture.

With `noise_dim` > 0 the painter is stochastic, as a textured brush is: the network above paints
the brush's mean stroke, and a per-stroke noise vector becomes, through fixed random projections,
grain fields at a few grain sizes (GRAIN_SIGMAS: random fields blurred by a Gaussian of that many
pixels at 64 px) added to the alpha logit where a grain head opens a gate for each (a transposed
convolution on the network's last features, blurred, plus a learned gain per grain size times the
mean stroke's alpha). The grain reads the mean stroke without moving it (no gradient flows back), so
training can ask the mean for accuracy and the grain for texture (`split`), and a painting's
gradients are the mean stroke's. Grain from fixed smooth random fields cannot take on the
checkerboard of transposed convolutions; the grain head and gains start at zero, so a new stochastic
painter paints its mean. Training draws the noise at random; a caller that passes none gets noise
derived from the stroke's own action numbers (a fixed pseudo-random projection, no gradient), so a
canvas is a deterministic function of its strokes and each stroke keeps its grain wherever it is
rendered. The projections are buffers saved with the weights.
"""
from __future__ import annotations

import copy
import math
import operator
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..brush.actions import bezier_points, get_layout
from ..brush.raster import RasterProgram

PRIORS = ("none", "raster", "capsule")
COLOURS = ("action", "residual")
MAX_ACTION_DIM = 256        # plausibility bounds for configs read from checkpoint files
MAX_STROKE_SIZE = 512
MAX_CHANNELS = 4096
GRAIN_SIGMAS = (0.0, 1.0, 2.5)   # grain sizes of a stochastic painter: Gaussian blur in px at 64 px (0: pixel noise)


@dataclass
class GeneratorConfig:
    action_dim: int = 12
    noise_dim: int = 0          # per-stroke noise numbers (0: a deterministic painter; see the module doc)
    stroke_size: int = 64       # 4 * 2 ** len(channels)
    channels: tuple[int, ...] = (256, 128, 64, 32)
    colour_indices: tuple[int, int, int] = (6, 7, 8)  # where R, G, B sit in the action
    prior: str = "none"         # "raster": alpha is a residual on the rasterised Bezier
    layout: str = "nakano12"    # action layout the prior reads the stroke geometry from
    colour: str = "action"      # "residual": a learned colour head on top of the action's colour

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        self.colour_indices = tuple(int(c) for c in self.colour_indices)
        check_int_fields(self, (("action_dim", 1, MAX_ACTION_DIM), ("noise_dim", 0, MAX_ACTION_DIM),
                                ("stroke_size", 8, MAX_STROKE_SIZE)))
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
        return config_from_dict(cls, d)


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
        return config_from_dict(cls, d)


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

    Nakano's layout: Linear -> 4x4 map -> transposed convs doubling the size per stage (+ the noise
    inputs of a stochastic painter: see the module docstring)."""

    NOISE_SEED = 20261121    # the fixed projections of a new stochastic painter (then saved with it)

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.fc = nn.Linear(config.action_dim, 4 * 4 * c[0])
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
        if config.prior != "none":
            self.prior_gain = nn.Parameter(torch.ones(()))
        if config.noise_dim:
            self.grain_head = nn.ConvTranspose2d(c[-1], len(GRAIN_SIGMAS), 4, 2, 1)
            nn.init.zeros_(self.grain_head.weight)
            nn.init.zeros_(self.grain_head.bias)
            g = torch.Generator().manual_seed(self.NOISE_SEED)
            k = config.noise_dim
            # action -> uniform phases: a few cycles over the action cube, so nearby strokes differ
            self.register_buffer("noise_phase", 3.0 * torch.randn(config.action_dim, k, generator=g))
            self.register_buffer("noise_offset", torch.rand(k, generator=g))
            self.register_buffer("grain_fields", grain_fields(k, config.stroke_size, g))
            # grain in proportion to the paint, per grain size: the first thing a grainy brush needs
            self.grain_gain = nn.Parameter(torch.zeros(len(GRAIN_SIGMAS)))

    def derived_noise(self, actions: torch.Tensor) -> torch.Tensor:
        """The noise of strokes rendered outside training: a fixed function of each stroke's action."""
        with torch.autocast(actions.device.type, enabled=False):   # the phase needs float32's precision
            phase = actions.detach().float() @ self.noise_phase + self.noise_offset
        return noise_from_uniform(torch.frac(phase)).to(actions.dtype)

    def sample_noise(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Random noise for training ([n, noise_dim], the distribution derived_noise follows)."""
        device = device or self.fc.weight.device
        return noise_from_uniform(torch.rand(n, self.config.noise_dim, generator=generator, device=device))

    def _parts(self, actions: torch.Tensor, noise: torch.Tensor | None):
        """(colour, the mean stroke's alpha logit, the grain's logit or None)."""
        cfg = self.config
        if actions.ndim != 2 or actions.shape[1] != cfg.action_dim:
            raise ValueError(f"the generator takes actions [N, {cfg.action_dim}], got {list(actions.shape)}")
        h = self.stages(F.relu(self.fc_norm(self.fc(actions).view(-1, cfg.channels[0], 4, 4))))
        out = self.head(h)
        alpha_logit = out[:, :1]
        if cfg.prior != "none":
            prior = (self.raster.render_torch(actions)[1] if cfg.prior == "raster"
                     else capsule_alpha(get_layout(cfg.layout), actions, cfg.stroke_size))
            alpha_logit = alpha_logit + self.prior_gain * torch.logit(prior.clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR))
        rgb = actions[:, list(cfg.colour_indices)]
        if cfg.colour == "action":
            colour = rgb[:, :, None, None].expand(-1, -1, *alpha_logit.shape[-2:])
        else:
            colour = torch.sigmoid(torch.logit(rgb.clamp(1e-3, 1 - 1e-3))[:, :, None, None] + out[:, 1:])
        grain = None
        if cfg.noise_dim:   # grain where the grain head opens its gates, one per grain size
            if noise is None:
                noise = self.derived_noise(actions)
            if noise.shape != (actions.shape[0], cfg.noise_dim):
                raise ValueError(f"noise must be [N, {cfg.noise_dim}] for {actions.shape[0]} strokes, "
                                 f"got {list(noise.shape)}")
            s = cfg.stroke_size
            fields = torch.einsum("nk,gkp->ngp", noise, self.grain_fields).view(-1, len(GRAIN_SIGMAS), s, s)
            gates = (smooth_gates(self.grain_head(h.detach()))
                     + self.grain_gain[:, None, None] * torch.sigmoid(alpha_logit.detach()))
            grain = (gates * fields).sum(1, keepdim=True)
        return colour, alpha_logit, grain

    def forward(self, actions: torch.Tensor, noise: torch.Tensor | None = None, split: bool = False):
        """(colour, alpha). split=True (training a stochastic painter): (colour, the mean stroke's alpha,
        the grainy alpha with the mean under it detached), so losses on the mean train the mean stroke
        and losses on the grainy alpha reach only the grain."""
        colour, alpha_logit, grain = self._parts(actions, noise)
        if split:
            if grain is None:
                raise ValueError("split=True is for a painter with noise inputs (noise_dim > 0)")
            return colour, torch.sigmoid(alpha_logit), torch.sigmoid(alpha_logit.detach() + grain)
        return colour, torch.sigmoid(alpha_logit if grain is None else alpha_logit + grain)

    def folded(self) -> "Generator":
        """A copy for painting with a frozen painter: each batch norm (eval mode, running statistics)
        folded into the layer before it, so the same strokes (to float rounding) cost no
        normalisation pass forward or backward."""
        if self.training:
            raise ValueError("fold an eval-mode generator: call .eval() first (folding uses the running statistics)")
        g = copy.deepcopy(self)

        def scale_shift(bn):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            return scale, bn.bias - bn.running_mean * scale

        with torch.no_grad():
            scale, shift = scale_shift(g.fc_norm)
            cells = g.fc.out_features // scale.numel()      # fc's output is viewed as [C, 4, 4]
            g.fc.weight.mul_(scale.repeat_interleave(cells)[:, None])
            g.fc.bias.mul_(scale.repeat_interleave(cells)).add_(shift.repeat_interleave(cells))
            g.fc_norm = nn.Identity()
            stages = list(g.stages)
            for i, layer in enumerate(stages):
                if isinstance(layer, nn.BatchNorm2d):
                    conv = stages[i - 1]          # a transposed convolution: weight [in, out, k, k]
                    scale, shift = scale_shift(layer)
                    conv.weight.mul_(scale[None, :, None, None])
                    conv.bias = nn.Parameter(shift.clone(), requires_grad=conv.weight.requires_grad)
                    stages[i] = nn.Identity()
            g.stages = nn.Sequential(*stages)
        return g

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


CAPSULE_SEGMENTS = 24   # a quadratic Bezier within a small fraction of a pixel at 64 px
PRIOR_FLOOR = 1e-3      # the generator clamps a prior's alpha to [floor, 1 - floor] (its logit stays finite)
CAPSULE_BLOCK = 8       # the winner search visits a segment only in the blocks of pixels it can reach
CAPSULE_CHUNK = 64      # strokes per winner search (its memory grows with strokes x segments x blocks)


def capsule_alpha(layout, actions: torch.Tensor, size: int, segments: int = CAPSULE_SEGMENTS) -> torch.Tensor:
    """[N, 1, S, S]: the stroke as a chain of capsules along its Bezier, radius and opacity as the
    rasteriser's (radius e^size * (0.35 + pressure), opacity 0.25 + 0.75 pressure / 0.8, a 1 px soft
    edge at 64 px) but interpolated along each segment: a continuous stroke at any width.
    alpha = max over segments of sigmoid((radius - distance) / edge) * opacity, found without autograd;
    each pixel's winning segment is then recomputed with gradients (the gradient of a max).
    Exact where alpha >= PRIOR_FLOOR; below it (where the generator clamps) it may read lower."""
    x, y, pressure = bezier_points(layout, actions, segments)                    # t = 1/n .. 1
    sx, sy = (actions[:, [i]] for i in layout.indices("start_x", "start_y"))
    p_in = layout.to_physical(actions, "entry_pressure")[:, None]
    x, y, pressure = torch.cat([sx, x], 1) * size, torch.cat([sy, y], 1) * size, torch.cat([p_in, pressure], 1)
    radius = torch.exp(layout.to_physical(actions, "size"))[:, None] * (size / 64.0) * (0.35 + pressure)
    opacity = (0.25 + pressure / 0.8 * 0.75).clamp(0, 1)
    edge = size / 64.0
    if len(actions) == 0:
        return actions.new_zeros(0, 1, size, size)
    with torch.no_grad():   # in chunks of strokes: the search's working set grows with strokes x segments x blocks
        chunks = [_capsule_winners(*(v[i:i + CAPSULE_CHUNK] for v in (x, y, radius, opacity)), size, edge)
                  for i in range(0, len(actions), CAPSULE_CHUNK)]
        best, winner = (torch.cat(parts) for parts in zip(*chunks))
    if not (torch.is_grad_enabled() and actions.requires_grad):
        return best[:, None]
    grid = torch.arange(size, dtype=actions.dtype, device=actions.device) + 0.5
    gx, gy = grid[None, None, :], grid[None, :, None]
    take = lambda v: v.gather(1, winner.flatten(1)).view(winner.shape)
    x0, y0, r0, o0 = take(x), take(y), take(radius), take(opacity)
    ends = take(x[:, 1:]), take(y[:, 1:]), take(radius[:, 1:]), take(opacity[:, 1:])
    return _segment_cover(gx - x0, gy - y0, *(b - a for a, b in zip((x0, y0, r0, o0), ends)), r0, o0, edge)[:, None]


def _segment_cover(ax, ay, dx, dy, dr, do, r0, o0, edge: float):
    """A capsule segment's cover of pixels at (ax, ay) from its start, the segment running (dx, dy) with
    radius r0 -> r0 + dr and opacity o0 -> o0 + do: sigmoid((radius - distance) / edge) * opacity."""
    t = ((ax * dx + ay * dy) / (dx * dx + dy * dy + 1e-8)).clamp(0, 1)
    dist = torch.sqrt((ax - t * dx) ** 2 + (ay - t * dy) ** 2 + 1e-8)
    return torch.sigmoid((r0 + t * dr - dist) / edge) * (o0 + t * do)


def _capsule_winners(x, y, radius, opacity, size: int, edge: float):
    """(alpha [N, S, S], index of the winning segment [N, S, S]) from the segments' end points
    [N, K + 1]. A segment's cover is below PRIOR_FLOOR farther than its radius + 7 edges
    (sigmoid(-7) < 1e-3), so it is evaluated only in the blocks of pixels within that reach: several
    times less work than every segment on every pixel, and the same winners wherever alpha reaches
    the floor (elsewhere the winner is segment 0 and alpha may read lower)."""
    n, segments = x.shape[0], x.shape[1] - 1
    block = math.gcd(size, CAPSULE_BLOCK)
    nb = size // block
    ends = lambda v: (v[:, :-1], v[:, 1:] - v[:, :-1])
    (x0, dx), (y0, dy), (r0, dr), (o0, do) = ends(x), ends(y), ends(radius), ends(opacity)
    reach = torch.maximum(radius[:, :-1], radius[:, 1:]) + 7.0 * edge
    first = torch.arange(nb, dtype=x.dtype, device=x.device) * block + 0.5     # a block's first pixel centre

    def blocks_reached(v):   # [N, K, nb]: blocks whose pixel centres come within reach along this axis
        lo, hi = torch.minimum(v[:, :-1], v[:, 1:]) - reach, torch.maximum(v[:, :-1], v[:, 1:]) + reach
        return (first + block - 1 >= lo[..., None]) & (first <= hi[..., None])
    sn, sk, by, bx = (blocks_reached(y)[..., :, None] & blocks_reached(x)[..., None, :]).nonzero(as_tuple=True)
    m = sn.numel()
    pick = lambda v: v[sn, sk].view(m, 1, 1)
    centres = torch.arange(block, dtype=x.dtype, device=x.device) + 0.5
    ax = (bx.to(x.dtype)[:, None] * block + centres)[:, None, :] - pick(x0)        # [M, 1, B]
    ay = (by.to(x.dtype)[:, None] * block + centres)[:, :, None] - pick(y0)        # [M, B, 1]
    cover = _segment_cover(ax, ay, pick(dx), pick(dy), pick(dr), pick(do), pick(r0), pick(o0), edge).clamp_(min=0)
    # one max per pixel of (cover, earliest segment): a non-negative float's bits order as integers
    key = cover.float().view(m, block * block).view(torch.int32).long() * (segments + 1) + (segments - sk)[:, None]
    cell = ((sn * nb + by) * nb + bx)[:, None].expand(m, block * block)
    best = key.new_full((n * nb * nb, block * block), segments).scatter_reduce_(0, cell, key, "amax")
    alpha = (best // (segments + 1)).int().view(torch.float32).to(x.dtype)
    winner = segments - best % (segments + 1)
    image = lambda v: v.view(n, nb, nb, block, block).permute(0, 1, 3, 2, 4).reshape(n, size, size)
    return image(alpha), image(winner)


def smooth_gates(gates: torch.Tensor) -> torch.Tensor:
    """The grain gates through a [1, 2, 1] x [1, 2, 1] / 16 blur, which zeroes the 2-pixel checkerboard
    a stride-2 transposed convolution leaves (grain through it would come out as a regular mesh)."""
    k = torch.tensor([1.0, 2.0, 1.0], dtype=gates.dtype, device=gates.device)
    k = (k[:, None] * k[None, :] / 16).expand(gates.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(gates, (1, 1, 1, 1), mode="replicate"), k, groups=gates.shape[1])


def head_channels(config: GeneratorConfig) -> int:
    return 1 if config.colour == "action" else 4


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_macs(config: GeneratorConfig) -> int:
    """Multiply-accumulates of one generator forward pass (per stroke)."""
    c = config.channels
    macs = config.action_dim * 16 * c[0]
    side = 4
    for c_in, c_out in zip(c, list(c[1:]) + [head_channels(config) + (len(GRAIN_SIGMAS) if config.noise_dim else 0)]):
        side *= 2
        macs += c_in * c_out * 16 * (side // 2) ** 2  # each input pixel scatters a 4x4 kernel (+ the grain head)
    if config.noise_dim:   # action -> noise, noise -> grain fields, the gates' blur
        macs += (config.noise_dim * (config.action_dim + len(GRAIN_SIGMAS) * config.stroke_size ** 2)
                 + 9 * len(GRAIN_SIGMAS) * config.stroke_size ** 2)
    return macs


def grain_fields(noise_dim: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """[len(GRAIN_SIGMAS), noise_dim, size * size]: per grain size, noise_dim random fields of unit
    variance (white noise blurred by a Gaussian of sigma * size / 64 px, wrapping at the edges)."""
    out = []
    for sigma in GRAIN_SIGMAS:
        noise = torch.randn(noise_dim, size, size, generator=generator)
        if sigma > 0:
            f = torch.fft.fftfreq(size)
            s = sigma * size / 64
            kernel = torch.exp(-2 * (math.pi * s) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
            noise = torch.fft.ifft2(torch.fft.fft2(noise) * kernel).real
        noise = noise / noise.flatten(1).std(1)[:, None, None]
        out.append(noise.flatten(1) / math.sqrt(noise_dim))   # noise of unit variance -> fields of unit variance
    return torch.stack(out)


def noise_from_uniform(u: torch.Tensor) -> torch.Tensor:
    """The painters' noise distribution (unit variance, bounded) from uniform numbers: training draws
    u at random, inference takes the fractional part of a projection of the action."""
    return math.sqrt(2.0) * torch.sin(2 * math.pi * u)


def check_int_fields(config, ranges) -> None:
    """Each (field, lo, hi) of the config dataclass an integer in lo..hi, else a ValueError naming the config and
    the field: plausible sizes first, so a config read from a file never asks for an impossible network."""
    for name, lo, hi in ranges:
        value = getattr(config, name)
        try:
            ok = lo <= operator.index(value) <= hi
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{type(config).__name__}: {name} must be an integer in {lo}..{hi}, got {value!r}")


def config_from_dict(cls, d: dict, written_by: str = "checkpoint"):
    """A config dataclass from a file's dict, checked by the class itself; a field this code does not know is
    refused by name (the file was written by a newer version)."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)} (a newer {written_by} format?)")
    return cls(**d)


def config_to_dict(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
