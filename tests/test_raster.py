"""The torch rasteriser: same API as MyPaintProgram, strokes where the action says, gradients to the actions."""
import numpy as np
import pytest
import torch

from painter_models import NAKANO, MyPaintProgram, RasterProgram, make_program, rgba_to_rgb

from conftest import skip_no_mypaint


def straight_stroke(start=(0.2, 0.25), end=(0.8, 0.25), size=0.5, rgb=(0.9, 0.1, 0.2), pressure=0.8):
    a = np.zeros((1, 12), np.float32)
    i = NAKANO.index
    a[0, [i("start_x"), i("start_y")]] = start
    a[0, [i("end_x"), i("end_y")]] = end
    a[0, [i("control_x"), i("control_y")]] = np.add(start, end) / 2
    a[0, [i("red"), i("green"), i("blue")]] = rgb
    a[0, i("size")] = size
    a[0, [i("entry_pressure"), i("exit_pressure")]] = pressure
    return a


def test_same_api_as_mypaint():
    with make_program("raster", 32) as r:
        assert isinstance(r, RasterProgram) and r.size == 32 and r.layout is NAKANO
        assert r.brush.startswith("raster")
        for name in ("render", "render_rgb", "close"):
            assert callable(getattr(r, name)) and callable(getattr(MyPaintProgram, name))
        a = NAKANO.sample(5, seed=0)
        rgba = r.render(a)
        assert rgba.dtype == np.uint8 and rgba.shape == (5, 32, 32, 4)
        assert np.array_equal(rgba, r.render(a))   # deterministic
        np.testing.assert_array_equal(r.render_rgb(a), rgba_to_rgb(rgba))
        rgb = r.render_rgb(a)
        assert rgb.dtype == np.float32 and rgb.shape == (5, 32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1
        # premultiplied: colour never exceeds alpha, and strokes are not empty
        assert (rgba[..., :3] <= rgba[..., 3:]).all()
        assert (rgba[..., 3].reshape(5, -1).max(1) > 32).all()


def test_batching_does_not_change_the_pixels():
    a = NAKANO.sample(7, seed=1)
    np.testing.assert_array_equal(RasterProgram(24, batch=3).render(a), RasterProgram(24, batch=256).render(a))


def test_bad_input_is_refused_with_the_field_name():
    r = RasterProgram(16)
    a = NAKANO.sample(2, seed=2)
    a[1, NAKANO.index("start_y")] = 1.2
    with pytest.raises(ValueError, match=r"\[1\] field 'start_y'"):
        r.render(a)
    with pytest.raises(ValueError, match=r"\[N, 12\]"):
        r.render(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="stroke size 4 px is out of range"):
        RasterProgram(4)


def test_stroke_appears_where_the_action_says():
    s = 64
    a = straight_stroke(start=(0.2, 0.25), end=(0.8, 0.25), rgb=(0.9, 0.1, 0.2))
    colour, alpha = RasterProgram(s).render_torch(torch.from_numpy(a))
    alpha = alpha[0, 0]
    row = int(0.25 * s)
    assert alpha[row, int(0.5 * s)] > 0.5 and alpha[row, int(0.3 * s)] > 0.5 and alpha[row, int(0.75 * s)] > 0.5
    assert alpha[int(0.75 * s):].max() < 1e-3            # nothing in the bottom quarter
    assert alpha[:, : int(0.1 * s)].max() < 1e-2          # nothing left of the start (soft edge aside)
    ys, xs = np.nonzero(alpha.numpy() > 0.5)
    assert abs(ys.mean() - 0.25 * s) < 1.5 and abs(xs.mean() - 0.5 * s) < 3
    torch.testing.assert_close(colour[0, :, row, 32], torch.tensor([0.9, 0.1, 0.2]))
    # a curved stroke passes through its control point at t = 0.5
    b = straight_stroke(start=(0.2, 0.8), end=(0.8, 0.8), size=0.2)
    b[0, NAKANO.index("control_y")] = 0.3
    alpha_b = RasterProgram(s).render_torch(torch.from_numpy(b))[1][0, 0]
    assert alpha_b[int(0.3 * s), int(0.5 * s)] > 0.5
    assert alpha_b[int(0.55 * s), int(0.5 * s)] < 0.05   # the chord below the arc stays empty


def test_size_and_pressure_widen_the_stroke():
    r = RasterProgram(64)
    masses = [r.render_torch(torch.from_numpy(straight_stroke(size=sz)))[1].sum().item() for sz in (0.1, 0.5, 0.9)]
    assert masses[0] < masses[1] < masses[2]
    light, hard = (r.render_torch(torch.from_numpy(straight_stroke(pressure=p)))[1].sum().item() for p in (0.1, 0.9))
    assert light < hard


def test_geometry_scales_with_stroke_size():
    # the same strokes at 4x the resolution, box-downsampled: same place and amount of paint
    # (edges stay 1 px soft at any size, so pixels differ at the borders)
    a = NAKANO.sample(4, seed=3)
    small = RasterProgram(64).render(a)[..., 3].astype(np.float32)
    big = RasterProgram(256).render(a)[..., 3].astype(np.float32).reshape(4, 64, 4, 64, 4).mean((2, 4))
    ratio = small.sum((1, 2)) / big.sum((1, 2))
    assert ((0.8 < ratio) & (ratio < 1.6)).all(), ratio   # thin strokes gain most from the 1 px edge
    grid = np.arange(64) + 0.5
    for im in (small, big):
        im /= im.sum((1, 2), keepdims=True)
    for axis in (1, 2):
        c_small = (small.sum(axis) * grid).sum(1)
        c_big = (big.sum(axis) * grid).sum(1)
        assert np.abs(c_small - c_big).max() < 2.0   # centroids within 2 px of 64


def test_gradients_flow_from_alpha_to_position_and_size():
    a = torch.from_numpy(straight_stroke(start=(0.3, 0.4), end=(0.6, 0.5), size=0.4)).requires_grad_(True)
    _, alpha = RasterProgram(32).render_torch(a)
    # more coverage when the stroke is bigger
    g_size, = torch.autograd.grad(alpha.sum(), a, retain_graph=True)
    assert g_size[0, NAKANO.index("size")] > 0
    # moving the whole stroke right moves its centroid right
    xs = (torch.arange(32, dtype=torch.float32) + 0.5)
    cx = (alpha[0, 0] * xs[None, :]).sum() / alpha.sum()
    g_pos, = torch.autograd.grad(cx, a, retain_graph=True)
    for role in ("start_x", "control_x", "end_x"):
        assert g_pos[0, NAKANO.index(role)] > 0, role
    assert abs(g_pos[0, NAKANO.index("start_y")]) < abs(g_pos[0, NAKANO.index("start_x")])
    # a loss that wants paint just below the stroke's edge pulls the stroke down (descent raises y)
    loss = -alpha[0, 0, 19, 15]
    g_pull, = torch.autograd.grad(loss, a)
    assert torch.isfinite(g_pull).all()
    i = NAKANO.index
    assert g_pull[0, [i("start_y"), i("control_y"), i("end_y")]].sum() < 0
    assert g_pull[0, i("size")] < 0   # and makes it wider


def test_colour_gradient_and_differentiable_composite():
    a = torch.from_numpy(NAKANO.sample(3, seed=4)).requires_grad_(True)
    colour, alpha = RasterProgram(16).render_torch(a)
    over_white = colour * alpha + (1 - alpha)
    over_white[:, 0].sum().backward()
    assert a.grad[:, NAKANO.index("red")].min() > 0
    assert torch.isfinite(a.grad).all()


def reference_alpha(program, actions):
    """The rasteriser's definition written plainly: a running torch.maximum over the points, autograd throughout."""
    from painter_models.brush.actions import bezier_points
    from painter_models.brush.raster import N_POINTS
    s, lay = program.size, program.layout
    x, y, pressure = bezier_points(lay, actions, N_POINTS)
    radius = torch.exp(lay.to_physical(actions, "size"))[:, None] * (s / 64.0) * (0.35 + pressure)
    opacity = (0.25 + pressure / 0.8 * 0.75).clamp(0, 1)
    grid = torch.arange(s, dtype=actions.dtype) + 0.5
    edge = program.softness * s / 64.0
    alpha = actions.new_zeros(actions.shape[0], s, s)
    for p in range(N_POINTS):
        dist = torch.sqrt((grid[None, None, :] - x[:, p, None, None] * s) ** 2
                          + (grid[None, :, None] - y[:, p, None, None] * s) ** 2 + 1e-8)
        cover = torch.sigmoid((radius[:, p, None, None] - dist) / edge) * opacity[:, p, None, None]
        alpha = torch.maximum(alpha, cover)
    return alpha[:, None]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_max_matches_the_plain_definition_in_values_and_gradients(dtype):
    # render_torch finds the max without autograd and recomputes only the winning point with it:
    # it must agree with the plain running max, values and gradients (the shipped painters use it)
    program = RasterProgram(24, softness=1.3)
    a = torch.rand(8, 12, generator=torch.Generator().manual_seed(0), dtype=dtype)
    fast_in, ref_in = a.clone().requires_grad_(), a.clone().requires_grad_()
    colour, fast = program.render_torch(fast_in)
    ref = reference_alpha(program, ref_in)
    assert torch.equal(fast, ref)   # same expression at the same point: bit for bit
    with torch.no_grad():           # no-grad path returns the max it found directly
        assert torch.equal(program.render_torch(a)[1], ref)
    assert torch.equal(colour, a[:, NAKANO.indices("red", "green", "blue"), None, None].expand(-1, -1, 24, 24))
    weights = torch.rand(ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    g_fast, = torch.autograd.grad((fast * weights).sum(), fast_in)
    g_ref, = torch.autograd.grad((ref * weights).sum(), ref_in)
    shape_fields = [i for i in range(12) if i not in NAKANO.indices("red", "green", "blue")]
    assert g_ref[:, shape_fields].abs().amax(0).min() > 0   # every shape field has a gradient to check
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4 * g_ref.abs().max())
    torch.testing.assert_close(g_fast, g_ref, **tol)


@skip_no_mypaint
@pytest.mark.mypaint
def test_make_program_gives_mypaint_for_a_preset():
    with make_program("classic/dry_brush", 32) as p:
        assert isinstance(p, MyPaintProgram) and p.size == 32
