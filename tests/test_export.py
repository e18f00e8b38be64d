"""Outputs: stroke JSON (exact round trip, clear refusals), time-lapse frames and animations,
and re-rendering with the real MyPaint brush at any scale."""
import json
import math
import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from painter_models import NAKANO
from painter_models.export import stroke_file as sf
from painter_models.brush.rerender import rerender_mypaint
from painter_models.export.stroke_file import StrokeFileError, load_strokes, save_strokes, strokes_from_json, strokes_to_json
from painter_models.export.timelapse import frame_counts, save_animation, timelapse_frames
from painter_models.brush.strokes import StrokeSet



def _mypaint_missing() -> str | None:
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library, resolve_brush
    try:
        load_library()
        resolve_brush("classic/dry_brush")
    except MyPaintUnavailable as e:
        return str(e).splitlines()[0]
    return None


MYPAINT_MISSING = _mypaint_missing()
skip_no_mypaint = pytest.mark.skipif(MYPAINT_MISSING is not None, reason=f"libmypaint unavailable: {MYPAINT_MISSING} "
                                     "(apt-get install -y --no-install-recommends libmypaint-1.5-1 mypaint-brushes)")


@pytest.fixture(scope="module")
def dry_brush():
    if MYPAINT_MISSING:
        pytest.skip(f"libmypaint unavailable: {MYPAINT_MISSING}")
    from painter_models.brush.mypaint import MyPaintProgram
    with MyPaintProgram("classic/dry_brush", 64) as program:
        yield program


def _strokes(n=30, size=(96, 128), seed=0, smin=12.0, smax=48.0, **kw) -> StrokeSet:
    rng = np.random.default_rng(seed)
    h, w = size
    side = np.sort(np.exp(rng.uniform(np.log(smin), np.log(smax), n)))[::-1]
    boxes = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n), side], 1)
    return StrokeSet(NAKANO.sample(n, seed=seed), boxes, size, **kw)


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32).view(np.int32)


# -- JSON ---------------------------------------------------------------------------------------

def test_json_round_trip_is_bit_exact(tmp_path):
    s = _strokes(50, (120, 200), seed=1, background=(0.93, 0.9, 0.82), blend="linear",
                 brush="mypaint:classic/dry_brush", extra={"painter": "p.safetensors", "steps": 300, "loss": 0.125})
    # awkward float32 values: exact ends, subnormals, values with no short decimal
    s.actions[0] = torch.tensor([0.0, 1.0, 1e-45, 1.1754942e-38, 0.1, 1 / 3, 0.99999994, 5.9604645e-08,
                                 0.5, 0.30000001, 2 ** -24, 0.7])
    s.boxes[1] = torch.tensor([-3.0000002, 200 / 3, 1 / 3])
    path = tmp_path / "painting.json"
    save_strokes(str(path), s)
    r = load_strokes(str(path))
    assert np.array_equal(_bits(r.actions), _bits(s.actions))
    assert np.array_equal(_bits(r.boxes), _bits(s.boxes))
    assert (r.canvas_size, r.background, r.blend, r.brush) == (s.canvas_size, s.background, s.blend, s.brush)
    assert r.layout == s.layout and r.extra == s.extra
    # writing the reloaded strokes gives the same bytes
    save_strokes(str(tmp_path / "again.json"), r)
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_exact_number_encoding_many_values():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(20000, dtype=np.float32),
                             (rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 38, 5000)).astype(np.float32),
                             np.array([0.0, -0.0, 1.0, np.finfo(np.float32).tiny, np.finfo(np.float32).max], np.float32)])
    values = values[np.isfinite(values)]
    assert values.dtype == np.float32
    back = np.array(json.loads(json.dumps(sf._exact(values))), np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.int32), values.view(np.int32))
    # and short where it can be: 0.3 is written as 0.3, not 0.30000001192092896
    assert json.dumps(sf._exact(np.array([0.3, 0.25], np.float32))) == "[0.3, 0.25]"


def test_json_carries_plotter_friendly_geometry():
    s = _strokes(12, seed=2)
    doc = strokes_to_json(s)
    assert doc["format"] == "neural-painters-strokes" and doc["format_version"] == sf.FORMAT_VERSION
    assert doc["canvas"] == {"width": 128, "height": 96} and doc["n_strokes"] == 12
    assert doc["background"]["hex"] == "#ffffff" and doc["layout"]["name"] == "nakano12"
    geo = s.geometry(100)
    for i, item in enumerate(doc["strokes"]):
        for key in ("start", "through", "control", "end"):
            np.testing.assert_allclose(item[key], geo[key][i].numpy(), atol=1e-3)
        assert item["entry_pressure"] == pytest.approx(float(geo["entry_pressure"][i]), abs=1e-4)
        assert item["exit_pressure"] == pytest.approx(float(geo["exit_pressure"][i]), abs=1e-4)
        assert item["log_radius"] == pytest.approx(float(geo["log_radius"][i]), abs=1e-4)
        assert item["radius_px"] == pytest.approx(math.exp(float(geo["log_radius"][i])), abs=1e-4)
        rgb = s.actions[i, NAKANO.indices("red", "green", "blue")].tolist()
        assert item["color"] == "#" + "".join(f"{round(c * 255):02x}" for c in rgb)
    # the radius includes ln(side / 64): a stroke in a 128 px box has twice the radius of the same in 64
    a = s.actions[:1]
    r64 = strokes_to_json(StrokeSet(a, [[50, 50, 64]], (100, 100)))["strokes"][0]["radius_px"]
    r128 = strokes_to_json(StrokeSet(a, [[50, 50, 128]], (100, 100)))["strokes"][0]["radius_px"]
    assert r128 == pytest.approx(2 * r64, rel=1e-3)


def test_json_loads_without_derived_fields():
    s = _strokes(5, seed=3)
    doc = strokes_to_json(s)
    doc["strokes"] = [{"action": it["action"], "box": it["box"]} for it in doc["strokes"]]
    for key in ("procedure", "extra", "n_strokes", "background", "blend"):
        doc.pop(key)
    r = strokes_from_json(doc)
    assert torch.equal(r.actions, s.actions) and torch.equal(r.boxes, s.boxes)


def _write(tmp_path, doc_or_text, name="bad.json"):
    p = tmp_path / name
    p.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return str(p)


def _edited(**changes):
    doc = strokes_to_json(_strokes(3, seed=4))
    for key, fn in changes.items():
        fn(doc)
    return doc


@pytest.mark.parametrize("content, message", [
    ("this is not json", "not valid JSON"),
    ('{"format": "neural-painters-strokes", "format_version": 1, "canvas": {', "not valid JSON"),
    ("[1, 2, 3]", "expected a JSON object"),
    (_edited(f=lambda d: d.update(format="neural-painter")), "not a stroke file"),
    (_edited(f=lambda d: d.update(format_version=99)), "newer"),
    (_edited(f=lambda d: d.update(format_version="1")), "format_version must be"),
    (_edited(f=lambda d: d["canvas"].update(width=-5)), "canvas width"),
    (_edited(f=lambda d: d["strokes"][1]["action"].pop()), "stroke 1: 'action' must be a list of 12"),
    (_edited(f=lambda d: d["strokes"][2].update(box=[1, 2])), "stroke 2: 'box' must be a list of 3"),
    (_edited(f=lambda d: d["strokes"][0]["action"].__setitem__(3, "x")), r"action\[3\]"),
    (_edited(f=lambda d: d["strokes"][0]["action"].__setitem__(4, 1.5)), "outside"),
    (_edited(f=lambda d: d["strokes"][0]["box"].__setitem__(2, -4.0)), "stroke 0: box side -4 px is below"),
    (_edited(f=lambda d: d["strokes"].pop()), "truncated"),
    (_edited(f=lambda d: d.update(layout="no-such-layout")), "layout"),
    (_edited(f=lambda d: d.update(blend="multiply")), "blend"),
])
def test_bad_stroke_files_are_refused_clearly(tmp_path, content, message):
    with pytest.raises(StrokeFileError, match=message):
        load_strokes(_write(tmp_path, content))


def test_non_finite_numbers_and_missing_or_binary_files(tmp_path):
    text = json.dumps(strokes_to_json(_strokes(2, seed=5)))
    bad = text.replace(str(json.loads(text)["strokes"][1]["action"][0]), "NaN", 1)
    with pytest.raises(StrokeFileError, match="NaN"):
        load_strokes(_write(tmp_path, bad))
    with pytest.raises(StrokeFileError, match="Infinity"):
        load_strokes(_write(tmp_path, text.replace('"box": [', '"box": [Infinity, ', 1)))
    with pytest.raises(StrokeFileError, match="does not exist"):
        load_strokes(str(tmp_path / "missing.json"))
    (tmp_path / "img.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(StrokeFileError, match="not (a text file|valid JSON)"):
        load_strokes(str(tmp_path / "img.json"))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_strokes(str(path), _strokes(3))
    before = path.read_bytes()

    def broken(*_):
        raise RuntimeError("disk full")
    monkeypatch.setattr(sf, "_json_text", broken)
    with pytest.raises(RuntimeError):
        save_strokes(str(path), _strokes(4))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["s.json"]


# -- SVG ----------------------------------------------------------------------------------------

# -- time-lapse ---------------------------------------------------------------------------------

class DiscRenderer:
    """A simple opaque renderer: each stroke a disc of its colour at its box centre, radius side/3,
    painted in order over the background (a colour, or the image the previous call returned)."""

    def __init__(self):
        self.strokes_rendered = 0

    def __call__(self, strokes, background):
        h, w = strokes.canvas_size
        if background is None or isinstance(background, tuple):
            bg = torch.tensor(background or strokes.background).view(3, 1, 1).expand(3, h, w)
        else:
            bg = torch.as_tensor(background).reshape(3, h, w)
        canvas = bg.clone().float()
        yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        rgb = strokes.actions[:, NAKANO.indices("red", "green", "blue")]
        for (cx, cy, side), c in zip(strokes.boxes.tolist(), rgb):
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= (side / 3) ** 2
            canvas[:, inside] = c[:, None]
        self.strokes_rendered += len(strokes)
        return canvas[None]


def test_frame_counts():
    assert frame_counts(10, 4) == [0, 3, 7, 10]
    assert frame_counts(5, 50) == [0, 1, 2, 3, 4, 5]
    assert frame_counts(7, 1) == [7] and frame_counts(0, 10) == [0]
    with pytest.raises(ValueError):
        frame_counts(5, 0)


def test_timelapse_frames_are_incremental_and_end_at_the_painting():
    s = _strokes(40, (48, 64), seed=9, background=(0.95, 0.9, 0.8))
    r = DiscRenderer()
    frames = timelapse_frames(r, s, n_frames=9)
    assert frames.shape == (9, 48, 64, 3) and frames.dtype == np.uint8
    assert r.strokes_rendered == len(s)                  # incremental: every stroke rendered once
    bg = np.round(np.array([0.95, 0.9, 0.8]) * 255).astype(np.uint8)
    assert (frames[0] == bg).all()
    full = DiscRenderer()(s, None)[0].permute(1, 2, 0).numpy()
    assert np.abs(frames[-1].astype(int) - np.round(full * 255)).max() <= 1
    painted = (frames != bg).any(-1)                     # opaque discs: painted pixels only grow
    assert all((painted[k] <= painted[k + 1]).all() for k in range(len(frames) - 1))
    assert painted[1:].sum((1, 2)).tolist() == sorted(painted[1:].sum((1, 2)).tolist())
    slow = timelapse_frames(DiscRenderer(), s, n_frames=9, incremental=False)
    assert np.array_equal(slow, frames)
    small = timelapse_frames(DiscRenderer(), s, n_frames=3, max_side=32)
    assert small.shape == (3, 24, 32, 3)


def test_timelapse_with_a_painter_uses_the_canvas_renderer():
    from painter_models.painting.canvas import render_canvas
    from painter_models.brush.raster import RasterProgram
    painter = RasterProgram(32)
    s = _strokes(8, (40, 56), seed=10, smin=16, smax=32)
    frames = timelapse_frames(painter, s, n_frames=5)
    assert frames.shape == (5, 40, 56, 3)
    assert (frames[0] == 255).all()
    full = render_canvas(painter, s)[0].permute(1, 2, 0).numpy()
    assert np.abs(frames[-1].astype(int) - np.round(full * 255)).max() <= 1
    # a background image for the first frame
    img = np.zeros((40, 56, 3), np.float32)
    img[:, 28:] = 1.0
    framed = timelapse_frames(painter, s, n_frames=2, background=img)
    assert (framed[0][:, :20] == 0).all() and (framed[0][:, 30:] == 255).all()


@pytest.mark.parametrize("ext", ["gif", "webp"])
def test_animations_open_with_the_frame_count(tmp_path, ext):
    frames = timelapse_frames(DiscRenderer(), _strokes(30, (48, 64), seed=11), n_frames=7)
    path = str(tmp_path / f"timelapse.{ext}")
    save_animation(frames, path, fps=10, loop=0, hold_last=0.5)
    with Image.open(path) as im:
        assert im.format == ext.upper() and im.is_animated and im.n_frames == 7
        assert im.size == (64, 48) and im.info.get("loop") == 0
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            im.load()
            durations.append(im.info["duration"])
            if k == 0 and ext == "webp":
                got = np.asarray(im.convert("RGB"), int)
                assert np.abs(got - frames[0]).mean() < 3
    assert durations[0] == 100 and durations[-1] == 600
    assert [p for p in os.listdir(tmp_path)] == [f"timelapse.{ext}"]
    with pytest.raises(ValueError, match=".gif or .webp"):
        save_animation(frames, str(tmp_path / "t.mp4"))


# -- MyPaint re-render --------------------------------------------------------------------------

@pytest.mark.mypaint
@skip_no_mypaint
def test_rerender_single_stroke_matches_mypaint_program(dry_brush):
    a = NAKANO.sample(6, seed=12)
    for i in range(len(a)):
        s = StrokeSet(a[i:i + 1], [[32.0, 32.0, 64.0]], (64, 64))
        got = rerender_mypaint(s, scale=1.0, dtype=np.float32)
        want = dry_brush.render_rgb(a[i:i + 1])[0]
        assert got.shape == (64, 64, 3)
        assert np.abs(got - want).max() <= 1.5 / 255


@pytest.mark.mypaint
@skip_no_mypaint
def test_mypaint_canvas_transparent_matches_program_exactly(dry_brush):
    from painter_models.brush.mypaint import MyPaintCanvas
    a = NAKANO.sample(5, seed=13)
    want = dry_brush.render(a)
    with MyPaintCanvas(64, 64) as canvas:
        for i in range(len(a)):
            canvas.fill(None)
            canvas.paint(a[i:i + 1], [[32.0, 32.0, 64.0]])
            got = np.round(canvas.read_rgba() * 255).astype(np.uint8)
            assert np.array_equal(got, want[i])


@pytest.mark.mypaint
@skip_no_mypaint
def test_rerender_scales_consistently_and_is_deterministic():
    s = _strokes(30, (96, 128), seed=14, smin=16, smax=64)
    r1 = rerender_mypaint(s, scale=1.0, dtype=np.float32)
    r2 = rerender_mypaint(s, scale=2.0, dtype=np.float32)
    assert r1.shape == (96, 128, 3) and r2.shape == (192, 256, 3)
    down = r2.reshape(96, 2, 128, 2, 3).mean((1, 3))
    assert np.abs(down - r1).mean() < 0.025
    assert (np.abs(r1 - 1.0).max(-1) > 0.05).mean() > 0.2        # it did paint something
    assert np.array_equal(rerender_mypaint(s, scale=1.0, dtype=np.float32), r1)
    # uint8 by default, and the same painting
    r8 = rerender_mypaint(s, scale=1.0)
    assert r8.dtype == np.uint8 and np.abs(r8.astype(np.float32) / 255 - r1).max() <= 0.5 / 255 + 1e-6


@pytest.mark.mypaint
@skip_no_mypaint
def test_rerender_at_4x_is_sharp():
    s = _strokes(40, (128, 128), seed=4, smin=16, smax=64)
    r1 = rerender_mypaint(s, 1.0)
    r4 = rerender_mypaint(s, 4.0).astype(np.float32) / 255
    up = np.asarray(Image.fromarray(r1).resize((512, 512), Image.BICUBIC), np.float32) / 255

    def high_frequency_share(img):
        g = img.mean(-1) - img.mean()
        power = np.abs(np.fft.fft2(g)) ** 2
        f = np.fft.fftfreq(g.shape[0])
        return power[np.hypot(f[:, None], f[None, :]) > 0.125].sum() / power.sum()
    # detail beyond what the 128 px painting holds: the brush's texture, rendered natively
    assert high_frequency_share(r4) > 1.8 * high_frequency_share(up)


@pytest.mark.mypaint
@skip_no_mypaint
def test_rerender_background_brush_override_and_refusals():
    s = _strokes(10, (64, 64), seed=15, brush="raster:soft_round")
    with pytest.raises(ValueError, match="brush='classic/dry_brush'"):
        rerender_mypaint(s, scale=1.0)
    img = np.zeros((128, 128, 3), np.float32)
    img[:, 64:] = 1.0
    out = rerender_mypaint(s, scale=2.0, brush="mypaint:classic/dry_brush", background=img)
    untouched = (np.abs(out.astype(int) - np.round(img * 255)).max(-1) == 0)
    assert untouched.mean() > 0.3 and not untouched.all()
    with pytest.raises(ValueError, match="scale"):
        rerender_mypaint(s, scale=0, brush="classic/dry_brush")
    from painter_models.brush.mypaint import MyPaintUnavailable
    with pytest.raises(MyPaintUnavailable, match="unknown brush preset"):
        rerender_mypaint(s, scale=1.0, brush="classic/no_such_brush")


def test_rerender_without_libmypaint_says_what_to_install(monkeypatch):
    from painter_models.brush.mypaint import MyPaintUnavailable, library
    monkeypatch.setattr(library, "_library_candidates", lambda: iter(["/nonexistent/libmypaint-1.5.so.1"]))
    library.load_library.cache_clear()
    try:
        with pytest.raises(MyPaintUnavailable, match="apt-get install"):
            rerender_mypaint(_strokes(2), scale=1.0)
    finally:
        monkeypatch.undo()
        library.load_library.cache_clear()


@pytest.mark.mypaint
@skip_no_mypaint
def test_mypaint_timelapse_ends_at_the_rerender():
    s = _strokes(20, (64, 96), seed=16)
    frames = timelapse_frames("mypaint", s, n_frames=5)
    assert frames.shape == (5, 64, 96, 3) and (frames[0] == 255).all()
    assert np.array_equal(frames[-1], rerender_mypaint(s, scale=1.0))


@pytest.mark.slow
@pytest.mark.mypaint
@skip_no_mypaint
def test_rerender_500_strokes_at_2048_px():
    """A 512 px painting of 500 strokes (boxes 24-160 px, coarse to fine) re-rendered at 4x."""
    s = _strokes(500, (512, 512), seed=17, smin=24, smax=160)
    t = time.perf_counter()
    out = rerender_mypaint(s, scale=4.0)
    elapsed = time.perf_counter() - t
    print(f"re-rendered 500 strokes at 2048 px in {elapsed:.1f} s")
    assert out.shape == (2048, 2048, 3) and out.dtype == np.uint8
    assert elapsed < 120


@skip_no_mypaint
def test_rerender_brush_seed_changes_texture_not_the_painting():
    s = _strokes(6)
    a = rerender_mypaint(s, scale=1.0, dtype=np.float32)
    assert np.array_equal(a, rerender_mypaint(s, scale=1.0, dtype=np.float32, brush_seed=0))
    b = rerender_mypaint(s, scale=1.0, dtype=np.float32, brush_seed=1)
    assert not np.array_equal(a, b)
    assert abs(float(a.mean()) - float(b.mean())) < 0.02   # same strokes, other texture


# -- untrusted stroke files: limits, names, no local paths -------------------------------------------

@pytest.mark.parametrize("box, message", [
    ([5e8, 32, 16], "stroke 0: box centre x = 5e\\+08 px is too far from the 128 px wide canvas"),
    ([32, 32, 1e7], "stroke 0: box side 1e\\+07 px is more than 4x the canvas's longer side"),
])
def test_stroke_files_beyond_the_limits_are_refused(tmp_path, box, message):
    doc = strokes_to_json(_strokes(1))
    doc["strokes"][0]["box"] = box
    with pytest.raises(StrokeFileError, match=message):
        load_strokes(_write(tmp_path, doc))


def test_stroke_count_and_file_size_are_checked_before_the_work(tmp_path, monkeypatch):
    path = _write(tmp_path, strokes_to_json(_strokes(5)))
    monkeypatch.setattr(sf, "MAX_STROKES", 4)
    with pytest.raises(StrokeFileError, match="holds 5 strokes, more than the 4 a painting may have: split it"):
        load_strokes(path)
    monkeypatch.setattr(sf, "MAX_STROKES", 5)
    assert len(load_strokes(path)) == 5
    monkeypatch.setattr(sf, "MAX_STROKE_FILE_BYTES", os.path.getsize(path) - 1)
    monkeypatch.setattr(sf.json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(StrokeFileError, match="stroke files may be at most"):
        load_strokes(path)


def test_deeply_nested_json_is_a_clear_refusal(tmp_path):
    with pytest.raises(StrokeFileError, match="nests JSON too deeply to be a stroke file"):
        load_strokes(_write(tmp_path, "[" * 100_000 + "]" * 100_000))


def test_messages_name_the_file_as_the_caller_names_it(tmp_path):
    path = _write(tmp_path, "not json")
    with pytest.raises(StrokeFileError) as e:
        load_strokes(path, name="mine.json")
    assert "'mine.json' is not valid JSON" in str(e.value) and str(tmp_path) not in str(e.value)
    with pytest.raises(StrokeFileError, match="stroke file 'gone.json' does not exist"):
        load_strokes(str(tmp_path / "gone.json"), name="gone.json")


def test_saved_provenance_keeps_file_names_not_local_paths(tmp_path):
    s = _strokes(2, extra={"painter": "/home/someone/models/neural_painters/mine.safetensors", "note": "a/b", "n": 3})
    doc = strokes_to_json(s)
    assert doc["extra"] == {"painter": "mine.safetensors", "note": "a/b", "n": 3}
