"""The shapes CLIP's synthetic world: captioned scenes of coloured shapes, drawn at random.

Coloured shapes ("a red circle", "two blue squares on the left", "a yellow triangle at the top",
"something green") on plain, tinted, textured and dark backgrounds, drawn solid, as outlines, with
brush-like streaks, dry-brush gaps and rough edges (so painted strokes look in-distribution).
Owns the vocabulary (colours, shapes, positions, styles), Scene and Caption, drawing a scene
(random_scene), wording captions (caption_text, random_caption), training batches and held-out images.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

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


# ----------------------------------------------------------------------------------------------------
# captions and batches


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


def heldout_scenes(n: int, seed: int = 1_000_003, size: int = IMAGE_SIZE, count: int | None = None):
    """n scenes and their images [n, 3, size, size] in 0..1, from their own seed (never trained on)."""
    rng = np.random.default_rng(seed)
    scenes, imgs = [], []
    for _ in range(n):
        s, img = random_scene(rng, size, count=count)
        scenes.append(s)
        imgs.append(img)
    return scenes, torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0
