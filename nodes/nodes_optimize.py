"""Optimize Actions: paint by optimising strokes through a frozen neural painter against a loss."""
from __future__ import annotations

import inspect
import json

import torch

from ..painter_models import limits
from ..painter_models.objectives import losses
from ..painter_models.painting import optimize
from . import comfy_adapter as comfy
from .common import (MAX_SIDE, MAX_STROKES, NEURAL_PAINTER, PAINTING, PAINT_LOSS, SEED_MAX, STROKES, NodeError,
                     bchw_to_image, check_painter_matches, colour_from_hex, image_to_bchw, user_errors)
from .nodes_losses import describe

MAX_STEPS = 100_000


def engine_default(name: str):
    """paint()'s own default for one of its parameters: the node offers what the engine was tuned with."""
    return inspect.signature(optimize.paint).parameters[name].default


def parse_palette(text: str):
    """'' -> None; '8' -> 8 (a k-means palette of the target); '#ff0000, #00ff00' -> ['#ff0000', '#00ff00']."""
    text = (text or "").strip()
    if not text:
        return None
    if text.isdigit():
        k = int(text)
        if not 1 <= k <= 256:
            raise NodeError(f"Optimize Actions: a k-means palette needs 1..256 colours, got {k}")
        return k
    colours = [c.strip() for c in text.replace(";", ",").replace("\n", ",").split(",") if c.strip()]
    for c in colours:
        body = c[1:] if c.startswith("#") else c
        if len(body) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in body):
            raise NodeError(f"Optimize Actions: palette colour {c!r} is not #rrggbb; write e.g. "
                            f"'#1b1b1b, #e0c080, #3060a0' or a number of colours to take from the image")
    return [c if c.startswith("#") else "#" + c for c in colours]


def plan_canvas(size: int, width: int, height: int, photo) -> tuple[tuple[int, int], str]:
    """((height, width), what became of the photo's frame) of the canvas: `size` is its long side at the
    photo's aspect ratio (square without a photo); width and/or height, when set, override it."""
    ph, pw = (int(photo.shape[-2]), int(photo.shape[-1])) if photo is not None else (None, None)
    ratio = ph / pw if photo is not None else 1.0                       # height / width
    if width and height:
        h, w = int(height), int(width)
    elif width:
        w, h = int(width), max(16, round(int(width) * ratio))
    elif height:
        h, w = int(height), max(16, round(int(height) / ratio))
    elif ratio <= 1:
        w, h = int(size), max(16, round(int(size) * ratio))
    else:
        h, w = int(size), max(16, round(int(size) / ratio))
    if h > MAX_SIDE or w > MAX_SIDE:
        raise NodeError(f"Optimize Actions: a {w}x{h} canvas is more than {MAX_SIDE} px a side: lower size, width "
                        f"or height")
    if photo is None:
        return (h, w), "no photograph: the canvas is as asked"
    if abs(h / w - ratio) <= 0.01 * ratio:
        return (h, w), f"the {pw}x{ph} photograph fills the {w}x{h} canvas"
    if h / w < ratio:
        kept = round(pw * h / w)
        return (h, w), (f"the {pw}x{ph} photograph was cropped to the {w}x{h} canvas: {ph - kept} px of its height "
                        f"cut off (half at the top, half at the bottom); set width and height to 0 to keep it whole")
    kept = round(ph * w / h)
    return (h, w), (f"the {pw}x{ph} photograph was cropped to the {w}x{h} canvas: {pw - kept} px of its width cut "
                    f"off (half each side); set width and height to 0 to keep it whole")


def report(result, loss, canvas_note: str) -> str:
    """A short JSON summary of the run for the node's text output."""
    history = result.history
    first, last = (history[0]["loss"], history[-1]["loss"]) if history else (None, None)
    h, w = result.strokes.canvas_size
    return json.dumps({"strokes": len(result.strokes), "steps": len(history), "seconds": round(result.seconds, 2),
                       "painted_by": result.renderer, **({"note": result.note} if result.note else {}),
                       "canvas": f"{w}x{h}", "photograph": canvas_note,
                       "loss_first": first, "loss_last": last, "terms_last": history[-1]["terms"] if history else {},
                       "objective": describe(loss), "cancelled": result.cancelled, "timed_out": result.timed_out},
                      indent=1)


class OptimizeActions:
    DESCRIPTION = ("Paints by optimising brushstrokes: strokes are added in coarse-to-fine rounds where the error "
                   "is largest, and their actions (curve, pressure, size, colour) and boxes are optimised with "
                   "Adam through the frozen painter to minimise the loss. Shows a live preview; Cancel stops it.")
    CATEGORY = PAINTING
    FUNCTION = "optimize"
    RETURN_TYPES = (STROKES, "IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("strokes", "image", "snapshots", "report")
    OUTPUT_TOOLTIPS = ("The optimised strokes (the init strokes, then the new ones, in painting order).",
                       "The painting.",
                       "Snapshots of the canvas during the optimisation (every snapshot_every steps and at the end "
                       "of each round), as an image batch; just the painting when snapshot_every is 0.",
                       "JSON summary: steps, time, first and last loss, per-term losses.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "painter": (NEURAL_PAINTER, {"tooltip": "The frozen painter strokes are rendered with."}),
                "loss": (PAINT_LOSS, {"tooltip": "What to minimise (VGG Feature Loss, Pixel Loss, CLIP Text Loss, "
                                                 "Combine Losses)."}),
                "size": ("INT", {"default": 512, "min": 16, "max": MAX_SIDE, "step": 8, "tooltip":
                                 "The canvas's long side in pixels; the canvas takes the aspect ratio of the "
                                 "loss's photograph (square for a text prompt). Set width / height to force "
                                 "another. Ignored when init_strokes are given."}),
                "strokes": ("INT", {"default": 300, "min": 0, "max": MAX_STROKES, "step": 1,
                                    "tooltip": "New strokes to add (on top of init_strokes)."}),
                "rounds": ("INT", {"default": engine_default("rounds"), "min": 1, "max": 64, "step": 1,
                                   "tooltip": "Coarse-to-fine rounds: stroke size falls from max to min over them."}),
                "steps": ("INT", {"default": 300, "min": 0, "max": MAX_STEPS, "step": 1,
                                  "tooltip": "Optimisation steps in all, split over the rounds."}),
                "learning_rate": ("FLOAT", {"default": engine_default("lr"), "min": 0.0001, "max": 1.0,
                                            "step": 0.001, "tooltip":
                                            "Adam learning rate of the actions (cosine schedule per round)."}),
                "min_stroke_size": ("INT", {"default": 0, "min": 0, "max": 4 * MAX_SIDE, "step": 1, "tooltip":
                                            "Smallest stroke box side in pixels (0: from the canvas and "
                                            "stroke count)."}),
                "max_stroke_size": ("INT", {"default": 0, "min": 0, "max": 4 * MAX_SIDE, "step": 1, "tooltip":
                                            "Largest stroke box side in pixels (0: automatic)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True,
                                 "tooltip": "Same seed, same painting."}),
                "blend": (["alpha", "linear"], {"default": "alpha", "tooltip":
                                                "alpha: the painter's own alpha; linear: Nakano's darkness mask."}),
            },
            "optional": {
                "init_strokes": (STROKES, {"tooltip": "Optional: strokes to start from (e.g. Load Strokes, Random "
                                                      "Actions); kept under the new strokes."}),
                "keep_training": ("BOOLEAN", {"default": False, "tooltip":
                                              "Keep optimising earlier strokes in later rounds (slower, a little "
                                              "better); off: each round's strokes are frozen when the next starts."}),
                "palette": ("STRING", {"default": "", "tooltip": "Optional: a fixed palette '#rrggbb, #rrggbb, ...', "
                                       "or a number k for a k-means palette of the target image; empty: any colour."}),
                "greyscale": ("BOOLEAN", {"default": False, "tooltip": "Grey strokes only."}),
                "opaque": ("BOOLEAN", {"default": False, "tooltip": "Full pressure: the brush's most opaque strokes."}),
                "background": ("STRING", {"default": "#ffffff", "tooltip":
                                          "Canvas colour under the strokes, #rrggbb (not used with init_strokes: "
                                          "they are painted over their own background)."}),
                "background_image": ("IMAGE", {"tooltip": "Optional: paint over this image instead of a colour "
                                                          "(or instead of the init_strokes' own background)."}),
                "snapshot_every": ("INT", {"default": 0, "min": 0, "max": MAX_STEPS, "step": 1, "tooltip":
                                           "Keep a snapshot of the canvas every this many steps (0: only the "
                                           "painting)."}),
                "polish_steps": ("INT", {"default": engine_default("polish_steps"), "min": 0, "max": MAX_STEPS,
                                         "step": 1, "tooltip":
                                         "Extra steps after the rounds in which every stroke (earlier rounds and "
                                         "init strokes too) is optimised again together, smoothing the seams "
                                         "between rounds; 0: none. Not used when strokes is 0 (then the init "
                                         "strokes train in every step anyway)."}),
                "real_brush": ("BOOLEAN", {"default": True, "tooltip":
                                           "Paint with the real MyPaint brush in the loop: the loss sees what "
                                           "MyPaint paints (its grain, every stroke whole) and the image is MyPaint's "
                                           "own painting of the strokes, what Re-render with MyPaint gives at scale 1. "
                                           "Needs libmypaint; without it the painter's canvas, and the report says "
                                           "so. Off: the neural painter's canvas."}),
                "width": ("INT", {"default": 0, "min": 0, "max": MAX_SIDE, "step": 8, "tooltip":
                                  "Force the canvas width in pixels (0: from size and the photograph's aspect "
                                  "ratio). A ratio other than the photograph's crops it; the report says how."}),
                "height": ("INT", {"default": 0, "min": 0, "max": MAX_SIDE, "step": 8, "tooltip":
                                   "Force the canvas height in pixels (0: from size and the photograph's aspect "
                                   "ratio)."}),
                "time_limit": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 1.0, "tooltip":
                                         "Stop after this many seconds with the best painting so far (later "
                                         "rounds' strokes may be missing); 0: no limit."}),
            },
        }

    @user_errors("Optimize Actions")
    def optimize(self, painter, loss, size=512, strokes=300, rounds=4, steps=300, learning_rate=None,
                 min_stroke_size=0, max_stroke_size=0, seed=0, blend="alpha", init_strokes=None, keep_training=False,
                 palette="", greyscale=False, opaque=False, background="#ffffff", background_image=None,
                 snapshot_every=0, polish_steps=0, real_brush=True, width=0, height=0, time_limit=0.0):
        photo = losses.target_image(loss)
        if init_strokes is not None:
            check_painter_matches(painter, init_strokes, "Optimize Actions")
            (height, width), canvas_note = init_strokes.canvas_size, "the canvas of the init strokes"
        else:
            (height, width), canvas_note = plan_canvas(size, width, height, photo)
        if background_image is not None and background_image.shape[0] > 1:
            raise NodeError(f"Optimize Actions: background_image is a batch of {background_image.shape[0]} images and "
                            f"a painting has one background: split the batch into a list with the core node Rebatch "
                            f"Images (batch_size 1), and each image gets its own painting")
        if min_stroke_size and max_stroke_size and min_stroke_size > max_stroke_size:
            raise NodeError(f"Optimize Actions: min_stroke_size {min_stroke_size} is larger than max_stroke_size "
                            f"{max_stroke_size}")
        largest = limits.MAX_BOX_SIDE * max(int(width), int(height))
        biggest = max(min_stroke_size, max_stroke_size)
        if biggest > largest:
            raise NodeError(f"Optimize Actions: stroke sizes of {biggest} px are more than {limits.MAX_BOX_SIDE:g}x the "
                            f"{width}x{height} canvas; use at most {largest:g}")
        if learning_rate is not None:
            learning_rate = limits.finite_positive(learning_rate, "learning_rate")
        if time_limit:
            time_limit = limits.finite_positive(time_limit, "time_limit")
        if snapshot_every:
            # every snapshot_every steps plus one at the end of each round (and of the polish)
            count = (int(steps) + int(polish_steps)) // int(snapshot_every) + int(rounds) + 1
            limits.check_batch(count, int(height), int(width), "Optimize Actions: snapshots",
                               "raise snapshot_every (0: none), or lower steps")
        if strokes == 0 and (init_strokes is None or len(init_strokes) == 0):
            raise NodeError("Optimize Actions: nothing to paint: set strokes above 0 or connect init_strokes")
        if learning_rate is None:
            learning_rate = engine_default("lr")
        polish_steps = int(polish_steps) if strokes > 0 else 0  # paint() polishes only after new strokes
        progress = comfy.Progress(max(1, int(steps) + polish_steps), "painting")

        def on_step(p):
            # an update is also the interrupt point: Cancel raises out of paint() here
            progress.update(p.step, preview=p.preview)

        if background_image is not None:
            bg = image_to_bchw(background_image)   # paint() moves it to the device
        elif init_strokes is not None:
            bg = init_strokes.backdrop  # continuing a painting keeps what it was painted over (e.g. a photo)
        else:
            bg = colour_from_hex(background, "Optimize Actions: background")
        with comfy.on_compute_device(painter, loss) as device:
            try:
                with torch.enable_grad():  # ComfyUI runs nodes with gradients off
                    result = optimize.paint(
                        painter, loss, (int(height), int(width)), strokes=int(strokes), rounds=int(rounds),
                        steps=int(steps), lr=float(learning_rate), min_size=float(min_stroke_size) or None,
                        max_size=float(max_stroke_size) or None, palette=parse_palette(palette),
                        greyscale=bool(greyscale), opaque=bool(opaque), blend=blend, background=bg,
                        seed=int(seed) % 2**63, init=init_strokes, keep_training=bool(keep_training),
                        polish_steps=polish_steps, real_brush="auto" if real_brush else False,
                        time_limit=time_limit or None, target_for_seeding=photo, callback=on_step, preview_every=1,
                        snapshot_every=int(snapshot_every), device=device)
            except FloatingPointError as e:
                raise NodeError(f"Optimize Actions: {e}; lower the learning rate or the loss weights") from None
            finally:
                progress.close()
        image = bchw_to_image(result.canvas)
        if result.snapshots:
            snaps = torch.cat([bchw_to_image(c) for _, c in result.snapshots])
            if snaps.shape[1:] != image.shape[1:]:
                snaps = image
        else:
            snaps = image
        return (result.strokes, image, snaps, report(result, loss, canvas_note))
