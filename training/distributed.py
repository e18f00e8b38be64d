"""Where a training run executes: the torchrun processes and their devices (Dist: ranks, DDP, collective
means and flags), bf16 autocast on CUDA, and a description of the hardware for the run's records.
"""
from __future__ import annotations

import contextlib
import os
import platform

import torch
import torch.distributed as dist
import torch.nn as nn


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
            # every rank past its last collective before any tears the group down: without it a rank that
            # finished first (rank 0 evaluates and saves alone) could abort at exit under load (seen in CI)
            dist.barrier()
            dist.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA only; a no-op on the CPU (fp32)."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def hardware() -> dict:
    info = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
