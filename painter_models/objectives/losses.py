"""Composable painting objectives. Every loss is an nn.Module: loss(canvas [B, 3, H, W] in 0..1) -> scalar.

Targets (content, pixel target, style image) and masks are given once, at any size, as a tensor
([3, H, W], [1, 3, H, W], ComfyUI's [1, H, W, 3]), a numpy array (HWC, uint8 or float) or a PIL image.
They are fitted to the canvas lazily, on first use at each canvas size: resized when the aspect ratio
matches, else resized to cover and centre-cropped. Target features are computed once per canvas size.

Masks ([H, W], [1, H, W], [1, 1, H, W], numpy, PIL "L"; values 0..1, 1 = the loss applies there):
  PixelLoss     per-pixel weights (weighted mean, normalised by the mask's mean).
  FeatureLoss / StyleLoss
                the mask is resized (area average) to each feature map and weights its differences
                (Gram matrices: features weighted by the mask); in addition the canvas's gradient is cut
                where the mask is 0, so only strokes in the region are pushed (features near the edge
                still see context outside the region). FeatureLoss's colour term: per-pixel weights.
  ClipTextLoss  mask_mode="composite" (default): the canvas is composited onto white outside the mask
                (canvas * m + (1 - m)), so CLIP sees only the region; mask_mode="gradient": CLIP sees the
                whole canvas, gradients reach only the region.

Combine terms with `combine([(weight, loss), ...])` / `WeightedLoss`: it returns the weighted sum and
keeps the latest per-term values in `.last_terms` (unweighted floats) for logging.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import FeatureExtractor, build_backbone
from .clip_loader import ClipModel
from ..images import image_tensor, mask_tensor

__all__ = ["ClipTextLoss", "FeatureLoss", "PixelLoss", "StyleLoss", "WeightedLoss", "combine",
           "fit_to", "gaussian_blur", "make_cutouts", "srgb_to_oklab"]


# ----------------------------------------------------------------------------------------------------
# inputs


def fit_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize [N, C, H, W] to (h, w): plain resize when the aspect ratio matches (within 1 %), else
    resize to cover and centre-crop."""
    H, W = x.shape[-2:]
    if (H, W) == (h, w):
        return x
    if abs(H / W - h / w) > 0.01 * (h / w):
        s = max(h / H, w / W)
        nh, nw = max(h, round(H * s)), max(w, round(W * s))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - h) // 2, (nw - w) // 2
        return x[..., top:top + h, left:left + w]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding); sigma in pixels, 0 = identity."""
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    r_h, r_w = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    x = F.pad(x, (r_w, r_w, r_h, r_h), mode="reflect" if min(r_h, r_w) > 0 else "replicate")
    kh = k[r - r_h: r + r_h + 1].view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kw = k[r - r_w: r + r_w + 1].view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def _check_canvas(canvas: torch.Tensor) -> None:
    if not isinstance(canvas, torch.Tensor) or canvas.dim() != 4 or canvas.shape[1] != 3:
        shape = tuple(canvas.shape) if isinstance(canvas, torch.Tensor) else type(canvas).__name__
        raise ValueError(f"canvas must be a tensor [B, 3, H, W] in 0..1, got {shape}")


def _gate(canvas: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Same values; gradient only where the mask is > 0."""
    if m is None:
        return canvas
    return torch.where(m > 0, canvas, canvas.detach())


def _weighted_mean(d: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Mean of d [B, C, h, w] weighted by m [1, 1, h, w] (normalised by the mask's mean)."""
    if m is None:
        return d.mean()
    return (d * m).mean() / m.mean().clamp_min(1e-8)


class _Fitted(nn.Module):
    """Holds an image and/or a mask; gives versions fitted to a canvas size, cached per size/device."""

    def __init__(self, mask=None):
        super().__init__()
        self.register_buffer("_mask", None if mask is None else mask_tensor(mask), persistent=False)
        self._cache: dict = {}

    def _key(self, tag, canvas):
        return (tag, canvas.shape[-2], canvas.shape[-1], canvas.device, canvas.dtype)

    def _cached(self, tag, canvas, make):
        key = self._key(tag, canvas)
        if key not in self._cache:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = make()
        return self._cache[key]

    def mask_for(self, canvas) -> torch.Tensor | None:
        if self._mask is None:
            return None
        h, w = canvas.shape[-2:]
        return self._cached("mask", canvas, lambda: fit_to(self._mask.to(canvas.device), h, w).clamp(0, 1)
                            .to(canvas.dtype))

    def _apply(self, fn, *args, **kwargs):  # .to(device) etc. invalidates the fitted copies
        self._cache = {}
        return super()._apply(fn, *args, **kwargs)


# ----------------------------------------------------------------------------------------------------
# pixel


class PixelLoss(_Fitted):
    """L1 or L2 distance to a target image, optionally both blurred (sigma in canvas pixels)."""

    def __init__(self, target, kind: str = "l1", blur_sigma: float = 0.0, mask=None):
        super().__init__(mask)
        kind = kind.lower()
        if kind in ("mse", "l2"):
            kind = "l2"
        if kind not in ("l1", "l2"):
            raise ValueError(f"PixelLoss kind must be 'l1' or 'l2', got {kind!r}")
        if blur_sigma < 0:
            raise ValueError("blur_sigma must be >= 0")
        self.kind, self.blur_sigma = kind, float(blur_sigma)
        self.register_buffer("target", image_tensor(target), persistent=False)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        _check_canvas(canvas)
        h, w = canvas.shape[-2:]
        m = self.mask_for(canvas)
        t = self._cached("target", canvas, lambda: gaussian_blur(
            fit_to(self.target.to(canvas.device, canvas.dtype), h, w), self.blur_sigma))
        x = gaussian_blur(canvas, self.blur_sigma)
        d = (x - t).abs() if self.kind == "l1" else (x - t) ** 2
        return _weighted_mean(d, m)


# ----------------------------------------------------------------------------------------------------
# features


def _resolve_backbone(backbone, layers) -> FeatureExtractor:
    if isinstance(backbone, FeatureExtractor):
        if layers is not None and list(layers) != backbone.layer_names:
            raise ValueError(f"layers {list(layers)} given with a built backbone whose layers are "
                             f"{backbone.layer_names}; build it with those layers instead")
        return backbone
    return build_backbone(backbone, layers=layers)


def _resolve_weights(fx: FeatureExtractor, layer_weights) -> list[float]:
    if layer_weights is None:
        return list(fx.default_layer_weights)
    if isinstance(layer_weights, dict):
        unknown = set(layer_weights) - set(fx.layer_names)
        if unknown:
            raise ValueError(f"layer_weights for unknown layers {sorted(unknown)}; layers: {fx.layer_names}")
        return [float(layer_weights.get(n, 0.0)) for n in fx.layer_names]
    lw = [float(w) for w in layer_weights]
    if len(lw) != len(fx.layer_names):
        raise ValueError(f"{len(lw)} layer_weights for {len(fx.layer_names)} layers {fx.layer_names}")
    return lw


def _mask_at(m: torch.Tensor | None, f: torch.Tensor) -> torch.Tensor | None:
    if m is None:
        return None
    return F.adaptive_avg_pool2d(m, f.shape[-2:]) if m.shape[-2:] != f.shape[-2:] else m


class _BackboneLoss(_Fitted):
    def __init__(self, image, backbone, layers, layer_weights, mask):
        super().__init__(mask)
        self.backbone = _resolve_backbone(backbone, layers)
        self.layer_names = list(self.backbone.layer_names)
        self.layer_weights = _resolve_weights(self.backbone, layer_weights)
        self.register_buffer("image", image_tensor(image), persistent=False)
        self.last_layers: dict[str, torch.Tensor] = {}

    def _follow(self, canvas):
        if self.backbone.mean.device != canvas.device:
            self.to(canvas.device)

    def train(self, mode: bool = True):
        return super().train(False)


def srgb_to_oklab(x: torch.Tensor) -> torch.Tensor:
    """sRGB [B, 3, H, W] in 0..1 -> OKLab (L 0..1, a and b about -0.3..0.3; Ottosson 2020). The cube
    root has a linear toe below (6/29)^3, as CIELab's, so black has a finite gradient."""
    x = x.clamp(0, 1)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    lms = torch.einsum("ij,bjhw->bihw", x.new_tensor(_OKLAB_M1), linear)
    toe = (6 / 29) ** 3
    root = torch.where(lms > toe, lms.clamp_min(toe) ** (1 / 3), lms * toe ** (-2 / 3))
    return torch.einsum("ij,bjhw->bihw", x.new_tensor(_OKLAB_M2), root)


_OKLAB_M1 = [[0.4122214708, 0.5363325363, 0.0514459929],
             [0.2119034982, 0.6806995451, 0.1073969566],
             [0.0883024619, 0.2817188376, 0.6299787005]]
_OKLAB_M2 = [[0.2104542553, 0.7936177850, -0.0040720468],
             [1.9779984951, -2.4285922050, 0.4505937099],
             [0.0259040371, 0.7827717662, -0.8086757660]]

# Calibrated on the bench photographs (bench/bench_feature_colour.py, BENCHMARKS.md), painted by the real
# brush: with these, a feature loss of weight 1 beside a pixel L2 loss of weight 1 adds structure and
# keeps the colours (colour x8, not x4: with MyPaint's canvas in the loop x4 let coffee's colours drift).
FEATURE_STRUCTURE_SCALE = 0.005
FEATURE_COLOUR_WEIGHT = 8.0
FEATURE_COLOUR_SIGMA = 1 / 128  # of the canvas's shorter side: 2 px at 256 px


class FeatureLoss(_BackboneLoss):
    """Perceptual loss for painting a photograph: structure from a frozen image network, colour from a
    blurred OKLab comparison.

      FEATURE_STRUCTURE_SCALE * sum_l w_l * |f_l(canvas) - f_l(content)|^2 / |f_l(content)|^2
      + colour_weight * mean |OKLab(blur(canvas)) - OKLab(blur(content))|^2

    Each layer's term is a relative error (divided by the content's own mean squared feature, or mean
    absolute feature for kind="l1"), so layers and backbones are on one scale (VGG's raw activations
    are orders of magnitude larger than EfficientNet's). `layer_weights`: a list aligned with the
    layers, a dict by layer name, or None for equal weights summing to 1. Why the colour term: image
    features barely see colour (a 90 degree hue rotation costs them less than a 2 px blur), so on its
    own the feature term trades colour for texture and paints false colours; the blur
    (FEATURE_COLOUR_SIGMA of the canvas's shorter side) leaves brushwork and texture to the features.
    `.last_layers` keeps the per-layer relative errors, `.last_colour` the colour term (unweighted)."""

    def __init__(self, content, backbone="efficientnet_lite0", layers=None, layer_weights=None,
                 kind: str = "mse", mask=None, colour_weight: float = FEATURE_COLOUR_WEIGHT):
        super().__init__(content, backbone, layers, layer_weights, mask)
        if layer_weights is None:
            self.layer_weights = [1.0 / len(self.layer_names)] * len(self.layer_names)
        kind = kind.lower()
        kind = {"l2": "mse"}.get(kind, kind)
        if kind not in ("mse", "l1"):
            raise ValueError(f"FeatureLoss kind must be 'mse' or 'l1', got {kind!r}")
        if not colour_weight >= 0:
            raise ValueError(f"FeatureLoss colour_weight must be >= 0, got {colour_weight}")
        self.kind, self.colour_weight = kind, float(colour_weight)
        self.last_colour: torch.Tensor | None = None

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs() if self.kind == "l1" else (a - b) ** 2

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        return srgb_to_oklab(gaussian_blur(x, FEATURE_COLOUR_SIGMA * min(x.shape[-2:])))

    def _targets(self, canvas):
        """(content features, their mean square (or mean absolute value) per layer, blurred OKLab)."""
        h, w = canvas.shape[-2:]

        def make():
            with torch.no_grad():
                content = fit_to(self.image.to(canvas.device, canvas.dtype), h, w)
                feats = [f.detach() for f in self.backbone(content)]
                scales = [self._distance(f, torch.zeros_like(f)).mean().clamp_min(1e-12) for f in feats]
                return feats, scales, self._colour(content)
        return self._cached("features", canvas, make)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        _check_canvas(canvas)
        self._follow(canvas)
        m = self.mask_for(canvas)
        gated = _gate(canvas, m)
        feats = self.backbone(gated)
        targets, scales, colour = self._targets(canvas)
        structure = canvas.new_zeros(())
        self.last_layers = {}
        for name, w, f, t, scale in zip(self.layer_names, self.layer_weights, feats, targets, scales):
            if w == 0:
                continue
            term = _weighted_mean(self._distance(f, t), _mask_at(m, f)) / scale
            self.last_layers[name] = term.detach()
            structure = structure + w * term
        total = FEATURE_STRUCTURE_SCALE * structure
        self.last_colour = None
        if self.colour_weight:
            colour_term = _weighted_mean((self._colour(gated) - colour) ** 2, m)
            self.last_colour = colour_term.detach()
            total = total + self.colour_weight * colour_term
        return total


STYLE_LAYERS = {"vgg16": ["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
                 "vgg16_bn": ["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
                 "efficientnet_lite0": ["stage1", "stage2", "stage3", "stage4"]}


def gram(f: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices [B, C, C] of features [B, C, h, w], normalised by the (mask-weighted) pixel count."""
    b, c = f.shape[:2]
    if m is not None:
        f = f * m.sqrt()
        n = m.sum().clamp_min(1e-8)
    else:
        n = f.shape[-2] * f.shape[-1]
    f = f.reshape(b, c, -1)
    return f @ f.transpose(1, 2) / n


class StyleLoss(_BackboneLoss):
    """Gram-matrix style loss against a style image. Each layer's squared Gram difference is divided by
    the mean square of the style's Gram matrix, so layers contribute relative errors; layer weights
    default to 1. The style image is rescaled to the canvas's pixel count, keeping its aspect ratio."""

    def __init__(self, style_image, backbone="efficientnet_lite0", layers=None, layer_weights=None, mask=None):
        if layers is None and not isinstance(backbone, FeatureExtractor):
            from .backbones import _canonical
            layers = STYLE_LAYERS[_canonical(backbone)]
        super().__init__(style_image, backbone, layers, None, mask)
        self.layer_weights = [1.0] * len(self.layer_names) if layer_weights is None else \
            _resolve_weights(self.backbone, layer_weights)

    def _targets(self, canvas):
        h, w = canvas.shape[-2:]

        def make():
            H, W = self.image.shape[-2:]
            s = math.sqrt(h * w / (H * W))
            size = (max(32, round(H * s)), max(32, round(W * s)))
            img = F.interpolate(self.image.to(canvas.device, canvas.dtype), size=size, mode="bilinear",
                                align_corners=False, antialias=True)
            with torch.no_grad():
                grams = [gram(f) for f in self.backbone(img)]
            return [(g, g.pow(2).mean().clamp_min(1e-12)) for g in grams]
        return self._cached("grams", canvas, make)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        _check_canvas(canvas)
        self._follow(canvas)
        m = self.mask_for(canvas)
        feats = self.backbone(_gate(canvas, m))
        total = canvas.new_zeros(())
        self.last_layers = {}
        for name, w, f, (g_t, scale) in zip(self.layer_names, self.layer_weights, feats, self._targets(canvas)):
            if w == 0:
                continue
            term = ((gram(f, _mask_at(m, f)) - g_t) ** 2).mean() / scale
            self.last_layers[name] = term.detach()
            total = total + w * term
        return total


# ----------------------------------------------------------------------------------------------------
# CLIP


def _clean_prompts(prompts, what: str, allow_empty: bool) -> list[str]:
    if prompts is None:
        prompts = []
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"{what} must be non-empty text, got {p!r}")
    if not prompts and not allow_empty:
        raise ValueError(f"{what}: at least one non-empty prompt is required")
    return [p.strip() for p in prompts]


def _perspective_points(gen: torch.Generator, h: int, w: int, distortion: float):
    """torchvision RandomPerspective.get_params, drawn from `gen`."""
    hh, hw = h // 2, w // 2
    dh, dw = int(distortion * hh), int(distortion * hw)

    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))
    tl = [r(0, dw), r(0, dh)]
    tr = [w - 1 - r(0, dw), r(0, dh)]
    br = [w - 1 - r(0, dw), h - 1 - r(0, dh)]
    bl = [r(0, dw), h - 1 - r(0, dh)]
    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    return start, [tl, tr, br, bl]


def perspective_warp(x: torch.Tensor, start, end, fill: float = 1.0) -> torch.Tensor:
    """Warp [N, C, H, W] so that the pixel at `start[i]` lands on `end[i]` (4 corner pairs, (x, y) pixel
    coordinates, as torchvision's perspective), bilinear, `fill` outside. Differentiable in x. Unlike
    torchvision's bilinear fill (which blends the already zero-padded sample once more and leaves a dark
    seam), the sample is composited exactly: sample + (1 - coverage) * fill."""
    n, c, h, w = x.shape
    rows, rhs = [], []
    for (qx, qy), (px, py) in zip(start, end):  # output point p -> input point q
        rows.append([px, py, 1, 0, 0, 0, -qx * px, -qx * py])
        rows.append([0, 0, 0, px, py, 1, -qy * px, -qy * py])
        rhs += [qx, qy]
    A = torch.tensor(rows, dtype=torch.float64)
    coef = torch.linalg.solve(A, torch.tensor(rhs, dtype=torch.float64)).tolist()
    a, b, cc, d, e, f, g, hh = coef
    dt = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=dt), torch.arange(w, device=x.device, dtype=dt),
                            indexing="ij")
    den = g * xs + hh * ys + 1
    xin, yin = (a * xs + b * ys + cc) / den, (d * xs + e * ys + f) / den
    grid = torch.stack([(2 * xin + 1) / w - 1, (2 * yin + 1) / h - 1], -1).to(x.dtype)
    grid = grid[None].expand(n, h, w, 2)
    ones = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
    out = F.grid_sample(torch.cat([x, ones], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :c] + (1 - out[:, c:]) * fill


def _crop_box(gen: torch.Generator, h: int, w: int, scale, ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params, drawn from `gen`."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=gen))
        ar = math.exp(float(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=gen)))
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            i = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            j = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            return i, j, ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def make_cutouts(canvas: torch.Tensor, n: int, size, gen: torch.Generator, scale=(0.7, 0.9),
                 perspective: float = 0.5) -> torch.Tensor:
    """CLIPDraw's augmentations: n cutouts of [B, 3, H, W], each a RandomPerspective(perspective, fill
    white) then a RandomResizedCrop(size (h, w), scale), drawn from `gen` -> [n * B, 3, h, w]
    (cutout-major). Differentiable in the canvas."""
    h, w = canvas.shape[-2:]
    limit = round(1.25 * max(size))
    if min(h, w) > limit:  # crops cover >= 70 % of the area: more pixels than this are lost in the resize
        s = limit / min(h, w)
        canvas = F.interpolate(canvas, size=(round(h * s), round(w * s)), mode="bilinear",
                               align_corners=False, antialias=True)
        h, w = canvas.shape[-2:]
    outs = []
    for _ in range(n):
        x = canvas
        if perspective > 0:
            start, end = _perspective_points(gen, h, w, perspective)
            x = perspective_warp(x, start, end, fill=1.0)
        i, j, ch, cw = _crop_box(gen, h, w, scale)
        x = x[..., i:i + ch, j:j + cw]
        outs.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(outs, 0)


class ClipTextLoss(_Fitted):
    """CLIPDraw-style text loss: 1 - mean cosine(text, image) over augmented cutouts of the canvas,
    plus negative_weight * mean cosine with each negative prompt.

    Each step draws `cutouts` augmentations (RandomPerspective(distortion 0.5, fill white) then
    RandomResizedCrop(CLIP input size, scale `cutout_scale`)) from its own generator (`seed`; None =
    seeded from torch's global RNG), applies the model's own normalisation and encodes the batch.
    With several positive prompts the cosines are averaged over prompts. Text features are encoded once.
    """

    def __init__(self, clip: ClipModel, prompts, negative_prompts=(), negative_weight: float = 0.3,
                 cutouts: int = 4, cutout_scale=(0.7, 0.9), mask=None, seed: int | None = None,
                 perspective: float = 0.5, mask_mode: str = "composite"):
        super().__init__(mask)
        if not isinstance(clip, ClipModel):
            raise TypeError("clip must be a ClipModel (painter_models.objectives.clip_loader.load_clip)")
        self.prompts = _clean_prompts(prompts, "prompt", allow_empty=False)
        self.negative_prompts = _clean_prompts(negative_prompts, "negative prompt", allow_empty=True)
        if cutouts < 1:
            raise ValueError("cutouts must be >= 1")
        lo, hi = float(cutout_scale[0]), float(cutout_scale[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"cutout_scale must satisfy 0 < lo <= hi <= 1, got {cutout_scale}")
        if mask_mode not in ("composite", "gradient"):
            raise ValueError("mask_mode must be 'composite' or 'gradient'")
        self.clip = clip
        self.negative_weight = float(negative_weight)
        self.cutouts, self.cutout_scale, self.perspective = int(cutouts), (lo, hi), float(perspective)
        self.mask_mode = mask_mode
        self.gen = torch.Generator()
        self.gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,))))
        self.register_buffer("text_features", clip.encode_text(self.prompts), persistent=False)
        self.register_buffer("negative_features", clip.encode_text(self.negative_prompts) if self.negative_prompts
                             else torch.zeros(0, self.text_features.shape[1]), persistent=False)
        self.last_similarity: float | None = None

    def train(self, mode: bool = True):
        return super().train(False)

    def augment(self, canvas: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [cutouts * B, 3, S, S] augmented cutouts (cutout-major)."""
        return make_cutouts(canvas, self.cutouts, self.clip.image_size, self.gen, self.cutout_scale, self.perspective)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        _check_canvas(canvas)
        if self.clip.device != canvas.device:
            self.to(canvas.device)
        m = self.mask_for(canvas)
        if m is not None:
            canvas = canvas * m + (1 - m) if self.mask_mode == "composite" else _gate(canvas, m)
        img = self.clip.encode_image(self.augment(canvas))  # [cutouts * B, D]
        sim = img @ self.text_features.t()  # [N, P]
        loss = 1 - sim.mean()
        self.last_similarity = sim.detach().mean()
        if self.negative_features.shape[0] and self.negative_weight:
            loss = loss + self.negative_weight * (img @ self.negative_features.t()).mean()
        return loss


# ----------------------------------------------------------------------------------------------------
# combination


_SHORT = {"FeatureLoss": "feature", "PixelLoss": "pixel", "StyleLoss": "style", "ClipTextLoss": "clip"}


class WeightedLoss(nn.Module):
    """sum_i w_i * loss_i(canvas). Terms: [(weight, loss)] or [(name, weight, loss)] or {name: (weight, loss)}.
    Terms with weight 0 are skipped. After each call `.last_terms` holds the unweighted value of each
    term (floats, keyed by name) and `.last_weighted` the weighted ones; `.last_total` the sum."""

    def __init__(self, terms):
        super().__init__()
        items = []
        if isinstance(terms, dict):
            items = [(n, w, l) for n, (w, l) in terms.items()]
        else:
            for t in terms:
                if len(t) == 2:
                    items.append((None, t[0], t[1]))
                elif len(t) == 3:
                    items.append(tuple(t))
                else:
                    raise ValueError("each term must be (weight, loss) or (name, weight, loss)")
        if not items:
            raise ValueError("combine() needs at least one (weight, loss) term")
        names, counts = [], {}
        for n, w, l in items:
            if not isinstance(l, nn.Module) and not callable(l):
                raise TypeError(f"loss term {l!r} is not callable")
            base = n or _SHORT.get(type(l).__name__, type(l).__name__.lower())
            counts[base] = counts.get(base, 0) + 1
            names.append(base if counts[base] == 1 else f"{base}_{counts[base]}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate term names: {names}")
        self.names = names
        self.weights = [float(w) for _, w, _ in items]
        self.terms = nn.ModuleList([l for _, _, l in items])
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        total = None
        self._last = {}
        for name, w, loss in zip(self.names, self.weights, self.terms):
            if w == 0:
                continue
            v = loss(canvas)
            self._last[name] = v.detach()
            total = w * v if total is None else total + w * v
        if total is None:
            total = canvas.new_zeros(()) + 0 * canvas.sum()
        self._total = total.detach()
        return total

    @property
    def last_terms(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._last.items()}

    @property
    def last_weighted(self) -> dict[str, float]:
        w = dict(zip(self.names, self.weights))
        return {k: w[k] * float(v) for k, v in self._last.items()}

    @property
    def last_total(self) -> float | None:
        return float(self._total) if hasattr(self, "_total") else None

    def __getitem__(self, name: str) -> nn.Module:
        return self.terms[self.names.index(name)]


def combine(terms) -> WeightedLoss:
    """`combine([(1.0, FeatureLoss(img)), (0.1, PixelLoss(img))])` -> WeightedLoss."""
    return WeightedLoss(terms)


def target_image(loss) -> torch.Tensor | None:
    """The photograph a loss paints towards, [1, 3, H, W]: a PixelLoss's target, a FeatureLoss's image,
    the first such image among a WeightedLoss's terms (weight > 0); None for a loss without one (a CLIP
    prompt, a style). Callers pass it to optimize.paint as target_for_seeding (new strokes go where the
    painting differs from it) and take the canvas's aspect ratio from it."""
    if isinstance(loss, PixelLoss):
        return loss.target
    if isinstance(loss, FeatureLoss):
        return loss.image
    if isinstance(loss, WeightedLoss):
        for weight, term in zip(loss.weights, loss.terms):
            image = target_image(term) if weight else None
            if image is not None:
                return image
    return None
