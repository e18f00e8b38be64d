"""The action layout: field definitions, validation messages, sampling, Bezier geometry, serialisation."""
import math

import numpy as np
import pytest
import torch

from painter_models.brush.actions import LAYOUTS, NAKANO, ROLES, ActionLayout, Field, bezier_points, get_layout


def test_nakano_layout_matches_the_published_order():
    assert NAKANO.dim == 12
    assert NAKANO.names == ["pressure", "size", "control_x", "control_y", "end_x", "end_y",
                            "r", "g", "b", "start_x", "start_y", "entry_pressure"]
    assert NAKANO.indices("red", "green", "blue") == [6, 7, 8]
    assert NAKANO.indices("start_x", "start_y", "end_x", "end_y") == [9, 10, 4, 5]
    # physical ranges: pressures x0.8, size x2 (MyPaint log radius)
    a = np.ones((1, 12), np.float32)
    assert NAKANO.to_physical(a, "exit_pressure")[0] == pytest.approx(0.8)
    assert NAKANO.to_physical(a, "entry_pressure")[0] == pytest.approx(0.8)
    assert NAKANO.to_physical(a, "size")[0] == pytest.approx(2.0)
    assert NAKANO.to_physical(0.5 * a, "size")[0] == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(12,), (3, 11), (3, 13), (2, 3, 12), (0,)])
def test_validate_wrong_shape_names_layout_and_fields(shape):
    with pytest.raises(ValueError) as e:
        NAKANO.validate(np.zeros(shape, np.float32))
    msg = str(e.value)
    assert "[N, 12]" in msg and "nakano12" in msg and "entry_pressure" in msg
    assert str(list(shape)) in msg


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("array_type", ["numpy", "torch"])
def test_validate_non_finite_names_field_and_row(bad, array_type):
    a = NAKANO.sample(4, seed=0)
    a[2, NAKANO.index("control_y")] = bad
    if array_type == "torch":
        a = torch.from_numpy(a)
    with pytest.raises(ValueError, match=r"\[2\] field 'control_y'.*finite"):
        NAKANO.validate(a)


@pytest.mark.parametrize("role,value", [("size", 1.5), ("blue", -0.01), ("exit_pressure", 1.0001)])
def test_validate_out_of_range_names_field_and_physical_range(role, value):
    a = NAKANO.sample(5, seed=1)
    a[3, NAKANO.index(role)] = value
    name = NAKANO.fields[NAKANO.index(role)].name
    with pytest.raises(ValueError) as e:
        NAKANO.validate(a, what="my strokes")
    msg = str(e.value)
    assert f"my strokes[3] field {name!r}" in msg
    assert "outside [0, 1]" in msg
    if role == "size":
        assert "0..2" in msg  # the physical range the normalised value maps to


def test_validate_accepts_valid_and_boundary_values_and_returns_input():
    a = NAKANO.sample(7, seed=2)
    assert NAKANO.validate(a) is a
    edges = np.stack([np.zeros(12, np.float32), np.ones(12, np.float32)])
    assert NAKANO.validate(edges) is edges
    t = torch.from_numpy(a).requires_grad_(True)
    assert NAKANO.validate(t) is t
    empty = np.zeros((0, 12), np.float32)
    assert NAKANO.validate(empty) is empty


def test_sample_is_reproducible_uniform_and_float32():
    a, b = NAKANO.sample(1000, seed=42), NAKANO.sample(1000, seed=42)
    assert a.dtype == np.float32 and a.shape == (1000, 12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, NAKANO.sample(1000, seed=43))
    assert a.min() >= 0 and a.max() <= 1
    assert abs(a.mean() - 0.5) < 0.02 and abs(a.std() - math.sqrt(1 / 12)) < 0.02
    NAKANO.validate(a)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(NAKANO.sample(5, generator=g1), NAKANO.sample(5, generator=g2))


def test_bezier_passes_through_start_control_end():
    a = NAKANO.sample(50, seed=3).astype(np.float64)
    x, y, p = bezier_points(NAKANO, a, 100)
    assert x.shape == y.shape == p.shape == (50, 100)
    cx, cy = a[:, NAKANO.index("control_x")], a[:, NAKANO.index("control_y")]
    np.testing.assert_allclose(x[:, 49], cx, atol=1e-12)  # t = 50/100 = 0.5
    np.testing.assert_allclose(y[:, 49], cy, atol=1e-12)
    np.testing.assert_allclose(x[:, -1], a[:, NAKANO.index("end_x")], atol=1e-12)
    np.testing.assert_allclose(y[:, -1], a[:, NAKANO.index("end_y")], atol=1e-12)
    # t = 1/100 is one step from the start
    sx, sy = a[:, NAKANO.index("start_x")], a[:, NAKANO.index("start_y")]
    assert np.abs(x[:, 0] - sx).max() < 0.05 and np.abs(y[:, 0] - sy).max() < 0.05


def test_bezier_pressure_profile():
    a = np.full((1, 12), 0.5)
    a[0, NAKANO.index("entry_pressure")] = 0.25   # 0.2 physical
    a[0, NAKANO.index("exit_pressure")] = 0.75    # 0.6 physical
    _, _, p = bezier_points(NAKANO, a, 100)
    p = p[0]
    assert p[0] == pytest.approx(0.2 + (0.4 - 0.2) * 0.01 / 0.25)
    np.testing.assert_allclose(p[25:75], 0.4)      # flat middle at the mean pressure
    assert p[-1] == pytest.approx(0.6)
    assert np.all(np.diff(p) >= -1e-12)            # monotone here since entry < exit


def test_bezier_numpy_and_torch_agree_and_torch_is_differentiable():
    a = NAKANO.sample(8, seed=4).astype(np.float64)
    t = torch.tensor(a, requires_grad=True)
    xn, yn, pn = bezier_points(NAKANO, a, 30)
    xt, yt, pt = bezier_points(NAKANO, t, 30)
    np.testing.assert_allclose(xt.detach().numpy(), xn, atol=1e-12)
    np.testing.assert_allclose(yt.detach().numpy(), yn, atol=1e-12)
    np.testing.assert_allclose(pt.detach().numpy(), pn, atol=1e-12)
    (xt.sum() + yt.sum() + pt.sum()).backward()
    assert torch.isfinite(t.grad).all()
    assert (t.grad[:, NAKANO.index("control_x")] != 0).all()


def test_layout_round_trip_and_lookup():
    d = NAKANO.to_dict()
    assert ActionLayout.from_dict(d) == NAKANO
    assert get_layout(d) == NAKANO
    assert get_layout("nakano12") is NAKANO
    assert get_layout(NAKANO) is NAKANO
    import json
    assert ActionLayout.from_dict(json.loads(json.dumps(d))) == NAKANO
    with pytest.raises(ValueError, match="unknown action layout 'nope'.*nakano12"):
        get_layout("nope")
    assert LAYOUTS["nakano12"] is NAKANO


def test_another_layout_can_be_defined_and_used():
    # a different order and ranges, with the same roles: everything reads fields by role
    fields = tuple(Field(f"f_{r}", r, 0.0, 3.0 if r == "size" else 1.0) for r in reversed(ROLES))
    other = ActionLayout("reversed12", fields)
    assert other.dim == 12 and other.index("start_x") == 11 and other.index("blue") == 0
    assert ActionLayout.from_dict(other.to_dict()) == other
    # the same stroke expressed in each layout gives the same geometry
    a = NAKANO.sample(6, seed=5).astype(np.float64)
    b = np.empty_like(a)
    for r in ROLES:
        b[:, other.index(r)] = a[:, NAKANO.index(r)]
    for u, v in zip(bezier_points(NAKANO, a, 20)[:2], bezier_points(other, b, 20)[:2]):
        np.testing.assert_allclose(u, v)
    with pytest.raises(ValueError, match="'f_size'"):
        bad = b.copy()
        bad[0, other.index("size")] = 2
        other.validate(bad)
    # a smaller layout has its own dimension
    small = ActionLayout("small", tuple(Field(r, r) for r in ROLES[:6]))
    assert small.dim == 6
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        small.validate(np.zeros((1, 12)))


def test_invalid_layouts_are_refused():
    with pytest.raises(ValueError, match="roles must be unique"):
        ActionLayout("dup", (Field("a", "size"), Field("b", "size")))
    with pytest.raises(ValueError, match="roles must be unique and among"):
        ActionLayout("bad", (Field("a", "opacity"),))
    with pytest.raises(KeyError, match="no field with role 'size'"):
        ActionLayout("small", (Field("a", "red"),)).index("size")
