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


@pytest.fixture(scope="session")
def comfy_server(comfy_setup, tmp_path_factory, extra_model_paths_yaml):
    comfy_dir = Path(os.environ.get("NP_E2E_CACHE") or REPO / ".cache") / "comfyui"
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
