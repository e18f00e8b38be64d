"""Held-out evaluation of a painter against the painting program it imitates.

Metrics (painter_models.metrics): PSNR of the stroke over white over the whole held-out set
(10 log10(1 / mean squared error of every pixel)), the mean per-stroke PSNR, SSIM (mean per
stroke), alpha IoU (alpha > 0.5, summed intersections / summed unions) and the program's own
repeatability ceiling: the same actions rendered by MyPaint with brush_seed=1 against
brush_seed=0, under the same metrics. And, since PSNR rewards a painter that averages the brush's
random texture away, texture_ratio: the high-frequency energy (what a 3x3 box blur removes) of the
painter's strokes over that of the real strokes (1: as much fine texture as the brush; below 1:
smoother; it measures the amount of texture, not its placement, which MyPaint itself does not repeat).
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from painter_models.metrics import (iou_counts, iou_from_counts, mse, over_white, psnr_of_mse, rgba_to_tensors,
                                    ssim)

IOU_THRESHOLD = 0.5
PER_STROKE_PSNR_CAP = 100.0  # identical strokes give inf; the mean per stroke caps them here


def high_frequency_energy(rgb: torch.Tensor) -> torch.Tensor:
    """Per stroke: the squared difference between the stroke and its 3x3 box blur, summed."""
    rgb = rgb.float()
    return (rgb - F.avg_pool2d(rgb, 3, 1, 1, count_include_pad=False)).pow(2).sum((1, 2, 3))


def _result(acc) -> dict:
    out = {"psnr": float(psnr_of_mse(acc["sq"] / acc["pixels"])),
           "psnr_per_stroke": float(np.mean(acc["per"])),
           "alpha_iou": float(iou_from_counts(acc["inter"], acc["union"])),
           "texture_ratio": acc["hf_pred"] / max(acc["hf_true"], 1e-12)}
    if acc["ssim"]:
        out["ssim"] = float(np.mean(acc["ssim"]))
    return out


def compare_strokes(pred_rgb, pred_alpha, true_rgb, true_alpha, acc):
    m = mse(pred_rgb, true_rgb)
    acc["sq"] += float(m.double().sum()) * pred_rgb[0].numel()
    acc["pixels"] += pred_rgb.numel()
    acc["per"] += psnr_of_mse(m.double()).clamp(max=PER_STROKE_PSNR_CAP).tolist()
    if acc["with_ssim"]:
        acc["ssim"] += ssim(pred_rgb.float(), true_rgb.float()).tolist()
    i, u = iou_counts(pred_alpha, true_alpha, IOU_THRESHOLD)
    acc["inter"] += float(i.sum())
    acc["union"] += float(u.sum())
    acc["hf_pred"] += float(high_frequency_energy(pred_rgb).sum())
    acc["hf_true"] += float(high_frequency_energy(true_rgb).sum())


def _acc(with_ssim):
    return {"sq": 0.0, "pixels": 0, "per": [], "ssim": [], "inter": 0.0, "union": 0.0, "hf_pred": 0.0, "hf_true": 0.0,
            "with_ssim": with_ssim}


@torch.no_grad()
def evaluate_generator(generator, actions: np.ndarray, strokes: np.ndarray, device="cpu", batch: int = 256,
                       with_ssim: bool = True) -> dict:
    """Metrics of a generator against rendered strokes (uint8 premultiplied RGBA)."""
    was = generator.training
    generator.eval()
    acc = _acc(with_ssim)
    for i in range(0, len(actions), batch):
        a = torch.from_numpy(np.asarray(actions[i:i + batch], np.float32)).to(device)
        true_rgb, true_alpha = rgba_to_tensors(strokes[i:i + batch], device=device)
        colour, alpha = generator(a)
        colour, alpha = colour.float(), alpha.float()
        compare_strokes(over_white(colour, alpha), alpha, true_rgb, true_alpha, acc)
    generator.train(was)
    return _result(acc)


def repeatability_ceiling(strokes: np.ndarray, strokes_other: np.ndarray, batch: int = 512) -> dict:
    """The same metrics between two renderings of the same actions (brush seeds 0 and 1)."""
    acc = _acc(True)
    for i in range(0, len(strokes), batch):
        r0, a0 = rgba_to_tensors(strokes[i:i + batch])
        r1, a1 = rgba_to_tensors(strokes_other[i:i + batch])
        compare_strokes(r1, a1, r0, a0, acc)
    return _result(acc)


@torch.no_grad()
def grid_rows(generator, actions, strokes, device="cpu", n: int = 16, strokes_other=None):
    a = torch.from_numpy(np.asarray(actions[:n], np.float32)).to(device)
    true_rgb, true_alpha = rgba_to_tensors(strokes[:n])
    was = generator.training
    generator.eval()
    colour, alpha = generator(a)
    generator.train(was)
    rows = [true_rgb, over_white(colour, alpha).float().cpu()]
    if strokes_other is not None:
        rows.insert(1, rgba_to_tensors(strokes_other[:n])[0])
    # alpha as an image: real, generated
    rows += [true_alpha.expand(-1, 3, -1, -1).mul(-1).add(1), alpha.float().cpu().expand(-1, 3, -1, -1).mul(-1).add(1)]
    return rows


def evaluate_painter(painter_path: str, heldout_actions, heldout_strokes, strokes_other=None, out_dir=None,
                     device="cpu", grid_count: int = 16) -> dict:
    """Full held-out evaluation of a painter file; writes metrics.json and grid.png into out_dir."""
    from painter_models.checkpoint import load_painter
    from .common import save_grid

    painter = load_painter(painter_path, device=device)
    metrics = evaluate_generator(painter.generator, heldout_actions, heldout_strokes, device)
    metrics["heldout_count"] = int(len(heldout_actions))
    if strokes_other is not None:
        ceiling = repeatability_ceiling(heldout_strokes, strokes_other)
        metrics.update({f"ceiling_{k}": v for k, v in ceiling.items()})
        metrics["psnr_gap_to_ceiling"] = metrics["ceiling_psnr"] - metrics["psnr"]
    metrics["iou_threshold"] = IOU_THRESHOLD
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        rows = grid_rows(painter.generator, heldout_actions, heldout_strokes, device, grid_count, strokes_other)
        save_grid(os.path.join(out_dir, "grid.png"), rows, scale=3)
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics
