"""What a trained stroke predictor is judged by (training/predictor.py): its paintings of photographs it never
saw at a few stroke counts (PSNR, CPU seconds), a grid of them beside the photographs, and its model card."""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from painter_models.files import atomic_write, write_text
from painter_models.metrics import psnr


def evaluate(predictor, painter, photos: dict, counts) -> tuple[list[dict], list[list[torch.Tensor]]]:
    """(a row per photograph and count: PSNR of the painting, CPU seconds to predict and paint it, what painted
    it; per photograph [photograph, painting at each count] for the grid)."""
    from painter_models.painting.predict import predict_strokes
    rows, paintings = [], []
    for name, photo in photos.items():
        row = [photo]
        for n in counts:
            start = time.process_time()
            result = predict_strokes(predictor, painter, photo, n)
            seconds = time.process_time() - start
            rows.append({"image": name, "strokes": len(result.strokes),
                         "psnr": round(float(psnr(result.canvas, photo)), 2),
                         "cpu_seconds": round(seconds, 2), "painted_by": result.renderer,
                         "size": "x".join(str(s) for s in reversed(photo.shape[-2:])) + " px"})
            row.append(result.canvas)
        paintings.append(row)
    return rows, paintings


def write_grid(path: str, paintings: list[list[torch.Tensor]], pad: int = 4):
    """One row per photograph: the photograph, then its paintings ([1, 3, h, w] each), on grey."""
    if not paintings:
        return
    from PIL import Image
    h = max(t.shape[-2] for row in paintings for t in row)
    w = max(t.shape[-1] for row in paintings for t in row)
    columns = max(len(row) for row in paintings)
    sheet = np.full((len(paintings) * (h + pad) + pad, columns * (w + pad) + pad, 3), 128, np.uint8)
    for r, row in enumerate(paintings):
        for c, image in enumerate(row):
            pixels = (image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            sheet[y:y + pixels.shape[0], x:x + pixels.shape[1]] = pixels
    atomic_write(path, lambda tmp: Image.fromarray(sheet).save(tmp, format="PNG"))


def write_card(path: str, summary: dict, config, grid_name: str | None):
    """The model card: what the predictor is for, how it was trained (the command, the time) and its figures."""
    from dataclasses import asdict
    lines = [f"# Stroke predictor for {summary['painter']}", "",
             "Proposes all of a painting's strokes for a photograph in one pass, coarse to fine "
             "(Predict Strokes, `neural-painters paint --init predict`).", "",
             f"Command: `{summary['command']}`", "",
             f"Trained {summary['steps_done']} steps in {summary['wall_time_s']:.0f} s wall, "
             f"{summary['cpu_time_s']:.0f} s CPU ({summary['hardware'].get('cpu', '?')}, "
             f"{summary['hardware'].get('torch_threads', '?')} threads).", "",
             f"Config: `{json.dumps(asdict(config))}`", ""]
    rows = summary.get("evaluation", [])
    if rows:
        lines += ["## Paintings of the evaluation photographs", "", f"Photographs: {summary['evaluation_photos']}. "
                  f"PSNR of the predicted strokes' painting against the photograph at {rows[0]['size']}; CPU seconds "
                  f"of predicting and painting them (one process).", "",
                  "| image | strokes | PSNR (dB) | CPU s (predict + paint) | painted by |", "|---|---|---|---|---|"]
        lines += [f"| {r['image']} | {r['strokes']} | {r['psnr']:.2f} | {r['cpu_seconds']:.2f} | {r['painted_by']} |"
                  for r in rows]
        lines += ["", f"![photographs and predicted paintings]({grid_name})", "",
                  "Rows: the photograph, then its predicted paintings at each stroke count."]
    else:
        lines += ["No evaluation photographs (pass --eval-images, or install scikit-image for its astronaut and "
                  "coffee)."]
    write_text(path, "\n".join(lines) + "\n")
