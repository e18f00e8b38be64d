"""Painting a video: strokes that stay put from frame to frame and move with the picture.

    clip = paint_video(painter, frames, settings)          # frames [T, 3, H, W] in 0..1
    clip.frames[t].canvas, clip.frames[t].strokes, clip.frames[t].ids

How (Litwinowicz 1997's idea, with the optimiser in place of his rules):
  * the first frame is painted as a still (paint() with the settings);
  * for each next frame the optical flow from the previous source frame to it (scikit-image's iterative
    Lucas-Kanade, on the frames at canvas size) moves every stroke: its box follows the flow's mean over the box
    and grows or shrinks with the flow's spread there (a zoom), so a stroke stays on what it painted;
  * strokes whose centre has left the canvas are dropped, and as many new strokes are seeded where the moved
    painting is furthest from the frame (the parts of the picture that came into view or changed);
  * a short refinement (settings.refine_steps at refine_learning_rate) trains all of them on the frame.
Every stroke keeps its id while it lives (new strokes take new ids), so the clip's stroke file says which
stroke is which and a MyPaint re-render of it at any size gives the same clip.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..brush.strokes import StrokeSet
from .optimize import paint
from .settings import PaintSettings

MAX_SCALE_STEP = 1.25      # a stroke grows or shrinks by at most this factor from one frame to the next


@dataclass
class VideoFrame:
    canvas: torch.Tensor            # [1, 3, H, W] in 0..1: the painting of this frame
    strokes: StrokeSet
    ids: list[int]                  # one per stroke: the same id in every frame the stroke lives in
    seconds: float                  # wall time of this frame
    renderer: str
    moved: int = 0                  # strokes carried over from the previous frame
    added: int = 0                  # new strokes


@dataclass
class VideoResult:
    frames: list[VideoFrame] = field(default_factory=list)
    cancelled: bool = False
    note: str = ""                  # the clip's own (the time limit)
    renderer_note: str = ""         # why the real brush did not paint, when it did not


def frame_flow(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """[2, H, W] (dy, dx) in px: where each pixel of `previous` ([1, 3, H, W]) went in `current`."""
    from skimage.registration import optical_flow_ilk
    grey = [(f[0].float().cpu() * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0).numpy()
            for f in (previous, current)]
    flow = optical_flow_ilk(grey[0], grey[1], radius=7, num_warp=10)
    return torch.from_numpy(np.ascontiguousarray(flow)).float()


def _box_sums(integral: torch.Tensor, y0, x0, y1, x1) -> torch.Tensor:
    """Sums over the boxes [y0, y1) x [x0, x1) of the field whose integral image (padded by a zero row and
    column) is `integral` [C, H+1, W+1]: [C, N]."""
    return integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]


def move_strokes(strokes: StrokeSet, flow: torch.Tensor) -> tuple[StrokeSet, torch.Tensor]:
    """(the strokes moved by `flow` ([2, H, W] at the strokes' canvas size), the mask of those kept): each box
    follows the least-squares fit of translation + uniform scale to the flow over the box (its part on the
    canvas); boxes wholly off the canvas are dropped."""
    h, w = strokes.canvas_size
    dy, dx = flow[0].double(), flow[1].double()
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    fields = torch.stack([torch.ones_like(dx), dx, dy, xs * dx + ys * dy, xs, ys, xs * xs + ys * ys])
    integral = F.pad(fields.cumsum(1).cumsum(2), (1, 0, 1, 0))
    cx, cy, side = (strokes.boxes[:, i].double() for i in range(3))
    half = (side / 2).clamp(min=2.0)
    x0 = (cx - half).floor().clamp(0, w - 1).long()
    x1 = (cx + half).ceil().clamp(1, w).long().maximum(x0 + 1)
    y0 = (cy - half).floor().clamp(0, h - 1).long()
    y1 = (cy + half).ceil().clamp(1, h).long().maximum(y0 + 1)
    n, su, sv, sxy, sx, sy, sq = _box_sums(integral, y0, x0, y1, x1)
    mx, my = sx / n, sy / n                                   # the window's centroid
    spread = sq - n * (mx * mx + my * my)                     # sum of |p - centroid|^2
    growth = (sxy - mx * su - my * sv) / spread.clamp(min=1e-6)     # scale - 1
    scale = (1 + growth).clamp(1 / MAX_SCALE_STEP, MAX_SCALE_STEP)
    new_cx = cx + su / n + (scale - 1) * (cx - mx)
    new_cy = cy + sv / n + (scale - 1) * (cy - my)
    reach = side * scale / 2     # a box beyond the canvas by more than half its side shows nothing
    keep = (new_cx >= -reach) & (new_cx <= w + reach) & (new_cy >= -reach) & (new_cy <= h + reach)
    boxes = torch.stack([new_cx, new_cy, side * scale], 1).float()[keep]
    moved = StrokeSet(strokes.actions[keep], boxes, strokes.canvas_size, strokes.layout, strokes.brush,
                      strokes.background, strokes.blend, dict(strokes.extra), strokes.background_image)
    return moved, keep


def paint_video(painter, frames: torch.Tensor, settings: PaintSettings | None = None, *, objective_for=None,
                on_step=None, on_frame=None, preview_every: int = 0, device=None, **changes) -> VideoResult:
    """Paint `frames` ([T, 3, H, W] in 0..1) as a clip: see the module docs. objective_for(frame [1, 3, h, w] at
    canvas size) -> that frame's loss (default: pixel L2). on_step(frame index, paint()'s step info) at every
    step; on_frame(index, VideoFrame) after each frame. settings.time_limit bounds the whole clip: frames
    after it keep the moved strokes without refinement (the note says from which frame)."""
    from ..objectives.image_ops import fit_to
    from ..objectives.objective import photo_objective
    from .settings import plan_canvas
    settings = (settings or PaintSettings()).replace(**changes) if changes else (settings or PaintSettings())
    if frames.dim() != 4 or frames.shape[0] < 1 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 1, got {list(frames.shape)}")
    size, _ = plan_canvas(settings, tuple(frames.shape[-2:]))
    objective_for = objective_for or (lambda target: photo_objective(target, pixel=1.0, pixel_kind="l2"))
    result, previous, previous_target, next_id, t_start = VideoResult(), None, None, 0, time.perf_counter()
    for index in range(frames.shape[0]):
        t0 = time.perf_counter()
        target = fit_to(frames[index:index + 1].float().to(device or "cpu"), *size)
        left = settings.time_limit - (t0 - t_start) if settings.time_limit else 0.0
        if settings.time_limit and left <= 0 and not result.note:
            result.note = f"time limit reached: frames from {index} on keep the moved strokes, unrefined"
        step = (lambda info, i=index: on_step(i, info)) if on_step else None
        frame_settings = settings.replace(time_limit=max(left, 1e-3) if settings.time_limit else 0.0)
        if previous is None:
            painted = paint(painter, objective_for(target), size, frame_settings, target_for_seeding=target,
                            callback=step, preview_every=preview_every, device=device)
            ids, moved = list(range(len(painted.strokes))), 0
        else:
            carried, keep = move_strokes(previous.strokes, frame_flow(previous_target, target))
            if settings.time_limit and left <= 0:
                frame_settings = frame_settings.replace(refine_steps=0, strokes=len(carried))
            painted = _refine(painter, objective_for(target), size, frame_settings, carried, target, device, step,
                              preview_every)
            kept = [i for i, k in zip(previous.ids, keep.tolist()) if k]
            ids, moved = kept + list(range(next_id, next_id + len(painted.strokes) - len(kept))), len(kept)
        next_id = max([next_id - 1] + ids) + 1
        frame = VideoFrame(painted.canvas.detach().cpu(), painted.strokes, ids, time.perf_counter() - t0,
                           painted.renderer, moved, len(ids) - moved)
        result.frames.append(frame)
        result.renderer_note = painted.note
        previous, previous_target = frame, target
        if on_frame is not None:
            on_frame(index, frame)
        if painted.cancelled:
            result.cancelled = True
            break
    return result


def _refine(painter, objective, size, settings: PaintSettings, carried: StrokeSet, target, device, callback=None,
            preview_every: int = 0):
    """paint() from the carried strokes: as many new strokes as were dropped, seeded where the frame differs
    most, then settings.refine_steps steps on all of them, within the carried strokes' range of sizes."""
    wanted = settings.strokes - len(carried)
    sides = carried.boxes[:, 2]
    lo, hi = (float(sides.min()), float(sides.max())) if len(carried) else (0.0, 0.0)
    refine = settings.replace(strokes=max(0, wanted), rounds=1, steps=settings.refine_steps, keep_training=True,
                              init_lr_scale=settings.refine_learning_rate / settings.learning_rate, polish_steps=0,
                              min_stroke_size=settings.min_stroke_size or max(1.0, lo),
                              max_stroke_size=settings.max_stroke_size or max(1.0, hi))
    return paint(painter, objective, size, refine, init=carried if len(carried) else None,
                 target_for_seeding=target, callback=callback, preview_every=preview_every, device=device)
