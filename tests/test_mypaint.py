"""MyPaint through ctypes: determinism, brush seeds, RGBA semantics, resolution, brushes, clear errors."""
import ctypes
import ctypes.util
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from painter_models import NAKANO, MyPaintProgram, MyPaintUnavailable, list_brushes, rgba_to_rgb
from painter_models.brush import mypaint as mp
from painter_models.brush.mypaint import library

from conftest import skip_no_mypaint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=tuple(range(1, np.ndim(a))))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def corr(x, y):
    x, y = x.ravel() - x.mean(), y.ravel() - y.mean()
    return float(x @ y / np.sqrt((x @ x) * (y @ y) + 1e-12))


# ---------------------------------------------------------------------------------------------------
# determinism

@skip_no_mypaint
@pytest.mark.mypaint
def test_same_action_same_pixels(dry_brush):
    a = NAKANO.sample(24, seed=0)
    first = dry_brush.render(a)
    assert first.dtype == np.uint8 and first.shape == (24, 64, 64, 4)
    np.testing.assert_array_equal(dry_brush.render(a), first)
    # order and batch composition do not matter: each stroke gets a fresh brush and surface
    np.testing.assert_array_equal(dry_brush.render(a[::-1])[::-1], first)
    np.testing.assert_array_equal(dry_brush.render(a[5:6])[0], first[5])
    # another program instance in the same process
    with MyPaintProgram("classic/dry_brush") as other:
        np.testing.assert_array_equal(other.render(a), first)
    # the strokes are real: every one left paint
    assert (first[..., 3].reshape(24, -1).max(1) > 0).all()


@skip_no_mypaint
@pytest.mark.mypaint
def test_worker_processes_match_serial(dry_brush):
    a = NAKANO.sample(40, seed=1)
    serial = dry_brush.render(a, workers=1)
    with MyPaintProgram("classic/dry_brush", workers=2) as pooled:
        parallel = pooled.render(a)
        assert pooled._pool is not None, "40 strokes on 2 workers should use the pool"
        np.testing.assert_array_equal(parallel, serial)
        np.testing.assert_array_equal(pooled.render(a[:3]), serial[:3])   # tiny batches stay serial


@skip_no_mypaint
@pytest.mark.mypaint
@pytest.mark.slow
def test_same_pixels_in_a_fresh_process(dry_brush, tmp_path):
    a = NAKANO.sample(8, seed=2)
    np.save(tmp_path / "a.npy", a)
    script = textwrap.dedent(f"""
        import numpy as np
        from painter_models.brush.mypaint import MyPaintProgram
        a = np.load({str(tmp_path / 'a.npy')!r})
        np.save({str(tmp_path / 'out.npy')!r}, MyPaintProgram('classic/dry_brush').render(a))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), dry_brush.render(a))


@skip_no_mypaint
@pytest.mark.mypaint
def test_brush_seed_gives_a_different_but_similar_stroke(dry_brush):
    a = NAKANO.sample(32, seed=3)
    base = dry_brush.render(a)
    with MyPaintProgram("classic/dry_brush", brush_seed=3) as seeded:
        other = seeded.render(a)
        np.testing.assert_array_equal(seeded.render(a), other)   # a seed is itself deterministic
    assert sum(np.array_equal(x, y) for x, y in zip(base, other)) == 0
    alpha0, alpha1 = base[..., 3] / 255.0, other[..., 3] / 255.0
    same = np.array([corr(x, y) for x, y in zip(alpha0, alpha1)])
    unrelated = np.array([corr(alpha0[i], alpha0[(i + 1) % 32]) for i in range(32)])
    # measured: same stroke median correlation 0.96 (min 0.77); unrelated strokes about 0.04
    assert np.median(same) > 0.9 and same.min() > 0.6, same
    assert np.median(unrelated) < 0.3
    mass = alpha1.sum((1, 2)) / alpha0.sum((1, 2))
    assert ((0.7 < mass) & (mass < 1.3)).all(), mass


# ---------------------------------------------------------------------------------------------------
# what the pixels mean

@skip_no_mypaint
@pytest.mark.mypaint
def test_premultiplied_rgba_semantics(dry_brush):
    a = NAKANO.sample(40, seed=4)
    rgba = dry_brush.render(a)
    assert (rgba[..., :3] <= rgba[..., 3:]).all(), "premultiplied colour cannot exceed alpha"
    alpha = rgba[..., 3] / 255.0
    assert alpha.min() == 0.0 and 0.9 < alpha.max() <= 1.0
    assert (alpha[:, 0, 0] == 0).mean() > 0.5   # transparent surface: most corners untouched
    # where the stroke is dense, the straight colour is the action's colour
    for i in range(40):
        dense = alpha[i] > 0.5
        if dense.sum() >= 5:
            straight = (rgba[i][dense][:, :3] / 255.0 / alpha[i][dense][:, None]).mean(0)
            np.testing.assert_allclose(straight, a[i, 6:9], atol=0.02)
    # RGB over a background is exactly the premultiplied composite
    rgb = dry_brush.render_rgb(a)
    np.testing.assert_allclose(rgb, np.clip(rgba[..., :3] / 255.0 + 1 - alpha[..., None], 0, 1), atol=1e-6)
    grey = dry_brush.render_rgb(a[:3], background=(0.5, 0.25, 0.0))
    np.testing.assert_allclose(grey, rgba_to_rgb(rgba[:3], (0.5, 0.25, 0.0)), atol=0)
    np.testing.assert_allclose(rgba_to_rgb(rgba[:3] / 255.0), rgb[:3], atol=1e-6)


@skip_no_mypaint
@pytest.mark.mypaint
def test_transparent_render_over_white_equals_painting_on_white():
    """Painting on an opaque white surface gives what the transparent-surface RGBA composited over white gives."""
    a = NAKANO.sample(30, seed=5)
    with MyPaintProgram("classic/dry_brush") as program:
        over_white = rgba_to_rgb(program.render(a))
        program.render(a[:1])                   # creates the canvas
        canvas = program._canvas

        def clear_white():
            for view in canvas._tiles:
                view[...] = library.FIX15       # premultiplied opaque white in libmypaint's fix15
        canvas.clear = clear_white
        on_white = program._render_serial(a)
    assert (on_white[..., 3] == 255).all()
    diff = np.abs(on_white[..., :3] / 255.0 - over_white)
    assert diff.max() <= 1.5 / 255, diff.max()    # measured: at most one uint8 step (rounding)
    assert diff.mean() < 0.5 / 255


@skip_no_mypaint
@pytest.mark.mypaint
def test_256px_downsampled_matches_64px(dry_brush):
    a = NAKANO.sample(16, seed=6)
    with MyPaintProgram("classic/dry_brush", 256) as big:
        hi = big.render(a)
    assert hi.shape == (16, 256, 256, 4)
    down = hi.astype(np.float64).reshape(16, 64, 4, 64, 4, 4).mean((2, 4)) / 255.0
    lo = dry_brush.render(a) / 255.0
    p = psnr(rgba_to_rgb(down), rgba_to_rgb(lo))
    alpha_err = np.abs(down[..., 3] - lo[..., 3]).mean()
    # measured on 20 strokes: PSNR median 40 dB (min 27 dB), mean |alpha difference| 2.4 / 255
    assert np.median(p) > 33 and p.min() > 22, p
    assert alpha_err < 5 / 255, alpha_err * 255
    mass = down[..., 3].sum((1, 2)) / np.maximum(lo[..., 3].sum((1, 2)), 1e-6)
    assert ((0.8 < mass) & (mass < 1.25)).all(), mass
    # whereas a different stroke is far off
    assert np.median(psnr(rgba_to_rgb(down), rgba_to_rgb(lo[::-1]))) < np.median(p) - 10


@skip_no_mypaint
@pytest.mark.mypaint
@pytest.mark.parametrize("size", [16, 32, 100])
def test_other_resolutions(size):
    with MyPaintProgram("classic/dry_brush", size) as p:
        out = p.render(NAKANO.sample(3, seed=7))
    assert out.shape == (3, size, size, 4) and out[..., 3].max() > 0


@skip_no_mypaint
@pytest.mark.mypaint
def test_stroke_lies_where_the_action_says(dry_brush):
    a = np.zeros((1, 12), np.float32)
    i = NAKANO.index
    a[0, [i("start_x"), i("start_y"), i("control_x"), i("control_y"), i("end_x"), i("end_y")]] = \
        [0.15, 0.7, 0.5, 0.7, 0.85, 0.7]
    a[0, [i("entry_pressure"), i("exit_pressure"), i("size")]] = [0.9, 0.9, 0.5]
    a[0, [i("red"), i("green"), i("blue")]] = [0.1, 0.2, 0.9]
    alpha = dry_brush.render(a)[0, ..., 3] / 255.0
    ys, xs = np.nonzero(alpha > 0.2)
    assert abs(ys.mean() - 0.7 * 64) < 2 and abs(xs.mean() - 0.5 * 64) < 4
    assert xs.min() < 0.25 * 64 and xs.max() > 0.75 * 64
    assert alpha[: int(0.5 * 64)].max() == 0


@skip_no_mypaint
@pytest.mark.mypaint
def test_size_field_sets_the_radius(dry_brush):
    a = np.repeat(NAKANO.sample(1, seed=8), 3, 0)
    a[:, NAKANO.index("size")] = [0.1, 0.5, 0.9]
    a[:, NAKANO.index("entry_pressure")] = a[:, NAKANO.index("exit_pressure")] = 0.8
    mass = dry_brush.render(a)[..., 3].astype(np.float64).sum((1, 2))
    assert mass[0] < mass[1] < mass[2]


# ---------------------------------------------------------------------------------------------------
# brushes, inputs and errors

@skip_no_mypaint
@pytest.mark.mypaint
def test_brush_by_name_or_path_and_other_presets(dry_brush):
    brushes = list_brushes()
    assert "classic/dry_brush" in brushes and "classic/charcoal" in brushes and len(brushes) > 50
    a = NAKANO.sample(4, seed=9)
    with MyPaintProgram(dry_brush.brush_path) as by_path:
        np.testing.assert_array_equal(by_path.render(a), dry_brush.render(a))
    with MyPaintProgram("classic/charcoal") as charcoal:
        c = charcoal.render(a)
    assert c[..., 3].max() > 0 and not np.array_equal(c, dry_brush.render(a))


@skip_no_mypaint
@pytest.mark.mypaint
def test_bad_actions_and_sizes_are_refused(dry_brush):
    a = NAKANO.sample(3, seed=10)
    a[2, NAKANO.index("green")] = np.nan
    with pytest.raises(ValueError, match=r"\[2\] field 'g'.*finite"):
        dry_brush.render(a)
    with pytest.raises(ValueError, match=r"\[N, 12\]"):
        dry_brush.render(np.zeros((2, 11)))
    with pytest.raises(ValueError, match="stroke size 5000 px is out of range"):
        MyPaintProgram("classic/dry_brush", 5000)
    assert dry_brush.render(np.zeros((0, 12))).shape == (0, 64, 64, 4)


@skip_no_mypaint
@pytest.mark.mypaint
def test_program_cannot_be_pickled(dry_brush):
    with pytest.raises(TypeError, match="native handles"):
        pickle.dumps(dry_brush)


@skip_no_mypaint
@pytest.mark.mypaint
def test_library_version_is_reported():
    assert mp.library_version().startswith("libmypaint")


def test_unknown_brush_is_refused_with_suggestions():
    if mp.brush_dirs():
        with pytest.raises(MyPaintUnavailable, match=r"unknown brush preset 'classic/no_such_brush'.*list_brushes"):
            mp.resolve_brush("classic/no_such_brush")
        with pytest.raises(MyPaintUnavailable, match=r"did you mean \[.*'classic/dry_brush'"):
            mp.resolve_brush("dry_brush")


def test_missing_myb_file_is_refused(tmp_path):
    missing = str(tmp_path / "gone.myb")
    with pytest.raises(MyPaintUnavailable, match="gone.myb' does not exist"):
        mp.resolve_brush(missing)


@skip_no_mypaint
@pytest.mark.mypaint
def test_unparseable_myb_is_refused(tmp_path):
    bad = tmp_path / "broken.myb"
    bad.write_text("{ not json")
    with pytest.raises(MyPaintUnavailable, match="could not parse the brush file.*broken.myb"):
        MyPaintProgram(str(bad))


def test_no_brushes_installed_names_the_apt_package(monkeypatch):
    monkeypatch.setattr(library, "BRUSH_DIRS", ())   # where brush_dirs() looks it up
    monkeypatch.delenv("NEURAL_PAINTERS_BRUSHES", raising=False)
    with pytest.raises(MyPaintUnavailable) as e:
        mp.resolve_brush("classic/dry_brush")
    assert "mypaint-brushes" in str(e.value) and "apt-get install" in str(e.value)
    assert mp.list_brushes() == []


def test_brush_folder_from_the_environment(monkeypatch, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "soft.myb").write_text("{}")
    monkeypatch.setenv("NEURAL_PAINTERS_BRUSHES", str(tmp_path))
    assert "mine/soft" in mp.list_brushes()
    assert mp.resolve_brush("mine/soft") == str(tmp_path / "mine" / "soft.myb")


def test_missing_libmypaint_names_the_apt_package(monkeypatch):
    """load_library is cached, so clear it; hide the real library from every lookup."""
    real_cdll = ctypes.CDLL

    def no_mypaint(name, *args, **kwargs):
        if "mypaint" in str(name):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return real_cdll(name, *args, **kwargs)
    monkeypatch.setenv("NEURAL_PAINTERS_LIBMYPAINT", "/nonexistent/libmypaint-1.5.so.1")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(ctypes, "CDLL", no_mypaint)
    mp.load_library.cache_clear()
    try:
        with pytest.raises(MyPaintUnavailable) as e:
            mp.load_library()
        msg = str(e.value)
        assert "libmypaint was not found" in msg and "libmypaint-1.5-1" in msg and "apt-get install" in msg
        assert "brew install libmypaint" in msg and "pacman -S" in msg
        assert "NEURAL_PAINTERS_LIBMYPAINT" in msg and "/nonexistent/libmypaint-1.5.so.1" in msg
        with pytest.raises(MyPaintUnavailable, match="libmypaint-1.5-1"):
            MyPaintProgram("classic/dry_brush")
    finally:
        monkeypatch.undo()
        mp.load_library.cache_clear()


def test_libmypaint_path_from_the_environment_is_tried_first(monkeypatch):
    monkeypatch.setenv("NEURAL_PAINTERS_LIBMYPAINT", "/opt/custom/libmypaint.so")
    assert next(library._library_candidates()) == "/opt/custom/libmypaint.so"


def _loaded_library_file() -> str:
    library.load_library()
    with open("/proc/self/maps") as maps:
        return next(line.split()[-1] for line in maps if "libmypaint" in line)


def _load_only_from(monkeypatch, platform=None, prefixes=()):
    """load_library with the system's own lookups hidden (find_library, the bare Debian names), on `platform`
    with these package-manager prefixes: what it finds must come from the folders the test made."""
    real_cdll = ctypes.CDLL
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: real_cdll(name, *a, **k) if os.sep in str(name)
                        else (_ for _ in ()).throw(OSError(f"{name}: hidden by the test")))
    if platform:
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.setattr(library, "PREFIXES", {platform: tuple(str(p) for p in prefixes)})
    library.load_library.cache_clear()
    try:
        return library.load_library()._name
    finally:
        library.load_library.cache_clear()


@skip_no_mypaint
@pytest.mark.mypaint
@pytest.mark.parametrize("platform, folder, name", [
    ("darwin", "opt/homebrew/lib", "libmypaint-1.5.1.dylib"),        # Homebrew on Apple silicon
    ("win32", "msys64/ucrt64/bin", "libmypaint-1.5-1.dll"),          # MSYS2's UCRT environment
])
def test_libmypaint_and_brushes_are_found_where_homebrew_and_msys2_install_them(monkeypatch, tmp_path, platform,
                                                                                folder, name):
    """The real library copied under the name and folder the package manager gives it (ctypes loads an ELF file
    whatever its name), the system's own copy hidden: it is the one loaded, and the prefix's presets are listed."""
    real = _loaded_library_file()
    prefix = tmp_path / folder.split("/")[0] / folder.split("/")[1]
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / name).write_bytes(open(real, "rb").read())
    brushes = prefix / "share" / "mypaint-data" / "2.0" / "brushes" / "mine"
    brushes.mkdir(parents=True)
    (brushes / "soft.myb").write_text("{}")
    monkeypatch.delenv("NEURAL_PAINTERS_LIBMYPAINT", raising=False)
    monkeypatch.delenv("HOMEBREW_PREFIX", raising=False)
    loaded = _load_only_from(monkeypatch, platform, [tmp_path / "nowhere", prefix])
    assert loaded == str(tmp_path / folder / name)
    assert "mine/soft" in mp.list_brushes()


@skip_no_mypaint
@pytest.mark.mypaint
def test_libmypaint_folder_from_the_environment(monkeypatch, tmp_path):
    real = _loaded_library_file()
    (tmp_path / "libmypaint-1.5.so.1").write_bytes(open(real, "rb").read())
    monkeypatch.setenv("NEURAL_PAINTERS_LIBMYPAINT", str(tmp_path))
    assert _load_only_from(monkeypatch) == str(tmp_path / "libmypaint-1.5.so.1")


def test_an_empty_libmypaint_folder_from_the_environment_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURAL_PAINTERS_LIBMYPAINT", str(tmp_path))
    library.load_library.cache_clear()
    try:
        with pytest.raises(MyPaintUnavailable, match="holds no libmypaint"):
            library.load_library()
    finally:
        library.load_library.cache_clear()


# ---------------------------------------------------------------------------------------------------
# nothing unchecked reaches libmypaint (the crashing cases themselves run in tests/test_fuzz.py)

@skip_no_mypaint
@pytest.mark.mypaint
def test_the_base_radius_is_capped_at_libmypaints_largest_dab():
    # libmypaint draws no dab over 1000 px but scatters dabs by the uncapped base radius
    path = np.stack([np.linspace(10, 86, 20), np.linspace(20, 70, 20)], -1)[None]
    images = []
    for log_radius in (np.log(1000.0), 12.0):
        with mp.MyPaintCanvas(96, 96) as canvas:
            canvas.paint_paths(path[:, 0], path, np.full((1, 20), 0.6), [log_radius], [[0.2, 0.3, 0.4]])
            images.append(canvas.read_rgba())
    assert images[0][..., 3].mean() > 1e-3, "the capped stroke paints the surface"
    np.testing.assert_array_equal(images[0], images[1])


@skip_no_mypaint
@pytest.mark.mypaint
def test_strokes_out_of_reach_are_refused_before_any_is_painted():
    path = np.stack([np.linspace(10, 50, 20), np.full(20, 30.0)], -1)[None]
    far = path + [64 * 4 + 65, 0]      # more than four surface sides beyond the 64 px surface
    with mp.MyPaintCanvas(64, 64) as canvas:
        with pytest.raises(ValueError, match="stroke 1 reaches 307 px beyond the 64x64 px canvas; a stroke may reach "
                                             "at most 256 px"):
            canvas.paint_paths(np.concatenate([path, far])[:, 0], np.concatenate([path, far]), np.full((2, 20), 0.5),
                               [1.0, 1.0], [[0, 0, 0]] * 2)
        assert canvas.n_painted == 0 and canvas.read_rgba()[..., 3].max() == 0
        with pytest.raises(ValueError, match="stroke 0: its log_radius is not finite"):
            canvas.paint_paths(path[:, 0], path, np.full((1, 20), 0.5), [np.nan], [[0, 0, 0]])


def test_brush_seed_out_of_range_is_refused():
    # its throwaway dabs walk from `far` one pixel per seed: 2e8 of them would cross libmypaint's x < 1e8
    with pytest.raises(ValueError, match="brush_seed 200000000 is out of range: use 0..10000"):
        MyPaintProgram("classic/dry_brush", brush_seed=200_000_000)
