"""The painters shipped in painter_models/weights/ (one safetensors file and its model card each): their
names, files and the default. The CLI, Load Neural Painter and the benches find painters here."""
from __future__ import annotations

import glob
import os

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
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
