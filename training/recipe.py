"""The whole recipe for one brush (`neural-painters-train recipe`) and the comparison with pure
adversarial training from scratch (`neural-painters-train compare`).

Folder layout of a recipe run (every part resumable; re-run the same command to continue):
  data/                       training strokes (painter_models.datasets shards)
  heldout.safetensors         held-out strokes (fresh actions, seed never used for training) and the
                              same actions rendered with brush_seed=1 (repeatability ceiling)
  1_pretrain_generator/       step 1 (+ generator.safetensors)
  2_frozen_generator.safetensors   step 2
  3_pretrain_critic/          step 3 (+ critic.safetensors)
  4_gan/                      step 4 (+ generator.safetensors, critic.safetensors)
  eval/                       metrics.json and grid.png of the exported painter (and eval_pretrained/)
  painter.safetensors         the exported painter (metadata: training summary + held-out metrics)
  MODEL_CARD.md               brush, data size, steps, wall time, hardware, metrics, grid
  recipe.json                 the summary
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import numpy as np
import torch

from painter_models.checkpoint import atomic_write, load_painter, read_metadata, save_painter

from .cli import HELDOUT_SEED, RECIPE_DEFAULTS, _threads
from .common import Dist, hardware, is_frozen, plot_metrics
from .data import heldout_set, load_set, load_training_data
from .evaluate import evaluate_painter
from .stages import GAN, PretrainCritic, PretrainGenerator, StageOptions, freeze_generator


def ensure_data(out: str, brush: str, count: int, size: int, seed: int, workers: int, log=print) -> str:
    """Generate the training dataset with painter_models.datasets (resumes a partial one)."""
    from painter_models import datasets
    shard = min(10_000, max(256, count // 8))
    datasets.generate(out, brush=brush, count=count, shard_size=shard, size=size, seed=seed, workers=workers)
    return out


def _opts(a, out, steps, lr, schedule, budget, extra, batch, eval_every=None, sample_every=None):
    return StageOptions(out=out, steps=steps, batch_size=batch, lr=lr, schedule=schedule, seed=a.seed,
                        device=a.device, amp=not a.no_amp, time_budget=budget,
                        checkpoint_every=a.checkpoint_every, checkpoint_seconds=a.checkpoint_seconds,
                        log_every=10, eval_every=a.eval_every if eval_every is None else eval_every,
                        sample_every=a.sample_every if sample_every is None else sample_every,
                        progress=not a.no_progress, extra=extra)


def write_text(path: str, text: str):
    """A text file written atomically (a killed run leaves the old file or the new one, never half of it)."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def write_model_card(path: str, meta_training: dict, metrics: dict, grid: str | None):
    lines = [f"# Neural painter: {meta_training.get('brush', '?')}", "",
             "A generator trained to imitate the MyPaint brush with the four-step recipe "
             "(feature-loss pre-training, freezing, critic pre-training, GAN fine-tuning).", "",
             "| | |", "|---|---|"]
    for k in ("brush", "config", "parameters", "stroke_size", "data_size", "steps", "batch_size", "wall_time_s",
              "exported"):
        if k in meta_training:
            lines.append(f"| {k} | {meta_training[k]} |")
    hw = meta_training.get("hardware", {})
    lines.append(f"| hardware | {hw.get('cpu', '?')}, {hw.get('torch_threads', '?')} threads"
                 f"{', ' + hw['gpu'] if 'gpu' in hw else ''}, torch {hw.get('torch', '?')} |")
    lines += ["", "## Held-out metrics", "", "| metric | painter | MyPaint repeatability ceiling |", "|---|---|---|"]
    for k in ("psnr", "psnr_per_stroke", "ssim", "alpha_iou", "texture_ratio"):
        if k in metrics:
            c = metrics.get(f"ceiling_{k}")
            lines.append(f"| {k} | {metrics[k]:.4f} | {'' if c is None else f'{c:.4f}'} |")
    lines += ["", f"Held-out strokes: {metrics.get('heldout_count', '?')} fresh random actions. PSNR is over all "
              "held-out pixels of the stroke over white; alpha IoU at alpha > 0.5; texture_ratio is the "
              "strokes' fine texture (high-frequency energy) relative to the brush's.", ""]
    if meta_training.get("after_recipe"):  # steps taken on the recipe's export before it shipped
        lines += ["## After the recipe", "", "| what | steps | wall s | command |", "|---|---|---|---|"]
        lines += [f"| {s['what']} | {s['steps']} | {s['wall_time_s']} | `{s['command']}` |"
                  for s in meta_training["after_recipe"]]
        lines.append("")
    if grid:
        lines += [f"![real vs generated]({os.path.basename(grid)})", "",
                  "Rows: MyPaint (brush seed 0), MyPaint (brush seed 1), painter; then alpha: MyPaint, painter.", ""]
    write_text(path, "\n".join(lines))


def run_recipe(a: argparse.Namespace) -> dict:
    _threads(a.threads)
    t0 = time.monotonic()
    d = Dist(a.device)
    defaults = RECIPE_DEFAULTS[a.config]
    steps1 = a.pretrain_steps or defaults["pretrain_steps"]
    steps3 = a.critic_steps or defaults["critic_steps"]
    steps4 = a.gan_steps if a.gan_steps is not None else defaults["gan_steps"]
    batch = a.batch_size or defaults["batch_size"]
    data_size = a.data_size or defaults["data_size"]
    workers = a.workers or os.cpu_count() or 1
    os.makedirs(a.out, exist_ok=True)
    data_dir = os.path.join(a.out, "data")
    heldout_path = os.path.join(a.out, "heldout.safetensors")
    if d.is_main:
        print(f"[recipe] {a.brush}: data {data_size} strokes at {a.size} px, config {a.config}, steps "
              f"{steps1}/{steps3}/{steps4}, batch {batch}, device {d.device}, world {d.world}")
        ensure_data(data_dir, a.brush, data_size, a.size, a.seed, workers)
        heldout_set(heldout_path, a.brush, a.heldout_size, a.size, HELDOUT_SEED + a.seed, workers)
    d.barrier()
    data = load_training_data(data_dir)
    heldout, extra = load_set(heldout_path)
    other = extra.get("strokes_seed1")
    data_time = time.monotonic() - t0

    budget = a.time_budget
    left = max(0.0, budget - data_time) if budget else 0.0
    shares = (0.75, 0.08, 0.17) if steps4 else (0.9, 0.1, 0.0)
    b1, b3, b4 = ([left * s for s in shares] if budget else (0, 0, 0))

    recon = dict(backbone=a.backbone, backbone_weights=a.backbone_weights,
                 backbone_layers=a.backbone_layers.split(",") if a.backbone_layers else None,
                 feature_weight=a.feature_weight, pixel_weight=a.pixel_weight, alpha_weight=a.alpha_weight,
                 stroke_weight=a.stroke_weight, mse_weight=a.mse_weight)
    brush_id = f"mypaint:{a.brush}" if not a.brush.startswith("raster") else "raster:soft_round"
    common_meta = {"brush": a.brush, "config": a.config, "prior": a.prior, "colour": a.colour, "data_size": len(data), "stroke_size": a.size,
                   "recipe": "pretrain-generator -> freeze -> pretrain-critic -> gan"}

    # 1. generator pre-training
    s1_dir = os.path.join(a.out, "1_pretrain_generator")
    s1 = PretrainGenerator(_opts(a, s1_dir, steps1, a.lr, "cosine", b1,
                                 {"config": a.config, "brush_id": brush_id, "training_meta": common_meta,
                                  "prior": a.prior, "colour": a.colour, **recon},
                                 batch), data, heldout, d).run()
    g1_path = os.path.join(s1_dir, "generator.safetensors")

    # 2. freeze (verified) -> a frozen painter file
    frozen_path = os.path.join(a.out, "2_frozen_generator.safetensors")
    if d.is_main:
        g = freeze_generator(g1_path)
        assert is_frozen(g)
        m = read_metadata(g1_path)
        save_painter(frozen_path, g, layout=m["layout"], brush=m["brush"],
                     training={**m.get("training", {}), "frozen": True}, metrics=m.get("metrics", {}))
    d.barrier()

    stage_info = {"pretrain_generator": s1.get("summary", s1)}
    final_gen = frozen_path
    if steps4 and steps3:
        # 3. critic pre-training against the frozen generator
        s3_dir = os.path.join(a.out, "3_pretrain_critic")
        s3 = PretrainCritic(_opts(a, s3_dir, steps3, a.lr, "constant", b3,
                                  {"config": a.config, "generator": frozen_path, "conditional": True}, batch,
                                  sample_every=0), data, heldout, d).run()
        stage_info["pretrain_critic"] = s3.get("summary", s3)
        # 4. GAN
        s4_dir = os.path.join(a.out, "4_gan")
        s4 = GAN(_opts(a, s4_dir, steps4, a.gan_lr, "constant", b4,
                       {"config": a.config, "generator": frozen_path,
                        "critic": os.path.join(s3_dir, "critic.safetensors"), "gan": a.gan,
                        "adv_weight": a.adv_weight, "brush_id": brush_id, "training_meta": common_meta, **recon},
                       batch), data, heldout, d).run()
        stage_info["gan"] = s4.get("summary", s4)
        final_gen = os.path.join(s4_dir, "generator.safetensors")

    result = {}
    if d.is_main:
        device = d.device
        m_pre = evaluate_painter(frozen_path, heldout.actions, heldout.strokes, other,
                                 os.path.join(a.out, "eval_pretrained"), device)
        m_gan = evaluate_painter(final_gen, heldout.actions, heldout.strokes, other,
                                 os.path.join(a.out, "eval_gan"), device) if final_gen != frozen_path else None
        choice = "pretrained"
        if m_gan is not None and (a.export == "gan" or (a.export == "best" and m_gan["psnr"] >= m_pre["psnr"])):
            choice = "gan"
        src, metrics = (final_gen, m_gan) if choice == "gan" else (frozen_path, m_pre)
        eval_dir = os.path.join(a.out, "eval")
        if os.path.isdir(eval_dir):
            shutil.rmtree(eval_dir)
        shutil.copytree(os.path.join(a.out, "eval_gan" if choice == "gan" else "eval_pretrained"), eval_dir)
        painter = load_painter(src)
        wall = time.monotonic() - t0
        prev = {}
        summary_path = os.path.join(a.out, "recipe.json")
        steps_total = sum(int(v.get("steps", 0)) for v in stage_info.values() if isinstance(v, dict))
        stage_wall = sum(float(v.get("wall_time_s", 0)) for v in stage_info.values() if isinstance(v, dict))
        training = {**common_meta, "layout": painter.layout.name, "exported": choice,
                    "parameters": sum(p.numel() for p in painter.generator.parameters()),
                    "steps": steps_total, "stage_steps": {k: v.get("steps") for k, v in stage_info.items()},
                    "batch_size": batch, "strokes_seen": sum(int(v.get("strokes_seen", 0)) for v in stage_info.values()),
                    "wall_time_s": round(stage_wall + data_time, 1), "training_wall_time_s": round(stage_wall, 1),
                    "data_time_s": round(data_time, 1), "hardware": hardware(), "world_size": d.world,
                    "gan": a.gan if steps4 else None, "backbone": a.backbone, "seed": a.seed,
                    "metrics_pretrained": m_pre, "metrics_gan": m_gan}
        painter_path = a.painter or os.path.join(a.out, "painter.safetensors")
        save_painter(painter_path, painter.generator, layout=painter.layout, brush=brush_id, training=training,
                     metrics=metrics)
        card = os.path.join(a.out, "MODEL_CARD.md")
        write_model_card(card, training, metrics, os.path.join(eval_dir, "grid.png"))
        result = {"painter": painter_path, "metrics": metrics, "training": training, "stages": stage_info,
                  "wall_time_this_run_s": round(wall, 1)}
        write_text(summary_path, json.dumps(result, indent=2, default=str))
        print(f"[recipe] painter -> {painter_path}  (exported: {choice})")
        print(f"[recipe] held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics.get('ssim', float('nan')):.4f}, "
              f"alpha IoU {metrics['alpha_iou']:.3f}"
              + (f"; MyPaint ceiling PSNR {metrics['ceiling_psnr']:.2f} dB" if "ceiling_psnr" in metrics else ""))
    d.barrier()
    d.close()
    return result


def run_compare(a: argparse.Namespace) -> dict:
    """Pure adversarial training from scratch (Nakano-style WGAN-GP + pixel term, no feature loss,
    no pre-training) on the recipe's data and held-out set, for the recipe's wall time; then a plot
    and a table of held-out PSNR against wall-clock time for both."""
    _threads(a.threads)
    d = Dist(a.device)
    with open(os.path.join(a.recipe_dir, "recipe.json")) as f:
        rec = json.load(f)
    data = load_training_data(os.path.join(a.recipe_dir, "data"))
    heldout, _ = load_set(os.path.join(a.recipe_dir, "heldout.safetensors"))
    budget = a.time_budget or float(rec["training"]["training_wall_time_s"])
    cfg = rec["training"].get("config", "nakano")
    opts = StageOptions(out=os.path.join(a.out, "scratch_gan"), steps=10 ** 9, batch_size=a.batch_size, lr=1e-4,
                        schedule="constant", seed=a.seed, device=a.device, time_budget=budget,
                        eval_every=a.eval_every, sample_every=10 * a.eval_every, progress=not a.no_progress,
                        extra={"config": cfg, "prior": rec["training"].get("prior"),  # same architecture as the recipe
                               "colour": rec["training"].get("colour", "residual"),
                               "generator": None, "critic": None, "gan": a.gan,
                               "adv_weight": 1.0, "backbone": "none", "feature_weight": 0.0,
                               "brush_id": "scratch"})
    GAN(opts, data, heldout, d).run()
    if not d.is_main:
        d.close()
        return {}
    curves = {"four-step recipe": _recipe_curve(a.recipe_dir), "pure GAN from scratch": _curve(
        os.path.join(opts.out, "metrics.jsonl"), 0.0)}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, pts in curves.items():
        if pts:
            ax.plot([p[0] / 60 for p in pts], [p[1] for p in pts], marker="o", ms=3, label=name)
    ceiling = rec["metrics"].get("ceiling_psnr")
    if ceiling:
        ax.axhline(ceiling, ls="--", c="gray", label="MyPaint repeatability ceiling")
    ax.set_xlabel("wall-clock minutes")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.legend()
    fig.tight_layout()
    atomic_write(os.path.join(a.out, "compare.png"), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    rows = ["| minutes | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    # up to the last evaluation of either run, so an evaluation landing just past the budget still counts
    end = max([budget] + [p[0] for pts in curves.values() for p in pts])
    marks = sorted({round(m, 1) for m in np.linspace(0, end / 60 + 0.05, 9)[1:]})
    for i, m in enumerate(marks):
        vals = []
        for pts in curves.values():
            before = [p[1] for p in pts if p[0] / 60 <= m]
            stopped = pts and i > 0 and marks[i - 1] > pts[-1][0] / 60  # its last value is one row up
            vals.append("(stopped)" if stopped else f"{max(before):.2f}" if before else "-")
        rows.append(f"| {m} | " + " | ".join(vals) + " |")
    table = "\n".join(rows)
    write_text(os.path.join(a.out, "compare.md"),
               "Held-out PSNR (best so far, dB) against wall-clock time, same data and hardware.\n\n" + table + "\n")
    print(table)
    d.close()
    return {"curves": curves}


def _curve(jsonl: str, offset: float):
    pts = []
    if os.path.exists(jsonl):
        with open(jsonl) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "eval_psnr" in r:
                    pts.append((offset + r["time"], r["eval_psnr"]))
    return pts


def _recipe_curve(recipe_dir: str):
    """Held-out PSNR of the recipe against its cumulative wall time (data generation included)."""
    with open(os.path.join(recipe_dir, "recipe.json")) as f:
        rec = json.load(f)
    offset = float(rec["training"].get("data_time_s", 0))
    pts = _curve(os.path.join(recipe_dir, "1_pretrain_generator", "metrics.jsonl"), offset)
    s1 = float(rec["stages"].get("pretrain_generator", {}).get("wall_time_s", 0))
    s3 = float(rec["stages"].get("pretrain_critic", {}).get("wall_time_s", 0))
    pts += _curve(os.path.join(recipe_dir, "4_gan", "metrics.jsonl"), offset + s1 + s3)
    return pts
