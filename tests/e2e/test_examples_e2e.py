"""Every example workflow, loaded from example_workflows/ as shipped, converted with /object_info and run in a
real ComfyUI; and a cancelled optimisation that must stop within seconds.

On CPU CI the optimisation sizes are cut down (fewer steps, strokes and pixels: `cut_down`); the graph,
the nodes and every other value run as shipped. NP_E2E_AS_SHIPPED=1 runs them at full size (a GPU).
The examples run with the painters shipped in painter_models/weights/ (a tiny random painter stands in
only in a checkout without them).
"""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import torch

from painter_models.painter.shipped import shipped_painters

from .comfy import REPO, PromptFailed
from .conftest import E2E_PAINTER
from .examples import EXAMPLES, EXAMPLES_DIR, NEEDS_CLIP, image_to_painting, write_examples
from .workflow_builder import Graph

pytestmark = pytest.mark.slow
AS_SHIPPED = os.environ.get("NP_E2E_AS_SHIPPED", "") not in ("", "0")
CI_SIDE = 96


def cut_down(prompt: dict) -> dict:
    """Smaller optimisations for a 2-core CI machine (only sizes and counts change)."""
    if AS_SHIPPED:
        return prompt
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "NeuralPaintersOptimizeActions":
            scale = CI_SIDE / max(inputs["size"], inputs["width"], inputs["height"])
            for side in ("size", "width", "height"):
                if inputs[side]:  # width / height 0: from size and the photograph
                    inputs[side] = max(16, round(inputs[side] * scale / 8) * 8)
            inputs.update(strokes=min(inputs["strokes"], 16), rounds=min(inputs["rounds"], 2),
                          steps=min(inputs["steps"], 4))
        elif kind == "NeuralPaintersPaintVideo":
            inputs.update(size=min(inputs["size"], CI_SIDE), strokes=min(inputs["strokes"], 16),
                          steps=min(inputs["steps"], 4), refine_steps=min(inputs["refine_steps"], 2))
        elif kind == "NeuralPaintersPredictStrokes":
            inputs.update(size=min(inputs["size"], CI_SIDE), strokes=min(inputs["strokes"], 64))
        elif kind == "NeuralPaintersCLIPTextLoss":
            inputs["cutouts"] = 1
        elif kind == "NeuralPaintersStrokeTimelapse":
            inputs.update(frames=min(inputs["frames"], 6), hold_last=min(inputs["hold_last"], 2))
        elif kind == "NeuralPaintersRerenderMyPaint":
            inputs["scale"] = min(inputs["scale"], 2.0)
    return prompt


def with_stand_in_painter(prompt: dict) -> dict:
    """Swap the shipped painter for the tiny e2e one only while no painter ships at all (once one
    does, the examples must name a real one)."""
    if shipped_painters():
        return prompt
    for node in prompt.values():
        if node["class_type"] == "NeuralPaintersLoadPainter":
            node["inputs"]["painter_name"] = E2E_PAINTER
    return prompt


@pytest.fixture(scope="session")
def clip_weights(extra_models_dir):
    """Random ViT-B-32 weights under the name Load CLIP looks for with the tag 'openai' (real weights
    cannot be downloaded here): the text workflows then run exactly as shipped. Cached in .cache/."""
    from safetensors.torch import load_file, save_file
    cached = REPO / ".cache" / "e2e" / "ViT-B-32-openai.safetensors"
    if not cached.is_file():
        import open_clip
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, cached)
    target = extra_models_dir / "clip" / cached.name
    if not target.exists():
        target.symlink_to(cached)
    assert load_file(str(target)), "unreadable CLIP weights"
    return target


def load_example(name: str) -> dict:
    path = EXAMPLES_DIR / f"{name}.json"
    assert path.is_file(), f"{path} missing: run `python -m tests.e2e.examples`"
    return json.loads(path.read_text())


def run_example(comfy, name: str, workflow: dict | None = None, timeout: float = 400):
    prompt = with_stand_in_painter(cut_down(comfy.convert(workflow or load_example(name))))
    entry = comfy.run(prompt, timeout=timeout)
    return prompt, entry, comfy.images(entry)


def node_of(prompt: dict, class_type: str) -> str:
    ids = [k for k, v in prompt.items() if v["class_type"] == class_type]
    assert ids, f"no {class_type} in the workflow"
    return ids[0]


def assert_painted(image, size=None):
    import numpy as np
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    if size:
        assert image.size == size
    assert a.std() > 4, "a flat image: nothing painted"


def test_examples_are_ui_workflows_with_thumbnails():
    for name in EXAMPLES:
        workflow = load_example(name)
        assert workflow["version"] == 0.4 and workflow["nodes"] and workflow["links"]
        assert (EXAMPLES_DIR / f"{name}.jpg").is_file(), f"{name}.jpg thumbnail missing"
        if name in NEEDS_CLIP:
            notes = [n for n in workflow["nodes"] if n["type"] == "Note"]
            assert any("ComfyUI/models/clip" in n["widgets_values"][0] for n in notes), f"{name}: no CLIP note"


def test_examples_are_what_the_generator_writes_for_these_nodes(comfy, tmp_path):
    """The shipped files hold positional widgets_values: when a node's inputs change, they must be written again
    from the nodes' current specs (`python -m tests.e2e.examples`), or they load with values in the wrong slots."""
    for path in write_examples(comfy.object_info(), tmp_path):
        assert json.loads(path.read_text()) == load_example(path.stem), \
            f"example_workflows/{path.name} is stale: run `python -m tests.e2e.examples`"


def test_examples_listed_as_templates(comfy):
    listed = comfy.get("/api/workflow_templates").json()
    assert sorted(listed.get("comfyui-neural-painters", [])) == sorted(EXAMPLES)
    served = comfy.get("/api/workflow_templates/comfyui-neural-painters/image_to_painting.json")
    assert served.status_code == 200 and served.json()["nodes"]


def test_example_image_to_painting(comfy, comfy_server):
    prompt, entry, images = run_example(comfy, "image_to_painting")
    opt = prompt[node_of(prompt, "NeuralPaintersOptimizeActions")]["inputs"]
    painting = images[node_of(prompt, "SaveImage")]
    assert len(painting) == 1
    assert_painted(painting[0], (opt["size"], opt["size"]))  # the photograph is square
    saved = entry["outputs"][node_of(prompt, "NeuralPaintersSaveStrokes")]["strokes_files"][0]
    doc = json.loads((comfy_server.dirs["output"] / saved["subfolder"] / saved["filename"]).read_text())
    assert doc["format"] == "neural-painters-strokes" and len(doc["strokes"]) == opt["strokes"]


def test_example_text_to_painting(comfy):
    """The text workflow as shipped, but with a CLIP that really knows its words (the pack's shapes CLIP, picked
    in Load CLIP's weights list, and a prompt from its world) and the text recipe's sizes
    (training/guided_checks.py), which a CPU runs in well under a minute: by the pixel judge, the painting's main
    colour is the prompt's."""
    import numpy as np
    from neural_painters_training.guided_checks import SHAPE_PROMPTS, TEXT_RECIPE, shapes_clip_path
    from neural_painters_training.judges import ShapeJudge
    from neural_painters_training.tiny_clip import MODEL_NAME
    text = "a red circle"
    shapes_clip = "shipped/" + Path(shapes_clip_path()).name
    assert shapes_clip in comfy.object_info()["NeuralPaintersLoadCLIP"]["input"]["required"]["weights_file"][0]
    prompt = comfy.convert(load_example("text_to_painting"))
    prompt[node_of(prompt, "NeuralPaintersLoadCLIP")]["inputs"].update(model_name=MODEL_NAME, weights_file=shapes_clip)
    prompt[node_of(prompt, "NeuralPaintersCLIPTextLoss")]["inputs"].update(prompt=text, negative_prompt="",
                                                                          cutouts=TEXT_RECIPE["cutouts"])
    opt = prompt[node_of(prompt, "NeuralPaintersOptimizeActions")]["inputs"]
    side = TEXT_RECIPE["size"]
    opt.update(size=side, strokes=TEXT_RECIPE["strokes"], rounds=TEXT_RECIPE["rounds"], steps=TEXT_RECIPE["steps"],
               learning_rate=0.2)
    images = comfy.images(comfy.run(with_stand_in_painter(prompt), timeout=600))
    painting = images[node_of(prompt, "SaveImage")][0]
    assert painting.size == (side, side)
    colour = SHAPE_PROMPTS[text][0]
    verdict = ShapeJudge()(np.asarray(painting.convert("RGB")), colour)
    assert max(verdict.colour_share, key=verdict.colour_share.get) == colour, verdict.summary()
    assert verdict.painted > 0.1, verdict.summary()


def test_example_image_plus_text(comfy, clip_weights):
    prompt, _, images = run_example(comfy, "image_plus_text")
    opt = prompt[node_of(prompt, "NeuralPaintersOptimizeActions")]["inputs"]
    assert_painted(images[node_of(prompt, "SaveImage")][0], (opt["size"], opt["size"]))


def test_example_timelapse(comfy):
    from PIL import Image
    prompt, entry, images = run_example(comfy, "timelapse")
    lapse = prompt[node_of(prompt, "NeuralPaintersStrokeTimelapse")]["inputs"]
    anim_id = node_of(prompt, "SaveAnimatedWEBP")
    assert entry["outputs"][anim_id]["animated"] == [True]
    info = entry["outputs"][anim_id]["images"][0]
    webp = Image.open(io.BytesIO(comfy.view(info["filename"], info["subfolder"], info["type"])))
    assert webp.format == "WEBP" and webp.n_frames >= 3
    # the encoder merges identical frames (the held last one), so count time rather than frames
    fps = prompt[anim_id]["inputs"]["fps"]
    total_ms = 0
    for k in range(webp.n_frames):
        webp.seek(k)
        webp.load()  # the frame's duration is read with its data
        total_ms += webp.info["duration"]
    assert abs(total_ms - (lapse["frames"] + lapse["hold_last"]) * 1000 / fps) <= webp.n_frames
    assert_painted(images[node_of(prompt, "PreviewImage")][0])


def test_example_svg_export(comfy, comfy_server):
    prompt, entry, images = run_example(comfy, "svg_export")
    opt = prompt[node_of(prompt, "NeuralPaintersOptimizeActions")]["inputs"]
    assert "NeuralPaintersRerenderMyPaint" not in {n["class_type"] for n in prompt.values()}, "shipped muted"
    svg_info = entry["outputs"][node_of(prompt, "NeuralPaintersStrokesToSVG")]["svg_files"][0]
    svg = (comfy_server.dirs["output"] / svg_info["subfolder"] / svg_info["filename"]).read_text()
    assert svg.count("<path ") == opt["strokes"] and f'width="{opt["size"]}"' in svg
    big = images[node_of(prompt, "PreviewImage")][0]
    assert_painted(big, (2 * opt["size"], 2 * opt["size"]))


def test_example_svg_export_with_mypaint_unmuted(comfy):
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library
    try:
        load_library()
    except MyPaintUnavailable as e:
        pytest.skip(f"libmypaint missing: {e}")
    workflow = load_example("svg_export")
    for node in workflow["nodes"]:
        node["mode"] = 0  # what the note tells users to do
    prompt, _, images = run_example(comfy, "svg_export", workflow)
    opt = prompt[node_of(prompt, "NeuralPaintersOptimizeActions")]["inputs"]
    scale = prompt[node_of(prompt, "NeuralPaintersRerenderMyPaint")]["inputs"]["scale"]
    mypaint_id = [k for k, v in prompt.items() if v["class_type"] == "SaveImage"][0]
    assert_painted(images[mypaint_id][0], (round(opt["size"] * scale), round(opt["size"] * scale)))


def test_cancelled_optimisation_stops_within_seconds(comfy):
    """A practically endless optimisation is cancelled with POST /interrupt, as the Cancel button does."""
    workflow = image_to_painting(comfy.object_info(), painter=E2E_PAINTER)
    prompt = comfy.convert(workflow)
    opt = prompt[node_of(prompt, "NeuralPaintersOptimizeActions")]["inputs"]
    opt.update(size=128, strokes=40, rounds=1, steps=100000)
    # every step is an interrupt point; a light objective keeps the test about that, not about speed
    pixel = node_of(prompt, "NeuralPaintersPixelLoss")
    prompt[node_of(prompt, "NeuralPaintersCombineLosses")]["inputs"]["loss_1"] = [pixel, 0]
    prompt_id = comfy.queue(prompt)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until it runs, then let the optimisation get going
        running = comfy.get("/queue").json()["queue_running"]
        if any(item[1] == prompt_id for item in running):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the prompt never started")
    time.sleep(4)
    assert comfy.history(prompt_id) is None, "finished before it was cancelled"
    start = time.monotonic()
    comfy.interrupt()
    with pytest.raises(PromptFailed) as failed:
        comfy.wait(prompt_id, timeout=60, poll=0.1)
    stopped_after = time.monotonic() - start
    assert failed.value.interrupted, failed.value.status
    assert stopped_after < 5.0, f"took {stopped_after:.1f} s to stop after Cancel"
    # the server is fine afterwards
    prompt, _, images = run_example(comfy, "image_to_painting")
    assert images


def test_optimisation_reports_progress_with_live_previews(comfy):
    """What the browser sees: progress messages for Optimize Actions and JPEG previews of the canvas."""
    pytest.importorskip("aiohttp")
    from PIL import Image
    prompt = comfy.convert(image_to_painting(comfy.object_info(), painter=E2E_PAINTER))
    opt_id = node_of(prompt, "NeuralPaintersOptimizeActions")
    prompt[opt_id]["inputs"].update(width=96, height=64, strokes=16, rounds=2, steps=10, seed=11)
    entry, messages, previews = comfy.run_with_events(prompt, timeout=300)
    assert entry["status"]["status_str"] == "success"
    progress = [m["data"] for m in messages if m["type"] == "progress" and m["data"].get("node") == opt_id]
    assert progress and all(p["max"] == 10 for p in progress)
    assert progress[-1]["value"] == 10 and len({p["value"] for p in progress}) >= 5
    assert previews, "no live preview reached the websocket"
    first = Image.open(io.BytesIO(previews[0]))
    assert first.format == "JPEG" and abs(first.width / first.height - 96 / 64) < 0.02  # the canvas, resized


def test_example_fast_painting(comfy, comfy_server):
    """Predicted strokes feed Optimize Actions' init_strokes: every predicted stroke is in the saved file, no new
    one, and the short refinement brings the painting closer to the photograph than the prediction."""
    import numpy as np
    from PIL import Image
    prompt, entry, images = run_example(comfy, "fast_painting")
    predict = prompt[node_of(prompt, "NeuralPaintersPredictStrokes")]["inputs"]
    predicted, refined = images[node_of(prompt, "PreviewImage")][0], images[node_of(prompt, "SaveImage")][0]
    assert predicted.size == refined.size and max(refined.size) == predict["size"]
    saved = entry["outputs"][node_of(prompt, "NeuralPaintersSaveStrokes")]["strokes_files"][0]
    doc = json.loads((comfy_server.dirs["output"] / saved["subfolder"] / saved["filename"]).read_text())
    assert len(doc["strokes"]) == predict["strokes"]
    photo = Image.open(REPO / "example_workflows" / "input" / "neural_painters_astronaut.jpg").convert("RGB")
    photo = np.asarray(photo.resize(refined.size, Image.LANCZOS), np.float32)
    error = {name: float(((np.asarray(im.convert("RGB"), np.float32) - photo) ** 2).mean())
             for name, im in (("predicted", predicted), ("refined", refined))}
    assert error["refined"] < error["predicted"], error


def test_example_paint_video(comfy):
    """The bundled clip (Load Video, Get Video Components) painted as a clip and saved as an animated WebP: one
    frame out for every frame in, each painted."""
    from PIL import Image
    prompt, entry, _ = run_example(comfy, "paint_video")
    anim_id = node_of(prompt, "SaveAnimatedWEBP")
    info = entry["outputs"][anim_id]["images"][0]
    webp = Image.open(io.BytesIO(comfy.view(info["filename"], info["subfolder"], info["type"])))
    side = prompt[node_of(prompt, "NeuralPaintersPaintVideo")]["inputs"]["size"]
    assert webp.format == "WEBP" and webp.size == (side, side)
    total_ms = 0
    for k in range(webp.n_frames):
        webp.seek(k)
        webp.load()
        total_ms += webp.info["duration"]
        if k == 0:
            assert_painted(webp)
    assert abs(total_ms - 12 * 1000 / prompt[anim_id]["inputs"]["fps"]) <= webp.n_frames   # the 12 frames
