"""Training throughput (strokes/s) of each stage of the recipe, on the CPU and (if present) a GPU.

    python bench/bench_training.py --config nakano --threads 2 [--data DIR] [--steps 20] [--devices cpu,cuda]

Each stage is built exactly as the training scripts build it (same losses, optimisers, batch
order) and timed for --steps steps after --warmup steps; strokes/s = steps * batch / seconds
(a GAN step also counts the critic's batches). Without --data, strokes are rendered with the
torch rasteriser (the rendering is not timed). Prints a Markdown table and writes JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from painter_models.painter.checkpoint import save_painter  # noqa: E402
from painter_models.painter.model import Generator  # noqa: E402
from neural_painters_training.distributed import Dist, hardware  # noqa: E402
from neural_painters_training.data import load_training_data, render_set  # noqa: E402
from neural_painters_training.stages import (GAN, PretrainCritic, PretrainGenerator, StageOptions, make_generator_config,  # noqa: E402
                             save_critic)


def bench_stage(cls, data, device, batch, steps, warmup, extra):
    with tempfile.TemporaryDirectory() as tmp:
        opts = StageOptions(out=tmp, steps=steps + warmup, batch_size=batch, device=device, progress=False, extra=extra)
        stage = cls(opts, data, None, Dist(device))
        stage.build()
        stage.wrap()
        per_step = batch * (1 + getattr(stage, "n_critic", 0))
        for s in range(warmup):
            stage.train_step(s)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        for s in range(steps):
            stage.train_step(warmup + s)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        # strokes per CPU-second: robust to other processes sharing the machine (wall time is not)
        return {"strokes_per_s": steps * per_step / dt, "s_per_step": dt / steps, "strokes_per_step": per_step,
                "strokes_per_cpu_s": steps * per_step / max(cpu, 1e-9)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="nakano")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--data", help="dataset folder or .safetensors set (default: raster strokes)")
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--backbone-layers", default=None)
    p.add_argument("--stages", default="pretrain-generator,pretrain-critic,gan-bce,gan-wgan-gp")
    p.add_argument("--json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = load_training_data(a.data) if a.data else render_set("raster", max(1024, a.batch_size * 8), a.size, 0)
    layers = a.backbone_layers.split(",") if a.backbone_layers else None
    recon = {"backbone": a.backbone, "backbone_layers": layers, "config": a.config, "mse_weight": 1.0}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        g = Generator(make_generator_config(a.config, data.size))
        g_path = os.path.join(tmp, "g.safetensors")
        save_painter(g_path, g, layout=data.layout, brush="bench")
        from painter_models.painter.model import Critic
        from neural_painters_training.stages import make_critic_config
        c_path = os.path.join(tmp, "c.safetensors")
        save_critic(c_path, Critic(make_critic_config(a.config, data.size)))
        stages = {
            "pretrain-generator": (PretrainGenerator, recon),
            "pretrain-critic": (PretrainCritic, {"config": a.config, "generator": g_path}),
            "gan-bce": (GAN, {**recon, "generator": g_path, "critic": c_path, "gan": "bce"}),
            "gan-wgan-gp": (GAN, {**recon, "generator": g_path, "critic": c_path, "gan": "wgan-gp"}),
        }
        for device in a.devices.split(","):
            if device == "cuda" and not torch.cuda.is_available():
                continue
            for name in a.stages.split(","):
                cls, extra = stages[name]
                r = bench_stage(cls, data, device, a.batch_size, a.steps, a.warmup, extra)
                r.update(stage=name, device=device)
                results.append(r)
                print(f"{name:20s} {device:5s} {r['strokes_per_s']:8.1f} strokes/s  ({r['s_per_step']:.3f} s/step, "
                      f"{r['strokes_per_cpu_s']:.1f} strokes per CPU-second)", flush=True)
    hw = hardware()
    print(f"\n{a.config} config, {a.size} px, batch {a.batch_size}, backbone {a.backbone} "
          f"{a.backbone_layers or '(all layers)'}, {a.threads} threads; {hw.get('cpu')} x{hw.get('cpu_count')}"
          f"{', ' + hw['gpu'] if 'gpu' in hw else ''}; {time.strftime('%Y-%m-%d')}\n")
    print("| stage | device | strokes/s (wall) | s/step | strokes per CPU-second |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['stage']} | {r['device']} | {r['strokes_per_s']:.1f} | {r['s_per_step']:.3f} | "
              f"{r['strokes_per_cpu_s']:.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "args": vars(a), "hardware": hw}, f, indent=2)


if __name__ == "__main__":
    main()
