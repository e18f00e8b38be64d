"""Fitting a painter's ink by box size (painter_models.brush.ink.InkBySize) on MyPaint itself.

Fresh strokes whole by the rendered rim (evaluate.whole_by_rim) are painted by MyPaint at 64 px and at each box
side in SIDES (geometry and radius scaled, as a re-render paints a stroke in a box that size); the 64 px stroke
scaled to the side is what a painter's canvas paints there. Per stroke and side only three sums are kept (of the
darkness over white: MyPaint's squared, the product, the scaled tile's squared), from which the squared error of
any gain on the scaled tile follows exactly, so the fit and its report hold thousands of strokes in little memory.

    neural-painters-train ink --painter P.safetensors [--out OUT.safetensors]
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import torch
import torch.nn.functional as F

from painter_models.brush.actions import BOX, get_layout
from painter_models.brush.ink import InkBySize
from painter_models.metrics import psnr_of_mse, rgba_to_tensors

from .evaluate import whole_by_rim

SIDES = (8, 10, 12, 16, 20, 24, 32, 48, 96, 128)   # box sides, px (MyPaintProgram paints from 8 px)
FIT_SEED, CHECK_SEED = 4_040_404, 5_050_505        # fresh strokes: no other set uses these seeds


def ink_sums(brush: str, layout, count: int, seed: int, sides=SIDES, tile: int = int(BOX)):
    """(actions [N, D], {side: sums [N, 3]}): per stroke, MyPaint's darkness at `side` px (d) against its stroke at
    the painter's `tile` px, scaled to `side` px (t): (sum d^2, sum d t, sum t^2) over the stroke's pixels."""
    from painter_models import MyPaintProgram
    program = MyPaintProgram(brush, tile, layout)
    try:
        actions, strokes = whole_by_rim(program, layout, count, seed)
    finally:
        program.close()
    full = 1 - rgba_to_tensors(strokes)[0]
    sums = {}
    for side in sides:
        program = MyPaintProgram(brush, side, layout)
        try:
            direct = 1 - rgba_to_tensors(program.render(actions, workers=1))[0]
        finally:
            program.close()
        scaled = F.interpolate(full, size=(side, side), mode="area" if side < tile else "bilinear",
                               align_corners=None if side < tile else False)
        sums[side] = torch.stack([(direct * direct).sum((1, 2, 3)), (direct * scaled).sum((1, 2, 3)),
                                  (scaled * scaled).sum((1, 2, 3))], 1).double()
    return torch.as_tensor(actions), sums


def _mse(sums: torch.Tensor, gain: torch.Tensor, side: int) -> torch.Tensor:
    """Mean squared error over all the strokes' pixels of MyPaint's strokes against the scaled tiles times gain."""
    dd, dt, tt = sums.unbind(1)
    return (dd - 2 * gain * dt + gain * gain * tt).sum() / (len(sums) * 3 * side * side)


def psnr_by_side(ink: InkBySize | None, layout, actions: torch.Tensor, sums: dict) -> dict:
    """{side: PSNR dB} of the scaled tiles, times the ink's gain (None: as they are), against MyPaint."""
    out = {}
    with torch.no_grad():
        for side, s in sums.items():
            gain = (torch.ones(len(actions), dtype=torch.float64) if ink is None else
                    ink.gain(get_layout(layout), actions.float(), torch.full((len(actions),), float(side))).double())
            out[str(side)] = round(float(psnr_of_mse(_mse(s, gain, side))), 2)
    return out


def fit_ink_by_size(brush: str, layout, count: int = 1500, check_count: int = 600, steps: int = 1500,
                    sides=SIDES, seed: int = 0, tile: int = int(BOX)) -> InkBySize:
    """InkBySize for `brush` and a painter of `tile` px strokes, fitted on `count` strokes at every side in `sides`
    (each side's squared error relative to the scaled tile's, summed, so small and large boxes count alike) and
    checked on `check_count` other strokes: its `fit` record holds both sets' sizes and the check's PSNR by side
    before and after."""
    layout = get_layout(layout)
    sides = [side for side in sides if side != tile]        # in the tile's own size the gain is 1 by construction
    torch.manual_seed(seed)
    actions, sums = ink_sums(brush, layout, count, FIT_SEED, sides, tile)
    size = layout.fields[layout.index("size")]
    ink = InkBySize(log_radius_range=(size.low + math.log(min(sides) / BOX), size.high + math.log(max(sides) / BOX)),
                    tile=tile)
    ink.double()
    features = ink.features(layout, actions.double())
    raw = {side: _mse(s, torch.ones(len(s), dtype=torch.float64), side).clamp_min(1e-12) for side, s in sums.items()}
    at_tile = torch.full((len(actions),), math.log(tile / BOX), dtype=torch.float64)
    opt = torch.optim.Adam(ink.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        reference = ink.efficiency(features, at_tile).clamp_min(1e-6)
        loss = sum(_mse(s, ink.efficiency(features, torch.full_like(at_tile, math.log(side / BOX))) / reference, side)
                   / raw[side] for side, s in sums.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    ink.float().requires_grad_(False).eval()
    check_actions, check_sums = ink_sums(brush, layout, check_count, CHECK_SEED, sides, tile)
    ink.fit = {"brush": brush, "tile": tile, "strokes": len(actions), "check_strokes": len(check_actions),
               "sides": list(sides), "steps": steps, "psnr_before": psnr_by_side(None, layout, check_actions, check_sums),
               "psnr_after": psnr_by_side(ink, layout, check_actions, check_sums)}
    return ink


def card_section(ink: InkBySize) -> str:
    """The model card's section on the painter's ink by box size, from its fit record."""
    fit = ink.fit
    rows = "\n".join(f"| {side} | {fit['psnr_before'][side]:.2f} | {fit['psnr_after'][side]:.2f} |"
                     for side in map(str, fit["sides"]))
    return (f"## Ink by box size\n\nWhat MyPaint paints in a box of another size than the {fit['tile']} px tile (a thin "
            f"stroke in a small box fades), measured on {fit['brush']} and applied by the canvas to every stroke "
            f"(`neural-painters-train ink`, painter_models/brush/ink.py): fitted on {fit['strokes']} strokes whole "
            f"by the rim, checked on {fit['check_strokes']} others. PSNR of the {fit['tile']} px stroke scaled into "
            f"the box against MyPaint painting it at that size, before and after the gain:\n\n"
            f"| box side px | scaled tile dB | with the ink by size dB |\n|---:|---:|---:|\n{rows}\n")


def write_card_section(card: str, ink: InkBySize):
    """Add (or replace) the ink section in a model card."""
    from painter_models.files import write_text
    text = open(card).read() if os.path.isfile(card) else ""
    text = re.sub(r"\n## Ink by box size\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
    write_text(card, (text + "\n\n" if text else "") + card_section(ink))
