"""The pack as a user meets it in ComfyUI's own frontend (headless Chromium, see browser.py): every example
workflow loads with every node known, no dialog, no console error and every widget value fitting its widget;
one is queued from the page and its painting appears in the page. Screenshots of each loaded workflow are
left in the artefacts folder (.cache/e2e/artefacts/browser/, or NP_E2E_ARTEFACTS) to be looked at.
"""
from __future__ import annotations

import io

import pytest
from PIL import Image

from .comfy import PACK_NAME
from .examples import EXAMPLES
from .test_examples_e2e import assert_painted, load_example

pytestmark = pytest.mark.slow


def node_id(workflow: dict, node_type: str) -> int:
    return next(n["id"] for n in workflow["nodes"] if n["type"] == node_type)


def test_page_starts_without_errors_from_the_pack(comfy_page):
    ours = [m for m in comfy_page.startup_errors if PACK_NAME in m or "NeuralPainters" in m]
    assert not ours, ours


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_loads_in_the_browser(comfy_page, artefacts_dir, name):
    workflow = load_example(name)
    report = comfy_page.load_workflow(workflow)
    comfy_page.frame_graph()
    comfy_page.screenshot(artefacts_dir / "browser" / f"{name}.png")
    assert not report.missing_types, report.missing_types
    assert not report.dialogs, report.dialogs
    assert not report.console_errors, report.console_errors
    assert not report.bad_widgets, report.bad_widgets
    assert report.node_types == [n["type"] for n in workflow["nodes"]]


def test_the_page_reports_a_missing_node_type(comfy_page):
    """The checks above can see a broken workflow: an unknown node type is missing, with the frontend's dialog."""
    workflow = load_example("image_to_painting")
    workflow["nodes"][1]["type"] = "NeuralPaintersNoSuchNode"
    report = comfy_page.load_workflow(workflow)
    comfy_page.close_dialogs()
    assert report.missing_types == ["NeuralPaintersNoSuchNode"]
    assert any("NeuralPaintersNoSuchNode" in d for d in report.dialogs), report.dialogs


def test_the_page_reports_widget_values_in_the_wrong_slots(comfy_page):
    """A workflow saved for an older version of a node (its values one slot off) is seen as such."""
    workflow = load_example("image_to_painting")
    opt = next(n for n in workflow["nodes"] if n["type"] == "NeuralPaintersOptimizeActions")
    opt["widgets_values"].insert(0, 384)  # the old width, height pair where size is now
    report = comfy_page.load_workflow(workflow)
    assert any("Optimize" in w and "rounds" in w for w in report.bad_widgets), report.bad_widgets


def test_workflow_queued_from_the_page_shows_its_painting(comfy_page, comfy, artefacts_dir):
    """What a user does: load the example, make it small (on a CPU), press Run, see the painting in Save Image."""
    workflow = load_example("image_to_painting")
    assert comfy_page.load_workflow(workflow).clean
    save = node_id(workflow, "SaveImage")
    comfy_page.set_widgets(node_id(workflow, "NeuralPaintersOptimizeActions"),
                           {"size": 64, "strokes": 8, "rounds": 1, "steps": 4})
    comfy_page.queue()
    shown = comfy_page.wait_for_output_image(save, timeout=300)
    comfy_page.screenshot(artefacts_dir / "browser" / "image_to_painting_queued.png")
    painting = Image.open(io.BytesIO(comfy.view(shown["filename"], shown["subfolder"], shown["type"])))
    assert_painted(painting, (64, 64))
    assert not comfy_page.dialogs() and not comfy_page.console_errors()


def test_execution_error_shows_the_message_in_a_dialog(comfy_page, artefacts_dir):
    """A user error (a stroke size range that is empty) as the user sees it: ComfyUI's error dialog with the
    pack's message, and no module path of the pack's in it."""
    workflow = load_example("image_to_painting")
    assert comfy_page.load_workflow(workflow).clean
    comfy_page.set_widgets(node_id(workflow, "NeuralPaintersOptimizeActions"),
                           {"size": 64, "strokes": 8, "rounds": 1, "steps": 4, "min_stroke_size": 80,
                            "max_stroke_size": 20})
    comfy_page.queue()
    dialogs = comfy_page.wait_for_dialog(timeout=120)
    comfy_page.screenshot(artefacts_dir / "browser" / "execution_error.png")
    comfy_page.close_dialogs()
    assert len(dialogs) == 1, dialogs
    assert "Optimize Actions: min_stroke_size 80 is larger than max_stroke_size 20" in dialogs[0], dialogs
    assert "custom_nodes" not in dialogs[0] and PACK_NAME not in dialogs[0] and "nodes.common" not in dialogs[0]
