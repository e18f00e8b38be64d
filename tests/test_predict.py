"""The stroke predictor (painting/predictor.py, painting/predict.py): the shipped one recovers paintings of
random strokes, the count is exact, levels go coarse to fine, its files round-trip and refuse what is not
one; `neural-painters paint --init predict`, the Predict Strokes node and `neural-painters-train predictor`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import MYPAINT_MISSING
from test_paint_cli import run as run_cli
from painter_models import load_painter
from painter_models.brush.actions import keep_inside
from painter_models.metrics import psnr
from painter_models.painter.shipped import find_painter, find_predictor
from painter_models.painting.canvas import render
from painter_models.painting.predict import plan_levels, predict_strokes
from painter_models.painting.predictor import (PredictorConfig, PredictorError, PredictorNetwork, StrokePredictor,
                                               load_predictor, save_predictor)
from painter_models.painting.settings import default_sizes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def soft_brush():
    return load_painter(find_painter("soft_brush"))


@pytest.fixture(scope="module")
def shipped(soft_brush):
    path = find_predictor(soft_brush)
    assert path is not None and path.endswith("predictors/soft_brush.safetensors")
    return load_predictor(path)


def photo(h=48, w=64):
    """A picture [1, 3, h, w]: a colour ramp, a dark square, a red bar."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    image = torch.stack([0.8 - 0.5 * y, 0.3 + 0.6 * x, 0.5 + 0.3 * x * y])[None].clone()
    image[..., h // 4: h // 2, w // 6: w // 3] = 0.1
    image[:, :, 3 * h // 4:, w // 2:] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    return image


def random_painting(painter, n: int, size: int, seed: int) -> torch.Tensor:
    """A canvas of n random strokes (boxes at the optimiser's default sizes, big ones first) painted by the
    painter over white."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = default_sizes((size, size), n)
    actions = torch.rand(n, painter.layout.dim, generator=gen)
    pressure = painter.layout.indices("entry_pressure", "exit_pressure")
    actions[:, pressure] = 0.4 + 0.6 * actions[:, pressure]
    actions = keep_inside(painter.layout, actions, painter.reach)
    sides = torch.exp(math.log(lo) + math.log(hi / lo) * torch.rand(n, generator=gen)).sort(descending=True).values
    boxes = torch.cat([torch.rand(n, 2, generator=gen) * size, sides[:, None]], 1)
    with torch.no_grad():
        return render(painter, actions, boxes, (size, size))


def test_the_shipped_predictor_recovers_paintings_of_random_strokes(soft_brush, shipped):
    """Canvases of 100 random strokes it never saw, painted by the painter: the shipped predictor repaints them
    with 100 strokes far better than an untrained predictor of the same config (measured: 13.3-14.1 dB against
    7.4-10.0 dB, MyPaint or the painter painting)."""
    torch.manual_seed(0)
    untrained = StrokePredictor(PredictorNetwork(shipped.config).eval(), soft_brush.brush, soft_brush.layout)
    scores = {"shipped": [], "untrained": []}
    for seed in (1, 2, 3):
        target = random_painting(soft_brush, 100, 128, 4242 + seed)
        for name, predictor in (("shipped", shipped), ("untrained", untrained)):
            result = predict_strokes(predictor, soft_brush, target, 100)
            scores[name].append(float(psnr(result.canvas, target)))
    assert min(scores["shipped"]) >= 12.0, scores
    assert max(scores["untrained"]) < 12.0, scores


def test_the_count_is_exact_and_levels_go_coarse_to_fine(soft_brush, shipped):
    target = photo()
    for n in (1, 37, 300):
        result = predict_strokes(shipped, soft_brush, target, n, backdrop=(0.9, 0.8, 0.7))
        strokes = result.strokes
        assert len(strokes) == n and "fit" not in result.note and sum(c for _, c in result.levels) == n
        assert strokes.canvas_size == (48, 64) and result.canvas.shape == (1, 3, 48, 64)
        assert strokes.brush == soft_brush.brush and strokes.layout.to_dict() == soft_brush.layout.to_dict()
        assert strokes.background == (0.9, 0.8, 0.7)
        sides = [side for side, _ in result.levels]
        planned = [side for side, _, _ in plan_levels(n, 8, (48, 64))]
        assert planned == [64 / 2 ** i for i in range(len(planned))] and len(planned) >= 3
        assert sides == [side for side in planned if side in sides], result.levels     # coarse to fine
        assert len(sides) == (len(planned) if n > 1 else 1), result.levels
        # each level's boxes are smaller than the level's before it (by about half)
        start, means = 0, []
        for _, count in result.levels:
            means.append(float(strokes.boxes[start:start + count, 2].mean()))
            start += count
        assert all(finer < 0.8 * coarser for coarser, finer in zip(means, means[1:])), means
    # a canvas too small for the count: the most it holds, and the note says so
    tiny = predict_strokes(shipped, soft_brush, photo(16, 16), 5000)
    held = sum(8 * rows * cols for _, rows, cols in plan_levels(5000, 8, (16, 16)))
    assert len(tiny.strokes) == held < 5000 and f"at most {held} fit a 16x16 canvas" in tiny.note


@pytest.mark.skipif(MYPAINT_MISSING is not None, reason=f"libmypaint unavailable: {MYPAINT_MISSING}")
def test_mypaint_paints_between_levels_and_the_painting_is_its_rerender(soft_brush, shipped):
    from painter_models.brush.rerender import rerender_mypaint
    result = predict_strokes(shipped, soft_brush, photo(), 120)
    assert result.renderer == "mypaint:deevad/brush"
    again = torch.from_numpy(rerender_mypaint(result.strokes, 1.0, dtype="float32")).permute(2, 0, 1)[None]
    assert torch.equal(again, result.canvas)
    neural = predict_strokes(shipped, soft_brush, photo(), 120, use_mypaint=False)
    assert neural.renderer == "neural painter" and "switched off" in neural.note and len(neural.strokes) == 120


def test_predictor_files_round_trip_and_refuse_what_is_not_one(tmp_path, soft_brush, tmp_painter):
    torch.manual_seed(0)
    network = PredictorNetwork(PredictorConfig(k=2, width=4, hidden=16))
    path = str(tmp_path / "small.safetensors")
    save_predictor(path, network, soft_brush.brush, {"steps": 3})
    loaded = load_predictor(path)
    assert loaded.config == network.config and loaded.brush == soft_brush.brush and loaded.training == {"steps": 3}
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), loaded.network.state_dict().values()))
    assert not any(p.requires_grad for p in loaded.network.parameters()) and not loaded.network.training
    loaded.check_fits(soft_brush)
    with pytest.raises(PredictorError, match="trained for a painter of brush 'mypaint:deevad/brush'"):
        loaded.check_fits(load_painter(tmp_painter))
    with pytest.raises(PredictorError, match="is a neural painter, not a stroke predictor"):
        load_predictor(tmp_painter)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(PredictorError, match="not a readable safetensors"):
        load_predictor(str(broken))
    with pytest.raises(PredictorError, match="does not exist"):
        load_predictor(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="patch must be a multiple of 8"):
        PredictorConfig(patch=20)
    # weights that are not the network the metadata describes, or not finite: refused, naming the tensor
    from painter_models.painter.checkpoint import save_tensors
    from painter_models.painting.predictor import predictor_metadata
    wide = PredictorNetwork(PredictorConfig(k=2, width=4, hidden=32))
    save_tensors(str(broken), wide.state_dict(), predictor_metadata(network.config, soft_brush.brush,
                                                                    network.layout, {}))
    with pytest.raises(PredictorError, match=r"do not match the architecture in its metadata \('.*' is \["):
        load_predictor(str(broken))
    state = network.state_dict()
    first = next(iter(state))
    state[first] = torch.full_like(state[first], float("nan"))
    save_tensors(str(broken), state, predictor_metadata(network.config, soft_brush.brush, network.layout, {}))
    with pytest.raises(PredictorError, match=f"weight '{first}' holds NaN or infinite values"):
        load_predictor(str(broken))


# ------------------------------------------------------------------------------------------------
# neural-painters paint --init predict


@pytest.fixture
def photo_file(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray((photo(60, 80)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
    return str(path)


def test_the_cli_paints_the_prediction_alone_and_refines_it(tmp_path, photo_file, soft_brush, shipped, capsys):
    from painter_models.export.stroke_file import load_strokes
    from painter_models.objectives.image_ops import fit_to
    alone, js = tmp_path / "alone.png", tmp_path / "alone.json"
    rc, err = run_cli([photo_file, "--init", "predict", "--steps", "0", "--strokes", "60", "--size", "64",
                         "--out", str(alone), "--json", str(js), "--quiet"], capsys)
    assert rc == 0, err
    strokes = load_strokes(str(js))
    assert len(strokes) == 60 and strokes.extra["init"] == "predict"
    assert strokes.extra["predictor"] == "soft_brush.safetensors"
    from painter_models.export.image_files import load_image
    target = fit_to(load_image(photo_file), 48, 64)
    predicted = predict_strokes(shipped, soft_brush, target, 60, use_mypaint=MYPAINT_MISSING is None)
    painted = load_image(str(alone))
    assert abs(float(psnr(painted, target)) - float(psnr(predicted.canvas, target))) < 0.2
    refined = tmp_path / "refined.png"
    rc, err = run_cli([photo_file, "--init", "predict", "--steps", "4", "--strokes", "60", "--size", "64",
                         "--learning-rate", "0.05", "--out", str(refined), "--threads", "1"], capsys)
    assert rc == 0, err
    assert "60 strokes predicted, then refined in 4 steps" in err and "60 strokes in" in err
    assert float(psnr(load_image(str(refined)), target)) > float(psnr(painted, target))


def test_the_cli_says_when_no_predictor_fits(photo_file, tmp_painter, capsys):
    rc, err = run_cli([photo_file, "--painter", tmp_painter, "--init", "predict", "--quiet"], capsys)
    assert rc == 2 and "no stroke predictor is shipped for this painter's brush 'mypaint:classic/dry_brush'" in err
    rc, err = run_cli([photo_file, "--predictor", "p.safetensors", "--quiet"], capsys)
    assert rc == 2 and "--predictor is the stroke predictor of --init predict" in err
    rc, err = run_cli([photo_file, "--init", "predict", "--predictor", tmp_painter, "--quiet"], capsys)
    assert rc == 2 and "is a neural painter, not a stroke predictor" in err


# ------------------------------------------------------------------------------------------------
# the nodes


def test_predict_strokes_node_feeds_optimize_actions(tmp_path):
    from test_nodes import NodeError, node
    painter = node("Load Neural Painter").load("shipped/soft_brush.safetensors")[0]
    image = photo(48, 64).permute(0, 2, 3, 1)
    spec = node("Predict Strokes").INPUT_TYPES()
    assert list(spec["required"]) == ["painter", "image", "strokes", "size"] and list(spec["optional"]) == ["predictor"]
    assert spec["optional"]["predictor"][0][:2] == ["auto (shipped for the painter)", "shipped/soft_brush.safetensors"]
    strokes, painting = node("Predict Strokes").predict(painter, image, 40, 64)
    assert len(strokes) == 40 and strokes.canvas_size == (48, 64) and painting.shape == (1, 48, 64, 3)
    again, _ = node("Predict Strokes").predict(painter, image, 40, 64, "shipped/soft_brush.safetensors")
    assert torch.equal(again.actions, strokes.actions)
    loss = node("Pixel Loss").make(image, "l2", 0.0, 1.0)[0][0]
    refined = node("Optimize Actions").optimize(painter, loss, size=64, strokes=0, rounds=1, steps=2, learning_rate=0.1,
                                                min_stroke_size=0, max_stroke_size=0, seed=0, blend="alpha",
                                                init_strokes=strokes)[0]
    assert len(refined) == 40
    sides = strokes.boxes[:, 2]     # refined within their own sizes (the canvas's default for one stroke: 48 px)
    assert refined.extra["min_size"] == pytest.approx(float(sides.min()))
    assert refined.extra["max_size"] == pytest.approx(float(sides.max()))
    # Optimize Actions predicts its own start with init "predict"
    predicted = node("Optimize Actions").optimize(painter, loss, size=64, strokes=30, rounds=1, steps=0,
                                                  learning_rate=0.1, min_stroke_size=0, max_stroke_size=0, seed=0,
                                                  blend="alpha", init="predict")
    assert len(predicted[0]) == 30 and json.loads(predicted[3])["strokes"] == 30
    with pytest.raises(NodeError, match="Predict Strokes: strokes must be 1..20000 to predict"):
        node("Predict Strokes").predict(painter, image, 0, 64)
    with pytest.raises(NodeError, match="Predict Strokes: .*a batch of 2 images"):
        node("Predict Strokes").predict(painter, torch.cat([image, image]), 10, 64)


# ------------------------------------------------------------------------------------------------
# neural-painters-train predictor


def test_training_writes_the_predictor_its_card_and_grid_and_resumes(tmp_path, tmp_painter, capsys):
    from neural_painters_training.cli import main
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(2):
        pixels = (photo(60 + 20 * i, 80)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
    out = tmp_path / "run" / "small.safetensors"
    args = ["predictor", "--painter", tmp_painter, "--out", str(out), "--images", str(images), "--nat", "2",
            "--syn", "2", "--rollout-every", "2", "--rollout-images", "1", "--width", "4", "--hidden", "16", "--k", "2",
            "--save-every", "2", "--eval-images", str(images / "0.png"), "--eval-strokes", "10", "30", "--eval-size",
            "48", "--no-progress"]
    main(args + ["--steps", "3"])
    first = load_predictor(str(out))
    assert first.training["steps_done"] == 3 and first.brush == "mypaint:classic/dry_brush"
    card = (tmp_path / "run" / "small.md").read_text()
    assert "neural-painters-train predictor --painter" in card and "| 0.png | 30 |" in card
    grid = np.asarray(Image.open(tmp_path / "run" / "small_grid.png"))
    assert grid.shape == (4 + 36 + 4, 4 + 3 * (48 + 4), 3)       # the photograph and its two paintings, on grey
    for column in range(3):
        cell = grid[4:40, 4 + column * 52: 52 + column * 52]
        assert (cell != 128).any(axis=2).all(), f"column {column} is not a whole picture"
    capsys.readouterr()
    main(args + ["--steps", "5"])
    assert "resuming at step 3" in capsys.readouterr().err
    assert load_predictor(str(out)).training["steps_done"] == 5
    logged = [json.loads(line)["step"] for line in (tmp_path / "run" / "small.log.jsonl").read_text().splitlines()]
    assert logged == [2, 4], "the second run resumed at step 3"
