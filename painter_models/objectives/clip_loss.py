"""CLIP text guidance: ClipTextLoss (CLIPDraw-style: a prompt's cosine similarity over augmented cutouts
of the canvas) and the cutouts themselves (make_cutouts, also the ImageNet class loss's augmentations).

Masks ([H, W], [1, H, W], [1, 1, H, W], numpy, PIL "L"; values 0..1, 1 = the loss applies there):
mask_mode="composite" (default): the canvas is composited onto white outside the mask
(canvas * m + (1 - m)), so CLIP sees only the region; mask_mode="gradient": CLIP sees the whole
canvas, gradients reach only the region.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .clip_loader import ClipModel
from .image_ops import gate_gradient, perspective_warp
from .losses import FittedLoss, check_canvas

__all__ = ["ClipTextLoss", "make_cutouts"]


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


class ClipTextLoss(FittedLoss):
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
        check_canvas(canvas)
        if self.clip.device != canvas.device:
            self.to(canvas.device)
        m = self.mask_for(canvas)
        if m is not None:
            canvas = canvas * m + (1 - m) if self.mask_mode == "composite" else gate_gradient(canvas, m)
        img = self.clip.encode_image(self.augment(canvas))  # [cutouts * B, D]
        sim = img @ self.text_features.t()  # [N, P]
        loss = 1 - sim.mean()
        self.last_similarity = sim.detach().mean()
        if self.negative_features.shape[0] and self.negative_weight:
            loss = loss + self.negative_weight * (img @ self.negative_features.t()).mean()
        return loss
