"""Canvas rendering: placement, blending, chunked == unchunked, gradients, time-lapse frames."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from painter_models import NAKANO, Generator, RasterProgram, generator_config
from painter_models.brush.actions import hold_whole
from painter_models.images import background_canvas
from painter_models.painting.canvas import (_plan_groups, as_painter, fast_painter, render,
                                   render_canvas, render_progress, stroke_layers)
from painter_models.brush.strokes import StrokeSet

RGB = NAKANO.indices("red", "green", "blue")


pytestmark = pytest.mark.usefixtures("one_thread")


class SquarePainter:
    """A painter whose stroke is a centred square of side S/2 with constant alpha and colour."""
    stroke_size = 16

    def __init__(self, alpha=1.0, colour=(0.2, 0.4, 0.6)):
        self.alpha, self.colour = alpha, colour

    def __call__(self, actions):
        n, s = actions.shape[0], self.stroke_size
        a = actions.new_zeros(n, 1, s, s)
        a[:, :, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = self.alpha
        c = torch.tensor(self.colour, dtype=actions.dtype).view(1, 3, 1, 1).expand(n, 3, s, s)
        return c, a


class BlobPainter:
    """A cheap smooth painter: an elongated Gaussian blob whose place, size and colour follow the action."""
    stroke_size = 16
    layout = NAKANO

    def __call__(self, actions):
        s = self.stroke_size
        t = (torch.arange(s, dtype=actions.dtype) + 0.5) / s
        x0, y0 = actions[:, 9, None, None], actions[:, 10, None, None]
        sig = 0.05 + 0.2 * actions[:, 1, None, None]
        d2 = (t[None, None, :] - x0) ** 2 / sig ** 2 + (t[None, :, None] - y0) ** 2 / (0.5 * sig) ** 2
        alpha = (0.3 + 0.7 * actions[:, 0, None, None]) * torch.exp(-0.5 * d2)
        colour = actions[:, RGB, None, None].expand(-1, 3, s, s)
        return colour, alpha[:, None]


def reference(painter, actions, boxes, hw, background=1.0, blend="alpha"):
    """Naive renderer: each stroke placed on the whole canvas with grid_sample (bilinear, zeros
    outside: valid for boxes at least as large as the stroke tile), composited one by one, after the
    strokes are moved into boxes that hold them whole like render() does."""
    p = as_painter(painter)
    S = p.stroke_size
    if p.reach is not None:
        actions, boxes = hold_whole(NAKANO, actions, boxes, p.reach)
    layers = stroke_layers(p, actions, blend)
    h, w = hw
    canvas = torch.full((1, 3, h, w), float(background), dtype=actions.dtype)
    ys = torch.arange(h, dtype=actions.dtype) + 0.5
    xs = torch.arange(w, dtype=actions.dtype) + 0.5
    for i in range(len(actions)):
        cx, cy, side = boxes[i]
        gx = ((xs - (cx - side / 2)) / side) * 2 - 1
        gy = ((ys - (cy - side / 2)) / side) * 2 - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
        placed = F.grid_sample(layers[i:i + 1], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        canvas = placed[:, :3] + canvas * (1 - placed[:, 3:])
    return canvas


def random_strokes(n, hw, lo, hi, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    a = torch.rand(n, 12, generator=g, dtype=dtype)
    b = torch.stack([torch.rand(n, generator=g, dtype=dtype) * (w + 20) - 10,
                     torch.rand(n, generator=g, dtype=dtype) * (h + 20) - 10,
                     lo + torch.rand(n, generator=g, dtype=dtype) * (hi - lo)], 1)
    return a, b


@pytest.mark.parametrize("blend", ["alpha", "linear"])
def test_matches_naive_reference(blend):
    prog = RasterProgram(16)
    a, b = random_strokes(25, (40, 56), 16, 40)
    out = render(prog, a, b, (40, 56), blend=blend)
    ref = reference(prog, a, b, (40, 56), blend=blend)
    assert out.shape == (1, 3, 40, 56)
    assert torch.allclose(out, ref, atol=2e-5), float((out - ref).abs().max())


@pytest.mark.parametrize("blend", ["alpha", "linear"])
def test_grouped_and_checkpointed_equal_single_pass(blend):
    prog = BlobPainter()
    a, b = random_strokes(40, (70, 90), 3, 70, seed=1)
    full = render(prog, a, b, (70, 90), blend=blend, group_strokes=10_000, group_pixels=10**12)
    for kwargs in [dict(group_strokes=7), dict(group_strokes=3), dict(group_pixels=3000),
                   dict(group_strokes=9, checkpoint=True)]:
        out = render(prog, a, b, (70, 90), blend=blend, **kwargs)
        assert torch.allclose(out, full, atol=1e-5), (kwargs, float((out - full).abs().max()))


def test_groups_are_bounded():
    side = torch.tensor([10.0] * 50 + [400.0] * 5 + [10.0] * 50)
    boxes = torch.stack([torch.zeros(105), torch.zeros(105), side], 1)
    groups = _plan_groups(boxes, (512, 512), max_strokes=32, max_pixels=200_000)
    assert groups[0] == (0, 32) and groups[-1][1] == 105
    assert all(e > s for s, e in groups)
    assert all(e - s <= 32 for s, e in groups)
    assert [e for _, e in groups] == sorted(e for _, e in groups)


def test_stroke_appears_in_its_box():
    painter = SquarePainter(alpha=1.0)
    a = torch.full((1, 12), 0.5)
    for cx, cy, side in [(20.0, 30.0, 16.0), (50.0, 12.0, 32.0), (33.0, 33.0, 8.0)]:
        out = render(painter, a, torch.tensor([[cx, cy, side]]), (64, 64))
        dark = (out[0] < 0.99).any(0)
        ys, xs = dark.nonzero(as_tuple=True)
        # the painted square is the middle half of the box
        assert abs((xs.float() + 0.5).mean() - cx) < 0.6 and abs((ys.float() + 0.5).mean() - cy) < 0.6
        assert xs.min() >= cx - side / 4 - 1 and xs.max() <= cx + side / 4 + 1
        assert ys.min() >= cy - side / 4 - 1 and ys.max() <= cy + side / 4 + 1
        # fully covered centre pixel has the painter's colour
        assert torch.allclose(out[0, :, int(cy), int(cx)], torch.tensor([0.2, 0.4, 0.6]), atol=1e-5)


def test_shrinking_preserves_coverage():
    """Downsampled strokes keep their ink (antialiased, no aliasing holes)."""
    painter = SquarePainter(alpha=1.0)
    a = torch.full((1, 12), 0.5)
    for side in [4.0, 6.0, 8.0, 11.0]:
        out = render(painter, a, torch.tensor([[32.3, 31.7, side]]), (64, 64), background=(1.0, 1.0, 1.0))
        ink = (1 - out[0, 0]).sum() / (1 - 0.2)
        assert abs(float(ink) - (side / 2) ** 2) < 0.05 * (side / 2) ** 2 + 0.2


def test_alpha_blend_closed_form():
    """Half-transparent square: colour * 0.5 + background * 0.5; two strokes: later on top."""
    painter = SquarePainter(alpha=0.5, colour=(1.0, 0.0, 0.0))
    a = torch.full((2, 12), 0.5)
    b = torch.tensor([[16.0, 16.0, 16.0], [16.0, 16.0, 16.0]])
    one = render(painter, a[:1], b[:1], (32, 32), background=(0.0, 0.0, 1.0))
    assert torch.allclose(one[0, :, 16, 16], torch.tensor([0.5, 0.0, 0.5]), atol=1e-6)
    two = render(painter, a, b, (32, 32), background=(0.0, 0.0, 1.0))
    assert torch.allclose(two[0, :, 16, 16], torch.tensor([0.75, 0.0, 0.25]), atol=1e-6)
    assert torch.allclose(two[0, :, 2, 2], torch.tensor([0.0, 0.0, 1.0]))


def test_linear_blend_uses_action_colour_and_normalised_mask():
    """Nakano's blend: the darkest pixel of the stroke becomes fully the action's colour."""
    painter = SquarePainter(alpha=0.5, colour=(0.0, 0.0, 0.0))
    a = torch.full((2, 12), 0.5)
    a[0, RGB] = torch.tensor([1.0, 0.0, 0.0])
    a[1, RGB] = torch.tensor([0.0, 1.0, 0.0])
    b = torch.tensor([[16.0, 16.0, 16.0], [20.0, 16.0, 16.0]])
    out = render(painter, a, b, (32, 32), blend="linear", background=(1.0, 1.0, 1.0))
    assert torch.allclose(out[0, :, 16, 14], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)   # only the first
    assert torch.allclose(out[0, :, 16, 18], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)   # second on top
    # the alpha blend of the same strokes is the painter's own (black, half transparent)
    out_a = render(painter, a, b, (32, 32), blend="alpha", background=(1.0, 1.0, 1.0))
    assert torch.allclose(out_a[0, :, 16, 14], torch.full((3,), 0.5), atol=1e-6)


def test_empty_and_offcanvas_strokes():
    prog = RasterProgram(16)
    bg = background_canvas((0.1, 0.2, 0.3), (20, 30))
    assert torch.equal(render(prog, torch.zeros(0, 12), torch.zeros(0, 3), (20, 30), (0.1, 0.2, 0.3)), bg)
    a = torch.rand(2, 12)
    far = torch.tensor([[-50.0, 10.0, 20.0], [10.0, 500.0, 20.0]])
    assert torch.equal(render(prog, a, far, (20, 30), (0.1, 0.2, 0.3)), bg)


@pytest.mark.parametrize("blend", ["alpha", "linear"])
def test_gradients_match_finite_differences(blend):
    prog = BlobPainter()
    a, b = random_strokes(4, (20, 24), 6, 26, seed=3, dtype=torch.float64)
    a = a.clamp(0.1, 0.9)
    weight = torch.rand(1, 3, 20, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(a, b):
        return (render(prog, a, b, (20, 24), blend=blend, group_strokes=2, checkpoint=True) * weight).sum()

    A, B = a.clone().requires_grad_(), b.clone().requires_grad_()
    f(A, B).backward()
    assert B.grad[:, 2].abs().sum() > 0 and B.grad[:, :2].abs().sum() > 0   # scale and position get gradients
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        da, db = torch.randn(a.shape, generator=g, dtype=a.dtype), torch.randn(b.shape, generator=g, dtype=b.dtype)
        eps = 1e-6
        fd = (f(a + eps * da, b + eps * db) - f(a - eps * da, b - eps * db)) / (2 * eps)
        an = (A.grad * da).sum() + (B.grad * db).sum()
        assert torch.allclose(fd, an, rtol=1e-4, atol=1e-6), (float(fd), float(an))


def test_background_image_gets_gradient_and_is_resized():
    prog = BlobPainter()
    a, b = random_strokes(5, (24, 24), 8, 16)
    img = torch.rand(1, 3, 48, 48)
    out = render(prog, a, b, (24, 24), img)
    assert out.shape == (1, 3, 24, 24)
    bg = torch.rand(1, 3, 24, 24, requires_grad=True)
    render(prog, a, b, (24, 24), bg).sum().backward()
    assert bg.grad is not None and (bg.grad > 0).all()


def test_render_canvas_strokeset_and_progress():
    gen = Generator(generator_config("tiny")).eval()
    a, b = random_strokes(12, (48, 64), 10, 30, seed=5)
    s = StrokeSet(a, b, (48, 64), background=(0.9, 0.8, 0.7), blend="alpha")
    full = render_canvas(gen, s)
    assert full.shape == (1, 3, 48, 64)
    frames = list(render_progress(gen, s, every=5))
    assert [k for k, _ in frames] == [0, 5, 10, 12]
    assert torch.allclose(frames[0][1], background_canvas((0.9, 0.8, 0.7), (48, 64)))
    assert torch.allclose(frames[-1][1], full, atol=1e-5)
    # differentiable through a StrokeSet built from tensors that require grad
    A = a.clone().requires_grad_()
    render_canvas(gen, StrokeSet(A, b, (48, 64))).mean().backward()
    assert A.grad is not None and A.grad.abs().sum() > 0


def test_bad_inputs():
    prog = RasterProgram(16)
    with pytest.raises(ValueError, match="blend"):
        render(prog, torch.rand(1, 12), torch.tensor([[5.0, 5.0, 5.0]]), (10, 10), blend="multiply")
    with pytest.raises(ValueError, match="boxes"):
        render(prog, torch.rand(2, 12), torch.tensor([[5.0, 5.0, 5.0]]), (10, 10))
    with pytest.raises(TypeError, match="not a painter"):
        render(object(), torch.rand(1, 12), torch.tensor([[5.0, 5.0, 5.0]]), (10, 10))
    with pytest.raises(ValueError, match="background"):
        background_canvas((1.0, 0.0), (4, 4))


def test_fast_painter_is_a_same_strokes_copy():
    # a channels-last copy on the CPU: the same strokes, the caller's generator left as it was
    gen = Generator(generator_config("tiny", prior="raster")).eval()
    fast = fast_painter(gen)
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, fst = gen(x), fast.fn(x)
    assert torch.allclose(ref[1], fst[1], atol=1e-6) and torch.allclose(ref[0], fst[0], atol=1e-6)
    conv = gen.stages[0].weight
    assert fast.fn is not gen and not conv.is_contiguous(memory_format=torch.channels_last)
    assert fast.fn.stages[0].weight.is_contiguous(memory_format=torch.channels_last)
    prog = RasterProgram(16)
    assert fast_painter(prog).fn == prog.render_torch
