"""Runs untrusted-input cases in a process of its own, for tests/test_fuzz.py.

One JSON case per line on stdin, one JSON result per line on stdout:
  {"outcome": "ok" | "refused" | "bug", "message": ..., "seconds": ...}
"refused" is a user error (a ValueError such as StrokeFileError or CheckpointError, or
MyPaintUnavailable); any other exception is a "bug" (its traceback is the message). A native crash
(libmypaint's assertions, a segfault) kills this process: the test sees it die in the middle of a
case and fails that case, and pytest itself lives on.

Case kinds (every field but "kind" optional, with the defaults below):
  stroke_file   {"text": file content, "scale": re-render scale}: load_strokes, render it with the
                torch rasteriser, re-render it with MyPaint (when installed), save and load it again
  mypaint_paths {"width", "height", "start": [N, 2], "path": [N, P, 2], "log_radius": [N]}: paint
                that geometry straight onto a MyPaintCanvas (no StrokeSet in front of it)
  painter_file  {"base64": a safetensors file}: load_painter, then render a stroke with it
  png           {"base64": PNG bytes}: png16.decode_rgb
  mypaint_seed  {"brush_seed": int}: a MyPaintProgram with that brush seed renders one stroke
"""
from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

torch.set_num_threads(1)


def _mypaint_available() -> bool:
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library, resolve_brush
    try:
        load_library()
        resolve_brush("classic/dry_brush")
    except MyPaintUnavailable:
        return False
    return True


MYPAINT = _mypaint_available()


def stroke_file(case, folder):
    from painter_models import RasterProgram
    from painter_models.painting.canvas import render_canvas
    from painter_models.brush.rerender import rerender_mypaint
    from painter_models.export.stroke_file import load_strokes, save_strokes
    path = os.path.join(folder, "case.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(case.get("text", ""))
    strokes = load_strokes(path, name="case.json")
    image = render_canvas(RasterProgram(16), strokes)
    assert image.shape[-2:] == strokes.canvas_size and torch.isfinite(image).all()
    if MYPAINT:
        rerender_mypaint(strokes, case.get("scale", 1.0), brush="classic/dry_brush")
    save_strokes(path, strokes)
    again = load_strokes(path)
    assert torch.equal(again.boxes, strokes.boxes) and torch.equal(again.actions, strokes.actions)


def mypaint_paths(case, folder):
    from painter_models.brush.mypaint import MyPaintCanvas
    path = np.asarray(case.get("path", [[[10.0, 10.0], [20.0, 20.0]]]), np.float64)
    n = len(path)
    start = case.get("start", path[:, 0] if n else np.zeros((0, 2)))
    log_radius = case.get("log_radius", [1.0] * n)
    with MyPaintCanvas(case.get("width", 64), case.get("height", 64), background=(1.0, 1.0, 1.0)) as canvas:
        canvas.paint_paths(start, path, np.full(path.shape[:2], 0.5), log_radius, np.full((n, 3), 0.2))
        assert np.isfinite(canvas.read_rgb()).all()


def painter_file(case, folder):
    from painter_models import NAKANO, load_painter
    from painter_models.painting.canvas import render
    path = os.path.join(folder, "painter.safetensors")
    with open(path, "wb") as f:
        f.write(base64.b64decode(case["base64"]))
    painter = load_painter(path)
    image = render(painter, torch.from_numpy(NAKANO.sample(1, seed=0)), torch.tensor([[32.0, 32.0, 32.0]]), (64, 64))
    assert torch.isfinite(image).all()


def png(case, folder):
    from painter_models.export.png16 import decode_rgb
    image = decode_rgb(base64.b64decode(case["base64"]))
    assert image.ndim == 3 and image.shape[2] == 3 and np.isfinite(image).all()


def mypaint_seed(case, folder):
    from painter_models import NAKANO, MyPaintProgram
    with MyPaintProgram("classic/dry_brush", 64, brush_seed=case["brush_seed"]) as program:
        program.render(NAKANO.sample(1, seed=0))


KINDS = {f.__name__: f for f in (stroke_file, mypaint_paths, painter_file, png, mypaint_seed)}


def run(case: dict) -> dict:
    from painter_models.brush.mypaint import MyPaintUnavailable
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as folder:
            KINDS[case["kind"]](case, folder)
        outcome, message = "ok", ""
    except (ValueError, MyPaintUnavailable) as e:
        outcome, message = "refused", f"{type(e).__name__}: {e}"
    except Exception:  # noqa: BLE001 - anything else is a bug, reported with its traceback
        outcome, message = "bug", traceback.format_exc()
    return {"outcome": outcome, "message": message[:2000], "seconds": round(time.perf_counter() - t0, 3)}


def main():
    print(json.dumps({"ready": True, "mypaint": MYPAINT}), flush=True)
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
