"""Paint Video: an IMAGE batch of frames painted as a clip whose strokes stay put and move with the picture
(painting/video.py), with one progress bar over all frames, Cancel, a live preview and the time limit."""
from __future__ import annotations

import json

import torch

from ..painter_models.objectives.objective import photo_objectives
from ..painter_models.painting import video
from ..painter_models.painting.settings import PaintSettings, plan_canvas
from . import comfy_adapter as comfy
from .common import NEURAL_PAINTER, PAINTING, STROKES, NodeError, bchw_to_image, image_to_bchw, user_errors
from .nodes_optimize import setting_widget

# saved workflows hold widget values by position: new ones go at the end
WIDGETS = ("size", "strokes", "rounds", "steps", "learning_rate", "refine_steps", "refine_learning_rate", "seed",
           "real_brush", "time_limit", "brush_seed")


class PaintVideo:
    DESCRIPTION = ("Paints a batch of frames (a video) as a clip: the first frame as a still, then every frame from "
                   "the previous one's strokes, moved along the picture's motion, with new strokes where the "
                   "picture changed and a short refinement. Strokes keep their identity, so the clip does not "
                   "flicker, and each frame costs a fraction of a still.")
    CATEGORY = PAINTING
    FUNCTION = "paint"
    RETURN_TYPES = ("IMAGE", STROKES, "STRING")
    RETURN_NAMES = ("frames", "strokes", "report")
    OUTPUT_IS_LIST = (False, True, False)
    OUTPUT_TOOLTIPS = ("The painted frames, as a batch (Save Animated WEBP writes them as an animation).",
                       "Each frame's strokes, as a list (Re-render with MyPaint, Strokes to SVG and Save Strokes "
                       "take each frame's in turn).",
                       "JSON summary: frames, strokes carried over and added, seconds per frame.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "painter": (NEURAL_PAINTER, {"tooltip": "The painter whose brush paints the clip."}),
                "frames": ("IMAGE", {"tooltip": "The clip's frames, as a batch (e.g. from a video loader)."}),
                **{name: setting_widget(name) for name in WIDGETS},
            },
            "optional": {
                "feature_weight": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.05,
                                             "tooltip": "Weight of the perceptual feature loss (EfficientNet-Lite0) "
                                                        "beside the pixel loss; 0: pixel loss only (fastest)."}),
            },
        }

    @user_errors("Paint Video")
    def paint(self, painter, frames, feature_weight=0.0, **widgets):
        settings = PaintSettings(**widgets)
        clip = image_to_bchw(frames)
        size, _ = plan_canvas(settings, tuple(clip.shape[-2:]))
        progress = comfy.Progress(max(1, video.clip_steps(settings, clip.shape[0])), "painting a clip")

        def on_step(index, step, info):
            progress.update(step, preview=info.preview)   # also the interrupt point

        def on_frame(index, frame):
            progress.update(video.clip_steps(settings, index + 1), preview=frame.canvas)

        with comfy.on_compute_device(painter) as device:
            try:
                result = video.paint_video(painter, clip, settings, objective_for=photo_objectives(feature_weight),
                                           on_step=on_step, on_frame=on_frame, preview_every=1, device=device)
            except FloatingPointError as e:
                raise NodeError(f"Paint Video: {e}; lower the learning rates") from None
            finally:
                progress.close()
        painted = torch.cat([bchw_to_image(f.canvas) for f in result.frames])
        return painted, [f.strokes for f in result.frames], report(result, size)


def report(result, size) -> str:
    frames = result.frames
    return json.dumps({"frames": len(frames), "canvas": f"{size[1]}x{size[0]}", "painted_by": frames[0].renderer,
                       "seconds_first": round(frames[0].seconds, 2),
                       "seconds_per_later_frame": round(sum(f.seconds for f in frames[1:]) / max(1, len(frames) - 1),
                                                        2),
                       "strokes": [len(f.strokes) for f in frames], "carried": [f.moved for f in frames],
                       "added": [f.added for f in frames],
                       **({"note": n} if (n := "; ".join(filter(None, [result.renderer_note, result.note]))) else {})},
                      indent=1)
