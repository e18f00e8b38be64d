"""Freezing a network for real: no parameter takes a gradient and batch-norm/dropout are in eval mode."""
from __future__ import annotations

import torch.nn as nn


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
