"""The harness itself, proven on core ComfyUI nodes in a real server (before and beside our nodes)."""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from .comfy import PACK_NAME, PromptRefused, ui_to_api

pytestmark = pytest.mark.slow
WORKFLOWS = Path(__file__).parent / "workflows"


def load(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def test_pack_loads_without_import_error(comfy_server):
    line = comfy_server.pack_import_line()
    assert line is not None, f"ComfyUI never tried to load {PACK_NAME}; log:\n{comfy_server.log_tail()}"
    assert "IMPORT FAILED" not in line, f"{line}\nlog:\n{comfy_server.log_tail(150)}"
    # a traceback through our pack anywhere in the log is a failure too (e.g. a node that raised on load)
    ours = comfy_server.pack_tracebacks()
    assert not ours, "traceback through the pack in the server log:\n" + "\n---\n".join(ours)
    refused = re.findall(r"Cannot import (.+?) module for custom nodes", comfy_server.log())
    assert not [m for m in refused if Path(m).name == PACK_NAME], refused


def test_core_workflow_runs_and_returns_images(comfy):
    prompt = comfy.convert(load("core_empty_image.json"))
    assert set(prompt) == {"1", "3", "4", "5"}, "the note, the reroute and the muted node never reach the server"
    assert prompt["3"]["inputs"]["image"] == ["1", 0], "links are followed through reroutes"
    assert prompt["1"]["inputs"] == {"width": 64, "height": 48, "batch_size": 2, "color": 0xFF0000}

    entry = comfy.run(prompt, timeout=120)
    images = comfy.images(entry)
    assert set(images) == {"4", "5"}
    for nid, expected in (("4", (0, 255, 255)), ("5", (255, 0, 0))):  # inverted red is cyan
        assert len(images[nid]) == 2
        for im in images[nid]:
            assert im.size == (64, 48)
            assert im.convert("RGB").getpixel((10, 10)) == expected
    saved = entry["outputs"]["4"]["images"][0]
    assert saved["type"] == "output" and saved["subfolder"] == "np_e2e"
    assert entry["outputs"]["5"]["images"][0]["type"] == "temp"


def test_wrong_link_is_refused_at_queue_time(comfy):
    with pytest.raises(PromptRefused) as refused:
        comfy.queue(comfy.convert(load("core_wrong_link.json")))
    assert refused.value.status == 400
    errors = refused.value.node_errors["2"]["errors"]
    assert errors[0]["type"] == "return_type_mismatch", errors
    assert "LATENT" in errors[0]["details"] and "IMAGE" in errors[0]["details"]


def test_interrupt_with_nothing_running_is_harmless(comfy):
    comfy.interrupt()
    entry = comfy.run(comfy.convert(load("core_empty_image.json")), timeout=120)
    assert entry["status"]["status_str"] == "success"


def template_files() -> list[str]:
    spec = importlib.util.find_spec("comfyui_workflow_templates_media_image")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = os.path.dirname(list(spec.submodule_search_locations)[0])
    return sorted(glob.glob(os.path.join(root, "comfyui_workflow_templates_media_*", "templates", "*.json")))


def test_converter_on_real_frontend_workflows(comfy):
    """Every workflow template shipped for ComfyUI's frontend (saved by the real frontend) that uses only
    nodes this server has converts, and the server refuses it only for the model and image files
    this test machine lacks: never for a link, a missing input or a misplaced widget value."""
    files = template_files()
    if not files:
        pytest.skip("comfyui-workflow-templates is not installed")
    info = comfy.object_info()
    checked = 0
    for path in files:
        workflow = json.loads(Path(path).read_text())
        if "nodes" not in workflow or workflow.get("definitions", {}).get("subgraphs"):
            continue
        if any(n["type"] not in info and n["type"] not in ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
               for n in workflow["nodes"]):
            continue  # API nodes (disabled here), audio nodes (no torchaudio)
        prompt = ui_to_api(workflow, info, strict=False)
        try:
            prompt_id = comfy.queue(prompt)
        except PromptRefused as e:
            for nid, node_error in e.node_errors.items():
                for err in node_error["errors"]:
                    name = err.get("extra_info", {}).get("input_name")
                    value = prompt[nid]["inputs"].get(name)
                    assert err["type"] in ("value_not_in_list", "custom_validation_failed") and \
                        isinstance(value, str) and "." in value, (os.path.basename(path), nid, err)
            assert e.node_errors, (os.path.basename(path), e.body)
        else:  # nothing in it needs a file: let it go, but do not spend time running it
            comfy.post("/queue", json={"delete": [prompt_id]})
            comfy.interrupt(prompt_id)
        checked += 1
    assert checked >= 20, f"only {checked} frontend templates were usable"
