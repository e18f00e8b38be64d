"""Composable painting objectives. Every loss is an nn.Module: loss(canvas [B, 3, H, W] in 0..1) -> scalar.

Owns the base of the losses that fit targets and masks to the canvas (FittedLoss), the pixel, feature and
style losses, and their combination; CLIP text guidance is clip_loss.py, the image operations image_ops.py.

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

Combine terms with `combine([(weight, loss), ...])` / `WeightedLoss`: it returns the weighted sum and
keeps the latest per-term values in `.last_terms` (unweighted floats) for logging.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import FeatureExtractor, build_backbone
from .image_ops import fit_to, gate_gradient, gaussian_blur, srgb_to_oklab
from ..images import image_tensor, mask_tensor

__all__ = ["FEATURE_COLOUR_SIGMA", "FEATURE_COLOUR_WEIGHT", "FEATURE_STRUCTURE_SCALE", "STYLE_LAYERS", "FeatureLoss",
           "FittedLoss", "PixelLoss", "StyleLoss", "WeightedLoss", "check_canvas", "combine", "gram", "target_image"]


# ----------------------------------------------------------------------------------------------------
# inputs


def check_canvas(canvas: torch.Tensor) -> None:
    """What every loss takes: a tensor [B, 3, H, W]; ValueError otherwise."""
    if not isinstance(canvas, torch.Tensor) or canvas.dim() != 4 or canvas.shape[1] != 3:
        shape = tuple(canvas.shape) if isinstance(canvas, torch.Tensor) else type(canvas).__name__
        raise ValueError(f"canvas must be a tensor [B, 3, H, W] in 0..1, got {shape}")


def _weighted_mean(d: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Mean of d [B, C, h, w] weighted by m [1, 1, h, w] (normalised by the mask's mean)."""
    if m is None:
        return d.mean()
    return (d * m).mean() / m.mean().clamp_min(1e-8)


class FittedLoss(nn.Module):
    """A loss's base: holds an image and/or a mask; gives versions fitted to a canvas size, cached per
    size/device (subclassed by the CLIP text and ImageNet class losses too)."""

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


class PixelLoss(FittedLoss):
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
        check_canvas(canvas)
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


class _BackboneLoss(FittedLoss):
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
        check_canvas(canvas)
        self._follow(canvas)
        m = self.mask_for(canvas)
        gated = gate_gradient(canvas, m)
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
        check_canvas(canvas)
        self._follow(canvas)
        m = self.mask_for(canvas)
        feats = self.backbone(gate_gradient(canvas, m))
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
