"""Shared fixtures: MyPaint availability, a session-wide dry_brush program, a tiny saved painter."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _mypaint_status() -> str | None:
    """None when libmypaint and the classic/dry_brush preset can be used, else the reason."""
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library, resolve_brush
    try:
        load_library()
        resolve_brush("classic/dry_brush")
    except MyPaintUnavailable as e:
        return " ".join(str(e).split())
    return None


MYPAINT_MISSING = _mypaint_status()
# CI installs every system dependency the README declares: there a missing one fails, never skips
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")

# Skip, saying why, where libmypaint or the brushes are missing (on a developer's machine; under CI
# the session stops instead, see pytest_sessionstart). A module uses `pytestmark = requires_mypaint`;
# a single test `@pytest.mark.mypaint` plus `@skip_no_mypaint`.
skip_no_mypaint = pytest.mark.skipif(MYPAINT_MISSING is not None, reason=f"libmypaint unavailable: {MYPAINT_MISSING}")
requires_mypaint = [pytest.mark.mypaint, skip_no_mypaint]


# -- running in parallel (pytest -n auto, the README's command) ------------------------------------
# Each test module runs whole on one worker, so a module-scoped fixture (the guided paintings: minutes)
# is built once. The end-to-end tests are one unit: they share one ComfyUI server per worker and write
# into its folder. Each worker gets its share of the cores (torch and the processes it starts).
MAX_WORKERS = 4   # each worker holds torch and its models: more costs memory for little time
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)   # 0: not a parallel run


@pytest.hookimpl(optionalhook=True)   # xdist's hooks: without xdist (-p no:xdist) pytest runs serially
def pytest_xdist_auto_num_workers(config):
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    # a scheduler, not xdist_group marks: with pytest 9.2, xdist 3.8's --dist loadgroup ignores them
    from xdist.scheduler import LoadScopeScheduling
    config.option.loadscopereorder = False   # units in collection order: the slow ones first (below)

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit_of(nodeid)
    return ByModule(config, log)


def _unit_of(nodeid: str) -> str:
    """What runs whole on one worker: a test module, or all the end-to-end tests."""
    path = nodeid.split("::", 1)[0]
    return "tests/e2e" if path.startswith("tests/e2e/") else path


def pytest_collection_modifyitems(config, items):
    """In a parallel run, the units (modules, the end-to-end tests) with slow tests come first, so the
    longest ones (minutes each) start at once instead of last on an otherwise idle machine."""
    if WORKERS:
        slow = {_unit_of(item.nodeid) for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: _unit_of(item.nodeid) not in slow)   # stable: the order inside a unit is kept


if WORKERS:
    _threads = max(1, (os.cpu_count() or 1) // WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


def pytest_sessionstart(session):
    if IN_CI and MYPAINT_MISSING:
        pytest.exit(f"CI=true but libmypaint is unavailable ({MYPAINT_MISSING}): apt-get install -y "
                    "--no-install-recommends libmypaint-1.5-1 mypaint-brushes", returncode=1)


def need_tool(name: str, package: str) -> str:
    """The path of a system tool the README installs: skip without it, fail under CI."""
    import shutil
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {package})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def dry_brush():
    """One classic/dry_brush MyPaintProgram at 64 px for the whole session (skips without libmypaint)."""
    if MYPAINT_MISSING:
        pytest.skip(f"libmypaint unavailable: {MYPAINT_MISSING}")
    from painter_models import MyPaintProgram
    program = MyPaintProgram("classic/dry_brush", 64)
    yield program
    program.close()


@pytest.fixture
def tiny_generator():
    """A randomly initialised 'tiny' generator (21 k parameters, 64 px strokes) in eval mode."""
    from painter_models import Generator, generator_config
    torch.manual_seed(0)
    return Generator(generator_config("tiny")).eval()


@pytest.fixture
def tmp_painter(tmp_path, tiny_generator):
    """Path of a saved tiny painter checkpoint with training summary and metrics in its metadata."""
    from painter_models import NAKANO, save_painter
    path = str(tmp_path / "tiny_painter.safetensors")
    save_painter(path, tiny_generator, layout=NAKANO, brush="mypaint:classic/dry_brush",
                 training={"steps": 3, "strokes": 1000}, metrics={"psnr": 21.5, "alpha_iou": 0.5})
    return path


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread is faster, and immune to other jobs sharing the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
