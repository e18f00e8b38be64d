"""Load CLIP (an open_clip model and its weights) and CLIP Text Loss (text to painting)."""
from __future__ import annotations

import os
import re
import weakref

from ..painter_models import limits
from ..painter_models.objectives import clip_loader, clip_loss
from . import comfy_adapter as comfy
from .common import CLIP_MODEL, LOADERS, LOSSES, PAINT_LOSS, NodeError, user_errors
from .nodes_losses import one_mask, one_term

USE_TAG = "(use the pretrained tag)"
# an open_clip pretrained tag: letters, digits, '_', '-', '.' (laion2b_s34b_b79k, openai, ...); never a path
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


SHIPPED_PREFIX = "shipped/"


def clip_dirs() -> list[str]:
    """Folders searched for CLIP checkpoints: ComfyUI's models/open_clip and models/clip (and extra paths)."""
    return comfy.model_dirs("open_clip") + comfy.model_dirs("clip")


def shipped_clip_files() -> list[str]:
    folder = clip_loader.PACK_CLIP_CONFIGS
    return sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")) if os.path.isdir(folder) else []


_HEADERS: dict = {}


def is_open_clip_file(path: str) -> bool:
    """Whether a safetensors file holds an open_clip model (both towers' names in its header: read, not
    loaded; remembered per file). Other formats cannot be checked unopened: they are not listed."""
    if not path.endswith(".safetensors"):
        return False
    stat = os.stat(path)
    key = (path, stat.st_mtime, stat.st_size)
    if key not in _HEADERS:
        from safetensors import safe_open
        try:
            with safe_open(path, framework="pt") as f:
                names = set(f.keys())
        except Exception:  # noqa: BLE001 - an unreadable file is simply not an open_clip checkpoint
            names = set()
        _HEADERS[key] = {"logit_scale", "token_embedding.weight"} <= names and any(
            n.startswith("visual.") for n in names)
    return _HEADERS[key]


def weight_choices() -> list[str]:
    """What the weights list offers: the pack's own CLIP (shipped/...), every file in models/open_clip, and
    the open_clip checkpoints among models/clip's files (text_encoders: Stable Diffusion's are left out)."""
    own = [SHIPPED_PREFIX + f for f in shipped_clip_files()]
    clip_files = [n for n in comfy.list_models("clip") if (p := comfy.model_path("clip", n)) and is_open_clip_file(p)]
    return own + sorted(set(comfy.list_models("open_clip")) | set(clip_files))


def weights_path(name: str) -> str | None:
    """The file a weights_file value names (only what weight_choices offers), or None."""
    if name.startswith(SHIPPED_PREFIX):
        base = name[len(SHIPPED_PREFIX):]
        return comfy.inside(clip_loader.PACK_CLIP_CONFIGS, base) if base in shipped_clip_files() else None
    path = comfy.model_path("open_clip", name)
    if path is not None:
        return path
    path = comfy.model_path("clip", name)
    return path if path is not None and is_open_clip_file(path) else None


def model_names() -> list[str]:
    """open_clip's model names, the pack's own (np-tiny-rn-64) included."""
    import open_clip
    clip_loader.register_pack_configs()
    return open_clip.list_models()


def pretrained_tags() -> list[str]:
    """Every open_clip pretrained tag (which model each fits: open_clip.list_pretrained()), 'openai' first;
    'random' for untrained weights."""
    import open_clip
    tags = sorted({tag for _, tag in open_clip.list_pretrained()} - {"openai"})
    return ["openai"] + tags + ["random"]


# CLIP models loaded once while something uses them: weak references, so ComfyUI freeing its cache frees them
_CACHE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def load_clip_cached(model_name: str, pretrained: str, device, precision: str):
    key = (model_name, pretrained, str(device), precision)
    model = _CACHE.get(key)
    if model is None:
        model = _CACHE[key] = clip_loader.load_clip(model_name, pretrained, device=device,
                                                    search_dirs=clip_dirs(), precision=precision)
    return model


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
                "model_name": (model_names(), {"default": "ViT-B-32", "tooltip":
                                                "open_clip model: ViT-B-32 is the CLIPDraw choice (fast, good "
                                                "enough); np-tiny-rn-64 is the pack's own small shapes CLIP."}),
                "weights_file": ([USE_TAG] + weight_choices(), {"default": USE_TAG, "tooltip":
                                 "A checkpoint for this model: shipped/... comes with the pack (for np-tiny-rn-64); "
                                 "or a file from ComfyUI/models/open_clip (any format) or ComfyUI/models/clip "
                                 "(open_clip .safetensors only: that folder also holds Stable Diffusion's text "
                                 "encoders); or use the pretrained tag below."}),
                "pretrained_tag": (pretrained_tags(), {"default": "openai", "tooltip":
                                                       "open_clip pretrained tag, used when no file is picked "
                                                       "(looked up in the clip folders, the Hugging Face cache, "
                                                       "then downloaded). 'random': untrained weights (tests)."}),
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
            pretrained = weights_path(weights_file)
            if pretrained is None:
                raise NodeError(f"Load CLIP: {weights_file!r} is not an open_clip checkpoint in "
                                f"ComfyUI/models/open_clip or ComfyUI/models/clip: pick a file from the list")
        else:
            pretrained = (pretrained_tag or "").strip() or "openai"
            if not TAG.fullmatch(pretrained) or pretrained.lower().endswith(FILE_SUFFIXES):
                # a path here would load (or reveal) any file on the server: files come from weights_file only
                raise NodeError(f"Load CLIP: pretrained_tag {pretrained[:80]!r} is not an open_clip tag (e.g. openai, "
                                f"laion2b_s34b_b79k); to use a checkpoint file, put it in ComfyUI/models/clip and pick "
                                f"it in weights_file")
        if precision != "fp32" and comfy.compute_device().type == "cpu":
            precision = "fp32"  # half precision on CPU is slow or unsupported
        return (load_clip_cached(model_name, pretrained, comfy.storage_device(), precision),)


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
                "seed": ("INT", {"default": 0, "min": 0, "max": limits.SEED_MAX, "control_after_generate": True,
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
        with comfy.on_compute_device(clip):   # the prompts are encoded here
            loss = clip_loss.ClipTextLoss(clip, prompts, negatives, negative_weight=float(negative_weight),
                                          cutouts=int(cutouts), mask=one_mask(mask), seed=int(seed) % 2**63)
        return (one_term("clip", weight, loss),)
