"""A painting over a background image: the StrokeSet keeps the image, every renderer paints over
it by default, and the stroke file stores it as a 16-bit PNG that reloads to the same painting."""
from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from painter_models import NAKANO, RasterProgram
from painter_models.export import png16
from painter_models.images import background_canvas
from painter_models.painting.canvas import render_canvas, render_progress
from painter_models.brush.rerender import rerender_mypaint
from painter_models.export.stroke_file import (FORMAT_VERSION, StrokeFileError, load_strokes, save_strokes, strokes_from_json,
                                        strokes_to_json)
from painter_models.export.timelapse import timelapse_frames
from painter_models.export.svg import strokes_to_svg
from painter_models.brush.strokes import StrokeSet

from conftest import need_tool, skip_no_mypaint

HALF_STEP = 0.5 / 65535 + 1e-7     # what the 16-bit PNG keeps of a float image (plus float32 rounding)
SVG_NS, XLINK = "{http://www.w3.org/2000/svg}", "{http://www.w3.org/1999/xlink}"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def painter():
    return RasterProgram(32)


def picture(h=40, w=56) -> torch.Tensor:
    """[3, h, w]: a smooth colour ramp (values between the 8-bit levels) with a dark left third."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.15 + 0.7 * x, 0.9 - 0.6 * y, 0.5 + 0.3 * x * y])
    img[:, :, : w // 3] *= 0.2
    return img


def strokes_over(image: torch.Tensor | None, n=6, seed=0, **kw) -> StrokeSet:
    h, w = (40, 56) if image is None else image.shape[-2:]
    rng = np.random.default_rng(seed)
    boxes = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n), rng.uniform(12, 28, n)], 1)
    return StrokeSet(NAKANO.sample(n, seed=seed), boxes, (h, w), background_image=image, **kw)


# -- the PNG codec ------------------------------------------------------------------------------

def _reference_png16(samples: np.ndarray, colour_type: int, filters: list[int]) -> bytes:
    """A 16-bit PNG with the given row filters, filtered pixel by pixel as the PNG spec words it."""
    h, w, ch = samples.shape
    rows = samples.astype(">u2").reshape(h, w * ch).view(np.uint8).astype(int)
    bpp, out = ch * 2, []
    for y in range(h):
        kind = filters[y % len(filters)]
        line = [kind]
        for x in range(rows.shape[1]):
            a = rows[y, x - bpp] if x >= bpp else 0
            b = rows[y - 1, x] if y else 0
            c = rows[y - 1, x - bpp] if y and x >= bpp else 0
            p = a + b - c
            paeth = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
            pred = [0, a, b, (a + b) // 2, paeth][kind]
            line.append((rows[y, x] - pred) % 256)
        out.append(bytes(line))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (png16.SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(out)))
            + chunk(b"IEND", b""))


def test_png16_keeps_16_bits_and_reads_every_row_filter():
    img = picture(9, 11).permute(1, 2, 0).numpy().astype(np.float64)
    data = png16.encode_rgb16(img)
    assert png16.png_size(data) == (9, 11)
    back = png16.decode_rgb(data)
    assert back.dtype == np.float32 and back.shape == (9, 11, 3)
    assert np.abs(back - img).max() <= HALF_STEP
    with Image.open(io.BytesIO(data)) as im:       # a standard PNG: other programs open it
        assert im.size == (11, 9) and im.format == "PNG"
        assert np.abs(np.asarray(im.convert("RGB")) / 255.0 - img).max() <= 1 / 255 + 1e-6
    u16 = np.random.default_rng(0).integers(0, 65536, (5, 7, 3))
    for filters in ([0], [1], [2], [3], [4], [4, 3, 1, 0, 2]):
        got = png16.decode_rgb(_reference_png16(u16, 2, filters))
        assert np.array_equal(np.round(got * 65535).astype(int), u16), filters
    grey = png16.decode_rgb(_reference_png16(u16[..., :1], 0, [4, 3]))
    assert np.array_equal(np.round(grey * 65535).astype(int), np.repeat(u16[..., :1], 3, -1))
    # 8-bit PNGs go through Pillow
    buf = io.BytesIO()
    Image.fromarray(np.uint8(u16 >> 8)).save(buf, format="PNG")
    assert np.array_equal(np.round(png16.decode_rgb(buf.getvalue()) * 255), u16 >> 8)


# -- the StrokeSet ------------------------------------------------------------------------------

def test_copies_keep_the_image_and_bad_images_are_refused(painter):
    img = picture()
    s = strokes_over(img)
    assert s.backdrop is s.background_image and strokes_over(None).backdrop == (1.0, 1.0, 1.0)
    for copy in (s[:3], s[-1], s.to("cpu"), s.cat(s[:2])):
        assert torch.equal(copy.background_image, img)
    big = s.scaled(2.0)
    assert big.canvas_size == (80, 112) and big.background_image is s.background_image   # resized when rendered
    bare = render_canvas(painter, big[:0])
    assert torch.allclose(bare, background_canvas(img, (80, 112)))
    batched = StrokeSet(s.actions, s.boxes, s.canvas_size, background_image=img[None])
    assert batched.background_image.shape == (3, 40, 56)
    with pytest.raises(ValueError, match=r"\[3, H, W\].*permute"):
        StrokeSet(s.actions, s.boxes, s.canvas_size, background_image=img.permute(1, 2, 0)[None])
    with pytest.raises(ValueError, match="0..1.*clamp"):
        StrokeSet(s.actions, s.boxes, s.canvas_size, background_image=img * 2)
    with pytest.raises(ValueError, match="0..1"):
        StrokeSet(s.actions, s.boxes, s.canvas_size, background_image=torch.full((3, 4, 4), float("nan")))


def test_renderers_paint_over_the_image_by_default(painter):
    img = picture()
    s = strokes_over(img)
    over_image = render_canvas(painter, s)
    assert torch.equal(over_image, render_canvas(painter, s, background=img))
    assert not torch.allclose(over_image, render_canvas(painter, strokes_over(None)), atol=0.1)
    progress = list(render_progress(painter, s, every=4))
    assert torch.equal(progress[0][1], img[None]) and torch.allclose(progress[-1][1], over_image, atol=1e-6)
    frames = timelapse_frames(painter, s, n_frames=3)
    u8 = (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(frames[0], u8)
    assert np.abs(frames[-1].astype(int) - np.round(over_image[0].permute(1, 2, 0).numpy() * 255)).max() <= 1
    seen = []

    def render_fn(strokes, background):     # a render function is handed the image, not None
        seen.append(background)
        return background if len(strokes) == 0 else render_canvas(painter, strokes, background)
    assert np.array_equal(timelapse_frames(render_fn, s, n_frames=3, incremental=False)[-1], frames[-1])
    assert all(torch.equal(b, img[None]) for b in seen)


# -- the stroke file ----------------------------------------------------------------------------

def test_json_round_trip_over_an_image_reproduces_the_painting(tmp_path, painter):
    img = picture()
    s = strokes_over(img, seed=1)
    path = tmp_path / "over_image.json"
    save_strokes(str(path), s)
    doc = json.loads(path.read_text())
    assert doc["format_version"] == FORMAT_VERSION == 1
    entry = doc["background_image"]
    assert (entry["width"], entry["height"], entry["bit_depth"]) == (56, 40, 16)
    assert png16.png_size(base64.b64decode(entry["png_base64"])) == (40, 56)
    r = load_strokes(str(path))
    assert torch.equal(r.actions, s.actions) and torch.equal(r.boxes, s.boxes)
    assert (r.background_image - img).abs().max() <= HALF_STEP
    assert (render_canvas(painter, r) - render_canvas(painter, s)).abs().max() <= HALF_STEP
    save_strokes(str(tmp_path / "again.json"), r)     # exact from the first reload on
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    # a scaled painting is written at its canvas size, stretched as the renderers stretch it
    big = strokes_from_json(strokes_to_json(s.scaled(1.5)))
    assert big.background_image.shape == (3, 60, 84)
    assert (big.background_image - background_canvas(img, (60, 84))[0]).abs().max() <= HALF_STEP
    # files without the key (all files before it) load over the colour
    del doc["background_image"]
    assert strokes_from_json(doc).background_image is None


def _doc_with_image(entry) -> dict:
    doc = strokes_to_json(strokes_over(picture(), n=2))
    doc["background_image"] = entry
    return doc


def _png_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("entry, message", [
    ("iVBORw0KGgo=", "'background_image' must be an object with 'png_base64'"),
    ({"png_base64": "not base64 at all!"}, "png_base64 is not valid base64"),
    ({"png_base64": _png_b64(b"GIF89a not a png")}, "not a readable PNG.*signature"),
    ({"png_base64": _png_b64(png16.encode_rgb16(np.zeros((40, 50, 3))))}, "50x40 px but the canvas is 56x40: resize"),
    ({"png_base64": _png_b64(png16.encode_rgb16(np.zeros((40, 56, 3)))[:-30])}, "not a readable PNG.*truncated"),
])
def test_bad_image_data_is_refused_naming_the_field_and_the_fix(tmp_path, entry, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_doc_with_image(entry)))
    with pytest.raises(StrokeFileError, match=message) as e:
        load_strokes(str(path))
    assert "bad.json" in str(e.value) and "background_image" in str(e.value)
    assert "re-save" in str(e.value) or "resize" in str(e.value) or "delete" in str(e.value)


def test_a_corrupted_image_fails_its_crc():
    data = bytearray(png16.encode_rgb16(picture().permute(1, 2, 0).numpy()))
    data[60] ^= 0xFF        # a byte inside the IDAT chunk
    with pytest.raises(StrokeFileError, match="CRC"):
        strokes_from_json(_doc_with_image({"png_base64": _png_b64(bytes(data))}), "painting.json")


# -- painting, SVG, MyPaint -----------------------------------------------------------------------

def test_paint_over_an_image_round_trips_through_json(tmp_path):
    from painter_models.objectives.losses import PixelLoss
    from painter_models.painting.optimize import paint
    painter = RasterProgram(16)
    img = picture(32, 32)
    target = img.flip(-1)[None]
    result = paint(painter, PixelLoss(target), 32, strokes=6, rounds=1, steps=3, seed=0, backdrop=img[None],
                   min_stroke_size=10, max_stroke_size=20)
    s = result.strokes
    assert s.background_image is not None and s.background_image.shape == (3, 32, 32)
    assert s.background == (1.0, 1.0, 1.0) and "background" not in s.extra
    assert (render_canvas(painter, s) - result.canvas).abs().max() < 1e-5
    save_strokes(str(tmp_path / "p.json"), s)
    r = load_strokes(str(tmp_path / "p.json"))
    assert (render_canvas(painter, r) - result.canvas).abs().max() < 1e-5 + HALF_STEP
    over_colour = paint(painter, PixelLoss(target), 32, strokes=2, rounds=1, steps=1,
                        backdrop=(0.2, 0.3, 0.4))
    assert over_colour.strokes.background_image is None
    assert over_colour.strokes.background == pytest.approx((0.2, 0.3, 0.4))


def test_svg_embeds_the_image_under_the_strokes(tmp_path):
    img = picture()
    s = strokes_over(img)
    root = ET.fromstring(strokes_to_svg(s).encode())
    children = [c.tag.replace(SVG_NS, "") for c in root]
    assert children.index("rect") < children.index("image") < children.index("g")
    node = root.find(f"{SVG_NS}image")
    assert (node.get("width"), node.get("height"), node.get("preserveAspectRatio")) == ("56", "40", "none")
    href = node.get(f"{XLINK}href")
    assert href.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))) as im:
        embedded = np.asarray(im.convert("RGB")) / 255.0
    assert np.abs(embedded - img.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    assert "<image" not in strokes_to_svg(strokes_over(None))
    tool = need_tool("rsvg-convert", "librsvg2-bin")   # a real SVG renderer shows the image where no stroke is
    (tmp_path / "bare.svg").write_text(strokes_to_svg(s[:0]))
    subprocess.run([tool, str(tmp_path / "bare.svg"), "-o", str(tmp_path / "bare.png")], check=True)
    shown = np.asarray(Image.open(tmp_path / "bare.png").convert("RGB")).astype(int)
    assert np.abs(shown - np.round(img.permute(1, 2, 0).numpy() * 255)).max() <= 2


@pytest.mark.mypaint
@skip_no_mypaint
def test_mypaint_rerender_and_timelapse_default_to_the_image():
    img = picture()
    s = strokes_over(img, n=4, seed=2, brush="classic/dry_brush")
    out = rerender_mypaint(s, scale=2.0)
    expected = np.round(background_canvas(img, (80, 112))[0].permute(1, 2, 0).numpy() * 255).astype(int)
    untouched = np.abs(out.astype(int) - expected).max(-1) <= 1
    assert 0.3 < untouched.mean() < 1.0           # the image shows between the strokes
    over_white = rerender_mypaint(s, scale=2.0, background=(1.0, 1.0, 1.0))
    assert (over_white[:, :30] == 255).all(-1).mean() > 0.3 and (out[:, :30] < 100).all(-1).mean() > 0.3
    frames = timelapse_frames("mypaint", s, n_frames=2)
    assert np.abs(frames[0].astype(int) - np.round(img.permute(1, 2, 0).numpy() * 255)).max() <= 1


def test_decoding_a_16_bit_png_can_be_cancelled():
    u16 = (np.random.default_rng(3).random((8, 700, 3)) * 65535).astype(np.uint16)
    data = _reference_png16(u16, 2, [4, 3])
    calls = []
    assert np.array_equal(np.round(png16.decode_rgb(data, lambda: calls.append(1)) * 65535), u16)
    assert len(calls) >= 3, "checked while the diagonals are decoded"

    class Cancel(Exception):
        pass

    def cancel():
        raise Cancel
    with pytest.raises(Cancel):
        png16.decode_rgb(data, cancel)
