"""Differentiable rendering of a StrokeSet onto a canvas of any size, in bounded memory.

    render_canvas(painter, strokes, background=None) -> Tensor [1, 3, H, W] in 0..1

How it works (and why memory stays bounded):
  1. Strokes are processed in painting order in *groups* (a few hundred strokes, capped by the
     number of canvas pixels their boxes cover). The painter renders a whole group in one batch
     (its stroke_size tile per stroke: colour and alpha).
  2. A painter that knows its brush's ink by box size (brush/ink.py) scales each stroke's colour and alpha
     by the ink MyPaint lays in a box that size (a thin stroke in a small box fades).
  3. Each stroke's tile is resampled into its box with two small matrices (a separable
     antialiased tent filter: bilinear when enlarging, area-like when shrinking), so only the
     pixels of the box's crop are ever computed. The matrices depend smoothly on the box
     (cx, cy, side), so gradients reach the position and the scale.
  4. The canvas is cut into square tiles (side chosen per group from the stroke sizes). Every
     (stroke, tile) overlap is composited per tile with the exact closed form of alpha-over in
     painting order (transmittance = reverse cumulative product), vectorised over tiles.
  5. With gradients on and a large job, each group runs under gradient checkpointing, so autograd
     keeps only the canvas between groups; a group's working set is recomputed in the backward.

Bounded work: a render whose crop pixels (render_work) exceed limits.MAX_RENDER_WORK is refused
before anything is allocated, and `check()` (e.g. a user's Cancel) runs before every group.

Blending:
  "alpha":  the painter's own alpha and colour (premultiplied), exact alpha-over.
  "linear": Nakano's blend: mask = darkness of the painter's stroke-over-white normalised per
            stroke (painter_models.painting.blending.darkness_mask), colour = the action's RGB.

A painter is a NeuralPainter (painter_models.load_painter), a bare Generator, a RasterProgram
(exact differentiable rasteriser, handy in tests), or any callable actions -> (colour, alpha)
with a `stroke_size` attribute.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..brush.actions import NAKANO, BrushReach, get_layout, hold_whole
from ..brush.ink import InkBySize
from .blending import darkness_mask, over
from ..images import background_canvas
from ..limits import MAX_RENDER_WORK, PAINTER_STROKE_WORK, check_work
from ..brush.strokes import StrokeSet

TILE_MIN, TILE_MAX = 8, 128       # canvas tiles are powers of two in this range
GROUP_MAX_STROKES = 512           # painter batch cap per group
GROUP_PIXELS = 6_000_000          # cap on crop pixels per group (x 4 channels x 4 bytes = 96 MB a copy)
AUTO_CHECKPOINT_PIXELS = 12_000_000  # above this many crop pixels in all, checkpoint groups (auto mode)


# ----------------------------------------------------------------------------------------------
# painters


@dataclass
class PainterFn:
    """A painter reduced to what rendering needs: fn(actions) -> (colour, alpha), stroke size, device."""
    fn: object
    stroke_size: int
    device: torch.device
    layout: object = NAKANO
    # how far the brush paints from a path: strokes are moved into boxes that hold them whole (None:
    # a painter that draws what its tile shows, e.g. a test double)
    reach: BrushReach | None = field(default_factory=BrushReach)
    # the brush's ink in boxes of other sizes than the tile (None: strokes scaled as the tile shows them)
    ink: InkBySize | None = None


def as_painter(painter) -> PainterFn:
    """Adapt a NeuralPainter, Generator, RasterProgram or callable with `stroke_size`."""
    if isinstance(painter, PainterFn):
        return painter
    from ..painter.checkpoint import NeuralPainter
    from ..painter.model import Generator
    if isinstance(painter, NeuralPainter):
        return PainterFn(painter.generator, painter.stroke_size, painter.device, painter.layout, painter.reach,
                         painter.ink)
    if isinstance(painter, Generator):
        dev = next(painter.parameters()).device
        return PainterFn(painter, painter.config.stroke_size, dev, NAKANO)
    if hasattr(painter, "render_torch"):  # RasterProgram
        return PainterFn(painter.render_torch, int(painter.size), torch.device(getattr(painter, "device", "cpu")),
                         getattr(painter, "layout", NAKANO), painter.reach)
    if callable(painter) and hasattr(painter, "stroke_size"):
        return PainterFn(painter, int(painter.stroke_size), torch.device(getattr(painter, "device", "cpu")),
                         get_layout(getattr(painter, "layout", NAKANO)), getattr(painter, "reach", None))
    raise TypeError(f"not a painter: {type(painter).__name__}; pass a NeuralPainter (load_painter), a Generator, "
                    f"a RasterProgram or a callable actions -> (colour, alpha) with a stroke_size attribute")


def stroke_layers(painter: PainterFn, actions: torch.Tensor, blend: str, layout=None) -> torch.Tensor:
    """[N, 4, S, S]: premultiplied colour (3) and alpha (1) of each stroke in its own square.

    For a painter of strokes held whole (painter.reach), alpha fades to 0 over the tile's outer
    EDGE_FADE pixels: the brush paints nothing there (a pixel of margin past its reach), so what a
    network leaves there is haze, and it would show as the box's straight edge on the canvas. Alpha
    below HAZE is dropped too: the brush's strokes the painters learnt are 8-bit, so fainter paint is a
    network's haze, and boxes that hold whole strokes would spread it over the canvas."""
    colour, alpha = painter.fn(actions)
    if painter.reach is not None:
        faded = alpha * _edge_fade(alpha.shape[-1], alpha.device, alpha.dtype)
        # haze dropped from the values only: its gradient still tells a stroke where to grow
        alpha = faded + (faded * (alpha >= HAZE) - faded).detach()
    if blend == "alpha":
        return torch.cat([colour * alpha, alpha], 1)
    layout = get_layout(layout or painter.layout)
    mask = darkness_mask(colour * alpha + (1 - alpha))            # of the stroke over white
    rgb = actions[:, layout.indices("red", "green", "blue")]
    return torch.cat([mask * rgb[:, :, None, None], mask], 1)


def with_ink(layers: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Stroke layers [N, 4, S, S] with their ink scaled by gain [N] (InkBySize.gain), alpha held at most 1."""
    most = 1 / layers[:, 3].detach().amax((1, 2)).clamp_min(1e-6)
    return layers * torch.minimum(gain, most)[:, None, None, None]


EDGE_FADE = 2.0        # pixels
HAZE = 1.0 / 255       # alpha


def _edge_fade(size: int, device, dtype) -> torch.Tensor:
    """[S, S] weights: 1 inside, ramping down across the outer EDGE_FADE pixels to 0 on the outermost."""
    i = torch.arange(size, device=device, dtype=dtype)
    ramp = (torch.minimum(i, size - 1 - i) / EDGE_FADE).clamp(max=1.0)
    return ramp[:, None] * ramp[None, :]


def fast_painter(painter) -> PainterFn:
    """A painter for optimisation: a copy of an eval-mode generator with its batch norms folded into
    its convolutions (Generator.folded), channels-last on the CPU (its transposed convolutions run
    about 20 % faster there). Same strokes to float rounding; the caller's painter is left as it is."""
    import copy
    from ..painter.model import Generator
    p = as_painter(painter)
    fn = p.fn
    if isinstance(fn, torch.nn.Module):
        try:
            fn = fn.folded() if isinstance(fn, Generator) and not fn.training else copy.deepcopy(fn)
        except Exception:  # noqa: BLE001 - an exotic module: use it as it is
            return p
        if p.device.type == "cpu":
            fn = fn.to(memory_format=torch.channels_last)
    return PainterFn(fn, p.stroke_size, p.device, p.layout, p.reach, p.ink)


# ----------------------------------------------------------------------------------------------
# geometry


def _tile_for(side: torch.Tensor) -> torch.Tensor:
    """Tile size per stroke: the power of two nearest side / 3, within [TILE_MIN, TILE_MAX]."""
    t = torch.exp2(torch.round(torch.log2((side / 3).clamp_min(1.0))))
    return t.clamp(TILE_MIN, TILE_MAX)


def _resample_matrix(origin: torch.Tensor, length: int, lo: torch.Tensor, side: torch.Tensor, S: int) -> torch.Tensor:
    """Rows: output pixels origin + 0..length-1 (canvas px); columns: the stroke's S source pixels.

    Separable antialiased tent filter of radius r = max(1, S / side) source pixels, normalised to
    sum 1 over the infinite source lattice (pixels outside the stroke square count as empty).
    origin, lo (box's low edge), side: [G]. Returns [G, length, S]."""
    dev, dt = side.device, side.dtype
    r = (S / side).clamp_min(1.0)                                          # [G]
    R = 2 * int(math.ceil(float(r.detach().max()))) + 1                           # covers the support of j = 0 and S - 1
    x = origin[:, None] + torch.arange(length, device=dev, dtype=dt)[None] + 0.5   # pixel centres
    q = (x - lo[:, None]) / side[:, None] * S - 0.5                        # source coordinate [G, L]
    j = torch.arange(-R, S + R, device=dev, dtype=dt)                      # extended source lattice
    w = (1 - (j[None, None] - q[:, :, None]).abs() / r[:, None, None]).clamp_min(0)
    z = w.sum(-1, keepdim=True).clamp_min(1e-8)
    return (w[:, :, R:R + S] / z)


def _crop_pixels(boxes: torch.Tensor, canvas_hw) -> torch.Tensor:
    """Pixels of each stroke's crop [N] (float64, CPU): its box plus the filter margin and tile
    rounding, clipped to the canvas (plus a tile each side)."""
    side = boxes[:, 2].detach().cpu().double()
    h, w = canvas_hw
    extent = side + 2 * (side / 32 + 1) + _tile_for(side)
    return extent.clamp(max=h + 2 * TILE_MAX) * extent.clamp(max=w + 2 * TILE_MAX)


def render_work(boxes: torch.Tensor, canvas_hw) -> float:
    """What rendering strokes with these boxes [N, 3] costs, in crop pixels: the crops plus
    limits.PAINTER_STROKE_WORK per stroke for the painter (compared with limits.MAX_RENDER_WORK)."""
    return float(_crop_pixels(boxes, canvas_hw).sum()) + PAINTER_STROKE_WORK * boxes.shape[0]


def _plan_groups(boxes: torch.Tensor, canvas_hw, max_strokes: int, max_pixels: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges of strokes, each within the stroke and pixel caps."""
    area = _crop_pixels(boxes, canvas_hw).tolist()
    groups, start, acc = [], 0, 0.0
    for i, a in enumerate(area):
        if i > start and (i - start >= max_strokes or acc + a > max_pixels):
            groups.append((start, i))
            start, acc = i, 0.0
        acc += a
    if start < len(area):
        groups.append((start, len(area)))
    return groups


# ----------------------------------------------------------------------------------------------
# compositing one group


def _to_tiles(canvas: torch.Tensor, T: int) -> torch.Tensor:
    c, hp, wp = canvas.shape[1:]
    return canvas[0].view(c, hp // T, T, wp // T, T).permute(1, 3, 0, 2, 4).reshape(-1, c, T, T)


def _from_tiles(tiles: torch.Tensor, hp: int, wp: int) -> torch.Tensor:
    T, c = tiles.shape[-1], tiles.shape[1]
    return tiles.view(hp // T, wp // T, c, T, T).permute(2, 0, 3, 1, 4).reshape(1, c, hp, wp)


def _composite_group(canvas: torch.Tensor, layers: torch.Tensor, boxes: torch.Tensor, hw, T: int,
                     S: int) -> torch.Tensor:
    """Paint strokes (layers [G, 4, S, S], boxes [G, 3]) in order onto canvas [1, 3, Hp, Wp]."""
    tx0, ty0, nx, ny, keep = _covered_tiles(boxes, hw, T, S)
    if not bool(keep.any()):
        return canvas
    if not bool(keep.all()):
        idx = keep.nonzero().squeeze(1)
        layers, boxes = layers[idx], boxes[idx]
        tx0, ty0, nx, ny = tx0[idx], ty0[idx], nx[idx], ny[idx]
    ntx = canvas.shape[-1] // T
    crops, pair, pair_stroke, pair_tile = _crops_on_tiles(layers, boxes, tx0, ty0, nx, ny, T, S, ntx)
    return _paint_tiles(canvas, crops, pair, pair_stroke, pair_tile, layers.shape[0], T)


def _covered_tiles(boxes: torch.Tensor, hw, T: int, S: int):
    """The canvas tiles each stroke's crop (its box plus the filter margin) covers: the first tile
    (tx0, ty0) and how many (nx, ny) per stroke, and whether it reaches the canvas at all (keep)."""
    h, w = hw
    cx, cy, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    with torch.no_grad():  # integer bookkeeping
        margin = side / S + 1
        bx = torch.stack([cx - side / 2 - margin, cx + side / 2 + margin]).clamp(0, w - 1e-3)
        by = torch.stack([cy - side / 2 - margin, cy + side / 2 + margin]).clamp(0, h - 1e-3)
        off = ((cx + side / 2 + margin) <= 0) | ((cx - side / 2 - margin) >= w) | \
              ((cy + side / 2 + margin) <= 0) | ((cy - side / 2 - margin) >= h)
        tx0, tx1 = (bx[0] // T).long(), (bx[1] // T).long()
        ty0, ty1 = (by[0] // T).long(), (by[1] // T).long()
        return tx0, ty0, tx1 - tx0 + 1, ty1 - ty0 + 1, ~off


def _crops_on_tiles(layers: torch.Tensor, boxes: torch.Tensor, tx0, ty0, nx, ny, T: int, S: int, ntx: int):
    """Each stroke resampled onto the canvas tiles its crop covers: crops [P, 4, T, T], and per
    (stroke, tile) pair the index of its crop, the stroke and the tile (row-major, ntx tiles a row)."""
    cx, cy, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    dt = layers.dtype
    # Strokes are resampled in buckets of equal crop extent (k x k tiles), so a few large strokes
    # do not pad every small stroke's crop; pairs are then put back in painting order per tile.
    k_of = torch.maximum(nx, ny)
    crop_parts, pair_parts, stroke_parts, tile_parts = [], [], [], []
    offset = 0
    for k in torch.unique(k_of).tolist():
        sel = (k_of == k).nonzero().squeeze(1)
        g = len(sel)
        s_cx, s_cy, s_side = cx[sel], cy[sel], side[sel]
        wy = _resample_matrix((ty0[sel] * T).to(dt), k * T, s_cy - s_side / 2, s_side, S)   # [g, kT, S]
        wx = _resample_matrix((tx0[sel] * T).to(dt), k * T, s_cx - s_side / 2, s_side, S)
        # separable resampling as two batched matmuls (g * 4 small GEMMs each)
        c = torch.bmm(torch.bmm(wy.repeat_interleave(4, 0), layers[sel].reshape(g * 4, S, S)),
                      wx.repeat_interleave(4, 0).transpose(1, 2))                          # [g * 4, kT, kT]
        crop_parts.append(c.view(g, 4, k, T, k, T).permute(0, 2, 4, 1, 3, 5).reshape(g * k * k, 4, T, T))
        with torch.no_grad():
            gk = torch.arange(k, device=tx0.device)
            valid = (gk[None, :, None] < ny[sel, None, None]) & (gk[None, None, :] < nx[sel, None, None])
            tid = (ty0[sel, None, None] + gk[None, :, None]) * ntx + (tx0[sel, None, None] + gk[None, None, :])
            v = valid.flatten().nonzero().squeeze(1)
            pair_parts.append(v + offset)
            stroke_parts.append(sel.repeat_interleave(k * k)[v])
            tile_parts.append(tid.flatten()[v])
        offset += g * k * k
    crops = crop_parts[0] if len(crop_parts) == 1 else torch.cat(crop_parts)
    return crops, torch.cat(pair_parts), torch.cat(stroke_parts), torch.cat(tile_parts)


def _paint_tiles(canvas: torch.Tensor, crops: torch.Tensor, pair, pair_stroke, pair_tile, G: int,
                 T: int) -> torch.Tensor:
    """The crops composited over the canvas tiles they cover, in painting order within each tile
    (G strokes in the group)."""
    hp, wp = canvas.shape[-2:]
    with torch.no_grad():
        # sort by tile, then by painting order within each tile
        order = torch.sort(pair_tile * G + pair_stroke).indices
        pair, pair_tile = pair[order], pair_tile[order]
        tiles_used, counts = torch.unique_consecutive(pair_tile, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(pair), device=pair.device) - torch.repeat_interleave(starts, counts)
        # buckets by power-of-two stroke count per tile: padding wastes at most half
        bucket_of_tile = torch.ceil(torch.log2(counts.float())).long()
        bucket_of_pair = torch.repeat_interleave(bucket_of_tile, counts)
        tile_pos = torch.repeat_interleave(torch.arange(len(tiles_used), device=pair.device), counts)

    tiles = _to_tiles(canvas, T)
    out_tiles = []
    out_ids = []
    for b in torch.unique(bucket_of_tile).tolist():
        tsel = (bucket_of_tile == b).nonzero().squeeze(1)
        psel = (bucket_of_pair == b).nonzero().squeeze(1)
        K = int(counts[tsel].max())
        nt = len(tsel)
        # position of each tile within the bucket
        local = torch.full((len(tiles_used),), -1, dtype=torch.long, device=pair.device)
        local[tsel] = torch.arange(nt, device=pair.device)
        slot = local[tile_pos[psel]] * K + rank[psel]
        dense = crops.new_zeros(nt * K, 4, T, T).index_copy(0, slot, crops.index_select(0, pair[psel]))
        dense = dense.view(nt, K, 4, T, T)
        base = tiles.index_select(0, tiles_used[tsel])                        # [nt, 3, T, T]
        out_tiles.append(over(base, dense[:, :, :3], dense[:, :, 3:]))
        out_ids.append(tiles_used[tsel])
    tiles = tiles.index_copy(0, torch.cat(out_ids), torch.cat(out_tiles))
    return _from_tiles(tiles, hp, wp)


# ----------------------------------------------------------------------------------------------
# public API



def render(painter, actions: torch.Tensor, boxes: torch.Tensor, canvas_size, background=None, *,
           blend: str = "alpha", layout=None, checkpoint: bool | None = None,
           group_strokes: int = GROUP_MAX_STROKES, group_pixels: int = GROUP_PIXELS, check=None) -> torch.Tensor:
    """Tensor-level renderer (what render_canvas and the optimiser use).

    actions [N, dim] in 0..1, boxes [N, 3] (cx, cy, side) in canvas px, canvas_size (H, W);
    background: None (white), an RGB colour, or an image. Differentiable w.r.t. actions, boxes and
    a background image. checkpoint: None = automatic (on for large jobs that need gradients).
    A job above limits.MAX_RENDER_WORK raises ValueError before anything is allocated; `check()`
    is called before every group of strokes (raise in it to cancel)."""
    p = as_painter(painter)
    if blend not in ("alpha", "linear"):
        raise ValueError(f"blend must be 'alpha' or 'linear', got {blend!r}")
    h, w = int(canvas_size[0]), int(canvas_size[1])
    n = actions.shape[0]
    if boxes.shape != (n, 3):
        raise ValueError(f"boxes must be [N, 3] for {n} actions, got {list(boxes.shape)}")
    if n and p.reach is not None:   # every stroke whole, in a box that holds all the brush paints
        actions, boxes = hold_whole(get_layout(layout or p.layout), actions, boxes, p.reach)
    check_work(render_work(boxes, (h, w)), MAX_RENDER_WORK, f"rendering {n} strokes on a {w}x{h} px canvas",
               "use fewer or smaller strokes, or a smaller canvas (a lower scale)")
    device = actions.device
    canvas = background_canvas(background, (h, w), device, actions.dtype)
    if n == 0:
        return canvas
    hp, wp = -(-h // TILE_MAX) * TILE_MAX, -(-w // TILE_MAX) * TILE_MAX
    if (hp, wp) != (h, w):
        canvas = F.pad(canvas, (0, wp - w, 0, hp - h))
    groups = _plan_groups(boxes, (h, w), group_strokes, group_pixels)
    need_grad = torch.is_grad_enabled() and (actions.requires_grad or boxes.requires_grad or canvas.requires_grad)
    if checkpoint is None:
        side = boxes[:, 2].detach()
        total = float(((side + _tile_for(side)) ** 2).sum())
        checkpoint = need_grad and len(groups) > 1 and total > AUTO_CHECKPOINT_PIXELS
    S = p.stroke_size

    def run_group(canvas, a, b):
        layers = stroke_layers(p, a, blend, layout)
        if p.ink is not None:
            layers = with_ink(layers, p.ink.gain(get_layout(layout or p.layout), a, b[:, 2]))
        T = int(_tile_for(b[:, 2].detach()).median())
        return _composite_group(canvas, layers, b, (h, w), T, S)

    for s, e in groups:
        if check is not None:
            check()
        a, b = actions[s:e], boxes[s:e]
        if checkpoint and need_grad:
            canvas = _checkpoint(run_group, canvas, a, b, use_reentrant=False)
        else:
            canvas = run_group(canvas, a, b)
    return canvas[..., :h, :w]


def render_canvas(painter, strokes: StrokeSet, background=None, **kwargs) -> torch.Tensor:
    """The painting of a StrokeSet: [1, 3, H, W] in 0..1, on the painter's device.

    background: None uses strokes.backdrop (its background image, else its colour); or pass a colour
    or an image tensor.
    Differentiable w.r.t. strokes.actions and strokes.boxes (build the StrokeSet from tensors that
    require grad). kwargs: checkpoint, group_strokes, group_pixels, check (see `render`)."""
    p = as_painter(painter)
    dev = p.device
    return render(p, strokes.actions.to(dev), strokes.boxes.to(dev), strokes.canvas_size,
                  strokes.backdrop if background is None else background, blend=strokes.blend,
                  layout=strokes.layout, **kwargs)


@torch.no_grad()
def render_progress(painter, strokes: StrokeSet, every: int = 1, background=None, **kwargs):
    """Yield (k, canvas) after every `every` strokes (and after the last): time-lapse frames.

    Incremental: each chunk is painted over the previous canvas, so the cost is one render, checked
    whole against limits.MAX_RENDER_WORK before the first frame. kwargs as for `render` (`check()`
    runs before every group)."""
    every = max(1, int(every))
    p = as_painter(painter)
    check_work(render_work(strokes.boxes, strokes.canvas_size), MAX_RENDER_WORK,
               f"rendering {len(strokes)} strokes", "use fewer or smaller strokes, or a smaller canvas")
    canvas = background_canvas(strokes.backdrop if background is None else background, strokes.canvas_size, p.device)
    yield 0, canvas
    for k in range(0, len(strokes), every):
        chunk = strokes[k:k + every]
        canvas = render(p, chunk.actions.to(p.device), chunk.boxes.to(p.device), strokes.canvas_size, canvas,
                        blend=strokes.blend, layout=strokes.layout, **kwargs)
        yield min(k + every, len(strokes)), canvas
