"""Save Strokes / Load Strokes (the stroke list as JSON) and Strokes to SVG."""
from __future__ import annotations

import os

from ..painter_models.export import stroke_file, svg
from . import comfy_adapter as comfy
from .common import EXPORT, LOADERS, STROKES, NodeError, user_errors

NO_FILES = "(no stroke files in ComfyUI/input)"


def _write(strokes, filename_prefix: str, ext: str, save):
    """Save into ComfyUI's output folder; returns the file as Load Strokes lists it ("sub/name [output]":
    no server path in a node's output) and its ui entry."""
    folder, stem, sub = comfy.save_path(filename_prefix)
    name = stem + ext
    save(os.path.join(folder, name), strokes)
    listed = "/".join(p for p in (sub.replace("\\", "/").strip("/"), name) if p) + " [output]"
    return listed, {"filename": name, "subfolder": sub, "type": "output"}


class SaveStrokes:
    DESCRIPTION = ("Saves the strokes as JSON in ComfyUI's output folder: every stroke's action and box (reloads "
                   "to exactly the same painting) plus canvas-pixel geometry and MyPaint parameters.")
    CATEGORY = EXPORT
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("The written .json file as Load Strokes lists it: 'sub folder/name [output]'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "strokes": (STROKES, {"tooltip": "The strokes to save."}),
            "filename_prefix": ("STRING", {"default": "neural_painters/strokes", "tooltip":
                                           "File name prefix inside ComfyUI/output (sub folders allowed); a counter "
                                           "and .json are added."}),
        }}

    @user_errors("Save Strokes")
    def save(self, strokes, filename_prefix="neural_painters/strokes"):
        path, entry = _write(strokes, filename_prefix, ".json", stroke_file.save_strokes)
        return {"ui": {"strokes_files": [entry]}, "result": (path,)}


class LoadStrokes:
    DESCRIPTION = ("Loads strokes saved by Save Strokes (or the neural-painters CLI). Lists .json files in ComfyUI's "
                   "input folder and, marked [output], in its output folder.")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = (STROKES,)
    RETURN_NAMES = ("strokes",)
    OUTPUT_TOOLTIPS = ("The strokes, exactly as saved.",)

    @classmethod
    def INPUT_TYPES(cls):
        files = comfy.list_files((".json",)) or [NO_FILES]
        return {"required": {
            "file": (files, {"default": files[0], "tooltip": "A stroke .json file (copy files into ComfyUI/input, "
                                                             "or pick one saved in output)."}),
        }}

    @classmethod
    def IS_CHANGED(cls, file):
        try:
            return os.path.getmtime(comfy.resolve_file(file))
        except (OSError, ValueError):
            return file

    # No VALIDATE_INPUTS: naming `file` there would switch off ComfyUI's check that it is one of the
    # listed files. load() still refuses names that leave the folder (links included).
    @user_errors("Load Strokes")
    def load(self, file):
        if file == NO_FILES:
            raise NodeError("Load Strokes: no stroke files found: save strokes with Save Strokes, or copy a .json "
                            "file into ComfyUI/input")
        return (stroke_file.load_strokes(comfy.resolve_file(file), name=file, check=comfy.check_interrupt),)


class StrokesToSVG:
    DESCRIPTION = ("Writes the strokes as an SVG drawing (each stroke a filled outline that follows its pressure, "
                   "with the brush's width, colour and opacity as MyPaint paints them) into ComfyUI's output folder, "
                   "for plotters and vector editors.")
    CATEGORY = EXPORT
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("svg", "path")
    OUTPUT_TOOLTIPS = ("The SVG document as text.", "The written .svg file: 'sub folder/name [output]'.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "strokes": (STROKES, {"tooltip": "The strokes to draw."}),
            "filename_prefix": ("STRING", {"default": "neural_painters/painting", "tooltip":
                                           "File name prefix inside ComfyUI/output; a counter and .svg are added."}),
            "title": ("STRING", {"default": "", "tooltip": "Optional title stored in the SVG."}),
        }}

    @user_errors("Strokes to SVG")
    def save(self, strokes, filename_prefix="neural_painters/painting", title=""):
        text = svg.strokes_to_svg(strokes, title=title or None)
        path, entry = _write(strokes, filename_prefix, ".svg", lambda p, _: svg.write_svg(p, text))
        return {"ui": {"svg_files": [entry]}, "result": (text, path)}
