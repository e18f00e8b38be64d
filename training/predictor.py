"""`neural-painters-train predictor`: trains a stroke predictor (painter_models/painting/predictor.py) for one
painter, self-supervised through the frozen painter: no painted data set is needed.

    neural-painters-train predictor --painter soft_brush --out soft_brush_predictor.safetensors --steps 3000

Each step: --nat natural regions of --grid x --grid patches (a --rollout share of them from the predictor's
own paintings, redrawn every --rollout-every steps) and --syn synthetic patches of random strokes
(predictor_data.py), scored through the painter (predictor_losses.py); Adam with a warm-up and a cosine
schedule to a tenth. Writes OUT (the predictor, every --save-every steps and at the end), its resumable state
(<stem>.state.safetensors: network, Adam, RNGs, step; running the command again continues, --fresh starts
over), its log (<stem>.log.jsonl) and at the end its model card (<stem>.md: the command, the time, PSNR on
photographs it never saw) with a grid of its paintings beside them (<stem>_grid.png).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch

from .predictor_data import (degraded_canvases, evaluation_photos, natural_regions, photo_bank, rollout_pool,
                             sample_rollouts, synthetic_batch)
from .predictor_losses import natural_loss, synthetic_loss
from .randomness import seed_everything, step_generator
from .run_log import MetricsLog, Timer
from .training_state import StopFlag, load_state, save_state

WARMUP_STEPS = 200


def add_parser(subcommands):
    s = subcommands.add_parser("predictor", help="a stroke predictor for a painter (Predict Strokes, --init predict)",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--painter", required=True, help="the painter: a file or a shipped painter's name (soft_brush)")
    s.add_argument("--out", required=True, help="the predictor file to write (.safetensors)")
    s.add_argument("--steps", type=int, default=3000)
    s.add_argument("--time-budget", type=float, default=0, help="seconds for this run (0: the steps only)")
    s.add_argument("--images", help="folder of training photographs (default: scikit-image's sample photographs)")
    s.add_argument("--init", help="start from this predictor file's weights (a fresh optimiser)")
    s.add_argument("--fresh", action="store_true", help="ignore an existing state and start over")
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--nat", type=int, default=4, help="natural regions per step")
    s.add_argument("--grid", type=int, default=2, help="patches a side of a natural region")
    s.add_argument("--syn", type=int, default=8, help="synthetic patches per step")
    s.add_argument("--rollout", type=float, default=0.5, help="share of the natural regions from the predictor's "
                   "own paintings (0: none)")
    s.add_argument("--rollout-every", type=int, default=100, help="steps between new rollouts")
    s.add_argument("--rollout-images", type=int, default=3, help="photographs painted per rollout")
    s.add_argument("--w-pix", type=float, default=1.0, help="weight of the pixel loss")
    s.add_argument("--w-stroke", type=float, default=0.02, help="weight of the matched-stroke loss (synthetic)")
    s.add_argument("--w-bce", type=float, default=0.01, help="weight of the confidence loss")
    s.add_argument("--benefit-scale", type=float, default=1e-3, help="a stroke's benefit b labels b / (b + this)")
    s.add_argument("--width", type=int, default=32, help="base convolution channels (PredictorConfig.width)")
    s.add_argument("--hidden", type=int, default=384, help="MLP width")
    s.add_argument("--k", type=int, default=8, help="strokes per patch")
    s.add_argument("--save-every", type=int, default=250)
    s.add_argument("--eval-images", nargs="*", help="photographs for the model card (default: scikit-image's "
                   "astronaut and coffee, never trained on)")
    s.add_argument("--eval-strokes", type=int, nargs="+", default=[200, 1000])
    s.add_argument("--eval-size", type=int, default=256, help="canvas side of the model card's paintings")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    s.add_argument("--no-amp", action="store_true", help="the painter in fp32 (default: bf16 autocast)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_predictor)


def cmd_predictor(a):
    return PredictorTraining(a).run()


def learning_rate(o, step: int) -> float:
    """A linear warm-up, then a cosine from o.lr to a tenth of it over the steps."""
    progress = step / max(1, o.steps)
    return o.lr * min(1.0, (step + 1) / WARMUP_STEPS) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class PredictorTraining:
    """One training run (see the module doc); `run` trains, saves and writes the card."""

    def __init__(self, a):
        from painter_models.painter.checkpoint import load_painter
        from painter_models.painter.shipped import find_painter
        from painter_models.painting.canvas import fast_painter
        from painter_models.painting.predictor import (PredictorConfig, PredictorNetwork, StrokePredictor,
                                                       load_predictor)
        torch.set_num_threads(a.threads)
        seed_everything(a.seed)
        a.amp = not a.no_amp
        self.o, self.step, self.pool = a, 0, None
        stem = os.path.splitext(a.out)[0]
        self.state_path, self.log_path = stem + ".state.safetensors", stem + ".log.jsonl"
        self.card_path, self.grid_path = stem + ".md", stem + "_grid.png"
        self.painter_path = find_painter(a.painter)
        self.painter = load_painter(self.painter_path)
        self.painter_fn, self.layout, self.reach = fast_painter(self.painter), self.painter.layout, self.painter.reach
        if a.init:
            network = load_predictor(a.init).network.requires_grad_(True)
        else:
            network = PredictorNetwork(PredictorConfig(k=a.k, width=a.width, hidden=a.hidden,
                                                       action_dim=self.layout.dim), self.layout)
        self.network = network.train()
        self.predictor = StrokePredictor(network, self.painter.brush, self.layout)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=a.lr)
        self.bank = photo_bank(a.images)
        self.photos = evaluation_photos(a.eval_images, a.eval_size)

    def run(self) -> dict:
        o = self.o
        meta = None
        if os.path.exists(self.state_path) and not o.fresh:
            meta = load_state(self.state_path, {"network": self.network}, {"adam": self.optimizer}, "cpu")
            self.step = int(meta["step"])
            print(f"[predictor] resuming at step {self.step} ({self.state_path})", file=sys.stderr)
        timer = Timer(float(meta.get("elapsed", 0.0)), float(meta.get("cpu_elapsed", 0.0))) if meta else Timer()
        log = MetricsLog(self.log_path, self.step if meta else None)
        with StopFlag() as stop:
            self._train(log, timer, stop)
        self._save(timer, done=not stop.requested)
        if stop.requested:
            raise SystemExit(f"[predictor] interrupted at step {self.step}; state saved, run again to resume")
        return self._report(timer)

    def _train(self, log, timer, stop):
        from tqdm import tqdm
        o = self.o
        bar = tqdm(total=o.steps, initial=self.step, desc="predictor", dynamic_ncols=True, disable=o.no_progress,
                   mininterval=5)
        smoothed: dict = {}
        while self.step < o.steps and not stop.requested and not (o.time_budget and timer.elapsed >= o.time_budget):
            terms = self.train_step(self.step)
            self.step += 1
            for k, v in terms.items():
                smoothed[k] = v if k not in smoothed else 0.98 * smoothed[k] + 0.02 * v
            bar.update(1)
            if self.step % 20 == 0:
                bar.set_postfix({k: f"{v:.3g}" for k, v in smoothed.items() if k in ("nat_psnr", "syn_psnr", "match")})
            if self.step % o.save_every == 0:
                log.write({"step": self.step, "time": round(timer.elapsed, 1), "cpu_time": round(timer.cpu_elapsed, 1),
                           "lr": learning_rate(o, self.step - 1), **{k: round(v, 4) for k, v in smoothed.items()}})
                self._save(timer, done=False)
        bar.close()

    def train_step(self, step: int) -> dict:
        """One Adam step on a fresh batch (drawn from the step's own generator: a resumed run draws the same)."""
        o, gen = self.o, step_generator(self.o.seed, 0, step, "cpu")
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(o, step)
        if o.rollout and o.nat and (self.pool is None or step % o.rollout_every == 0):
            self.pool = rollout_pool(self.predictor, self.painter, self.bank, o.rollout_images, gen, grid=o.grid)
        loss, terms = torch.zeros(()), {}
        if o.nat:
            rolled = int(round(o.nat * o.rollout)) if self.pool and self.pool[0] else 0
            targets = natural_regions(self.bank, o.nat - rolled, o.grid, self.network.config.patch, gen)
            regions = (targets, degraded_canvases(targets, gen))
            if rolled:
                more = sample_rollouts(self.pool, rolled, o.grid, self.network.config.patch, gen)
                regions = (torch.cat([regions[0], more[0]]), torch.cat([regions[1], more[1]]))
            loss, terms = natural_loss(self.network, self.painter_fn, self.layout, self.reach, regions, o)
        if o.syn:
            batch = synthetic_batch(o.syn, self.network.config, self.painter_fn, self.layout, self.reach, gen, o.amp)
            more_loss, more_terms = synthetic_loss(self.network, self.painter_fn, self.layout, self.reach, batch, o)
            loss, terms = loss + more_loss, {**terms, **more_terms}
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
        self.optimizer.step()
        return terms

    def summary(self, timer) -> dict:
        from .distributed import hardware
        keep = ("steps", "lr", "nat", "grid", "syn", "rollout", "rollout_every", "rollout_images", "w_pix", "w_stroke",
                "w_bce", "benefit_scale", "seed", "init", "images")
        return {"painter": os.path.basename(self.painter_path), "steps_done": self.step,
                "wall_time_s": round(timer.elapsed, 1), "cpu_time_s": round(timer.cpu_elapsed, 1),
                "command": command_line(self.o), "options": {k: getattr(self.o, k) for k in keep},
                "hardware": hardware()}

    def _save(self, timer, done: bool):
        """The predictor file and the resumable state, both written atomically."""
        from painter_models.painting.predictor import save_predictor
        save_predictor(self.o.out, self.network, self.painter.brush, self.summary(timer))
        save_state(self.state_path, {"network": self.network}, {"adam": self.optimizer},
                   {"step": self.step, "elapsed": timer.elapsed, "cpu_elapsed": timer.cpu_elapsed, "done": done})

    def _report(self, timer) -> dict:
        from .predictor_report import evaluate, write_card, write_grid
        self.network.eval()
        rows, paintings = evaluate(self.predictor, self.painter, self.photos, self.o.eval_strokes)
        photos = ", ".join(self.photos)
        if not self.o.eval_images:
            photos = f"scikit-image's {' and '.join(self.photos)}" + ("" if self.o.images else ", never trained on")
        summary = {**self.summary(timer), "evaluation": rows, "evaluation_photos": photos}
        write_grid(self.grid_path, paintings)
        write_card(self.card_path, summary, self.predictor.config, os.path.basename(self.grid_path) if rows else None)
        print(f"[predictor] {self.step} steps in {timer.elapsed:.0f} s -> {self.o.out}, {self.card_path}",
              file=sys.stderr)
        return summary


def command_line(a) -> str:
    """The command as typed (its arguments, as training/cli.py's main keeps them), under the console script's name."""
    import shlex
    return " ".join(["neural-painters-train"] + [shlex.quote(x) for x in a.argv])
