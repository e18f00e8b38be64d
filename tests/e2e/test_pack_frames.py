"""Which traceback frames are the pack's fault (no server needed): ComfyUI installed inside the checkout
(.cache/comfyui) must not count, whatever the checkout folder is called."""
from __future__ import annotations

from pathlib import Path

from .comfy import PACK_NAME, pack_frame

REPO = Path("/home/u/ComfyUI/custom_nodes") / PACK_NAME


def test_pack_code_through_the_checkout_or_the_link_is_ours():
    assert pack_frame(f"{REPO}/nodes/nodes_optimize.py", repo=REPO)
    assert pack_frame(f"{REPO}/painter_models/canvas.py", repo=REPO)
    assert pack_frame(f"{REPO}/__init__.py", repo=REPO)
    assert pack_frame(f"/tmp/x/comfyui/custom_nodes/{PACK_NAME}/nodes/common.py", repo=Path("/elsewhere"))
    # the e2e layout: ComfyUI inside the checkout, the pack linked into its custom_nodes
    assert pack_frame(f"{REPO}/.cache/comfyui/custom_nodes/{PACK_NAME}/nodes/common.py", repo=REPO)


def test_comfyui_inside_the_checkout_is_not_ours():
    # the README's clone folder holds ComfyUI's own code under .cache/ (e2e set-up): its tracebacks
    # (e.g. comfy_extras/nodes_audio.py without torchaudio) are not the pack's
    assert not pack_frame(f"{REPO}/.cache/comfyui/comfy_extras/nodes_audio.py", repo=REPO)
    assert not pack_frame(f"{REPO}/.cache/comfyui/nodes.py", repo=REPO)
    assert not pack_frame(f"{REPO}/.venv/lib/python3.11/site-packages/torch/nn/modules/module.py", repo=REPO)
    assert not pack_frame("/usr/lib/python3.11/importlib/__init__.py", repo=REPO)
