"""How a stroke predictor is scored in training (training/predictor.py): its strokes are painted through the
frozen painter onto the patches (`render_patches`: differentiable, bf16 where the hardware has it) and compared
pixel by pixel with the target; on synthetic patches its strokes are also matched one to one with the true
ones (Hungarian matching) and compared number by number; the confidence learns how much each stroke helps.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from painter_models.brush.actions import hold_whole, keep_inside
from painter_models.painting.canvas import stroke_layers

from .predictor_data import split_patches

POINTS = ("start_x", "start_y", "control_x", "control_y", "end_x", "end_y")


def render_patches(painter_fn, layout, reach, actions, boxes, under, mask=None, tile_px: int = 64, amp: bool = True,
                   return_layers: bool = False):
    """K strokes per patch painted in order over `under` [B, 3, S, S]: actions [B, K, dim] (kept inside),
    boxes [B, K, 3] in patch units, mask [B, K] (0: the stroke is not painted). The painter's tile
    (pooled to tile_px) is resampled into the box, held whole. Returns the canvases (and the placed
    premultiplied layers [B, K, 4, S, S] with return_layers)."""
    n, k, dim = actions.shape
    side_px = under.shape[-1]
    a, b = hold_whole(layout, actions.reshape(-1, dim), boxes.reshape(-1, 3), reach)
    with torch.autocast(under.device.type, dtype=torch.bfloat16, enabled=amp):
        layers = stroke_layers(painter_fn, a, "alpha").float()           # [N, 4, S, S] premultiplied
    if tile_px < layers.shape[-1]:
        layers = F.avg_pool2d(layers, layers.shape[-1] // tile_px)
    cx, cy, side = b[:, 0], b[:, 1], b[:, 2]
    zero = torch.zeros_like(side)
    theta = torch.stack([torch.stack([1 / side, zero, (1 - 2 * cx) / side], -1),
                         torch.stack([zero, 1 / side, (1 - 2 * cy) / side], -1)], 1)
    grid = F.affine_grid(theta, (len(side), 4, side_px, side_px), align_corners=False)
    placed = F.grid_sample(layers, grid, align_corners=False, padding_mode="zeros").view(n, k, 4, side_px, side_px)
    if mask is not None:
        placed = placed * mask[:, :, None, None, None]
    canvas = under
    for i in range(k):
        canvas = canvas * (1 - placed[:, i, 3:4]) + placed[:, i, :3]
    return (canvas, placed) if return_layers else canvas


def stroke_features(layout, actions, boxes):
    """What matching compares, in patch units: start, through and end points [.., 3, 2], log radius, colour,
    pressures."""
    points = actions[..., layout.indices(*POINTS)].view(*actions.shape[:-1], 3, 2)
    points = boxes[..., None, :2] + (points - 0.5) * boxes[..., 2:3, None]
    log_radius = layout.to_physical(actions, "size") + torch.log(boxes[..., 2])
    return (points, log_radius, actions[..., layout.indices("red", "green", "blue")],
            actions[..., layout.indices("entry_pressure", "exit_pressure")])


def pair_cost(predicted, true):
    """[.., K predicted, K true] cost of pairing strokes (features from stroke_features): points (either
    direction along the stroke), log radius, colour."""
    (p_points, p_radius, p_colour, _), (t_points, t_radius, t_colour, _) = predicted, true
    distance = lambda x, y: (x[..., :, None, :] - y[..., None, :, :]).abs().sum(-1)
    forward = distance(p_points.flatten(-2), t_points.flatten(-2))
    backward = distance(p_points.flatten(-2), t_points[..., [2, 1, 0], :].flatten(-2))
    radius = (p_radius[..., :, None] - t_radius[..., None, :]).abs()
    return torch.minimum(forward, backward) + 0.5 * radius + distance(p_colour, t_colour)


def hungarian(cost, mask):
    """The cheapest one-to-one pairing per patch of the true strokes painted (mask) with predicted ones:
    index tensors (patch, predicted stroke, true stroke)."""
    from scipy.optimize import linear_sum_assignment
    c = cost.detach().cpu().numpy()
    patches, predicted, true = [], [], []
    for i in range(c.shape[0]):
        rows, columns = linear_sum_assignment(c[i][:, :int(mask[i].sum())])
        patches.append(np.full(len(rows), i))
        predicted.append(rows)
        true.append(columns)
    return tuple(torch.from_numpy(np.concatenate(x)) for x in (patches, predicted, true))


@torch.no_grad()
def benefit_label(placed, under, target, scale: float):
    """Per stroke, how much it lowers its patch's squared error painted alone over `under`: b / (b + scale)
    for b > 0, else 0 (monotone in b, so ranking by confidence ranks by benefit)."""
    u, t = under[:, None], target[:, None]
    alone = u * (1 - placed[:, :, 3:4]) + placed[:, :, :3]
    b = ((u - t) ** 2 - (alone - t) ** 2).mean((2, 3, 4))
    return (b / (b.abs() + scale)).clamp(min=0)


def psnr_of(a, b) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a, b).clamp_min(1e-10)))


def _confidence_loss(confidence, placed, under, target, o):
    """The confidence learns each stroke's benefit (benefit_label)."""
    label = benefit_label(placed, under, target, o.benefit_scale)
    return F.binary_cross_entropy(confidence.clamp(1e-4, 1 - 1e-4), label)


def _predict(network, layout, reach, target, under):
    actions, boxes, confidence = network(target, under)
    return keep_inside(layout, actions.reshape(-1, layout.dim), reach).view(actions.shape), boxes, confidence


def natural_loss(network, painter_fn, layout, reach, regions, o):
    """Pixel loss of grid x grid regions whose patches are each predicted alone (as at inference) and
    painted together on the region, slot by slot then patch by patch; plus the confidence's benefit loss."""
    target, under = regions
    g, px, k, n = o.grid, network.config.patch, network.config.k, regions[0].shape[0]
    actions, boxes, confidence = _predict(network, layout, reach, split_patches(target, g, px),
                                          split_patches(under, g, px))
    row, column = torch.arange(g).repeat_interleave(g).float(), torch.arange(g).repeat(g).float()
    offset = torch.stack([column, row], -1).repeat(n, 1)[:, None, :].to(boxes.device)
    boxes = torch.cat([(boxes[..., :2] + offset) / g, boxes[..., 2:] / g], -1)
    in_order = lambda x: x.view(n, g * g, k, *x.shape[2:]).transpose(1, 2).reshape(n, k * g * g, *x.shape[2:])
    actions, boxes, confidence = in_order(actions), in_order(boxes), in_order(confidence)
    canvas, placed = render_patches(painter_fn, layout, reach, actions, boxes, under, amp=o.amp, return_layers=True)
    pixels = F.mse_loss(canvas, target)
    bce = _confidence_loss(confidence, placed, under, target, o)
    terms = {"nat_psnr": psnr_of(canvas.detach(), target), "nat_bce": float(bce.detach()),
             "conf": float(confidence.detach().mean())}
    return o.w_pix * pixels + o.w_bce * bce, terms


def synthetic_loss(network, painter_fn, layout, reach, batch, o):
    """Pixel loss on synthetic patches, plus the matched strokes' differences (points, radius, colour,
    pressure) and the confidence's benefit loss."""
    target, under, true_actions, true_boxes, mask = batch
    actions, boxes, confidence = _predict(network, layout, reach, target, under)
    canvas, placed = render_patches(painter_fn, layout, reach, actions, boxes, under, amp=o.amp, return_layers=True)
    pixels = F.mse_loss(canvas, target)
    predicted, true = stroke_features(layout, actions, boxes), stroke_features(layout, true_actions, true_boxes)
    cost = pair_cost(predicted, true)
    patch, p, t = hungarian(cost, mask)
    matched = cost[patch, p, t].mean()
    pressure = (predicted[3][patch, p] - true[3][patch, t]).abs().mean()
    bce = _confidence_loss(confidence, placed, under, target, o)
    terms = {"syn_psnr": psnr_of(canvas.detach(), target), "match": float(matched.detach()),
             "syn_bce": float(bce.detach())}
    return o.w_pix * pixels + o.w_stroke * (matched + 0.3 * pressure) + o.w_bce * bce, terms
