"""Painter checkpoints: safetensors weights plus JSON metadata. No pickle anywhere.

Metadata keys (each a JSON string, since safetensors metadata is str -> str):
  format            "neural-painter"
  format_version    FORMAT_VERSION
  generator_config  GeneratorConfig as a dict
  layout            the ActionLayout the painter was trained on
  brush             painting program + brush it imitates, e.g. "mypaint:classic/dry_brush"
  stroke_size       pixels
  training          free-form summary (data size, steps, wall time, hardware, ...)
  metrics           held-out metrics (psnr, ssim, alpha_iou, ceiling_psnr, ...)
  reach             how far the brush paints from a path (actions.BrushReach), measured at training
  ink_by_size       optional: the brush's ink in boxes of other sizes (brush.ink.InkBySize.to_dict), measured
                    on MyPaint by the recipe or `neural-painters-train ink`; without it strokes are scaled as painted

Format version 2 added stochastic painters (GeneratorConfig.noise_dim > 0 with saved noise
projections) and the reach; version 1 files load as before.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from ..brush.actions import NAKANO, ActionLayout, BrushReach, get_layout
from ..brush.ink import InkBySize
from ..files import atomic_write
from .model import Generator, GeneratorConfig, config_to_dict

FORMAT = "neural-painter"
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A file that is not a usable painter checkpoint; the message says why and what to do."""


@dataclass
class NeuralPainter:
    """A frozen generator with everything needed to use it: layout, brush and provenance."""
    generator: Generator
    layout: ActionLayout
    brush: str
    stroke_size: int
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    path: str | None = None
    reach: BrushReach = field(default_factory=BrushReach)   # how far the brush paints from a path
    ink: InkBySize | None = None          # the brush's ink in boxes of other sizes (None: as the tile shows)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device) -> "NeuralPainter":
        self.generator.to(device)
        if self.ink is not None:
            self.ink.to(device)
        return self

    def __call__(self, actions: torch.Tensor):
        """(colour [N, 3, S, S], alpha [N, 1, S, S]) for actions in [0, 1]."""
        return self.generator(actions)

    def metadata(self) -> dict:
        """The metadata that rebuilds this painter as it is, its reach and ink included."""
        return painter_metadata(self.generator.config, self.layout, self.brush, self.training, self.metrics,
                                self.reach, self.ink)



def painter_metadata(config: GeneratorConfig, layout: ActionLayout, brush: str,
                     training: dict | None = None, metrics: dict | None = None,
                     reach: BrushReach | None = None, ink: InkBySize | None = None) -> dict:
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator_config": config_to_dict(config),
            "layout": layout.to_dict(), "brush": brush, "stroke_size": config.stroke_size,
            "training": training or {}, "metrics": metrics or {}}
    if reach is not None:
        meta["reach"] = reach.to_dict()
    if ink is not None:
        meta["ink_by_size"] = ink.to_dict()
    return meta


def save_tensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict):
    """Atomically save tensors with JSON-encoded metadata."""
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str) -> dict:
    """The decoded metadata of a safetensors file; CheckpointError for anything unreadable."""
    return read_file_metadata(path, CheckpointError, "painter checkpoint",
                              "painters are .safetensors files written by neural-painters-train")


def read_file_metadata(path: str, error: type[Exception], what: str, written_by: str) -> dict:
    """The metadata of a safetensors file, each value JSON-decoded where it is JSON; `error` (naming `what` the
    file should be and `written_by`, what writes one) for a missing or unreadable file."""
    if not os.path.isfile(path):
        raise error(f"{what} {path!r} does not exist")
    try:
        with safe_open(path, framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise error(f"{path!r} is not a readable safetensors file ({e}); it may be truncated or another format: "
                    f"{written_by}") from None
    decoded = {}
    for key, value in raw.items():  # each key on its own: one plain-string value spoils nothing else
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


def save_painter(path: str, painter: NeuralPainter | Generator, layout=None, brush: str | None = None,
                 training: dict | None = None, metrics: dict | None = None, reach: BrushReach | None = None,
                 ink: InkBySize | None = None):
    """Write a painter checkpoint (atomically). Accepts a NeuralPainter or a bare Generator plus its context
    (reach: the brush's, for a painter of strokes held whole, see canvas.render; ink: its ink by box size)."""
    if isinstance(painter, NeuralPainter):
        generator, meta = painter.generator, painter.metadata()
        if training is not None:
            meta["training"] = training
        if metrics is not None:
            meta["metrics"] = metrics
        if reach is not None:
            meta["reach"] = reach.to_dict()
        if ink is not None:
            meta["ink_by_size"] = ink.to_dict()
    else:
        if layout is None or brush is None:
            raise ValueError("save_painter(path, generator, ...) needs the layout and the brush")
        generator, meta = painter, painter_metadata(painter.config, get_layout(layout), brush, training, metrics,
                                                    reach, ink)
    save_tensors(path, generator.state_dict(), meta)


def check_tensor_shapes(path: str, build, error=None):
    """Compare the file's tensor names and shapes (its header: nothing is read or allocated) with those of the
    network its metadata describes (`build()`, called on the meta device): metadata that lies about the
    architecture is refused, as `error` (default CheckpointError), before the real network is built."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    with safe_open(path, framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [k for k in sorted(set(expected) & set(found)) if expected[k] != found[k]]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected else
                  f"{wrong[0]!r} is {list(found[wrong[0]])}, the metadata needs {list(expected[wrong[0]])}")
        raise (error or CheckpointError)(f"{os.path.basename(path)!r}: its weights do not match the architecture in "
                                         f"its metadata ({detail}); the file is damaged or was edited: use the file "
                                         f"as trained")


def check_finite(path: str, state: dict, error, consequence: str):
    """Refuse weights that hold NaN or infinite values, as `error`, naming the first such tensor."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise error(f"{os.path.basename(path)!r}: weight {name!r} holds NaN or infinite values, so {consequence}: "
                        f"the file is damaged; copy or train it again")


def load_painter(path: str, device="cpu", layout: ActionLayout | str | None = None,
                 ink: bool = True) -> NeuralPainter:
    """Load a painter checkpoint, frozen and in eval mode.

    `layout`, when given, is the action layout the caller will feed; a checkpoint trained on
    another layout is refused rather than silently producing wrong strokes. The metadata is
    checked (plausible sizes, colour indices within the action) and compared with the tensor
    shapes before the network is built; weights that are not all finite are refused.
    ink=False leaves the ink by box size unread (for measuring it again, whatever the file holds)."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is a safetensors file but not a neural painter (metadata format="
                              f"{meta.get('format')!r}); pick a painter checkpoint (models/neural_painters/*.safetensors)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path!r} has painter format version {version!r}; this code reads up to "
                              f"{FORMAT_VERSION}: update comfyui-neural-painters")
    try:
        # painters written before GeneratorConfig.colour existed all had the learned colour residual
        config = GeneratorConfig.from_dict({"colour": "residual", **meta["generator_config"]})
        file_layout = get_layout(meta["layout"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path!r} has a damaged painter header: {e}") from None
    if config.noise_dim and version < 2:
        raise CheckpointError(f"{os.path.basename(path)!r} is a format-1 painter with noise inputs (Nakano's noise "
                              f"fixed at 0.5), which this code no longer builds; train it again, or with noise_dim=0")
    if layout is not None:
        wanted = get_layout(layout)
        if wanted.to_dict() != file_layout.to_dict():
            raise CheckpointError(f"painter {os.path.basename(path)!r} was trained on action layout "
                                  f"{file_layout.name!r} ({file_layout.dim} numbers) but the actions use "
                                  f"{wanted.name!r} ({wanted.dim}); use a painter trained on {wanted.name!r}")
    if config.action_dim != file_layout.dim:
        raise CheckpointError(f"{path!r}: generator takes {config.action_dim} numbers but its layout has {file_layout.dim}")
    try:
        check_tensor_shapes(path, lambda: Generator(config))
        generator = Generator(config)
        state = load_file(path, device="cpu")
        generator.load_state_dict(state)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{path!r}: weights do not match the architecture in its metadata ({str(e)[:300]})") from None
    check_finite(path, state, CheckpointError, "every stroke would render wrong")
    generator.requires_grad_(False)
    generator.eval().to(device)
    brush = str(meta.get("brush", "unknown"))
    by_size = painter_ink(path, meta) if ink else None
    return NeuralPainter(generator, file_layout, brush, config.stroke_size, meta.get("training", {}),
                         meta.get("metrics", {}), path, _reach(meta, brush, file_layout), by_size).to(device)


def painter_ink(path: str, meta: dict) -> InkBySize | None:
    """The brush's ink by box size from the metadata, or None for a painter measured without it."""
    if "ink_by_size" not in meta:
        return None
    try:
        return InkBySize.from_dict(meta["ink_by_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{os.path.basename(path)!r}: bad 'ink_by_size' in the painter's metadata ({e}); the "
                              f"file is damaged: copy it again, or measure the ink again with "
                              f"neural-painters-train ink --painter FILE") from None


def _reach(meta: dict, brush: str, layout: ActionLayout) -> BrushReach:
    """The brush's reach: from the metadata (written at training), else measured with MyPaint where
    it is installed, else BrushReach()'s upper bound for MyPaint's brushes."""
    if "reach" in meta:
        try:
            return BrushReach.from_dict(meta["reach"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"bad 'reach' in the painter's metadata ({e})") from None
    from ..brush.mypaint import MyPaintUnavailable, brush_reach
    preset = brush[len("mypaint:"):] if brush.startswith("mypaint:") else None
    if preset is None:
        return BrushReach()
    try:
        return brush_reach(preset, layout.name) if layout.name == NAKANO.name else BrushReach()
    except MyPaintUnavailable:
        return BrushReach()
