"""ComfyUI nodes of the Neural Painters pack (V1 node API: plain classes, testable without ComfyUI).

One concern per module; ComfyUI itself is only touched by comfy_adapter.py.
"""
from . import core  # noqa: F401  (first: how the nodes import the core package, see core.py)
from . import comfy_adapter
from .nodes_actions import RandomActions
from .nodes_clip import CLIPTextLoss, LoadCLIP
from .nodes_export import RerenderMyPaint, StrokeTimelapse
from .nodes_files import LoadStrokes, SaveStrokes, StrokesToSVG
from .nodes_losses import CombineLosses, ImageNetClassLoss, PixelLoss, StyleLoss, VGGFeatureLoss
from .nodes_optimize import OptimizeActions
from .nodes_painter import LoadNeuralPainter
from .nodes_predict import PredictStrokes
from .nodes_render import BlendCanvas, RenderStrokes
from .nodes_video import PaintVideo

comfy_adapter.register_model_folders()
comfy_adapter.install_example_inputs()

# class name -> class; class names are prefixed so they never collide with other packs' nodes
NODE_CLASS_MAPPINGS = {
    "NeuralPaintersLoadPainter": LoadNeuralPainter,
    "NeuralPaintersRandomActions": RandomActions,
    "NeuralPaintersRenderStrokes": RenderStrokes,
    "NeuralPaintersBlendCanvas": BlendCanvas,
    "NeuralPaintersLoadCLIP": LoadCLIP,
    "NeuralPaintersCLIPTextLoss": CLIPTextLoss,
    "NeuralPaintersVGGFeatureLoss": VGGFeatureLoss,
    "NeuralPaintersPixelLoss": PixelLoss,
    "NeuralPaintersStyleLoss": StyleLoss,
    "NeuralPaintersImageNetClassLoss": ImageNetClassLoss,
    "NeuralPaintersCombineLosses": CombineLosses,
    "NeuralPaintersOptimizeActions": OptimizeActions,
    "NeuralPaintersPredictStrokes": PredictStrokes,
    "NeuralPaintersPaintVideo": PaintVideo,
    "NeuralPaintersSaveStrokes": SaveStrokes,
    "NeuralPaintersLoadStrokes": LoadStrokes,
    "NeuralPaintersStrokesToSVG": StrokesToSVG,
    "NeuralPaintersStrokeTimelapse": StrokeTimelapse,
    "NeuralPaintersRerenderMyPaint": RerenderMyPaint,
}

# The design's node names, made unambiguous where they could be read as another node (ComfyUI's own
# "Load CLIP") or mislead ("Actions" is jargon; the feature loss's default network is EfficientNet).
NODE_DISPLAY_NAME_MAPPINGS = {
    "NeuralPaintersLoadPainter": "Load Neural Painter",
    "NeuralPaintersRandomActions": "Random Actions (random strokes)",
    "NeuralPaintersRenderStrokes": "Render Strokes",
    "NeuralPaintersBlendCanvas": "Blend Canvas",
    "NeuralPaintersLoadCLIP": "Load CLIP (for painting)",
    "NeuralPaintersCLIPTextLoss": "CLIP Text Loss",
    "NeuralPaintersVGGFeatureLoss": "VGG Feature Loss (VGG16 / EfficientNet)",
    "NeuralPaintersPixelLoss": "Pixel Loss",
    "NeuralPaintersStyleLoss": "Style Loss",
    "NeuralPaintersImageNetClassLoss": "ImageNet Class Loss",
    "NeuralPaintersCombineLosses": "Combine Losses",
    "NeuralPaintersOptimizeActions": "Optimize Actions (paint strokes)",
    "NeuralPaintersPredictStrokes": "Predict Strokes",
    "NeuralPaintersPaintVideo": "Paint Video (coherent strokes)",
    "NeuralPaintersSaveStrokes": "Save Strokes",
    "NeuralPaintersLoadStrokes": "Load Strokes",
    "NeuralPaintersStrokesToSVG": "Strokes to SVG",
    "NeuralPaintersStrokeTimelapse": "Stroke Timelapse",
    "NeuralPaintersRerenderMyPaint": "Re-render with MyPaint",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
