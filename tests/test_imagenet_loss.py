"""ImageNet Class Loss: names resolve (or fail with the close matches), the loss guides, node and CLI."""
from __future__ import annotations

import pytest
import torch

from painter_models.objectives.imagenet_loss import ImageNetClassLoss, UnknownImageNetClass, imagenet_class


@pytest.mark.parametrize("name,index", [("goldfish", 1), ("Carassius auratus", 1), ("  Lemon ", 951),
                                        ("volcano", 980), ("951", 951), (980, 980)])
def test_class_names_resolve(name, index):
    assert imagenet_class(name) == index


def test_unknown_and_ambiguous_names_say_what_to_use():
    with pytest.raises(UnknownImageNetClass, match=r"close matches: 1: goldfish"):
        imagenet_class("goldfsh")
    with pytest.raises(UnknownImageNetClass, match=r"134: crane; 517: crane\. Give the class index"):
        imagenet_class("crane")
    with pytest.raises(UnknownImageNetClass, match="out of range"):
        imagenet_class(1000)
    with pytest.raises(UnknownImageNetClass, match="empty"):
        imagenet_class(" ")


@pytest.fixture(scope="module")
def classifier():
    from painter_models.objectives.backbones import build_efficientnet_classifier
    return build_efficientnet_classifier()


def test_loss_is_the_target_cross_entropy_over_cutouts(classifier, one_thread):
    torch.manual_seed(0)
    canvas = torch.rand(1, 3, 80, 80, requires_grad=True)
    loss = ImageNetClassLoss(["goldfish", "lemon"], classifier=classifier, cutouts=3, input_size=64, seed=1)
    value = loss(canvas)
    # the same cutouts by hand: the loss is the mean cross-entropy of both classes over them
    from painter_models.objectives.clip_loss import make_cutouts
    crops = make_cutouts(canvas.detach(), 3, (64, 64), torch.Generator().manual_seed(1))
    logp = torch.log_softmax(classifier((crops - loss.mean) / loss.std), 1)[:, [1, 951]]
    assert float(value.detach()) == pytest.approx(float(-logp.mean()), rel=1e-4)
    value.backward()
    assert canvas.grad.abs().sum() > 0


def test_optimising_pixels_raises_the_target_probability(classifier, one_thread):
    """The loss guides: a few Adam steps on raw pixels make Lite0 see a lemon far more likely."""
    torch.manual_seed(0)
    logits = torch.zeros(1, 3, 72, 72, requires_grad=True)
    loss = ImageNetClassLoss("lemon", classifier=classifier, cutouts=2, input_size=64, seed=0)
    opt = torch.optim.Adam([logits], lr=0.1)
    before = None
    for _ in range(8):
        value = loss(torch.sigmoid(logits))
        before = before if before is not None else loss.last_probability
        opt.zero_grad()
        value.backward()
        opt.step()
    loss(torch.sigmoid(logits))
    assert loss.last_probability > 20 * before, (before, loss.last_probability)


def test_mask_shows_only_the_region(classifier):
    mask = torch.zeros(32, 32)
    mask[:, :16] = 1
    loss = ImageNetClassLoss("lemon", classifier=classifier, cutouts=1, input_size=64, mask=mask, seed=0)
    canvas = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(canvas).backward()
    assert canvas.grad[..., 16:].abs().sum() == 0 and canvas.grad[..., :16].abs().sum() > 0


def test_bad_arguments_are_refused(classifier):
    with pytest.raises(ValueError, match="cutouts"):
        ImageNetClassLoss("lemon", classifier=classifier, cutouts=0)
    with pytest.raises(ValueError, match="input_size"):
        ImageNetClassLoss("lemon", classifier=classifier, input_size=8)
    with pytest.raises(ValueError, match="at least one class"):
        ImageNetClassLoss([], classifier=classifier)


def test_node_makes_a_named_term_and_reports_typos():
    from test_nodes import PACK
    NodeError = PACK.nodes.common.NodeError
    node_class = PACK.NODE_CLASS_MAPPINGS["NeuralPaintersImageNetClassLoss"]
    assert PACK.NODE_DISPLAY_NAME_MAPPINGS["NeuralPaintersImageNetClassLoss"] == "ImageNet Class Loss"
    (loss,) = node_class().make("goldfish\nlemon", cutouts=2, input_size=64, weight=0.5, seed=3)
    assert loss.names == ["imagenet"] and loss.weights == [0.5]
    assert loss.terms[0].class_indices == [1, 951]
    assert float(loss(torch.rand(1, 3, 48, 48)).detach()) > 0
    with pytest.raises(NodeError, match="ImageNet Class Loss: 'lemmon' is not an ImageNet class; close matches: 951: lemon"):
        node_class().make("lemmon")


def test_cli_refuses_an_unknown_class_with_close_matches(capsys):
    from painter_models.cli.paint import main
    assert main(["paint", "--imagenet-class", "volcanoe", "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "--imagenet-class" in err and "980: volcano" in err


def test_cli_paints_a_class(tmp_path, tmp_painter):
    from PIL import Image
    from painter_models.cli.paint import main
    out = tmp_path / "lemon.png"
    assert main(["paint", "--imagenet-class", "lemon", "--painter", tmp_painter, "--size", "32", "--strokes", "4",
                 "--steps", "2", "--rounds", "1", "--imagenet-size", "64", "--cutouts", "1", "--threads", "1",
                 "--quiet", "--out", str(out)]) == 0
    assert Image.open(out).size == (32, 32)
