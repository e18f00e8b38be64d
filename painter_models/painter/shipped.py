"""The painters shipped in painter_models/weights/ (one safetensors file and its model card each): their
names, files and the default. The CLI, Load Neural Painter and the benches find painters here, and the
stroke predictors shipped in painter_models/predictors/ for them (find_predictor)."""
from __future__ import annotations

import glob
import os

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS_DIR = os.path.join(PACKAGE_DIR, "weights")
PREDICTORS_DIR = os.path.join(PACKAGE_DIR, "predictors")
PREDICTOR_FORMAT = "stroke-predictor"     # a predictor file's metadata format (painting/predictor.py's FORMAT)
# the soft brush paints photographs closest with the real brush in the loop (200 strokes at 256 px:
# astronaut 21.33 dB, coffee 25.38; dry_brush 18.94 / 22.92: its grain leaves holes; BENCHMARKS.md)
DEFAULT_PAINTER = "soft_brush"


class PainterNotFound(ValueError):
    """A painter named by the user is neither a file nor a shipped painter; the message lists them."""


def shipped_painters() -> dict[str, str]:
    """{name: path} of the shipped painters (name = file stem), sorted by name."""
    return {os.path.splitext(os.path.basename(p))[0]: p
            for p in sorted(glob.glob(os.path.join(WEIGHTS_DIR, "*.safetensors")))}


def find_painter(spec: str | None) -> str:
    """A painter file from a path or a shipped painter's name ('dry_brush', 'classic/dry_brush', a file stem);
    None: the default painter."""
    shipped = shipped_painters()
    if spec is None:
        if shipped:
            return shipped.get(DEFAULT_PAINTER, next(iter(shipped.values())))
        raise PainterNotFound(f"no painter is shipped in {WEIGHTS_DIR}; pass a painter file (train one with: "
                              f"neural-painters-train recipe --brush classic/dry_brush)")
    path = os.path.expanduser(spec)
    if os.path.isfile(path):
        return path
    key = spec.replace("classic/", "").replace("mypaint:", "").replace("/", "_")
    for name in (spec, key):
        if name in shipped:
            return shipped[name]
    matches = [p for n, p in shipped.items() if key in n]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(shipped) or "none"
    raise PainterNotFound(f"painter {spec!r} is neither a file nor a shipped painter (shipped: {known})")


def shipped_predictors() -> dict[str, str]:
    """{name: path} of the shipped stroke predictors (name = file stem, the painter's it was trained for)."""
    return {os.path.splitext(os.path.basename(p))[0]: p
            for p in sorted(glob.glob(os.path.join(PREDICTORS_DIR, "*.safetensors")))}


def find_predictor(painter) -> str | None:
    """The shipped stroke predictor trained for this painter's brush and action layout, or None."""
    from ..brush.actions import get_layout
    from .checkpoint import read_metadata
    layout = painter.layout.to_dict()
    for path in shipped_predictors().values():
        meta = read_metadata(path)
        if (meta.get("format") == PREDICTOR_FORMAT and meta.get("brush") == painter.brush
                and "layout" in meta and get_layout(meta["layout"]).to_dict() == layout):
            return path
    return None
