"""How the nodes import the core: `from ..painter_models import canvas` (sub-modules, never names
from them: see below), and `from .. import painter_models` for the package's own names.

Inside ComfyUI the pack is imported as a package named after its folder and `painter_models` is a
sub-package of it (ComfyUI never pip-installs a pack). Where the project is also installed
(`pip install -e .`: tests, CI, developers), the installed package IS these same files: the pack's
name for it is pointed at the installed package, so objects made by tests and by nodes share one set
of classes. `from ..painter_models import canvas` then gives the installed `painter_models.canvas`;
`from ..painter_models.canvas import render` would load the file a second time under the pack's name.
"""
from __future__ import annotations

import os
import sys

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK = (__package__ or "").rpartition(".")[0]


def share_installed_core() -> None:
    """Point `<pack>.painter_models` at the installed painter_models when that is this pack's copy."""
    if not PACK or f"{PACK}.painter_models" in sys.modules:
        return
    try:
        import painter_models
    except ImportError:
        return
    here = os.path.realpath(os.path.join(PACK_DIR, "painter_models"))
    if os.path.realpath(os.path.dirname(painter_models.__file__)) == here:
        sys.modules[f"{PACK}.painter_models"] = painter_models


share_installed_core()
