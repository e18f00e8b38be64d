"""What the training commands share: the held-out seed, each config's recipe defaults, and the options
of a stage and of its reconstruction loss, built from parsed arguments. The stage commands (cli.py) and
the recipe (recipe.py) both build them here, so neither imports the other's internals."""
from __future__ import annotations

import argparse

import torch

from .stages import StageOptions

DEFAULT_HELDOUT = 1000
HELDOUT_SEED = 1_000_003

# Per-config defaults for the recipe (steps per stage at batch 64).
RECIPE_DEFAULTS = {
    "tiny": dict(pretrain_steps=40, critic_steps=10, gan_steps=10, data_size=2048, batch_size=32),
    "nakano": dict(pretrain_steps=12000, critic_steps=600, gan_steps=1500, data_size=100_000, batch_size=64),
    "large": dict(pretrain_steps=20000, critic_steps=1000, gan_steps=3000, data_size=200_000, batch_size=64),
}


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(int(n))


def recon_options(a: argparse.Namespace) -> dict:
    """The reconstruction loss's options (--backbone ... --edge-weight, --texture-weight) as a stage's extras."""
    return dict(backbone=a.backbone, backbone_weights=a.backbone_weights,
                backbone_layers=a.backbone_layers.split(",") if a.backbone_layers else None,
                feature_weight=a.feature_weight, pixel_weight=a.pixel_weight, alpha_weight=a.alpha_weight,
                stroke_weight=a.stroke_weight, mse_weight=a.mse_weight, edge_weight=a.edge_weight,
                texture_weight=a.texture_weight)


def stage_options(a: argparse.Namespace, *, out: str, steps: int, lr: float, schedule: str, budget: float | None,
                  batch: int, extra: dict, log_every: int | None = None, eval_every: int | None = None,
                  sample_every: int | None = None) -> StageOptions:
    """A stage's options from the common training arguments (add_common in cli.py); what is not given
    comes from them (log_every: --log-every where the command has it, else every 10 steps)."""
    return StageOptions(out=out, steps=steps, batch_size=batch, lr=lr, schedule=schedule, seed=a.seed,
                        device=a.device, amp=not a.no_amp, time_budget=budget,
                        checkpoint_every=a.checkpoint_every, checkpoint_seconds=a.checkpoint_seconds,
                        log_every=log_every or getattr(a, "log_every", 10), eval_every=a.eval_every if eval_every is None else eval_every,
                        sample_every=a.sample_every if sample_every is None else sample_every,
                        resume=not getattr(a, "fresh", False), progress=not a.no_progress, extra=extra)
