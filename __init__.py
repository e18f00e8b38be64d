"""ComfyUI entry point of the Neural Painters pack.

ComfyUI imports this folder as a package (by file path), so the relative import below works;
the nodes touch ComfyUI only through nodes/comfy_adapter.py, which degrades gracefully, so this
also imports with no ComfyUI present. Imported as a plain module (no parent package, e.g. by a
tool scanning the folder) there is nothing to register.
"""
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
