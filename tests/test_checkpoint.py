"""Painter checkpoints: round trip, frozen loading, clear refusals of bad files, no pickle in the source."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from painter_models import NAKANO, CheckpointError, Generator, generator_config, load_painter, read_metadata, save_painter
from painter_models.brush.actions import ROLES, ActionLayout, Field
from painter_models.painter.checkpoint import FORMAT_VERSION, NeuralPainter, save_tensors

REPO = Path(__file__).resolve().parents[1]


def _actions(n=6, seed=0):
    return torch.from_numpy(NAKANO.sample(n, seed=seed))


def test_round_trip_gives_equal_outputs(tmp_painter, tiny_generator):
    painter = load_painter(tmp_painter)
    assert isinstance(painter, NeuralPainter)
    a = _actions()
    with torch.no_grad():
        want = tiny_generator(a)
        got = painter(a)
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert painter.layout == NAKANO and painter.stroke_size == 64
    assert painter.brush == "mypaint:classic/dry_brush" and painter.path == tmp_painter


def test_trained_weights_and_batch_norm_statistics_survive(tmp_path):
    torch.manual_seed(0)
    g = Generator(generator_config("tiny", noise_dim=4)).train()
    with torch.no_grad():   # move the weights and the BN running statistics away from their initial values
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for i in range(3):
            g(_actions(16, seed=i))
    assert g.fc_norm.num_batches_tracked == 3 and g.fc_norm.running_var.std() > 0
    g.eval()
    path = str(tmp_path / "trained.safetensors")
    save_painter(path, g, layout="nakano12", brush="raster:soft_round")
    p = load_painter(path)
    assert p.generator.config == g.config
    for (k, v), (k2, v2) in zip(g.state_dict().items(), p.generator.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    with torch.no_grad():
        torch.testing.assert_close(p(_actions())[1], g(_actions())[1], rtol=0, atol=0)


def test_loaded_painter_is_frozen_and_in_eval_mode(tmp_painter):
    p = load_painter(tmp_painter)
    assert not p.generator.training
    assert all(not m.training for m in p.generator.modules())
    assert all(not t.requires_grad for t in p.generator.parameters())
    # gradients still flow to the actions (painting optimises them through the frozen painter)
    a = _actions(2).requires_grad_(True)
    p(a)[1].sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(t.grad is None for t in p.generator.parameters())
    assert p.device == torch.device("cpu")


def test_metadata_carries_training_and_metrics(tmp_painter):
    meta = read_metadata(tmp_painter)
    assert meta["format"] == "neural-painter" and meta["format_version"] == FORMAT_VERSION
    assert meta["training"] == {"steps": 3, "strokes": 1000}
    assert meta["metrics"] == {"psnr": 21.5, "alpha_iou": 0.5}
    assert meta["layout"] == NAKANO.to_dict() and meta["stroke_size"] == 64
    assert meta["generator_config"]["channels"] == [32, 16, 16, 8]
    p = load_painter(tmp_painter)
    assert p.training == {"steps": 3, "strokes": 1000} and p.metrics["psnr"] == 21.5


def test_resaving_a_painter_keeps_and_updates_its_metadata(tmp_painter, tmp_path):
    p = load_painter(tmp_painter)
    again = str(tmp_path / "again.safetensors")
    save_painter(again, p)
    meta = read_metadata(again)   # the reach it painted with is written down (measured, as the file had none)
    assert meta.pop("reach") == p.reach.to_dict() and meta == read_metadata(tmp_painter)
    assert load_painter(again).reach == p.reach
    save_painter(again, p, metrics={"psnr": 30.0})
    meta = read_metadata(again)
    assert meta["metrics"] == {"psnr": 30.0} and meta["training"] == {"steps": 3, "strokes": 1000}


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, tiny_generator):
    path = tmp_path / "sub" / "p.safetensors"
    save_painter(str(path), tiny_generator, layout=NAKANO, brush="b")
    assert sorted(os.listdir(path.parent)) == ["p.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask   # an ordinary file, not mkstemp's 0600

    class Boom(Exception):
        pass

    def failing(tmp):
        Path(tmp).write_bytes(b"partial")
        raise Boom
    from painter_models.files import atomic_write
    with pytest.raises(Boom):
        atomic_write(str(path), failing)
    assert sorted(os.listdir(path.parent)) == ["p.safetensors"]
    load_painter(str(path))   # the old file is intact


def test_save_needs_layout_and_brush_for_a_bare_generator(tmp_path, tiny_generator):
    with pytest.raises(ValueError, match="needs the layout and the brush"):
        save_painter(str(tmp_path / "x.safetensors"), tiny_generator)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_painter(str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_painter(str(tmp_path))   # a directory is not a checkpoint either


@pytest.mark.parametrize("keep", [0.5, 0.99, 10])
def test_truncated_file(tmp_painter, tmp_path, keep):
    data = Path(tmp_painter).read_bytes()
    n = int(len(data) * keep) if keep < 1 else keep
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="truncated|damaged|not a readable"):
        load_painter(str(bad))


def test_random_bytes_and_empty_file(tmp_path):
    rnd = tmp_path / "random.safetensors"
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_painter(str(rnd))
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_painter(str(empty))
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, str(pickled))   # a pickle-based torch file is refused, not unpickled
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_painter(str(pickled))


def test_safetensors_that_is_not_a_painter(tmp_path):
    plain = tmp_path / "lora.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(CheckpointError, match="not a neural painter.*format=None"):
        load_painter(str(plain))
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"format": "pt"})   # plain-string metadata
    with pytest.raises(CheckpointError, match="not a neural painter.*'pt'"):
        load_painter(str(other))


def test_newer_format_version_is_refused(tmp_path, tiny_generator, tmp_painter):
    meta = read_metadata(tmp_painter)
    meta["format_version"] = FORMAT_VERSION + 1
    path = str(tmp_path / "future.safetensors")
    save_tensors(path, tiny_generator.state_dict(), meta)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}.*update comfyui-neural-painters"):
        load_painter(path)


def test_damaged_header_is_refused(tmp_path, tiny_generator, tmp_painter):
    meta = read_metadata(tmp_painter)
    del meta["generator_config"]
    path = str(tmp_path / "damaged.safetensors")
    save_tensors(path, tiny_generator.state_dict(), meta)
    with pytest.raises(CheckpointError, match="damaged painter header"):
        load_painter(path)
    meta = read_metadata(tmp_painter)
    meta["generator_config"]["channels"] = [8, 8]   # invalid architecture
    save_tensors(path, tiny_generator.state_dict(), meta)
    with pytest.raises(CheckpointError, match="damaged painter header.*stroke_size"):
        load_painter(path)


def test_layout_mismatch_is_refused(tmp_painter):
    other = ActionLayout("reversed12", tuple(Field(r, r) for r in reversed(ROLES)))
    with pytest.raises(CheckpointError, match="trained on action layout 'nakano12'.*'reversed12'"):
        load_painter(tmp_painter, layout=other)
    assert load_painter(tmp_painter, layout="nakano12").layout == NAKANO


def test_layout_and_generator_width_disagree(tmp_path, tmp_painter, tiny_generator):
    meta = read_metadata(tmp_painter)
    meta["layout"] = ActionLayout("six", tuple(Field(r, r) for r in ROLES[:6])).to_dict()
    path = str(tmp_path / "six.safetensors")
    save_tensors(path, tiny_generator.state_dict(), meta)
    with pytest.raises(CheckpointError, match="takes 12 numbers but its layout has 6"):
        load_painter(path)


def test_metadata_and_weights_disagree(tmp_path, tmp_painter):
    meta = read_metadata(tmp_painter)   # says "tiny"
    torch.manual_seed(0)
    bigger = Generator(generator_config("tiny", channels=(16, 16, 16, 8)))
    path = str(tmp_path / "mismatch.safetensors")
    save_tensors(path, bigger.state_dict(), meta)
    with pytest.raises(CheckpointError, match="weights do not match the architecture"):
        load_painter(path)
    state = Generator(generator_config("tiny")).state_dict()
    del state["head.bias"]
    save_tensors(path, state, meta)
    with pytest.raises(CheckpointError, match="weights do not match the architecture"):
        load_painter(path)


@pytest.mark.parametrize("edit, message", [
    ({"colour_indices": [100, 200, 300]}, "colour_indices must be 3 positions of the 12 action numbers"),
    ({"channels": [60000, 16, 16, 8]}, "channels must be 1..4096"),
    ({"noise_dim": -1}, "noise_dim must be an integer"),
    ({"stroke_size": 1 << 20}, "stroke_size must be an integer in 8..512"),
])
def test_implausible_metadata_is_refused_before_the_network_is_built(tmp_path, tmp_painter, tiny_generator,
                                                                      monkeypatch, edit, message):
    meta = read_metadata(tmp_painter)
    meta["generator_config"].update(edit)
    path = str(tmp_path / "lies.safetensors")
    save_tensors(path, tiny_generator.state_dict(), meta)
    monkeypatch.setattr("painter_models.painter.checkpoint.Generator", lambda *a: pytest.fail("network built"))
    with pytest.raises(CheckpointError, match=f"damaged painter header.*{message}"):
        load_painter(path)


def test_metadata_is_compared_with_the_tensor_shapes_before_the_weights_are_read(tmp_path, tmp_painter, monkeypatch):
    meta = read_metadata(tmp_painter)
    meta["generator_config"]["channels"] = [512, 16, 16, 8]     # plausible, but not what the file holds
    path = str(tmp_path / "lies.safetensors")
    save_tensors(path, Generator(generator_config("tiny")).state_dict(), meta)
    monkeypatch.setattr("painter_models.painter.checkpoint.load_file", lambda *a, **k: pytest.fail("weights read"))
    with pytest.raises(CheckpointError, match=r"do not match the architecture in its metadata \('fc.bias' is \[512\], "
                                              r"the metadata needs \[8192\]\)"):
        load_painter(path)


def test_non_finite_weights_are_refused(tmp_path, tmp_painter):
    state = Generator(generator_config("tiny")).state_dict()
    state["stages.0.weight"].view(-1)[3] = float("inf")
    path = str(tmp_path / "corrupt.safetensors")
    save_tensors(path, state, read_metadata(tmp_painter))
    with pytest.raises(CheckpointError, match="'corrupt.safetensors': weight 'stages.0.weight' holds NaN or infinite"):
        load_painter(path)


def test_painter_from_before_the_colour_option_loads_with_its_colour_head(tmp_path, tmp_painter):
    meta = read_metadata(tmp_painter)
    del meta["generator_config"]["colour"]          # written before GeneratorConfig.colour existed
    torch.manual_seed(0)
    old = Generator(generator_config("tiny", colour="residual"))
    with torch.no_grad():
        old.head.bias[1:] = 0.5                      # a learned colour residual the file must keep
    path = str(tmp_path / "old.safetensors")
    save_tensors(path, old.state_dict(), meta)
    p = load_painter(path)
    assert p.generator.config.colour == "residual"
    a = torch.full((1, 12), 0.5)
    torch.testing.assert_close(p.generator(a)[0], old.eval()(a)[0])


def test_stochastic_painter_round_trip_with_its_noise_and_reach(tmp_path):
    from painter_models.brush.actions import BrushReach
    torch.manual_seed(0)
    g = Generator(generator_config("tiny", noise_dim=8)).eval()
    with torch.no_grad():   # noise that paints, and projections unlike a fresh generator's
        g.grain_head.weight.normal_(0, 0.5)
        g.grain_gain.fill_(1.0)
        g.noise_phase.mul_(-1)
    path = str(tmp_path / "grainy.safetensors")
    save_painter(path, g, layout=NAKANO, brush="mypaint:classic/charcoal", reach=BrushReach(2.5, 3.75))
    meta = read_metadata(path)
    assert meta["format_version"] == FORMAT_VERSION == 2 and meta["generator_config"]["noise_dim"] == 8
    assert meta["reach"] == {"base": 2.5, "per_radius": 3.75}
    p = load_painter(path)
    assert p.reach == BrushReach(2.5, 3.75) and p.generator.config.noise_dim == 8
    a = _actions()
    with torch.no_grad():   # the saved projections, not a fresh generator's: the same grain for the same strokes
        torch.testing.assert_close(p(a)[1], g(a)[1], rtol=0, atol=0)
        assert (Generator(g.config).eval()(a)[1] - g(a)[1]).abs().max() > 1e-3


def test_painter_config_without_noise_dim_loads_deterministic(tmp_path, tmp_painter, tiny_generator):
    meta = read_metadata(tmp_painter)
    del meta["generator_config"]["noise_dim"]      # an older file
    meta["format_version"] = 1
    path = str(tmp_path / "v1.safetensors")
    save_tensors(path, tiny_generator.state_dict(), meta)
    assert load_painter(path).generator.config.noise_dim == 0


def test_format_1_painter_with_noise_is_refused_with_the_reason(tmp_path, tmp_painter):
    """Format 1 fixed a noise input at 0.5 (Nakano); its weights lack the projections of today's noise."""
    meta = read_metadata(tmp_painter)
    meta["format_version"] = 1
    meta["generator_config"]["noise_dim"] = 4
    path = str(tmp_path / "nakano_noise.safetensors")
    save_tensors(path, Generator(generator_config("tiny", noise_dim=4)).state_dict(), meta)
    with pytest.raises(CheckpointError, match="format-1 painter with noise inputs.*train it again"):
        load_painter(path)


def test_no_pickle_in_the_source():
    """torch.load only with weights_only=True, no pickle/dill/joblib, no np.load(allow_pickle=True)."""
    offenders = []
    roots = [REPO / d for d in ("painter_models", "training", "nodes", "bench")] + [REPO / "__init__.py"]
    files = [p for r in roots if r.exists() for p in ([r] if r.is_file() else r.rglob("*.py"))]
    assert any(p.name == "checkpoint.py" for p in files)
    for path in files:
        src = path.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", src):
            if "weights_only=True" not in m.group(0):
                offenders.append(f"{path.relative_to(REPO)}: {m.group(0)[:80]}")
        for pattern in (r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b", r"allow_pickle\s*=\s*True",
                        r"\bpickle\.loads?\(", r"torch\.jit\.load\("):
            for m in re.finditer(pattern, src, re.M):
                offenders.append(f"{path.relative_to(REPO)}: {m.group(0).strip()}")
    assert not offenders, "pickle-based loading in the source:\n" + "\n".join(offenders)
