"""ComfyUI entry point of the Neural Painters pack.

Imports cleanly without ComfyUI (pytest imports this file as the repo root package):
the nodes only touch ComfyUI through nodes/comfy_adapter.py, which degrades gracefully.
"""
try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError:  # imported as a plain module (no parent package): nothing to register
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
