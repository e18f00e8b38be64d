"""Load CLIP (an open_clip model and its weights) and CLIP Text Loss (text to painting)."""
from __future__ import annotations

import re

from . import comfy_adapter as comfy
from .common import CLIP_MODEL, LOADERS, LOSSES, PAINT_LOSS, SEED_MAX, NodeError, user_errors
from .core import submodule
from .nodes_losses import one_mask, one_term

USE_TAG = "(use the pretrained tag)"
# an open_clip pretrained tag: letters, digits, '_', '-', '.' (laion2b_s34b_b79k, openai, ...); never a path
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def clip_dirs() -> list[str]:
    """Folders searched for CLIP checkpoints: ComfyUI's models/clip (and extra model paths)."""
    return comfy.model_dirs("clip")


_CACHE: dict = {}


def load_clip_cached(model_name: str, pretrained: str, device, precision: str):
    key = (model_name, pretrained, str(device), precision)
    if key not in _CACHE:
        _CACHE.clear()  # CLIP models are large: keep one
        _CACHE[key] = submodule("clip_loader").load_clip(model_name, pretrained, device=device,
                                                         search_dirs=clip_dirs(), precision=precision)
    return _CACHE[key]


class LoadCLIP:
    DESCRIPTION = ("Loads an open_clip CLIP model for text-to-painting. Weights: a file from ComfyUI/models/clip, "
                   "or a pretrained tag (looked up in ComfyUI/models/clip as '<model>-<tag>.safetensors', then "
                   "the Hugging Face cache, then downloaded when online).")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = (CLIP_MODEL,)
    RETURN_NAMES = ("clip",)
    OUTPUT_TOOLTIPS = ("The frozen CLIP model with its tokenizer, on ComfyUI's compute device.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": ("STRING", {"default": "ViT-B-32", "tooltip":
                                          "open_clip model name: ViT-B-32, ViT-B-16, ViT-L-14, ... (ViT-B-32 is "
                                          "the CLIPDraw choice: fast and good enough)."}),
                "weights_file": ([USE_TAG] + comfy.list_models("clip"), {"default": USE_TAG, "tooltip":
                                 "A checkpoint file in ComfyUI/models/clip for this model, or use the tag below."}),
                "pretrained_tag": ("STRING", {"default": "openai", "tooltip":
                                              "open_clip pretrained tag (openai, laion2b_s34b_b79k, ...) used when "
                                              "no file is picked. 'random' gives untrained weights (tests only)."}),
                "precision": (["fp32", "fp16", "bf16"], {"default": "fp32", "tooltip":
                                                          "fp16 / bf16 halve memory on a GPU; use fp32 on CPU."}),
            },
        }

    @user_errors("Load CLIP")
    def load(self, model_name, weights_file=USE_TAG, pretrained_tag="openai", precision="fp32"):
        model_name = (model_name or "").strip()
        if not model_name:
            raise NodeError("Load CLIP: give an open_clip model name, e.g. ViT-B-32")
        if weights_file != USE_TAG:
            pretrained = comfy.model_path("clip", weights_file)
            if pretrained is None:
                raise NodeError(f"Load CLIP: {weights_file!r} is not in the clip models folder (ComfyUI/models/clip): "
                                f"pick a file from the list")
        else:
            pretrained = (pretrained_tag or "").strip() or "openai"
            if not TAG.fullmatch(pretrained) or pretrained.lower().endswith(FILE_SUFFIXES):
                # a path here would load (or reveal) any file on the server: files come from weights_file only
                raise NodeError(f"Load CLIP: pretrained_tag {pretrained[:80]!r} is not an open_clip tag (e.g. openai, "
                                f"laion2b_s34b_b79k); to use a checkpoint file, put it in ComfyUI/models/clip and pick "
                                f"it in weights_file")
        device = comfy.compute_device()
        if precision != "fp32" and device.type == "cpu":
            precision = "fp32"  # half precision on CPU is slow or unsupported
        return (load_clip_cached(model_name, pretrained, device, precision),)


class CLIPTextLoss:
    DESCRIPTION = ("Text loss through CLIP (CLIPDraw): 1 - cosine similarity between the prompt and augmented "
                   "cutouts of the painting, plus a penalty for negative prompts.")
    CATEGORY = LOSSES
    FUNCTION = "make"
    RETURN_TYPES = (PAINT_LOSS,)
    RETURN_NAMES = ("loss",)
    OUTPUT_TOOLTIPS = ("The CLIP text loss (one weighted term), for Optimize Actions or Combine Losses.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip": (CLIP_MODEL, {"tooltip": "A CLIP model from Load CLIP."}),
                "prompt": ("STRING", {"multiline": True, "default": "a painting of a black sheep in a green field",
                                      "tooltip": "What the painting should show. Several prompts: one per line "
                                                 "(their similarities are averaged)."}),
                "negative_prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                                               "What it should not look like (one per line); may be empty."}),
                "negative_weight": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 10.0, "step": 0.01,
                                              "tooltip": "Weight of the negative prompts (CLIPDraw: 0.3)."}),
                "cutouts": ("INT", {"default": 4, "min": 1, "max": 64, "step": 1, "tooltip":
                                    "Augmented crops of the painting scored per step (more: steadier, slower)."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01,
                                     "tooltip": "Weight of this term in the total loss."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True,
                                 "tooltip": "Seed of the random cutouts."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: CLIP sees only the masked region (white elsewhere)."}),
            },
        }

    @user_errors("CLIP Text Loss")
    def make(self, clip, prompt, negative_prompt="", negative_weight=0.3, cutouts=4, weight=1.0, seed=0, mask=None):
        prompts = [p.strip() for p in (prompt or "").splitlines() if p.strip()]
        negatives = [p.strip() for p in (negative_prompt or "").splitlines() if p.strip()]
        if not prompts:
            raise NodeError("CLIP Text Loss: the prompt is empty; describe what the painting should show")
        loss = submodule("losses").ClipTextLoss(clip, prompts, negatives, negative_weight=float(negative_weight),
                                                cutouts=int(cutouts), mask=one_mask(mask), seed=int(seed) % 2**63)
        return (one_term("clip", weight, loss),)
