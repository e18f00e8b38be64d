"""MyPaint in the optimisation loop: the loss sees the real brush's canvas, frozen rounds are painted by
it, and the delivered painting is exactly what a re-render of the saved strokes gives."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import requires_mypaint
from painter_models import RasterProgram, load_painter
from painter_models.painting.canvas import render_canvas
from painter_models.brush.rerender import rerender_mypaint
from painter_models.export.stroke_file import load_strokes, save_strokes
from painter_models.objectives.losses import PixelLoss
from painter_models.brush.mypaint import MyPaintUnavailable
from painter_models.painting.optimize import paint

pytestmark = [*requires_mypaint, pytest.mark.usefixtures("one_thread")]


def target(size=40):
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([0.8 - 0.5 * y, 0.3 + 0.4 * x, 0.5 * torch.ones_like(x)])
    img[:, size // 4: size // 2, size // 4: 3 * size // 4] = 0.1
    return img[None]


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


@pytest.fixture
def painter(tmp_painter):
    return load_painter(tmp_painter)   # imitates mypaint:classic/dry_brush (random weights: mechanics only)


def test_delivered_painting_is_the_re_render_of_the_saved_strokes(painter, tmp_path):
    res = paint(painter, PixelLoss(target()), 40, strokes=8, rounds=2, steps=4, seed=0, polish_steps=2)
    assert res.renderer == "mypaint:classic/dry_brush" and res.note == ""
    assert res.strokes.extra["renderer"] == res.renderer and res.strokes.extra["brush_seed"] == 0
    again = as_tensor(rerender_mypaint(res.strokes, 1.0, dtype=np.float32))
    assert torch.equal(res.canvas, again)
    # ... through the stroke file too, bit for bit, in 8 bits as a user's re-render writes it
    path = save_strokes(str(tmp_path / "s.json"), res.strokes)
    reloaded = load_strokes(path)
    assert np.array_equal(rerender_mypaint(reloaded, 1.0), rerender_mypaint(res.strokes, 1.0))
    assert torch.equal(as_tensor(rerender_mypaint(reloaded, 1.0, dtype=np.float32)), res.canvas)
    # the neural painter's canvas of the same strokes comes along, and differs (grain, random weights)
    assert torch.allclose(res.neural_canvas, render_canvas(painter, res.strokes), atol=1e-5)
    assert not torch.allclose(res.neural_canvas, res.canvas, atol=0.05)


def test_the_loss_sees_mypaint_and_the_gradient_moves_the_strokes(painter):
    seeded = paint(painter, PixelLoss(target()), 40, strokes=5, rounds=1, steps=0, seed=1,
                   target_for_seeding=target()).strokes
    seen = []
    loss = PixelLoss(target())

    def recording(canvas):
        seen.append(canvas.detach().clone())
        return loss(canvas)

    res = paint(painter, recording, 40, strokes=5, rounds=1, steps=3, seed=1, target_for_seeding=target())
    assert torch.equal(seen[0], as_tensor(rerender_mypaint(seeded, 1.0, dtype=np.float32)))
    assert not torch.equal(res.strokes.actions, seeded.actions)          # the painter's gradient did reach them
    assert res.history[0]["loss"] == pytest.approx(float(loss(seen[0])))


def test_frozen_rounds_are_painted_by_the_real_brush(painter):
    """The canvas at the end of each round is MyPaint's painting of every stroke so far: the rounds
    before it were frozen into the real brush's canvas, not the neural painter's."""
    res = paint(painter, PixelLoss(target()), 40, strokes=9, rounds=3, steps=6, seed=2, snapshot_every=1000)
    per_round = [max(h["n_strokes"] for h in res.history if h["round"] == r) for r in range(3)]
    assert len(res.snapshots) == 3 and per_round[-1] == 9
    for (_, snapshot), n in zip(res.snapshots, per_round):
        assert torch.equal(snapshot, as_tensor(rerender_mypaint(res.strokes[:n], 1.0, dtype=np.float32)))


def test_switched_off_or_unavailable(painter, monkeypatch):
    off = paint(painter, PixelLoss(target()), 40, strokes=4, rounds=1, steps=2, real_brush=False)
    assert off.renderer == "neural painter" and "switched off" in off.note
    assert torch.equal(off.canvas, off.neural_canvas)

    import painter_models.brush.real_brush as real_brush

    def missing(*args, **kwargs):
        raise MyPaintUnavailable("libmypaint was not found. On Debian/Ubuntu install it with: apt-get ...")

    monkeypatch.setattr(real_brush, "RealBrush", missing)
    auto = paint(painter, PixelLoss(target()), 40, strokes=4, rounds=1, steps=2)
    assert auto.renderer == "neural painter" and "libmypaint was not found" in auto.note
    with pytest.raises(MyPaintUnavailable):
        paint(painter, PixelLoss(target()), 40, strokes=4, rounds=1, steps=2, require_real_brush=True)


def test_painters_of_no_mypaint_brush_paint_their_own_canvas():
    res = paint(RasterProgram(16), PixelLoss(target()), 40, strokes=4, rounds=1, steps=2)
    assert res.renderer == "neural painter" and "raster:soft_round" in res.note
    with pytest.raises(ValueError, match="the real brush needs a painter that imitates a MyPaint brush"):
        paint(RasterProgram(16), PixelLoss(target()), 40, strokes=4, rounds=1, steps=2, require_real_brush=True)
    with pytest.raises(ValueError, match="real_brush must be"):
        paint(RasterProgram(16), PixelLoss(target()), 40, strokes=4, real_brush="yes")
