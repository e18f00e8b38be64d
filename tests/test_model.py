"""Generator and critic: sizes of the named configs, shapes, ranges, the colour head, noise, validation."""
import pytest
import torch

from painter_models import NAKANO
from painter_models.brush.actions import bezier_points
from painter_models.painter.model import (CAPSULE_SEGMENTS, CRITIC_CONFIGS, GENERATOR_CONFIGS, PRIOR_FLOOR, Critic,
                                  CriticConfig, Generator, capsule_alpha,
                                  GeneratorConfig, config_to_dict, count_parameters, critic_config,
                                  forward_macs, generator_config)


@pytest.mark.parametrize("name,low,high", [
    ("nakano", 0.70e6, 0.85e6),      # Nakano's GAN painter: 0.81 M with its 16 noise inputs
    ("large", 2.5e6, 3.5e6),
    ("nakano128", 0.70e6, 0.85e6),
    ("tiny", 1e4, 5e4),
])
def test_generator_parameter_counts(name, low, high):
    n = count_parameters(Generator(generator_config(name)))
    assert low <= n <= high, f"{name}: {n} parameters"


def test_noise_adds_only_the_grain_head_to_the_parameters():
    plain = count_parameters(Generator(generator_config("nakano")))
    grainy = count_parameters(Generator(generator_config("nakano", noise_dim=32)))
    assert grainy - plain == 32 * 3 * 16 + 3 + 3     # grain head (weights, bias) and a gain per grain size


@pytest.mark.parametrize("name,low,high", [("nakano", 0.15e6, 0.2e6), ("large", 0.6e6, 0.8e6), ("tiny", 1e4, 2e4)])
def test_critic_parameter_counts(name, low, high):
    n = count_parameters(Critic(critic_config(name)))
    assert low <= n <= high, f"{name}: {n} parameters"


def test_forward_macs():
    c = generator_config("nakano")
    expected = 12 * 16 * 256 + 256 * 128 * 16 * 16 + 128 * 64 * 16 * 64 + 64 * 32 * 16 * 256 + 32 * 1 * 16 * 1024
    assert forward_macs(c) == expected   # the head predicts alpha only ...
    assert forward_macs(generator_config("nakano", colour="residual")) == expected + 32 * 3 * 16 * 1024  # ... + colour
    assert forward_macs(generator_config("large")) > 3.5 * forward_macs(c)   # twice the width: ~4x the cost
    grain_fields = 16 * (12 + 3 * 64 * 64)          # action -> noise, noise -> the three grain fields
    grain_gates = 32 * 3 * 16 * 1024 + 9 * 3 * 64 * 64   # the grain head and its blur
    assert forward_macs(generator_config("nakano", noise_dim=16)) == expected + grain_fields + grain_gates


@pytest.mark.parametrize("name", sorted(GENERATOR_CONFIGS))
def test_generator_shapes_and_ranges(name):
    torch.manual_seed(0)
    cfg = generator_config(name)
    g = Generator(cfg).eval()
    a = torch.from_numpy(NAKANO.sample(3, seed=0))
    with torch.no_grad():
        colour, alpha = g(a)
        rendered = g.render(a)
    s = cfg.stroke_size
    assert colour.shape == (3, 3, s, s) and alpha.shape == (3, 1, s, s) and rendered.shape == (3, 3, s, s)
    for t in (colour, alpha, rendered):
        assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
    torch.testing.assert_close(rendered, colour * alpha + (1 - alpha))


def test_generator_trains_in_batch_mode_and_gradients_reach_the_actions():
    torch.manual_seed(0)
    g = Generator(generator_config("tiny")).train()
    a = torch.from_numpy(NAKANO.sample(4, seed=1)).requires_grad_(True)
    colour, alpha = g(a)
    (alpha.mean() + colour.mean()).backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


def test_colour_is_the_action_colour_exactly():
    torch.manual_seed(1)
    g = Generator(generator_config("tiny")).eval()
    assert g.head.out_channels == 1          # alpha only: there is no colour to get wrong
    a = torch.from_numpy(NAKANO.sample(5, seed=2)).requires_grad_(True)
    with torch.no_grad():
        a[0, 6:9] = torch.tensor([0.0, 1.0, 0.5])   # extreme colours stay exact
    colour, alpha = g(a)
    torch.testing.assert_close(colour, a[:, 6:9, None, None].expand_as(colour), rtol=0, atol=0)
    assert alpha.std() > 0      # the alpha head is not zero-initialised: strokes differ from the start
    colour[:, 0].sum().backward()             # d colour / d red = 1 at every pixel
    assert torch.equal(a.grad[:, 6], torch.full((5,), 64.0 * 64.0)) and (a.grad[:, 7:9] == 0).all()


def test_residual_colour_head_starts_at_the_action_colour():
    torch.manual_seed(1)
    g = Generator(generator_config("tiny", colour="residual")).eval()
    assert g.head.out_channels == 4
    a = torch.from_numpy(NAKANO.sample(5, seed=2))
    a[0, 6:9] = torch.tensor([0.0, 1.0, 0.5])   # extreme colours are clamped to [1e-3, 1 - 1e-3]
    with torch.no_grad():
        colour, alpha = g(a)
    want = a[:, 6:9].clamp(1e-3, 1 - 1e-3)[:, :, None, None].expand_as(colour)
    torch.testing.assert_close(colour, want, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown colour 'learned'.*action"):
        generator_config("tiny", colour="learned")


def test_colour_indices_follow_the_config():
    torch.manual_seed(1)
    g = Generator(generator_config("tiny", colour_indices=(0, 1, 2))).eval()
    a = torch.from_numpy(NAKANO.sample(2, seed=3))
    with torch.no_grad():
        colour, _ = g(a)
    torch.testing.assert_close(colour[:, :, 7, 9], a[:, :3], rtol=0, atol=0)


def _with_live_noise(g):
    """A stochastic generator whose noise paints (a fresh one's grain starts silent)."""
    with torch.no_grad():
        g.grain_head.weight.normal_(0, 0.3)
        g.grain_gain.fill_(1.0)
    return g


def test_noise_starts_silent_then_paints():
    torch.manual_seed(2)
    cfg = generator_config("tiny", noise_dim=16)
    g = Generator(cfg).eval()
    a = torch.from_numpy(NAKANO.sample(4, seed=4))
    other = torch.rand(4, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():   # a new stochastic painter draws what a deterministic one with its weights draws
        torch.testing.assert_close(g(a)[1], g(a, other)[1], rtol=0, atol=0)
    _with_live_noise(g)
    with torch.no_grad():
        assert (g(a)[1] - g(a, other)[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"noise must be \[N, 16\] for 4 strokes, got \[4, 3\]"):
        g(a, torch.zeros(4, 3))


def test_split_trains_the_mean_and_the_grain_apart():
    """split=True: the mean stroke's alpha carries gradients to the network and not to the grain; the
    grainy alpha carries them to the grain only; forward's alpha is the grainy one."""
    torch.manual_seed(4)
    g = _with_live_noise(Generator(generator_config("tiny", noise_dim=8))).train()
    a = torch.from_numpy(NAKANO.sample(4, seed=10))
    noise = g.sample_noise(4, torch.Generator().manual_seed(3), "cpu")
    grain_params = {"grain_gain", "grain_head.weight", "grain_head.bias"}
    for which in (1, 2):
        g.zero_grad(set_to_none=True)
        g(a, noise, split=True)[which].sum().backward()
        moved = {n for n, p in g.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert (moved <= grain_params) == (which == 2) and bool(moved & grain_params) == (which == 2), moved
    g.eval()
    with torch.no_grad():
        _, mean, grainy = g(a, noise, split=True)
        torch.testing.assert_close(g(a, noise)[1], grainy)
    assert (grainy - mean).abs().max() > 1e-3
    with pytest.raises(ValueError, match="split=True is for a painter with noise inputs"):
        Generator(generator_config("tiny"))(a, split=True)


def test_stochastic_painter_is_deterministic_given_its_strokes():
    """Without noise from the caller, each stroke's noise comes from its own action numbers: the same
    stroke gets the same grain alone or in any batch, on every call; other strokes get other grain."""
    torch.manual_seed(3)
    g = _with_live_noise(Generator(generator_config("tiny", noise_dim=16))).eval()
    a = torch.from_numpy(NAKANO.sample(6, seed=8))
    with torch.no_grad():
        batch = g(a)[1]
        torch.testing.assert_close(g(a)[1], batch, rtol=0, atol=0)
        torch.testing.assert_close(g(a[3:4])[1], batch[3:4], rtol=0, atol=1e-5)   # batch size: float rounding only
        torch.testing.assert_close(g(a.flip(0))[1], batch.flip(0), rtol=0, atol=1e-5)
        noise = g.derived_noise(a)
    assert noise.shape == (6, 16) and not noise.requires_grad
    assert noise.std(0).min() > 0.3                         # strokes differ in their noise
    # the derived noise follows the training noise's distribution: sqrt(2) sin(2 pi u), u uniform
    many = g.derived_noise(torch.from_numpy(NAKANO.sample(4000, seed=9)))
    drawn = g.sample_noise(4000, torch.Generator().manual_seed(0), "cpu")
    for x in (many, drawn):
        assert abs(float(x.mean())) < 0.05 and abs(float(x.var()) - 1) < 0.05 and float(x.abs().max()) <= 2 ** 0.5 + 1e-6
    # gradients reach the actions (painting optimises them), none through the noise
    a = a.clone().requires_grad_(True)
    g(a)[1].sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_noise_projections_are_saved_with_the_weights():
    g = Generator(generator_config("tiny", noise_dim=8))
    assert {"noise_phase", "noise_offset", "grain_fields"} <= set(g.state_dict())
    assert g.state_dict()["grain_fields"].shape == (3, 8, 64 * 64) and g.grain_head.out_channels == 3
    trained = [n for n, _ in g.named_parameters() if n.startswith(("noise", "grain"))]
    assert trained == ["grain_gain", "grain_head.weight", "grain_head.bias"]   # the projections are fixed
    assert "noise_phase" not in Generator(generator_config("tiny")).state_dict()


def test_grain_fields_have_unit_variance_and_their_grain_size():
    from painter_models.painter.model import GRAIN_SIGMAS, grain_fields
    fields = grain_fields(64, 64, torch.Generator().manual_seed(0)).view(len(GRAIN_SIGMAS), 64, 64, 64)
    z = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    corr = []
    for f in fields:
        grain = torch.einsum("nk,kxy->nxy", z, f)
        assert abs(float(grain.var()) - 1) < 0.1            # unit-variance noise -> unit-variance grain
        corr.append(float((grain[:, :, 1:] * grain[:, :, :-1]).mean() / grain.var()))
    assert abs(corr[0]) < 0.05 and 0.5 < corr[1] < corr[2] < 1   # pixel noise, then larger grains


def test_generator_without_noise_ignores_a_noise_argument():
    torch.manual_seed(3)
    g = Generator(generator_config("tiny")).eval()
    a = torch.from_numpy(NAKANO.sample(2, seed=5))
    with torch.no_grad():
        torch.testing.assert_close(g(a)[1], g(a, torch.rand(2, 16))[1], rtol=0, atol=0)


def test_config_validation():
    with pytest.raises(ValueError, match="3 upsampling stages give 32 px strokes, not stroke_size=64"):
        GeneratorConfig(channels=(64, 32, 16))
    with pytest.raises(ValueError, match="unknown generator config 'huge'.*nakano"):
        generator_config("huge")
    with pytest.raises(ValueError, match="unknown critic config 'huge'"):
        critic_config("huge")
    with pytest.raises(ValueError, match=r"no fields \['depth'\]"):
        GeneratorConfig.from_dict({**config_to_dict(generator_config("nakano")), "depth": 3})
    assert generator_config("nakano", stroke_size=128, channels=(8, 8, 8, 8, 8)).stroke_size == 128


def test_config_dict_round_trip_is_json_friendly():
    import json
    for name in GENERATOR_CONFIGS:
        cfg = generator_config(name)
        d = json.loads(json.dumps(config_to_dict(cfg)))
        assert GeneratorConfig.from_dict(d) == cfg
    for name in CRITIC_CONFIGS:
        cfg = critic_config(name)
        assert CriticConfig.from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg


def test_conditional_critic():
    torch.manual_seed(4)
    c = Critic(critic_config("tiny")).eval()
    strokes = torch.rand(3, 4, 64, 64)
    a = torch.from_numpy(NAKANO.sample(3, seed=6))
    out = c(strokes, a)
    assert out.shape == (3,) and torch.isfinite(out).all()
    other = c(strokes, torch.from_numpy(NAKANO.sample(3, seed=7)))
    assert (out - other).abs().max() > 1e-6          # the action changes the verdict
    with pytest.raises(ValueError, match="conditioned on the action: pass actions"):
        c(strokes)


def test_unconditional_critic():
    torch.manual_seed(5)
    c = Critic(critic_config("tiny", conditional=False)).eval()
    assert c.condition is None
    strokes = torch.rand(2, 4, 64, 64, requires_grad=True)
    out = c(strokes)
    assert out.shape == (2,)
    # per-sample gradients (no batch norm), as WGAN-GP needs
    grad, = torch.autograd.grad(out[0], strokes)
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0


def test_critic_other_sizes_and_channels():
    c = Critic(CriticConfig(stroke_size=128, in_channels=3, channels=(8, 16, 16, 16, 16))).eval()
    assert c(torch.rand(2, 3, 128, 128), torch.rand(2, 12)).shape == (2,)


def test_grain_gates_cannot_paint_a_checkerboard():
    """A stride-2 transposed convolution leaves a 2-pixel checkerboard; the gates' blur removes it, so
    grain never comes out as a regular mesh."""
    from painter_models.painter.model import smooth_gates
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    gates = torch.stack([checker.float(), 1 - checker.float(), torch.full((8, 8), 0.7)])[None]
    smoothed = smooth_gates(gates)
    torch.testing.assert_close(smoothed[0, :2, 1:-1, 1:-1], torch.full((2, 6, 6), 0.5))
    torch.testing.assert_close(smoothed[0, 2], torch.full((8, 8), 0.7))      # flat gates stay as they are


def _capsule_brute_force(actions, size, segments=CAPSULE_SEGMENTS):
    """Every segment's cover on every pixel, the max kept in segment order: what capsule_alpha's
    culled winner search must agree with wherever alpha reaches the floor."""
    x, y, pressure = bezier_points(NAKANO, actions, segments)
    sx, sy = (actions[:, [i]] for i in NAKANO.indices("start_x", "start_y"))
    p_in = NAKANO.to_physical(actions, "entry_pressure")[:, None]
    x, y, pressure = torch.cat([sx, x], 1) * size, torch.cat([sy, y], 1) * size, torch.cat([p_in, pressure], 1)
    radius = torch.exp(NAKANO.to_physical(actions, "size"))[:, None] * (size / 64.0) * (0.35 + pressure)
    opacity = (0.25 + pressure / 0.8 * 0.75).clamp(0, 1)
    grid = torch.arange(size, dtype=actions.dtype) + 0.5
    best = torch.zeros(len(actions), size, size, dtype=actions.dtype)
    for k in range(segments):
        x0, y0, x1, y1 = (v[:, k:k + 1, None] for v in (x[:, :-1], y[:, :-1], x[:, 1:], y[:, 1:]))
        px, py = grid[None, None, :] - x0, grid[None, :, None] - y0
        t = ((px * (x1 - x0) + py * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2 + 1e-8)).clamp(0, 1)
        dist = torch.sqrt((px - t * (x1 - x0)) ** 2 + (py - t * (y1 - y0)) ** 2 + 1e-8)
        r = radius[:, k:k + 1, None] + t * (radius[:, k + 1:k + 2, None] - radius[:, k:k + 1, None])
        o = opacity[:, k:k + 1, None] + t * (opacity[:, k + 1:k + 2, None] - opacity[:, k:k + 1, None])
        best = torch.maximum(best, torch.sigmoid((r - dist) / (size / 64.0)) * o)
    return best[:, None]


@pytest.mark.parametrize("size", [16, 64])
def test_capsule_winner_search_skips_only_what_the_floor_hides(size):
    # thin and thick strokes, short and long, some reaching past the square, more than one chunk: the culled
    # search is the brute force wherever the generator reads it (alpha clamped to the floor), and so is its gradient
    gen = torch.Generator().manual_seed(5)
    actions = torch.rand(80, 12, generator=gen, dtype=torch.float64)   # two chunks of the search
    actions[:10, NAKANO.index("size")] = 1.0
    actions[10:20, NAKANO.index("size")] = 0.0
    floor = lambda a: a.clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR)
    with torch.no_grad():
        reference, culled = _capsule_brute_force(actions, size), capsule_alpha(NAKANO, actions, size)
    assert float(reference.max()) > 0.9 and float((reference < PRIOR_FLOOR).float().mean()) > 0.2
    assert torch.allclose(floor(culled), floor(reference), atol=1e-6)
    weights = torch.rand(reference.shape, generator=gen, dtype=torch.float64)
    grads = []
    for fn in (_capsule_brute_force, lambda a, s: capsule_alpha(NAKANO, a, s)):
        a = actions.clone().requires_grad_(True)
        (floor(fn(a, size)) * weights).sum().backward()
        grads.append(a.grad)
    # the search ranks covers in float32: near-ties may pick a neighbouring segment of equal cover
    assert float((grads[0] - grads[1]).abs().max()) <= 1e-5 * float(grads[0].abs().max())


def test_folded_generator_paints_the_same_strokes():
    gen = Generator(generator_config("tiny", prior="capsule", noise_dim=4))
    for bn in [gen.fc_norm] + [m for m in gen.stages if isinstance(m, torch.nn.BatchNorm2d)]:
        bn.running_mean.uniform_(-1, 1)            # statistics far from a new layer's 0 and 1
        bn.running_var.uniform_(0.2, 3)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-0.5, 0.5)
    gen.eval()
    folded = gen.folded()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    actions = torch.rand(6, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        (c0, a0), (c1, a1) = gen(actions), folded(actions)
    assert torch.allclose(a0, a1, atol=1e-5) and torch.equal(c0, c1)
    assert gen.fc_norm.running_var.min() >= 0.2    # the original is left as it was
    with pytest.raises(ValueError, match="eval"):
        gen.train().folded()
