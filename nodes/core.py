"""How the nodes import the core: `from ..painter_models.painting import optimize` (modules, or
`from .. import painter_models` for the package's own names).

Inside ComfyUI the pack is imported as a package named after its folder and `painter_models` is a
sub-package of it (ComfyUI never pip-installs a pack). Where the project is also installed
(`pip install -e .`: tests, CI, developers), the installed package IS these same files: every module
of the pack's name for it (`<pack>.painter_models.x.y`) is then the installed `painter_models.x.y`,
so objects made by tests and by nodes share one set of classes instead of loading each file twice.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK = (__package__ or "").rpartition(".")[0]


class InstalledCore(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `<pack>.painter_models[.x.y]` as the installed `painter_models[.x.y]` module object."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.prefix or fullname.startswith(self.prefix + "."):
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return importlib.import_module("painter_models" + spec.name[len(self.prefix):])

    def exec_module(self, module):
        """The installed module ran when it was first imported."""


def share_installed_core() -> None:
    """Put the finder first on the import path when the installed painter_models is this pack's copy."""
    prefix = f"{PACK}.painter_models"
    if not PACK or prefix in sys.modules or any(isinstance(f, InstalledCore) for f in sys.meta_path):
        return
    try:
        import painter_models
    except ImportError:
        return
    here = os.path.realpath(os.path.join(PACK_DIR, "painter_models"))
    if os.path.realpath(os.path.dirname(painter_models.__file__)) == here:
        sys.meta_path.insert(0, InstalledCore(prefix))


share_installed_core()
