"""painter_models: stroke-based neural painting, with no ComfyUI dependency.

Painting programs (MyPaint through ctypes, a torch rasteriser) turn action vectors into
brushstrokes; a generator learns to imitate them; strokes are blended onto canvases and optimised
towards a photograph or a prompt. The stages, each a sub-package that imports only the ones before it:
brush/ -> painter/ -> objectives/ -> painting/ -> export/ -> cli/ (docs/architecture.md). The names
below are the public API.
"""
from .brush.actions import NAKANO, ActionLayout, BrushReach, Field, get_layout, hold_whole, keep_inside
from .brush.mypaint import MyPaintProgram, MyPaintUnavailable, list_brushes, rgba_to_rgb
from .brush.raster import RasterProgram, make_program
from .brush.strokes import StrokeSet
from .painter.checkpoint import CheckpointError, NeuralPainter, load_painter, read_metadata, save_painter
from .painter.model import (Critic, CriticConfig, Generator, GeneratorConfig, count_parameters, critic_config,
                            generator_config)
from .painting.blending import alpha_blend, darkness_mask, linear_blend, over
from .painting.optimize import PaintResult, paint
from .painting.predict import PredictResult, predict_strokes
from .painting.predictor import PredictorError, StrokePredictor, load_predictor
from .painting.settings import PaintSettings

__version__ = "0.1.0"
