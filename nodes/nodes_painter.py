"""Load Neural Painter: a trained painter (generator) from the pack or ComfyUI's models/neural_painters."""
from __future__ import annotations

import json
import os
import weakref

from .. import painter_models
from ..painter_models.painter import shipped
from . import comfy_adapter as comfy
from .common import LOADERS, NEURAL_PAINTER, NodeError, user_errors

NO_PAINTER = "(no painters found)"


def shipped_painters() -> list[str]:
    """Painters that ship inside the pack (painter_models/weights/*.safetensors), as combo values."""
    return [comfy.SHIPPED_PREFIX + os.path.basename(path) for path in shipped.shipped_painters().values()]


def painter_choices() -> list[str]:
    """Shipped painters first, then every file in models/neural_painters (and extra model paths)."""
    choices = shipped_painters() + comfy.list_models("neural_painters")
    return choices or [NO_PAINTER]


def painter_file(name: str) -> str:
    """The full path of a painter combo value; a clear error when it is missing."""
    if name == NO_PAINTER or not name:
        raise NodeError("Load Neural Painter: no painter checkpoints found. Put painter .safetensors files "
                        "(trained with neural-painters-train) in ComfyUI/models/neural_painters and refresh the page")
    if name.startswith(comfy.SHIPPED_PREFIX):
        path = comfy.inside(shipped.WEIGHTS_DIR, name[len(comfy.SHIPPED_PREFIX):])
        if path is not None and os.path.isfile(path):
            return path
    path = comfy.model_path("neural_painters", name)
    if path is None or not os.path.isfile(path):
        # no folder names in the message: it goes to whoever queued the prompt
        raise NodeError(f"Load Neural Painter: painter {name!r} not found among the pack's shipped painters and "
                        f"the files in ComfyUI/models/neural_painters; pick one from the list")
    return path


# Painters loaded once while something uses them: weak references, so a painter ComfyUI's own cache
# lets go of (its 'Free model and node cache') is freed, not pinned here.
_CACHE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def load_painter_cached(path: str, device):
    """load_painter, shared by every node that asks for the same file (path, modification time, device)."""
    key = (os.path.abspath(path), os.path.getmtime(path), str(device))
    painter = _CACHE.get(key)
    if painter is None:
        painter = _CACHE[key] = painter_models.load_painter(path, device=device)
    return painter


def painter_info(painter) -> str:
    """A short human-readable summary of a painter (brush, stroke size, metrics, training)."""
    lines = [f"brush: {painter.brush}", f"stroke size: {painter.stroke_size} px",
             f"action layout: {painter.layout.name} ({painter.layout.dim} numbers)"]
    if painter.metrics:
        lines.append("held-out metrics: " + json.dumps(painter.metrics, sort_keys=True))
    if painter.training:
        lines.append("training: " + json.dumps(painter.training, sort_keys=True)[:500])
    if painter.path:
        lines.append(f"file: {os.path.basename(painter.path)}")
    return "\n".join(lines)


class LoadNeuralPainter:
    DESCRIPTION = ("Loads a neural painter: a small network that imitates a MyPaint brush (action -> stroke). "
                   "Lists the painters shipped with the pack and every .safetensors file in "
                   "ComfyUI/models/neural_painters (and folders added in extra_model_paths.yaml).")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = (NEURAL_PAINTER, "STRING")
    RETURN_NAMES = ("painter", "info")
    OUTPUT_TOOLTIPS = ("The painter, on ComfyUI's compute device.",
                       "Brush, stroke size, action layout and held-out metrics from the checkpoint.")

    @classmethod
    def INPUT_TYPES(cls):
        choices = painter_choices()
        default = f"{comfy.SHIPPED_PREFIX}{shipped.DEFAULT_PAINTER}.safetensors"   # as the CLI
        return {"required": {
            "painter_name": (choices, {"default": default if default in choices else choices[0], "tooltip":
                                       "Painter checkpoint. 'shipped/...' painters come with the pack; others are "
                                       "files in ComfyUI/models/neural_painters."}),
        }}

    @classmethod
    def IS_CHANGED(cls, painter_name):
        try:
            return os.path.getmtime(painter_file(painter_name))
        except (NodeError, OSError):
            return painter_name

    @user_errors("Load Neural Painter")
    def load(self, painter_name):
        path = painter_file(painter_name)
        try:
            painter = load_painter_cached(path, comfy.storage_device())
        except ValueError as e:   # CheckpointError: name the painter as the user knows it, not by its server path
            raise NodeError(f"Load Neural Painter: {str(e).replace(repr(path), repr(painter_name))}") from None
        return painter, painter_info(painter)
