"""Stroke optimisation: loss goes down, determinism, cancellation, constraints, seeding, palettes."""
from __future__ import annotations

import pytest
import torch

from painter_models import NAKANO, Generator, RasterProgram, generator_config
from painter_models.painting.canvas import render_canvas
from painter_models.objectives.losses import PixelLoss
from painter_models.objectives import losses
from painter_models.objectives.objective import photo_objective
from painter_models.painting.optimize import PaintProgress, StopPainting, paint
from painter_models.painting.settings import default_sizes, round_plan
from painter_models.painting.palette import PaletteError, kmeans_palette, parse_palette, to_hex
from painter_models.brush.strokes import StrokeSet

RGB = NAKANO.indices("red", "green", "blue")
PRESSURE = NAKANO.indices("entry_pressure", "exit_pressure")


def target_image(size=48):
    """A small synthetic 'photo': a warm gradient with a dark disc and a blue square."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([0.9 - 0.3 * y, 0.6 + 0.2 * x, 0.3 + 0.1 * x * y])
    disc = ((x - 0.35) ** 2 + (y - 0.4) ** 2) < 0.04
    img[:, disc] = torch.tensor([0.1, 0.1, 0.15])[:, None]
    img[:, int(0.6 * size):int(0.85 * size), int(0.6 * size):int(0.85 * size)] = torch.tensor([0.1, 0.2, 0.8])[:, None, None]
    return img[None]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def painter():
    return RasterProgram(16)


def test_round_plan_and_default_sizes():
    plan = round_plan(100, 4, 10, 80)
    assert sum(c for c, _ in plan) == 100 and len(plan) == 4
    sides = [s for _, s in plan]
    assert sides[0] == pytest.approx(80) and sides[-1] == pytest.approx(10)
    assert sides == sorted(sides, reverse=True)                      # coarse to fine
    assert [c for c, _ in plan] == sorted(c for c, _ in plan)         # more strokes in finer rounds
    assert round_plan(3, 10, 10, 80) and len(round_plan(3, 10, 10, 80)) == 3
    lo, hi = default_sizes((256, 256), 200)
    assert 4 <= lo < hi <= 256


def test_paint_reduces_loss_and_is_deterministic(painter):
    target = target_image()
    obj = PixelLoss(target, kind="l2")
    kw = dict(strokes=16, rounds=2, steps=16, seed=3, learning_rate=0.1, min_stroke_size=14,
              max_stroke_size=30, target_for_seeding=target)
    a = paint(painter, obj, 48, **kw)
    blank = float(obj(torch.ones(1, 3, 48, 48)))
    first = a.history[0]["loss"]
    assert a.history[-1]["loss"] < first < blank
    assert float(obj(a.canvas)) < 0.5 * blank
    assert len(a.strokes) == 16 and a.strokes.canvas_size == (48, 48) and not a.cancelled
    assert [h["step"] for h in a.history] == list(range(1, 17))
    b = paint(painter, obj, 48, **kw)
    assert torch.equal(a.strokes.actions, b.strokes.actions) and torch.equal(a.strokes.boxes, b.strokes.boxes)
    assert torch.equal(a.canvas, b.canvas)
    c = paint(painter, obj, 48, **{**kw, "seed": 4})
    assert not torch.equal(a.strokes.actions, c.strokes.actions)
    # the returned canvas is the returned strokes' painting
    again = render_canvas(painter, a.strokes)
    assert torch.allclose(again, a.canvas, atol=1e-5)


def test_neural_painter_keep_training_and_linear_blend():
    gen = Generator(generator_config("tiny")).eval().requires_grad_(False)
    obj = photo_objective(target_image(32), pixel=1.0)
    res = paint(gen, obj, 32, strokes=8, rounds=2, steps=8, keep_training=True, blend="linear", seed=0)
    assert res.strokes.blend == "linear" and len(res.strokes) == 8
    assert res.history[-1]["loss"] < 0.95 * res.history[0]["loss"]   # it painted: the loss moved


def test_boxes_stay_within_limits(painter):
    res = paint(painter, PixelLoss(target_image()), 48, strokes=12, rounds=2, steps=20, learning_rate=0.5,
                min_stroke_size=10, max_stroke_size=20, seed=1)
    b = res.strokes.boxes
    assert (b[:, 2] >= 10 - 1e-4).all() and (b[:, 2] <= 20 + 1e-4).all()
    assert (b[:, 0] >= 0).all() and (b[:, 0] <= 48).all() and (b[:, 1] >= 0).all() and (b[:, 1] <= 48).all()


def test_cancellation_keeps_best_result(painter):
    seen = []

    def stop_at_5(info: PaintProgress):
        seen.append(info.step)
        return info.step == 5

    res = paint(painter, PixelLoss(target_image()), 48, strokes=10, rounds=2, steps=40, callback=stop_at_5)
    assert res.cancelled and seen == [1, 2, 3, 4, 5] and len(res.history) == 5
    assert res.strokes.actions.shape[0] >= 1

    def raise_stop(info):
        if info.step == 3:
            raise StopPainting()

    assert paint(painter, PixelLoss(target_image()), 48, strokes=4, steps=10, callback=raise_stop).cancelled

    class Interrupted(Exception):
        pass

    def interrupt(info):
        if info.step == 2:
            raise Interrupted()

    with pytest.raises(Interrupted) as e:
        paint(painter, PixelLoss(target_image()), 48, strokes=4, steps=10, callback=interrupt)
    # the painting so far: the strokes seeded before the interrupt (round 1 of 4 here)
    assert e.value.paint_result.cancelled and 1 <= len(e.value.paint_result.strokes) <= 4


def test_time_limit_stops_with_the_painting_so_far(painter):
    import time
    seen = []

    def slow(info):
        seen.append(info.step)
        time.sleep(0.05)

    res = paint(painter, PixelLoss(target_image()), 48, strokes=12, rounds=3, steps=300, callback=slow,
                time_limit=0.5)
    assert res.timed_out and not res.cancelled and res.strokes.extra["timed_out"]
    assert 3 <= len(seen) < 300 and len(res.history) == len(seen)
    assert 1 <= len(res.strokes) < 12                  # rounds not yet reached are not seeded
    for bad in (-1.0, float("nan")):      # 0 is "no limit" (the settings' default)
        with pytest.raises(ValueError, match="time_limit"):
            paint(painter, PixelLoss(target_image()), 48, strokes=2, time_limit=bad)
    assert not paint(painter, PixelLoss(target_image()), 48, strokes=2, steps=2, time_limit=0).timed_out


def test_previews_and_snapshots(painter):
    previews = []
    res = paint(painter, PixelLoss(target_image()), 48, strokes=6, rounds=2, steps=10, preview_every=4,
                snapshot_every=5, callback=lambda i: previews.append((i.step, i.preview)))
    with_preview = [s for s, p in previews if p is not None]
    assert with_preview == [4, 8, 10]
    assert all(p.shape == (1, 3, 48, 48) for _, p in previews if p is not None)
    steps = [s for s, _ in res.snapshots]
    assert 5 in steps and 10 in steps and all(c.shape == (1, 3, 48, 48) for _, c in res.snapshots)


def test_palette_greyscale_opaque_constraints(painter):
    target = target_image()
    pal = parse_palette("#000000, #ffffff, #1a33cc, #e69966")
    res = paint(painter, PixelLoss(target), 48, strokes=10, rounds=2, steps=12, palette=",".join(to_hex(pal)), seed=2)
    colours = res.strokes.actions[:, RGB]
    assert (torch.cdist(colours, pal).min(1).values < 1e-5).all()
    assert res.strokes.extra["palette"] == to_hex(pal)

    res = paint(painter, PixelLoss(target), 48, strokes=10, rounds=2, steps=12, palette="3", seed=2,
                target_for_seeding=target)
    k = torch.tensor([[int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)] for h in res.strokes.extra["palette"]])
    assert len(k) == 3
    assert (torch.cdist(res.strokes.actions[:, RGB], k).min(1).values < 3e-3).all()

    res = paint(painter, PixelLoss(target), 48, strokes=10, rounds=2, steps=12, greyscale=True, opaque=True)
    c = res.strokes.actions[:, RGB]
    assert torch.allclose(c[:, 0], c[:, 1]) and torch.allclose(c[:, 0], c[:, 2])
    assert torch.equal(res.strokes.actions[:, PRESSURE], torch.ones(10, 2))
    grey = res.canvas[0]
    assert torch.allclose(grey[0], grey[1], atol=1e-5) and torch.allclose(grey[0], grey[2], atol=1e-5)


def test_seeding_goes_where_the_error_is(painter):
    """White target except a dark square in the lower right: the seeded strokes land in it."""
    target = torch.ones(1, 3, 64, 64)
    target[:, :, 40:60, 36:60] = 0.1
    res = paint(painter, PixelLoss(target), 64, strokes=6, rounds=1, steps=0, min_stroke_size=12, max_stroke_size=12, seed=0,
                target_for_seeding=target)
    cx, cy = res.strokes.boxes[:, 0], res.strokes.boxes[:, 1]
    assert ((cx > 32) & (cy > 34)).all(), res.strokes.boxes
    # colours start at the target's local colour (dark)
    assert (res.strokes.actions[:, RGB].mean(1) < 0.5).all()

    # without a target image the gradient of the loss places them
    def top_left_dark(canvas):
        return canvas[..., :24, :24].mean()

    res = paint(painter, top_left_dark, 64, strokes=4, rounds=1, steps=0, min_stroke_size=12, max_stroke_size=12, seed=0)
    assert (res.strokes.boxes[:, 0] < 32).all() and (res.strokes.boxes[:, 1] < 32).all()


def test_init_strokes_are_kept_under_new_ones(painter):
    target = target_image()
    first = paint(painter, PixelLoss(target), 48, strokes=5, rounds=1, steps=5, seed=0)
    more = paint(painter, PixelLoss(target), 48, strokes=4, rounds=1, steps=5, init=first.strokes, seed=1)
    assert len(more.strokes) == 9
    assert torch.allclose(more.strokes.actions[:5], first.strokes.actions, atol=1e-5)
    assert torch.allclose(more.strokes.boxes[:5], first.strokes.boxes, atol=1e-4)
    # strokes=0 refines the init strokes themselves
    refined = paint(painter, PixelLoss(target), 48, strokes=0, steps=5, init=first.strokes)
    assert len(refined.strokes) == 5 and not torch.equal(refined.strokes.actions, first.strokes.actions)
    # an init painted on another canvas size is scaled to this one
    bigger = paint(painter, PixelLoss(target), 96, strokes=1, rounds=1, steps=1, init=first.strokes)
    assert torch.allclose(bigger.strokes.boxes[:5], first.strokes.boxes * 2, atol=1e-3)


def test_target_image_and_objective_terms():
    img = target_image(16)
    obj = photo_objective(img, pixel=1.0)
    assert torch.equal(losses.target_image(obj), PixelLoss(img).target)
    assert losses.target_image(lambda c: c.mean()) is None
    obj(torch.rand(1, 3, 16, 16))
    assert set(obj.last_terms) == {"pixel"}


def test_kmeans_palette_and_parsing():
    img = torch.zeros(1, 3, 20, 20)
    img[:, :, :10] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    img[:, :, 10:] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    pal = kmeans_palette(img, 2, seed=0)
    assert torch.allclose(pal, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), atol=1e-4)
    assert torch.equal(kmeans_palette(img, 2, seed=5), pal)
    assert parse_palette(["#fff", "000000"]).tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert parse_palette([[255, 0, 0]]).tolist() == [[1.0, 0.0, 0.0]]
    for bad in ["", "#12", "red", [[0.1, 0.2]]]:
        with pytest.raises(PaletteError):
            parse_palette(bad)


def test_bad_arguments(painter):
    obj = PixelLoss(target_image())
    with pytest.raises(ValueError, match="strokes"):
        paint(painter, obj, 48, strokes=-1)
    with pytest.raises(ValueError, match="nothing to paint"):
        paint(painter, obj, 48, strokes=0)
    with pytest.raises(ValueError, match="min_stroke_size"):
        paint(painter, obj, 48, strokes=3, min_stroke_size=30, max_stroke_size=10)
    with pytest.raises(ValueError, match="canvas size"):
        paint(painter, obj, 100_000, strokes=3)
    with pytest.raises(ValueError, match="blend"):
        paint(painter, obj, 48, strokes=3, blend="screen")
    with pytest.raises(TypeError, match="objective"):
        paint(painter, "pixel", 48, strokes=3)
    with pytest.raises(ValueError, match="k-means"):
        paint(painter, lambda c: c.mean(), 48, strokes=3, palette="4")
    # refused up front, not after a long run
    with pytest.raises(ValueError, match="learning_rate"):
        paint(painter, obj, 48, strokes=3, learning_rate=float("nan"))
    with pytest.raises(ValueError, match="max_stroke_size 200 px is more than 4x"):
        paint(painter, obj, 48, strokes=3, max_stroke_size=200)
    with pytest.raises(ValueError, match="snapshots"):
        paint(painter, obj, 4096, strokes=3, steps=100, snapshot_every=1)
    init = StrokeSet(torch.rand(99_999, 12), torch.tensor([[24.0, 24.0, 8.0]]).expand(99_999, 3), (48, 48))
    with pytest.raises(ValueError, match="at most 100000 with the 99999 init strokes"):
        paint(painter, obj, 48, strokes=3, init=init)


def test_polish_round_trains_every_stroke(painter):
    res = paint(painter, PixelLoss(target_image()), 48, strokes=6, rounds=2, steps=6, polish_steps=3, seed=0)
    assert len(res.history) == 9 and {h["round"] for h in res.history} == {0, 1, 2}
    assert res.history[-1]["n_strokes"] == 6
    with pytest.raises(ValueError, match="polish_steps"):
        paint(painter, PixelLoss(target_image()), 48, strokes=2, polish_steps=-1)


def test_paint_under_no_grad(painter):
    """ComfyUI runs nodes with gradients off: paint() switches them on for itself."""
    with torch.no_grad():
        res = paint(painter, PixelLoss(target_image()), 48, strokes=4, rounds=1, steps=4, seed=0)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_stroke_adam_is_torch_adam():
    # the optimiser's own Adam takes the same steps as torch.optim.Adam, group learning rates changing
    from painter_models.painting.optimize import StrokeAdam
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(5, 4, generator=gen), torch.randn(7, generator=gen)]
    runs = []
    for make in (lambda g: torch.optim.Adam(g, betas=(0.9, 0.99)), lambda g: StrokeAdam(g, betas=(0.9, 0.99))):
        params = [t.clone().requires_grad_(True) for t in start]
        opt = make([{"params": [params[0]], "lr": 0.2}, {"params": [params[1]], "lr": 0.06}])
        for i in range(30):
            for group, base in zip(opt.param_groups, (0.2, 0.06)):
                group["lr"] = base * (1 - i / 40)
            opt.zero_grad()
            ((params[0] ** 3).sum() + (params[1] - 2).abs().sum()).backward()
            opt.step()
        runs.append(params)
    for theirs, ours in zip(*runs):
        assert torch.allclose(theirs, ours, atol=1e-6)
    assert not torch.allclose(runs[1][0], start[0], atol=0.5)     # it moved
