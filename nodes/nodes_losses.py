"""Painting objectives: VGG Feature Loss, Pixel Loss, Style Loss, ImageNet Class Loss and Combine Losses
(CLIP Text Loss: nodes_clip.py).

A PAINT_LOSS is a painter_models.objectives.losses.WeightedLoss: named terms with weights, callable on a canvas
[B, 3, H, W] -> scalar. Each loss node makes one term with its own weight; Combine Losses merges
terms (scaling each input's weights), so any mix of objectives reaches Optimize Actions.
"""
from __future__ import annotations

from ..painter_models import limits
from ..painter_models.objectives import backbones, imagenet_loss, losses
from . import comfy_adapter as comfy
from .common import LOSSES, PAINT_LOSS, NodeError, image_to_bchw, user_errors

BACKBONES = ["efficientnet_lite0", "vgg16", "vgg16_bn"]
AUTO_WEIGHTS = "auto"


def one_term(name: str, weight: float, loss):
    return losses.combine([(name, float(weight), loss)])


def merge(losses_and_scales) -> object:
    """One WeightedLoss from several, each input's term weights multiplied by its scale."""
    terms, used = [], set()
    for loss, scale in losses_and_scales:
        if loss is None:
            continue
        for name, weight, term in zip(loss.names, loss.weights, loss.terms):
            unique, k = name, 2
            while unique in used:
                unique, k = f"{name}_{k}", k + 1
            used.add(unique)
            terms.append((unique, weight * float(scale), term))
    if not terms:
        raise NodeError("Combine Losses: connect at least one loss")
    return losses.combine(terms)


def each_image(image, mask, what: str) -> list[tuple]:
    """(image [1, 3, H, W], mask or None) for every image of an IMAGE batch, none dropped: a loss node
    makes one loss per image (OUTPUT_IS_LIST), so Optimize Actions paints each. A single mask applies
    to every image; a batch of masks, one per image. Ordinary tensors, never ComfyUI's inference ones."""
    if image is None:
        raise NodeError(f"{what}: connect an image")
    images = [im.clone() for im in image_to_bchw(image).split(1)]
    if mask is None:
        return [(im, None) for im in images]
    masks = mask[None] if mask.dim() == 2 else mask
    if len(masks) not in (1, len(images)):
        raise NodeError(f"{what}: {len(masks)} masks for {len(images)} images: give one mask, or one per image")
    return [(im, masks[min(i, len(masks) - 1)].clone()) for i, im in enumerate(images)]


def one_mask(mask):
    """A loss with no image of its own takes one mask (a batch of masks is refused, not cut to its first)."""
    if mask is None:
        return None
    if mask.dim() == 3 and len(mask) > 1:
        raise NodeError(f"a batch of {len(mask)} masks for one loss: give one mask")
    return (mask[0] if mask.dim() == 3 else mask).clone()


def weights_dirs() -> list[str]:
    """Where VGG weights are looked for: ComfyUI's models/vgg (and extra paths), then models/neural_painters."""
    return comfy.model_dirs("vgg") + comfy.model_dirs("neural_painters")


def feature_network(node_name: str, backbone: str, weights: str, layers: str, default_layers=None):
    """The frozen feature network a loss node asks for: backbone name, weights ('auto' or a file in
    ComfyUI/models/vgg), layers ('relu3_3, relu4_3'; empty: `default_layers`, else the network's own)."""
    if backbone not in BACKBONES:
        raise NodeError(f"{node_name}: unknown backbone {backbone!r}; choose one of {BACKBONES}")
    path = AUTO_WEIGHTS
    if weights != AUTO_WEIGHTS:
        path = comfy.model_path("vgg", weights)
        if path is None:
            raise NodeError(f"{node_name}: weights file {weights!r} not found in ComfyUI/models/vgg")
    names = [s.strip() for s in layers.replace(";", ",").split(",") if s.strip()] or default_layers
    return backbones.build_backbone(backbone, weights=path, layers=names, device=comfy.storage_device(),
                                    search_dirs=weights_dirs())


def backbone_inputs(layers_tip: str) -> dict:
    return {
        "backbone": (BACKBONES, {"default": "efficientnet_lite0", "tooltip":
                                 "Feature network. efficientnet_lite0: offline, fast; vgg16 / vgg16_bn: the classic "
                                 "perceptual network (weights needed: ComfyUI/models/vgg, the torch cache, or a "
                                 "download when online)."}),
        "weights": ([AUTO_WEIGHTS] + comfy.list_models("vgg"), {"default": AUTO_WEIGHTS, "tooltip":
                    "Network weights: 'auto' finds them (ComfyUI/models/vgg, the torch cache, a download); or pick "
                    "a file from ComfyUI/models/vgg."}),
        "layers": ("STRING", {"default": "", "tooltip": layers_tip}),
    }


class VGGFeatureLoss:
    DESCRIPTION = ("Perceptual (feature) loss against a content image: the painting should look like the "
                   "image to a frozen image network. efficientnet_lite0 works offline (its ImageNet weights "
                   "ship with a pip package); vgg16 / vgg16_bn need torchvision's ImageNet file in "
                   "ComfyUI/models/vgg (or the torch cache, or a download when online).")
    CATEGORY = LOSSES
    FUNCTION = "make"
    RETURN_TYPES = (PAINT_LOSS,)
    RETURN_NAMES = ("loss",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("The feature loss (one weighted term), for Optimize Actions or Combine Losses; one per image "
                       "of a batch (Optimize Actions then paints each).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Content image: what the painting should depict (a batch: one loss, "
                                               "and one painting, per image; fitted to the canvas)."}),
                **backbone_inputs("Comma-separated layers, shallow to deep (e.g. relu3_3, relu4_3 for VGG; stage2, "
                                  "stage3 for EfficientNet). Empty: the network's defaults."),
                "kind": (["mse", "l1"], {"default": "mse", "tooltip": "Distance between feature maps."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01,
                                     "tooltip": "Weight of this term in the total loss."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: the loss applies only where the mask is 1."}),
            },
        }

    @user_errors("VGG Feature Loss")
    def make(self, image, backbone="efficientnet_lite0", weights=AUTO_WEIGHTS, layers="", kind="mse", weight=1.0,
             mask=None):
        fx = feature_network("VGG Feature Loss", backbone, weights, layers)
        return ([one_term("feature", weight, losses.FeatureLoss(im, fx, kind=kind, mask=m))
                 for im, m in each_image(image, mask, "VGG Feature Loss")],)


class PixelLoss:
    DESCRIPTION = ("Pixel loss against a target image (L1 or L2, optionally both blurred so strokes only "
                   "need to match colours at a coarse scale).")
    CATEGORY = LOSSES
    FUNCTION = "make"
    RETURN_TYPES = (PAINT_LOSS,)
    RETURN_NAMES = ("loss",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("The pixel loss (one weighted term), for Optimize Actions or Combine Losses; one per image of "
                       "a batch (Optimize Actions then paints each).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Target image (a batch: one loss, and one painting, per image; fitted "
                                               "to the canvas)."}),
                "kind": (["l1", "l2"], {"default": "l1", "tooltip": "Absolute (l1) or squared (l2) difference."}),
                "blur_sigma": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 64.0, "step": 0.1,
                                         "tooltip": "Blur both images by this many canvas pixels first (0: none)."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01,
                                     "tooltip": "Weight of this term in the total loss."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: per-pixel weights (1 = counts fully, 0 = ignored)."}),
            },
        }

    @user_errors("Pixel Loss")
    def make(self, image, kind="l1", blur_sigma=0.0, weight=1.0, mask=None):
        return ([one_term("pixel", weight, losses.PixelLoss(im, kind=kind, blur_sigma=float(blur_sigma), mask=m))
                 for im, m in each_image(image, mask, "Pixel Loss")],)


class StyleLoss:
    DESCRIPTION = ("Style loss against a style image (Gram matrices of a frozen image network's features): the "
                   "painting takes on the style's textures and colour relations, not its layout. Combine it with "
                   "a content loss (VGG Feature Loss or Pixel Loss) for style transfer.")
    CATEGORY = LOSSES
    FUNCTION = "make"
    RETURN_TYPES = (PAINT_LOSS,)
    RETURN_NAMES = ("loss",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("The style loss (one weighted term), for Combine Losses or Optimize Actions; one per image of "
                       "a style batch.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style_image": ("IMAGE", {"tooltip": "The style to paint in (rescaled to the canvas's pixel count, "
                                                     "its aspect ratio kept)."}),
                **backbone_inputs("Comma-separated layers, shallow to deep. Empty: four layers from fine to coarse "
                                  "(relu1_2 .. relu4_3 for VGG; stage1 .. stage4 for EfficientNet)."),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01,
                                     "tooltip": "Weight of this term in the total loss."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: the style applies only where the mask is 1."}),
            },
        }

    @user_errors("Style Loss")
    def make(self, style_image, backbone="efficientnet_lite0", weights=AUTO_WEIGHTS, layers="", weight=1.0,
             mask=None):
        fx = feature_network("Style Loss", backbone, weights, layers, losses.STYLE_LAYERS.get(backbone))
        return ([one_term("style", weight, losses.StyleLoss(im, fx, mask=m))
                 for im, m in each_image(style_image, mask, "Style Loss")],)


_CLASSIFIER: dict = {}


def imagenet_classifier():
    """The offline EfficientNet-Lite0 ImageNet classifier, built once per process."""
    if "lite0" not in _CLASSIFIER:
        _CLASSIFIER["lite0"] = backbones.build_efficientnet_classifier()
    return _CLASSIFIER["lite0"]


class ImageNetClassLoss:
    DESCRIPTION = ("Semantic guidance without CLIP: the painting should be recognised as an ImageNet class "
                   "('goldfish', 'lemon', 'volcano') by EfficientNet-Lite0, whose real ImageNet weights ship "
                   "with a pip package (works offline). Scores augmented cutouts of the painting, like CLIP "
                   "Text Loss.")
    CATEGORY = LOSSES
    FUNCTION = "make"
    RETURN_TYPES = (PAINT_LOSS,)
    RETURN_NAMES = ("loss",)
    OUTPUT_TOOLTIPS = ("The classifier loss (one weighted term), for Optimize Actions or Combine Losses.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "class_name": ("STRING", {"multiline": True, "default": "goldfish", "tooltip":
                                          "An ImageNet-1k class: any of its names ('goldfish', 'Carassius "
                                          "auratus') or its index (0-999). Several: one per line (averaged)."}),
                "cutouts": ("INT", {"default": 4, "min": 1, "max": 64, "step": 1, "tooltip":
                                    "Augmented crops of the painting scored per step (more: steadier, slower)."}),
                "input_size": ("INT", {"default": 224, "min": 64, "max": 512, "step": 32, "tooltip":
                                       "Side of the crops the classifier sees (224 is its own; 128-160 is "
                                       "faster on a CPU)."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01,
                                     "tooltip": "Weight of this term in the total loss."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": limits.SEED_MAX, "control_after_generate": True,
                                 "tooltip": "Seed of the random cutouts."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: the classifier sees only the masked region (white elsewhere)."}),
            },
        }

    @user_errors("ImageNet Class Loss")
    def make(self, class_name, cutouts=4, input_size=224, weight=1.0, seed=0, mask=None):
        names = [n.strip() for n in (class_name or "").splitlines() if n.strip()]
        if not names:
            raise NodeError("ImageNet Class Loss: the class name is empty; give an ImageNet class, e.g. goldfish")
        # an unknown class raises UnknownImageNetClass (a ValueError): user_errors shows its message
        loss = imagenet_loss.ImageNetClassLoss(names, classifier=imagenet_classifier(),
                                               cutouts=int(cutouts), input_size=int(input_size),
                                               mask=one_mask(mask), seed=int(seed) % 2**63)
        return (one_term("imagenet", weight, loss),)


class CombineLosses:
    DESCRIPTION = "Adds up to four losses, each scaled by its own factor (on top of the weights set in the loss nodes)."
    CATEGORY = LOSSES
    FUNCTION = "combine"
    RETURN_TYPES = (PAINT_LOSS,)
    RETURN_NAMES = ("loss",)
    OUTPUT_TOOLTIPS = ("The weighted sum of the connected losses.",)

    @classmethod
    def INPUT_TYPES(cls):
        scale = {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01}
        return {
            "required": {
                "loss_1": (PAINT_LOSS, {"tooltip": "A loss (e.g. VGG Feature Loss)."}),
                "scale_1": ("FLOAT", {**scale, "tooltip": "Multiplies loss_1's weights."}),
            },
            "optional": {
                "loss_2": (PAINT_LOSS, {"tooltip": "Another loss (e.g. CLIP Text Loss)."}),
                "scale_2": ("FLOAT", {**scale, "tooltip": "Multiplies loss_2's weights."}),
                "loss_3": (PAINT_LOSS, {"tooltip": "Optional third loss."}),
                "scale_3": ("FLOAT", {**scale, "tooltip": "Multiplies loss_3's weights."}),
                "loss_4": (PAINT_LOSS, {"tooltip": "Optional fourth loss."}),
                "scale_4": ("FLOAT", {**scale, "tooltip": "Multiplies loss_4's weights."}),
            },
        }

    @user_errors("Combine Losses")
    def combine(self, loss_1, scale_1=1.0, loss_2=None, scale_2=1.0, loss_3=None, scale_3=1.0, loss_4=None,
                scale_4=1.0):
        return (merge([(loss_1, scale_1), (loss_2, scale_2), (loss_3, scale_3), (loss_4, scale_4)]),)


def describe(loss) -> str:
    """'feature x1, clip x0.5' for logs and node errors."""
    return ", ".join(f"{n} x{w:g}" for n, w in zip(loss.names, loss.weights))

