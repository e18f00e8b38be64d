"""The four steps of the recipe, each a resumable stage:

1. `pretrain_generator`: non-adversarial, feature loss + stroke-weighted pixel/alpha loss.
2. `freeze_generator`: the pre-trained generator frozen for real (parameters and eval mode).
3. `pretrain_critic`: the critic as a BCE classifier, real strokes vs G(a) from the frozen G.
4. `gan`: both continue adversarially (BCE as Libre AI, or WGAN-GP as Nakano), the generator
   keeping its reconstruction (feature + pixel) loss.

A stage writes into its own folder: state.safetensors (resumable), metrics.jsonl + metrics.png,
samples/*.png, and its product (generator.safetensors: a painter checkpoint; critic.safetensors).
Running a stage again continues from its state; a finished stage returns at once.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn

from painter_models.brush.actions import BrushReach
from painter_models.painter.checkpoint import load_painter, read_metadata, save_painter
from painter_models.metrics import over_white, rgba_to_tensors
from painter_models.painter.model import (Critic, CriticConfig, Generator, config_to_dict, critic_config,
                                  generator_config)

from . import losses as L
from .distributed import Dist, autocast, hardware, unwrap
from .freezing import freeze, is_frozen, unfreeze
from .randomness import seed_everything, step_generator
from .run_log import MetricsLog, Timer, plot_metrics, save_grid
from .training_state import STATE_FILE, StopFlag, atomic_save, load_state, load_tensors, save_state
from .data import Batches, StrokeArrays
from .evaluate import bar, evaluate_generator, painter_strokes

BEST_GENERATOR = "best_generator.safetensors"   # the GAN stage's generator nearest the bar


# -- model configs at any stroke size -----------------------------------------------------------
def _channels_for(channels, size: int):
    stages = int(round(math.log2(size / 4)))
    if 4 * 2 ** stages != size:
        raise SystemExit(f"stroke size {size} px is not 4 * a power of two (32, 64, 128, ...)")
    ch = list(channels)
    while len(ch) > stages:   # smaller strokes: drop the widest stage
        ch.pop(0)
    while len(ch) < stages:   # larger strokes: one more, narrower stage
        ch.append(max(8, ch[-1] // 2))
    return tuple(ch)


def make_generator_config(name: str, size: int, action_dim: int = 12, prior: str | None = None,
                          colour: str | None = None, noise_dim: int = 0):
    from painter_models.painter.model import GENERATOR_CONFIGS
    base = GENERATOR_CONFIGS[name]["channels"] if name in GENERATOR_CONFIGS else None
    if base is None:
        raise SystemExit(f"unknown --config {name!r}; choose from {sorted(GENERATOR_CONFIGS)}")
    return generator_config(name, channels=_channels_for(base, size), stroke_size=size, action_dim=action_dim,
                            prior=prior or "none", colour=colour or "action", noise_dim=int(noise_dim or 0))


def make_critic_config(name: str, size: int, action_dim: int = 12, conditional: bool = True):
    from painter_models.painter.model import CRITIC_CONFIGS
    name = name if name in CRITIC_CONFIGS else "nakano"
    ch = list(CRITIC_CONFIGS[name]["channels"])
    while size // 2 ** len(ch) < 2 and len(ch) > 1:
        ch.pop()
    return critic_config(name, channels=tuple(ch), stroke_size=size, action_dim=action_dim, conditional=conditional)


# -- the options every stage takes -----------------------------------------------------------------
@dataclass
class StageOptions:
    out: str
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    betas: tuple = (0.5, 0.9)
    schedule: str = "cosine"          # cosine (to 5 %) or constant
    warmup: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True                  # bf16 autocast, CUDA only
    time_budget: float = 0.0          # seconds; 0 = none. The schedule follows max(step, time) progress
    clock: str = "wall"               # what time_budget counts: wall seconds, or this process's CPU seconds
                                      # (a fair share on a machine other jobs load unevenly)
    checkpoint_every: int = 500       # steps
    checkpoint_seconds: float = 120.0
    log_every: int = 10
    eval_every: int = 250
    sample_every: int = 500
    eval_count: int = 256
    resume: bool = True
    progress: bool = True
    export_every: int = 0             # steps; 0 = only at the end
    extra: dict = field(default_factory=dict)


def _progress(step, steps, elapsed, budget):
    p = step / steps if steps else 0.0
    if budget and budget > 0:
        p = max(p, elapsed / budget)
    return p


def _lr_factor(progress, schedule, step, warmup):
    f = 1.0
    if schedule == "cosine":
        f = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if warmup and step < warmup:
        f *= (step + 1) / warmup
    return f


class _LogWindow:
    """The training steps since the last log line: their values, and the clock and data position at its start."""

    def __init__(self, position: int):
        self.values: dict[str, list] = {}
        self.start, self.position = time.monotonic(), position

    def add(self, values: dict):
        for k, v in values.items():
            self.values.setdefault(k, []).append(float(v))

    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.values.items()}

    def restart(self, position: int, batch_size: int) -> float:
        """Strokes read per second since the window began (a GAN step reads n_critic + 1 batches); a new
        window begins."""
        now = time.monotonic()
        rate = (position - self.position) * batch_size / max(1e-9, now - self.start)
        self.values, self.start, self.position = {}, now, position
        return rate


class Stage:
    """The loop shared by the stages: resume, schedule, logging, eval, samples, checkpoints, budget."""

    name = "stage"

    def __init__(self, opts: StageOptions, data: StrokeArrays, heldout: StrokeArrays | None, dist: Dist):
        self.o, self.data, self.heldout, self.dist = opts, data, heldout, dist
        self.device = dist.device
        self.state_path = os.path.join(opts.out, STATE_FILE)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lrs: dict[str, float] = {}
        self.batches = Batches(data, opts.batch_size, opts.seed, self.device, dist.rank, dist.world)
        self.step = 0
        self.position = 0
        self.summary: dict = {}

    # subclasses: build(), train_step(step) -> dict of floats, sample_rows(), export(), eval_model()
    def optimizer(self, name, params, lr):
        """Adam over params (or param groups; a group's "lr_scale" multiplies the scheduled rate)."""
        opt = torch.optim.Adam(params, lr=lr, betas=tuple(self.o.betas))
        self.optimizers[name] = opt
        self.base_lrs[name] = lr
        return opt

    def next_batch(self):
        a, s = self.batches.get(self.position)
        self.position += 1
        rgb, alpha = rgba_to_tensors(s)
        return a, rgb, alpha

    def info(self, timer, done=False) -> dict:
        return {"stage": self.name, "step": self.step, "data_position": self.position, "steps": self.o.steps,
                "elapsed": timer.elapsed, "cpu_elapsed": timer.cpu_elapsed, "done": done, "seed": self.o.seed,
                "batch_size": self.o.batch_size,
                "world_size": self.dist.world, "epoch": self.batches.order.epoch(self.position),
                "summary": self.summary}

    def save(self, timer, done=False):
        if self.dist.is_main:
            save_state(self.state_path, self.modules, self.optimizers, self.info(timer, done))

    def run(self) -> dict:
        o, d = self.o, self.dist
        seed_everything(o.seed)
        self.build()
        meta = None
        if o.resume and os.path.exists(self.state_path):
            meta, finished = self._resume()
            if finished:
                self.after_resume_done()
                return meta
        self.wrap()
        log = MetricsLog(os.path.join(o.out, "metrics.jsonl"), self.step if meta else None, enabled=d.is_main)
        timer = Timer(float(meta.get("elapsed", 0.0)), float(meta.get("cpu_elapsed", 0.0))) if meta else Timer()
        with StopFlag() as stop:
            self._train(log, timer, stop)
        return self._finish(log, timer, stopped_early=stop.requested)

    def _resume(self) -> tuple[dict, bool]:
        """Modules, optimisers, RNGs, step and data position from the state file; returns its metadata and
        whether the stage had already finished there."""
        o = self.o
        meta = load_state(self.state_path, self.modules, self.optimizers, self.device)
        self.step, self.position = int(meta["step"]), int(meta["data_position"])
        before, cpu_before = float(meta.get("elapsed", 0.0)), float(meta.get("cpu_elapsed", 0.0))
        self.summary = meta.get("summary", {})
        budget_spent = o.time_budget and (cpu_before if o.clock == "cpu" else before) >= o.time_budget
        finished = bool(meta.get("done") and (self.step >= o.steps or budget_spent))
        if self.dist.is_main:
            print(f"[{self.name}] already finished at step {self.step} ({o.out}); nothing to do" if finished else
                  f"[{self.name}] resuming at step {self.step} (data position {self.position}, "
                  f"{before:.0f} s already trained)")
        return meta, finished

    def _train(self, log: MetricsLog, timer: Timer, stop: StopFlag):
        """Training steps until the steps or the time budget are spent or a stop is requested (every rank
        agrees on when), logging, evaluating, sampling, exporting and checkpointing as the options say."""
        o, d = self.o, self.dist
        bar = None
        if d.is_main and o.progress:
            from tqdm import tqdm
            bar = tqdm(total=o.steps, initial=self.step, desc=self.name, dynamic_ncols=True, smoothing=0.05)
        last_save, window = time.monotonic(), _LogWindow(self.position)
        while True:
            prog = _progress(self.step, o.steps, timer.cpu_elapsed if o.clock == "cpu" else timer.elapsed,
                             o.time_budget)
            if d.broadcast_flag(prog >= 1.0 or stop.requested):
                break
            self._set_learning_rates(prog)
            window.add(self.train_step(self.step))
            self.step += 1
            if bar is not None:
                bar.update(1)
            if self.step % o.log_every == 0 or self.step == o.steps:
                self._log_step(log, timer, window, bar)
            if o.sample_every and self.step % o.sample_every == 0:
                self.samples(f"step_{self.step:07d}")
            if o.export_every and self.step % o.export_every == 0:
                self.export(timer)
            due = (self.step % o.checkpoint_every == 0 if o.checkpoint_every else False) or \
                  (o.checkpoint_seconds and time.monotonic() - last_save >= o.checkpoint_seconds)
            if d.broadcast_flag(bool(due)):
                self.save(timer)
                last_save = time.monotonic()
        if bar is not None:
            bar.close()

    def _set_learning_rates(self, progress: float):
        o = self.o
        for name, opt in self.optimizers.items():
            for g in opt.param_groups:
                g["lr"] = self.base_lrs[name] * g.get("lr_scale", 1.0) * _lr_factor(progress, o.schedule, self.step,
                                                                                    o.warmup)

    def _log_step(self, log: MetricsLog, timer: Timer, window: _LogWindow, bar):
        """One line of the metrics log: the means since the last line (over every rank), and the held-out
        evaluation when it is due; the plot is redrawn at the slower of the two rates."""
        o, d = self.o, self.dist
        means = d.all_mean(window.means())
        rate = window.restart(self.position, o.batch_size)
        rec = {"step": self.step, "time": round(timer.elapsed, 2), "cpu_time": round(timer.cpu_elapsed, 2),
               "strokes_per_s": round(rate, 1),
               "lr": self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"],
               "epoch": round(self.batches.order.epoch(self.position), 4),
               **{k: round(v, 6) for k, v in means.items()}}
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:4]})
        if o.eval_every and self.step % o.eval_every == 0 and self.heldout is not None:
            rec.update({f"eval_{k}": v for k, v in self.evaluate().items()})
        log.write(rec)
        if d.is_main and (self.step % max(o.log_every, o.eval_every or o.log_every) == 0):
            plot_metrics(log.path, os.path.join(o.out, "metrics.png"), self.name)

    def _finish(self, log: MetricsLog, timer: Timer, stopped_early: bool) -> dict:
        """The final evaluation, samples, state and export; SystemExit where a stop request ended the run
        (its state is saved, so running again resumes it)."""
        o, d = self.o, self.dist
        if self.heldout is not None:
            final = self.evaluate()
            self.summary["final_eval"] = final
            log.write({"step": self.step, "time": round(timer.elapsed, 2), "cpu_time": round(timer.cpu_elapsed, 2),
                       **{f"eval_{k}": v for k, v in final.items()}})
        self.summary.update(steps=self.step, wall_time_s=round(timer.elapsed, 1), cpu_time_s=round(timer.cpu_elapsed, 1),
                            strokes_seen=self.position * o.batch_size)
        self.samples("final")
        done = not stopped_early
        if done:
            self.o.steps = self.step  # a time budget may have ended it early: record what was done
        self.save(timer, done=done)
        if d.is_main:
            plot_metrics(log.path, os.path.join(o.out, "metrics.png"), self.name)
            self.export(timer)
        d.barrier()
        if stopped_early:
            raise SystemExit(f"[{self.name}] interrupted at step {self.step}; state saved, run again to resume")
        return self.info(timer, done)

    # hooks
    def wrap(self):
        pass

    def after_resume_done(self):
        pass

    def evaluate(self) -> dict:
        return {}

    def samples(self, tag):
        pass

    def export(self, timer):
        pass


# -- helpers shared by the generator stages ----------------------------------------------------------
def _sample_rows(generator: Generator, heldout: StrokeArrays, device, n: int = 16):
    real_rgb, _ = rgba_to_tensors(heldout.strokes[:n])
    return [real_rgb, painter_strokes(generator, heldout.actions[:n], device)[0]]


def training_noise(generator: Generator, n: int, seed: int, rank: int, step: int, k: int, device):
    """Random noise for one batch of a stochastic generator (None for a deterministic one): a pure
    function of (seed, rank, step, k), so a resumed run draws what the uninterrupted run drew."""
    if not unwrap(generator).config.noise_dim:
        return None
    return unwrap(generator).sample_noise(n, step_generator(seed + 1_000_003, rank, step * 16 + k, device), device)


def load_generator(path: str, device) -> tuple[Generator, dict]:
    painter = load_painter(path, device=device)
    return painter.generator, read_metadata(path)


class _GeneratorStageMixin:
    def build_recon(self, texture_default: float = 0.0):
        o = self.o.extra
        t = o.get("texture_weight")
        self.texture_weight = float(texture_default if t is None else t)
        backbone = L.build_feature_extractor(o.get("backbone", "efficientnet_lite0"), o.get("backbone_weights", "auto"),
                                             o.get("backbone_layers"), self.device)
        self.recon = L.ReconstructionLoss(backbone, feature_weight=o.get("feature_weight", 1.0),
                                          pixel_weight=o.get("pixel_weight", 1.0),
                                          alpha_weight=o.get("alpha_weight", 1.0),
                                          stroke_weight=o.get("stroke_weight", 10.0),
                                          layer_weights=o.get("layer_weights"),
                                          mse_weight=o.get("mse_weight", 0.0),
                                          edge_weight=o.get("edge_weight", 0.0))

    def generator_losses(self, a, rgb, alpha, step):
        """(loss, parts, grainy strokes over white, grainy alpha) of one batch: the reconstruction loss
        (+ the texture term). A stochastic painter trained with split_grain: the reconstruction of the
        mean stroke trains the mean; the reconstruction of the grainy stroke, the texture term (and
        the caller's adversarial term on the grainy strokes) train only the grain, which so pays for
        every bit of variance it adds, at whatever grain size."""
        noise = training_noise(self.g, len(a), self.o.seed, self.dist.rank, step, 0, self.device)
        with autocast(self.device, self.o.amp):
            if noise is not None and self.o.extra.get("split_grain", True):
                colour, mean_alpha, grainy_alpha = self.g(a, noise, split=True)
                colour, mean_alpha, grainy_alpha = colour.float(), mean_alpha.float(), grainy_alpha.float()
                loss, parts = self.recon(colour, mean_alpha, rgb, alpha)
                grain_loss, grain_parts = self.recon(colour.detach(), grainy_alpha, rgb, alpha)
                loss = loss + grain_loss
                parts["grainy_mse"] = grain_parts["mse"]
                grainy = over_white(colour.detach(), grainy_alpha)
            else:
                colour, grainy_alpha = self.g(a, noise)
                colour, grainy_alpha = colour.float(), grainy_alpha.float()
                loss, parts = self.recon(colour, grainy_alpha, rgb, alpha)
                grainy = over_white(colour, grainy_alpha)
        if self.texture_weight:
            parts["texture"] = L.texture_loss(grainy, rgb)
            loss = loss + self.texture_weight * parts["texture"]
        return loss, parts, grainy, grainy_alpha

    def evaluate(self) -> dict:
        g = unwrap(self.modules["generator"])
        if not self.dist.is_main:
            return {}
        h = self.heldout
        n = min(len(h), self.o.eval_count)
        return evaluate_generator(g, h.actions[:n], h.strokes[:n], self.device, with_ssim=False)

    def samples(self, tag):
        if self.dist.is_main and self.heldout is not None:
            rows = _sample_rows(unwrap(self.modules["generator"]), self.heldout, self.device)
            save_grid(os.path.join(self.o.out, "samples", f"{tag}.png"), rows)

    def export(self, timer):
        if self.dist.is_main:
            self.save_generator(os.path.join(self.o.out, "generator.safetensors"), timer,
                                self.summary.get("final_eval", {}))

    def save_generator(self, path, timer, metrics):
        g = unwrap(self.modules["generator"])
        training = {**self.o.extra.get("training_meta", {}), "stage": self.name, "steps": self.step,
                    "batch_size": self.o.batch_size, "strokes_seen": self.position * self.o.batch_size,
                    "data_size": len(self.data), "hardware": hardware(), "world_size": self.dist.world}
        if timer is not None:
            training.update(wall_time_s=round(timer.elapsed, 1), cpu_time_s=round(timer.cpu_elapsed, 1))
        reach = self.o.extra.get("reach")
        save_painter(path, g, layout=self.data.layout, brush=self.o.extra.get("brush_id", f"mypaint:{self.data.brush}"),
                     training=training, metrics=metrics, reach=None if reach is None else BrushReach.from_dict(reach))


def critic_on_batch(critic, generator, a, rgb, alpha, device, amp, noise=None):
    """The critic's logits on a real batch and on the generator's strokes for the same actions
    (the generator gets no gradient). Returns (real, fake, real_logits, fake_logits)."""
    with torch.no_grad(), autocast(device, amp):
        colour, gen_alpha = generator(a, noise)
        fake = L.critic_input(over_white(colour, gen_alpha), gen_alpha).float()
    real = L.critic_input(rgb, alpha)
    with autocast(device, amp):
        logits = critic(torch.cat([real, fake]), torch.cat([a, a])).float()
    real_l, fake_l = logits.chunk(2)
    return real, fake, real_l, fake_l


# -- 1. generator pre-training ---------------------------------------------------------------------
class PretrainGenerator(_GeneratorStageMixin, Stage):
    name = "pretrain-generator"

    def build(self):
        e = self.o.extra
        cfg = make_generator_config(e.get("config", "nakano"), self.data.size, self.data.actions.shape[1],
                                    e.get("prior"), e.get("colour"), e.get("noise_dim", 0))
        g = Generator(cfg).to(self.device)
        with torch.no_grad():  # start nearly transparent: strokes grow from a blank canvas, not a grey one
            g.head.bias[0] = -3.0
        if e.get("init"):
            init = load_painter(e["init"]).generator
            if init.config.colour == "action" and cfg.colour != "action":
                raise SystemExit(f"--init {e['init']} has no colour head (colour=action): train it with --colour action")
            if init.config.noise_dim and init.config.noise_dim != cfg.noise_dim:
                raise SystemExit(f"--init {e['init']} has {init.config.noise_dim} noise inputs, this painter "
                                 f"{cfg.noise_dim}: use --noise-dim {init.config.noise_dim}")
            state = alpha_only(init.state_dict()) if cfg.colour == "action" else init.state_dict()
            g.load_state_dict(with_noise_inputs(state, g) if cfg.noise_dim and not init.config.noise_dim else state)
        self.modules["generator"] = g
        self.optimizer("generator", generator_param_groups(g), self.o.lr)
        self.build_recon()

    def wrap(self):
        self.g = self.dist.wrap(self.modules["generator"])
        self.g.train()

    def train_step(self, step):
        a, rgb, alpha = self.next_batch()
        opt = self.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        loss, parts, _, _ = self.generator_losses(a, rgb, alpha, step)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}


def with_noise_inputs(state: dict, g: Generator) -> dict:
    """A deterministic generator's weights for the same generator with noise inputs (g): its mean
    stroke, and g's own grain (silent at first: zero grain head and gains; its projections)."""
    return {**g.state_dict(), **state}


GRAIN_LR_SCALE = 10.0   # the grain starts at zero and must reach its strength within a short GAN stage


def generator_param_groups(g: Generator) -> list[dict]:
    """The generator's parameters for Adam: a stochastic painter's grain (head and gains) in a group of
    its own, faster (Adam moves a parameter by about the learning rate per step, whatever its gradient)."""
    grain = lambda name: name.startswith(("grain_gain", "grain_head."))
    fast = [p for n, p in g.named_parameters() if grain(n)]
    rest = [p for n, p in g.named_parameters() if not grain(n)]
    return [{"params": rest}] + ([{"params": fast, "lr_scale": GRAIN_LR_SCALE}] if fast else [])


# -- 2. freezing -------------------------------------------------------------------------------------
def alpha_only(state: dict) -> dict:
    """Weights of a generator with a learned colour head, for the same generator with colour="action":
    the head keeps its alpha channel (a no-op for weights that already have only that)."""
    return {**state, "head.weight": state["head.weight"][:, :1], "head.bias": state["head.bias"][:1]}


def freeze_generator(path: str, device="cpu", colour_from_action: bool = False) -> Generator:
    """Load a pre-trained generator and freeze it for real; verify it. colour_from_action: drop a learned
    colour residual, so the strokes take the action's colour exactly (the alpha is unchanged)."""
    g, _ = load_generator(path, device)
    if colour_from_action and g.config.colour != "action":
        alpha_g = Generator(replace(g.config, colour="action")).to(device)
        alpha_g.load_state_dict(alpha_only(g.state_dict()))
        g = alpha_g
    freeze(g)
    if not is_frozen(g):
        raise RuntimeError("the generator did not freeze")
    return g


# -- 3. critic pre-training --------------------------------------------------------------------------
def save_critic(path: str, critic: Critic, extra: dict | None = None):
    atomic_save(path, unwrap(critic).state_dict(), {"format": "neural-painters-critic",
                                                     "critic_config": config_to_dict(unwrap(critic).config),
                                                     **(extra or {})})


def load_critic(path: str, device) -> Critic:
    tensors, meta = load_tensors(path)
    if meta.get("format") != "neural-painters-critic":
        raise SystemExit(f"{path} is not a critic checkpoint")
    critic = Critic(CriticConfig.from_dict(meta["critic_config"])).to(device)
    critic.load_state_dict(tensors)
    return critic


class PretrainCritic(Stage):
    name = "pretrain-critic"

    def build(self):
        e = self.o.extra
        self.generator = freeze_generator(e["generator"], self.device)
        d = Critic(make_critic_config(e.get("config", "nakano"), self.data.size, self.data.actions.shape[1],
                                      conditional=e.get("conditional", True))).to(self.device)
        self.modules["critic"] = d
        self.optimizer("critic", d.parameters(), self.o.lr)

    def wrap(self):
        self.d = self.dist.wrap(self.modules["critic"])
        self.d.train()
        freeze(self.generator)

    def train_step(self, step):
        a, rgb, alpha = self.next_batch()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        noise = training_noise(self.generator, len(a), self.o.seed, self.dist.rank, step, 0, self.device)
        _, _, real_l, fake_l = critic_on_batch(self.d, self.generator, a, rgb, alpha, self.device, self.o.amp, noise)
        loss = L.bce_critic_loss(real_l, fake_l)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "accuracy": L.critic_accuracy(real_l.detach(), fake_l.detach())}

    def samples(self, tag):
        pass

    def export(self, timer):
        if self.dist.is_main:
            save_critic(os.path.join(self.o.out, "critic.safetensors"), self.modules["critic"],
                        {"training": {"stage": self.name, "steps": self.step, "wall_time_s": round(timer.elapsed, 1)}})


# -- 4. GAN ---------------------------------------------------------------------------------------
class GAN(_GeneratorStageMixin, Stage):
    name = "gan"

    def build(self):
        e = self.o.extra
        if e.get("generator"):
            g, _ = load_generator(e["generator"], self.device)
        else:  # pure adversarial training from scratch (the comparison baseline)
            g = Generator(make_generator_config(e.get("config", "nakano"), self.data.size, self.data.actions.shape[1],
                                                e.get("prior"), e.get("colour"), e.get("noise_dim", 0))).to(self.device)
        unfreeze(g)
        self.modules["generator"] = g
        d = load_critic(e["critic"], self.device) if e.get("critic") else Critic(
            make_critic_config(e.get("config", "nakano"), self.data.size, self.data.actions.shape[1],
                               conditional=e.get("conditional", True))).to(self.device)
        self.modules["critic"] = d
        self.mode = e.get("gan", "bce")
        if self.mode not in ("bce", "wgan-gp"):
            raise SystemExit(f"--gan must be bce or wgan-gp, not {self.mode!r}")
        self.n_critic = int(e.get("n_critic") or (5 if self.mode == "wgan-gp" else 1))
        adv = e.get("adv_weight")
        self.adv_weight = float(adv if adv is not None else (0.05 if self.mode == "bce" else 0.001))
        self.gp_weight = float(e.get("gp_weight", 10.0))
        betas = (0.5, 0.9) if self.mode == "bce" else (0.0, 0.9)
        self.o.betas = betas
        self.optimizer("generator", generator_param_groups(g), self.o.lr)
        self.optimizer("critic", d.parameters(), e.get("critic_lr", self.o.lr))
        # GAN mode asks a stochastic painter for the brush's grain (a deterministic one would paint a hatch)
        self.build_recon(texture_default=1.0 if g.config.noise_dim else 0.0)

    def wrap(self):
        self.g = self.dist.wrap(self.modules["generator"])
        self.d = self.dist.wrap(self.modules["critic"])
        self.g.train()
        self.d.train()

    def critic_step(self, step, k):
        a, rgb, alpha = self.next_batch()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        noise = training_noise(self.g, len(a), self.o.seed, self.dist.rank, step, 1 + k, self.device)
        real, fake, real_l, fake_l = critic_on_batch(self.d, self.g, a, rgb, alpha, self.device, self.o.amp, noise)
        out = {}
        if self.mode == "bce":
            loss = L.bce_critic_loss(real_l, fake_l)
            out["critic_accuracy"] = L.critic_accuracy(real_l.detach(), fake_l.detach())
        else:
            gen = step_generator(self.o.seed, self.dist.rank, step * 16 + k, self.device)
            gp = L.gradient_penalty(unwrap(self.d), real, fake, a, gen)
            wdist = real_l.mean() - fake_l.mean()
            loss = -wdist + self.gp_weight * gp
            out.update(wasserstein=wdist.item(), gp=gp.item())
        loss.backward()
        opt.step()
        out["critic_loss"] = loss.item()
        return out

    def train_step(self, step):
        out = {}
        for k in range(self.n_critic):
            out.update(self.critic_step(step, k))
        a, rgb, alpha = self.next_batch()
        critic = unwrap(self.d)
        critic.requires_grad_(False)
        opt = self.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        recon, parts, gen_rgb, gen_alpha = self.generator_losses(a, rgb, alpha, step)
        with autocast(self.device, self.o.amp):
            fake_l = critic(L.critic_input(gen_rgb, gen_alpha), a).float()
        adv = L.bce_generator_loss(fake_l) if self.mode == "bce" else -fake_l.mean()
        loss = recon + self.adv_weight * adv
        loss.backward()
        opt.step()
        critic.requires_grad_(True)
        return {**out, "loss": loss.item(), "adversarial": adv.item(),
                **{k: v.item() for k, v in parts.items()}}

    def evaluate(self) -> dict:
        """Held-out metrics; with the ceiling on the same strokes (extra["ceiling"]), the generator
        nearest the bar so far is kept as best_generator.safetensors (GAN training wanders)."""
        metrics = super().evaluate()
        ceiling = self.o.extra.get("ceiling")
        if not metrics or not ceiling:
            return metrics
        shortfall = bar({**metrics, **{f"ceiling_{k}": v for k, v in ceiling.items()}})["shortfall_db"]
        metrics["shortfall_db"] = shortfall
        best = self.summary.get("best")
        if best is None or (shortfall, -metrics["psnr"]) < (best["shortfall_db"], -best["psnr"]):
            self.summary["best"] = {"step": self.step, "shortfall_db": shortfall, "psnr": metrics["psnr"],
                                    "texture_ratio": metrics["texture_ratio"]}
            self.save_generator(os.path.join(self.o.out, BEST_GENERATOR), None, metrics)
        return metrics

    def export(self, timer):
        super().export(timer)
        if self.dist.is_main:
            save_critic(os.path.join(self.o.out, "critic.safetensors"), self.modules["critic"])
