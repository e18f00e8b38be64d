"""`neural-painters paint` end to end on a small image, and its input validation."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from painter_models import load_painter
from painter_models.painting.canvas import render_canvas
from painter_models.brush.rerender import rerender_mypaint
from painter_models.export.stroke_file import load_strokes
from painter_models.cli.paint import main
from painter_models.painter.shipped import PainterNotFound, find_painter


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def photo(tmp_path):
    y, x = np.mgrid[0:30, 0:40]
    img = np.stack([200 - 3 * y, 120 + 2 * x, 80 + x + y], -1).astype(np.uint8)
    img[8:20, 10:22] = (20, 30, 40)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return str(path)


def run(args, capsys):
    """Exit status and stderr of the CLI; argparse's own refusals exit with the same status 2."""
    try:
        rc = main(["paint", *args])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.err


def test_paint_image_end_to_end(tmp_path, photo, tmp_painter, capsys):
    out = tmp_path / "painting.png"
    js, svg, gif = tmp_path / "s.json", tmp_path / "s.svg", tmp_path / "t.gif"
    snaps = tmp_path / "snaps"
    rc, err = run([photo, "--painter", tmp_painter, "--strokes", "8", "--size", "32", "--steps", "6",
                   "--rounds", "2", "--out", str(out), "--json", str(js), "--svg", str(svg), "--frames", str(gif),
                   "--frame-count", "4", "--snapshots", str(snaps), "--snapshot-every", "3", "--seed", "1",
                   "--palette", "3", "--opaque"], capsys)
    assert rc == 0, err
    assert "8 strokes" in err and "PSNR" in err and "painted by mypaint:classic/dry_brush" in err
    img = Image.open(out)
    assert img.size == (32, 24)                          # long side 32, aspect of the 40x30 photo kept
    strokes = load_strokes(str(js))
    assert len(strokes) == 8 and strokes.canvas_size == (24, 32)
    assert len(strokes.extra["palette"]) == 3
    # the JSON re-renders with MyPaint to the painting, bit for bit
    assert np.array_equal(rerender_mypaint(strokes, 1.0), np.asarray(img))
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    # the time-lapse is the real brush's too: it ends on the painting
    timelapse = Image.open(gif)
    assert timelapse.n_frames >= 2
    timelapse.seek(timelapse.n_frames - 1)
    last = np.asarray(timelapse.convert("RGB"), np.float32)
    assert np.abs(last - np.asarray(img, np.float32)).mean() < 3     # a 256-colour GIF of it
    assert sorted(os.listdir(snaps))[:2] == ["step_00003.png", "step_00006.png"]


def test_no_real_brush_paints_the_painters_canvas(tmp_path, photo, tmp_painter, capsys):
    out, js = tmp_path / "painting.png", tmp_path / "s.json"
    rc, err = run([photo, "--painter", tmp_painter, "--strokes", "6", "--size", "32", "--steps", "4",
                   "--rounds", "2", "--out", str(out), "--json", str(js), "--no-real-brush"], capsys)
    assert rc == 0, err
    assert "painted by neural painter (real brush switched off" in err
    again = render_canvas(load_painter(tmp_painter), load_strokes(str(js)))
    saved = torch.from_numpy(np.asarray(Image.open(out), np.float32) / 255).permute(2, 0, 1)[None]
    assert (again - saved).abs().max() <= 1.0 / 255 + 1e-6


def test_without_libmypaint_the_cli_says_the_painter_painted_and_why(tmp_path, photo, tmp_painter, capsys,
                                                                     monkeypatch):
    """What a user without libmypaint gets (here: the environment variable names a library that is not there):
    a painting by the neural painter, and the CLI says so and why."""
    from painter_models.brush.mypaint import library
    monkeypatch.setenv("NEURAL_PAINTERS_LIBMYPAINT", str(tmp_path / "missing" / "libmypaint-1.5.1.dylib"))
    library.load_library.cache_clear()
    try:
        rc, err = run([photo, "--painter", tmp_painter, "--strokes", "4", "--size", "32", "--steps", "2",
                       "--rounds", "1", "--out", str(tmp_path / "p.png")], capsys)
    finally:
        monkeypatch.undo()
        library.load_library.cache_clear()
    assert rc == 0, err
    assert "painted by neural painter (no real brush (libmypaint was not found" in err
    assert "NEURAL_PAINTERS_LIBMYPAINT" in err


def test_progress_bar_and_quiet(tmp_path, photo, tmp_painter, capsys):
    rc, err = run([photo, "--painter", tmp_painter, "--strokes", "2", "--size", "16", "--steps", "2",
                   "--rounds", "1", "--out", str(tmp_path / "a.png")], capsys)
    assert rc == 0 and "step" in err                     # tqdm writes to stderr
    rc, err = run([photo, "--painter", tmp_painter, "--strokes", "2", "--size", "16", "--steps", "2",
                   "--rounds", "1", "--out", str(tmp_path / "b.png"), "--quiet"], capsys)
    assert rc == 0 and err == ""


@pytest.mark.parametrize("args, message", [
    (["missing.png"], "does not exist"),
    ([], "give an IMAGE"),
    (["--prompt", "  "], "--prompt is empty"),
    (["--prompt", "black sheep"], "needs CLIP weights"),
    (["{photo}", "--palette", "#12345"], "--palette"),
    (["{photo}", "--palette", "0"], "1..256"),
    (["{photo}", "--out", "x.bmp"], ".png"),
    (["{photo}", "--json", "x.txt"], ".json"),
    (["{photo}", "--out", "/no/such/dir/p.png"], "does not exist"),
    (["{photo}", "--min-size", "40", "--max-size", "10"], "min_stroke_size 40 is larger than max_stroke_size 10"),
    (["{photo}", "--background", "blue"], "--background"),
    (["{photo}", "--painter", "no_such_painter"], "neither a file nor a shipped painter"),
    (["{photo}", "--device", "cuda:7"], "CUDA is not available"),
])
def test_clear_errors(args, message, photo, tmp_painter, capsys, tmp_path, monkeypatch):
    if message == "CUDA is not available" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{photo}", photo) for a in args]
    if "--painter" not in args:
        args += ["--painter", tmp_painter]
    rc, err = run(args, capsys)
    assert rc == 2 and message in err, err
    assert "Traceback" not in err


def test_argument_ranges(capsys):
    for args in (["x.png", "--strokes", "-1"], ["x.png", "--size", "100000"], ["x.png", "--steps", "-3"],
                 ["x.png", "--strokes", "many"], ["x.png", "--learning-rate", "nan"]):
        with pytest.raises(SystemExit) as e:
            main(["paint", *args])
        assert e.value.code == 2
    err = capsys.readouterr().err
    # the settings' own messages (painting/settings.py), as paint() and the node give them
    assert "strokes must be a whole number in 0..20000, got '-1'" in err
    assert "size must be a whole number in 16..8192" in err and "learning_rate must be a number" in err


def test_nothing_to_paint(photo, tmp_painter, capsys):
    rc, err = run([photo, "--strokes", "0", "--painter", tmp_painter], capsys)
    assert rc == 2 and "nothing to paint" in err


def test_argument_errors_print_one_usage_line(capsys):
    with pytest.raises(SystemExit):
        main(["paint", "x.png", "--size", "5"])
    err = capsys.readouterr().err.splitlines()
    assert err == ["usage: neural-painters paint [options] [image]",
                   "neural-painters paint: error: argument --size/-s: size must be a whole number in 16..8192, "
                   "got '5'",
                   "(all options: neural-painters paint --help)"]


def test_not_an_image(tmp_path, tmp_painter, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    rc, err = run([str(bad), "--painter", tmp_painter], capsys)
    assert rc == 2 and "cannot read" in err


def test_missing_clip_weights_fail_fast(tmp_path, photo, tmp_painter, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc, err = run(["--prompt", "a black sheep", "--clip-weights", str(tmp_path / "nope.safetensors"),
                   "--painter", tmp_painter], capsys)
    assert rc == 2 and "--clip-weights" in err
    rc, err = run(["--prompt", "a black sheep", "--clip-weights", "openai", "--painter", tmp_painter], capsys)
    assert rc == 2 and "CLIP weights" in err


def test_painter_resolution(tmp_painter):
    assert find_painter(tmp_painter) == tmp_painter
    with pytest.raises(PainterNotFound, match="shipped"):
        find_painter("surely_not_a_painter")


@pytest.mark.slow
def test_text_mode_with_random_clip(tmp_path, tmp_painter, capsys):
    """Text mode end to end with random CLIP weights (the path, not the quality)."""
    out = tmp_path / "sheep.png"
    rc, err = run(["--prompt", "a black sheep", "--clip-weights", "random", "--painter", tmp_painter,
                   "--strokes", "3", "--size", "32", "--steps", "2", "--rounds", "1", "--cutouts", "1",
                   "--out", str(out), "--quiet"], capsys)
    assert rc == 0, err
    assert Image.open(out).size == (32, 32)


def test_feature_loss_through_the_offline_backbone(tmp_path, photo, tmp_painter, capsys):
    rc, err = run([photo, "--painter", tmp_painter, "--strokes", "3", "--size", "32", "--steps", "2",
                   "--rounds", "1", "--feature-weight", "0.02", "--out", str(tmp_path / "f.png"), "--quiet"], capsys)
    assert rc == 0, err
    rc, err = run([photo, "--painter", tmp_painter, "--feature-weight", "0.02", "--backbone", "vgg16",
                   "--backbone-weights", str(tmp_path / "missing_vgg16.pth"), "--out", str(tmp_path / "g.png")], capsys)
    assert rc == 2 and "--backbone vgg16" in err and "Traceback" not in err


def test_ctrl_c_saves_the_painting_so_far(tmp_path, photo, tmp_painter):
    """Ctrl-C (SIGINT) during a long painting: the painting and strokes so far are written, exit 0."""
    import signal
    import subprocess
    import sys
    import time
    out, js = tmp_path / "stopped.png", tmp_path / "stopped.json"
    code = ("import sys; from painter_models.cli.paint import main; sys.exit(main(sys.argv[1:]))")
    args = [sys.executable, "-c", code, "paint", photo, "--painter", tmp_painter, "--strokes", "6", "--size", "48",
            "--steps", "100000", "--rounds", "1", "--no-real-brush", "--threads", "1", "--out", str(out),
            "--json", str(js)]
    # Ctrl-C as in a terminal: a suite started in the background (`cmd &` in a script) passes SIGINT on ignored
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    deadline = time.monotonic() + 120
    while "%|" not in seen and time.monotonic() < deadline:     # the progress bar: painting has begun
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        err = seen + proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        proc.kill()          # not left painting its 100000 steps beside the rest of the suite
        tail = (seen + proc.communicate()[1]).replace("\r", "\n")[-3000:]
        pytest.fail(f"the CLI did not stop within 60 s of SIGINT; its stderr ends:\n{tail}")
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted: saving the painting so far" in err
    assert Image.open(out).size == (48, 36) and len(load_strokes(str(js))) == 6


def test_the_flags_are_the_painting_settings(capsys):
    """Every settings field with a flag is one (a clip's own on paint-video only), with the field's declared
    default, shown in --help."""
    import dataclasses
    from painter_models.cli.paint import build_parser
    from painter_models.painting.settings import CLIP_SETTINGS, PaintSettings
    for command, extra in (("paint", ["photo.png"]), ("paint-video", ["clip.mp4", "--out", "painted.mp4"])):
        args = build_parser().parse_args([command, *extra])
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        for f in dataclasses.fields(PaintSettings):
            if not f.metadata["flags"] or (command == "paint" and f.name in CLIP_SETTINGS):
                assert not hasattr(args, f.name), f"{f.name} is not a flag of {command}"
                continue
            assert getattr(args, f.name) == f.default, f.name
            shown = ("on" if f.default else "off") if isinstance(f.default, bool) else \
                (f"'{f.default}'" if isinstance(f.default, str) else f"{f.default:g}")
            assert f"{f.metadata['flags'][0]}" in help_text and f"(default: {shown})" in help_text, f.name
