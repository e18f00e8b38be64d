"""The UI -> API workflow converter, on a small hand-made /object_info (no server needed)."""
from __future__ import annotations

import pytest

from .comfy import ComfyError, ui_to_api, widget_slots

OBJECT_INFO = {
    "Sampler": {"input": {"required": {
        "model": ["MODEL"], "seed": ["INT", {"default": 0, "control_after_generate": True}],
        "steps": ["INT", {"default": 20}], "sampler_name": [["euler", "ddim"]],
        "denoise": ["FLOAT", {"default": 1.0}]},
        "optional": {"note": ["STRING", {"multiline": True}], "latent": ["LATENT"],
                     "strength": ["FLOAT", {"forceInput": True}]}},
        "input_order": {"required": ["model", "seed", "steps", "sampler_name", "denoise"],
                        "optional": ["note", "latent", "strength"]}},
    "Legacy": {"input": {"required": {"noise_seed": ["INT", {}], "count": ["INT", {}],
                                      "no_control": ["INT", {"control_after_generate": False}],
                                      "mode": ["COMBO", {"options": ["a", "b"]}]}}},
    "Loader": {"input": {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}}},
    "ModelSource": {"input": {"required": {}}},
    "Passthrough": {"input": {"required": {"model": ["MODEL"]}}},
}


def node(nid, ntype, widgets=None, inputs=(), outputs=(), mode=0):
    return {"id": nid, "type": ntype, "mode": mode, "widgets_values": widgets,
            "inputs": [{"name": n, "type": t, "link": l} for n, t, l in inputs],
            "outputs": [{"name": t, "type": t, "links": ls} for t, ls in outputs]}


def test_widget_slots_follow_the_frontend():
    assert widget_slots(OBJECT_INFO["Sampler"]) == [
        ("seed", "value"), ("seed", "control"), ("steps", "value"), ("sampler_name", "value"),
        ("denoise", "value"), ("note", "value")]  # forceInput FLOAT and sockets have no widget
    # legacy convention: an INT named seed / noise_seed gets a control value unless told otherwise
    assert widget_slots(OBJECT_INFO["Legacy"]) == [
        ("noise_seed", "value"), ("noise_seed", "control"), ("count", "value"), ("no_control", "value"),
        ("mode", "value")]
    assert widget_slots(OBJECT_INFO["Loader"]) == [("image", "value"), ("image", "upload")]


def test_convert_widgets_links_reroutes_and_primitives():
    wf = {"nodes": [
        node(1, "ModelSource", [], outputs=[("MODEL", [1])]),
        node(2, "Reroute", None, inputs=[("", "*", 1)], outputs=[("MODEL", [2])]),
        node(3, "Sampler", [42, "randomize", 7, "ddim", 0.5, "hi"],
             inputs=[("model", "MODEL", 2), ("steps", "INT", 3), ("latent", "LATENT", None)]),
        node(4, "PrimitiveNode", [9, "fixed"], outputs=[("INT", [3])]),
        node(5, "Note", ["just a note"]),
        node(6, "Loader", ["b.png", "image"]),
        node(7, "Legacy", {"noise_seed": 5, "count": 2, "no_control": 1, "mode": "b"}),
    ], "links": [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "MODEL"], [3, 4, 0, 3, 2, "INT"]]}
    api = ui_to_api(wf, OBJECT_INFO)
    assert set(api) == {"1", "3", "6", "7"}
    assert api["3"]["class_type"] == "Sampler"
    assert api["3"]["inputs"] == {"model": ["1", 0], "seed": 42, "steps": 7, "sampler_name": "ddim",
                                  "denoise": 0.5, "note": "hi"}
    assert api["6"]["inputs"] == {"image": "b.png"}
    assert api["7"]["inputs"] == {"noise_seed": 5, "count": 2, "no_control": 1, "mode": "b"}


def test_primitive_value_used_when_the_widget_value_is_missing():
    wf = {"nodes": [node(1, "PrimitiveNode", [11, "fixed"], outputs=[("INT", [1])]),
                    node(2, "Legacy", None, inputs=[("count", "INT", 1)])],
          "links": [[1, 1, 0, 2, 0, "INT"]]}
    assert ui_to_api(wf, OBJECT_INFO)["2"]["inputs"] == {"count": 11}


def test_older_saves_without_control_or_upload_values():
    wf = {"nodes": [node(1, "Loader", ["a.png"]), node(2, "Sampler", [1, 2, "euler", 1.0, ""])], "links": []}
    api = ui_to_api(wf, OBJECT_INFO)
    assert api["1"]["inputs"] == {"image": "a.png"}
    assert api["2"]["inputs"] == {"seed": 1, "steps": 2, "sampler_name": "euler", "denoise": 1.0, "note": ""}


def test_muted_nodes_dropped_and_bypassed_nodes_passed_through():
    wf = {"nodes": [
        node(1, "ModelSource", [], outputs=[("MODEL", [1])]),
        node(2, "Passthrough", [], inputs=[("model", "MODEL", 1)], outputs=[("MODEL", [2])], mode=4),
        node(3, "Sampler", [1, "fixed", 2, "euler", 1.0, ""], inputs=[("model", "MODEL", 2)]),
        node(4, "Sampler", [1, "fixed", 2, "euler", 1.0, ""], mode=2),
    ], "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"]]}
    api = ui_to_api(wf, OBJECT_INFO)
    assert set(api) == {"1", "3"}
    assert api["3"]["inputs"]["model"] == ["1", 0]


def test_clear_errors():
    with pytest.raises(ComfyError, match="does not know"):
        ui_to_api({"nodes": [node(1, "Missing", [])], "links": []}, OBJECT_INFO)
    with pytest.raises(ComfyError, match="do not fit its widgets"):
        ui_to_api({"nodes": [node(1, "Sampler", [1, 2, 3])], "links": []}, OBJECT_INFO)
    extra = {"nodes": [node(1, "Loader", ["a.png", "image", "preview"])], "links": []}
    with pytest.raises(ComfyError, match="do not fit its widgets"):
        ui_to_api(extra, OBJECT_INFO)
    # lenient mode (for workflows saved by the real frontend): trailing display-only values are ignored
    assert ui_to_api(extra, OBJECT_INFO, strict=False)["1"]["inputs"] == {"image": "a.png"}
