"""Fixtures that start one real ComfyUI server per test session with this checkout loaded as a pack.

Set up ComfyUI first with `bash tests/e2e/setup_comfyui.sh`. Without it the e2e tests are skipped
locally and FAIL in CI (CI=true), so a broken CI set-up can never pass silently.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .comfy import REPO, SETUP_HINT, ComfyServer, link_pack, setup_info


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def comfy_setup() -> dict:
    info = setup_info(Path(os.environ.get("NP_E2E_CACHE") or REPO / ".cache"))
    if info is None:
        message = f"no ComfyUI copy for the end-to-end tests: run `{SETUP_HINT}` first"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return info


@pytest.fixture(scope="session")
def extra_models_dir(tmp_path_factory) -> Path:
    """A model folder outside ComfyUI, registered through an extra_model_paths.yaml (as users do):
    fixtures may drop files into its subfolders before the server starts."""
    root = tmp_path_factory.mktemp("extra_models")
    for sub in ("neural_painters", "clip", "vgg"):
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="session")
def extra_model_paths_yaml(extra_models_dir) -> Path:
    path = extra_models_dir.parent / "np_extra_model_paths.yaml"
    path.write_text(f"np_e2e:\n    base_path: {extra_models_dir}\n"
                    f"    neural_painters: neural_painters/\n    clip: clip/\n    vgg: vgg/\n")
    return path


E2E_PAINTER = "e2e_tiny.safetensors"          # in the extra_model_paths.yaml folder
E2E_DEFAULT_PAINTER = "e2e_default_tiny.safetensors"  # in ComfyUI's own models/neural_painters


def save_tiny_painter(path: Path, seed: int = 0):
    from painter_models import NAKANO, Generator, generator_config, save_painter
    import torch
    torch.manual_seed(seed)
    save_painter(str(path), Generator(generator_config("tiny")).eval(), layout=NAKANO,
                 brush="mypaint:classic/dry_brush", training={"note": "random tiny painter for e2e tests"})


@pytest.fixture(scope="session")
def comfy_dir(comfy_setup) -> Path:
    return Path(os.environ.get("NP_E2E_CACHE") or REPO / ".cache") / "comfyui"


@pytest.fixture(scope="session")
def e2e_painters(comfy_dir, extra_models_dir):
    """Tiny random painters (until trained ones ship): one in a folder registered by
    extra_model_paths.yaml, one in ComfyUI's own models/neural_painters. Both must be listed."""
    save_tiny_painter(extra_models_dir / "neural_painters" / E2E_PAINTER)
    default = comfy_dir / "models" / "neural_painters" / E2E_DEFAULT_PAINTER
    default.parent.mkdir(parents=True, exist_ok=True)
    save_tiny_painter(default, seed=1)
    yield {"extra": E2E_PAINTER, "default": E2E_DEFAULT_PAINTER}
    default.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def comfy_server(comfy_setup, comfy_dir, tmp_path_factory, extra_model_paths_yaml, e2e_painters):
    link_pack(comfy_dir)
    server = ComfyServer(comfy_dir, comfy_setup["python"], tmp_path_factory.mktemp("comfyui"),
                         extra_model_paths=[extra_model_paths_yaml])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def comfy(comfy_server):
    """An HTTP client for the session's server."""
    return comfy_server.client()


ARTEFACTS = Path(os.environ.get("NP_E2E_ARTEFACTS") or REPO / ".cache" / "e2e" / "artefacts")


@pytest.fixture(scope="session")
def artefacts_dir() -> Path:
    """Where the e2e tests leave what a person should look at (screenshots); NP_E2E_ARTEFACTS moves it."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


@pytest.fixture(scope="session")
def comfy_page(comfy_server):
    """ComfyUI's frontend from the session's server, in headless Chromium. Without a browser the browser tests
    are skipped locally and FAIL in CI (CI=true), like the server tests without ComfyUI."""
    from .browser import BrowserUnavailable, ComfyPage
    try:
        page = ComfyPage(comfy_server.url)
    except BrowserUnavailable as e:
        if in_ci():
            pytest.fail(f"no browser for the browser tests: {e}")
        pytest.skip(f"no browser for the browser tests: {e}")
    try:
        yield page
    finally:
        page.close()
