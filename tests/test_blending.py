"""Blending: closed-form cases, agreement with a naive sequential loop, gradients, the empty-stroke guard."""
import pytest
import torch

from painter_models.painting.blending import EMPTY_STROKE, alpha_blend, darkness_mask, linear_blend, over


def naive_alpha_blend(canvas, colours, alphas):
    for k in range(alphas.shape[1]):
        canvas = colours[:, k] * alphas[:, k] + canvas * (1 - alphas[:, k])
    return canvas


def flat(value, b=1, k=1, c=3, h=4, w=5, dtype=torch.float64):
    return torch.full((b, k, c, h, w), float(value), dtype=dtype)


def test_one_opaque_stroke_replaces_the_canvas():
    g = torch.Generator().manual_seed(0)
    canvas = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    colours = torch.rand(2, 1, 3, 8, 8, generator=g, dtype=torch.float64)
    out = alpha_blend(canvas, colours, torch.ones(2, 1, 1, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(out, colours[:, 0], rtol=0, atol=0)
    # an opaque stroke hides everything painted before it
    under = torch.rand(2, 3, 3, 8, 8, generator=g, dtype=torch.float64)
    stack_c = torch.cat([under, colours], 1)
    stack_a = torch.cat([torch.rand(2, 3, 1, 8, 8, generator=g, dtype=torch.float64),
                         torch.ones(2, 1, 1, 8, 8, dtype=torch.float64)], 1)
    torch.testing.assert_close(alpha_blend(canvas, stack_c, stack_a), colours[:, 0], rtol=0, atol=1e-15)


def test_transparent_strokes_and_no_strokes_leave_the_canvas():
    canvas = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    out = alpha_blend(canvas, flat(0.2, k=3), flat(0.0, k=3, c=1))
    torch.testing.assert_close(out, canvas, rtol=0, atol=0)
    empty = alpha_blend(canvas, torch.zeros(1, 0, 3, 4, 5, dtype=torch.float64),
                        torch.zeros(1, 0, 1, 4, 5, dtype=torch.float64))
    assert torch.equal(empty, canvas)


@pytest.mark.parametrize("a1,a2", [(0.3, 0.6), (1.0, 0.25), (0.0, 1.0), (0.5, 0.0), (0.999, 0.001)])
def test_two_strokes_closed_form(a1, a2):
    bg = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    c1 = torch.tensor([0.1, 0.5, 0.2], dtype=torch.float64)
    c2 = torch.tensor([0.6, 0.0, 1.0], dtype=torch.float64)
    canvas = bg[None, :, None, None].expand(1, 3, 2, 2)
    colours = torch.stack([c1, c2])[None, :, :, None, None].expand(1, 2, 3, 2, 2)
    alphas = torch.tensor([a1, a2], dtype=torch.float64)[None, :, None, None, None].expand(1, 2, 1, 2, 2)
    expected = c2 * a2 + (1 - a2) * (c1 * a1 + (1 - a1) * bg)
    out = alpha_blend(canvas, colours, alphas)
    torch.testing.assert_close(out[0, :, 1, 1], expected, rtol=0, atol=1e-15)
    # linear blending with flat masks is the same closed form with the actions' colours
    lin = linear_blend(canvas, alphas, torch.stack([c1, c2])[None])
    torch.testing.assert_close(lin[0, :, 0, 0], expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", [1, 2, 7, 32])
def test_alpha_blend_matches_a_sequential_loop(k):
    g = torch.Generator().manual_seed(k)
    canvas = torch.rand(3, 3, 9, 11, generator=g, dtype=torch.float64)
    colours = torch.rand(3, k, 3, 9, 11, generator=g, dtype=torch.float64)
    alphas = torch.rand(3, k, 1, 9, 11, generator=g, dtype=torch.float64)
    alphas[alphas > 0.9] = 1.0   # include exact opacity and exact transparency
    alphas[alphas < 0.1] = 0.0
    torch.testing.assert_close(alpha_blend(canvas, colours, alphas), naive_alpha_blend(canvas, colours, alphas),
                               rtol=0, atol=1e-12)


def test_alpha_blend_float32_and_order_matters():
    g = torch.Generator().manual_seed(1)
    canvas = torch.rand(2, 3, 16, 16, generator=g)
    colours = torch.rand(2, 5, 3, 16, 16, generator=g)
    alphas = torch.rand(2, 5, 1, 16, 16, generator=g)
    out = alpha_blend(canvas, colours, alphas)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 16, 16)
    torch.testing.assert_close(out, naive_alpha_blend(canvas, colours, alphas), rtol=0, atol=1e-5)
    assert 0 <= out.min() and out.max() <= 1
    rev = alpha_blend(canvas, colours.flip(1), alphas.flip(1))
    assert (rev - out).abs().max() > 1e-2


def test_gradients_are_finite_and_match_the_loop():
    g = torch.Generator().manual_seed(2)
    canvas = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    colours = torch.rand(2, 4, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    raw = torch.rand(2, 4, 1, 6, 6, generator=g, dtype=torch.float64)
    raw[:, 1] = 1.0  # exactly opaque strokes: cumprod over zeros must still give finite gradients
    raw[:, 2, :, :3] = 0.0
    alphas = raw.clone().requires_grad_(True)
    weights = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    (alpha_blend(canvas, colours, alphas) * weights).sum().backward()
    grads = [t.grad.clone() for t in (canvas, colours, alphas)]
    for t in (canvas, colours, alphas):
        t.grad = None
    (naive_alpha_blend(canvas, colours, alphas) * weights).sum().backward()
    for got, t in zip(grads, (canvas, colours, alphas)):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, t.grad, rtol=0, atol=1e-12)


def test_gradcheck_alpha_blend():
    g = torch.Generator().manual_seed(3)
    inputs = (torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True),
              torch.rand(1, 3, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True),
              torch.rand(1, 3, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(alpha_blend, inputs)


def test_darkness_mask_is_normalised_per_stroke():
    strokes = torch.ones(3, 3, 8, 8, dtype=torch.float64)
    strokes[0, :, 2, 3] = 0.0            # a black dot: darkness 1
    strokes[0, :, 5, 5] = 0.5            # half as dark
    strokes[1, :, 1:4, 1:4] = 0.8        # a light stroke: peak darkness 0.2 -> normalised to 1
    strokes[1, :, 2, 2] = 0.9            # darkness 0.1 -> 0.5
    strokes[2, 0, 4, 4] = 0.4            # one channel: darkness mean(0.6, 0, 0) = 0.2
    mask = darkness_mask(strokes)
    assert mask.shape == (3, 1, 8, 8)
    assert mask[0, 0, 2, 3] == 1.0 and mask[0, 0, 5, 5] == pytest.approx(0.5) and mask[0].sum() == pytest.approx(1.5)
    assert mask[1].max() == pytest.approx(1.0) and mask[1, 0, 2, 2] == pytest.approx(0.5)
    assert mask[2, 0, 4, 4] == pytest.approx(1.0)
    assert mask.min() >= 0 and mask.max() <= 1
    # extra leading dimensions ([B, K, 3, H, W]) are supported
    assert darkness_mask(strokes[None].expand(2, -1, -1, -1, -1)).shape == (2, 3, 1, 8, 8)


def test_near_empty_stroke_is_not_blown_up_to_full_opacity():
    strokes = torch.ones(2, 3, 8, 8)
    strokes[0, :, 3, 3] = 1 - 1e-3      # almost white: a rendering speck, not a stroke
    strokes[1] = 1.0                     # perfectly empty
    mask = darkness_mask(strokes)
    assert mask[0].max() == pytest.approx(1e-3 / EMPTY_STROKE, rel=1e-3)   # 0.1, not 1
    assert mask[0].max() < 0.2
    assert torch.equal(mask[1], torch.zeros_like(mask[1]))
    assert torch.isfinite(mask).all()
    # painting it barely changes the canvas
    canvas = torch.full((1, 3, 8, 8), 0.5)
    out = linear_blend(canvas, mask[None, :1], torch.tensor([[[0.0, 0.0, 0.0]]]))
    assert (canvas - out).abs().max() < 0.06
    # gradients through the guard stay finite
    s = strokes.clone().requires_grad_(True)
    darkness_mask(s).sum().backward()
    assert torch.isfinite(s.grad).all()


def test_linear_blend_uses_the_mask_and_the_action_colour():
    canvas = torch.ones(1, 3, 4, 4)
    masks = torch.zeros(1, 2, 1, 4, 4)
    masks[0, 0, 0, 0, :] = 1.0    # first stroke: top row, red
    masks[0, 1, 0, :, 0] = 0.5    # second stroke: left column, half blue
    colours = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    out = linear_blend(canvas, masks, colours)[0]
    torch.testing.assert_close(out[:, 0, 3], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(out[:, 3, 0], torch.tensor([0.5, 0.5, 1.0]))
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(out[:, 2, 2], torch.ones(3))


def test_over_premultiplied_is_alpha_blend_of_straight_colours():
    g = torch.Generator().manual_seed(4)
    canvas = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64)
    colours = torch.rand(2, 3, 3, 5, 5, generator=g, dtype=torch.float64)
    alphas = torch.rand(2, 3, 1, 5, 5, generator=g, dtype=torch.float64)
    alphas[:, 0, :, 0] = 0.0  # fully transparent pixels: premultiplied 0 / alpha 0
    premul = colours * alphas
    torch.testing.assert_close(over(canvas, premul, alphas), alpha_blend(canvas, colours, alphas),
                               rtol=0, atol=1e-9)
    # what MyPaint gives: a uint8-quantised premultiplied stroke over white
    q = (torch.cat([premul[:, 0], alphas[:, 0]], 1) * 255).round() / 255
    out = over(torch.ones(2, 3, 5, 5, dtype=torch.float64), q[:, None, :3], q[:, None, 3:])
    torch.testing.assert_close(out, (q[:, :3] + 1 - q[:, 3:]).clamp(0, 1), rtol=0, atol=1e-6)
