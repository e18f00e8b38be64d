"""Predict Strokes: a stroke predictor proposes all of a painting's strokes for a photograph in a second or
two, to keep as they are or to refine with Optimize Actions (its init_strokes)."""
from __future__ import annotations

import os

from ..painter_models.painter import shipped
from ..painter_models.painting import predict
from ..painter_models.painting.settings import PaintSettings, plan_canvas
from . import comfy_adapter as comfy
from .common import NEURAL_PAINTER, PAINTING, STROKES, NodeError, bchw_to_image, image_to_bchw, user_errors
from .nodes_optimize import setting_widget

AUTO = "auto (shipped for the painter)"


def predictor_choices() -> list[str]:
    """The shipped predictor for the painter (auto), the shipped ones by name, then the files in
    models/stroke_predictors."""
    own = [comfy.SHIPPED_PREFIX + os.path.basename(path) for path in shipped.shipped_predictors().values()]
    return [AUTO] + own + comfy.list_models("stroke_predictors")


def predictor_file(name: str) -> str | None:
    """The path of a predictor choice; None for auto."""
    if name == AUTO or not name:
        return None
    if name.startswith(comfy.SHIPPED_PREFIX):
        path = comfy.inside(shipped.PREDICTORS_DIR, name[len(comfy.SHIPPED_PREFIX):])
        if path is not None and os.path.isfile(path):
            return path
    path = comfy.model_path("stroke_predictors", name)
    if path is None:
        raise NodeError(f"Predict Strokes: stroke predictor {name!r} not found among the pack's shipped predictors "
                        f"and the files in ComfyUI/models/stroke_predictors; pick one from the list")
    return path


class PredictStrokes:
    DESCRIPTION = ("Predicts a painting's strokes for a photograph in one pass, coarse to fine, with a stroke "
                   "predictor trained for the painter's brush (MyPaint paints the canvas between levels where it "
                   "is installed). A second or two where Optimize Actions takes minutes, but a rougher painting: "
                   "connect its strokes to Optimize Actions' init_strokes (strokes 0) to refine them.")
    CATEGORY = PAINTING
    FUNCTION = "predict"
    RETURN_TYPES = (STROKES, "IMAGE")
    RETURN_NAMES = ("strokes", "image")
    OUTPUT_TOOLTIPS = ("The predicted strokes, coarse to fine in painting order (Optimize Actions' init_strokes "
                       "refines them).",
                       "The painting of the predicted strokes.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "painter": (NEURAL_PAINTER, {"tooltip": "The painter whose brush the strokes are for."}),
                "image": ("IMAGE", {"tooltip": "The photograph to paint."}),
                "strokes": setting_widget("strokes"),
                "size": setting_widget("size"),
            },
            "optional": {
                "predictor": (predictor_choices(), {"default": AUTO, "tooltip": "Stroke predictor: auto takes the "
                                                    "one shipped for the painter's brush; others are files in "
                                                    "ComfyUI/models/stroke_predictors (neural-painters-train "
                                                    "predictor)."}),
            },
        }

    @user_errors("Predict Strokes")
    def predict(self, painter, image, strokes, size, predictor=AUTO):
        if image.shape[0] > 1:
            raise NodeError(f"Predict Strokes: image is a batch of {image.shape[0]} images and a painting has one "
                            f"photograph: split the batch into a list with the core node Rebatch Images (batch_size "
                            f"1), and each image gets its own painting")
        settings = PaintSettings(size=size, strokes=strokes)      # checked in the core: one message everywhere
        photo = image_to_bchw(image)
        canvas_size, _ = plan_canvas(settings, tuple(photo.shape[-2:]))
        chosen = predict.predictor_for(painter, predictor_file(predictor))
        levels = comfy.Progress(len(predict.plan_levels(strokes, chosen.config.k, canvas_size)), "predicting")
        with comfy.on_compute_device(painter):
            try:
                prediction, _ = predict.start_from_prediction(
                    painter, canvas_size, settings, photo, predictor=chosen,
                    progress=lambda done, total, canvas: levels.update(done, preview=canvas))
            finally:
                levels.close()
        return prediction.strokes, bchw_to_image(prediction.canvas)
