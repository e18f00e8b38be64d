"""Training randomness: the global seeds, and one generator per training step so that a resumed run
draws the same numbers as the uninterrupted one (noise, gradient-penalty mixing).
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def step_generator(seed: int, rank: int, step: int, device) -> torch.Generator:
    """A generator for the randomness of one training step: same (seed, rank, step), same numbers."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2 ** 63 - 1))
    return g
