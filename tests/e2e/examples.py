"""The pack's example workflows, built in UI format from a real server's /object_info.

    python -m tests.e2e.examples            (from the repository root; starts a ComfyUI, needs the setup)

writes example_workflows/<name>.json. The e2e tests load those files as shipped, convert them with
/object_info and run them (test_examples_e2e.py). Widget values live here, in one place.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from painter_models.painter import shipped

from .comfy import REPO, ComfyNotSetUp, checkout_server
from .workflow_builder import Graph

EXAMPLES_DIR = REPO / "example_workflows"
# The pack's default painter for photographs: every example (and every e2e test that wants a trained painter)
# takes it from here.
DEFAULT_PAINTER = f"shipped/{shipped.DEFAULT_PAINTER}.safetensors"   # what Load Neural Painter offers first
EXAMPLE_IMAGE = "neural_painters_astronaut.jpg"
EXAMPLE_CLIP = "neural_painters_pan.mp4"
COL = 400  # column width of the layout

CLIP_NOTE = (
    "Text workflows need CLIP weights.\n\n"
    "Load CLIP looks for open_clip weights in ComfyUI/models/clip and ComfyUI/models/open_clip: for ViT-B-32 "
    "with the tag 'openai' put ViT-B-32-openai.safetensors there (or OpenAI's ViT-B-32.pt), or pick a "
    "checkpoint file in weights_file. With internet access, open_clip downloads the tag's weights itself on "
    "first use (into the Hugging Face cache).\n\n"
    "Sources: https://huggingface.co/timm/vit_base_patch32_clip_224.openai (open_clip_model.safetensors), "
    "or any open_clip model/tag (ViT-B-16, ViT-L-14 ...).\n\n"
    "Offline: model_name np-tiny-rn-64 with weights_file shipped/np-tiny-rn-64-shapes.safetensors, the pack's "
    "tiny CLIP that knows only coloured shapes (prompts like 'a red circle on the left', 64 px).")

PAINTER_NOTE = (
    "Painters: 'shipped/...' painters come with the pack. Your own (trained with neural-painters-train) go "
    "in ComfyUI/models/neural_painters. Optimize Actions paints with the real MyPaint brush in the loop "
    "(real_brush; without libmypaint it uses the painter's canvas and its report says so), shows a live preview "
    "in its node, and Cancel stops it. size is the painting's long side: it keeps the photo's aspect ratio.")


def _painter(g: Graph, pos, painter: str):
    return g.add("NeuralPaintersLoadPainter", {"painter_name": painter}, pos=pos)


def _image(g: Graph, pos):
    return g.add("LoadImage", {"image": EXAMPLE_IMAGE}, pos=pos, title="Load Image (your photo)")


def image_to_painting(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """A photograph painted with brushstrokes: feature + pixel loss, coarse to fine."""
    g = Graph(info)
    g.note(PAINTER_NOTE + "\n\nImage to painting: the strokes are optimised so the painting matches the photo "
           "to an image network (VGG Feature Loss, offline EfficientNet-Lite0) plus a blurred pixel loss for colour.",
           pos=(0, -220), size=(760, 160))
    load = _painter(g, (0, 0), painter)
    image = _image(g, (0, 200))
    feature = g.add("NeuralPaintersVGGFeatureLoss", {"backbone": "efficientnet_lite0", "weight": 1.0}, pos=(COL, 0))
    pixel = g.add("NeuralPaintersPixelLoss", {"kind": "l2", "blur_sigma": 2.0, "weight": 1.0}, pos=(COL, 330))
    combine = g.add("NeuralPaintersCombineLosses", pos=(2 * COL, 200))
    opt = g.add("NeuralPaintersOptimizeActions", {"size": 384, "strokes": 400, "rounds": 4,
                                                  "steps": 400, "seed": 1}, pos=(3 * COL, 0))
    preview = g.add("SaveImage", {"filename_prefix": "neural_painters/image_to_painting"}, pos=(4 * COL, 0))
    save = g.add("NeuralPaintersSaveStrokes", {"filename_prefix": "neural_painters/image_to_painting"},
                 pos=(4 * COL, 400))
    g.link(image, "IMAGE", feature, "image")
    g.link(image, "IMAGE", pixel, "image")
    g.link(feature, "loss", combine, "loss_1")
    g.link(pixel, "loss", combine, "loss_2")
    g.link(load, "painter", opt, "painter")
    g.link(combine, "loss", opt, "loss")
    g.link(opt, "image", preview, "images")
    g.link(opt, "strokes", save, "strokes")
    return g.to_ui("8a1c4b2e-0001-4e6a-9d3c-6e1f2a7b0001")


def text_to_painting(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """A painting from a text prompt through CLIP (CLIPDraw-style)."""
    g = Graph(info)
    g.note(CLIP_NOTE, pos=(0, -260), size=(760, 200), title="Note: CLIP weights needed")
    load = _painter(g, (0, 0), painter)
    clip = g.add("NeuralPaintersLoadCLIP", {"model_name": "ViT-B-32", "pretrained_tag": "openai"}, pos=(0, 200))
    text = g.add("NeuralPaintersCLIPTextLoss", {"prompt": "a painting of a red lighthouse by the sea at sunset",
                                                "negative_prompt": "text, watermark", "cutouts": 8, "seed": 2},
                 pos=(COL, 200))
    opt = g.add("NeuralPaintersOptimizeActions", {"size": 320, "strokes": 300, "rounds": 3,
                                                  "steps": 450, "learning_rate": 0.08, "seed": 2},
                pos=(2 * COL, 0))
    save = g.add("SaveImage", {"filename_prefix": "neural_painters/text_to_painting"}, pos=(3 * COL, 0))
    g.link(clip, "clip", text, "clip")
    g.link(load, "painter", opt, "painter")
    g.link(text, "loss", opt, "loss")
    g.link(opt, "image", save, "images")
    return g.to_ui("8a1c4b2e-0002-4e6a-9d3c-6e1f2a7b0002")


def timelapse(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """The painting stroke by stroke, saved as an animated WebP."""
    g = Graph(info)
    g.note(PAINTER_NOTE + "\n\nTime-lapse: Stroke Timelapse renders the painting after every few strokes; "
           "Save Animated WEBP (or PNG) writes the animation.", pos=(0, -220), size=(760, 160))
    load = _painter(g, (0, 0), painter)
    image = _image(g, (0, 200))
    pixel = g.add("NeuralPaintersPixelLoss", {"kind": "l2", "blur_sigma": 1.5}, pos=(COL, 200))
    opt = g.add("NeuralPaintersOptimizeActions", {"size": 320, "strokes": 250, "rounds": 4,
                                                  "steps": 300, "seed": 3}, pos=(2 * COL, 0))
    frames = g.add("NeuralPaintersStrokeTimelapse", {"frames": 60, "max_side": 320, "hold_last": 15},
                   pos=(3 * COL, 0))
    anim = g.add("SaveAnimatedWEBP", {"filename_prefix": "neural_painters/timelapse", "fps": 12.0,
                                      "lossless": False, "quality": 85}, pos=(4 * COL, 0))
    final = g.add("PreviewImage", pos=(3 * COL, 380))
    g.link(image, "IMAGE", pixel, "image")
    g.link(load, "painter", opt, "painter")
    g.link(pixel, "loss", opt, "loss")
    g.link(load, "painter", frames, "painter")
    g.link(opt, "strokes", frames, "strokes")
    g.link(frames, "frames", anim, "images")
    g.link(opt, "image", final, "images")
    return g.to_ui("8a1c4b2e-0003-4e6a-9d3c-6e1f2a7b0003")


def svg_export(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """Strokes exported as SVG and JSON; a larger re-render; MyPaint re-render ready to unmute."""
    g = Graph(info)
    g.note("SVG export: Strokes to SVG writes one Bezier path per stroke into ComfyUI/output (open it in a "
           "browser or vector editor); Save Strokes writes the JSON stroke list (reload it with Load Strokes). "
           "Render Strokes re-renders the same strokes 2x larger.\n\nRe-render with MyPaint is muted: it paints "
           "the strokes with the real MyPaint brush at any scale and needs libmypaint "
           "(apt-get install libmypaint-1.5-1 mypaint-brushes). Select it and press Ctrl+M to unmute.",
           pos=(0, -260), size=(760, 200))
    load = _painter(g, (0, 0), painter)
    image = _image(g, (0, 200))
    pixel = g.add("NeuralPaintersPixelLoss", {"kind": "l2", "blur_sigma": 1.0}, pos=(COL, 200))
    opt = g.add("NeuralPaintersOptimizeActions", {"size": 256, "strokes": 200, "rounds": 3,
                                                  "steps": 240, "seed": 4, "opaque": True}, pos=(2 * COL, 0))
    svg = g.add("NeuralPaintersStrokesToSVG", {"filename_prefix": "neural_painters/painting",
                                               "title": "neural painters: astronaut"}, pos=(3 * COL, 0))
    save = g.add("NeuralPaintersSaveStrokes", {"filename_prefix": "neural_painters/painting"}, pos=(3 * COL, 260))
    big = g.add("NeuralPaintersRenderStrokes", {"scale": 2.0}, pos=(3 * COL, 420))
    preview = g.add("PreviewImage", pos=(4 * COL, 420))
    mypaint = g.add("NeuralPaintersRerenderMyPaint", {"scale": 4.0}, pos=(3 * COL, 640),
                    title="Re-render with MyPaint (unmute: needs libmypaint)")
    mypaint.mode = 2
    mypaint_save = g.add("SaveImage", {"filename_prefix": "neural_painters/mypaint_4x"}, pos=(4 * COL, 820))
    mypaint_save.mode = 2
    g.link(image, "IMAGE", pixel, "image")
    g.link(load, "painter", opt, "painter")
    g.link(pixel, "loss", opt, "loss")
    g.link(opt, "strokes", svg, "strokes")
    g.link(opt, "strokes", save, "strokes")
    g.link(load, "painter", big, "painter")
    g.link(opt, "strokes", big, "strokes")
    g.link(big, "image", preview, "images")
    g.link(opt, "strokes", mypaint, "strokes")
    g.link(mypaint, "image", mypaint_save, "images")
    return g.to_ui("8a1c4b2e-0004-4e6a-9d3c-6e1f2a7b0004")


def image_plus_text(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """A photograph painted under a text prompt: feature loss for the content, CLIP for the mood."""
    g = Graph(info)
    g.note(CLIP_NOTE, pos=(0, -260), size=(760, 200), title="Note: CLIP weights needed")
    load = _painter(g, (0, 0), painter)
    image = _image(g, (0, 200))
    clip = g.add("NeuralPaintersLoadCLIP", {"model_name": "ViT-B-32", "pretrained_tag": "openai"}, pos=(0, 640))
    # the feature loss is relative errors x 0.005 plus a colour term: x100 keeps it level with CLIP x0.5
    feature = g.add("NeuralPaintersVGGFeatureLoss", {"weight": 100.0}, pos=(COL, 200))
    text = g.add("NeuralPaintersCLIPTextLoss", {"prompt": "an expressionist oil painting, bold blue and orange "
                                                          "brushstrokes", "cutouts": 6, "seed": 5}, pos=(COL, 560))
    combine = g.add("NeuralPaintersCombineLosses", {"scale_1": 1.0, "scale_2": 0.5}, pos=(2 * COL, 300))
    opt = g.add("NeuralPaintersOptimizeActions", {"size": 320, "strokes": 350, "rounds": 4,
                                                  "steps": 400, "seed": 5}, pos=(3 * COL, 0))
    save = g.add("SaveImage", {"filename_prefix": "neural_painters/image_plus_text"}, pos=(4 * COL, 0))
    g.link(image, "IMAGE", feature, "image")
    g.link(clip, "clip", text, "clip")
    g.link(feature, "loss", combine, "loss_1")
    g.link(text, "loss", combine, "loss_2")
    g.link(load, "painter", opt, "painter")
    g.link(combine, "loss", opt, "loss")
    g.link(opt, "image", save, "images")
    return g.to_ui("8a1c4b2e-0005-4e6a-9d3c-6e1f2a7b0005")


def fast_painting(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """A painting in seconds: the stroke predictor proposes every stroke in one pass, a short optimisation
    refines them."""
    g = Graph(info)
    g.note(PAINTER_NOTE + "\n\nFast painting: Predict Strokes proposes all 1000 strokes coarse to fine in about a "
           "second of CPU (shipped predictor for soft_brush; its painting is rough, see its model card). Optimize "
           "Actions then refines them (strokes 0: no new strokes, the init strokes are optimised; a learning rate "
           "of 0.1 suits a refinement). More steps: a better painting, slower.", pos=(0, -220), size=(760, 160))
    load = _painter(g, (0, 0), painter)
    image = _image(g, (0, 200))
    predict = g.add("NeuralPaintersPredictStrokes", {"strokes": 1000, "size": 256}, pos=(COL, 0))
    pixel = g.add("NeuralPaintersPixelLoss", {"kind": "l2", "blur_sigma": 0.0}, pos=(COL, 330))
    opt = g.add("NeuralPaintersOptimizeActions", {"size": 256, "strokes": 0, "rounds": 1, "steps": 30,
                                                  "learning_rate": 0.1, "seed": 0}, pos=(2 * COL, 0))
    save = g.add("SaveImage", {"filename_prefix": "neural_painters/fast_painting"}, pos=(3 * COL, 0))
    first = g.add("PreviewImage", pos=(3 * COL, 560), title="Predicted (about a second)")
    strokes = g.add("NeuralPaintersSaveStrokes", {"filename_prefix": "neural_painters/fast_painting"},
                    pos=(3 * COL, 400))
    g.link(load, "painter", predict, "painter")
    g.link(image, "IMAGE", predict, "image")
    g.link(image, "IMAGE", pixel, "image")
    g.link(predict, "image", first, "images")
    g.link(load, "painter", opt, "painter")
    g.link(pixel, "loss", opt, "loss")
    g.link(predict, "strokes", opt, "init_strokes")
    g.link(opt, "image", save, "images")
    g.link(opt, "strokes", strokes, "strokes")
    return g.to_ui("8a1c4b2e-0006-4e6a-9d3c-6e1f2a7b0006")


def paint_video(info: dict, painter: str = DEFAULT_PAINTER) -> dict:
    """A clip painted with strokes that move with the picture, saved as an animated WebP."""
    g = Graph(info)
    g.note(PAINTER_NOTE + "\n\nPaint a video: Load Video and Get Video Components give the frames as a batch; "
           "Paint Video paints the first frame as a still, then carries its strokes along the picture's motion from "
           "frame to frame (a stroke keeps its place on the picture, so the clip does not flicker), adding strokes "
           "where the picture changed; each later frame costs a fraction of a still. Save Animated WEBP writes the "
           "clip.", pos=(0, -240), size=(760, 180))
    load = _painter(g, (0, 0), painter)
    clip = g.add("LoadVideo", {"file": EXAMPLE_CLIP}, pos=(0, 200), title="Load Video (your clip)")
    parts = g.add("GetVideoComponents", pos=(0, 740))
    paint = g.add("NeuralPaintersPaintVideo", {"size": 256, "strokes": 200, "steps": 200, "refine_steps": 12,
                                               "seed": 0}, pos=(COL, 0))
    save = g.add("SaveAnimatedWEBP", {"filename_prefix": "neural_painters/paint_video", "fps": 12.0,
                                      "lossless": False, "quality": 85}, pos=(2 * COL, 0))
    g.link(clip, "VIDEO", parts, "video")
    g.link(load, "painter", paint, "painter")
    g.link(parts, "images", paint, "frames")
    g.link(paint, "frames", save, "images")
    return g.to_ui("8a1c4b2e-0007-4e6a-9d3c-6e1f2a7b0007")


EXAMPLES = {
    "image_to_painting": image_to_painting,
    "text_to_painting": text_to_painting,
    "timelapse": timelapse,
    "svg_export": svg_export,
    "image_plus_text": image_plus_text,
    "fast_painting": fast_painting,
    "paint_video": paint_video,
}
NEEDS_CLIP = {"text_to_painting", "image_plus_text"}


def write_examples(info: dict, directory: Path = EXAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in EXAMPLES.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(build(info), indent=1) + "\n")
        paths.append(path)
    return paths


def main() -> int:
    try:
        with checkout_server("np_examples_") as server:
            object_info = server.client().object_info()
    except ComfyNotSetUp as e:
        print(e, file=sys.stderr)
        return 1
    for path in write_examples(object_info):
        print("wrote", path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
