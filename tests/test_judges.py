"""The independent judges of guided paintings (training/judges.py) judge known images correctly."""
from __future__ import annotations

import math

import numpy as np
import pytest

from neural_painters_training.judges import ImageNetJudge, ShapeJudge, angular_moments, colour_names, ideal_shape, JUDGE_COLOURS


def canvas_with(shape: str, rgb, size=96, angle=0.3, shift=(0, 0), background=(1.0, 1.0, 1.0)):
    mask = ideal_shape(shape, size, angle)
    mask = np.roll(mask, shift, axis=(0, 1))
    a = mask[..., None]
    return np.asarray(background, np.float32) * (1 - a) + np.asarray(rgb, np.float32) * a


@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
@pytest.mark.parametrize("angle", [0.0, 0.4, 1.1])
def test_shape_judge_names_ideal_shapes_at_any_rotation(shape, angle):
    v = ShapeJudge()(canvas_with(shape, (0.1, 0.2, 0.9), angle=angle), "blue", shape)
    assert v.accepted, v.summary()
    assert v.shape == shape


@pytest.mark.parametrize("shape,other", [("circle", "square"), ("square", "triangle"), ("triangle", "circle")])
def test_shape_judge_rejects_the_wrong_shape(shape, other):
    v = ShapeJudge()(canvas_with(shape, (0.9, 0.1, 0.1)), "red", other)
    assert not v.accepted and any("looks like" in f for f in v.failures)


def test_shape_judge_checks_colour_position_and_streaks():
    judge = ShapeJudge()
    red_right = canvas_with("circle", (0.9, 0.1, 0.1), shift=(0, 30))
    assert judge(red_right, "red", "circle", "right").accepted
    assert not judge(red_right, "red", "circle", "left").accepted
    assert not judge(red_right, "green", "circle").accepted  # no green paint at all
    assert not judge(np.ones((64, 64, 3), np.float32), "red").accepted  # nothing painted
    streak = np.ones((96, 96, 3), np.float32)
    streak[44:52, 5:90] = (0.9, 0.1, 0.1)
    v = judge(streak, "red", "circle")
    assert v.shape is None and not v.accepted and v.moments[0] > 0.3


def test_shape_judge_does_not_take_touching_strokes_for_a_shape():
    """A zigzag of three strokes has a compact blob with small moments (it used to pass as a square or
    triangle); it is not filled, and the judge says so. The same area filled is a square."""
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(im).line([(20, 25), (76, 30), (22, 70), (76, 74)], fill=(20, 40, 220), width=7)
    zigzag = np.asarray(im, np.float32) / 255
    v = ShapeJudge()(zigzag, "blue", "square")
    assert v.moments[0] <= 0.3 and v.solidity < 0.8, v.summary()
    assert not v.accepted and v.shape is None and any("loose strokes" in f for f in v.failures), v.summary()
    filled = zigzag.copy()
    filled[25:75, 20:77] = (20 / 255, 40 / 255, 220 / 255)
    assert ShapeJudge()(filled, "blue", "square").accepted


def test_brush_texture_does_not_change_the_shape():
    """Paint with holes (a dry brush) is smoothed before the moments are taken."""
    rng = np.random.default_rng(0)
    canvas = canvas_with("square", (0.1, 0.6, 0.2), angle=0.2)
    holes = rng.uniform(size=canvas.shape[:2]) < 0.35
    canvas[holes] = 1.0
    v = ShapeJudge()(canvas, "green", "square")
    assert v.accepted, v.summary()


def test_colour_names_by_hue():
    import colorsys
    expect = {"red": 0.0, "orange": 0.07, "yellow": 0.15, "green": 0.33, "blue": 0.62, "purple": 0.8}
    for name, hue in expect.items():
        rgb = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.8), np.float32)[None, None]
        assert JUDGE_COLOURS[int(colour_names(rgb)[0, 0])] == name
    assert JUDGE_COLOURS[int(colour_names(np.full((1, 1, 3), 0.05, np.float32))[0, 0])] == "black"
    assert JUDGE_COLOURS[int(colour_names(np.full((1, 1, 3), 0.6, np.float32))[0, 0])] == "grey"


def test_angular_moments_are_invariant_to_rotation_and_scale():
    a = angular_moments(ideal_shape("triangle", 64, 0.1))
    b = angular_moments(ideal_shape("triangle", 128, 0.1 + 2 * math.pi / 7))
    assert np.allclose(a, b, atol=0.03)
    assert a[1] > 0.4 and a[2] < 0.05


@pytest.fixture(scope="module")
def imagenet_judge():
    return ImageNetJudge()


def test_imagenet_judge_recognises_photographs(imagenet_judge):
    """EfficientNet-Lite1's real weights: the coffee photo is espresso, the cat photo a cat class."""
    import skimage.data
    from painter_models.objectives.imagenet_loss import imagenet_class
    coffee = [i for i, _ in imagenet_judge.top_k(skimage.data.coffee())]
    assert imagenet_class("espresso") in coffee
    cat = [i for i, _ in imagenet_judge.top_k(skimage.data.chelsea())]
    assert {imagenet_class("tabby"), imagenet_class("Egyptian cat")} & set(cat)
    blank = imagenet_judge.probabilities(np.ones((64, 64, 3), np.float32))
    assert float(blank[imagenet_class("espresso")]) < 0.05
