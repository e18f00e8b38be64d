"""The training scripts at tiny scale (32 px, the torch rasteriser's strokes, tiny models)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from painter_models.painter.checkpoint import load_painter, read_metadata, save_painter
from neural_painters_training.cli import main as train_main
from neural_painters_training.freezing import is_frozen
from neural_painters_training.training_state import (load_state, load_tensors, optimizer_from_flat, optimizer_to_flat,
                                                     save_state)
from neural_painters_training.data import BatchOrder, load_set, render_set, save_set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--config", "tiny", "--batch-size", "16", "--no-progress", "--threads", "1"]
RECON = ["--backbone", "efficientnet_lite0", "--backbone-layers", "stage1,stage2"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", NEURAL_PAINTERS_OFFLINE="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    train = render_set("raster", 192, 32, seed=0)
    held = render_set("raster", 32, 32, seed=99)
    save_set(str(d / "train.safetensors"), train)
    save_set(str(d / "heldout.safetensors"), held)
    return str(d / "train.safetensors"), str(d / "heldout.safetensors")


def _stage_args(data, out, steps, *extra):
    train, held = data
    return ["--data", train, "--heldout", held, "--out", str(out), "--steps", str(steps), "--log-every", "2",
            "--eval-every", "4", "--sample-every", "4", *FAST, *extra]


def _pretrain(data, out, steps=6, *extra):
    train_main(["pretrain-generator", *_stage_args(data, out, steps, *RECON, *extra)])
    return os.path.join(str(out), "generator.safetensors")


def test_batch_order_is_deterministic_and_rank_split():
    o = BatchOrder(50, 8, seed=3)
    again = BatchOrder(50, 8, seed=3)
    assert all(np.array_equal(o.indices(p), again.indices(p)) for p in range(20))
    # one epoch of 50 with batch 8: positions 0..5 cover 48 distinct samples
    seen = np.concatenate([o.indices(p) for p in range(6)])
    assert len(set(seen.tolist())) == 48
    # two ranks together see exactly the single-process batch
    r0, r1 = BatchOrder(50, 8, 3, 0, 2), BatchOrder(50, 8, 3, 1, 2)
    for p in range(12):
        assert sorted(np.concatenate([r0.indices(p), r1.indices(p)]).tolist()) == sorted(o.indices(p).tolist())


def test_optimizer_state_round_trip(tmp_path):
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    t, meta = optimizer_to_flat("o", opt)
    m2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(m2.parameters(), lr=0.5)
    optimizer_from_flat("o", opt2, t, json.loads(json.dumps(meta)))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for f in s1["state"][k]:
            assert torch.equal(torch.as_tensor(s1["state"][k][f]), torch.as_tensor(s2["state"][k][f]))
    # full state file: modules, optimisers, RNG
    path = str(tmp_path / "state.safetensors")
    torch.manual_seed(5)
    save_state(path, {"m": m}, {"m": opt}, {"step": 3, "data_position": 3})
    expected = torch.rand(3)
    torch.manual_seed(0)
    meta = load_state(path, {"m": m2}, {"m": opt2}, "cpu")
    assert meta["step"] == 3 and torch.equal(torch.rand(3), expected)
    assert torch.equal(m.weight, m2.weight)


def test_pretrain_generator_writes_loadable_checkpoints(data, tmp_path):
    out = tmp_path / "g"
    path = _pretrain(data, out, 6, "--checkpoint-every", "3")
    painter = load_painter(path)
    assert is_frozen(painter.generator)
    meta = read_metadata(path)
    assert meta["training"]["steps"] == 6 and meta["training"]["data_size"] == 192
    assert "psnr" in meta["metrics"] and "alpha_iou" in meta["metrics"]
    tensors, state = load_tensors(str(out / "state.safetensors"))
    assert state["step"] == 6 and state["data_position"] == 6 and state["done"]
    assert any(k.startswith("opt_generator.state.") for k in tensors) and "rng.torch" in tensors
    records = [json.loads(l) for l in open(out / "metrics.jsonl")]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert any("eval_psnr" in r for r in records)
    for f in ("metrics.png", "samples/step_0000004.png", "samples/final.png"):
        assert (out / f).exists(), f
    # a finished stage run again does nothing
    before = (out / "state.safetensors").stat().st_mtime_ns
    _pretrain(data, out, 6)
    assert (out / "state.safetensors").stat().st_mtime_ns == before


def test_init_from_a_colour_residual_painter_keeps_its_alpha(data, tmp_path):
    old = load_painter(_pretrain(data, tmp_path / "residual", 2, "--colour", "residual"))
    assert old.generator.config.colour == "residual" and old.generator.head.out_channels == 4
    with torch.no_grad():
        old.generator.head.bias[0] = 2.0   # strokes unlike a fresh start (bias -3: nearly blank)
    save_painter(old.path, old)
    old = load_painter(old.path)
    new = load_painter(_pretrain(data, tmp_path / "action", 1, "--init", old.path, "--lr", "1e-9"))
    assert new.generator.config.colour == "action" and new.generator.head.out_channels == 1
    a = torch.from_numpy(load_set(data[1])[0].actions[:16])
    with torch.no_grad():
        (new_colour, new_alpha), (_, old_alpha) = new.generator(a), old.generator(a)
    torch.testing.assert_close(new_colour, a[:, 6:9, None, None].expand(-1, -1, 32, 32), rtol=0, atol=0)
    # one step at lr 1e-9 (only batch-norm statistics move): the alpha channel came over from the old head
    assert (new_alpha - old_alpha).abs().mean() < 0.01
    with pytest.raises(SystemExit, match="no colour head"):   # no colour head to start a residual one from
        _pretrain(data, tmp_path / "back", 1, "--init", new.path, "--colour", "residual")
    # without training: `freeze --colour-from-action` converts the painter, alpha bit for bit
    converted = str(tmp_path / "converted.safetensors")
    train_main(["freeze", "--generator", old.path, "--out", converted, "--colour-from-action"])
    conv = load_painter(converted)
    assert conv.generator.config.colour == "action" and read_metadata(converted)["training"]["colour"] == "action"
    with torch.no_grad():
        colour, alpha = conv.generator(a)
    torch.testing.assert_close(alpha, old_alpha, rtol=0, atol=0)
    torch.testing.assert_close(colour, a[:, 6:9, None, None].expand(-1, -1, 32, 32), rtol=0, atol=0)


def test_texture_ratio_sees_what_psnr_rewards_smoothing_away():
    from neural_painters_training.evaluate import repeatability_ceiling
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(8, 1, 32, 32, generator=g) < 0.5).float() * 0.8           # a grainy brush
    rgba = torch.cat([alpha * 0.2, alpha * 0.2, alpha * 0.2, alpha], 1)
    real = (rgba.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    smooth = torch.nn.functional.avg_pool2d(rgba, 5, 1, 2, count_include_pad=False)   # its average
    smooth = (smooth.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    same = repeatability_ceiling(real, real)
    assert same["texture_ratio"] == pytest.approx(1.0) and same["psnr"] > 99
    blurred = repeatability_ceiling(real, smooth)     # "other" rendering = the smooth one
    assert blurred["texture_ratio"] < 0.2
    other = (torch.rand(8, 1, 32, 32, generator=g) < 0.5).float() * 0.8           # the same brush, other grain
    other = (torch.cat([other * 0.2] * 3 + [other], 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    resampled = repeatability_ceiling(real, other)
    assert resampled["texture_ratio"] == pytest.approx(1.0, abs=0.05)
    assert resampled["psnr"] < blurred["psnr"]        # PSNR prefers the blur; texture_ratio does not


def test_pixel_term_weights_stroke_pixels():
    from neural_painters_training.losses import ReconstructionLoss
    real_rgb = torch.ones(1, 3, 8, 8)
    real_alpha = torch.zeros(1, 1, 8, 8)
    real_alpha[..., 3, :] = 1
    real_rgb[..., 3, :] = 0  # a thin black line
    blank_colour, blank_alpha = torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    plain = ReconstructionLoss(stroke_weight=0.0)(blank_colour, blank_alpha, real_rgb, real_alpha)[0]
    weighted = ReconstructionLoss(stroke_weight=10.0)(blank_colour, blank_alpha, real_rgb, real_alpha)[0]
    assert weighted == pytest.approx(11 * plain)  # the blank answer costs 11x more


def test_edge_term_asks_a_deterministic_painter_for_the_brushs_edges():
    """The edge term is nothing on the brush's own stroke and grows as the edge softens; its gradient moves a
    soft stroke towards the brush's (squared error falls too)."""
    from neural_painters_training.losses import ReconstructionLoss
    from painter_models.metrics import over_white
    real_alpha = torch.zeros(1, 1, 16, 16)
    real_alpha[..., 4:12, 4:12] = 1
    black = torch.zeros(1, 3, 16, 16)
    real_rgb = over_white(black, real_alpha)
    edge = ReconstructionLoss(pixel_weight=0.0, alpha_weight=0.0, edge_weight=1.0)
    soft = lambda k: torch.nn.functional.avg_pool2d(real_alpha, k, 1, k // 2, count_include_pad=False)
    term = lambda alpha: float(edge(black, alpha, real_rgb, real_alpha)[1]["edge"])
    assert term(real_alpha) == 0 < term(soft(3)) < term(soft(5))
    alpha = soft(3).requires_grad_(True)
    edge(black, alpha, real_rgb, real_alpha)[0].backward()
    stepped = (alpha - 0.05 * alpha.grad / alpha.grad.abs().max()).clamp(0, 1).detach()
    error = lambda a: float(((over_white(black, a) - real_rgb) ** 2).mean())
    assert term(stepped) < term(soft(3)) and error(stepped) < error(soft(3))


def _train_cmd(data, out, steps, *extra):
    return [sys.executable, "-m", "training.cli", "pretrain-generator",
            *_stage_args(data, out, steps, "--checkpoint-every", "4", "--checkpoint-seconds", "0", *RECON, *extra)]


def test_sigkill_resume_matches_uninterrupted_run(data, tmp_path):
    steps = 24
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(_train_cmd(data, ref, steps), check=True, env=_env(), cwd=ROOT, timeout=600)
    proc = subprocess.Popen(_train_cmd(data, cut, steps), env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = cut / "state.safetensors"
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                step = load_tensors(str(state))[1]["step"]
            except Exception:  # noqa: BLE001 - mid-rename on some filesystems; try again
                step = 0
            if step >= 8:
                proc.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None and killed_at < steps, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    _, meta = load_tensors(str(state))
    assert not meta["done"] and meta["step"] % 4 == 0
    subprocess.run(_train_cmd(data, cut, steps), check=True, env=_env(), cwd=ROOT, timeout=600)
    t_ref, m_ref = load_tensors(str(ref / "state.safetensors"))
    t_cut, m_cut = load_tensors(str(cut / "state.safetensors"))
    assert m_cut["step"] == m_ref["step"] == steps and m_cut["data_position"] == m_ref["data_position"]
    # same data order, same RNG, same optimiser state: on the CPU with one thread the weights agree
    for k, v in t_ref.items():
        if k.startswith(("generator.", "opt_generator.")):
            assert torch.allclose(v.float(), t_cut[k].float(), rtol=1e-5, atol=1e-6), k
    steps_logged = [json.loads(l)["step"] for l in open(cut / "metrics.jsonl") if '"loss"' in l]
    assert steps_logged == sorted(set(steps_logged)) and steps_logged[-1] == steps


def test_freeze_really_freezes_and_critic_pretraining(data, tmp_path):
    from neural_painters_training.stages import freeze_generator
    g_path = _pretrain(data, tmp_path / "g", 2)
    g = freeze_generator(g_path)
    assert is_frozen(g) and not g.training and all(not p.requires_grad for p in g.parameters())
    c_out = tmp_path / "c"
    train_main(["pretrain-critic", *_stage_args(data, c_out, 4, "--generator", g_path)])
    # the generator file is untouched and the critic checkpoint loads
    g_after = load_painter(g_path).generator
    for (k, v), (k2, v2) in zip(g.state_dict().items(), g_after.state_dict().items()):
        assert torch.equal(v, v2), k
    from neural_painters_training.stages import load_critic
    critic = load_critic(str(c_out / "critic.safetensors"), "cpu")
    assert critic.config.conditional and critic.config.in_channels == 4
    recs = [json.loads(l) for l in open(c_out / "metrics.jsonl") if '"loss"' in l]
    assert recs and "accuracy" in recs[-1]


def test_frozen_generator_gets_no_gradient_inside_critic_stage(data, tmp_path):
    """Inside the critic stage the generator's parameters and batch-norm statistics do not move."""
    from neural_painters_training.cli import build_parser
    from neural_painters_training.distributed import Dist
    from neural_painters_training.options import stage_options
    from neural_painters_training.stages import PretrainCritic
    g_path = _pretrain(data, tmp_path / "g", 2)
    args = build_parser().parse_args(["pretrain-critic", *_stage_args(data, tmp_path / "c2", 3, "--generator", g_path)])
    train, held = load_set(data[0])[0], load_set(data[1])[0]
    options = stage_options(args, out=args.out, steps=args.steps, lr=args.lr, schedule="constant", budget=None,
                            batch=args.batch_size, extra={"config": "tiny", "generator": g_path})
    stage = PretrainCritic(options, train, held, Dist("cpu"))
    stage.build()
    stage.wrap()
    before = {k: v.clone() for k, v in stage.generator.state_dict().items()}
    for step in range(3):
        stage.train_step(step)
    assert is_frozen(stage.generator)
    assert all(p.grad is None for p in stage.generator.parameters())
    for k, v in stage.generator.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("mode", ["bce", "wgan-gp"])
def test_gan_modes_run(data, tmp_path, mode):
    g_path = _pretrain(data, tmp_path / "g", 2)
    c_out = tmp_path / "c"
    train_main(["pretrain-critic", *_stage_args(data, c_out, 2, "--generator", g_path)])
    out = tmp_path / mode
    train_main(["gan", *_stage_args(data, out, 3, "--generator", g_path, "--critic",
                                    str(c_out / "critic.safetensors"), "--gan", mode, *RECON)])
    g0 = load_painter(g_path).generator.state_dict()
    g1 = load_painter(str(out / "generator.safetensors")).generator.state_dict()
    assert any(not torch.equal(g0[k], g1[k]) for k in g0)
    recs = [json.loads(l) for l in open(out / "metrics.jsonl") if '"loss"' in l]
    assert "feature" in recs[-1] and "adversarial" in recs[-1]
    assert ("wasserstein" in recs[-1]) == (mode == "wgan-gp")
    _, meta = load_tensors(str(out / "state.safetensors"))
    n_critic = 5 if mode == "wgan-gp" else 1
    assert meta["data_position"] == 3 * (n_critic + 1)


def test_recipe_tiny_end_to_end(tmp_path):
    out = tmp_path / "recipe"
    train_main(["recipe", "--brush", "raster", "--out", str(out), "--config", "tiny", "--size", "32",
                "--data-size", "256", "--heldout-size", "32", "--pretrain-steps", "6", "--critic-steps", "2",
                "--gan-steps", "2", "--batch-size", "16", "--backbone-layers", "stage1,stage2", "--no-progress",
                "--eval-every", "3", "--sample-every", "3", "--threads", "1", "--workers", "1"])
    painter = load_painter(str(out / "painter.safetensors"))
    assert painter.stroke_size == 32 and painter.brush == "raster:soft_round"
    for k in ("psnr", "ssim", "alpha_iou", "psnr_per_stroke"):
        assert k in painter.metrics
    t = painter.training
    assert t["data_size"] == 256 - 0 and t["stage_steps"] == {"pretrain_generator": 6, "pretrain_critic": 2, "gan": 2}
    assert t["wall_time_s"] > 0 and "hardware" in t and t["exported"] in ("gan", "pretrained")
    assert (out / "eval" / "grid.png").exists() and (out / "MODEL_CARD.md").exists()
    assert load_painter(str(out / "2_frozen_generator.safetensors")).training["frozen"] is True
    summary = json.load(open(out / "recipe.json"))
    assert summary["metrics"]["psnr"] == pytest.approx(painter.metrics["psnr"])
    # trained further from the recipe's painter, then shipped with its record of what was done after the recipe
    tuned = tmp_path / "tuned"
    command = ["pretrain-generator", "--init", str(out / "painter.safetensors"), "--data", str(out / "data"),
               "--heldout", str(out / "heldout.safetensors"), "--out", str(tuned), "--config", "tiny",
               "--steps", "3", "--batch-size", "16", "--edge-weight", "2", "--backbone", "none", "--no-progress",
               "--threads", "1"]
    train_main(command)
    assert read_metadata(str(tuned / "generator.safetensors"))["training"]["command"].endswith(" ".join(command[-3:]))
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([{"what": "edges", "generator": str(tuned / "generator.safetensors"),
                                  "command": "neural-painters-train " + " ".join(command)}]))
    shipped = tmp_path / "ship" / "raster.safetensors"
    shipped.parent.mkdir()
    from painter_models.brush.ink import InkBySize          # an ink record on the base (any): shipped with it
    base = load_painter(str(out / "painter.safetensors"))
    base.ink = InkBySize(tile=32, fit={"brush": "classic/dry_brush", "tile": 32, "strokes": 1, "check_strokes": 1,
                                      "sides": [8], "psnr_before": {"8": 20.0}, "psnr_after": {"8": 30.0}})
    save_painter(str(out / "painter.safetensors"), base)
    train_main(["ship", "--base", str(out / "painter.safetensors"), "--steps", str(steps),
                "--heldout", str(out / "heldout.safetensors"), "--out", str(shipped)])
    final = load_painter(str(shipped))
    tuned_state = load_painter(str(tuned / "generator.safetensors")).generator.state_dict()
    assert all(torch.equal(v, tuned_state[k]) for k, v in final.generator.state_dict().items())
    assert final.training["stage_steps"] == t["stage_steps"]           # the recipe's record, kept
    assert final.training["after_recipe"][0]["steps"] == 3 and final.training["after_recipe"][0]["what"] == "edges"
    assert final.metrics["psnr"] != painter.metrics["psnr"] and final.reach == painter.reach
    card = (tmp_path / "ship" / "raster.md").read_text()
    assert "## After the recipe" in card and f"| psnr | {final.metrics['psnr']:.4f} |" in card
    assert sorted(os.listdir(shipped.parent)) == ["raster.md", "raster.safetensors", "raster_grid.png"]
    assert final.ink.to_dict() == base.ink.to_dict() and "## Ink by box size" in card


@pytest.mark.mypaint
@pytest.mark.parametrize("strokes,pretrain_strokes", [("whole", None), ("uniform", None), ("whole", "uniform"),
                                                      ("whole", "both")])
def test_recipe_mypaint_tiny_with_ceiling(tmp_path, monkeypatch, strokes, pretrain_strokes):
    from painter_models.brush.mypaint import MyPaintUnavailable, load_library
    try:
        load_library()
    except MyPaintUnavailable as e:
        pytest.skip(str(e))
    import neural_painters_training.recipe as recipe
    trained_on = {}     # stage -> how many training strokes, and the reach they were made whole for (None: uniform)

    def recording(stage):
        class Recording(stage):
            def __init__(self, opts, data, *rest):
                trained_on[stage.__name__] = (len(data), data.info.get("reach"))
                super().__init__(opts, data, *rest)
        return Recording
    for name in ("PretrainGenerator", "PretrainCritic", "GAN"):
        monkeypatch.setattr(recipe, name, recording(getattr(recipe, name)))
    out = tmp_path / "mp"
    train_main(["recipe", "--brush", "classic/dry_brush", "--out", str(out), "--config", "tiny", "--size", "32",
                "--data-size", "256", "--heldout-size", "32", "--pretrain-steps", "4", "--critic-steps", "1",
                "--gan-steps", "1", "--batch-size", "16", "--backbone-layers", "stage1", "--no-progress",
                "--threads", "1", "--workers", "1", "--strokes", strokes]
               + (["--pretrain-strokes", pretrain_strokes] if pretrain_strokes else [])
               + ["--ink-strokes", "40" if strokes == "whole" and not pretrain_strokes else "0"])
    painter = load_painter(str(out / "painter.safetensors"))
    if strokes == "whole" and not pretrain_strokes:    # the brush's ink by box size, measured for the 32 px tile
        assert painter.ink.tile == 32 and painter.ink.fit["strokes"] == 40 and painter.ink.fit["check_strokes"] == 16
        assert "## Ink by box size" in (out / "MODEL_CARD.md").read_text()
    else:
        assert painter.ink is None
    m = painter.metrics
    # the ceiling is MyPaint against itself with brush seed 1, on the held-out strokes: recomputed here
    from painter_models.metrics import psnr_of_mse, rgba_to_tensors
    held, extra = load_set(str(out / "heldout.safetensors"))
    seed0, seed1 = rgba_to_tensors(held.strokes)[0], rgba_to_tensors(extra["strokes_seed1"])[0]
    assert m["ceiling_psnr"] == pytest.approx(float(psnr_of_mse(((seed0 - seed1) ** 2).double().mean())), abs=0.01)
    assert m["psnr_gap_to_ceiling"] == pytest.approx(m["ceiling_psnr"] - m["psnr"]) and "ceiling_ssim" in m
    # the critic-free distribution check beside MyPaint against itself, and where the painter stands
    assert 0 <= m["ceiling_feature_distance"] < m["feature_distance"] and set(m["bar"]) >= {"meets_bar", "shortfall_db"}
    # the brush's measured reach travels with the painter, and the held-out strokes (where the bar is
    # measured) are whole in their tile, whatever the training strokes: no held-out stroke touches its
    # tile's edge (the ground truth is never cut off); uniform training strokes are cut by theirs
    from painter_models.brush.mypaint import brush_reach
    assert read_metadata(str(out / "painter.safetensors"))["reach"] == brush_reach("classic/dry_brush").to_dict()
    assert painter.training["strokes"] == strokes
    assert painter.training["pretrain_strokes"] == (pretrain_strokes or strokes)
    whole = painter.reach.to_dict()
    later = (256, whole if strokes == "whole" else None)
    step1 = {None: later, "uniform": (256, None), "both": (512, None)}[pretrain_strokes]
    assert trained_on == {"PretrainGenerator": step1, "PretrainCritic": later, "GAN": later}
    from neural_painters_training.datasets import load_arrays
    _, train_strokes, manifest = load_arrays(str(out / "data"))
    assert manifest["reach"] == (whole if strokes == "whole" else None)
    if pretrain_strokes:
        assert load_arrays(str(out / "data_uniform"))[2]["reach"] is None
        assert "step 1 (pre-training) was trained on" in (out / "MODEL_CARD.md").read_text()

    def edge(s):
        return np.concatenate([s[:, 0, :, 3], s[:, -1, :, 3], s[:, :, 0, 3], s[:, :, -1, 3]], 1).max()
    for s in (held.strokes, extra["strokes_seed1"]) + ((train_strokes,) if strokes == "whole" else ()):
        assert edge(s) == 0 and s[..., 3].max() > 0
    if strokes == "uniform":
        assert edge(train_strokes) > 0
        assert "the training strokes were uniform" in (out / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_torchrun_two_cpu_processes(data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.cli", "pretrain-generator",
           *_stage_args(data, out, 4, "--checkpoint-every", "2", "--device", "cpu", *RECON)]
    r = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _, meta = load_tensors(str(out / "state.safetensors"))
    assert meta["world_size"] == 2 and meta["step"] == 4 and meta["done"]
    assert load_painter(str(out / "generator.safetensors")).training["world_size"] == 2
    # resumes under torchrun too: 2 more steps
    cmd[cmd.index("--steps") + 1] = "6"
    r = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert load_tensors(str(out / "state.safetensors"))[1]["step"] == 6


# -- stochastic painters, the bar and the export criterion (issue 10) ---------------------------------
def test_texture_loss_asks_for_the_amount_of_grain_not_its_place():
    from neural_painters_training.losses import texture_loss
    g = torch.Generator().manual_seed(0)
    grain = lambda: 1 - 0.5 * (torch.rand(4, 1, 32, 32, generator=g) < 0.3).float().expand(-1, 3, -1, -1)
    real, other = grain(), grain()                              # the same brush, grain elsewhere
    smooth = torch.nn.functional.avg_pool2d(real, 5, 1, 2, count_include_pad=False)
    assert texture_loss(other, real) < 0.01 < texture_loss(smooth, real)
    smooth.requires_grad_(True)
    texture_loss(smooth, real).backward()                      # its gradient roughens the smooth strokes
    rougher = (smooth - 0.05 * smooth.grad / smooth.grad.abs().max()).detach()
    assert texture_loss(rougher, real) < texture_loss(smooth.detach(), real)


def test_bar_and_export_choice_weigh_texture_not_psnr_alone():
    from neural_painters_training.evaluate import bar
    from neural_painters_training.recipe import choose_export
    ceiling = {"ceiling_psnr": 31.0, "ceiling_texture_ratio": 1.0}
    smooth = {"psnr": 31.8, "texture_ratio": 0.3, **ceiling}      # the brush's mean: high PSNR, no grain
    grainy = {"psnr": 30.7, "texture_ratio": 0.95, **ceiling}     # real grain, within 0.5 dB of the ceiling
    rough = {"psnr": 29.0, "texture_ratio": 1.6, **ceiling}
    for m in (smooth, grainy, rough):
        m["bar"] = bar(m)
    assert grainy["bar"]["meets_bar"] and grainy["bar"]["shortfall_db"] == 0
    assert smooth["bar"]["meets_psnr"] and not smooth["bar"]["meets_texture"]
    assert smooth["bar"]["shortfall_db"] == pytest.approx(5 * np.log(0.8 / 0.3))
    assert rough["bar"]["shortfall_db"] == pytest.approx(1.5 + 5 * np.log(1.6 / 1.25))
    assert bar(grainy)["texture_band"] == [0.8, 1.25] and bar(grainy)["psnr_bar"] == 30.5
    assert choose_export({"pretrained": smooth, "gan": grainy, "gan_best": rough}, "best") == "gan"
    assert choose_export({"pretrained": smooth, "gan": rough}, "best") == "gan"   # 2.0 dB short vs 4.9
    assert choose_export({"pretrained": smooth, "gan": grainy}, "pretrained") == "pretrained"
    no_ceiling = {"pretrained": {"psnr": 20.0}, "gan": {"psnr": 21.0}}            # e.g. the rasteriser
    assert choose_export(no_ceiling, "best") == "gan"


def test_frechet_feature_distance():
    from neural_painters_training.evaluate import frechet_distance
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    shifted, wider = b + 1.0, b * 2.0
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    d_same = frechet_distance(a, b)
    assert d_same < 0.3 < frechet_distance(a, shifted) and frechet_distance(a, shifted) == pytest.approx(6, rel=0.15)
    assert frechet_distance(a, wider) > 4 * d_same


@pytest.fixture(scope="module")
def grainy_data(tmp_path_factory):
    """The rasteriser's strokes with a random grain in their paint (a stand-in for a textured brush)."""
    d = tmp_path_factory.mktemp("grainy")
    paths = []
    for name, n, seed in (("train", 192, 0), ("heldout", 32, 99)):
        s = render_set("raster", n, 32, seed=seed)
        keep = np.random.default_rng(seed).random(s.strokes.shape[:3] + (1,)) < 0.6
        s.strokes[:] = s.strokes * keep
        save_set(str(d / f"{name}.safetensors"), s)
        paths.append(str(d / f"{name}.safetensors"))
    return tuple(paths)


def test_gan_mode_of_a_stochastic_painter_learns_to_paint_grain(grainy_data, tmp_path):
    """GAN mode on a painter with noise inputs (added to a deterministic pre-trained one): the texture
    term opens the grain (its gains in a faster Adam group), and the generator nearest the bar is kept."""
    from neural_painters_training.cli import build_parser
    from neural_painters_training.distributed import Dist
    from neural_painters_training.options import stage_options
    from neural_painters_training.evaluate import painter_strokes
    from neural_painters_training.stages import BEST_GENERATOR, GAN, GRAIN_LR_SCALE, with_noise_inputs
    from painter_models.painter.model import Generator
    from dataclasses import replace
    base = load_painter(_pretrain(grainy_data, tmp_path / "g", 2))
    g = Generator(replace(base.generator.config, noise_dim=8))
    g.load_state_dict(with_noise_inputs(base.generator.state_dict(), g))
    init = str(tmp_path / "noisy.safetensors")
    save_painter(init, g.eval(), layout=base.layout, brush=base.brush)
    held = load_set(grainy_data[1])[0]
    a = held.actions[:8]
    torch.testing.assert_close(painter_strokes(g, a)[0], painter_strokes(base.generator, a)[0])  # silent at first
    out = tmp_path / "gan"
    args = build_parser().parse_args(["gan", *_stage_args(grainy_data, out, 12, "--generator", init, *RECON, "--lr", "3e-3")])
    texture_of_grain = {"psnr": 20.0, "texture_ratio": 1.0}
    options = stage_options(args, out=args.out, steps=args.steps, lr=args.lr, schedule="constant", budget=None,
                            batch=args.batch_size, extra={"config": "tiny", "generator": init, "gan": "bce",
                                                          "ceiling": texture_of_grain, "backbone": "none"})
    stage = GAN(options, load_set(grainy_data[0])[0], held, Dist("cpu"))
    stage.run()
    groups = stage.optimizers["generator"].param_groups
    assert [gr.get("lr_scale", 1.0) for gr in groups] == [1.0, GRAIN_LR_SCALE] and len(groups[1]["params"]) == 3
    assert stage.texture_weight == 1.0                     # GAN mode of a stochastic painter: texture term on
    recs = [json.loads(l) for l in open(out / "metrics.jsonl") if '"loss"' in l]
    assert all("texture" in r for r in recs) and recs[-1]["texture"] < recs[0]["texture"]
    trained = load_painter(str(out / "generator.safetensors")).generator
    assert float(trained.grain_gain.abs().max()) > 0.03                       # the grain opened
    one, two = painter_strokes(trained, a, noise_seed=1)[0], painter_strokes(trained, a, noise_seed=2)[0]
    assert (one - two).abs().max() > 0.01                                     # another draw, other grain
    best = stage.summary["best"]
    assert os.path.exists(out / BEST_GENERATOR) and best["shortfall_db"] == min(
        r["eval_shortfall_db"] for r in map(json.loads, open(out / "metrics.jsonl")) if "eval_shortfall_db" in r)
