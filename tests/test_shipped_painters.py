"""The painters that ship in painter_models/weights/: they load, carry their metrics, meet the bar,
take the colour from the action, and an independent evaluation on fresh MyPaint strokes agrees."""
import os

import pytest
import torch

from painter_models import load_painter, read_metadata
from painter_models.actions import NAKANO
from painter_models.metrics import over_white, psnr_of_mse, rgba_to_tensors

from conftest import skip_no_mypaint

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "painter_models", "weights")
SHIPPED = {"dry_brush": "classic/dry_brush", "charcoal": "classic/charcoal"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_painter_loads_and_its_metadata_meets_the_bar(name):
    path = os.path.join(WEIGHTS, f"{name}.safetensors")
    assert os.path.getsize(path) <= 10 * 2 ** 20
    painter = load_painter(path)
    assert painter.brush == f"mypaint:{SHIPPED[name]}"
    assert painter.generator.config.colour == "action"   # strokes re-render in the colour they were painted
    m = read_metadata(path)["metrics"]
    assert m["psnr"] >= 27.0 and m["psnr"] >= m["ceiling_psnr"] - 1.0, m
    assert m["heldout_count"] >= 1000
    card = open(os.path.join(WEIGHTS, f"{name}.md")).read()
    assert f"| psnr | {m['psnr']:.4f} |" in card and os.path.exists(os.path.join(WEIGHTS, f"{name}_grid.png"))


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_independent_evaluation_reproduces_the_metadata_psnr(name):
    from painter_models import MyPaintProgram
    torch.set_num_threads(1)
    path = os.path.join(WEIGHTS, f"{name}.safetensors")
    painter = load_painter(path)
    actions = NAKANO.sample(600, seed=4242)                 # not the training or held-out seeds
    program = MyPaintProgram(SHIPPED[name], painter.stroke_size)
    try:
        real_rgb, _ = rgba_to_tensors(program.render(actions, workers=1))
    finally:
        program.close()
    with torch.no_grad():
        colour, alpha = painter.generator(torch.from_numpy(actions))
    got = float(psnr_of_mse(((over_white(colour, alpha) - real_rgb) ** 2).mean().double()))
    want = read_metadata(path)["metrics"]["psnr"]
    assert abs(got - want) <= 0.5, f"{name}: {got:.2f} dB on fresh strokes, metadata says {want:.2f}"
