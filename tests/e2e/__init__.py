"""End-to-end tests of the node pack inside a real ComfyUI server (see comfy.py and setup_comfyui.py)."""
