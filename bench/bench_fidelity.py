"""How true each shipped painter is to its brush, checked independently of how it was trained (issue 23).

    python bench/bench_fidelity.py                      # every shipped painter, 1000 strokes
    python bench/bench_fidelity.py --painters soft_brush --strokes 300
    python bench/bench_fidelity.py --scales 8,16,32     # also: MyPaint at small box sizes against the tile scaled down
    python bench/bench_fidelity.py ... --write          # the table into BENCHMARKS.md

Strokes: fresh random actions (a seed no training run or held-out set uses), kept only where MyPaint's own
stroke is whole in its tile (no ink, alpha above 1/255, in the tile's outer 2 px: chosen by rejection on the
rendered stroke, not by the brush reach the training data is made whole with). On those strokes over white:
the painter's PSNR against MyPaint (brush seed 0); MyPaint against itself (brush seed 1: its repeatability,
the ceiling); texture_ratio, the painter's high-frequency energy (squared difference from a 3x3 box blur)
over the brush's. The bars (issue 23): a deterministic brush >= 30 dB and texture 0.8-1.25; a stochastic one
>= its ceiling - 0.5 dB and texture 0.8-1.25.
"""
from __future__ import annotations

import argparse
import datetime
import os
import resource
import shlex
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from neural_painters_training.evaluate import DETERMINISTIC_PSNR, RIM, TEXTURE_BAND  # noqa: E402
BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")
TITLE = "## Painter fidelity on strokes drawn independently (bench/bench_fidelity.py)"
SEED = 7070707              # fresh actions: no training or held-out set uses this seed


def fidelity(name: str, count: int) -> dict:
    from painter_models import load_painter
    from painter_models.painter.shipped import find_painter
    from neural_painters_training.evaluate import rim_fidelity
    return {"painter": name, **rim_fidelity(load_painter(find_painter(name)), count, SEED)}


def scale_rows(name: str, count: int, sides: list[int]) -> list[dict]:
    """What a stroke tile scaled down to a small box misses: the brush's strokes painted by MyPaint at `side` px
    (as a canvas paints a stroke in a box that size) against its 64 px strokes area-scaled to `side` px, as they are
    and times the painter's ink by box size."""
    import torch
    import torch.nn.functional as F
    from painter_models import MyPaintProgram, load_painter
    from painter_models.brush.actions import get_layout
    from painter_models.brush.rerender import mypaint_brush_name
    from painter_models.metrics import psnr_of_mse, rgba_to_tensors
    from painter_models.painter.shipped import find_painter
    from neural_painters_training.evaluate import whole_by_rim
    painter = load_painter(find_painter(name))
    brush, layout = mypaint_brush_name(painter.brush), painter.generator.config.layout
    tile = MyPaintProgram(brush, painter.stroke_size)
    try:
        actions, strokes = whole_by_rim(tile, layout, count, SEED)
    finally:
        tile.close()
    full = rgba_to_tensors(strokes)[0]
    rows = []
    for side in sides:
        program = MyPaintProgram(brush, side)
        try:
            direct = rgba_to_tensors(program.render(actions, workers=1))[0]
        finally:
            program.close()
        scaled = F.interpolate(full, size=(side, side), mode="area")
        with torch.no_grad():    # the painter's ink by box size, as the canvas applies it to the stroke's darkness
            sides_px = torch.full((len(actions),), float(side))
            gain = painter.ink.gain(get_layout(layout), torch.as_tensor(actions), sides_px)
        inked = 1 - gain[:, None, None, None] * (1 - scaled)
        psnr = lambda x: float(psnr_of_mse(((direct - x) ** 2).mean().double()))
        rows.append({"painter": name, "brush": brush, "side": side, "strokes": len(actions), "tile": painter.stroke_size,
                     "psnr": psnr(scaled), "psnr_inked": psnr(inked.clamp(0, 1)),
                     "ink": float((1 - direct).sum() / (1 - scaled).sum()),
                     "ink_inked": float((1 - direct).sum() / (1 - inked.clamp(0, 1)).sum())})
    return rows


def scale_section(rows: list[dict]) -> str:
    lines = ["", f"What a stroke tile scaled down to a small box misses (`--scales`): {rows[0]['brush']}'s "
             f"{rows[0]['strokes']} strokes above, painted by MyPaint in a box of the side below (as a canvas paints "
             f"a stroke in a box that size: geometry and radius scaled) against its {rows[0]['tile']} px strokes "
             f"area-scaled to that side, as it is and times the painter's ink by box size (its file's, as the canvas "
             f"applies it); ink = the darkness over white, MyPaint at that size over the scaled tile's.", "",
             "| box side px | PSNR dB, scaled tile | with the ink by size | ink, scaled tile | with the ink by size |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['side']} | {r['psnr']:.2f} | {r['psnr_inked']:.2f} | {r['ink']:.2f} | {r['ink_inked']:.2f} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def section(rows: list[dict], command: str, started, machine: str, cpu_s: float) -> str:
    lines = [TITLE, "",
             f"`{command}` on {machine}, {started:%Y-%m-%d %H:%M} UTC, {cpu_s:.0f} CPU s in all. Fresh random "
             f"actions (seed {SEED}), kept where MyPaint's stroke leaves the 64 px tile's outer {RIM} px bare "
             f"(rejection on the rendered stroke); PSNR over the strokes over white; MyPaint vs itself: brush seed 1 "
             f"against seed 0; texture: the painter's high-frequency energy over the brush's. Bar: >= ceiling - 0.5 "
             f"dB (stochastic brushes) or >= {DETERMINISTIC_PSNR:g} dB (deterministic ones), texture "
             f"{TEXTURE_BAND[0]}-{TEXTURE_BAND[1]}.", "",
             "| painter | brush | strokes | PSNR dB | MyPaint vs itself dB | PSNR bar dB | texture (painter / brush) | bar |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        kind = "stochastic" if r["stochastic"] else "deterministic"
        lines.append(f"| {r['painter']} ({kind}) | {r['brush']} | {r['strokes']} | {r['psnr']:.2f} | "
                     f"{r['ceiling']:.1f} | {r['psnr_bar']:.2f} | {r['texture']:.2f} | "
                     f"{'met' if r['meets'] else 'not met'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from bench_core import cpu_count, cpu_model, write_section
    from painter_models.painter.shipped import shipped_painters
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--painters", default=",".join(sorted(shipped_painters())))
    p.add_argument("--strokes", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scales", default="", help="SIDES, e.g. 8,12,16,24,32: also MyPaint at these box sides against "
                                                "the default painter's brush tile scaled down")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = datetime.datetime.utcnow()
    rows = []
    for name in args.painters.split(","):
        rows.append(fidelity(name, args.strokes))
        print(rows[-1], file=sys.stderr)
    cpu_s = sum(resource.getrusage(who)[0] + resource.getrusage(who)[1]
                for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    command = "python bench/bench_fidelity.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = section(rows, command, started, f"{cpu_model()}, {cpu_count()} cores", cpu_s)
    if args.scales:
        from painter_models.painter.shipped import DEFAULT_PAINTER
        text += scale_section(scale_rows(DEFAULT_PAINTER, args.strokes, [int(x) for x in args.scales.split(",")]))
    print(text)
    if args.write:
        write_section(text, BENCHMARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
