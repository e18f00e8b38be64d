"""A tiny CLIP trained here, on captioned synthetic shapes: text-to-paint that can be checked offline.

    neural-painters-train-clip --out painter_models/shapes_clip/np-tiny-rn-64-shapes.safetensors --threads 1
    neural-painters-train-clip --out shapes.safetensors --minutes 4            # the same, as a console script

No CLIP weights can be downloaded on the machines this pack is built on, so the text loss was only
ever run with random weights. This script makes a CLIP that really understands a small world:
coloured shapes ("a red circle", "two blue squares on the left", "a yellow triangle at the top",
"something green") on plain, tinted, textured and dark backgrounds, drawn solid, as outlines, with
brush-like streaks, dry-brush gaps and rough edges (so painted strokes look in-distribution).

The model is an open_clip `CLIP` built from the registered config `np-tiny-rn-64`
(painter_models/shapes_clip/np-tiny-rn-64.json: open_clip's ModifiedResNet at 64 px, one
bottleneck per stage, width 16, and a 2-layer text transformer on open_clip's own BPE tokenizer; a
ViT of the same cost learnt shapes several times slower here). It is trained contrastively with
several positives: a caption is a positive for every image in the batch it is true of ("red" matches every red image),
so partial captions, which negative prompts are made of, get meaning too. Images go through the
same cutout augmentations as the CLIP text loss (painter_models.objectives.clip_loss.make_cutouts) for 30 % of them.

The checkpoint is a plain open_clip state dict (safetensors, fp16) that loads like any user's CLIP
file: `load_clip("np-tiny-rn-64", PATH)`, `neural-painters paint --clip np-tiny-rn-64
--clip-weights PATH`, or Load CLIP in ComfyUI (file in models/clip, model name np-tiny-rn-64).
A model card (.md) with the zero-shot accuracies on held-out images is written next to it.
"""
from __future__ import annotations

import argparse
import colorsys
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

MODEL_NAME = "np-tiny-rn-64"
IMAGE_SIZE = 64
SUPERSAMPLE = 2

# hue, saturation, value (HSV, 0..1); black and white have no hue
COLOURS = {
    "red": (0.0, 0.85, 0.85), "orange": (0.075, 0.9, 0.95), "yellow": (0.15, 0.85, 0.95),
    "green": (0.33, 0.75, 0.7), "blue": (0.62, 0.8, 0.85), "purple": (0.78, 0.6, 0.7),
    "black": (0.0, 0.0, 0.1), "white": (0.0, 0.0, 0.97),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("middle", "left", "right", "top", "bottom")
POSITION_PHRASES = {"middle": "in the middle", "left": "on the left", "right": "on the right",
                    "top": "at the top", "bottom": "at the bottom"}
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
STYLES = ("solid", "outline", "strokes", "dry", "rough")
PREFIXES = ("", "", "", "a painting of ", "a drawing of ", "a picture of ")


# ----------------------------------------------------------------------------------------------------
# scenes


@dataclass
class Scene:
    colour: str
    shape: str
    count: int
    positions: frozenset      # every position phrase that is true of the scene (e.g. {"left", "top"})
    background: str           # "white", "tint", "paper", "dark"
    style: str


@dataclass(frozen=True)
class Caption:
    text: str
    colour: str | None
    shape: str | None
    count: int | None
    position: str | None

    def true_of(self, scene: Scene) -> bool:
        return ((self.colour is None or self.colour == scene.colour)
                and (self.shape is None or self.shape == scene.shape)
                and (self.count is None or self.count == scene.count)
                and (self.position is None or self.position in scene.positions))


def _rgb(colour: str, rng: np.random.Generator) -> np.ndarray:
    h, s, v = COLOURS[colour]
    if s > 0:
        h = (h + rng.uniform(-0.025, 0.025)) % 1.0
        s = float(np.clip(s + rng.uniform(-0.2, 0.15), 0.45, 1.0))
        v = float(np.clip(v + rng.uniform(-0.25, 0.05), 0.45, 1.0))
    else:
        v = float(np.clip(v + rng.uniform(-0.08, 0.08), 0.0, 1.0))
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def _background(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    if kind == "white":
        base = np.full(3, rng.uniform(0.93, 1.0), np.float32)
    elif kind == "tint":
        base = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.25), rng.uniform(0.85, 1.0)),
                        np.float32)
    elif kind == "paper":
        base = np.array(colorsys.hsv_to_rgb(rng.uniform(0.08, 0.16), rng.uniform(0.03, 0.15), rng.uniform(0.8, 0.95)),
                        np.float32)
    else:  # dark
        base = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.4), rng.uniform(0.05, 0.3)), np.float32)
    img = np.broadcast_to(base, (size, size, 3)).copy()
    if kind == "paper":
        low = rng.normal(0, 1, (8, 8)).astype(np.float32)
        low = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC))
        img += 0.03 * low[..., None]
    return img


def _contrast_ok(rgb: np.ndarray, background: str) -> bool:
    lum = float(rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    if background == "dark":
        return lum > 0.35
    return lum < 0.8  # white, tint, paper: no white or pale shapes


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(math.cos(angle + math.pi / 4 + k * math.pi / 2) * r * 1.15,
                math.sin(angle + math.pi / 4 + k * math.pi / 2) * r * 1.15) for k in range(4)]
    elif shape == "triangle":
        pts = [(math.cos(angle - math.pi / 2 + k * 2 * math.pi / 3) * r * 1.25,
                math.sin(angle - math.pi / 2 + k * 2 * math.pi / 3) * r * 1.25) for k in range(3)]
    else:
        raise ValueError(shape)
    return [(cx + x, cy + y) for x, y in pts]


def _shape_mask(shape: str, cx: float, cy: float, r: float, angle: float, size: int, outline: int = 0,
                aspect: float = 1.0) -> Image.Image:
    """Binary mask ('L', 0/255) at `size` px; outline > 0 draws only the border, that wide."""
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    if shape == "circle":
        rx, ry = r * aspect, r / aspect
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        d.ellipse(box, fill=None if outline else 255, outline=255 if outline else None, width=outline or 1)
    else:
        pts = _polygon(shape, cx, cy, r, angle)
        if outline:
            d.line(pts + [pts[0]], fill=255, width=outline, joint="curve")
        else:
            d.polygon(pts, fill=255)
    return m


def _streaks(rng: np.random.Generator, size: int, angle: float) -> np.ndarray:
    """Brush-bristle-like noise: random values stretched along `angle`, 0..1."""
    n = rng.uniform(0, 1, (size // 8, size)).astype(np.float32)
    img = Image.fromarray((n * 255).astype(np.uint8)).resize((size * 2, size * 2), Image.BILINEAR)
    img = img.rotate(math.degrees(angle), resample=Image.BILINEAR, center=(size, size))
    c = size // 2
    return np.asarray(img.crop((c, c, c + size, c + size)), np.float32) / 255.0


def _alpha(shape: str, style: str, cx: float, cy: float, r: float, angle: float, aspect: float,
           rng: np.random.Generator, size: int) -> np.ndarray:
    """Coverage of one object at `size` px (drawn SUPERSAMPLE times larger, box-downsampled)."""
    S = size * SUPERSAMPLE
    args = (shape, cx * SUPERSAMPLE, cy * SUPERSAMPLE, r * SUPERSAMPLE, angle, S)
    if style == "outline":
        width = int(rng.integers(2, 4)) * SUPERSAMPLE
        m = _shape_mask(*args, outline=width, aspect=aspect)
    else:
        m = _shape_mask(*args, aspect=aspect)
    if style == "rough":
        a = np.asarray(m.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.0))), np.float32) / 255
        noise = np.asarray(Image.fromarray(rng.uniform(0, 255, (S // 4, S // 4)).astype(np.uint8))
                           .resize((S, S), Image.BILINEAR), np.float32) / 255
        m = Image.fromarray(((a + 0.35 * (noise - 0.5)) > 0.5).astype(np.uint8) * 255)
    elif style == "strokes":
        # overlapping semi-transparent soft strokes across the shape (what a painting of it looks like),
        # parallel or criss-cross, slightly overflowing it
        cover = np.zeros((S, S), np.float32)
        theta = rng.uniform(0, math.pi)
        spread = rng.choice([0.15, 1.5])
        width = rng.uniform(0.35, 0.7) * r * SUPERSAMPLE
        reach = 1.4 * r * SUPERSAMPLE
        n = int(rng.integers(6, 14))
        for _ in range(n):
            t = theta + rng.uniform(-spread, spread)
            vx, vy = math.cos(t), math.sin(t)
            off = rng.uniform(-reach, reach)
            px, py = cx * SUPERSAMPLE - vy * off, cy * SUPERSAMPLE + vx * off
            length = reach * rng.uniform(0.6, 1.2)
            layer = Image.new("L", (S, S), 0)
            ImageDraw.Draw(layer).line([(px - vx * length, py - vy * length), (px + vx * length, py + vy * length)],
                                       fill=255, width=max(2, int(width * rng.uniform(0.7, 1.3))))
            cover = 1 - (1 - cover) * (1 - rng.uniform(0.5, 1.0) * np.asarray(layer, np.float32) / 255)
        grown = m.filter(ImageFilter.MaxFilter(2 * int(rng.integers(0, 3)) + 1))
        soft = Image.fromarray((cover * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
        m = Image.fromarray(np.minimum(np.asarray(grown), np.asarray(soft)))
    a = np.asarray(m.resize((size, size), Image.BOX), np.float32) / 255.0
    if style == "dry":
        gate = _streaks(rng, size, rng.uniform(0, math.pi))
        t = rng.uniform(0.2, 0.5)
        a = a * np.clip((gate - t) / 0.15 + 0.5, 0.0, 1.0)
    return a


def _place(position: str, count: int, rng: np.random.Generator, size: int):
    """Centres and radii (px) of `count` non-overlapping objects in the named region."""
    for _ in range(200):
        r_lo, r_hi = {1: (0.14, 0.26), 2: (0.1, 0.16)}.get(count, (0.09, 0.12))
        objs = []
        for _ in range(count):
            r = rng.uniform(r_lo, r_hi) * size
            lo, hi = r + 1.0, size - r - 1.0
            x_lo, x_hi, y_lo, y_hi = lo, hi, lo, hi
            if position == "left":
                x_hi = min(hi, 0.38 * size)
            elif position == "right":
                x_lo = max(lo, 0.62 * size)
            elif position == "top":
                y_hi = min(hi, 0.38 * size)
            elif position == "bottom":
                y_lo = max(lo, 0.62 * size)
            elif position == "middle":
                x_lo, x_hi = max(lo, 0.4 * size), min(hi, 0.6 * size)
                y_lo, y_hi = x_lo, x_hi
            if x_lo > x_hi or y_lo > y_hi:
                break
            objs.append((rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi), r))
        if len(objs) == count and all(math.hypot(a[0] - b[0], a[1] - b[1]) > a[2] + b[2] + 2
                                      for i, a in enumerate(objs) for b in objs[i + 1:]):
            return objs
    raise RuntimeError(f"cannot place {count} objects {position}")


def _true_positions(objs, size: int) -> frozenset:
    xs = [o[0] / size for o in objs]
    ys = [o[1] / size for o in objs]
    out = set()
    if max(xs) < 0.4:
        out.add("left")
    if min(xs) > 0.6:
        out.add("right")
    if max(ys) < 0.4:
        out.add("top")
    if min(ys) > 0.6:
        out.add("bottom")
    if len(objs) == 1 and 0.35 < xs[0] < 0.65 and 0.35 < ys[0] < 0.65:
        out.add("middle")
    return frozenset(out)


def random_scene(rng: np.random.Generator, size: int = IMAGE_SIZE, style: str | None = None,
                 count: int | None = None, colours=tuple(COLOURS)):
    """(Scene, image uint8 [size, size, 3]) with a colour drawn from `colours`."""
    colour = str(rng.choice(list(colours)))
    background = str(rng.choice(["white", "white", "white", "tint", "paper", "dark"]))
    rgb = _rgb(colour, rng)
    while not _contrast_ok(rgb, background):
        background = str(rng.choice(["white", "tint", "paper", "dark"]))
    shape = str(rng.choice(SHAPES))
    count = int(count or rng.choice([1, 1, 1, 1, 2, 3]))
    style = style or str(rng.choice(STYLES, p=[0.4, 0.05, 0.35, 0.15, 0.05]))
    position = str(rng.choice(["anywhere", "anywhere"] + list(POSITIONS)))
    if count > 1 and position == "middle":
        position = "anywhere"
    objs = _place(position, count, rng, size)
    img = _background(background, rng, size)
    for cx, cy, r in objs:
        angle = rng.uniform(-0.45, 0.45) if shape == "square" else rng.uniform(0, 2 * math.pi)
        aspect = rng.uniform(0.9, 1.1)
        a = _alpha(shape, style, cx, cy, r, angle, aspect, rng, size)[..., None]
        colour_rgb = _rgb(colour, rng) if rng.uniform() < 0.3 else rgb
        img = img * (1 - a) + colour_rgb * a
    if rng.uniform() < 0.3:
        img = np.asarray(Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
                         .filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9))), np.float32) / 255
    img = img + rng.normal(0, rng.uniform(0, 0.03), img.shape).astype(np.float32)
    scene = Scene(colour, shape, count, _true_positions(objs, size), background, style)
    return scene, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def caption_text(colour, shape, count, position, prefix: str = "") -> str:
    """The one way captions (and prompts) are worded: 'two red circles on the left', 'something red'."""
    if shape is None:
        if colour is None:
            raise ValueError("a caption needs a colour or a shape")
        text = f"something {colour}" if count is None else \
            " ".join([COUNT_WORDS[count], colour, "shapes" if count > 1 else "shape"])
    else:
        words = [COUNT_WORDS[count or 1], colour or "", shape + ("s" if count and count > 1 else "")]
        text = " ".join(w for w in words if w)
    if text.startswith("a ") and text[2] in "aeiou":
        text = "an " + text[2:]
    if position:
        text += " " + POSITION_PHRASES[position]
    return prefix + text


def random_caption(scene: Scene, rng: np.random.Generator) -> Caption:
    """A true caption of the scene, with attributes dropped at random (partial captions teach the
    words alone: 'red', 'a circle', 'something green on the right')."""
    u = rng.uniform()
    if u < 0.06:
        return Caption(scene.colour, scene.colour, None, None, None)      # a bare colour word
    colour = scene.colour if rng.uniform() < 0.8 else None
    shape = scene.shape if rng.uniform() < 0.85 or colour is None else None
    count = scene.count if shape is not None or rng.uniform() < 0.5 else None
    position = None
    if scene.positions and rng.uniform() < 0.6:
        position = str(rng.choice(sorted(scene.positions)))
    prefix = str(rng.choice(PREFIXES))
    return Caption(caption_text(colour, shape, count, position, prefix), colour, shape, count, position)


def batch(rng: np.random.Generator, n: int, size: int = IMAGE_SIZE, easy: float = 0.0):
    """n scenes, images [n, 3, size, size] in 0..1 and one true caption per image.

    Most images of a batch share one or two colours: colour alone then tells few of them apart, so the
    contrastive loss has to learn shapes, counts and positions (in fully random batches it learns
    colour first and shapes barely at all). A fraction `easy` are single solid shapes (a curriculum:
    shapes are learnt on those first)."""
    batch_colours = tuple(rng.choice(list(COLOURS), int(rng.integers(1, 3)), replace=False))
    scenes, images, captions = [], [], []
    for _ in range(n):
        colours = batch_colours if rng.uniform() < 0.85 else tuple(COLOURS)
        if rng.uniform() < easy:
            s, img = random_scene(rng, size, style="solid", count=1, colours=colours)
        else:
            s, img = random_scene(rng, size, colours=colours)
        scenes.append(s)
        images.append(img)
        captions.append(random_caption(s, rng))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return scenes, x, captions


# ----------------------------------------------------------------------------------------------------
# model


def config_path() -> str:
    from painter_models.objectives.clip_loader import PACK_CLIP_CONFIGS
    return os.path.join(PACK_CLIP_CONFIGS, MODEL_NAME + ".json")


def build_model(seed: int = 0):
    """A fresh open_clip CLIP from the registered config, with its tokenizer."""
    import open_clip
    from painter_models.objectives.clip_loader import register_pack_configs
    register_pack_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(MODEL_NAME, pretrained=None)
    return model, open_clip.get_tokenizer(MODEL_NAME)


def augment(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """The CLIP text loss's cutouts (perspective + resized crop) on a share p of the images."""
    from painter_models.objectives.clip_loss import make_cutouts
    out = x.clone()
    for i in range(len(x)):
        if float(torch.rand(1, generator=gen)) < p:
            out[i:i + 1] = make_cutouts(x[i:i + 1], 1, (x.shape[-2], x.shape[-1]), gen)
    return out


def normalise(model, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(model.visual.image_mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.image_std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def multi_positive_loss(image_f, text_f, truth, logit_scale):
    """Symmetric InfoNCE where truth[i, j] = caption j is true of image i (several positives each)."""
    logits = logit_scale * image_f @ text_f.t()
    t = truth.float()
    li = -(F.log_softmax(logits, 1) * t / t.sum(1, keepdim=True)).sum(1).mean()
    lt = -(F.log_softmax(logits, 0) * t / t.sum(0, keepdim=True)).sum(0).mean()
    return (li + lt) / 2


# ----------------------------------------------------------------------------------------------------
# zero-shot evaluation


def heldout(n: int, seed: int = 1_000_003, size: int = IMAGE_SIZE, count: int | None = None):
    rng = np.random.default_rng(seed)
    scenes, imgs = [], []
    for _ in range(n):
        s, img = random_scene(rng, size, count=count)
        scenes.append(s)
        imgs.append(img)
    return scenes, torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def zero_shot(model, tokenizer, n: int = 600, seed: int = 1_000_003) -> dict:
    """Zero-shot accuracies on held-out images (another seed than training):
    colour_shape   which of the 24 'a {colour} {shape}' captions (single objects; chance 1/24)
    colour, shape  the same choice, scored on one attribute
    position       which of the 5 position phrases, colour and shape given (objects with a position)
    count          'a / two / three {colour} {shape}(s)', colour and shape given (chance 1/3)
    by_style       colour_shape accuracy per drawing style"""
    model.eval()

    def encode_text(texts):
        f = model.encode_text(tokenizer(texts))
        return f / f.norm(dim=-1, keepdim=True)

    def encode_images(x):
        f = torch.cat([model.encode_image(normalise(model, x[i:i + 256])) for i in range(0, len(x), 256)])
        return f / f.norm(dim=-1, keepdim=True)

    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    cs_text = encode_text([caption_text(c, s, 1, None) for c, s in pairs])
    scenes, x = heldout(n, seed, count=1)
    f = encode_images(x)
    pred = (f @ cs_text.t()).argmax(1).tolist()
    ok_cs = [pairs[p] == (s.colour, s.shape) for p, s in zip(pred, scenes)]
    ok_c = [pairs[p][0] == s.colour for p, s in zip(pred, scenes)]
    ok_s = [pairs[p][1] == s.shape for p, s in zip(pred, scenes)]
    by_style = {st: float(np.mean([o for o, s in zip(ok_cs, scenes) if s.style == st])) for st in STYLES}

    pos_ok = []
    for fi, s in zip(f, scenes):
        if not s.positions:
            continue
        t = encode_text([caption_text(s.colour, s.shape, 1, p) for p in POSITIONS])
        pos_ok.append(POSITIONS[int((t @ fi).argmax())] in s.positions)

    scenes_n, xn = heldout(n // 2, seed + 1)
    fn = encode_images(xn)
    count_ok = []
    for fi, s in zip(fn, scenes_n):
        t = encode_text([caption_text(s.colour, s.shape, k, None) for k in (1, 2, 3)])
        count_ok.append(int((t @ fi).argmax()) + 1 == s.count)
    return {"colour_shape": float(np.mean(ok_cs)), "colour": float(np.mean(ok_c)), "shape": float(np.mean(ok_s)),
            "position": float(np.mean(pos_ok)), "count": float(np.mean(count_ok)),
            "by_style": by_style, "images": n, "seed": seed}


# ----------------------------------------------------------------------------------------------------
# training


def train(steps: int = 1200, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, minutes: float = 0.0,
          eval_every: int = 0, locked_text: float = 0.3, log=print) -> tuple:
    """Train from scratch; returns (model, tokenizer, summary). `minutes` > 0 stops early at that time;
    `eval_every` > 0 logs a quick zero-shot accuracy (200 held-out images) that often.

    The text tower is locked (not trained) for the first `locked_text` share of the steps: its random
    features already tell captions apart, so the image tower must learn shapes to match them. Trained
    together from the start, both towers first agree to ignore shape words (neither side has shape
    features for the other to follow), and shapes came out at chance after 500 steps."""
    locked_text_steps = int(locked_text * steps)
    model, tokenizer = build_model(seed)
    with torch.no_grad():
        # the text features are read at the end-of-text token; with its own embedding at the usual random
        # init it dominates them, every caption starts out the same and shape words are learnt very slowly
        model.token_embedding.weight[[tokenizer.sot_token_id, tokenizer.eot_token_id]] = 0
    model.train()
    groups = []
    for tower in ("visual", "text"):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith("visual.") == (tower == "visual")]
        decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
        groups += [{"params": decay, "weight_decay": 0.05, "tower": tower},
                   {"params": rest, "weight_decay": 0.0, "tower": tower}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    warmup = max(1, steps // 20)
    t0 = time.perf_counter()
    done = 0
    for step in range(steps):
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for g in opt.param_groups:
            locked = g["tower"] == "text" and step < locked_text_steps
            g["lr"] = 0.0 if locked else lr * scale
        scenes, x, captions = batch(rng, batch_size, easy=0.5 * (1 - step / steps))
        x = augment(x, gen, p=0.3)
        truth = torch.tensor([[c.true_of(s) for c in captions] for s in scenes])
        image_f = F.normalize(model.encode_image(normalise(model, x)), dim=-1)
        text_f = F.normalize(model.encode_text(tokenizer([c.text for c in captions])), dim=-1)
        loss = multi_positive_loss(image_f, text_f, truth, model.logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {float(loss.detach()):.3f}  lr {lr * scale:.2e}  {time.perf_counter() - t0:6.1f} s")
        if eval_every and done % eval_every == 0:
            acc = zero_shot(model, tokenizer, 200)
            model.train()
            log(f"step {done:5d}  zero-shot " + "  ".join(f"{k} {acc[k]:.0%}" for k in
                                                         ("colour", "shape", "position", "count")))
        if minutes and time.perf_counter() - t0 > 60 * minutes:
            log(f"time budget of {minutes:g} min reached at step {done}")
            break
    model.eval()
    summary = {"steps": done, "batch_size": batch_size, "lr": lr, "seed": seed,
               "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
    return model, tokenizer, summary


def save(model, path: str, summary: dict, accuracy: dict, command: str) -> None:
    """fp16 open_clip state dict (safetensors, atomically) plus a model card next to it."""
    from safetensors.torch import save_file
    from painter_models.files import atomic_write, write_text
    sd = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    meta = {"open_clip_model": MODEL_NAME, "training": json.dumps(summary), "zero_shot": json.dumps(accuracy),
            "command": command}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=meta))
    card = model_card(path, summary, accuracy, command)
    write_text(os.path.splitext(path)[0] + ".md", card)


def model_card(path: str, summary: dict, acc: dict, command: str) -> str:
    styles = ", ".join(f"{k} {v:.0%}" for k, v in acc["by_style"].items())
    return f"""# Tiny CLIP for coloured shapes ({os.path.basename(path)})

An open_clip CLIP (`{MODEL_NAME}`: ModifiedResNet at 64 px, layers 1-1-1-1, width 16; text transformer
2 layers, width 64, open_clip's BPE tokenizer; config painter_models/shapes_clip/{MODEL_NAME}.json) trained by `training/tiny_clip.py` on captioned synthetic shapes.
It understands a small world only: {", ".join(COLOURS)} {", ".join(s + "s" for s in SHAPES)}, one to three of them,
{", ".join(POSITION_PHRASES.values())}, and partial captions ("something red", "a circle").
It exists so that text-to-paint can be run and checked offline; for real prompts use a real CLIP
(e.g. ViT-B-32 with OpenAI's weights).

Load it like any CLIP file: `load_clip("{MODEL_NAME}", "{os.path.basename(path)}")`, or
`neural-painters paint --prompt "a red circle" --clip {MODEL_NAME} --clip-weights {os.path.basename(path)}`,
or in ComfyUI put the file in models/clip and set Load CLIP's model_name to `{MODEL_NAME}`.

## Zero-shot accuracy on {acc["images"]} held-out synthetic images (seed {acc["seed"]}, never trained on)

| task | accuracy | chance |
|---|---|---|
| colour and shape ({len(COLOURS) * len(SHAPES)} captions "a red circle") | {acc["colour_shape"]:.1%} | {1 / (len(COLOURS) * len(SHAPES)):.1%} |
| colour alone (from the same choice) | {acc["colour"]:.1%} | {1 / len(COLOURS):.1%} |
| shape alone (from the same choice) | {acc["shape"]:.1%} | {1 / len(SHAPES):.1%} |
| position (5 phrases, colour and shape given) | {acc["position"]:.1%} | 20% |
| count (a / two / three, colour and shape given) | {acc["count"]:.1%} | 33% |

Colour and shape by drawing style: {styles}.

## Training

| | |
|---|---|
| steps | {summary["steps"]} |
| batch size | {summary["batch_size"]} |
| learning rate | {summary["lr"]} (AdamW, warm-up then cosine) |
| seed | {summary["seed"]} |
| wall time | {summary["seconds"]} s on {summary["threads"]} CPU thread(s), {platform.machine()}, torch {torch.__version__} |
| date | {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC |

Command: `{command}`
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="neural-painters-train-clip", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="checkpoint to write (.safetensors); the model card goes next to it")
    ap.add_argument("--steps", type=int, default=1200, help="optimiser steps (default 1200)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this many minutes (0: run all steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--eval-images", type=int, default=600, help="held-out images for the zero-shot accuracy")
    ap.add_argument("--eval-every", type=int, default=0, help="log a quick zero-shot accuracy every N steps")
    args = ap.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        ap.error(f"--out {args.out!r}: the checkpoint file name must end in .safetensors")
    torch.set_num_threads(args.threads)
    model, tokenizer, summary = train(args.steps, args.batch_size, args.lr, args.seed, args.minutes, args.eval_every,
                                      log=lambda *a: print(*a, flush=True))
    acc = zero_shot(model, tokenizer, args.eval_images)
    print(json.dumps(acc, indent=1))
    command = "neural-painters-train-clip " + shlex.join(argv if argv is not None else sys.argv[1:])
    save(model, args.out, summary, acc, command)
    print(f"wrote {args.out} and its model card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
