"""Colour palettes for painting: parse user palettes, k-means palettes from an image, snapping.

A palette is a float tensor [K, 3] of RGB colours in 0..1.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from ..images import image_tensor

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
MAX_COLOURS = 256


class PaletteError(ValueError):
    """A palette that cannot be used; the message says what is wrong."""


def parse_hex(colour: str) -> tuple[float, float, float]:
    s = colour.strip()
    m = _HEX.match(s)
    if not m:
        raise PaletteError(f"{colour!r} is not a hex colour: use #rrggbb or #rgb, e.g. #1a2b3c")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def parse_palette(spec) -> torch.Tensor:
    """A palette from a list of hex strings, a comma/space separated string of hex colours,
    or an array/tensor [K, 3] (values in 0..1, or 0..255 when any value is above 1)."""
    if isinstance(spec, str):
        parts = [p for p in re.split(r"[,\s;]+", spec.strip()) if p]
        if not parts:
            raise PaletteError("empty palette: give hex colours such as '#000000,#ffffff'")
        pal = torch.tensor([parse_hex(p) for p in parts], dtype=torch.float32)
    elif isinstance(spec, (list, tuple)) and spec and all(isinstance(p, str) for p in spec):
        pal = torch.tensor([parse_hex(p) for p in spec], dtype=torch.float32)
    else:
        pal = torch.as_tensor(np.asarray(spec, dtype=np.float32) if not isinstance(spec, torch.Tensor) else spec,
                              dtype=torch.float32).detach().cpu()
        if pal.dim() != 2 or pal.shape[1] != 3 or pal.shape[0] == 0:
            raise PaletteError(f"a palette must be [K, 3] RGB colours, got shape {list(pal.shape)}")
        if not torch.isfinite(pal).all() or (pal < 0).any():
            raise PaletteError("palette colours must be finite and non-negative")
        if pal.max() > 1.0:
            if pal.max() > 255:
                raise PaletteError("palette values must be in 0..1 or 0..255")
            pal = pal / 255.0
    if len(pal) > MAX_COLOURS:
        raise PaletteError(f"a palette has at most {MAX_COLOURS} colours, got {len(pal)}")
    return pal.contiguous()


def parse_palette_spec(spec: str):
    """A palette setting as users write it: '' -> None (any colour); 'k' -> k, a k-means palette of the
    photograph (1..MAX_COLOURS); '#rrggbb, #rgb, ...' -> a [K, 3] palette."""
    text = (spec or "").strip()
    if not text:
        return None
    if text.isdigit():
        k = int(text)
        if not 1 <= k <= MAX_COLOURS:
            raise PaletteError(f"palette {k}: a k-means palette has 1..{MAX_COLOURS} colours")
        return k
    try:
        return parse_palette(text)
    except PaletteError as e:
        raise PaletteError(f"palette: {e}; write e.g. '#1b1b1b, #e0c080, #3060a0', or a number of colours to "
                           f"take from the photograph") from None


def to_hex(palette: torch.Tensor) -> list[str]:
    p = (palette.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.int64).tolist()
    return ["#%02x%02x%02x" % tuple(c) for c in p]


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of [..., 3] colours."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device)
    return (rgb * w).sum(-1)


def greyscale_palette(palette: torch.Tensor) -> torch.Tensor:
    """Each colour replaced by its grey (luma); duplicates removed, sorted dark to light."""
    g = torch.unique(torch.round(luminance(palette) * 255) / 255)
    return g[:, None].expand(-1, 3).contiguous()


def nearest(colours: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Index of the nearest palette entry (Euclidean RGB) for colours [..., 3]."""
    d = torch.cdist(colours.reshape(-1, 3).float(), palette.to(colours.device).float())
    return d.argmin(-1).reshape(colours.shape[:-1])


def snap(colours: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    return palette.to(colours.device, colours.dtype)[nearest(colours, palette)]


def _image_pixels(image) -> torch.Tensor:
    x = image_tensor(image).cpu()
    return x[0].reshape(3, -1).t().contiguous()


def kmeans_palette(image, k: int, seed: int = 0, iters: int = 25, sample: int = 40_000,
                   greyscale: bool = False) -> torch.Tensor:
    """A k-colour palette of an image by k-means (k-means++ seeding, deterministic for a seed),
    sorted dark to light. With `greyscale`, the clusters are of the image's grey levels."""
    k = int(k)
    if not 1 <= k <= MAX_COLOURS:
        raise PaletteError(f"palette size must be 1..{MAX_COLOURS}, got {k}")
    x = _image_pixels(image).double()
    if greyscale:
        x = luminance(x)[:, None].expand(-1, 3).contiguous()
    g = torch.Generator().manual_seed(int(seed))
    if len(x) > sample:
        x = x[torch.randperm(len(x), generator=g)[:sample]]
    # k-means++ seeding
    centres = [x[int(torch.randint(len(x), (1,), generator=g))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        if float(d2.sum()) <= 1e-12:
            break
        i = int(torch.multinomial(d2 / d2.sum(), 1, generator=g))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = torch.stack(centres)
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        new = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=len(c)).to(x.dtype)[:, None]
        new = torch.where(counts > 0, new / counts.clamp_min(1), c)
        if torch.allclose(new, c, atol=1e-6):
            c = new
            break
        c = new
    c = c[torch.argsort(luminance(c))]
    return c.float().clamp(0, 1).contiguous()
