"""Optimize Actions: paint by optimising strokes through a frozen neural painter against a loss.

Its widgets are painting/settings.py's fields (default, bounds, tooltip): a default is written once, there.
"""
from __future__ import annotations

import json

import torch

from ..painter_models.objectives import losses
from ..painter_models.painting import optimize
from ..painter_models.painting.settings import FIELDS, PaintSettings, plan_canvas
from . import comfy_adapter as comfy
from .common import (NEURAL_PAINTER, PAINTING, PAINT_LOSS, STROKES, NodeError, bchw_to_image, check_painter_matches,
                     image_to_bchw, user_errors)
from .nodes_losses import describe

# The widgets in the order saved workflows hold their values (by position): new ones go at the end.
REQUIRED = ("size", "strokes", "rounds", "steps", "learning_rate", "min_stroke_size", "max_stroke_size", "seed",
            "blend")
OPTIONAL = ("init_strokes", "keep_training", "palette", "greyscale", "opaque", "background", "background_image",
            "snapshot_every", "polish_steps", "real_brush", "width", "height", "time_limit", "brush_seed", "init")
WIDGET_TYPES = {"int": "INT", "float": "FLOAT", "bool": "BOOLEAN", "str": "STRING"}


def setting_widget(name: str) -> tuple:
    """A settings field as a ComfyUI widget: its type, default, bounds and help."""
    f = FIELDS[name]
    meta = f.metadata
    options = {"default": f.default, "tooltip": meta["help"]}
    if meta["choices"]:
        return list(meta["choices"]), options
    kind = meta["widget"] or WIDGET_TYPES[f.type]
    if kind in ("INT", "FLOAT"):
        cast = int if kind == "INT" else float
        options.update(default=cast(f.default), min=cast(meta["lo"]), max=cast(meta["hi"]), step=meta["step"] or 1)
    if name == "seed":
        options["control_after_generate"] = True
    return kind, options


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
        other = {
            "init_strokes": (STROKES, {"tooltip": "Optional: strokes to start from (e.g. Load Strokes, Random "
                                                  "Actions); kept under the new strokes. The canvas is theirs."}),
            "background_image": ("IMAGE", {"tooltip": "Optional: paint over this image instead of a colour (or "
                                                      "instead of the init_strokes' own background)."}),
        }
        return {
            "required": {
                "painter": (NEURAL_PAINTER, {"tooltip": "The frozen painter strokes are rendered with."}),
                "loss": (PAINT_LOSS, {"tooltip": "What to minimise (VGG Feature Loss, Pixel Loss, CLIP Text Loss, "
                                                 "Combine Losses)."}),
                **{name: setting_widget(name) for name in REQUIRED},
            },
            "optional": {name: other[name] if name in other else setting_widget(name) for name in OPTIONAL},
        }

    @user_errors("Optimize Actions")
    def optimize(self, painter, loss, init_strokes=None, background_image=None, **widgets):
        settings = PaintSettings(**widgets)             # checked in the core: one message everywhere
        photo = losses.target_image(loss)
        if init_strokes is not None:
            check_painter_matches(painter, init_strokes, "Optimize Actions")
            canvas_size, canvas_note = init_strokes.canvas_size, "the canvas of the init strokes"
        else:
            canvas_size, canvas_note = plan_canvas(settings, None if photo is None else tuple(photo.shape[-2:]))
        backdrop = _backdrop(background_image, init_strokes)
        # paint() polishes only after new strokes (predicted strokes are refined, not polished)
        polish_steps = settings.polish_steps if settings.strokes and settings.init == "seed" else 0
        progress = comfy.Progress(max(1, settings.steps + polish_steps), "painting")

        def on_step(p):
            # an update is also the interrupt point: Cancel raises out of paint() here
            progress.update(p.step, preview=p.preview)

        with comfy.on_compute_device(painter, loss) as device:
            try:
                result = optimize.paint(painter, loss, canvas_size, settings, init=init_strokes, target_for_seeding=photo,
                                        backdrop=backdrop, callback=on_step, preview_every=1, device=device)
            except FloatingPointError as e:
                raise NodeError(f"Optimize Actions: {e}; lower the learning rate or the loss weights") from None
            finally:
                progress.close()
        image = bchw_to_image(result.canvas)
        snapshots = torch.cat([bchw_to_image(c) for _, c in result.snapshots]) if result.snapshots else image
        if snapshots.shape[1:] != image.shape[1:]:
            snapshots = image
        return (result.strokes, image, snapshots, report(result, loss, canvas_note))


def _backdrop(background_image, init_strokes):
    """What the strokes are painted over when not the background colour: an image, or the init strokes' own."""
    if background_image is not None:
        if background_image.shape[0] > 1:
            raise NodeError(f"Optimize Actions: background_image is a batch of {background_image.shape[0]} images and "
                            f"a painting has one background: split the batch into a list with the core node Rebatch "
                            f"Images (batch_size 1), and each image gets its own painting")
        return image_to_bchw(background_image)      # paint() moves it to the device
    if init_strokes is not None:
        return init_strokes.backdrop    # continuing a painting keeps what it was painted over (e.g. a photo)
    return None
