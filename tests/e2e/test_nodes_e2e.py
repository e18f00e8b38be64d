"""Our nodes inside a real ComfyUI: registration, model folders, workflows, refused links, errors."""
from __future__ import annotations

import numpy as np
import pytest

from .comfy import PromptFailed, PromptRefused
from .conftest import E2E_DEFAULT_PAINTER, E2E_PAINTER
from .examples import DEFAULT_PAINTER
from .workflow_builder import Graph

pytestmark = pytest.mark.slow

# display names and categories as ComfyUI users look for them: the design's names, made unambiguous
# where ComfyUI has a node of that name (Load CLIP) or they would mislead; a category per kind of node
NODES = {
    "NeuralPaintersLoadPainter": ("Load Neural Painter", "loaders"),
    "NeuralPaintersLoadCLIP": ("Load CLIP (for painting)", "loaders"),
    "NeuralPaintersLoadStrokes": ("Load Strokes", "loaders"),
    "NeuralPaintersCLIPTextLoss": ("CLIP Text Loss", "losses"),
    "NeuralPaintersVGGFeatureLoss": ("VGG Feature Loss (VGG16 / EfficientNet)", "losses"),
    "NeuralPaintersPixelLoss": ("Pixel Loss", "losses"),
    "NeuralPaintersStyleLoss": ("Style Loss", "losses"),
    "NeuralPaintersImageNetClassLoss": ("ImageNet Class Loss", "losses"),
    "NeuralPaintersCombineLosses": ("Combine Losses", "losses"),
    "NeuralPaintersRandomActions": ("Random Actions (random strokes)", "painting"),
    "NeuralPaintersOptimizeActions": ("Optimize Actions (paint strokes)", "painting"),
    "NeuralPaintersPredictStrokes": ("Predict Strokes", "painting"),
    "NeuralPaintersPaintVideo": ("Paint Video (coherent strokes)", "painting"),
    "NeuralPaintersRenderStrokes": ("Render Strokes", "painting"),
    "NeuralPaintersBlendCanvas": ("Blend Canvas", "painting"),
    "NeuralPaintersSaveStrokes": ("Save Strokes", "export"),
    "NeuralPaintersStrokesToSVG": ("Strokes to SVG", "export"),
    "NeuralPaintersStrokeTimelapse": ("Stroke Timelapse", "export"),
    "NeuralPaintersRerenderMyPaint": ("Re-render with MyPaint", "export"),
}


def test_nodes_registered_with_names_category_and_tooltips(comfy):
    info = comfy.object_info()
    ours = {k for k, v in info.items() if v["python_module"].endswith("comfyui-neural-painters")}
    assert ours == set(NODES)
    core_names = {v["display_name"] for k, v in info.items() if k not in ours}
    for cls, (display, category) in NODES.items():
        assert info[cls]["display_name"] == display
        assert display not in core_names, f"{display!r} is also the name of another node"
        assert info[cls]["category"] == f"neural painters/{category}"
        for section in ("required", "optional"):
            for name, spec in info[cls]["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{display}.{name} has no tooltip"


def test_painters_listed_from_extra_and_default_model_folders(comfy):
    choices = comfy.object_info()["NeuralPaintersLoadPainter"]["input"]["required"]["painter_name"][0]
    assert E2E_PAINTER in choices, "extra_model_paths.yaml folder was overwritten instead of extended"
    assert E2E_DEFAULT_PAINTER in choices, "ComfyUI/models/neural_painters is not listed"


def random_strokes_graph(comfy, painter=E2E_PAINTER, **actions):
    g = Graph(comfy.object_info())
    load = g.add("NeuralPaintersLoadPainter", {"painter_name": painter}, pos=(0, 0))
    rand = g.add("NeuralPaintersRandomActions", {"count": 60, "seed": 3, "width": 96, "height": 64,
                                                 "min_stroke_size": 12, "max_stroke_size": 40, **actions},
                 pos=(380, 0))
    render = g.add("NeuralPaintersRenderStrokes", {"scale": 2.0}, pos=(760, 0))
    preview = g.add("PreviewImage", pos=(1140, 0))
    g.link(load, "painter", rand, "painter")
    g.link(load, "painter", render, "painter")
    g.link(rand, "strokes", render, "strokes")
    g.link(render, "image", preview, "images")
    return g, load, rand, render, preview


def test_random_strokes_render_and_blend_workflow(comfy):
    # a trained painter: a random one fogs its whole box, so no pixel would stay untouched
    g, load, rand, render, preview = random_strokes_graph(comfy, painter=DEFAULT_PAINTER)
    empty = g.add("EmptyImage", {"width": 192, "height": 128, "batch_size": 2, "color": 0x3050A0}, pos=(380, 420))
    blend = g.add("NeuralPaintersBlendCanvas", {"opacity": 0.8}, pos=(760, 420))
    save = g.add("SaveImage", {"filename_prefix": "np_e2e/blend"}, pos=(1140, 420))
    g.link(empty, "IMAGE", blend, "canvas")
    g.link(load, "painter", blend, "painter")
    g.link(rand, "strokes", blend, "strokes")
    g.link(blend, "image", save, "images")
    prompt = comfy.convert(g.to_ui())
    assert prompt[str(rand.id)]["inputs"]["seed"] == 3
    entry = comfy.run(prompt, timeout=180)
    images = comfy.images(entry)
    rendered = images[str(preview.id)]
    assert len(rendered) == 1 and rendered[0].size == (192, 128)
    lo, hi = rendered[0].convert("L").getextrema()
    assert hi - lo > 30, "the render is flat: no strokes painted"
    blended = images[str(save.id)]
    assert len(blended) == 2 and all(im.size == (192, 128) for im in blended)
    for im in blended:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
        untouched = (np.abs(pixels.astype(int) - [0x30, 0x50, 0xA0]).max(1) <= 1).mean()
        assert 0.0 < untouched < 0.95, f"{untouched:.0%} of the canvas untouched: strokes not blended"


def test_wrong_custom_type_link_refused_at_queue_time(comfy):
    g = Graph(comfy.object_info())
    rand = g.add("NeuralPaintersRandomActions", pos=(0, 0))
    render = g.add("NeuralPaintersRenderStrokes", pos=(400, 0))
    preview = g.add("PreviewImage", pos=(800, 0))
    g.link(rand, "strokes", render, "painter")   # STROKES into a NEURAL_PAINTER input
    g.link(rand, "strokes", render, "strokes")
    g.link(render, "image", preview, "images")
    with pytest.raises(PromptRefused) as refused:
        comfy.queue(comfy.convert(g.to_ui()))
    assert refused.value.status == 400
    errors = refused.value.node_errors[str(render.id)]["errors"]
    assert any(e["type"] == "return_type_mismatch" and "STROKES" in e["details"] and "NEURAL_PAINTER" in e["details"]
               for e in errors), errors


def test_absurd_values_refused_at_queue_time(comfy):
    g, *_ = random_strokes_graph(comfy, width=100000)
    with pytest.raises(PromptRefused) as refused:
        comfy.queue(comfy.convert(g.to_ui()))
    assert "value_bigger_than_max" in str(refused.value.body)


def test_errors_reach_the_user_as_clear_messages(comfy):
    g, *_ = random_strokes_graph(comfy, min_stroke_size=80, max_stroke_size=20)
    with pytest.raises(PromptFailed) as failed:
        comfy.run(comfy.convert(g.to_ui()), timeout=120)
    # what the browser's error dialog shows: the exception's type and message, with no module path in them
    error = [m for m in failed.value.status["messages"] if m[0] == "execution_error"][0][1]
    assert error["exception_type"] == "NodeError", error["exception_type"]
    assert error["exception_message"].startswith("Random Actions: stroke size range 80.0..20.0 px is empty")
    assert "custom_nodes" not in error["exception_message"] and "neural-painters" not in error["exception_message"]
    assert error["node_type"] == "NeuralPaintersRandomActions"


def test_a_clips_strokes_feed_rerender_and_svg_frame_by_frame(comfy, comfy_server):
    """Paint Video's strokes are a list (one StrokeSet a frame): ComfyUI runs Re-render with MyPaint and Strokes
    to SVG once a frame, so a clip is re-rendered at another size and exported frame by frame."""
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library
    try:
        load_library()
    except MyPaintUnavailable as e:
        pytest.skip(f"libmypaint missing: {e}")
    g = Graph(comfy.object_info())
    load = g.add("NeuralPaintersLoadPainter", {"painter_name": DEFAULT_PAINTER}, pos=(0, 0))
    video = g.add("LoadVideo", {"file": "neural_painters_pan.mp4"}, pos=(0, 200))
    parts = g.add("GetVideoComponents", pos=(0, 500))
    paint = g.add("NeuralPaintersPaintVideo", {"size": 48, "strokes": 10, "rounds": 1, "steps": 3,
                                               "refine_steps": 1}, pos=(380, 0))
    rerender = g.add("NeuralPaintersRerenderMyPaint", {"scale": 2.0}, pos=(760, 0))
    preview = g.add("PreviewImage", pos=(1140, 0))
    svg = g.add("NeuralPaintersStrokesToSVG", {"filename_prefix": "np_e2e/clip"}, pos=(760, 400))
    g.link(video, "VIDEO", parts, "video")
    g.link(load, "painter", paint, "painter")
    g.link(parts, "images", paint, "frames")
    g.link(paint, "strokes", rerender, "strokes")
    g.link(rerender, "image", preview, "images")
    g.link(paint, "strokes", svg, "strokes")
    prompt = comfy.convert(g.to_ui())
    entry = comfy.run(prompt, timeout=300)
    images = comfy.images(entry)[str(preview.id)]
    assert len(images) == 12 and all(im.size == (96, 96) for im in images)
    assert len(entry["outputs"][str(svg.id)]["svg_files"]) == 12
