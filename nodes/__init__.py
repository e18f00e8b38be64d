"""ComfyUI nodes of the Neural Painters pack (filled in by the node-pack issue)."""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
