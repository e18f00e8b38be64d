"""ComfyUI nodes of the Neural Painters pack (V1 node API: plain classes, testable without ComfyUI).

One concern per module; ComfyUI itself is only touched by comfy_adapter.py.
"""
from . import comfy_adapter
from .nodes_actions import RandomActions
from .nodes_clip import CLIPTextLoss, LoadCLIP
from .nodes_export import RerenderMyPaint, StrokeTimelapse
from .nodes_files import LoadStrokes, SaveStrokes, StrokesToSVG
from .nodes_losses import CombineLosses, ImageNetClassLoss, PixelLoss, VGGFeatureLoss
from .nodes_optimize import OptimizeActions
from .nodes_painter import LoadNeuralPainter
from .nodes_render import BlendCanvas, RenderStrokes

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
    "NeuralPaintersImageNetClassLoss": ImageNetClassLoss,
    "NeuralPaintersCombineLosses": CombineLosses,
    "NeuralPaintersOptimizeActions": OptimizeActions,
    "NeuralPaintersSaveStrokes": SaveStrokes,
    "NeuralPaintersLoadStrokes": LoadStrokes,
    "NeuralPaintersStrokesToSVG": StrokesToSVG,
    "NeuralPaintersStrokeTimelapse": StrokeTimelapse,
    "NeuralPaintersRerenderMyPaint": RerenderMyPaint,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "NeuralPaintersLoadPainter": "Load Neural Painter",
    "NeuralPaintersRandomActions": "Random Actions",
    "NeuralPaintersRenderStrokes": "Render Strokes",
    "NeuralPaintersBlendCanvas": "Blend Canvas",
    "NeuralPaintersLoadCLIP": "Load CLIP",
    "NeuralPaintersCLIPTextLoss": "CLIP Text Loss",
    "NeuralPaintersVGGFeatureLoss": "VGG Feature Loss",
    "NeuralPaintersPixelLoss": "Pixel Loss",
    "NeuralPaintersImageNetClassLoss": "ImageNet Class Loss",
    "NeuralPaintersCombineLosses": "Combine Losses",
    "NeuralPaintersOptimizeActions": "Optimize Actions",
    "NeuralPaintersSaveStrokes": "Save Strokes",
    "NeuralPaintersLoadStrokes": "Load Strokes",
    "NeuralPaintersStrokesToSVG": "Strokes to SVG",
    "NeuralPaintersStrokeTimelapse": "Stroke Timelapse",
    "NeuralPaintersRerenderMyPaint": "Re-render with MyPaint",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
