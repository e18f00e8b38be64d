"""painter_models.limits: every producer of strokes is held to the geometry limits, and every long
job is refused above its work budget before it starts, and can be cancelled while it runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from painter_models import NAKANO, RasterProgram, limits
from painter_models.brush import rerender
from painter_models.export import timelapse
from painter_models.painting.canvas import render, render_canvas, render_progress, render_work
from painter_models.brush.strokes import StrokeSet

from conftest import skip_no_mypaint


def strokes(boxes, canvas=(64, 80)):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    return StrokeSet(torch.from_numpy(NAKANO.sample(len(boxes), seed=0)), boxes, canvas)


# -- geometry -------------------------------------------------------------------------------------

def test_the_edges_of_the_limits_are_legal():
    h, w = 64, 80
    s = strokes([[-w, -h, 4 * w], [2 * w, 2 * h, 1 / 16], [w / 2, h / 2, 4 * max(h, w)]], (h, w))
    assert len(s) == 3
    widest = strokes([[-w, 2 * h, 4 * w]], (h, w))
    assert len(widest.scaled(0.37)) == 1 and len(widest.scaled(5.3)) == 1, "the scaled canvas's rounding is absorbed"


@pytest.mark.parametrize("box, message", [
    ([5e8, 32, 16], "stroke 1: box centre x = 5e\\+08 px is too far from the 80 px wide canvas; keep it within "
                    "-80..160"),
    ([32, -65 - 1.5, 16], "box centre y = -66.5 px is too far from the 64 px high canvas"),
    ([32, 32, 1e7], "box side 1e\\+07 px is more than 4x the canvas's longer side \\(80 px\\); make it at most 320"),
    ([32, 32, 0.05], "box side 0.05 px is below 0.0625 px"),
    ([32, 32, -4], "box side -4 px is below"),
    ([32, float("nan"), 4], "is not finite"),
])
def test_strokes_beyond_the_limits_are_refused_naming_the_stroke_and_the_fix(box, message):
    with pytest.raises(ValueError, match=message):
        strokes([[10, 10, 10], box])


def test_a_painting_holds_at_most_max_strokes(monkeypatch):
    monkeypatch.setattr(limits, "MAX_STROKES", 3)
    strokes([[10, 10, 10]] * 3)
    with pytest.raises(ValueError, match="4 strokes is more than the 3 one painting may hold"):
        strokes([[10, 10, 10]] * 4)


def test_joined_strokes_are_checked_too():
    s = strokes([[70, 60, 300]])
    joined = s.cat(strokes([[10, 10, 320]]))
    joined.boxes[1, 2] = 400.0          # edited in place: the next copy checks again
    with pytest.raises(ValueError, match="stroke 1: box side 400"):
        joined[0:2]


# -- the torch renderer -----------------------------------------------------------------------------

def test_render_work_counts_crops_clipped_to_the_canvas_and_a_cost_per_stroke():
    boxes = torch.tensor([[10.0, 10.0, 20.0], [10.0, 10.0, 5000.0]])
    small, big = render_work(boxes[:1], (64, 64)), render_work(boxes[1:], (64, 64))
    assert limits.PAINTER_STROKE_WORK < small < 2 * limits.PAINTER_STROKE_WORK
    assert big == render_work(torch.tensor([[10.0, 10.0, 256.0 * 4]]), (64, 64)), "clipped to the canvas"
    assert render_work(boxes, (64, 64)) == pytest.approx(small + big)


def test_a_render_above_the_budget_is_refused_before_anything_is_allocated(monkeypatch):
    s = strokes([[40, 32, 64]] * 5)
    monkeypatch.setattr("painter_models.painting.canvas.MAX_RENDER_WORK", render_work(s.boxes, s.canvas_size) - 1)
    monkeypatch.setattr("painter_models.painting.canvas.background_canvas", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(ValueError, match="too much work.*use fewer or smaller strokes, or a smaller canvas"):
        render_canvas(RasterProgram(16), s)
    with pytest.raises(ValueError, match="too much work"):
        next(render_progress(RasterProgram(16), s))


def test_check_runs_before_every_group_and_cancels(one_thread):
    s = strokes([[40, 32, 16]] * 12)
    calls = []
    render_canvas(RasterProgram(16), s, check=lambda: calls.append(1), group_strokes=4)
    assert len(calls) == 3

    class Cancel(Exception):
        pass

    def cancel_second():
        calls.append(1)
        if len(calls) > 4:
            raise Cancel
    with pytest.raises(Cancel):
        render(RasterProgram(16), s.actions, s.boxes, s.canvas_size, check=cancel_second, group_strokes=4)
    assert len(calls) == 5, "stopped at the second group"


# -- MyPaint re-render and time-lapse ---------------------------------------------------------------

@skip_no_mypaint
@pytest.mark.mypaint
def test_mypaint_checks_every_stroke_and_refuses_work_above_its_budget(monkeypatch):
    s = strokes([[40, 32, 24]] * 5)
    calls = []
    rerender.rerender_mypaint(s, 1.0, check=lambda: calls.append(1))
    assert len(calls) == 5, "one check per stroke"
    monkeypatch.setattr(rerender, "MAX_MYPAINT_WORK", 1.0)
    with pytest.raises(ValueError, match="MyPaint painting at scale 2 is too much work.*lower the scale"):
        rerender.rerender_mypaint(s, 2.0)
    with pytest.raises(ValueError, match="MyPaint painting the time-lapse is too much work"):
        timelapse.timelapse_frames("mypaint", s, 3)


@skip_no_mypaint
@pytest.mark.mypaint
def test_mypaint_work_grows_with_length_and_radius():
    from painter_models.brush.mypaint import MyPaintCanvas
    line = np.stack([np.linspace(0, 100, 50), np.full(50, 30.0)], -1)[None]
    with MyPaintCanvas(64, 64) as canvas:
        base = canvas.work(line, [1.0])
        assert canvas.work(np.concatenate([line, line * [2, 1]], 1), [1.0]) > base
        assert canvas.work(line, [3.0]) > base
        assert canvas.work(line, [20.0]) == canvas.work(line, [np.log(limits.MAX_BRUSH_RADIUS)]), "radius capped"


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.0, -2.0, "x"])
def test_a_scale_that_is_not_a_finite_positive_number_is_refused(scale):
    with pytest.raises(ValueError, match="scale must be a finite positive number"):
        rerender.rerender_mypaint(strokes([[40, 32, 24]]), scale)


def test_time_lapse_frames_times_pixels_are_bounded(monkeypatch):
    s = strokes([[40, 32, 24]] * 10)
    monkeypatch.setattr(limits, "MAX_BATCH_PIXELS", 5 * 64 * 80)
    assert len(timelapse.timelapse_frames(RasterProgram(16), s, 5)) == 5
    with pytest.raises(ValueError, match="time-lapse: 6 images of 80x64 px.*use fewer frames or a smaller max_side"):
        timelapse.timelapse_frames(RasterProgram(16), s, 6)
    assert len(timelapse.timelapse_frames(RasterProgram(16), s, 6, max_side=40)) == 6
