"""Command-line tools of the core package.

  neural-painters-strokes [options]          (or: python -m painter_models.cli.strokes strokes [options])
      Render a grid of random real strokes (MyPaint preset, .myb file or the torch rasteriser) to a
      PNG. With --painter PATH, each real stroke gets the painter's version of the same action beside
      it (columns "MyPaint | painter"), and the PSNR between the two is printed.

`main()` dispatches subcommands by name (SUBCOMMANDS), so more tools can be added next to `strokes`.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

GAP, PAIR_GAP, BORDER = 2, 8, 4
HEADER = 18
GRID_GREY = 200


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB per image for float images in 0..1, [N, ...] -> [N] (inf where identical)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(1.0 / mse)


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def strokes_grid(real: np.ndarray, generated: np.ndarray | None = None, columns: int = 8, scale: int = 4,
                 labels=("MyPaint", "painter"), title: str = ""):
    """A PIL image of strokes [N, S, S, 3] (float 0..1) in a grid, upscaled with NEAREST.

    With `generated`, each cell is a pair real|generated and every pair column is labelled."""
    from PIL import Image, ImageDraw
    n, s = len(real), real.shape[1]
    per_cell = 1 if generated is None else 2
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    cell = s * scale
    pair_w = per_cell * cell + (per_cell - 1) * GAP
    header = HEADER if generated is not None else 0
    top = (HEADER if title else 0) + header
    width = 2 * BORDER + columns * pair_w + (columns - 1) * PAIR_GAP
    height = top + 2 * BORDER + rows * cell + (rows - 1) * PAIR_GAP
    canvas = Image.new("RGB", (width, height), (GRID_GREY,) * 3)

    def tile(img):
        arr = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        return Image.fromarray(arr).resize((cell, cell), Image.NEAREST)

    for i in range(n):
        r, c = divmod(i, columns)
        x = BORDER + c * (pair_w + PAIR_GAP)
        y = top + BORDER + r * (cell + PAIR_GAP)
        canvas.paste(tile(real[i]), (x, y))
        if generated is not None:
            canvas.paste(tile(generated[i]), (x + cell + GAP, y))
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    if title:
        draw.text((BORDER, 3), title, fill=(0, 0, 0), font=font)
    if generated is not None:
        y = (HEADER if title else 0) + 3
        for c in range(columns):
            x = BORDER + c * (pair_w + PAIR_GAP)
            for k, label in enumerate(labels):
                draw.text((x + k * (cell + GAP) + 2, y), label, fill=(0, 0, 0), font=font)
    return canvas


def _save_png(image, path: str):
    from ..files import atomic_write
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def _brush_of_painter(painter_brush: str) -> str:
    """The make_program name of the program a painter imitates ('mypaint:classic/dry_brush' -> preset)."""
    kind, _, name = painter_brush.partition(":")
    return name if kind == "mypaint" and name else painter_brush


def _strokes_parser(prog: str = "neural-painters-strokes") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Render a grid of random real brushstrokes (MyPaint by default) to a PNG; with "
                               "--painter, the painter's version of each stroke beside it and their PSNR.")
    p.add_argument("--brush", default=None,
                   help="MyPaint preset (e.g. classic/dry_brush, classic/charcoal), a .myb path, or 'raster' "
                        "for the torch rasteriser (default: the painter's brush, else classic/dry_brush)")
    p.add_argument("--count", type=int, default=32, help="number of strokes (default 32)")
    p.add_argument("--size", type=int, default=None, help="stroke size in px (default: the painter's, else 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random actions (default 0)")
    p.add_argument("--brush-seed", type=int, default=0, help="MyPaint brush seed (another rendering of the same actions)")
    p.add_argument("--painter", default=None, help="a painter checkpoint (.safetensors) to compare with")
    p.add_argument("--columns", type=int, default=8, help="strokes (or pairs) per row (default 8)")
    p.add_argument("--scale", type=int, default=None, help="NEAREST upscaling factor (default: cells of ~192 px)")
    p.add_argument("--workers", type=int, default=1, help="MyPaint worker processes (default 1)")
    p.add_argument("--device", default="cpu", help="device for the painter (default cpu)")
    p.add_argument("--out", default="strokes.png", help="output PNG (default strokes.png)")
    return p


def strokes_main(argv=None, prog: str = "neural-painters-strokes") -> int:
    args = _strokes_parser(prog).parse_args(argv)
    from ..brush.actions import NAKANO
    from ..painter.checkpoint import CheckpointError, load_painter
    from ..brush.mypaint import MyPaintUnavailable, rgba_to_rgb
    from ..brush.raster import make_program

    if not 1 <= args.count <= 4096:
        print(f"error: --count must be 1..4096, got {args.count}", file=sys.stderr)
        return 2
    try:
        painter = None
        if args.painter:
            painter = load_painter(args.painter, device=args.device)
        brush = args.brush or (_brush_of_painter(painter.brush) if painter else "classic/dry_brush")
        size = args.size or (painter.stroke_size if painter else 64)
        if painter is not None:
            if size != painter.stroke_size:
                raise ValueError(f"--size {size} differs from the painter's stroke size {painter.stroke_size}")
            if args.brush and _brush_of_painter(painter.brush) != args.brush:
                print(f"warning: the painter imitates {painter.brush!r}, comparing with {args.brush!r}",
                      file=sys.stderr)
        layout = painter.layout if painter else NAKANO
        actions = layout.sample(args.count, seed=args.seed)
        with make_program(brush, size, layout, brush_seed=args.brush_seed, workers=args.workers) as program:
            real = rgba_to_rgb(program.render(actions))
    except (MyPaintUnavailable, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    generated, title = None, f"{brush}  {size} px  seed {args.seed}  {args.count} strokes"
    if painter is not None:
        import torch
        with torch.no_grad():
            colour, alpha = painter(torch.from_numpy(actions).to(painter.device))
            over_white = colour * alpha + (1 - alpha)
        generated = over_white.permute(0, 2, 3, 1).float().cpu().numpy()
        per_stroke = _psnr(real, generated)
        overall = float(10 * np.log10(1.0 / max(((real - generated) ** 2).mean(), 1e-20)))
        name = args.painter.replace("\\", "/").rsplit("/", 1)[-1]
        print(f"PSNR painter vs {brush}: {overall:.2f} dB over {args.count} strokes "
              f"(per stroke: median {np.median(per_stroke):.2f}, min {per_stroke.min():.2f}, "
              f"max {per_stroke.max():.2f} dB); painter {name}")
        title += f"  |  painter {name}: PSNR {overall:.2f} dB"
    scale = args.scale or max(1, round(192 / size))
    image = strokes_grid(real, generated, args.columns, scale,
                         labels=("MyPaint" if not brush.startswith("raster") else "raster", "painter"), title=title)
    _save_png(image, args.out)
    print(f"wrote {args.out} ({image.width}x{image.height}, {args.count} strokes)")
    return 0


SUBCOMMANDS = {"strokes": strokes_main}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python -m painter_models.cli.strokes {" + ",".join(SUBCOMMANDS) + "} [options]\n"
              "  strokes   render a grid of real strokes (and a painter's version of them) to a PNG",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    name = argv[0]
    return SUBCOMMANDS[name](argv[1:], prog=f"python -m painter_models.cli.strokes {name}")


if __name__ == "__main__":
    sys.exit(main())
