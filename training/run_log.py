"""What a training run leaves to read and look at: the metrics log (JSONL) and its plot, grids of
sample images, and a timer whose wall and CPU time survive resumes.
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import torch


class MetricsLog:
    """Append-only JSONL (one object per logged step). On resume, lines past the restored step are
    dropped so the log matches the state exactly."""

    def __init__(self, path: str, resume_step: int | None = None, enabled: bool = True):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if resume_step is None:
            open(path, "w").close()
        elif os.path.exists(path):
            keep = []
            for line in open(path):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("step", 0) <= resume_step:
                    keep.append(json.dumps(rec))
            with open(path, "w") as f:
                f.write("".join(k + "\n" for k in keep))

    def write(self, record: dict):
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        out = []
        for line in open(self.path):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out


def plot_metrics(jsonl: str, png: str, title: str = ""):
    """Plot every numeric series of a metrics JSONL against step (losses on a log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = MetricsLog(jsonl, enabled=False).read()
    if not records:
        return
    keys = sorted({k for r in records for k, v in r.items()
                   if isinstance(v, (int, float)) and k not in ("step", "time", "lr", "data_position", "epoch")})
    train = [k for k in keys if not k.startswith("eval_")]
    evals = [k for k in keys if k.startswith("eval_")]
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(12 if evals else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for k in train:
        pts = [(r["step"], r[k]) for r in records if k in r and isinstance(r[k], (int, float)) and math.isfinite(r[k])]
        if pts:
            ax.plot(*zip(*pts), label=k, lw=1)
    if train and all(r[k] > 0 for r in records for k in train if k in r and isinstance(r[k], (int, float))):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title or "training losses")
    ax.legend(fontsize=7)
    if evals:
        ax = axes[0, 1]
        for k in evals:
            pts = [(r["step"], r[k]) for r in records if k in r and math.isfinite(r[k])]
            if pts and "psnr" in k:
                ax.plot(*zip(*pts), label=k, marker="o", ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel("dB")
        ax.set_title("held-out PSNR")
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, png)


def save_grid(path: str, rows: list[torch.Tensor], scale: int = 2, pad: int = 2):
    """Save image rows ([N, 3, S, S] tensors in 0..1, same N) as one PNG: one row per tensor."""
    from PIL import Image

    n, s = rows[0].shape[0], rows[0].shape[-1]
    h, w = len(rows) * (s + pad) + pad, n * (s + pad) + pad
    canvas = np.full((h, w, 3), 0.5, np.float32)
    for r, imgs in enumerate(rows):
        arr = imgs.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy()
        for i in range(n):
            y, x = pad + r * (s + pad), pad + i * (s + pad)
            canvas[y:y + s, x:x + s] = arr[i]
    img = Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))
    if scale != 1:
        img = img.resize((w * scale, h * scale), Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    img.save(tmp)
    os.replace(tmp, path)


class Timer:
    """Wall and CPU time that survive resumes: `elapsed` = wall time before the resume + time since;
    `cpu_elapsed` the same for this process's CPU time (all its threads: on a shared machine the
    honest measure of the work)."""

    def __init__(self, before: float = 0.0, cpu_before: float = 0.0):
        self.before, self.start = before, time.monotonic()
        self.cpu_before, self.cpu_start = cpu_before, time.process_time()

    @property
    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.start

    @property
    def cpu_elapsed(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_start
