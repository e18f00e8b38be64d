"""A plain `pip install .` (a built wheel, not the editable install the tests run on) holds every
sub-package, the shipped painters, the shipped stroke predictor and the shapes CLIP, and paints from where it
was installed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def source_packages() -> set[str]:
    """The importable packages of the source tree, as the wheel must name them."""
    found = set()
    for folder, name in (("painter_models", "painter_models"), ("training", "neural_painters_training")):
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *parts)))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the files git tracks (what a user's clone holds), built offline."""
    tmp = tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    source = tmp / "source"
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True)
    return next(out.glob("*.whl"))


def test_the_wheel_holds_every_package_and_the_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert packages == source_packages()
    for shipped in ("soft_brush", "dry_brush", "charcoal", "fur", "short_grass", "ink_pen"):
        assert f"painter_models/weights/{shipped}.safetensors" in names and f"painter_models/weights/{shipped}.md" in names
    assert "painter_models/shapes_clip/np-tiny-rn-64-shapes.safetensors" in names
    assert {"painter_models/predictors/soft_brush.safetensors", "painter_models/predictors/soft_brush.md"} <= set(names)
    assert not any(n.startswith(("nodes/", "tests/")) for n in names), "ComfyUI's `nodes` must never be shadowed"


def test_the_installed_wheel_paints(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    out, predicted = tmp_path / "painting.png", tmp_path / "predicted.png"
    code = f"""
import sys
# only the wheel: the editable install of the tests (a finder on sys.meta_path) would fill in what it lacks
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
import painter_models, neural_painters_training.datasets
assert painter_models.__file__.startswith({str(site)!r}), painter_models.__file__
from painter_models import paint, load_painter
from painter_models.cli.paint import main
photo = {str(REPO / "example_workflows" / "input" / "neural_painters_astronaut.jpg")!r}
if main(["paint", photo, "--strokes", "6", "--size", "32", "--steps", "2", "--rounds", "1", "--out", {str(out)!r},
         "--threads", "1", "--quiet"]):
    sys.exit("the optimiser did not paint")
# the shipped stroke predictor, from where the wheel put it
sys.exit(main(["paint", photo, "--init", "predict", "--strokes", "20", "--size", "32", "--steps", "0", "--out",
               {str(predicted)!r}, "--threads", "1", "--quiet"]))
"""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.exists() and out.stat().st_size > 100 and predicted.exists()
