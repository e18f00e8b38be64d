"""SVG export: each stroke a filled outline whose width follows its pressure as the brush paints it,
rendered by a real SVG renderer (rsvg-convert) close to the painting it came from."""
from __future__ import annotations

import math
import re
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import need_tool, skip_no_mypaint
from painter_models import NAKANO, RasterProgram, load_painter
from painter_models.painting.canvas import render_canvas
from painter_models.brush.strokes import StrokeSet
from painter_models.export.svg import (DRY_BRUSH_PROFILE, RASTER_PROFILE, BrushProfile, brush_profile, save_svg,
                                stroke_outlines, strokes_to_svg)

SVG_NS = "{http://www.w3.org/2000/svg}"
PRESSURE = NAKANO.indices("entry_pressure", "exit_pressure")


def rsvg(svg: str, tmp_path, name="p") -> np.ndarray:
    """The SVG rasterised by librsvg (installed in CI: the test must not skip there)."""
    tool = need_tool("rsvg-convert", "librsvg2-bin")
    (tmp_path / f"{name}.svg").write_text(svg)
    subprocess.run([tool, str(tmp_path / f"{name}.svg"), "-o", str(tmp_path / f"{name}.png")], check=True)
    return np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB"), np.float64) / 255


def psnr(a, b) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def paths(svg: str):
    root = ET.fromstring(svg.encode())
    assert root.tag == SVG_NS + "svg"
    return root, root.findall(f".//{SVG_NS}path")


def random_strokes(n=25, size=(96, 128), seed=0, **kw) -> StrokeSet:
    rng = np.random.default_rng(seed)
    h, w = size
    boxes = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n), np.exp(rng.uniform(np.log(12), np.log(48), n))], 1)
    return StrokeSet(NAKANO.sample(n, seed=seed), boxes, size, **kw)


def test_one_closed_outline_per_stroke_in_order(tmp_path):
    s = random_strokes(background=(0.9, 0.85, 0.8))
    svg = strokes_to_svg(s, DRY_BRUSH_PROFILE)
    root, found = paths(svg)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("128", "96", "0 0 128 96")
    assert root.find(f"{SVG_NS}rect").get("fill") == "#e6d9cc"
    assert len(found) == len(s)
    outlines, opacity = stroke_outlines(s, DRY_BRUSH_PROFILE)
    for i, p in enumerate(found):
        rgb = s.actions[i, NAKANO.indices("red", "green", "blue")].tolist()
        assert p.get("fill") == "#" + "".join(f"{round(c * 255):02x}" for c in rgb)
        assert p.get("d").startswith("M") and p.get("d").endswith(" Z")
        nums = np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", p.get("d"))]).reshape(-1, 2)
        np.testing.assert_allclose(nums, outlines[i], atol=0.006)
        assert float(p.get("fill-opacity")) == pytest.approx(opacity[i], abs=1e-3)
    save_svg(str(tmp_path / "p.svg"), s, profile=DRY_BRUSH_PROFILE)
    assert (tmp_path / "p.svg").read_text() == svg


def outline_width(outline: np.ndarray, k: int) -> float:
    """Distance between the left point k and its right twin (the outline runs left forward, then back)."""
    from painter_models.export.svg import CAP_POINTS, PATH_POINTS
    n = PATH_POINTS + 1
    left = outline[:n]
    right = outline[n + CAP_POINTS:2 * n + CAP_POINTS][::-1]
    return float(np.linalg.norm(left[k] - right[k]))


def test_width_follows_the_pressure_along_the_stroke_and_the_radius():
    a = np.tile(NAKANO.sample(1, seed=7), (3, 1))
    a[0, PRESSURE] = [0.1, 0.9]         # pressing harder towards the end
    a[1, PRESSURE] = [0.9, 0.9]
    a[2, PRESSURE] = [0.9, 0.9]
    s = StrokeSet(a, [[50, 50, 64], [50, 50, 64], [50, 50, 128]], (100, 100))
    outlines, opacity = stroke_outlines(s, DRY_BRUSH_PROFILE)
    first, last = outline_width(outlines[0], 1), outline_width(outlines[0], -2)
    assert last > 1.5 * first                            # the outline swells with the pressure
    assert outline_width(outlines[2], 12) == pytest.approx(2 * outline_width(outlines[1], 12), rel=0.02)
    assert opacity[1] > opacity[0]                       # dry brush: harder press, more opaque
    # the rasteriser is drawn as it renders: 2 r (0.35 + p) wide at 0.25 + 0.75 p / 0.8
    one = StrokeSet(a[1:2], [[50, 50, 64]], (100, 100), brush="raster")
    out, op = stroke_outlines(one, RASTER_PROFILE)
    r, p = math.exp(NAKANO.to_physical(a[1].astype(np.float64), "size")), 0.9 * 0.8
    assert outline_width(out[0], 12) == pytest.approx(2 * r * (0.35 + p), rel=1e-3)
    assert op[0] == pytest.approx(0.25 + 0.75 * p / 0.8, abs=1e-3)


def test_the_rasteriser_s_strokes_as_svg_look_like_its_canvas(tmp_path):
    s = random_strokes(40, seed=3, brush="raster:soft_round", background=(0.2, 0.3, 0.4))
    with torch.no_grad():
        canvas = render_canvas(RasterProgram(64), s)[0].permute(1, 2, 0).numpy()
    drawn = rsvg(strokes_to_svg(s), tmp_path)
    assert psnr(drawn, canvas) > 24


@pytest.mark.mypaint
@skip_no_mypaint
def test_measured_profiles():
    from painter_models.brush.mypaint import brush_profile as measure
    dry = BrushProfile.from_dict(measure("classic/dry_brush"))
    np.testing.assert_allclose(dry.width, DRY_BRUSH_PROFILE.width, atol=0.006)      # the stored stand-in
    np.testing.assert_allclose(dry.opacity, DRY_BRUSH_PROFILE.opacity, atol=0.006)
    assert brush_profile("mypaint:classic/dry_brush") == dry
    pen = brush_profile("classic/pen")
    assert np.asarray(pen.opacity)[1:, 1:].min() > 0.95                              # an opaque ink pen
    assert np.asarray(dry.opacity)[3, 1] < np.asarray(dry.opacity)[3, -1]            # dry brush: pressure = paint


def test_without_libmypaint_the_stored_profile_stands_in(monkeypatch):
    import painter_models.brush.mypaint as mypaint

    def missing(*a, **k):
        raise mypaint.MyPaintUnavailable("libmypaint was not found")
    monkeypatch.setattr(mypaint, "brush_profile", missing)
    assert brush_profile("classic/charcoal") is DRY_BRUSH_PROFILE
    assert brush_profile("raster:soft_round") is RASTER_PROFILE


@pytest.mark.mypaint
@skip_no_mypaint
@pytest.mark.slow
def test_svg_of_a_real_painting_is_close_to_the_painting(tmp_path):
    """A real painting (the shipped painter, the real brush): its SVG, drawn by librsvg, is as close to
    the photograph as the painting within 2 dB, and much closer to the painting than a flat tube per
    stroke would be."""
    from painter_models.brush.rerender import rerender_mypaint
    from painter_models.objectives.losses import PixelLoss
    from painter_models.painting.optimize import paint
    torch.set_num_threads(1)
    photo = np.asarray(Image.open("example_workflows/input/neural_painters_astronaut.jpg").convert("RGB")
                       .resize((96, 96), Image.LANCZOS), np.float64) / 255
    target = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    painter = load_painter("painter_models/weights/dry_brush.safetensors")
    res = paint(painter, PixelLoss(target), 96, strokes=60, rounds=3, steps=45, seed=0)
    png = rerender_mypaint(res.strokes, 1.0).astype(np.float64) / 255
    drawn = rsvg(strokes_to_svg(res.strokes), tmp_path)
    assert psnr(drawn, photo) >= psnr(png, photo) - 2.0, (psnr(drawn, photo), psnr(png, photo))
    tubes = BrushProfile(radius=(1.0, 2.0), pressure=(0.0, 0.8), width=((1.0, 1.0),) * 2, opacity=((1.0, 1.0),) * 2)
    flat = rsvg(strokes_to_svg(res.strokes, tubes), tmp_path, "flat")
    assert psnr(drawn, png) > psnr(flat, png) + 1.0
