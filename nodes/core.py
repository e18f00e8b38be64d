"""The core package `painter_models`, as the nodes import it.

Inside ComfyUI the pack is imported as a package named after its folder and `painter_models` is a
sub-package of it (ComfyUI never pip-installs a pack). Where the project is also installed
(`pip install -e .`: tests, CI, developers), the installed package IS these same files: use it,
so objects made by tests and by nodes share one set of classes.
"""
from __future__ import annotations

import importlib
import os

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    try:
        import painter_models as installed
        here = os.path.realpath(os.path.join(PACK_DIR, "painter_models"))
        if os.path.realpath(os.path.dirname(installed.__file__)) == here:
            return installed
    except ImportError:
        pass
    parent = (__package__ or "").rpartition(".")[0]
    if not parent:
        raise ImportError("painter_models is not importable: load this pack from its folder (ComfyUI does) "
                          "or `pip install -e .` in it")
    return importlib.import_module(f"{parent}.painter_models")


painter_models = _load()


def submodule(name: str):
    """A painter_models sub-module (e.g. "canvas", "stroke_file"), imported on first use."""
    return importlib.import_module(f"{painter_models.__name__}.{name}")
