"""Losses of the recipe: reconstruction (perceptual features + stroke-weighted pixel and alpha
terms), BCE and WGAN-GP adversarial losses.

The pixel/alpha term is what keeps thin strokes alive: stroke pixels (target alpha above 1/255)
weigh `1 + stroke_weight` against 1 for the background, so a generator cannot win by painting
nothing (Nakano's non-white weighting, x10).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from painter_models.metrics import over_white


def build_feature_extractor(name: str, weights: str = "auto", layers=None, device="cpu"):
    """The frozen perceptual backbone (painter_models.objectives.backbones), or None for name 'none'."""
    if name in (None, "", "none"):
        return None
    from painter_models.objectives.backbones import build_backbone
    net = build_backbone(name=name, weights=weights, layers=layers)
    net = net.to(device)
    net.requires_grad_(False)
    net.eval()
    return net


class ReconstructionLoss(nn.Module):
    """feature_weight * mean_l w_l |phi_l(gen) - phi_l(real)|
       + pixel_weight * mean(w * |gen_over_white - real_over_white|)
       + alpha_weight * mean(w * |gen_alpha - real_alpha|)
       + mse_weight * mean(w * (gen_over_white - real_over_white)^2)
       + edge_weight * mean(w * |grad(gen_over_white) - grad(real_over_white)|),   w = 1 + stroke_weight * [real alpha > 1/255].
    The edge term (neighbouring pixels' differences, across and down) asks a deterministic painter for the
    brush's edges where they are: the squared and absolute errors alone settle for a softer edge."""

    def __init__(self, backbone=None, feature_weight: float = 1.0, pixel_weight: float = 1.0,
                 alpha_weight: float = 1.0, stroke_weight: float = 10.0, layer_weights=None,
                 mse_weight: float = 0.0, edge_weight: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.feature_weight, self.pixel_weight = feature_weight, pixel_weight
        self.alpha_weight, self.stroke_weight = alpha_weight, stroke_weight
        self.layer_weights = list(layer_weights) if layer_weights else None
        self.mse_weight, self.edge_weight = mse_weight, edge_weight

    def forward(self, colour, alpha, real_rgb, real_alpha):
        gen_rgb = over_white(colour, alpha)
        w = 1 + self.stroke_weight * (real_alpha > 1 / 255).to(alpha.dtype)
        parts = {}
        pixel = (w * (gen_rgb - real_rgb).abs()).mean()
        alpha_l1 = (w * (alpha - real_alpha).abs()).mean()
        parts["pixel"], parts["alpha"] = pixel, alpha_l1
        total = self.pixel_weight * pixel + self.alpha_weight * alpha_l1
        if self.mse_weight:  # squared error: what PSNR measures (predicts the mean of a jittery brush)
            sq = (w * (gen_rgb - real_rgb).pow(2)).mean()
            parts["pixel_mse"] = sq
            total = total + self.mse_weight * sq
        if self.edge_weight:
            diff = gen_rgb - real_rgb
            edge = ((w[..., :, 1:] * (diff[..., :, 1:] - diff[..., :, :-1]).abs()).mean()
                    + (w[..., 1:, :] * (diff[..., 1:, :] - diff[..., :-1, :]).abs()).mean())
            parts["edge"] = edge
            total = total + self.edge_weight * edge
        if self.backbone is not None and self.feature_weight > 0:
            feats_g = self.backbone(gen_rgb)
            with torch.no_grad():
                feats_r = self.backbone(real_rgb)
            lw = self.layer_weights or getattr(self.backbone, "default_layer_weights", None) or [1.0] * len(feats_g)
            feat = sum(wl * F.l1_loss(fg.float(), fr.float()) for wl, fg, fr in zip(lw, feats_g, feats_r)) / sum(lw)
            parts["feature"] = feat
            total = total + self.feature_weight * feat
        # a cheap, readable proxy of the metric that matters
        parts["mse"] = F.mse_loss(gen_rgb.detach().float(), real_rgb.float())
        return total, parts


def texture_loss(gen_rgb: torch.Tensor, real_rgb: torch.Tensor, floor: float = 1e-2) -> torch.Tensor:
    """Each stroke's fine-texture energy (what a 3x3 box blur removes, summed: evaluate's texture_ratio)
    against the real stroke's, as a squared log ratio: the amount of grain, wherever it lies, so a
    stochastic painter is asked for the brush's grain without being asked to guess where MyPaint put it.
    floor: energy below which a stroke counts as smooth (a thin line's edges hold about 1)."""
    def energy(x):
        x = x.float()
        return (x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).pow(2).sum((1, 2, 3)) + floor
    return (torch.log(energy(gen_rgb)) - torch.log(energy(real_rgb))).pow(2).mean()


def critic_input(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The critic sees 4 channels: the stroke over white (RGB) and its alpha."""
    return torch.cat([rgb, alpha], 1)


def bce_critic_loss(real_logits, fake_logits):
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) +
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))) / 2


def bce_generator_loss(fake_logits):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def critic_accuracy(real_logits, fake_logits) -> float:
    return float(((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2)


def gradient_penalty(critic, real, fake, actions, generator: torch.Generator | None = None):
    """WGAN-GP (Gulrajani et al.): (||grad_x D(x_hat)|| - 1)^2 at random mixes of real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(mixed, actions)
    grad, = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
