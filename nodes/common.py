"""Shared pieces of the nodes: category, custom types, IMAGE/MASK conversions, user-facing errors.

No ComfyUI import here (see comfy_adapter.py for that).
"""
from __future__ import annotations

import functools

import torch

from .. import painter_models

# ComfyUI's node menu: one pack folder, four sub-folders by what a node is for
CATEGORY = "neural painters"
LOADERS, LOSSES, PAINTING, EXPORT = (f"{CATEGORY}/{sub}" for sub in ("loaders", "losses", "painting", "export"))

# custom types (links are checked by string equality, so a wrong link is refused at queue time)
NEURAL_PAINTER = "NEURAL_PAINTER"   # painter_models.NeuralPainter
STROKES = "STROKES"                 # painter_models.brush.strokes.StrokeSet
PAINT_LOSS = "PAINT_LOSS"           # a painter_models loss (callable canvas -> scalar)
CLIP_MODEL = "CLIP_MODEL"           # an open_clip model with its tokenizer



class NodeError(ValueError):
    """An error a user can act on; its message is what ComfyUI shows in the error dialog."""


# ComfyUI names an error by its class's module and name; the pack's module is a path inside
# custom_nodes, which means nothing to a user: the class reads as a plain "NodeError".
NodeError.__module__ = "builtins"


def user_errors(node_name: str):
    """Decorator for a node's FUNCTION.

    Errors from deep inside (bad checkpoints, missing weights, mismatched painters, missing libmypaint)
    reach the user as one clear NodeError message naming the node, not as a traceback from
    painter_models; interrupts pass through untouched.

    The node runs outside inference mode: ComfyUI executes every node under torch.inference_mode(), and
    tensors made there (a painter's weights, a loss's target) can never take part in autograd, which
    Optimize Actions needs. Made here, they are ordinary tensors."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            from . import comfy_adapter
            try:
                with torch.inference_mode(False):
                    return fn(*args, **kwargs)
            except NodeError:
                raise
            except torch.cuda.OutOfMemoryError:
                raise NodeError(out_of_memory(node_name, "GPU memory")) from None
            except MemoryError:
                raise NodeError(out_of_memory(node_name, "memory")) from None
            except Exception as e:  # noqa: BLE001 - re-raised with a clear message (or as is)
                if _is_cpu_out_of_memory(e):
                    raise NodeError(out_of_memory(node_name, "memory")) from None
                if comfy_adapter.is_interrupt(e) or not _is_user_error(e):
                    raise
                message = str(e)
                raise NodeError(message if message.startswith(node_name) else f"{node_name}: {message}") from None
        return run
    return wrap


def out_of_memory(node_name: str, what: str) -> str:
    return (f"{node_name}: out of {what}: use fewer strokes, a smaller canvas or a smaller CLIP model, or free "
            f"memory (other models loaded)")


def _is_cpu_out_of_memory(e: Exception) -> bool:
    """torch reports a failed CPU allocation as a plain RuntimeError from its allocator."""
    return isinstance(e, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(e)


def _is_user_error(e: Exception) -> bool:
    """Errors whose message already tells the user what is wrong (ours and painter_models'): shown
    as a message. Anything else (a bug) keeps its traceback for the report."""
    # ValueError and FileNotFoundError include painter_models' own (CheckpointError, StrokeFileError,
    # BackboneWeightsMissing, ClipWeightsMissing, ...)
    return isinstance(e, (ValueError, FileNotFoundError, painter_models.MyPaintUnavailable))


def image_to_bchw(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [B, H, W, C] (0..1) -> [B, 3, H, W] float32 (alpha dropped, grey expanded)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        raise NodeError(f"expected an IMAGE [batch, height, width, channels], got "
                        f"{getattr(image, 'shape', type(image).__name__)}")
    x = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(*image.shape[:-1], 3)
    return x.permute(0, 3, 1, 2).float().contiguous()


def bchw_to_image(x: torch.Tensor, device=None) -> torch.Tensor:
    """[B, 3, H, W] -> ComfyUI IMAGE [B, H, W, 3] float32 in 0..1 on the intermediate device."""
    from . import comfy_adapter
    out = x.detach().clamp(0, 1).permute(0, 2, 3, 1).float().contiguous()
    return out.to(device or comfy_adapter.intermediate_device())


def mask_to_b1hw(mask: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
    """ComfyUI MASK [B, H, W] or [H, W] (1 = selected) -> [B, 1, H, W] resized to `size` (H, W)."""
    if mask is None:
        return None
    m = mask.float()
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3:
        raise NodeError(f"expected a MASK [batch, height, width], got {list(mask.shape)}")
    m = m[:, None]
    if tuple(m.shape[-2:]) != tuple(size):
        m = torch.nn.functional.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return m.clamp(0, 1)


def check_painter_matches(painter, strokes, node_name: str):
    """A painter must speak the strokes' action layout; say so clearly when it does not."""
    p_layout, s_layout = painter.layout, strokes.layout
    if p_layout.to_dict() != s_layout.to_dict():
        raise NodeError(f"{node_name}: the painter {_painter_label(painter)} was trained on action layout "
                        f"{p_layout.name!r} ({p_layout.dim} numbers) but these strokes use {s_layout.name!r} "
                        f"({s_layout.dim} numbers): use a painter trained on {s_layout.name!r}")


def _painter_label(painter) -> str:
    import os
    path = getattr(painter, "path", None)
    return repr(os.path.basename(path)) if path else f"for {getattr(painter, 'brush', '?')!r}"
