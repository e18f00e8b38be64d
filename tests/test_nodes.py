"""Every node called directly, with no ComfyUI present (the pack is loaded the way ComfyUI loads it)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import skip_no_mypaint
from painter_models.painter import shipped

REPO = Path(__file__).resolve().parents[1]


def load_pack(name: str = "np_pack_under_test"):
    """Import the repository as ComfyUI does: a package named after its folder, from __init__.py."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


PACK = load_pack()
NODES = PACK.NODE_CLASS_MAPPINGS
# the design's node names (what the messages name); display names may add a word to be unambiguous
NAMES = {"Load Neural Painter": "NeuralPaintersLoadPainter", "Random Actions": "NeuralPaintersRandomActions",
         "Render Strokes": "NeuralPaintersRenderStrokes", "Blend Canvas": "NeuralPaintersBlendCanvas",
         "Load CLIP": "NeuralPaintersLoadCLIP", "CLIP Text Loss": "NeuralPaintersCLIPTextLoss",
         "VGG Feature Loss": "NeuralPaintersVGGFeatureLoss", "Pixel Loss": "NeuralPaintersPixelLoss",
         "Style Loss": "NeuralPaintersStyleLoss", "ImageNet Class Loss": "NeuralPaintersImageNetClassLoss",
         "Combine Losses": "NeuralPaintersCombineLosses", "Optimize Actions": "NeuralPaintersOptimizeActions",
         "Save Strokes": "NeuralPaintersSaveStrokes", "Load Strokes": "NeuralPaintersLoadStrokes",
         "Strokes to SVG": "NeuralPaintersStrokesToSVG", "Stroke Timelapse": "NeuralPaintersStrokeTimelapse",
         "Re-render with MyPaint": "NeuralPaintersRerenderMyPaint", "Predict Strokes": "NeuralPaintersPredictStrokes",
         "Paint Video": "NeuralPaintersPaintVideo"}
adapter = sys.modules[f"{PACK.__name__}.nodes.comfy_adapter"]
common = sys.modules[f"{PACK.__name__}.nodes.common"]
NodeError = common.NodeError


def node(name: str):
    return NODES[NAMES[name]]()


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A models folder laid out like ComfyUI's, found through $NEURAL_PAINTERS_WEIGHTS."""
    for sub in ("neural_painters", "clip", "vgg"):
        (tmp_path / sub).mkdir()
    monkeypatch.setenv("NEURAL_PAINTERS_WEIGHTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def painter_file(models_dir):
    from painter_models import NAKANO, Generator, generator_config, save_painter
    torch.manual_seed(0)
    path = models_dir / "neural_painters" / "tiny.safetensors"
    save_painter(str(path), Generator(generator_config("tiny")).eval(), layout=NAKANO,
                 brush="mypaint:classic/dry_brush", metrics={"psnr": 20.0})
    return path


@pytest.fixture
def painter(painter_file):
    return node("Load Neural Painter").load("tiny.safetensors")[0]


@pytest.fixture
def strokes():
    return node("Random Actions").make(40, 7, 96, 64, 12, 48)[0][0]


# ------------------------------------------------------------------------------------------------
# the pack as a whole


def test_pack_imports_without_comfyui():
    assert adapter.IN_COMFYUI is False
    assert "folder_paths" not in sys.modules and "comfy" not in sys.modules


# display names of ComfyUI's own nodes (nodes.py, comfy_extras) that a pack's names must not repeat
CORE_DISPLAY_NAMES = {"Load CLIP", "Load Image", "Save Image", "Preview Image", "Load Checkpoint", "Image Blend",
                      "Image Scale", "Load VAE", "CLIP Text Encode (Prompt)"}
CATEGORIES = {"loaders": {"Load Neural Painter", "Load CLIP", "Load Strokes"},
              "losses": {"CLIP Text Loss", "VGG Feature Loss", "Pixel Loss", "Style Loss", "ImageNet Class Loss",
                         "Combine Losses"},
              "painting": {"Random Actions", "Render Strokes", "Blend Canvas", "Optimize Actions", "Predict Strokes",
                           "Paint Video"},
              "export": {"Save Strokes", "Strokes to SVG", "Stroke Timelapse", "Re-render with MyPaint"}}


def test_display_names_and_node_contract():
    assert set(NAMES.values()) == set(NODES) == set(PACK.NODE_DISPLAY_NAME_MAPPINGS)
    shown = PACK.NODE_DISPLAY_NAME_MAPPINGS
    for name, cls_name in NAMES.items():
        assert shown[cls_name].startswith(name), (name, shown[cls_name])
    assert not set(shown.values()) & CORE_DISPLAY_NAMES and len(set(shown.values())) == len(shown)
    assert shown["NeuralPaintersVGGFeatureLoss"] == "VGG Feature Loss (VGG16 / EfficientNet)"
    for sub, names in CATEGORIES.items():
        assert {NODES[NAMES[n]].CATEGORY for n in names} == {f"neural painters/{sub}"}
    assert sum(len(n) for n in CATEGORIES.values()) == len(NODES)
    for cls_name, cls in NODES.items():
        assert cls_name.startswith("NeuralPainters"), cls_name
        assert cls.DESCRIPTION
        assert callable(getattr(cls(), cls.FUNCTION))
        assert isinstance(cls.RETURN_TYPES, tuple)
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, value in spec.get(section, {}).items():
                assert len(value) == 2 and value[1].get("tooltip"), f"{cls_name}.{name} has no tooltip"
                kind = value[0]
                if isinstance(kind, str) and kind.upper() == kind:
                    continue
                assert isinstance(kind, list) and kind, f"{cls_name}.{name}: combo must be a non-empty list"


def test_pack_loads_its_own_copy_of_painter_models_when_not_installed(tmp_path):
    """Inside ComfyUI nothing is pip-installed: the nodes must import the pack's painter_models."""
    code = f"""
import sys, importlib.util
sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
sys.path = [p for p in sys.path if p not in ('', {str(REPO)!r})]
spec = importlib.util.spec_from_file_location('pack_copy', {str(REPO / '__init__.py')!r},
                                              submodule_search_locations=[{str(REPO)!r}])
m = importlib.util.module_from_spec(spec); sys.modules['pack_copy'] = m; spec.loader.exec_module(m)
assert 'painter_models' not in sys.modules, 'the installed package was used'
assert 'pack_copy.painter_models' in sys.modules
print(len(m.NODE_CLASS_MAPPINGS))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.strip()) == len(NODES)


def test_nodes_share_the_installed_core_and_import_it_one_way():
    """Installed (tests, CI), the nodes' core is the installed painter_models: one set of classes. Every
    `<pack>.painter_models.x.y` the nodes import must be the installed module, not the file loaded twice."""
    import painter_models.painting.canvas
    assert PACK.nodes.nodes_render.canvas is painter_models.painting.canvas
    prefix = f"{PACK.__name__}.painter_models"
    shared = [name for name in sys.modules if name == prefix or name.startswith(prefix + ".")]
    assert len(shared) > 5, shared
    for name in shared:
        assert sys.modules[name] is sys.modules["painter_models" + name[len(prefix):]], f"{name} was loaded twice"
    for path in sorted((REPO / "nodes").glob("*.py")):
        for line in path.read_text().splitlines():
            assert not line.startswith(("import painter_models", "from painter_models")), \
                f"{path.name}: {line!r}: inside ComfyUI nothing is installed; import the core as `from ..painter_models...`"


# ------------------------------------------------------------------------------------------------
# adapter without ComfyUI


def test_adapter_degrades_gracefully(models_dir, painter_file):
    assert adapter.compute_device().type in ("cpu", "cuda", "mps")
    assert adapter.intermediate_device() == torch.device("cpu")
    adapter.soft_empty_cache()
    adapter.register_model_folders()  # no-op outside ComfyUI
    assert adapter.list_models("neural_painters") == ["tiny.safetensors"]
    assert adapter.model_path("neural_painters", "tiny.safetensors") == str(painter_file)
    assert adapter.model_path("neural_painters", "missing.safetensors") is None
    progress = adapter.Progress(10)
    calls = []
    for i in range(1, 11):
        progress.update(i, preview=lambda: calls.append(1) or torch.rand(1, 3, 8, 8))
    progress.close()
    assert 1 <= len(calls) <= 2, "previews are throttled"
    adapter.request_interrupt()
    with pytest.raises(adapter.Interrupted):
        adapter.Progress(3).update(1)
    adapter.check_interrupt()  # the flag was consumed


def test_save_path_counts_and_stays_inside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, stem, sub = adapter.save_path("paintings/np")
    assert Path(folder) == tmp_path / "output" / "paintings" and stem == "np_00001_" and sub == "paintings"
    (Path(folder) / "np_00001_.json").write_text("{}")
    assert adapter.save_path("paintings/np")[1] == "np_00002_"
    with pytest.raises(ValueError, match="outside"):
        adapter.save_path("../../etc/np")


# ------------------------------------------------------------------------------------------------
# Load Neural Painter


def test_load_neural_painter(painter_file):
    choices = NODES[NAMES["Load Neural Painter"]].INPUT_TYPES()["required"]["painter_name"][0]
    assert "tiny.safetensors" in choices
    painter, info = node("Load Neural Painter").load("tiny.safetensors")
    assert painter.stroke_size == 64 and painter.layout.name == "nakano12"
    assert "classic/dry_brush" in info and "psnr" in info
    assert painter.device == adapter.compute_device() or painter.device.type == adapter.compute_device().type
    assert not any(p.requires_grad for p in painter.generator.parameters())
    # cached: the same object comes back while the file is unchanged
    assert node("Load Neural Painter").load("tiny.safetensors")[0] is painter


def test_load_neural_painter_clear_errors(models_dir):
    with pytest.raises(NodeError, match="not found"):
        node("Load Neural Painter").load("nope.safetensors")
    with pytest.raises(NodeError, match="no painter checkpoints found"):
        node("Load Neural Painter").load("(no painters found)")
    bad = models_dir / "neural_painters" / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(NodeError, match="Load Neural Painter: .*not a readable safetensors"):
        node("Load Neural Painter").load("broken.safetensors")


# ------------------------------------------------------------------------------------------------
# Random Actions


def test_random_actions(painter):
    make = node("Random Actions").make
    s, = make(300, 5, 200, 100, 10, 80)[0]
    assert len(s) == 300 and s.canvas_size == (100, 200)
    side = s.boxes[:, 2]
    assert side.min() >= 10 - 1e-4 and side.max() <= 80 + 1e-4
    assert torch.all(side[:-1] >= side[1:]), "coarse to fine: large strokes first"
    assert (s.boxes[:, 0].min() >= 0) and (s.boxes[:, 0].max() <= 200) and (s.boxes[:, 1].max() <= 100)
    again, = make(300, 5, 200, 100, 10, 80)[0]
    assert torch.equal(s.actions, again.actions) and torch.equal(s.boxes, again.boxes)
    other, = make(300, 6, 200, 100, 10, 80)[0]
    assert not torch.equal(s.actions, other.actions)
    shuffled, = make(300, 5, 200, 100, 10, 80, order="random")[0]
    assert not torch.all(shuffled.boxes[:-1, 2] >= shuffled.boxes[1:, 2])
    s, = make(10, 1, 64, 64, 8, 8, painter=painter, background="#00ff00", blend="linear")[0]
    assert s.brush == painter.brush and s.background == (0.0, 1.0, 0.0) and s.blend == "linear"
    with pytest.raises(NodeError, match="Random Actions: background: 'green' is not a hex colour: use #rrggbb"):
        make(10, 1, 64, 64, 8, 8, background="green")


def test_random_actions_colours_from_image():
    image = torch.zeros(1, 32, 64, 3)
    image[..., 0] = 1.0  # red
    s, = node("Random Actions").make(20, 0, 128, 64, 8, 16, image=image)[0]
    rgb = s.actions[:, s.layout.indices("red", "green", "blue")]
    assert torch.allclose(rgb, torch.tensor([1.0, 0.0, 0.0]).expand(20, 3), atol=1e-5)
    # a batch: one stroke set per image, none dropped
    batch = torch.zeros(3, 32, 64, 3)
    for i in range(3):
        batch[i, ..., i] = 1.0                  # red, green, blue
    sets = node("Random Actions").make(20, 0, 128, 64, 8, 16, image=batch)[0]
    assert len(sets) == 3
    for i, s in enumerate(sets):
        assert torch.allclose(s.actions[:, s.layout.indices("red", "green", "blue")], torch.eye(3)[i].expand(20, 3))


def test_random_actions_refuses_absurd_sizes():
    make = node("Random Actions").make
    with pytest.raises(NodeError, match="stroke size range"):
        make(10, 0, 64, 64, 50, 10)
    with pytest.raises(NodeError, match="more than 4x the canvas"):
        make(10, 0, 64, 64, 8, 1000)
    with pytest.raises(NodeError, match="out of range"):
        make(10, 0, 100000, 64, 8, 16)
    with pytest.raises(NodeError, match="count"):
        make(0, 0, 64, 64, 8, 16)


# ------------------------------------------------------------------------------------------------
# Render Strokes and Blend Canvas


def test_render_strokes(painter, strokes):
    image = node("Render Strokes").render(painter, strokes, 1.0)[0]
    assert image.shape == (1, 64, 96, 3) and image.dtype == torch.float32 and image.device.type == "cpu"
    assert 0 <= image.min() and image.max() <= 1
    assert image.min() < 0.9, "strokes were painted"
    big = node("Render Strokes").render(painter, strokes, 2.0)[0]
    assert big.shape == (1, 128, 192, 3)
    black = torch.zeros(1, 10, 10, 3)
    over = node("Render Strokes").render(painter, strokes, 1.0, background=black)[0]
    assert over.shape == image.shape and over.mean() < image.mean()


def test_background_batches_are_painted_whole_or_refused(painter, strokes):
    backgrounds = torch.stack([torch.zeros(64, 96, 3), torch.ones(64, 96, 3), torch.full((64, 96, 3), 0.5)])
    images = node("Render Strokes").render(painter, strokes, 1.0, background=backgrounds)[0]
    assert images.shape == (3, 64, 96, 3)
    for i in range(3):
        alone = node("Render Strokes").render(painter, strokes, 1.0, background=backgrounds[i:i + 1])[0]
        assert torch.equal(images[i:i + 1], alone)
    with pytest.raises(NodeError, match="Stroke Timelapse: background is a batch of 3 images.*Rebatch Images"):
        node("Stroke Timelapse").frames(painter, strokes, 4, 48, 0, background=backgrounds)
    with pytest.raises(NodeError, match="Re-render with MyPaint: background is a batch of 3 images"):
        node("Re-render with MyPaint").rerender(strokes, 1.0, background=backgrounds)


def test_models_wait_off_the_gpu_and_comfyui_makes_room_for_them(painter, monkeypatch):
    """Inside ComfyUI the pack's models live on its offload device between runs; for a run, ComfyUI's
    memory manager is first asked to free room for them (it unloads its own models for that), and they go
    back afterwards."""
    calls = []

    class FakeModelManagement:
        @staticmethod
        def get_torch_device():
            return torch.device("meta")

        @staticmethod
        def unet_offload_device():
            return torch.device("cpu")

        @staticmethod
        def module_size(module):
            return sum(p.numel() * p.element_size() for p in module.parameters())

        @staticmethod
        def free_memory(memory_required, device):
            calls.append(("free", memory_required, device))

        @staticmethod
        def soft_empty_cache():
            calls.append(("empty",))

    monkeypatch.setattr(adapter, "IN_COMFYUI", True)
    monkeypatch.setattr(adapter, "model_management", FakeModelManagement)
    assert adapter.storage_device() == torch.device("cpu")
    moves = []
    monkeypatch.setattr(type(painter), "to", lambda self, device: moves.append(torch.device(device)) or self)
    with adapter.on_compute_device(painter, None, lambda c: c) as device:
        assert device == torch.device("meta") and moves == [torch.device("meta")]
    weights = FakeModelManagement.module_size(painter.generator)
    assert calls == [("free", weights + adapter.WORKING_MEMORY, torch.device("meta")), ("empty",)]
    assert moves == [torch.device("meta"), torch.device("cpu")]


def test_render_strokes_coverage_mask():
    """The coverage MASK is the strokes' alpha: painted over two backgrounds, the painting differs exactly
    by the light the strokes let through."""
    from painter_models import RasterProgram
    painter = RasterProgram(16)
    strokes, = node("Random Actions").make(12, 3, 48, 32, 6, 20)[0]
    image, cover = node("Render Strokes").render(painter, strokes, 1.0)
    assert cover.shape == (1, 32, 48) and 0 <= cover.min() and cover.max() <= 1
    assert 0.05 < cover.mean() < 0.95 and cover.max() > 0.5 and cover.min() == 0
    on_black = node("Render Strokes").render(painter, strokes, 1.0, background=torch.zeros(1, 32, 48, 3))[0]
    through = (image - on_black)[0].mean(-1)          # white minus black background: what comes through
    assert torch.allclose(1 - through, cover[0], atol=1e-5)
    assert node("Render Strokes").render(painter, strokes, 2.0)[1].shape == (1, 64, 96)


def test_render_refuses_a_mismatched_painter(painter, strokes):
    from painter_models.brush.actions import ActionLayout, Field, NAKANO
    other = ActionLayout("other12", tuple(Field("x" + f.name, f.role, f.low, f.high) for f in NAKANO.fields))
    import dataclasses
    foreign = dataclasses.replace(strokes, layout=other)
    with pytest.raises(NodeError, match="trained on action layout 'nakano12'.*'other12'"):
        node("Render Strokes").render(painter, foreign, 1.0)


def test_blend_canvas(painter, strokes):
    canvas = torch.rand(2, 128, 192, 3)
    out = node("Blend Canvas").blend(canvas, painter, strokes, "as strokes", 1.0)[0]
    assert out.shape == canvas.shape and out.dtype == torch.float32
    assert not torch.allclose(out, canvas)
    same = node("Blend Canvas").blend(canvas, painter, strokes, "alpha", 0.0)[0]
    assert torch.allclose(same, canvas, atol=1e-6)
    masked = node("Blend Canvas").blend(canvas, painter, strokes, "linear", 1.0, mask=torch.zeros(1, 128, 192))[0]
    assert torch.allclose(masked, canvas, atol=1e-6)
    half = torch.zeros(1, 128, 192)
    half[:, :, :96] = 1
    part = node("Blend Canvas").blend(canvas, painter, strokes, "alpha", 1.0, mask=half)[0]
    assert torch.allclose(part[:, :, 96:], canvas[:, :, 96:], atol=1e-6)
    with pytest.raises(NodeError, match="aspect ratio"):
        node("Blend Canvas").blend(torch.rand(1, 100, 100, 3), painter, strokes)


# ------------------------------------------------------------------------------------------------
# losses


def canvas_like(h=64, w=96):
    return torch.rand(1, 3, h, w, requires_grad=True)


def test_pixel_loss_and_combine():
    target = torch.rand(1, 48, 64, 3)
    pixel = node("Pixel Loss").make(target, "l2", 1.0, 2.0)[0][0]
    assert pixel.names == ["pixel"] and pixel.weights == [2.0]
    x = canvas_like(48, 64)
    value = pixel(x)
    value.backward()
    assert value.item() > 0 and x.grad.abs().sum() > 0
    exact = target.permute(0, 3, 1, 2)
    assert node("Pixel Loss").make(target, "l1", 0.0, 1.0)[0][0](exact).item() < 1e-5
    mask = torch.zeros(1, 48, 64)
    mask[:, :, :32] = 1
    masked = node("Pixel Loss").make(target, "l1", 0.0, 1.0, mask=mask)[0][0]
    other = exact.clone()
    other[..., 32:] = 1 - other[..., 32:]
    assert masked(other).item() < 1e-5, "outside the mask nothing counts"
    both = node("Combine Losses").combine(pixel, 0.5, masked, 3.0)[0]
    assert both.names == ["pixel", "pixel_2"] and both.weights == [1.0, 3.0]
    three = node("Combine Losses").combine(both, 2.0, loss_3=pixel, scale_3=1.0)[0]
    assert three.names == ["pixel", "pixel_2", "pixel_3"] and three.weights == [2.0, 6.0, 2.0]


def test_vgg_feature_loss_offline_backbone():
    image = torch.rand(1, 64, 64, 3)
    loss = node("VGG Feature Loss").make(image, "efficientnet_lite0", "auto", "stage2, stage3", "l1", 1.5)[0][0]
    assert loss.names == ["feature"] and loss.weights == [1.5]
    assert loss.terms[0].layer_names == ["stage2", "stage3"]
    x = canvas_like(64, 64)
    loss(x).backward()
    assert x.grad.abs().sum() > 0


def test_vgg_feature_loss_missing_weights_is_a_clear_message(monkeypatch, models_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(models_dir / "no_hub"))
    with pytest.raises(NodeError, match=r"(?s)VGG Feature Loss: ImageNet weights for the vgg16 backbone.*vgg16-397923af\.pth.*/vgg"):
        node("VGG Feature Loss").make(torch.rand(1, 32, 32, 3), "vgg16", "auto", "", "mse", 1.0)
    with pytest.raises(NodeError, match="not found"):
        node("VGG Feature Loss").make(torch.rand(1, 32, 32, 3), "vgg16", "missing.pth", "", "mse", 1.0)


def test_vgg_feature_loss_weights_from_the_vgg_folder(models_dir):
    import torchvision
    from safetensors.torch import save_file
    state = torchvision.models.vgg16().features.state_dict()
    save_file({f"features.{k}": v.contiguous() for k, v in state.items()}, str(models_dir / "vgg" / "my_vgg16.safetensors"))
    choices = NODES[NAMES["VGG Feature Loss"]].INPUT_TYPES()["required"]["weights"][0]
    assert "my_vgg16.safetensors" in choices
    loss = node("VGG Feature Loss").make(torch.rand(1, 32, 32, 3), "vgg16", "my_vgg16.safetensors", "relu2_2", "mse",
                                         1.0)[0][0]
    assert loss.terms[0].backbone.weights_source.endswith("my_vgg16.safetensors")


@pytest.fixture
def tiny_clip():
    from painter_models.objectives.clip_loader import TINY_CLIP_CONFIG, load_clip
    return load_clip(TINY_CLIP_CONFIG, None, seed=0)


def test_clip_text_loss(tiny_clip):
    loss = node("CLIP Text Loss").make(tiny_clip, "a red apple\n\na green pear", "blurry", 0.3, 2, 0.7, 5)[0]
    assert loss.names == ["clip"] and loss.weights == [0.7]
    term = loss.terms[0]
    assert term.prompts == ["a red apple", "a green pear"] and term.negative_prompts == ["blurry"]
    x = canvas_like(80, 80)
    value = loss(x)
    value.backward()
    assert 0 < value.item() < 3 and x.grad.abs().sum() > 0
    with pytest.raises(NodeError, match="prompt is empty"):
        node("CLIP Text Loss").make(tiny_clip, "  \n ", "", 0.3, 2, 1.0, 0)


def test_load_clip_errors_are_clear(models_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load = node("Load CLIP").load
    with pytest.raises(NodeError, match=r"Load CLIP: CLIP weights for ViT-B-32 \(openai\) are not available"):
        load("ViT-B-32", "(use the pretrained tag)", "openai")
    with pytest.raises(NodeError, match="unknown open_clip model"):
        load("ViT-Q-99", "(use the pretrained tag)", "openai")
    with pytest.raises(NodeError, match="model name"):
        load("  ", "(use the pretrained tag)", "openai")


def test_load_clip_from_the_clip_folder(models_dir, tmp_path):
    """A checkpoint file picked from models/clip (a registered tiny open_clip config, for speed)."""
    import json
    import open_clip
    from painter_models.objectives.clip_loader import TINY_CLIP_CONFIG
    from safetensors.torch import save_file
    cfg_dir = tmp_path / "clip_cfg"
    cfg_dir.mkdir()
    (cfg_dir / "np-tiny-clip.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(str(cfg_dir))
    model = open_clip.create_model("np-tiny-clip")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(models_dir / "clip" / "np-tiny-clip-mine.safetensors"))
    choices = NODES[NAMES["Load CLIP"]].INPUT_TYPES()["required"]["weights_file"][0]
    assert choices[0] == "(use the pretrained tag)" and "np-tiny-clip-mine.safetensors" in choices
    clip = node("Load CLIP").load("np-tiny-clip", "np-tiny-clip-mine.safetensors", "ignored")[0]
    assert clip.name == "np-tiny-clip" and clip.source.endswith("np-tiny-clip-mine.safetensors")
    assert not any(p.requires_grad for p in clip.parameters())
    assert node("Load CLIP").load("np-tiny-clip", "np-tiny-clip-mine.safetensors", "x")[0] is clip, "cached"
    with pytest.raises(NodeError, match="is not an open_clip checkpoint"):
        node("Load CLIP").load("np-tiny-clip", "gone.safetensors", "x")


def test_load_clip_lists_what_open_clip_can_load(models_dir):
    """models/clip is ComfyUI's text_encoders folder: Stable Diffusion's text encoders live there too and
    open_clip cannot load them, so only open_clip checkpoints are offered from it; models/open_clip
    (the pack's folder) is listed whole; the pack's own shapes CLIP comes as shipped/..."""
    import torch as t
    from safetensors.torch import save_file
    save_file({"text_model.encoder.layers.0.mlp.fc1.weight": t.zeros(2, 2)},
              str(models_dir / "clip" / "clip_l.safetensors"))                       # an SD text encoder
    save_file({"visual.conv1.weight": t.zeros(2, 2), "logit_scale": t.zeros(()),
               "token_embedding.weight": t.zeros(2, 2)}, str(models_dir / "clip" / "my_open_clip.safetensors"))
    (models_dir / "clip" / "mystery.pt").write_bytes(b"not opened")
    (models_dir / "open_clip").mkdir()
    (models_dir / "open_clip" / "ViT-B-32-openai.pt").write_bytes(b"not opened either")
    spec = NODES[NAMES["Load CLIP"]].INPUT_TYPES()["required"]
    files = spec["weights_file"][0]
    assert "my_open_clip.safetensors" in files and "ViT-B-32-openai.pt" in files
    assert "clip_l.safetensors" not in files and "mystery.pt" not in files
    assert "shipped/np-tiny-rn-64-shapes.safetensors" in files
    with pytest.raises(NodeError, match="is not an open_clip checkpoint"):
        node("Load CLIP").load("ViT-B-32", "clip_l.safetensors", "openai")
    assert {"ViT-B-32", "ViT-L-14", "np-tiny-rn-64"} <= set(spec["model_name"][0])
    tags = spec["pretrained_tag"][0]
    assert tags[0] == "openai" and {"laion2b_s34b_b79k", "random"} <= set(tags)
    clip = node("Load CLIP").load("np-tiny-rn-64", "shipped/np-tiny-rn-64-shapes.safetensors", "openai")[0]
    assert clip.name == "np-tiny-rn-64" and clip.source.endswith("np-tiny-rn-64-shapes.safetensors")


# ------------------------------------------------------------------------------------------------
# files: Save / Load Strokes, Strokes to SVG


def test_save_and_load_strokes_round_trip(strokes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside ComfyUI the input/output folders are ./input, ./output
    result = node("Save Strokes").save(strokes, "np/strokes")
    assert result["result"][0] == "np/strokes_00001_.json [output]", "as Load Strokes lists it: no server path"
    assert (tmp_path / "output" / "np" / "strokes_00001_.json").is_file()
    assert result["ui"]["strokes_files"] == [{"filename": "strokes_00001_.json", "subfolder": "np", "type": "output"}]
    choices = NODES[NAMES["Load Strokes"]].INPUT_TYPES()["required"]["file"][0]
    assert "np/strokes_00001_.json [output]" in choices
    loaded = node("Load Strokes").load(result["result"][0])[0]
    assert torch.equal(loaded.actions, strokes.actions) and torch.equal(loaded.boxes, strokes.boxes)
    assert loaded.canvas_size == strokes.canvas_size
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(NodeError, match="Load Strokes: .*not a stroke file"):
        node("Load Strokes").load("bad.json")
    with pytest.raises(NodeError, match="not a file in ComfyUI's input folder"):
        node("Load Strokes").load("../../etc/passwd")
    with pytest.raises(NodeError, match="no stroke files found"):
        node("Load Strokes").load("(no stroke files in ComfyUI/input)")
    # ComfyUI checks a combo value against the list only when VALIDATE_INPUTS does not take it
    assert not hasattr(NODES[NAMES["Load Strokes"]], "VALIDATE_INPUTS")


def test_strokes_to_svg(strokes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = node("Strokes to SVG").save(strokes, "svg/painting", "my painting")
    svg, path = result["result"]
    assert path == "svg/painting_00001_.svg [output]"
    assert (tmp_path / "output" / "svg" / "painting_00001_.svg").read_text() == svg
    assert svg.count("<path ") == len(strokes) and "<title>my painting</title>" in svg
    import xml.dom.minidom
    xml.dom.minidom.parseString(svg)  # well-formed


# ------------------------------------------------------------------------------------------------
# Stroke Timelapse and Re-render with MyPaint


def test_stroke_timelapse(painter, strokes):
    frames = node("Stroke Timelapse").frames(painter, strokes, 6, 48, 2, real_brush=False)[0]
    assert frames.shape == (6 + 2, 32, 48, 3) and frames.dtype == torch.float32
    assert torch.allclose(frames[0], torch.ones_like(frames[0]), atol=1 / 255), "starts on the bare canvas"
    final = node("Render Strokes").render(painter, strokes, 0.5)[0][0]
    assert (frames[5] - final).abs().mean() < 0.02, "ends on the painting"
    assert torch.equal(frames[5], frames[7]), "the finished painting is held"
    full = node("Stroke Timelapse").frames(painter, strokes, 1000, 0, 0, real_brush=False)[0]
    assert full.shape == (len(strokes) + 1, 64, 96, 3), "at most one frame per stroke"


@pytest.mark.mypaint
@skip_no_mypaint
def test_stroke_timelapse_of_the_real_brush(painter, strokes):
    """By default the frames are MyPaint's painting, ending on what a re-render gives (with the brush
    seed the painting was delivered with)."""
    from painter_models.brush.rerender import rerender_mypaint
    frames = node("Stroke Timelapse").frames(painter, strokes, 6, 0, 0)[0]
    assert torch.equal(frames[-1], torch.from_numpy(rerender_mypaint(strokes, 1.0)).float() / 255)
    strokes.extra["brush_seed"] = 3
    seeded = node("Stroke Timelapse").frames(painter, strokes, 6, 0, 0)[0]
    assert torch.equal(seeded[-1], torch.from_numpy(rerender_mypaint(strokes, 1.0, brush_seed=3)).float() / 255)
    assert not torch.equal(seeded[-1], frames[-1])


def test_rerender_with_mypaint(strokes):
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library
    try:
        load_library()
    except MyPaintUnavailable as e:
        with pytest.raises(NodeError, match="Re-render with MyPaint: .*libmypaint"):
            node("Re-render with MyPaint").rerender(strokes, 2.0, "")
        pytest.skip(f"libmypaint missing: checked the error message only ({e})")
    image = node("Re-render with MyPaint").rerender(strokes, 2.0, "")[0]
    assert image.shape == (1, 128, 192, 3) and image.dtype == torch.float32
    assert image.min() < 0.8, "strokes painted"
    with pytest.raises(NodeError, match="at most 8192 px"):
        node("Re-render with MyPaint").rerender(strokes, 100.0, "")
    with pytest.raises(NodeError, match="Re-render with MyPaint: "):
        node("Re-render with MyPaint").rerender(strokes, 1.0, "no_such/brush_name")
    # the brush: a list of the installed presets, first the strokes' own
    choices = NODES[NAMES["Re-render with MyPaint"]].INPUT_TYPES()["required"]["brush"][0]
    assert choices[0] == "(the strokes' brush)" and "classic/charcoal" in choices
    from painter_models.brush.rerender import rerender_mypaint
    as_image = lambda a: torch.from_numpy(a).float()[None] / 255  # noqa: E731
    rerender = node("Re-render with MyPaint").rerender
    assert torch.equal(rerender(strokes, 1.0, choices[0])[0], as_image(rerender_mypaint(strokes, 1.0)))
    charcoal = rerender(strokes, 1.0, "classic/charcoal")[0]
    assert torch.equal(charcoal, as_image(rerender_mypaint(strokes, 1.0, brush="classic/charcoal")))
    # the brush seed: -1 is the one the painting was delivered with, another number another grain
    strokes.extra["brush_seed"] = 2
    assert torch.equal(rerender(strokes, 1.0)[0], as_image(rerender_mypaint(strokes, 1.0, brush_seed=2)))
    assert torch.equal(rerender(strokes, 1.0, brush_seed=5)[0], as_image(rerender_mypaint(strokes, 1.0, brush_seed=5)))
    assert not torch.equal(rerender(strokes, 1.0, brush_seed=5)[0], rerender(strokes, 1.0)[0])


# ------------------------------------------------------------------------------------------------
# Optimize Actions


def target_image(h=48, w=64):
    """A simple picture: dark left half, a red square on the right."""
    img = torch.ones(1, h, w, 3)
    img[:, :, : w // 2] = 0.15
    img[:, h // 4: 3 * h // 4, w // 2 + 4: w - 4] = torch.tensor([0.9, 0.1, 0.1])
    return img


def optimize(painter, loss, **kw):
    args = dict(size=64, strokes=10, rounds=2, steps=12, learning_rate=0.05, min_stroke_size=0,
                max_stroke_size=0, seed=1, blend="alpha")
    args.update(kw)
    return node("Optimize Actions").optimize(painter, loss, **args)


def test_optimize_actions_paints_towards_the_target(painter):
    import json
    loss = node("Pixel Loss").make(target_image(), "l2", 0.0, 1.0)[0][0]
    strokes, image, snapshots, text = optimize(painter, loss, snapshot_every=4)
    info = json.loads(text)
    assert len(strokes) == 10 and strokes.canvas_size == (48, 64)
    assert image.shape == (1, 48, 64, 3) and image.device.type == "cpu"
    assert snapshots.shape[1:] == image.shape[1:] and snapshots.shape[0] >= 3
    assert info["steps"] == 12 and not info["cancelled"] and info["objective"] == "pixel x1"
    assert info["loss_last"] < info["loss_first"]
    # the painting is MyPaint's painting of the returned strokes (what Re-render gives at scale 1) ...
    assert info["painted_by"] == "mypaint:classic/dry_brush"
    again = node("Re-render with MyPaint").rerender(strokes, 1.0)[0]
    assert (again - image).abs().max() <= 0.5 / 255 + 1e-6
    # ... or, with the real brush off, the painter's
    strokes, image, _, text = optimize(painter, loss, real_brush=False)
    assert json.loads(text)["painted_by"] == "neural painter" and "switched off" in json.loads(text)["note"]
    again = node("Render Strokes").render(painter, strokes, 1.0)[0]
    assert (again - image).abs().max() < 1e-4
    # same seed, same painting
    assert torch.equal(optimize(painter, loss, steps=2)[0].actions, optimize(painter, loss, steps=2)[0].actions)


def test_optimize_actions_widgets_are_the_painting_settings(painter):
    """Every widget is a PaintSettings field with the field's declared default and bounds; saved workflows
    hold widget values by position, so the order of the widgets they know never changes."""
    import dataclasses
    import json
    from painter_models.painting.settings import PaintSettings
    spec = node("Optimize Actions").INPUT_TYPES()
    widgets = {**spec["required"], **spec["optional"]}
    video = node("Paint Video").INPUT_TYPES()["required"]
    for f in dataclasses.fields(PaintSettings):
        if f.metadata["widget"] is False:
            assert f.name not in widgets, f"{f.name} is the engine's own tuning, not a widget"
            continue
        if f.metadata["clip"]:      # a clip's own: Paint Video's widgets
            assert f.name not in widgets and video[f.name][1]["default"] == f.default, f.name
            continue
        kind, options = widgets[f.name]
        assert options["default"] == f.default, f.name
        if f.metadata["lo"] is not None:
            assert (options["min"], options["max"]) == (f.metadata["lo"], f.metadata["hi"]), f.name
    assert list(spec["required"]) == ["painter", "loss", "size", "strokes", "rounds", "steps", "learning_rate",
                                      "min_stroke_size", "max_stroke_size", "seed", "blend"]
    # inputs added later are appended, in the order they came (the example workflows store widget
    # values by position: tests/e2e/examples.py writes them from this spec)
    assert list(spec["optional"]) == ["init_strokes", "keep_training", "palette", "greyscale", "opaque", "background",
                                      "background_image", "snapshot_every", "polish_steps", "real_brush", "width",
                                      "height", "time_limit", "brush_seed", "init"]
    loss = node("Pixel Loss").make(target_image(), "l2", 0.0, 1.0)[0][0]
    # a widget left out is the settings' default, as ComfyUI fills it in
    unset = node("Optimize Actions").optimize(painter, loss, size=64, strokes=4, rounds=1, steps=3)[0].actions
    default = PaintSettings().learning_rate
    assert torch.equal(unset, optimize(painter, loss, strokes=4, rounds=1, steps=3, learning_rate=default,
                                       seed=0)[0].actions)
    info = json.loads(optimize(painter, loss, steps=6, polish_steps=4)[3])
    assert info["steps"] == 10, "the polish steps run after the rounds"


def test_optimize_actions_continues_from_init_strokes(painter):
    init, = node("Random Actions").make(5, 0, 32, 24, 8, 16)[0]
    loss = node("Pixel Loss").make(target_image(), "l1", 1.0, 1.0)[0][0]
    strokes, image, _, _ = optimize(painter, loss, init_strokes=init, strokes=4, steps=4, size=512)
    assert strokes.canvas_size == (24, 32) and len(strokes) == 9 and image.shape == (1, 24, 32, 3)
    assert torch.allclose(strokes.actions[:5], init.actions, atol=1e-2), "init strokes stay first (frozen)"


def test_optimize_actions_paints_over_the_init_strokes_own_backdrop():
    """Continuing a painting made over a photo keeps the photo; over a colour, that colour (not the node's)."""
    import dataclasses
    from painter_models import NAKANO, RasterProgram
    from painter_models.painting.canvas import render_canvas
    from painter_models.brush.strokes import StrokeSet
    painter = RasterProgram(16)
    h, w = 24, 32
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    photo = torch.stack([0.2 + 0.6 * x, 0.8 - 0.5 * y, 0.4 + 0.2 * x * y])
    boxes = torch.tensor([[6.0, 6.0, 10.0], [12.0, 9.0, 10.0]])
    init = StrokeSet(NAKANO.sample(2, seed=3), boxes, (h, w), background=(0.1, 0.2, 0.3), background_image=photo)
    loss = node("Pixel Loss").make(target_image(h, w), "l2", 0.0, 1.0)[0][0]
    run = dict(strokes=2, rounds=1, steps=2, background="#000000")

    strokes, image, _, _ = optimize(painter, loss, init_strokes=init, **run)
    assert strokes.background_image is not None and torch.allclose(strokes.background_image, photo)
    assert (image[0].permute(2, 0, 1) - render_canvas(painter, strokes)[0]).abs().max() < 1e-5
    assert (image[0].permute(2, 0, 1) - render_canvas(painter, strokes, (0.0, 0.0, 0.0))[0]).abs().max() > 0.1

    over_colour = dataclasses.replace(init, background_image=None)
    strokes = optimize(painter, loss, init_strokes=over_colour, **run)[0]
    assert strokes.background_image is None and strokes.background == pytest.approx((0.1, 0.2, 0.3))

    # a connected background_image still wins over the init strokes' own
    other = target_image(h, w)
    strokes = optimize(painter, loss, init_strokes=init, background_image=other, **run)[0]
    assert torch.allclose(strokes.background_image, other[0].permute(2, 0, 1))


def test_loss_nodes_make_one_loss_per_image_of_a_batch():
    """A batch is never cut to its first image: one loss per image (ComfyUI then runs Optimize Actions once
    for each), masks one for all or one per image."""
    batch = torch.stack([target_image()[0], 1 - target_image()[0], target_image()[0].flip(1)])
    pixel = node("Pixel Loss").make(batch, "l2", 0.0, 1.0)[0]
    feature = node("VGG Feature Loss").make(batch, "efficientnet_lite0", "auto", "stage2", "mse", 1.0)[0]
    style = node("Style Loss").make(batch[:2], "efficientnet_lite0", "auto", "", 1.0)[0]
    assert (len(pixel), len(feature), len(style)) == (3, 3, 2)
    for i in range(3):
        canvas = batch[i:i + 1].permute(0, 3, 1, 2)
        assert float(pixel[i](canvas)) < 1e-6 and float(feature[i](canvas)) < 1e-4
        assert all(float(pixel[j](canvas)) > 0.01 for j in range(3) if j != i)
    masks = torch.zeros(3, 48, 64)
    per_image = node("Pixel Loss").make(batch, "l1", 0.0, 1.0, mask=masks)[0]
    assert len(per_image) == 3
    with pytest.raises(NodeError, match="2 masks for 3 images"):
        node("Pixel Loss").make(batch, "l1", 0.0, 1.0, mask=masks[:2])


def test_style_loss_node():
    style = torch.rand(1, 40, 40, 3)
    loss = node("Style Loss").make(style, "efficientnet_lite0", "auto", "", 2.0)[0][0]
    assert loss.names == ["style"] and loss.weights == [2.0]
    assert loss.terms[0].layer_names == ["stage1", "stage2", "stage3", "stage4"]
    same = float(loss(style.permute(0, 3, 1, 2)))
    flat = float(loss(torch.full((1, 3, 40, 40), 0.5)))
    assert same < 0.1 * flat
    with pytest.raises(NodeError, match="Style Loss: unknown backbone"):
        node("Style Loss").make(style, "resnet", "auto", "", 1.0)


def test_optimize_actions_canvas_takes_the_photograph_s_aspect_ratio(painter):
    import json
    portrait = node("Pixel Loss").make(target_image(60, 40), "l2", 0.0, 1.0)[0][0]
    strokes, image, _, text = optimize(painter, portrait, size=48, steps=2, strokes=4, rounds=1)
    assert strokes.canvas_size == (48, 32) and image.shape == (1, 48, 32, 3)
    assert json.loads(text)["photograph"] == "the 40x60 photograph fills the 32x48 canvas"
    # a forced ratio crops the photograph, and the report says how much and where
    strokes, _, _, text = optimize(painter, portrait, width=48, height=48, steps=2, strokes=4, rounds=1)
    info = json.loads(text)
    assert strokes.canvas_size == (48, 48) and info["canvas"] == "48x48"
    assert info["photograph"].startswith("the 40x60 photograph was cropped to the 48x48 canvas: 20 px of its "
                                         "height cut off (half at the top, half at the bottom)")
    strokes = optimize(painter, portrait, width=40, steps=2, strokes=4, rounds=1)[0]
    assert strokes.canvas_size == (60, 40)                 # one side given: the other from the photograph
    # no photograph (e.g. a text prompt): a square canvas
    def no_photo(canvas):
        return canvas.mean()
    no_photo.names, no_photo.weights = ["brightness"], [1.0]
    assert optimize(painter, no_photo, size=32, steps=1, strokes=2, rounds=1)[0].canvas_size == (32, 32)


def test_optimize_actions_time_limit_and_batches(painter):
    import json
    loss = node("Pixel Loss").make(target_image(), "l2", 0.0, 1.0)[0][0]
    text = optimize(painter, loss, steps=100000, strokes=8, rounds=2, time_limit=1.0)[3]
    info = json.loads(text)
    assert info["timed_out"] and not info["cancelled"] and info["steps"] < 100000 and info["seconds"] < 30
    with pytest.raises(NodeError, match="background_image is a batch of 2 images.*Rebatch Images"):
        optimize(painter, loss, background_image=target_image().expand(2, -1, -1, -1))


def test_optimize_actions_clear_errors(painter, strokes):
    loss = node("Pixel Loss").make(target_image(), "l1", 0.0, 1.0)[0][0]
    with pytest.raises(NodeError, match="nothing to paint"):
        optimize(painter, loss, strokes=0)
    with pytest.raises(NodeError, match="min_stroke_size 40 is larger"):
        optimize(painter, loss, min_stroke_size=40, max_stroke_size=20)
    with pytest.raises(NodeError, match="palette: '#12345' is not a hex colour"):
        optimize(painter, loss, palette="#12345, red")
    with pytest.raises(NodeError, match="background: '#12' is not a hex colour"):
        optimize(painter, loss, background="#12")
    import dataclasses
    from painter_models.brush.actions import ActionLayout, Field, NAKANO
    other = ActionLayout("other12", tuple(Field("x" + f.name, f.role, f.low, f.high) for f in NAKANO.fields))
    with pytest.raises(NodeError, match="Optimize Actions: the painter"):
        optimize(painter, loss, init_strokes=dataclasses.replace(strokes, layout=other))


def test_optimize_actions_stops_promptly_on_interrupt(painter):
    """Cancel (here: the adapter's interrupt flag) stops the optimisation at the next step."""
    pixel = node("Pixel Loss").make(target_image(), "l1", 0.0, 1.0)[0][0]
    calls = []

    def objective(canvas):
        calls.append(1)
        if len(calls) == 3:
            adapter.request_interrupt()
        return pixel(canvas)
    objective.names, objective.weights = ["pixel"], [1.0]
    with pytest.raises(adapter.Interrupted):
        optimize(painter, objective, steps=500)
    assert len(calls) <= 6, f"kept going for {len(calls)} loss evaluations after the interrupt"
    adapter.check_interrupt()  # the flag was consumed by the node


def test_nodes_work_under_comfyui_inference_mode(painter_file):
    """ComfyUI runs every node inside torch.inference_mode(): the chain must still optimise."""
    sys.modules[f"{PACK.__name__}.nodes.nodes_painter"]._CACHE.clear()
    with torch.inference_mode():
        painter = node("Load Neural Painter").load("tiny.safetensors")[0]
        image = target_image()
        assert image.is_inference()
        loss = node("Combine Losses").combine(node("Pixel Loss").make(image, "l2", 1.0, 1.0)[0][0], 1.0,
                                              node("VGG Feature Loss").make(image, "efficientnet_lite0", "auto",
                                                                            "stage2", "mse", 0.1)[0][0], 1.0)[0]
        init, = node("Random Actions").make(4, 0, 64, 48, 8, 24)[0]
        strokes, painting, _, text = optimize(painter, loss, init_strokes=init, strokes=4, steps=3,
                                              background_image=image)
        assert len(strokes) == 8 and '"steps": 3' in text
        frames = node("Stroke Timelapse").frames(painter, strokes, 3, 0, 0)[0]
        assert frames.shape[0] == 3


def test_optimize_actions_palette_greyscale_and_opaque(painter):
    loss = node("Pixel Loss").make(target_image(), "l2", 0.0, 1.0)[0][0]
    strokes = optimize(painter, loss, strokes=6, rounds=1, steps=3, palette="#e01010, 202020 ; #ffffff")[0]
    rgb = strokes.actions[:, strokes.layout.indices("red", "green", "blue")]
    allowed = torch.tensor([[0xe0, 0x10, 0x10], [0x20, 0x20, 0x20], [0xff, 0xff, 0xff]]) / 255
    assert torch.cdist(rgb, allowed).min(1).values.max() < 1e-3, "every stroke in a palette colour"
    kmeans = optimize(painter, loss, strokes=6, rounds=1, steps=2, palette="2")[0]
    colours = kmeans.actions[:, kmeans.layout.indices("red", "green", "blue")]
    assert len({tuple(c) for c in colours.mul(255).round().tolist()}) <= 2
    grey = optimize(painter, loss, strokes=6, rounds=1, steps=2, greyscale=True, opaque=True)[0]
    g = grey.actions[:, grey.layout.indices("red", "green", "blue")]
    assert torch.allclose(g[:, 0:1].expand_as(g), g)
    p = grey.actions[:, grey.layout.indices("entry_pressure", "exit_pressure")]
    assert torch.allclose(p, torch.ones_like(p))
    with pytest.raises(NodeError, match="1..256 colours"):
        optimize(painter, loss, palette="0")


# ------------------------------------------------------------------------------------------------
# a shared server: file inputs stay in their folders, nothing reveals what exists elsewhere, work is
# bounded and cancellable (issue 14)


def test_file_inputs_stay_inside_their_folder_links_included(strokes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from painter_models.export.stroke_file import save_strokes
    (tmp_path / "input").mkdir()
    (tmp_path / "elsewhere").mkdir()
    save_strokes(str(tmp_path / "elsewhere" / "secret.json"), strokes)
    save_strokes(str(tmp_path / "input" / "mine.json"), strokes)
    (tmp_path / "input" / "link.json").symlink_to(tmp_path / "elsewhere" / "secret.json")
    (tmp_path / "input" / "linked_folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert adapter.list_files((".json",), kinds=("input",)) == ["mine.json"]
    assert len(node("Load Strokes").load("mine.json")[0]) == len(strokes)
    messages = set()
    for name in ("link.json", "linked_folder/secret.json", "../elsewhere/secret.json", "../elsewhere/missing.json",
                 str(tmp_path / "elsewhere" / "secret.json")):
        with pytest.raises(NodeError) as e:
            node("Load Strokes").load(name)
        messages.add(str(e.value).replace(repr(name), "NAME"))
    assert messages == {"Load Strokes: NAME is not a file in ComfyUI's input folder: pick a file from the list"}
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "out_link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError, match="points outside the output folder"):
        adapter.save_path("out_link/np")


def test_model_files_stay_inside_their_folder(models_dir, painter_file, tmp_path):
    assert adapter.model_path("clip", "../neural_painters/tiny.safetensors") is None
    assert adapter.model_path("clip", str(painter_file)) is None
    # a link the server's owner put in a model folder is followed (as ComfyUI does): models live anywhere
    (models_dir / "clip" / "elsewhere.safetensors").symlink_to(painter_file)
    assert adapter.model_path("clip", "elsewhere.safetensors") == str(models_dir / "clip" / "elsewhere.safetensors")
    out_of_shipped = adapter.SHIPPED_PREFIX + os.path.relpath(painter_file, shipped.WEIGHTS_DIR)
    with pytest.raises(NodeError, match="not found among the pack's shipped painters and the files in ComfyUI/models"):
        node("Load Neural Painter").load(out_of_shipped)


def test_load_clip_takes_a_tag_never_a_path(models_dir, tmp_path):
    existing = tmp_path / "ViT-B-32-openai.safetensors"
    existing.write_bytes(b"not a checkpoint")
    messages = set()
    for tag in (str(existing), str(tmp_path / "missing.safetensors"), "../clip/x.pt", "~/weights.bin", "a b"):
        with pytest.raises(NodeError) as e:
            node("Load CLIP").load("ViT-B-32", "(use the pretrained tag)", tag)
        messages.add(str(e.value).split("' is not an open_clip tag")[1])
    assert len(messages) == 1 and "put it in ComfyUI/models/clip and pick it in weights_file" in messages.pop()


@pytest.mark.mypaint
def test_rerender_paints_with_installed_presets_only(strokes, tmp_path):
    from painter_models.brush.mypaint import list_brushes, resolve_brush
    if "classic/dry_brush" not in list_brushes():
        pytest.skip("the MyPaint brush presets are not installed")
    copy = tmp_path / "copy.myb"
    copy.write_bytes(open(resolve_brush("classic/dry_brush"), "rb").read())
    messages = set()
    for brush in (str(copy), str(tmp_path / "missing.myb"), "../../etc/passwd"):
        with pytest.raises(NodeError) as e:
            node("Re-render with MyPaint").rerender(strokes, 1.0, brush)
        messages.add(str(e.value).replace(repr(brush), "BRUSH"))
    assert messages == {"Re-render with MyPaint: BRUSH is not an installed MyPaint preset: type a preset name such "
                        "as classic/dry_brush (file paths are not accepted)"}
    import dataclasses
    from_file = dataclasses.replace(strokes, brush=str(copy))      # a stroke file names the brush too
    with pytest.raises(NodeError, match="is not an installed MyPaint preset"):
        node("Re-render with MyPaint").rerender(from_file, 1.0, "")
    with pytest.raises(NodeError, match="did you mean classic/dry_brush"):
        node("Re-render with MyPaint").rerender(strokes, 1.0, "classic/dry_brsh")


def test_outputs_carry_no_local_paths(painter_file, painter):
    info = node("Load Neural Painter").load("tiny.safetensors")[1]
    assert "file: tiny.safetensors" in info and str(painter_file.parent) not in info
    (painter_file.parent / "broken.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(NodeError) as e:
        node("Load Neural Painter").load("broken.safetensors")
    assert "'broken.safetensors'" in str(e.value) and str(painter_file.parent) not in str(e.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_scales_and_learning_rates_must_be_finite_positive_numbers(painter, strokes, value):
    with pytest.raises(NodeError, match="Render Strokes: scale must be a finite positive number"):
        node("Render Strokes").render(painter, strokes, value)
    with pytest.raises(NodeError, match="Re-render with MyPaint: scale must be a finite positive number"):
        node("Re-render with MyPaint").rerender(strokes, value, "")
    loss = node("Pixel Loss").make(target_image(), "l1", 0.0, 1.0)[0][0]
    with pytest.raises(NodeError, match="Optimize Actions: learning_rate must be a number in 0.0001..10"):
        optimize(painter, loss, learning_rate=value)
    if value != 0.0:
        with pytest.raises(NodeError, match="Blend Canvas: opacity must be a number in 0..1"):
            node("Blend Canvas").blend(torch.ones(1, 64, 96, 3), painter, strokes, "as strokes", value)


def test_image_batches_and_stroke_sizes_are_bounded_before_the_work(painter, strokes, monkeypatch):
    limits = sys.modules["painter_models.limits"]
    monkeypatch.setattr(limits, "MAX_BATCH_PIXELS", 20 * 64 * 96)
    assert len(node("Stroke Timelapse").frames(painter, strokes, 10, 0, 10)[0]) == 20
    with pytest.raises(NodeError, match="Stroke Timelapse: 21 images of 96x64 px .*lower frames or hold_last, or set "
                                        "a smaller max_side"):
        node("Stroke Timelapse").frames(painter, strokes, 10, 0, 11)
    loss = node("Pixel Loss").make(target_image(), "l1", 0.0, 1.0)[0][0]
    job = sys.modules["painter_models.painting.optimize"].PaintingJob
    monkeypatch.setattr(job, "run", lambda *a, **k: pytest.fail("painted"))
    with pytest.raises(NodeError, match="Optimize Actions: snapshots: .*raise snapshot_every"):
        optimize(painter, loss, steps=100, snapshot_every=1)
    with pytest.raises(NodeError, match="max_stroke_size 300 px is more than 4x the 64x48 canvas; use at most 256"):
        optimize(painter, loss, max_stroke_size=300)


@pytest.mark.parametrize("error, message", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 400000000000000 bytes. Error code 12 (Cannot allocate memory)"), "out of memory"),
    (MemoryError("Unable to allocate 728. TiB"), "out of memory"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory"), "out of GPU memory"),
])
def test_out_of_memory_is_a_clear_message_on_cpu_as_on_gpu(error, message):
    @common.user_errors("Some Node")
    def run():
        raise error
    with pytest.raises(NodeError, match=f"^Some Node: {message}: use fewer strokes, a smaller canvas"):
        run()


def test_cancel_reaches_every_long_node(painter, strokes, tmp_path, monkeypatch):
    import dataclasses
    monkeypatch.chdir(tmp_path)
    long_ones = [lambda: node("Render Strokes").render(painter, strokes, 1.0),
                 lambda: node("Blend Canvas").blend(torch.ones(1, 64, 96, 3), painter, strokes),
                 lambda: node("Stroke Timelapse").frames(painter, strokes, 4, 0, 0)]
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library
    try:
        load_library()
        long_ones.append(lambda: node("Re-render with MyPaint").rerender(strokes, 1.0, ""))
    except MyPaintUnavailable:
        pass
    over_image = dataclasses.replace(strokes, background_image=torch.rand(3, 64, 96))
    listed = node("Save Strokes").save(over_image, "np/photo")["result"][0]
    long_ones.append(lambda: node("Load Strokes").load(listed))
    for run in long_ones:
        adapter.request_interrupt()
        with pytest.raises(adapter.Interrupted):
            run()
        assert not adapter.interrupted()


@pytest.mark.slow
@pytest.mark.mypaint
@skip_no_mypaint
def test_optimize_actions_with_a_shipped_painter_at_a_realistic_size():
    """The shipped soft brush on a photograph (128 px, 48 strokes, the real brush in the loop): the
    painting is far nearer the photo than its mean colour, and is what Re-render with MyPaint paints."""
    import json
    import skimage.data
    from painter_models.metrics import psnr
    photo = torch.from_numpy(skimage.data.astronaut()[::2, ::2].copy()).float().div(255)[None]   # [1, 256, 256, 3]
    painter = node("Load Neural Painter").load("shipped/soft_brush.safetensors")[0]
    loss = node("Pixel Loss").make(photo, "l2", 0.0, 1.0)[0][0]
    strokes, image, _, text = node("Optimize Actions").optimize(painter, loss, size=128, strokes=48, rounds=2,
                                                                steps=40, seed=0)
    info = json.loads(text)
    assert image.shape == (1, 128, 128, 3) and len(strokes) == 48 and info["painted_by"] == "mypaint:deevad/brush"
    target = torch.nn.functional.interpolate(photo.permute(0, 3, 1, 2), size=(128, 128), mode="area")
    got = float(psnr(image.permute(0, 3, 1, 2), target))
    mean_colour = float(psnr(target.mean((2, 3), keepdim=True).expand_as(target), target))
    assert got >= mean_colour + 4.5, (got, mean_colour)      # 16.4 vs 10.4 dB measured; an optimiser that does not move: 6.6
    again = node("Re-render with MyPaint").rerender(strokes, 1.0)[0]
    assert (again - image).abs().max() <= 0.5 / 255 + 1e-6


def test_paint_video_node_paints_a_batch_as_a_clip():
    """Frames in as a batch; painted frames out as a batch, each frame's strokes as a list, carried over."""
    from skimage import data
    picture = torch.from_numpy(data.astronaut()[100:292:4, 60:300:4]).float() / 255     # 48 x 60
    frames = torch.stack([picture[:, 3 * t:3 * t + 48] for t in range(3)])
    widgets = dict(size=48, strokes=12, rounds=2, steps=6, learning_rate=0.2, refine_steps=2,
                   refine_learning_rate=0.1, seed=0, real_brush=True, time_limit=0.0, brush_seed=0)
    soft = node("Load Neural Painter").load(f"shipped/{shipped.DEFAULT_PAINTER}.safetensors")[0]
    painted, strokes, report = node("Paint Video").paint(soft, frames, **widgets)
    info = json.loads(report)
    assert node("Paint Video").OUTPUT_IS_LIST == (False, True, False)
    assert painted.shape == (3, 48, 48, 3) and len(strokes) == 3 and all(len(s) == 12 for s in strokes)
    assert info["frames"] == 3 and info["carried"][0] == 0 and info["carried"][2] >= 10
