"""The painters that ship in painter_models/weights/: they load, carry their metrics, their reach and
where they stand against the bar, take the colour from the action, are listed by name by the CLI
and the Load Neural Painter node, and an independent evaluation on fresh MyPaint strokes agrees
with their metadata."""
import os

import numpy as np
import pytest
import torch

from painter_models import load_painter, read_metadata
from painter_models.brush.actions import NAKANO, BrushReach
from painter_models.metrics import psnr_of_mse, rgba_to_tensors
from neural_painters_training.evaluate import PSNR_MARGIN_DB

from conftest import skip_no_mypaint

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "painter_models", "weights")
# name: (MyPaint preset, stochastic: paints the brush's grain with a noise input)
SHIPPED = {"dry_brush": ("classic/dry_brush", True), "charcoal": ("classic/charcoal", True),
           "fur": ("experimental/fur", True), "short_grass": ("classic/short_grass", True),
           "soft_brush": ("deevad/brush", False), "ink_pen": ("classic/pen", False)}
# A deterministic brush repeats itself to 55-75 dB: no network comes near, and the painters' edges are
# softer than the brush's. What each reaches, as its model card says, is what it is held to (a floor
# under its held-out PSNR and texture_ratio), and its metadata must say the bar is not met.
FRESH_TOLERANCE_DB = PSNR_MARGIN_DB / 2
DETERMINISTIC_FLOOR = {"soft_brush": {"psnr": 32.2, "texture_ratio": 0.6},
                       "ink_pen": {"psnr": 29.0, "texture_ratio": 0.38}}


def _path(name):
    return os.path.join(WEIGHTS, f"{name}.safetensors")


def test_the_painters_ship_each_with_its_own_brush():
    present = sorted(os.path.splitext(f)[0] for f in os.listdir(WEIGHTS) if f.endswith(".safetensors"))
    assert present == sorted(SHIPPED)
    assert len({read_metadata(_path(n))["brush"] for n in SHIPPED}) == len(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_painter_loads_and_its_metadata_holds_the_bar(name):
    brush, stochastic = SHIPPED[name]
    path = _path(name)
    assert os.path.getsize(path) <= 10 * 2 ** 20
    painter = load_painter(path)
    meta = read_metadata(path)
    assert painter.brush == f"mypaint:{brush}"
    assert painter.generator.config.colour == "action"   # strokes re-render in the colour they were painted
    assert (painter.generator.config.noise_dim > 0) == stochastic
    assert painter.reach == BrushReach.from_dict(meta["reach"])     # measured at training, not guessed
    assert meta["training"]["strokes"] == "whole"
    m = meta["metrics"]
    assert m["heldout_count"] >= 1000 and m["feature_distance"] >= m["ceiling_feature_distance"] >= 0
    bar = m["bar"]
    assert bar["psnr_bar"] == pytest.approx(m["ceiling_psnr"] - 0.5)
    if stochastic:
        assert bar["meets_bar"] and m["psnr"] >= bar["psnr_bar"], m
        assert bar["texture_band"][0] <= m["texture_ratio"] <= bar["texture_band"][1]
    else:
        assert not bar["meets_psnr"] and m["ceiling_psnr"] > 50, m     # the brush repeats itself exactly
        assert all(m[k] >= v for k, v in DETERMINISTIC_FLOOR[name].items()), m
    card = open(os.path.join(WEIGHTS, f"{name}.md")).read()
    assert f"| psnr | {m['psnr']:.4f} |" in card and f"| texture_ratio | {m['texture_ratio']:.4f} |" in card
    fit = painter.ink.fit          # its ink by box size, measured on its brush, is in the file and on the card
    assert fit["brush"] == brush and fit["check_strokes"] >= 600 and "## Ink by box size" in card
    # at least as true in every box size within half a dB (fur enlarged to 96-128 px: -0.3 dB; in small boxes +5 to +29)
    assert all(fit["psnr_after"][s] >= fit["psnr_before"][s] - 0.5 for s in fit["psnr_before"]), fit
    assert fit["psnr_after"]["8"] >= fit["psnr_before"]["8"] + 5, fit
    assert os.path.exists(os.path.join(WEIGHTS, f"{name}_grid.png"))


def test_the_cli_and_the_node_list_the_painters_by_name():
    from painter_models.painter.shipped import find_painter, shipped_painters
    assert sorted(shipped_painters()) == sorted(SHIPPED)
    for name in SHIPPED:
        assert find_painter(name) == _path(name)
    from test_nodes import NAMES, NODES
    choices, options = NODES[NAMES["Load Neural Painter"]].INPUT_TYPES()["required"]["painter_name"]
    assert {f"shipped/{name}.safetensors" for name in SHIPPED} <= set(choices)
    from painter_models.painter.shipped import DEFAULT_PAINTER    # the node offers first what the CLI paints with
    assert options["default"] == f"shipped/{DEFAULT_PAINTER}.safetensors" and find_painter(None) == _path(DEFAULT_PAINTER)


def _fresh_evaluation(name, count=600, seed=4242):
    """PSNR and texture_ratio of the painter on fresh MyPaint strokes (a seed no training or held-out set
    uses), whole in their tile as its own held-out strokes were, and for a stochastic brush MyPaint's own
    ceiling on the same strokes (brush seed 1 against brush seed 0)."""
    from painter_models import MyPaintProgram
    from neural_painters_training.datasets import whole_strokes
    from neural_painters_training.evaluate import high_frequency_energy, painter_strokes
    painter = load_painter(_path(name))
    actions = whole_strokes(NAKANO, NAKANO.sample(count, seed=seed), painter.reach)
    brush, stochastic = SHIPPED[name]
    real = []
    for brush_seed in ((0, 1) if stochastic else (0,)):
        program = MyPaintProgram(brush, painter.stroke_size, brush_seed=brush_seed)
        try:
            real.append(rgba_to_tensors(program.render(actions, workers=1))[0])
        finally:
            program.close()
    rgb, _ = painter_strokes(painter.generator, actions)
    psnr = float(psnr_of_mse(((rgb - real[0]) ** 2).mean().double()))
    ceiling = float(psnr_of_mse(((real[1] - real[0]) ** 2).mean().double())) if stochastic else None
    return psnr, float(high_frequency_energy(rgb).sum() / high_frequency_energy(real[0]).sum()), ceiling


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_independent_evaluation_reproduces_the_metadata(name):
    torch.set_num_threads(1)
    psnr, texture, ceiling = _fresh_evaluation(name)
    m = read_metadata(_path(name))["metrics"]
    # Fresh strokes are another draw than the held-out set: some harder, some easier. For a stochastic brush
    # MyPaint's own ceiling moves with the draw, so the painter's distance to it is what must reproduce;
    # both within FRESH_TOLERANCE_DB, half the bar's margin (measured: at most 0.16 dB on two fresh draws of
    # 1000 strokes, 2026-12-03).
    if ceiling is not None:
        fresh_gap, own_gap = psnr - ceiling, m["psnr"] - m["ceiling_psnr"]
        assert abs(fresh_gap - own_gap) <= FRESH_TOLERANCE_DB, \
            f"{name}: {fresh_gap:+.2f} dB from MyPaint's ceiling on fresh strokes, metadata says {own_gap:+.2f}"
    else:
        assert abs(psnr - m["psnr"]) <= FRESH_TOLERANCE_DB, \
            f"{name}: {psnr:.2f} dB on fresh strokes, metadata says {m['psnr']:.2f}"
    # and the bar itself on strokes no training run has seen: against MyPaint's own ceiling on those same
    # strokes (it moves with the strokes drawn: short_grass's is 32.74 dB on its held-out set, 32.31 here)
    floor = ceiling - PSNR_MARGIN_DB if SHIPPED[name][1] else DETERMINISTIC_FLOOR[name]["psnr"]
    assert psnr >= floor, f"{name}: {psnr:.2f} dB on fresh strokes, below its bar {floor:.2f}"
    assert np.isclose(texture, m["texture_ratio"], rtol=0.15), f"{name}: texture {texture:.3f}, metadata {m['texture_ratio']:.3f}"


# Issue 23's check: strokes drawn independently of the training data (fresh actions, whole by what MyPaint
# painted: no ink in the tile's rim), at the bar: a stochastic brush within PSNR_MARGIN_DB of MyPaint's own
# ceiling on those strokes, a deterministic one at DETERMINISTIC_PSNR; texture in its band. The painters below it
# are listed (strict: one that reaches the bar turns this red until it is taken off the list); bench_fidelity.py
# measures all of them on 1000 strokes (BENCHMARKS.md).
BELOW_BAR_ON_RIM_STROKES = {"dry_brush", "short_grass", "ink_pen", "soft_brush"}


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="issue 23: below the bar"))
                                  if n in BELOW_BAR_ON_RIM_STROKES else n for n in sorted(SHIPPED)])
def test_painter_at_its_bar_on_strokes_whole_by_the_rim(name):
    from neural_painters_training.evaluate import rim_fidelity
    torch.set_num_threads(1)
    r = rim_fidelity(load_painter(_path(name)), 600, seed=5151)
    assert r["stochastic"] == SHIPPED[name][1] and r["strokes"] == 600
    assert r["meets"], \
        f"{name}: {r['psnr']:.2f} dB (bar {r['psnr_bar']:.2f}), texture {r['texture']:.2f} on strokes whole by the rim"


@pytest.mark.mypaint
@skip_no_mypaint
def test_small_strokes_on_the_canvas_carry_the_brush_ink():
    # Issue 23 part 3 in small: 300 strokes in 12 px boxes (a 1000-stroke painting's size) painted by the default
    # painter's canvas against MyPaint painting the same strokes; without the ink by size the canvas is some five
    # times too dark there
    from painter_models.brush.rerender import rerender_mypaint
    from painter_models.brush.strokes import StrokeSet
    from painter_models.painting.canvas import render_canvas
    torch.set_num_threads(1)
    painter = load_painter(_path("soft_brush"))
    g = torch.Generator().manual_seed(12)
    actions = torch.rand(300, NAKANO.dim, generator=g)
    boxes = torch.cat([torch.rand(300, 2, generator=g) * 96, torch.full((300, 1), 12.0)], 1)
    strokes = StrokeSet(actions, boxes, (96, 96), layout=painter.layout, brush=painter.brush)
    brush = torch.from_numpy(rerender_mypaint(strokes, scale=1.0, dtype=np.float32)).permute(2, 0, 1)[None]
    psnr = lambda x: float(psnr_of_mse(((x - brush) ** 2).mean().double()))
    with torch.no_grad():
        with_ink = psnr(render_canvas(painter, strokes))
        painter.ink = None
        without = psnr(render_canvas(painter, strokes))
    assert with_ink >= 22 and with_ink >= without + 5, (with_ink, without)     # measured: 22.9 and 16.9


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.parametrize("name", sorted(n for n, (_, stochastic) in SHIPPED.items() if not stochastic))
def test_thin_strokes_paint_no_streaks_the_brush_does_not(name):
    # Issue 23 part 1: the thinnest strokes (size < 0.1), on a canvas in 12 and 24 px boxes, against MyPaint painting
    # the same strokes. Without the ink by box size soft_brush laid 2.4x the brush's ink in 24 px boxes (15.3 dB) and
    # visible streaks where MyPaint paints nothing at 12 px (19.0 dB)
    from painter_models.brush.rerender import rerender_mypaint
    from painter_models.brush.strokes import StrokeSet
    from painter_models.painting.canvas import render_canvas
    torch.set_num_threads(1)
    painter = load_painter(_path(name))
    g = torch.Generator().manual_seed(31)
    actions = torch.rand(300, NAKANO.dim, generator=g)
    actions[:, NAKANO.index("size")] *= 0.1
    for side, least_psnr in ((12, 40.0), (24, 21.0)):
        boxes = torch.cat([torch.rand(300, 2, generator=g) * 96, torch.full((300, 1), float(side))], 1)
        strokes = StrokeSet(actions, boxes, (96, 96), layout=painter.layout, brush=painter.brush)
        brush = torch.from_numpy(rerender_mypaint(strokes, scale=1.0, dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            canvas = render_canvas(painter, strokes)
        psnr = float(psnr_of_mse(((canvas - brush) ** 2).mean().double()))
        ink = float((1 - canvas).sum() / (1 - brush).sum().clamp_min(1e-6))
        assert psnr >= least_psnr, (side, psnr, ink)
        if side == 24:
            assert 0.8 <= ink <= 1.25, (side, psnr, ink)
