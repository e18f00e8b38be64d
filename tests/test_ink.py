"""A brush's ink by box size (painter_models/brush/ink.py): the gain leaves a 64 px box as painted, survives the
painter file, scales a stroke on the canvas, and fitted on MyPaint it brings a painter's small strokes to the
brush's own ink."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from painter_models import NAKANO, load_painter, save_painter
from painter_models.brush.ink import InkBySize
from painter_models.brush.strokes import StrokeSet
from painter_models.painter.checkpoint import CheckpointError, read_metadata, save_tensors
from painter_models.painting.canvas import PainterFn, as_painter, render

from conftest import skip_no_mypaint

pytestmark = pytest.mark.usefixtures("one_thread")


def _ink(seed=0):
    torch.manual_seed(seed)
    return InkBySize().eval()


def _actions(n, seed=1):
    return torch.rand(n, NAKANO.dim, generator=torch.Generator().manual_seed(seed))


def test_gain_leaves_the_tile_size_box_as_painted_and_changes_with_the_box():
    ink, a = _ink(), _actions(50)
    with torch.no_grad():
        at_64 = ink.gain(NAKANO, a, torch.full((50,), 64.0))
        small, large = ink.gain(NAKANO, a, torch.full((50,), 8.0)), ink.gain(NAKANO, a, torch.full((50,), 128.0))
    assert torch.allclose(at_64, torch.ones(50), atol=1e-6)
    assert (small - 1).abs().max() > 1e-3 and (large - 1).abs().max() > 1e-3 and (small - large).abs().max() > 1e-3
    ink.tile = 32                   # a painter of 32 px strokes: exact in a 32 px box
    with torch.no_grad():
        assert torch.allclose(ink.gain(NAKANO, a, torch.full((50,), 32.0)), torch.ones(50), atol=1e-6)


def test_the_record_round_trips_and_damaged_records_are_refused():
    ink, a, side = _ink(), _actions(20), torch.full((20,), 12.0)
    ink.fit = {"brush": "deevad/brush", "strokes": 3}
    again = InkBySize.from_dict(json.loads(json.dumps(ink.to_dict())))
    assert torch.allclose(ink.gain(NAKANO, a, side), again.gain(NAKANO, a, side)) and again.fit == ink.fit
    good = ink.to_dict()
    damaged = [({**good, "features": ["size"]}, "features"), ({**good, "tile": 2}, "tile"),
               ({**good, "log_radius_range": [1.0, -1.0]}, "interval"),
               ({**good, "hidden": 16}, "do not match"),
               ({**good, "weights": {**good["weights"], "net.0.bias": [float("nan")] * 32}}, "NaN")]
    for record, words in damaged:
        with pytest.raises(ValueError, match=words):
            InkBySize.from_dict(record)


def test_the_painter_file_keeps_its_ink_and_refuses_a_damaged_one(tmp_painter, tmp_path):
    painter = load_painter(tmp_painter)
    assert painter.ink is None and as_painter(painter).ink is None        # measured without it: no gain
    painter.ink = _ink()
    path = str(tmp_path / "with_ink.safetensors")
    save_painter(path, painter)
    loaded, a, side = load_painter(path), _actions(10), torch.full((10,), 10.0)
    assert torch.allclose(loaded.ink.gain(NAKANO, a, side), painter.ink.gain(NAKANO, a, side))
    assert as_painter(loaded).ink is loaded.ink
    meta = read_metadata(path)
    meta["ink_by_size"]["hidden"] = 8
    from safetensors.torch import load_file
    save_tensors(path, load_file(path), meta)
    with pytest.raises(CheckpointError, match="ink_by_size.*neural-painters-train ink"):
        load_painter(path)


class ConstantInk:
    """An ink that multiplies every stroke's ink by one number."""

    def __init__(self, gain):
        self.value = gain

    def gain(self, layout, actions, side):
        return torch.full((len(actions),), self.value, dtype=actions.dtype)


class SquarePainter:
    """A centred square of alpha 0.5 in a given colour (no reach: drawn where its box is)."""
    stroke_size = 16

    def __call__(self, actions):
        n, s = actions.shape[0], self.stroke_size
        alpha = actions.new_zeros(n, 1, s, s)
        alpha[:, :, 4:12, 4:12] = 0.5
        return torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(n, 3, s, s), alpha


def test_the_canvas_scales_each_stroke_by_its_gain_and_keeps_alpha_at_most_one():
    a, boxes = _actions(1), torch.tensor([[16.0, 16.0, 16.0]])

    def paint(ink):
        return render(PainterFn(SquarePainter(), 16, torch.device("cpu"), NAKANO, None, ink), a, boxes, (32, 32))
    plain, half, triple = paint(None), paint(ConstantInk(0.5)), paint(ConstantInk(3.0))
    assert torch.allclose(1 - half, 0.5 * (1 - plain), atol=1e-6)           # half the ink
    centre = triple[0, :, 16, 16]
    assert torch.allclose(centre, torch.tensor([0.2, 0.4, 0.6]), atol=1e-5)  # held at alpha 1: the colour itself
    assert float(triple.min()) >= 0 and float(triple.max()) <= 1


@pytest.mark.mypaint
@skip_no_mypaint
def test_fitted_on_mypaint_small_strokes_get_the_brush_ink():
    from neural_painters_training.ink import fit_ink_by_size
    ink = fit_ink_by_size("deevad/brush", NAKANO, count=150, check_count=100, steps=300, sides=(8, 16))
    before, after = ink.fit["psnr_before"], ink.fit["psnr_after"]
    # deevad/brush in an 8 px box lays about a fifth of its scaled tile's ink (22 dB apart); fitted, 30+
    assert after["8"] >= before["8"] + 6 and after["16"] >= before["16"] + 3, (before, after)


@pytest.mark.mypaint
@skip_no_mypaint
def test_the_ink_command_writes_the_painter_and_its_card(tmp_painter, tmp_path):
    from neural_painters_training.cli import main
    out = str(tmp_path / "inked.safetensors")
    with open(str(tmp_path / "inked.md"), "w") as f:
        f.write("# a painter\n\n## Metrics\n\nsome\n")
    main(["ink", "--painter", tmp_painter, "--out", out, "--strokes", "40", "--check-strokes", "30", "--steps", "20",
          "--threads", "1"])
    painter = load_painter(out)
    assert painter.ink is not None and painter.ink.fit["brush"] == "classic/dry_brush"
    card = open(str(tmp_path / "inked.md")).read()
    assert card.startswith("# a painter") and "## Metrics" in card and card.count("## Ink by box size") == 1
    meta = read_metadata(out)             # a damaged record: what the error says to do, measuring again, mends it
    meta["ink_by_size"]["tile"] = 2
    from safetensors.torch import load_file
    save_tensors(out, load_file(out), meta)
    with pytest.raises(CheckpointError, match="neural-painters-train ink"):
        load_painter(out)
    main(["ink", "--painter", out, "--strokes", "40", "--check-strokes", "30", "--steps", "20", "--threads", "1"])
    assert load_painter(out).ink.tile == painter.stroke_size
    assert open(str(tmp_path / "inked.md")).read().count("## Ink by box size") == 1       # replaced, not added
