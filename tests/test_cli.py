"""neural-painters-strokes: a grid of real strokes, and a painter's version beside them with PSNR."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from painter_models import NAKANO, RasterProgram
from painter_models.cli.strokes import BORDER, GAP, HEADER, PAIR_GAP, main, strokes_main

from conftest import skip_no_mypaint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cell(png, index, columns, size, scale, pair=0, paired=False, title=True):
    """The stroke at `index` (and `pair` 0 = real, 1 = generated) cropped from a grid, downscaled to size."""
    img = np.asarray(Image.open(png).convert("RGB"))
    c = size * scale
    pair_w = c * (2 if paired else 1) + (GAP if paired else 0)
    top = (HEADER if title else 0) + (HEADER if paired else 0) + BORDER
    r, col = divmod(index, columns)
    x = BORDER + col * (pair_w + PAIR_GAP) + pair * (c + GAP)
    y = top + r * (c + PAIR_GAP)
    return img[y:y + c:scale, x:x + c:scale] / 255.0


def test_raster_grid_shows_the_rendered_strokes(tmp_path, capsys):
    out = str(tmp_path / "grid.png")
    assert strokes_main(["--brush", "raster", "--count", "5", "--size", "32", "--columns", "3",
                         "--seed", "7", "--scale", "2", "--out", out]) == 0
    assert "wrote" in capsys.readouterr().out
    assert os.listdir(tmp_path) == ["grid.png"]            # atomic: no temporary file left behind
    im = Image.open(out)
    assert im.size == (2 * BORDER + 3 * 64 + 2 * PAIR_GAP, HEADER + 2 * BORDER + 2 * 64 + PAIR_GAP)
    want = RasterProgram(32).render_rgb(NAKANO.sample(5, seed=7))
    for i in range(5):
        np.testing.assert_allclose(cell(out, i, 3, 32, 2), want[i], atol=1 / 255 + 1e-6)


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    assert strokes_main(["--brush", "raster", "--painter", str(junk), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert strokes_main(["--brush", "raster", "--count", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert "--count" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert main(["nope"]) == 2
    assert main(["--help"]) == 0


def test_painter_size_mismatch_is_refused(tmp_painter, tmp_path, capsys):
    assert strokes_main(["--brush", "raster", "--painter", tmp_painter, "--size", "32",
                         "--out", str(tmp_path / "x.png")]) == 2
    assert "stroke size 64" in capsys.readouterr().err


@skip_no_mypaint
@pytest.mark.mypaint
def test_mypaint_strokes_beside_the_painters(tmp_painter, tmp_path, capsys):
    from painter_models import MyPaintProgram, load_painter
    import torch
    out = str(tmp_path / "pairs.png")
    # the painter's metadata names classic/dry_brush, so no --brush is needed
    assert strokes_main(["--count", "3", "--columns", "2", "--scale", "1", "--painter", tmp_painter, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "PSNR painter vs classic/dry_brush:" in printed and "dB over 3 strokes" in printed
    actions = NAKANO.sample(3, seed=0)
    with MyPaintProgram("classic/dry_brush") as program:
        real = program.render_rgb(actions)
    painter = load_painter(tmp_painter)
    with torch.no_grad():
        colour, alpha = painter(torch.from_numpy(actions))
    fake = (colour * alpha + 1 - alpha).permute(0, 2, 3, 1).numpy()
    for i in range(3):
        np.testing.assert_allclose(cell(out, i, 2, 64, 1, 0, True), real[i], atol=1 / 255 + 1e-6)
        np.testing.assert_allclose(cell(out, i, 2, 64, 1, 1, True), fake[i], atol=1 / 255 + 1e-6)
    mse = ((real - fake) ** 2).mean()
    assert f"{10 * np.log10(1 / mse):.2f} dB over 3" in printed


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    out = tmp_path / "m.png"
    r = subprocess.run([sys.executable, "-m", "painter_models.cli.strokes", "strokes", "--brush", "raster", "--count", "2",
                        "--size", "16", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.exists() and Image.open(out).format == "PNG"
