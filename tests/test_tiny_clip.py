"""The shapes CLIP: its synthetic world, its training loop, and the shipped checkpoint loaded like a user's CLIP."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from neural_painters_training import tiny_clip, tiny_clip_cli
from neural_painters_training.judges import ShapeJudge
from neural_painters_training.shape_scenes import SHAPES, Caption, Scene, caption_text, random_caption, random_scene

SHIPPED = os.path.join(os.path.dirname(tiny_clip.config_path()), tiny_clip.MODEL_NAME + "-shapes.safetensors")


def test_captions_are_worded_one_way():
    assert caption_text("red", "circle", 1, None) == "a red circle"
    assert caption_text("orange", "square", 1, None) == "an orange square"
    assert caption_text("blue", "square", 2, "left") == "two blue squares on the left"
    assert caption_text(None, "triangle", 3, "top", "a drawing of ") == "a drawing of three triangles at the top"
    assert caption_text("green", None, None, "right") == "something green on the right"
    with pytest.raises(ValueError):
        caption_text(None, None, 1, None)


def test_a_caption_is_true_only_of_matching_scenes():
    scene = Scene("red", "circle", 1, frozenset({"left", "top"}), "white", "solid")
    assert Caption("red", "red", None, None, None).true_of(scene)
    assert Caption("a circle at the top", None, "circle", 1, "top").true_of(scene)
    assert not Caption("a red circle on the right", "red", "circle", 1, "right").true_of(scene)
    assert not Caption("two red circles", "red", "circle", 2, None).true_of(scene)
    assert not Caption("a blue circle", "blue", "circle", 1, None).true_of(scene)


def test_random_captions_are_true_of_their_scene():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene, _ = random_scene(rng)
        assert random_caption(scene, rng).true_of(scene)


@pytest.mark.parametrize("shape", SHAPES)
def test_solid_scenes_show_what_they_say(shape):
    """The data is right: the pixel judge (another implementation) sees the scene's colour, shape and place."""
    rng = np.random.default_rng(1)
    judged = 0
    while judged < 6:
        scene, image = random_scene(rng, size=128, style="solid", count=1)
        if scene.shape != shape or scene.background != "white" or scene.colour in ("white", "black", "orange"):
            continue
        position = next((p for p in ("left", "right", "top", "bottom") if p in scene.positions), None)
        verdict = ShapeJudge(background=image[0, 0] / 255.0)(image, scene.colour, shape, position)
        assert verdict.accepted, (scene, verdict.summary())
        judged += 1


def test_multi_positive_loss_prefers_true_captions():
    f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    truth = torch.eye(4, dtype=torch.bool)
    good = tiny_clip.multi_positive_loss(f, f, truth, 10.0)
    bad = tiny_clip.multi_positive_loss(f, f.roll(1, 0), truth, 10.0)
    assert float(good) < float(bad)


def test_training_locks_the_text_tower_first_and_starts_from_silent_end_tokens(one_thread):
    """While locked the text tower keeps its initial weights (the image tower moves); the start and end
    tokens' embeddings start at zero. (That training learns is checked on the shipped checkpoint below.)"""
    initial, tokenizer = tiny_clip.build_model(seed=0)
    model, _, summary = tiny_clip.train(steps=6, batch_size=16, seed=0, locked_text=1.0, log=lambda *a: None)
    assert summary["steps"] == 6
    ends = [tokenizer.sot_token_id, tokenizer.eot_token_id]
    assert float(model.token_embedding.weight[ends].detach().abs().sum()) == 0
    text = [n for n, _ in model.named_parameters() if not n.startswith("visual.") and n != "logit_scale"]
    start = dict(initial.named_parameters())
    for n in text:
        if n == "token_embedding.weight":
            keep = torch.ones(len(start[n]), dtype=torch.bool)
            keep[ends] = False
            assert torch.equal(dict(model.named_parameters())[n][keep], start[n][keep]), n
        else:
            assert torch.equal(dict(model.named_parameters())[n], start[n]), n
    assert not torch.equal(model.visual.conv1.weight, initial.visual.conv1.weight)


def test_cli_refuses_a_bad_output_name(capsys):
    with pytest.raises(SystemExit):
        tiny_clip_cli.main(["--out", "model.pt"])
    assert ".safetensors" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# the shipped checkpoint


@pytest.fixture(scope="module")
def shipped_clip():
    from painter_models.objectives.clip_loader import load_clip
    assert os.path.isfile(SHIPPED), f"{SHIPPED} missing: train it with neural-painters-train-clip --out {SHIPPED}"
    return load_clip(tiny_clip.MODEL_NAME, SHIPPED)


def test_shipped_clip_loads_like_any_clip_file(shipped_clip):
    """open_clip's own loader (strict state dict) and tokenizer, through load_clip with a file path."""
    assert shipped_clip.source == SHIPPED and shipped_clip.image_size == (64, 64)
    assert not any(p.requires_grad for p in shipped_clip.parameters())
    with open(tiny_clip.config_path()) as f:
        assert json.load(f)["text_cfg"]["context_length"] == shipped_clip.tokenizer.context_length


def test_shipped_clip_zero_shot_accuracy_is_what_its_card_says(shipped_clip):
    """The accuracies in the checkpoint's metadata (and model card) are reproduced on the same held-out images."""
    from safetensors import safe_open
    with safe_open(SHIPPED, "pt") as f:
        meta = f.metadata()
    claimed = json.loads(meta["zero_shot"])
    acc = tiny_clip.zero_shot(shipped_clip.model, shipped_clip.tokenizer, n=claimed["images"], seed=claimed["seed"])
    for key in ("colour_shape", "colour", "shape", "position", "count"):
        assert acc[key] == pytest.approx(claimed[key], abs=0.02), key
    assert acc["colour"] > 0.9 and acc["shape"] > 0.7 and acc["position"] > 0.6
    card = open(os.path.splitext(SHIPPED)[0] + ".md").read()
    assert f"{claimed['colour_shape']:.1%}" in card


def test_shipped_clip_ranks_prompts(shipped_clip):
    """Text and image towers agree on a clean red circle and a blue square (the painting prompts' words)."""
    judge_free = []
    for colour, shape in (("red", "circle"), ("blue", "square"), ("green", "triangle")):
        rng = np.random.default_rng(3)
        while True:
            scene, image = random_scene(rng, style="solid", count=1)
            if (scene.colour, scene.shape) == (colour, shape):
                break
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        f = shipped_clip.encode_image(x)
        prompts = [caption_text(c, s, 1, None) for c in ("red", "blue", "green") for s in ("circle", "square", "triangle")]
        best = prompts[int((f @ shipped_clip.encode_text(prompts).t()).argmax())]
        judge_free.append(best == caption_text(colour, shape, 1, None))
    assert all(judge_free), judge_free


def test_cli_paints_a_prompt_with_the_shipped_clip(tmp_path, tmp_painter):
    from PIL import Image
    from painter_models.cli.paint import main
    out = tmp_path / "circle.png"
    assert main(["paint", "--prompt", "a red circle", "--negative", "blue", "--clip", tiny_clip.MODEL_NAME,
                 "--clip-weights", SHIPPED, "--painter", tmp_painter, "--size", "48", "--strokes", "4", "--steps", "2",
                 "--rounds", "1", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    assert Image.open(out).size == (48, 48)
