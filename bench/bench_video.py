"""Painting a clip (issue 24): flicker, quality and time of painting/video.py against the same frames painted one by
one, on clips made by moving a camera over photographs kept out of all tuning.

    python bench/bench_video.py                  # chelsea pan, grace_hopper zoom, rocket still stretch
    python bench/bench_video.py --jobs 2 --write

Every clip is 256 px, painted as `neural-painters paint-video` paints it (the CLI's defaults: 300 strokes, the
first frame in 200 steps, later ones in --refine-steps; pixel L2; MyPaint in the loop), one torch thread, in its
own process. The first frames are also painted from scratch, each as a still with the same settings (the
frame-by-frame baseline). Flicker is the mean absolute change of a painting from one frame to the next once the
known camera motion is undone (the previous frame resampled to the next one's view; only where both see the
picture), in 0..1 RGB; the source clip's own flicker (resampling only) is its floor. --write adds the table to
BENCHMARKS.md and writes bench/results/video_pan.webp (source beside painting) for the README.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_feature_colour import load_any_photo  # noqa: E402

BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")
ANIMATION = os.path.join(ROOT, "bench", "results", "video_pan.webp")
TITLE = "Painting a clip (bench/bench_video.py)"
SIDE = 256
CLIPS = {"pan": ("chelsea", 10), "zoom": ("grace_hopper", 8), "still": ("rocket", 6)}   # motion: (photo, frames)


def camera(motion: str, t: int) -> tuple[float, float, float]:
    """(centre x, centre y, source px per canvas px) of frame t over a 2 x SIDE px source picture."""
    if motion == "pan":
        return SIDE - 24 + 8 * t, SIDE, 1.6              # 5 canvas px a frame to the right
    if motion == "zoom":
        return SIDE, SIDE, 1.8 / 1.04 ** t               # 4 % closer a frame
    return SIDE, SIDE, 1.6


def view(source: torch.Tensor, motion: str, t: int) -> torch.Tensor:
    """Frame t: [1, 3, SIDE, SIDE] sampled (bilinear) from source [1, 3, 2 SIDE, 2 SIDE]."""
    cx, cy, s = camera(motion, t)
    p = torch.arange(SIDE, dtype=torch.float32) - (SIDE - 1) / 2
    ys, xs = torch.meshgrid(cy + p * s, cx + p * s, indexing="ij")
    n = source.shape[-1]
    grid = torch.stack([(xs + 0.5) / n * 2 - 1, (ys + 0.5) / n * 2 - 1], -1)[None]
    return F.grid_sample(source, grid, mode="bilinear", align_corners=False)


def undo_motion(previous: torch.Tensor, motion: str, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frame t-1's image resampled into frame t's view, the mask where frame t-1 saw that point)."""
    (ax, ay, a), (bx, by, b) = camera(motion, t - 1), camera(motion, t)
    p = torch.arange(SIDE, dtype=torch.float32) - (SIDE - 1) / 2
    ys, xs = torch.meshgrid(by + p * b, bx + p * b, indexing="ij")              # source coordinates of frame t
    u, v = (xs - ax) / a + (SIDE - 1) / 2, (ys - ay) / a + (SIDE - 1) / 2        # the same points in frame t-1
    grid = torch.stack([(u + 0.5) / SIDE * 2 - 1, (v + 0.5) / SIDE * 2 - 1], -1)[None]
    inside = ((u >= 0) & (u <= SIDE - 1) & (v >= 0) & (v <= SIDE - 1)).float()
    return F.grid_sample(previous, grid, mode="bilinear", align_corners=False), inside


def flicker(images: list[torch.Tensor], motion: str) -> float:
    changes = []
    for t in range(1, len(images)):
        before, inside = undo_motion(images[t - 1], motion, t)
        changes.append(float(((images[t] - before).abs().mean(1)[0] * inside).sum() / inside.sum()))
    return float(np.mean(changes))


def frames_of(motion: str) -> torch.Tensor:
    photo, count = CLIPS[motion]
    source = load_any_photo(photo, 2 * SIDE)
    return torch.cat([view(source, motion, t) for t in range(count)])


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def real_frames(case: dict) -> torch.Tensor:
    """A stretch of a real clip (--real PATH --real-frames A:B), its long side at --real-size px."""
    from painter_models.export.video_files import read_frames
    a, b = case["range"]
    return read_frames(case["path"], max_side=case["size"]).frames[a:b]


def warping_error(images: list[torch.Tensor], frames: torch.Tensor) -> float:
    """Mean |image_t - image_{t-1} moved by the source's own flow| (what temporal-consistency studies measure on
    clips whose motion is not known), over the pixels the flow keeps on the canvas."""
    from painter_models.painting.video import frame_flow
    errors = []
    for t in range(1, len(images)):
        flow = frame_flow(frames[t - 1:t], frames[t:t + 1])
        h, w = flow.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        # backward warp: where each pixel of frame t came from, by the inverse of the forward flow (small motion)
        grid = torch.stack([(xs - flow[1]) / (w - 1), (ys - flow[0]) / (h - 1)], -1)[None] * 2 - 1
        before = F.grid_sample(images[t - 1], grid, mode="bilinear", align_corners=True)
        inside = ((grid.abs() <= 1).all(-1)).float()
        errors.append(float(((images[t] - before).abs().mean(1) * inside).sum() / inside.sum()))
    return float(np.mean(errors))


def run_clip(case: dict) -> dict:
    from painter_models import load_painter
    from painter_models.painter.shipped import find_painter
    from painter_models.painting.video import paint_video
    frames = real_frames(case) if case["motion"] == "real" else frames_of(case["motion"])
    size, times, t0 = case.get("size", SIDE), [], cpu()
    clip = paint_video(load_painter(find_painter(None)), frames, size=size, refine_steps=case["refine_steps"],
                       strokes=case.get("strokes", 300), on_frame=lambda i, f: times.append(cpu()))
    torch.save(torch.cat([f.canvas for f in clip.frames]), case["out"])
    return {**case, "cpu_s": np.diff([t0] + times).tolist(), "moved": [f.moved for f in clip.frames],
            "added": [f.added for f in clip.frames], "painted_by": clip.frames[0].renderer}


def run_still(case: dict) -> dict:
    from painter_models import load_painter
    from painter_models.objectives.objective import photo_objective
    from painter_models.painter.shipped import find_painter
    from painter_models.painting.optimize import paint
    frames = real_frames(case) if case["motion"] == "real" else frames_of(case["motion"])
    frame = frames[case["frame"]:case["frame"] + 1]
    t0 = cpu()
    result = paint(load_painter(find_painter(None)), photo_objective(frame, pixel=1.0, pixel_kind="l2"),
                   case.get("size", SIDE), strokes=case.get("strokes", 300), target_for_seeding=frame)
    torch.save(result.canvas, case["out"])
    return {**case, "cpu_s": cpu() - t0}


def spawn(case: dict) -> dict:
    """A case in its own process; its result is kept beside its output, so --reuse can skip it next time."""
    saved = case["out"] + ".json"
    if case.get("reuse") and os.path.exists(saved) and os.path.exists(case["out"]):
        return json.load(open(saved))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(case)], capture_output=True,
                       text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{case}: {p.stderr.strip().splitlines()[-1:]}")
    with open(saved, "w") as f:
        f.write(p.stdout.strip().splitlines()[-1])
    return json.loads(p.stdout.strip().splitlines()[-1])


def summarise(motion: str, clip: dict, stills: list[dict]) -> dict:
    from painter_models.metrics import psnr
    from painter_models.painting.settings import DEFAULTS
    frames = frames_of(motion)
    painted = torch.load(clip["out"], weights_only=True)
    scratch = [torch.load(s["out"], weights_only=True) for s in sorted(stills, key=lambda s: s["frame"])]
    row = {"motion": motion, "photo": CLIPS[motion][0], "frames": len(frames),
           "flicker": flicker([p[None] for p in painted], motion),
           "source_flicker": flicker([f[None] for f in frames], motion),
           "psnr": [float(psnr(painted[t:t + 1], frames[t:t + 1])) for t in range(len(frames))],
           "cpu_first": clip["cpu_s"][0], "cpu_later": float(np.mean(clip["cpu_s"][1:])),
           "added": clip["added"][1:], "painted_by": clip["painted_by"], "refine_steps": clip["refine_steps"],
           "strokes": clip["added"][0], "steps": DEFAULTS.steps}
    if scratch:
        row.update(scratch_flicker=flicker(scratch[:3], motion),      # the first transitions, as measured before
                   cpu_still=float(np.mean([s["cpu_s"] for s in stills])),
                   scratch_psnr=[float(psnr(s, frames[t:t + 1])) for t, s in enumerate(scratch)])
        row["worst_gap"] = min(row["psnr"][t] - row["scratch_psnr"][t] for t in range(len(scratch)))
    else:
        row["max_change"] = max(float((painted[t] - painted[t - 1]).abs().mean()) for t in range(1, len(frames)))
    return row


def summarise_real(clip: dict, stills: list[dict]) -> str:
    from painter_models.metrics import psnr
    frames = real_frames(clip)
    painted = torch.load(clip["out"], weights_only=True)
    scratch = [torch.load(s["out"], weights_only=True) for s in sorted(stills, key=lambda s: s["frame"])]
    n = len(scratch)
    coherent, one_by_one = warping_error([p[None] for p in painted[:n]], frames[:n]), warping_error(scratch, frames[:n])
    source = warping_error([f[None] for f in frames[:n]], frames[:n])
    gap = min(float(psnr(painted[t:t + 1], frames[t:t + 1])) - float(psnr(scratch[t], frames[t:t + 1]))
              for t in range(n))
    a, b = clip["range"]
    return (f"Real clip: `{os.path.basename(clip['path'])}` frames {a}-{b - 1} ({b - a} frames, {clip['size']} px, "
            f"{clip['strokes']} strokes), all painted both ways. Its motion is not known, so flicker is the warping "
            f"error (each frame against the previous one moved by the source's own optical flow): clip "
            f"{coherent:.4f}, frame by frame {one_by_one:.4f}, the source itself {source:.4f} "
            f"({coherent / one_by_one:.2f}x of frame by frame); worst frame {gap:+.2f} dB against its still; CPU s "
            f"a later frame {np.mean(clip['cpu_s'][1:]):.1f} against {np.mean([s['cpu_s'] for s in stills]):.1f} "
            f"for a still.")


def animation(motion: str, clip: dict, path: str):
    from painter_models.export.video_files import write_frames
    frames, painted = frames_of(motion), torch.load(clip["out"], weights_only=True)
    write_frames(path, torch.cat([frames, painted], -1), fps=6)
    return path


def section(rows: list[dict], command: str, started, load, machine: str) -> str:
    lines = [f"## {TITLE} on {machine}", "",
             f"- Date: {started:%Y-%m-%d %H:%M}-{datetime.datetime.utcnow():%H:%M} UTC; load average at start "
             f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; torch {torch.__version__}",
             f"- Command: `{command}`"]
    if not rows:
        return "\n".join(lines) + "\n"
    lines += [
             f"- {SIDE} px, {rows[0]['strokes']} strokes, the CLI's defaults (first frame {rows[0]['steps']} steps; "
             f"later frames {rows[0]['refine_steps']} refinement steps); pixel L2; painted by {rows[0]['painted_by']}; "
             f"one thread",
             "", "| clip (photo, frames) | flicker: clip / frame by frame / source | PSNR dB: clip frames (min-max) / "
             "stills | worst frame: clip - its still, dB | CPU s: first frame / later frames (mean) / a still | "
             "strokes added per later frame |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        stills = f"{min(r['scratch_psnr']):.2f}-{max(r['scratch_psnr']):.2f}" if "scratch_psnr" in r else "-"
        one_by_one = f"{r['scratch_flicker']:.4f}" if "scratch_flicker" in r else \
            f"(max change between painted frames {r['max_change']:.5f})"
        gap = f"{r['worst_gap']:+.2f} ({len(r['scratch_psnr'])} stills)" if "worst_gap" in r else "-"
        lines.append(f"| {r['motion']} ({r['photo']}, {r['frames']}) | {r['flicker']:.4f} / {one_by_one} / "
                     f"{r['source_flicker']:.4f} | {min(r['psnr']):.2f}-{max(r['psnr']):.2f} / {stills} | {gap} | "
                     f"{r['cpu_first']:.1f} / {r['cpu_later']:.1f} / {r.get('cpu_still', r['cpu_first']):.1f} | "
                     f"{', '.join(map(str, r['added']))} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--motions", default="pan,zoom,still")
    p.add_argument("--stills", type=int, default=10, help="frames also painted from scratch (pan and zoom; the "
                                                          "frame-by-frame flicker is taken over the first three)")
    p.add_argument("--refine-steps", type=int, default=None, help="default: the CLI's")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="keep the cases already in --out (their results were saved)")
    p.add_argument("--real", default=None, help="a real clip (video file or folder) to paint too, every frame both ways")
    p.add_argument("--real-frames", default="0:12", help="A:B, the stretch of --real painted")
    p.add_argument("--real-size", type=int, default=160)
    p.add_argument("--real-strokes", type=int, default=200)
    p.add_argument("--out", default=os.path.join(ROOT, "out", "bench_video"))
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        case = json.loads(args.child)
        torch.set_num_threads(1)
        print(json.dumps(run_clip(case) if case["kind"] == "clip" else run_still(case)))
        return 0
    from bench_core import cpu_count, cpu_model, write_section
    from painter_models.painting.settings import DEFAULTS
    os.makedirs(args.out, exist_ok=True)
    refine = DEFAULTS.refine_steps if args.refine_steps is None else args.refine_steps
    command = "python bench/bench_video.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, load = datetime.datetime.utcnow(), os.getloadavg()
    motions = [m for m in args.motions.split(",") if m]
    cases = [{"kind": "clip", "motion": m, "refine_steps": refine, "reuse": args.reuse,
              "out": os.path.join(args.out, f"{m}_refine{refine}.pt")} for m in motions]
    cases += [{"kind": "still", "motion": m, "frame": t, "reuse": args.reuse,
               "out": os.path.join(args.out, f"{m}_still{t}.pt")}
              for m in motions if m != "still" for t in range(min(args.stills, CLIPS[m][1]))]
    if args.real:
        a, b = (int(x) for x in args.real_frames.split(":"))
        real = {"motion": "real", "path": os.path.abspath(args.real), "range": [a, b], "size": args.real_size,
                "strokes": args.real_strokes, "reuse": args.reuse, "refine_steps": refine}
        cases += [{**real, "kind": "clip", "out": os.path.join(args.out, f"real_refine{refine}.pt")}]
        cases += [{**real, "kind": "still", "frame": t, "out": os.path.join(args.out, f"real_still{t}.pt")}
                  for t in range(b - a)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(spawn, cases))
    rows = [summarise(m, next(c for c in done if c["kind"] == "clip" and c["motion"] == m),
                      [c for c in done if c["kind"] == "still" and c["motion"] == m]) for m in motions]
    print(json.dumps(rows, indent=1), file=sys.stderr)
    text = section(rows, command, started, load, f"{cpu_model()}, {cpu_count()} cores")
    if args.real:
        text += "\n" + summarise_real(next(c for c in done if c["kind"] == "clip" and c["motion"] == "real"),
                                      [c for c in done if c["kind"] == "still" and c["motion"] == "real"]) + "\n"
    print(text)
    if args.write:
        write_section(text, BENCHMARKS)
        if "pan" in motions:
            animation("pan", next(c for c in done if c["kind"] == "clip" and c["motion"] == "pan"), ANIMATION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
