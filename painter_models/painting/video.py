"""Painting a video: strokes that stay put from frame to frame and move with the picture.

    clip = paint_video(painter, frames, settings)          # frames [T, 3, H, W] in 0..1
    clip.frames[t].canvas, clip.frames[t].strokes, clip.frames[t].ids

How (Litwinowicz 1997's idea, with the optimiser in place of his rules):
  * the first frame is painted as a still (paint() with the settings);
  * for each next frame the optical flow from the previous source frame to it (scikit-image's iterative
    Lucas-Kanade, on the frames at canvas size, at most FLOW_SIDE px) moves every stroke: its box follows the
    flow's mean over the box and grows or shrinks with the flow's spread there (a zoom), so a stroke stays on what
    it painted;
  * strokes whose box has wholly left the canvas are dropped, and as many new strokes are seeded where the moved
    painting is furthest from the frame (the parts of the picture that came into view or changed);
  * a short refinement (settings.refine_steps) trains them on the frame: the new strokes at learning_rate, each
    carried one at refine_learning_rate times how much the picture under it changed once the motion is undone
    (change_rates: nothing changed, the stroke stays exactly as it was; a still stretch is a still painting).
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
# How much the picture under a stroke changed (mean absolute RGB difference once the motion is undone) decides how
# fast it may change: below CHANGE_NOISE (a video's own noise) it stays as it is, from CHANGE_FULL on it trains
# at the refinement's full learning rate.
CHANGE_NOISE, CHANGE_FULL = 0.01, 0.05
REVEALED_FULL = 0.1        # a stroke whose box is this much newly in view trains at the full rate (to cover it)
FLOW_SIDE = 384            # px: the flow of larger frames is estimated on them scaled down to this long side


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
    """[2, H, W] (dy, dx) in px: where each pixel of `previous` ([1, 3, H, W]) went in `current` (estimated at
    FLOW_SIDE px at most, then scaled up: a stroke's motion needs no finer field, and the time stays bounded)."""
    from skimage.registration import optical_flow_ilk
    h, w = previous.shape[-2:]
    scale = min(1.0, FLOW_SIDE / max(h, w))
    small = [F.interpolate(f.float().cpu(), scale_factor=scale, mode="area") if scale < 1 else f.float().cpu()
             for f in (previous, current)]
    grey = [(f[0] * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0).numpy() for f in small]
    flow = torch.from_numpy(np.ascontiguousarray(optical_flow_ilk(grey[0], grey[1], radius=7, num_warp=10))).float()
    if scale < 1:
        flow = F.interpolate(flow[None], size=(h, w), mode="bilinear", align_corners=False)[0] / scale
    return flow


def box_means(fields: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """[C, N]: the means of fields [C, H, W] over each box's part on the canvas (box_sums' boxes)."""
    sums = box_sums(torch.cat([fields, torch.ones_like(fields[:1])]), boxes)
    return sums[:-1] / sums[-1:]


def box_sums(fields: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """[C, N]: the sums of fields [C, H, W] (float64) over each box (cx, cy, side) clipped to the canvas, at
    least one pixel and 4 px across."""
    h, w = fields.shape[-2:]
    integral = F.pad(fields.double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    cx, cy, side = (boxes[:, i].double() for i in range(3))
    half = (side / 2).clamp(min=2.0)
    x0 = (cx - half).floor().clamp(0, w - 1).long()
    x1 = (cx + half).ceil().clamp(1, w).long().maximum(x0 + 1)
    y0 = (cy - half).floor().clamp(0, h - 1).long()
    y1 = (cy + half).ceil().clamp(1, h).long().maximum(y0 + 1)
    return integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]


def _pixel_grid(h: int, w: int, dtype):
    """(ys, xs) [H, W]: every pixel's row and column."""
    return torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")


def picture_change(previous: torch.Tensor, current: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """[1, H, W] in `previous`'s coordinates: |current(p + flow(p)) - previous(p)|, averaged over RGB (0 for an
    exact camera move; occlusions, new objects, light)."""
    h, w = previous.shape[-2:]
    ys, xs = _pixel_grid(h, w, torch.float32)
    grid = torch.stack([(xs + flow[1]) / max(1, w - 1), (ys + flow[0]) / max(1, h - 1)], -1) * 2 - 1
    warped = F.grid_sample(current.float().cpu(), grid[None], mode="bilinear", padding_mode="border",
                           align_corners=True)
    return (warped - previous.float().cpu()).abs().mean(1)


def revealed(flow: torch.Tensor) -> torch.Tensor:
    """[1, H, W]: 1 where the current frame shows what the previous one did not (no previous pixel lands there
    when moved by `flow`: the parts that came into view), else 0."""
    h, w = flow.shape[-2:]
    ys, xs = _pixel_grid(h, w, torch.float32)
    ty, tx = (ys + flow[0]).round().long(), (xs + flow[1]).round().long()
    inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    covered = torch.zeros(h * w)
    covered[(ty * w + tx)[inside]] = 1.0
    covered = F.max_pool2d(covered.view(1, 1, h, w), 3, stride=1, padding=1)[0]    # a zoom's gaps are not new
    return 1.0 - covered


def change_rates(change: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """[N] in 0..1: how fast each stroke (boxes in the previous frame) may change, from the picture's change
    under it (CHANGE_NOISE .. CHANGE_FULL)."""
    under = box_means(change, boxes)[0].float()
    return ((under - CHANGE_NOISE) / (CHANGE_FULL - CHANGE_NOISE)).clamp(0, 1)


def move_strokes(strokes: StrokeSet, flow: torch.Tensor) -> tuple[StrokeSet, torch.Tensor]:
    """(the strokes moved by `flow` ([2, H, W] at the strokes' canvas size), the mask of those kept): each box
    follows the least-squares fit of translation + uniform scale to the flow over the box (its part on the
    canvas); boxes wholly off the canvas are dropped."""
    h, w = strokes.canvas_size
    dy, dx = flow[0].double(), flow[1].double()
    ys, xs = _pixel_grid(h, w, torch.float64)
    fields = torch.stack([torch.ones_like(dx), dx, dy, xs * dx + ys * dy, xs, ys, xs * xs + ys * ys])
    cx, cy, side = (strokes.boxes[:, i].double() for i in range(3))
    n, su, sv, sxy, sx, sy, sq = box_sums(fields, strokes.boxes)
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


def clip_steps(settings: PaintSettings, frames: int) -> int:
    """The steps `frames` frames take as planned (the first frame's steps, then refine_steps a frame): what a
    progress bar over a clip counts."""
    return settings.steps + (frames - 1) * settings.refine_steps if frames > 0 else 0


def paint_video(painter, frames: torch.Tensor, settings: PaintSettings | None = None, *, objective_for=None,
                on_step=None, on_frame=None, preview_every: int = 0, device=None, resume=None,
                **changes) -> VideoResult:
    """Paint `frames` ([T, 3, H, W] in 0..1) as a clip: see the module docs. objective_for(frame [1, 3, h, w] at
    canvas size) -> that frame's loss (default: pixel L2). on_step(frame index, step in the clip (clip_steps of
    the frames before, plus this frame's), paint()'s step info) at every step; on_frame(index, VideoFrame) after
    each frame. settings.time_limit bounds the whole clip: frames
    after it keep the moved strokes without refinement (the note says from which frame). resume: the first
    frames' VideoFrames, already painted (an interrupted clip's): painting goes on from the next one.
    Interrupted (KeyboardInterrupt), the exception carries the frames painted so far as `.video_result`."""
    from ..objectives.objective import photo_objectives
    from .settings import plan_canvas
    settings = (settings or PaintSettings()).replace(**changes)
    if frames.dim() != 4 or frames.shape[0] < 1 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 1, got {list(frames.shape)}")
    size, _ = plan_canvas(settings, tuple(frames.shape[-2:]))
    objective_for = objective_for or photo_objectives()
    result, t_start = VideoResult(list(resume or [])), time.perf_counter()
    try:
        _paint_frames(painter, frames, settings, size, objective_for, result, on_step, on_frame, preview_every,
                      device, t_start)
    except KeyboardInterrupt as e:
        e.video_result = result
        raise
    return result


def _paint_frames(painter, frames, settings, size, objective_for, result, on_step, on_frame, preview_every, device,
                  t_start):
    from ..objectives.image_ops import fit_to
    done = len(result.frames)
    if done >= frames.shape[0]:
        return
    previous = result.frames[-1] if done else None
    previous_target = fit_to(frames[done - 1:done].float().to(device or "cpu"), *size) if done else None
    next_id = max([-1] + [i for f in result.frames for i in f.ids]) + 1
    for index in range(done, frames.shape[0]):
        t0 = time.perf_counter()
        target = fit_to(frames[index:index + 1].float().to(device or "cpu"), *size)
        left = settings.time_limit - (t0 - t_start) if settings.time_limit else 0.0
        if settings.time_limit and left <= 0 and not result.note:
            result.note = f"time limit reached: frames from {index} on keep the moved strokes, unrefined"
        before = clip_steps(settings, index)
        step = (lambda info, i=index, b=before: on_step(i, b + info.step, info)) if on_step else None
        frame_settings = settings.replace(time_limit=max(left, 1e-3) if settings.time_limit else 0.0)
        if previous is None:
            painted = paint(painter, objective_for(target), size, frame_settings, target_for_seeding=target,
                            callback=step, preview_every=preview_every, device=device)
            ids, moved = list(range(len(painted.strokes))), 0
        else:
            flow = frame_flow(previous_target, target)
            carried, keep = move_strokes(previous.strokes, flow)
            changed = change_rates(picture_change(previous_target, target, flow), previous.strokes.boxes[keep])
            in_view = (box_means(revealed(flow), carried.boxes)[0].float() / REVEALED_FULL).clamp(0, 1)
            rates = torch.maximum(changed, in_view)
            if settings.time_limit and left <= 0:
                frame_settings = frame_settings.replace(refine_steps=0, strokes=len(carried))
            painted = _refine(painter, objective_for(target), size, frame_settings, carried, rates, target, device,
                              step, preview_every)
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


def _refine(painter, objective, size, settings: PaintSettings, carried: StrokeSet, rates: torch.Tensor, target,
            device, callback=None, preview_every: int = 0):
    """paint() from the carried strokes: as many new strokes as were dropped, seeded where the frame differs
    most, then settings.refine_steps steps, within the carried strokes' range of sizes. A carried stroke trains
    at refine_learning_rate x its rate (0 where the picture under it did not change: it stays as it was); the
    new ones at learning_rate. Nothing to refine (no new strokes, every rate 0): no steps."""
    wanted = max(0, settings.strokes - len(carried))
    sides = carried.boxes[:, 2]
    # new strokes at the carried strokes' sizes; with none left (all out of view), at the settings' own
    lo, hi = (max(1.0, float(sides.min())), max(1.0, float(sides.max()))) if len(carried) else (0.0, 0.0)
    steps = settings.refine_steps if wanted or bool((rates > 0).any()) else 0
    refine = settings.replace(strokes=wanted, rounds=1, steps=steps, keep_training=True, polish_steps=0,
                              min_stroke_size=settings.min_stroke_size or lo,
                              max_stroke_size=settings.max_stroke_size or hi)
    return paint(painter, objective, size, refine, init=carried if len(carried) else None,
                 init_rates=rates * (settings.refine_learning_rate / settings.learning_rate) if len(carried) else None,
                 target_for_seeding=target, callback=callback, preview_every=preview_every, device=device)
