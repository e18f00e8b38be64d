"""Guided painting checked by judges that were not optimised for: the fixed lists and the one recipe
that tests (tests/test_guided_painting.py) and the benchmark (bench/bench_guided.py) share.

Text:     the shipped painter + the shapes CLIP (painter_models/shapes_clip) paint each prompt of
          SHAPE_PROMPTS; neural_painters_training.judges.ShapeJudge (pixels only) judges colour, position and shape.
          What holds today: the prompt's colour is the painting's main colour and the position is
          right; the shape is not (see BENCHMARKS.md). NEGATIVE_CHECK: "a circle" with the negative
          prompt "red" is not red (where "a red circle" is).
ImageNet: the shipped painter + EfficientNet-Lite0 (ImageNetClassLoss) paint each class of
          IMAGENET_CLASSES; EfficientNet-Lite1 (neural_painters_training.judges.ImageNetJudge) must rank the class
          higher in its painting than in the paintings of the other classes (the controls). Its top 5
          is reached only by a longer recipe (BENCHMARKS.md).
"""
from __future__ import annotations

import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_PAINTER = os.path.join(ROOT, "painter_models", "weights", "dry_brush.safetensors")

# prompt -> (colour, shape, position) the pixel judge must see
SHAPE_PROMPTS = {
    "a red circle": ("red", "circle", None),
    "a blue square": ("blue", "square", None),
    "a green triangle on the right": ("green", "triangle", "right"),
}
# prompt, negative prompt, and the prompt that asks for what the negative pushes away
NEGATIVE_CHECK = ("a circle", "red", "a red circle")

TEXT_RECIPE = dict(size=64, strokes=16, rounds=1, steps=150, cutouts=8, negative_weight=1.0)
IMAGENET_CLASSES = ("goldfish", "lemon")
# opaque strokes: the dry brush's translucent texture reads as fur to both networks (indri, howler monkey)
IMAGENET_RECIPE = dict(size=96, strokes=100, rounds=2, steps=160, cutouts=2, input_size=128, cutout_scale=(0.5, 1.0),
                       opaque=True)


def shapes_clip_path() -> str:
    from .tiny_clip import MODEL_NAME, config_path
    return os.path.join(os.path.dirname(config_path()), MODEL_NAME + "-shapes.safetensors")


def load_shapes_clip(device="cpu"):
    from painter_models.objectives.clip_loader import load_clip
    from .tiny_clip import MODEL_NAME
    return load_clip(MODEL_NAME, shapes_clip_path(), device=device)


def load_shipped_painter(device="cpu"):
    from painter_models.painter.checkpoint import load_painter
    return load_painter(SHIPPED_PAINTER, device=device)


def paint_prompt(painter, clip, prompt: str, negative: str | None = None, seed: int = 0, **overrides):
    """PaintResult of `prompt` (and an optional negative prompt) with TEXT_RECIPE."""
    from painter_models.objectives.clip_loss import ClipTextLoss
    from painter_models.painting.optimize import paint
    r = {**TEXT_RECIPE, **overrides}
    loss = ClipTextLoss(clip, [prompt], [negative] if negative else [], negative_weight=r["negative_weight"],
                        cutouts=r["cutouts"], seed=seed)
    return paint(painter, loss, r["size"], strokes=r["strokes"], rounds=r["rounds"], steps=r["steps"], seed=seed)


def paint_class(painter, classifier, name: str, seed: int = 0, **overrides):
    """PaintResult of an ImageNet class with IMAGENET_RECIPE (classifier: the Lite0 nn.Module)."""
    from painter_models.objectives.imagenet_loss import ImageNetClassLoss
    from painter_models.painting.optimize import paint
    r = {**IMAGENET_RECIPE, **overrides}
    loss = ImageNetClassLoss(name, classifier=classifier, cutouts=r["cutouts"], input_size=r["input_size"],
                             cutout_scale=r["cutout_scale"], seed=seed)
    return paint(painter, loss, r["size"], strokes=r["strokes"], rounds=r["rounds"], steps=r["steps"], seed=seed,
                 opaque=r["opaque"])


def contact_sheet(canvases, labels, path: str, scale: int = 2) -> None:
    """A row of canvases ([1, 3, H, W]) with a label under each, written atomically as PNG."""
    import numpy as np
    from PIL import Image, ImageDraw
    from painter_models.files import atomic_write
    tiles = [Image.fromarray((c[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5)
                             .astype(np.uint8)) for c in canvases]
    w, h = max(t.width for t in tiles) * scale, max(t.height for t in tiles) * scale
    sheet = Image.new("RGB", (len(tiles) * (w + 8) + 8, h + 40), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (tile, label) in enumerate(zip(tiles, labels)):
        x = 8 + k * (w + 8)
        sheet.paste(tile.resize((w, h), Image.NEAREST), (x, 8))
        for line_no, line in enumerate(str(label).split("\n")[:2]):
            draw.text((x, h + 12 + 12 * line_no), line[: w // 6], fill="black")
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))


@torch.no_grad()
def red_share(canvas) -> float:
    from .judges import ShapeJudge
    return ShapeJudge().colour_shares(canvas)[1]["red"]
