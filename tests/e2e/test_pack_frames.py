"""Which traceback frames are the pack's fault (no server needed): ComfyUI installed inside the checkout
(.cache/comfyui) must not count, whatever the checkout folder is called."""
from __future__ import annotations

from pathlib import Path

from .comfy import PACK_NAME, pack_faults, pack_frame

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


def _traceback(frame: str, last: str) -> str:
    return ("Traceback (most recent call last):\n"
            '  File "/srv/comfyui/execution.py", line 286, in process_inputs\n    result = f(**inputs)\n'
            f'  File "{frame}", line 51, in run\n    return fn(*args, **kwargs)\n{last}\n\n')


def test_a_node_error_is_the_message_not_a_fault():
    ours = f"/srv/comfyui/custom_nodes/{PACK_NAME}/nodes/common.py"
    log = ("Starting server\n" + _traceback(ours, "NodeError: Optimize Actions: min_stroke_size 80 is larger than\n"
                                                  "max_stroke_size 20")
           + _traceback(ours, "TypeError: unsupported operand") + _traceback("/srv/comfyui/nodes.py", "KeyError: 'x'"))
    faults = pack_faults(log)
    assert len(faults) == 1 and faults[0].endswith("TypeError: unsupported operand"), faults
