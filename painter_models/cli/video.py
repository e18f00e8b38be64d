"""`neural-painters paint-video`: paint a clip with strokes that stay put from frame to frame.

    neural-painters paint-video clip.mp4 --out painted.mp4 --strokes 300 --size 256
    neural-painters paint-video frames/ --out painted/ --json clip.json        # a folder of frames in and out
    neural-painters paint-video clip.mp4 --out painted.webp --rerender big/ --rerender-scale 4

IN is a video file (read with PyAV), an animated GIF / WebP or a folder of frames (sorted by name); OUT a
folder (one PNG a frame, named as the input frames), an animated .gif / .webp or a video file. The first frame
is painted as a still (the painting settings as for `paint`); every next frame starts from the previous frame's
strokes moved by the picture's motion, and --refine-steps steps refine them (painting/video.py). --json writes
the clip's strokes, each stroke with its id across frames; --rerender repaints every frame with the real
MyPaint brush at --rerender-scale.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from ..painter.shipped import DEFAULT_PAINTER, find_painter
from .common import (CliError, add_setting_flags, check_output_path, default_threads, float_range, int_range,
                     pick_device, settings_from_args)

VIDEO_OUTPUTS = (".mp4", ".webm", ".mkv", ".mov", ".gif", ".webp")


def add_video_parser(sub):
    p = sub.add_parser("paint-video", help="paint a video (or a folder of frames) with strokes that move with it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clip", help="video file, animated GIF / WebP, or a folder of frames")
    p.add_argument("--out", "-o", required=True, help="a folder (PNG frames), .gif, .webp, .mp4, .webm, .mkv or .mov")
    p.add_argument("--painter", default=None, help=f"painter checkpoint or a shipped painter's name (default: "
                                                   f"{DEFAULT_PAINTER})")
    add_setting_flags(p)
    g = p.add_argument_group("what the strokes are optimised for, and more outputs")
    g.add_argument("--feature-weight", type=float_range(0, 1e6, "--feature-weight"), default=0.0,
                   help="weight of the perceptual feature loss (EfficientNet-Lite0) beside the pixel loss (default 0)")
    g.add_argument("--json", default=None, help="write the clip's strokes (every frame, stroke ids) as JSON, "
                                                "after every frame")
    g.add_argument("--resume", action="store_true", help="go on from the frames --json already holds (a clip "
                                                         "interrupted by Ctrl-C or a crash loses nothing)")
    g.add_argument("--fps", type=float_range(0.1, 240, "--fps"), default=None,
                   help="frames per second of OUT (default: the input's; 12 for a folder)")
    g.add_argument("--rerender", default=None, help="repaint every frame with the real MyPaint brush into this "
                                                    "folder or file (as --out)")
    g.add_argument("--rerender-scale", type=float_range(0.1, 16, "--rerender-scale"), default=2.0,
                   help="scale of the MyPaint re-render (default 2)")
    run = p.add_argument_group("running")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    run.add_argument("--threads", type=int_range(1, 1024, "--threads"), default=None,
                     help="CPU threads for torch (default: the idle cores)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _check_output(path: str, what: str):
    if os.path.splitext(path)[1]:
        check_output_path(path, VIDEO_OUTPUTS, what)
    elif os.path.isfile(path):
        raise CliError(f"{what} {path!r} is a file: give a folder, or a file name ending in {', '.join(VIDEO_OUTPUTS)}")


def run_paint_video(args) -> int:
    settings = settings_from_args(args)
    _check_output(args.out, "--out")
    if args.rerender:
        _check_output(args.rerender, "--rerender")
    if args.json:
        check_output_path(args.json, (".json",), "--json")
    if args.resume and not (args.json and os.path.isfile(args.json)):
        raise CliError("--resume goes on from the clip's stroke file: give --json FILE, a file an earlier run wrote")
    import torch
    from ..export.video_files import read_frames, write_frames
    from ..painter.checkpoint import load_painter
    clip = read_frames(args.clip, max_side=max(settings.size, settings.width, settings.height))
    dev = pick_device(args.device)
    torch.set_num_threads(args.threads or default_threads())
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    painter_path = find_painter(args.painter)
    painter = load_painter(painter_path, device=dev)
    t = len(clip.frames)
    log(f"painting {t} frames with {settings.strokes} strokes: the first in {settings.steps} steps, the others "
        f"from the previous frame's strokes in {settings.refine_steps}; painter {os.path.basename(painter_path)}")
    resume = _resumed_frames(args, clip, painter, settings) if args.resume else []
    if resume:
        log(f"resuming after the {len(resume)} frames {args.json} holds")
    t0 = time.perf_counter()
    fps = args.fps or clip.fps
    try:
        result = _paint_clip(painter, clip, settings, args, dev, resume, fps)
    except KeyboardInterrupt as e:
        result = getattr(e, "video_result", None)
        if result is None or not result.frames:
            raise
        result.cancelled = True
    seconds = time.perf_counter() - t0
    names = clip.names[:len(result.frames)]
    written = [write_frames(args.out, torch.cat([f.canvas for f in result.frames]), names, fps)]
    written += _exports(result, names, fps, args)
    later = [f.seconds for f in result.frames[1:]]
    log(f"{len(result.frames)} frames in {seconds:.1f} s (the first {result.frames[0].seconds:.1f} s"
        + (f", then {sum(later) / len(later):.1f} s a frame" if later else "") + f"), painted by "
        f"{result.frames[0].renderer}" + "".join(f" ({n})" for n in (result.renderer_note, result.note) if n)
        + (" (interrupted: --resume goes on from here)" if result.cancelled else ""))
    log("wrote " + ", ".join(written))
    return 0


def _resumed_frames(args, clip, painter, settings) -> list:
    """The frames the --json file holds, as VideoFrames with their paintings (the strokes painted again as the
    run painted them: MyPaint where it painted, else the painter), checked against the clip."""
    from ..brush.rerender import mypaint_brush_name
    from ..export.stroke_clip import load_clip
    from ..images import image_tensor
    from ..painting.canvas import render_canvas
    from ..painting.video import VideoFrame
    import numpy as np
    saved = load_clip(args.json)
    names = [name for _, _, name in saved.frames]
    if names != clip.names[:len(names)]:
        raise CliError(f"--resume: {args.json} holds the frames {names[:3]}..., not the first frames of {args.clip!r} "
                       f"({clip.names[:3]}...): give the stroke file of this clip, or leave out --resume")
    frames = []
    for strokes, ids, _ in saved.frames:
        brush = mypaint_brush_name(strokes.brush) if settings.real_brush else None
        canvas, renderer = None, "neural painter"
        if brush is not None:
            from ..brush.mypaint import MyPaintUnavailable
            from ..brush.rerender import rerender_mypaint
            try:      # as the run painted it: MyPaint where libmypaint is here, else the painter
                image = rerender_mypaint(strokes, 1.0, dtype=np.float32, brush_seed=settings.brush_seed)
                canvas, renderer = image_tensor(image), f"mypaint:{brush}"
            except MyPaintUnavailable:
                pass
        if canvas is None:
            canvas = render_canvas(painter, strokes).detach().cpu()
        frames.append(VideoFrame(canvas, strokes, ids, 0.0, renderer))
    return frames


def _paint_clip(painter, clip, settings, args, dev, resume, fps):
    from ..objectives.objective import photo_objectives
    from ..painting.video import clip_steps, paint_video
    frames, bar = clip.frames, None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=clip_steps(settings, len(frames)), initial=clip_steps(settings, len(resume)), unit="step",
                   dynamic_ncols=True, file=sys.stderr)
    painted = list(resume)     # the frames so far, for the stroke file written after each one

    def on_step(index, step, info):
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(frame=f"{index + 1}/{len(frames)}", loss=f"{info.loss:.4f}")

    def on_frame(index, frame):
        painted.append(frame)
        if args.json:
            from ..export.stroke_clip import save_clip
            save_clip(args.json, [(f.strokes, f.ids, n) for f, n in zip(painted, clip.names)], fps)

    try:
        return paint_video(painter, frames, settings, objective_for=photo_objectives(args.feature_weight),
                           on_step=on_step, on_frame=on_frame, device=dev, resume=resume)
    finally:
        if bar is not None:
            bar.close()


def _exports(result, names, fps, args) -> list[str]:
    import numpy as np
    import torch
    from ..export.video_files import write_frames
    from ..images import image_tensor
    written = [args.json] if args.json else []       # written after every frame
    if args.rerender:
        from ..brush.rerender import rerender_mypaint
        images = [image_tensor(rerender_mypaint(f.strokes, args.rerender_scale, dtype=np.float32,
                                                brush_seed=args.brush_seed)) for f in result.frames]
        written.append(write_frames(args.rerender, torch.cat(images), names, fps))
    return written
