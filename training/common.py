"""Shared machinery of the training scripts: distributed set-up, resumable training state,
metrics log and plot, sample grids, freezing.

Resumable state: one safetensors file per stage (`state.safetensors`) with every tensor needed
to continue exactly (model weights and buffers, optimiser state, the global RNG states as uint8
tensors) and JSON metadata (step, data position, elapsed wall time, optimiser hyper-parameters,
arguments). It is written to a temporary file, fsync'ed and renamed, so a SIGKILL at any moment
leaves either the previous or the new state, never a broken one. Training randomness that must
be reproduced (noise, gradient-penalty mixing) is drawn from generators seeded by
(seed, rank, step), and the data order is a pure function of (seed, position), so a resumed run
repeats the uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import signal
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from safetensors import safe_open
from painter_models.painter.checkpoint import save_tensors

STATE_FILE = "state.safetensors"
STATE_FORMAT = "neural-painters-training-state"


# -- distributed ----------------------------------------------------------------------------------
class Dist:
    """torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK) or a single process."""

    def __init__(self, device: str = "auto"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
        if device == "cuda" and self.world > 1:
            device = f"cuda:{self.local_rank}"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.initialised_here = False
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            self.initialised_here = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision (e.g. 'stop now') shared by every rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def all_mean(self, values: dict[str, float]) -> dict[str, float]:
        if not self.distributed or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], device=self.device, dtype=torch.float64)
        dist.all_reduce(t)
        return {k: v / self.world for k, v in zip(keys, t.tolist())}

    def wrap(self, module: nn.Module) -> nn.Module:
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        # a stochastic painter's grain takes no gradient in some steps (pre-training trains its mean only)
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=True,
                                                   find_unused_parameters=True)

    def close(self):
        if self.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA only; a no-op on the CPU (fp32)."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def step_generator(seed: int, rank: int, step: int, device) -> torch.Generator:
    """A generator for the randomness of one training step: same (seed, rank, step), same numbers."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2 ** 63 - 1))
    return g


def hardware() -> dict:
    info = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# -- freezing -------------------------------------------------------------------------------------
def freeze(module: nn.Module) -> nn.Module:
    """Freeze for real: no parameter takes a gradient, and batch-norm/dropout are in eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(True)
    module.train()
    return module


def is_frozen(module: nn.Module) -> bool:
    return not module.training and not any(p.requires_grad for p in module.parameters())


# -- resumable training state -------------------------------------------------------------------
def atomic_save(path: str, tensors: dict[str, torch.Tensor], metadata: dict):
    """safetensors file written atomically and synced (painter_models.painter.checkpoint.save_tensors)."""
    save_tensors(path, tensors, metadata)


def load_tensors(path: str, device="cpu") -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(path, framework="pt", device=str(device)) as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def optimizer_to_flat(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state dict as flat tensors plus JSON (param groups, scalar state)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.state.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict):
    state: dict = {}
    prefix = name + ".state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    for key, value in meta.get("scalars", {}).items():
        idx, field = key.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    out["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    return out


def restore_rng(tensors: dict, meta: dict):
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].cpu())
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"].cpu())
    if "rng.numpy" in tensors and "numpy_rng_pos" in meta:
        np.random.set_state(("MT19937", tensors["rng.numpy"].numpy().astype(np.uint32), meta["numpy_rng_pos"], 0, 0.0))


def save_state(path: str, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               info: dict):
    """Write the resumable state of a stage (rank 0 only)."""
    tensors, meta = {}, {"format": STATE_FORMAT, "format_version": 1, **info}
    for name, module in modules.items():
        for k, v in unwrap(module).state_dict().items():
            tensors[f"{name}.{k}"] = v
    opt_meta = {}
    for name, opt in optimizers.items():
        t, m = optimizer_to_flat("opt_" + name, opt)
        tensors.update(t)
        opt_meta[name] = m
    meta["optimizers"] = opt_meta
    tensors.update(rng_tensors())
    meta["numpy_rng_pos"] = int(np.random.get_state()[2])
    atomic_save(path, tensors, meta)


def load_state(path: str, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               device) -> dict:
    """Restore modules, optimisers and RNGs from a state file; returns its metadata."""
    tensors, meta = load_tensors(path)
    if meta.get("format") != STATE_FORMAT:
        raise SystemExit(f"{path} is not a training state file (format {meta.get('format')!r})")
    for name, module in modules.items():
        prefix = name + "."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        unwrap(module).load_state_dict(sd)
    for name, opt in optimizers.items():
        optimizer_from_flat("opt_" + name, opt, tensors, meta["optimizers"][name])  # moved to the params' device
    restore_rng(tensors, meta)
    return meta


# -- stop requests (SIGINT / SIGTERM save a checkpoint first) -------------------------------------
class StopFlag:
    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second ^C: stop at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# -- metrics log, plot, grids -------------------------------------------------------------------
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
