"""No stroke is ever clipped by its box: a painter renders each stroke in a box that holds all the brush
paints (actions.hold_whole), the thinnest strokes are kept off their box's edge (actions.keep_inside), and
the reach that decides both is measured on MyPaint itself (mypaint.brush_reach)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import skip_no_mypaint
from painter_models import NAKANO, MyPaintProgram, RasterProgram, load_painter
from painter_models.brush.actions import BrushReach, hold_whole, keep_inside
from painter_models.painting.canvas import HAZE, as_painter, render, stroke_layers
from painter_models.brush.strokes import StrokeSet

SHIPPED = "painter_models/weights/dry_brush.safetensors"
POINTS = NAKANO.indices("start_x", "start_y", "control_x", "control_y", "end_x", "end_y")
SIZE = NAKANO.index("size")


def extreme_actions(n: int, seed: int = 0) -> torch.Tensor:
    """Points on the box's edges and corners (and its centre), the smallest and largest sizes, full pressure."""
    rng = np.random.default_rng(seed)
    a = torch.from_numpy(rng.random((n, NAKANO.dim)).astype(np.float32))
    a[:, POINTS] = torch.from_numpy(rng.choice([0.0, 0.5, 1.0], size=(n, 6)).astype(np.float32))
    a[: n // 2, SIZE] = torch.tensor([0.0, 1.0]).repeat(n // 4 + 1)[: n // 2]
    a[:, NAKANO.indices("entry_pressure", "exit_pressure")] = 1.0
    return a


def border(alpha: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels of each tile [N, S, S] -> [N, 4 * S]."""
    return np.concatenate([alpha[:, 0, :], alpha[:, -1, :], alpha[:, :, 0], alpha[:, :, -1]], 1)


def test_the_same_stroke_on_the_canvas():
    """hold_whole changes the box and the action, not the stroke: same path, pressure and radius in
    canvas pixels (what MyPaint paints), and boxes only grow."""
    reach = BrushReach(1.5, 4.0)
    a = torch.rand(200, NAKANO.dim, generator=torch.Generator().manual_seed(0))
    b = torch.cat([torch.rand(200, 2) * 100, 10 + torch.rand(200, 1) * 80], 1)
    ga, gb = hold_whole(NAKANO, a, b, reach)
    before, after = StrokeSet(a, b, (100, 100)).geometry(20), StrokeSet(ga, gb, (100, 100)).geometry(20)
    for key in ("path", "pressure", "log_radius", "colour"):
        assert torch.allclose(before[key], after[key], atol=1e-4), key
    assert (gb[:, 2] >= b[:, 2]).all() and (gb[:, 2] > 1.5 * b[:, 2]).any()
    assert torch.equal(gb[:, :2], b[:, :2])


def test_keep_inside_moves_only_thin_strokes_off_the_edge():
    reach = BrushReach(1.5, 4.0)
    a = extreme_actions(400)
    kept = keep_inside(NAKANO, a, reach)
    thin = a[:, SIZE] < 0.25                                      # radius < 1.65 px at 64 px
    assert torch.equal(kept[~thin], a[~thin])                      # thick strokes: a larger box holds them
    moved = (kept != a).any(1)
    assert moved.any() and thin[moved].all()
    assert torch.equal(kept[:, SIZE], a[:, SIZE])                  # only the path is pulled in
    centre = torch.full_like(a[:, POINTS], 0.5)
    assert ((kept[:, POINTS] - centre).abs() <= (a[:, POINTS] - centre).abs() + 1e-6).all()


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.parametrize("brush", ["classic/dry_brush", "classic/charcoal"])
def test_mypaint_leaves_no_paint_on_the_box_border(brush):
    """The ground truth: MyPaint itself renders the extreme strokes, moved as a painter will see them,
    in the 64 px tile the painters learnt, and paints nothing on its border. Without the move it does."""
    from painter_models.brush.mypaint import brush_reach
    reach = brush_reach(brush)
    a = keep_inside(NAKANO, extreme_actions(300, seed=1), reach)
    moved, _ = hold_whole(NAKANO, a, torch.tensor([[32.0, 32.0, 64.0]]).expand(len(a), 3), reach)
    with MyPaintProgram(brush, 64) as program:
        assert border(program.render(moved.numpy())[..., 3]).max() == 0
        assert (border(program.render(a.numpy())[..., 3]).max(1) > 0).mean() > 0.5   # the test can fail


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.parametrize("brush", ["classic/dry_brush", "classic/charcoal"])
def test_reach_is_measured_on_the_brush(brush):
    from painter_models.brush.mypaint import brush_reach
    reach = brush_reach(brush)
    # classic/dry_brush and charcoal scatter dabs up to ~4 radii from the path (offset_by_random)
    assert 3.0 < reach.per_radius < 5.0 and 0 < reach.base < 4.0
    assert brush_reach(brush) is reach                              # measured once per process


@pytest.mark.mypaint
@skip_no_mypaint
def test_a_brush_that_paints_nothing_has_no_reach_and_says_so():
    """ramon/Grain paints nothing on a blank surface (it only grains what is there): measuring its reach
    used to end in numpy's 'expected non-empty vector for x'."""
    from painter_models.brush.mypaint import brush_reach
    with pytest.raises(ValueError, match="ramon/Grain.*painted nothing.*pick another preset"):
        brush_reach("ramon/Grain")


@pytest.fixture(scope="module")
def shipped():
    return load_painter(SHIPPED)


def test_render_depends_on_the_stroke_not_on_its_box(shipped):
    """A stroke given in a box twice as large (path halved towards the centre, radius at 64 px halved)
    is the same stroke: the canvas is the same. (Wide strokes reaching their box's corners: a box
    of twice the side and more holds them, so both end in the same box.)"""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(30, NAKANO.dim, generator=g)
    a[:, POINTS] = (torch.rand(30, 6, generator=g) < 0.5).float()          # corners and edges
    a[:, SIZE] = 0.95 + 0.05 * torch.rand(30, generator=g)
    b = torch.cat([20 + torch.rand(30, 2, generator=g) * 60, 20 + torch.rand(30, 1, generator=g) * 20], 1)
    a2 = a.clone()
    a2[:, POINTS] = 0.5 + (a[:, POINTS] - 0.5) / 2
    a2[:, SIZE] = a[:, SIZE] - np.log(2) / 2
    b2 = torch.cat([b[:, :2], 2 * b[:, 2:]], 1)
    wide = hold_whole(NAKANO, a, b, shipped.reach)[1][:, 2] > b2[:, 2]
    assert wide.sum() >= 10
    a, b, a2, b2 = a[wide], b[wide], a2[wide], b2[wide]
    with torch.no_grad():
        one = render(shipped, a, b, (100, 100))
        two = render(shipped, a2, b2, (100, 100))
    assert (one - two).abs().max() < 1e-4


def test_shipped_painter_paints_extreme_strokes_whole(shipped):
    """The painter's tiles as the canvas uses them (canvas.stroke_layers): the moved extreme strokes
    leave no paint on the border; unmoved, the brush's paint would run into it."""
    a = keep_inside(NAKANO, extreme_actions(200, seed=2), shipped.reach)
    moved, _ = hold_whole(NAKANO, a, torch.tensor([[32.0, 32.0, 64.0]]).expand(len(a), 3), shipped.reach)
    painter = as_painter(shipped)
    with torch.no_grad():
        tiles = stroke_layers(painter, moved, "alpha")
        _, alpha_cut = shipped(a)
        _, alpha_moved = shipped(moved)
    assert float(border(tiles[:, 3].numpy()).max()) < 0.5 / 255
    assert float(border(alpha_cut[:, 0].numpy()).max()) > 0.2
    # the fade only removes the network's haze: inside the tile the stroke is the painter's own, but
    # for alpha fainter than the 8-bit strokes it learnt
    inner = (slice(None), 0, slice(3, -3), slice(3, -3))
    own = alpha_moved[inner]
    assert torch.equal(tiles[:, 3:4][inner], torch.where(own >= HAZE, own, torch.zeros_like(own)))
    assert (own[own < HAZE] > 0).any()


def test_raster_program_reach_holds_its_discs():
    prog = RasterProgram(64)
    a = keep_inside(NAKANO, extreme_actions(200, seed=4), prog.reach)
    moved, _ = hold_whole(NAKANO, a, torch.tensor([[32.0, 32.0, 64.0]]).expand(len(a), 3), prog.reach)
    out = prog.render(moved.numpy())
    assert border(out[..., 3]).max() == 0
