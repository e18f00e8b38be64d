"""The whole recipe for one brush (`neural-painters-train recipe`) and the comparison with pure
adversarial training from scratch (`neural-painters-train compare`).

Folder layout of a recipe run (every part resumable; re-run the same command to continue):
  data/                       training strokes (neural_painters_training.datasets shards)
  data_<strokes>/             step 1's, where --pretrain-strokes differs from --strokes (both: data/ and
                              data_uniform/ together)
  heldout.safetensors         held-out strokes (fresh actions, seed never used for training) and the
                              same actions rendered with brush_seed=1 (repeatability ceiling)
  1_pretrain_generator/       step 1 (+ generator.safetensors)
  2_frozen_generator.safetensors   step 2
  3_pretrain_critic/          step 3 (+ critic.safetensors)
  4_gan/                      step 4 (+ generator.safetensors, critic.safetensors)
  data_time.json              wall and CPU time of the data generation
  eval_<candidate>/           metrics.json and grid.png of each candidate: pretrained (step 2), gan (step
                              4's last generator), gan_best (its generator nearest the bar)
  eval/                       the exported candidate's
  painter.safetensors         the exported painter (metadata: training summary + held-out metrics + reach)
  MODEL_CARD.md               brush, command, data size, steps, wall and CPU time, hardware, metrics, grid
  recipe.json                 the summary

The held-out strokes are random actions made whole in their tile for the brush's reach
(datasets.whole_strokes): the strokes a painter is asked for on a canvas, where the bar is measured.
The training strokes are the same kind (--strokes whole) or uniform random actions cut by their
tile (--strokes uniform); step 1 may take the other kind or both (--pretrain-strokes): pre-trained
on uniform strokes a painter optimises better (BENCHMARKS.md, "Where the gap comes from"). The
exported candidate is the one nearest the bar (evaluate.bar: texture counts, not PSNR alone).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import sys
import time

from painter_models.brush.actions import BrushReach
from painter_models.painter.checkpoint import load_painter, painter_ink, read_metadata, save_painter
from painter_models.files import atomic_write, write_text

from .distributed import Dist, hardware
from .freezing import is_frozen
from .data import heldout_set, joined, load_set, load_training_data
from .evaluate import GRID_ROWS, evaluate_painter, feature_backbone, repeatability_ceiling
from .options import HELDOUT_SEED, RECIPE_DEFAULTS, recon_options, set_threads, stage_options
from .stages import BEST_GENERATOR, GAN, PretrainCritic, PretrainGenerator, StageOptions, freeze_generator


def brush_reach(brush: str, size: int) -> BrushReach:
    """How far the painting program paints from a path (MyPaint: measured, about 1 s; the rasteriser: its own)."""
    if brush.startswith("raster"):
        from painter_models.brush.raster import RasterProgram
        return RasterProgram(size).reach
    from painter_models.brush.mypaint import brush_reach as measure
    return measure(brush)


def ensure_data(out: str, brush: str, count: int, size: int, seed: int, workers: int,
                reach: BrushReach | None = None) -> str:
    """Generate the training dataset with neural_painters_training.datasets (resumes a partial one)."""
    from neural_painters_training import datasets
    shard = min(10_000, max(256, count // 8))
    datasets.generate(out, brush=brush, count=count, shard_size=shard, size=size, seed=seed, workers=workers,
                      reach=reach)
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (MyPaint's rendering workers), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def choose_export(candidates: dict[str, dict], export: str) -> str:
    """The candidate that becomes the painter: export 'best' takes the one nearest the bar (smallest
    shortfall, then the highest PSNR; by PSNR alone where no ceiling was measured), else the named one."""
    if export != "best":
        return export if export in candidates else "pretrained"
    def key(name):
        m = candidates[name]
        return (m["bar"]["shortfall_db"] if "bar" in m else 0.0, -m["psnr"])
    return min(candidates, key=key)


def write_model_card(path: str, meta_training: dict, metrics: dict, grid: str | None, noise: bool = False,
                     ink=None):
    lines = [f"# Neural painter: {meta_training.get('brush', '?')}", "",
             "A generator trained to imitate the MyPaint brush with the four-step recipe "
             "(feature-loss pre-training, freezing, critic pre-training, GAN fine-tuning)"
             + (", with a noise input: it paints the brush's grain, fixed per stroke." if noise else "."), "",
             "| | |", "|---|---|"]
    for k in ("brush", "config", "noise_dim", "parameters", "stroke_size", "pretrain_strokes", "strokes", "data_size",
              "steps", "batch_size", "wall_time_s", "cpu_time_s", "exported"):
        if k in meta_training:
            lines.append(f"| {k} | {meta_training[k]} |")
    hw = meta_training.get("hardware", {})
    lines.append(f"| hardware | {hw.get('cpu', '?')}, {hw.get('torch_threads', '?')} threads"
                 f"{', ' + hw['gpu'] if 'gpu' in hw else ''}, torch {hw.get('torch', '?')} |")
    if meta_training.get("command"):
        lines += ["", "Command: `" + meta_training["command"] + "`"]
    lines += ["", "## Held-out metrics", "", "| metric | painter | MyPaint repeatability ceiling |", "|---|---|---|"]
    for k in ("psnr", "psnr_per_stroke", "ssim", "alpha_iou", "texture_ratio", "feature_distance"):
        if k in metrics:
            c = metrics.get(f"ceiling_{k}")
            lines.append(f"| {k} | {metrics[k]:.4f} | {'' if c is None else f'{c:.4f}'} |")
    lines += ["", f"Held-out strokes: {metrics.get('heldout_count', '?')} fresh random actions, whole in their "
              "tile (the strokes a painter is asked for on a canvas)"
              + _training_strokes(meta_training)
              + ". PSNR is over all held-out pixels of the stroke over white; alpha IoU at alpha > 0.5; "
              "texture_ratio is the strokes' fine texture (high-frequency energy) relative to the brush's; "
              "feature_distance is the Fréchet distance of EfficientNet-Lite0 feature statistics to MyPaint's "
              "strokes (ceiling column: MyPaint with another brush seed).", ""]
    if "bar" in metrics:
        b = metrics["bar"]
        lines += ["## The bar", "", f"- texture_ratio within {b['texture_band'][0]:.3f} .. {b['texture_band'][1]:.3f} "
                  f"(0.8 .. 1.25 x MyPaint's own): **{'met' if b['meets_texture'] else 'not met'}**",
                  f"- PSNR >= {b['psnr_bar']:.2f} dB (MyPaint's repeatability ceiling - 0.5 dB): "
                  f"**{'met' if b['meets_psnr'] else 'not met'}** ({metrics['psnr']:.2f} dB)", ""]
    if meta_training.get("after_recipe"):  # steps taken on the recipe's export before it shipped
        lines += ["## After the recipe", "", "| what | steps | wall s | command |", "|---|---|---|---|"]
        lines += [f"| {s['what']} | {s['steps']} | {s['wall_time_s']} | `{s['command']}` |"
                  for s in meta_training["after_recipe"]]
        lines.append("")
    if grid:
        lines += [f"![real vs generated]({os.path.basename(grid)})", "",
                  GRID_ROWS.format(", painter with other noise" if noise else ""), ""]
    if ink is not None:
        from .ink import card_section
        lines.append(card_section(ink))
    write_text(path, "\n".join(lines))


def _training_strokes(meta_training: dict) -> str:
    """The card's words for training strokes that are not the held-out kind (whole)."""
    words = {"whole": "whole strokes", "uniform": "uniform random actions, cut by their tile",
             "both": "whole strokes and as many uniform random actions, cut by their tile"}
    later = meta_training.get("strokes", "whole")
    step1 = meta_training.get("pretrain_strokes", later)
    if step1 == later:
        return "" if later == "whole" else f"; the training strokes were {words[later]}"
    return f"; step 1 (pre-training) was trained on {words[step1]}, the critic and GAN mode on {words[later]}"


def _data_time(path: str, generate) -> dict:
    """Run generate() and record its wall and CPU seconds in `path`; a resumed recipe keeps the first
    record (plus what this run added)."""
    before = json.load(open(path)) if os.path.exists(path) else {"wall_s": 0.0, "cpu_s": 0.0}
    t0, c0 = time.monotonic(), _cpu_seconds()
    generate()
    spent = {"wall_s": round(before["wall_s"] + time.monotonic() - t0, 1),
             "cpu_s": round(before["cpu_s"] + _cpu_seconds() - c0, 1)}
    write_text(path, json.dumps(spent))
    return spent


def run_recipe(a: argparse.Namespace) -> dict:
    """The four steps for one brush, from its data to the exported painter (the folder: the module's docstring)."""
    set_threads(a.threads)
    d = Dist(a.device)
    run = _RecipeRun(a, d)
    os.makedirs(a.out, exist_ok=True)
    run.reach = brush_reach(a.brush, a.size)
    if d.is_main:
        run.announce()
        run.generate_data()
    d.barrier()
    run.load_data()
    t0 = time.monotonic()
    b1, b3, b4 = run.stage_budgets()
    run.meta = run.training_meta()

    g1_path = run.pretrain_generator(b1)
    frozen_path = os.path.join(a.out, "2_frozen_generator.safetensors")
    if d.is_main:
        run.freeze(g1_path, frozen_path)
    d.barrier()

    candidates = {"pretrained": frozen_path}
    if run.steps4 and run.steps3:
        candidates.update(run.critic_and_gan(frozen_path, b3, b4))
    result = run.export(candidates, t0) if d.is_main else {}
    d.barrier()
    d.close()
    return result


class _RecipeRun:
    """One run of the recipe, step by step: its settings (the config's defaults fill what the command
    line left open), its data, the four stages and the export of the best candidate."""

    def __init__(self, a: argparse.Namespace, d: Dist):
        defaults = RECIPE_DEFAULTS[a.config]
        self.a, self.d = a, d
        self.steps1 = a.pretrain_steps or defaults["pretrain_steps"]
        self.steps3 = a.critic_steps or defaults["critic_steps"]
        self.steps4 = a.gan_steps if a.gan_steps is not None else defaults["gan_steps"]
        self.batch = a.batch_size or defaults["batch_size"]
        self.data_size = a.data_size or defaults["data_size"]
        self.workers = a.workers or os.cpu_count() or 1
        self.pretrain_strokes = a.pretrain_strokes or a.strokes
        kinds = {a.strokes, *(("whole", "uniform") if self.pretrain_strokes == "both" else (self.pretrain_strokes,))}
        self.data_dirs = {kind: os.path.join(a.out, "data" if kind == a.strokes else f"data_{kind}")
                          for kind in sorted(kinds)}
        self.heldout_path = os.path.join(a.out, "heldout.safetensors")
        self.brush_id = f"mypaint:{a.brush}" if not a.brush.startswith("raster") else "raster:soft_round"
        self.recon = recon_options(a)
        self.reach: BrushReach | None = None
        self.data_time: dict | None = None      # rank 0's: it generates the data
        self.data = self.pretrain_data = self.heldout = self.other = None     # load_data
        self.stage_info: dict = {}
        self.meta: dict = {}

    # -- data -----------------------------------------------------------------------------------------
    def announce(self):
        a = self.a
        print(f"[recipe] {a.brush}: data {self.data_size} {a.strokes} strokes"
              + (f" ({self.pretrain_strokes} in step 1)" if self.pretrain_strokes != a.strokes else "")
              + f" at {a.size} px, config {a.config}, noise {a.noise_dim}, steps {self.steps1}/{self.steps3}/"
                f"{self.steps4}, batch {self.batch}, device {self.d.device}, world {self.d.world}")

    def generate_data(self):
        """Every kind of training strokes and the held-out strokes (resumed where a run left them), timed."""
        a, reach = self.a, self.reach
        self.data_time = _data_time(os.path.join(a.out, "data_time.json"), lambda: (
            [ensure_data(path, a.brush, self.data_size, a.size, a.seed, self.workers,
                         reach if kind == "whole" else None)
             for kind, path in self.data_dirs.items()],
            heldout_set(self.heldout_path, a.brush, a.heldout_size, a.size, HELDOUT_SEED + a.seed, self.workers,
                        reach=reach)))

    def load_data(self):
        """Each kind of training strokes loaded once: the later stages' and step 1's taken from them."""
        loaded = {kind: load_training_data(path) for kind, path in self.data_dirs.items()}
        self.data = loaded[self.a.strokes]
        self.pretrain_data = (joined(*loaded.values()) if self.pretrain_strokes == "both"
                              else loaded[self.pretrain_strokes])
        self.heldout, extra = load_set(self.heldout_path)
        self.other = extra.get("strokes_seed1")     # the held-out actions painted with brush seed 1

    def stage_budgets(self) -> tuple[float, float, float]:
        """Time budgets of steps 1, 3 and 4: what --time-budget leaves after the data generation (rank 0
        knows it), shared out; zeros without a budget."""
        budget = self.a.time_budget
        if not budget:
            return 0, 0, 0
        left = max(0.0, budget - self.data_time["wall_s"]) if self.d.is_main else budget
        # GAN mode is where a stochastic painter learns the grain: it gets a third of the time; a
        # deterministic painter's accuracy comes from step 1
        shares = ((0.6, 0.07, 0.33) if self.a.noise_dim else (0.75, 0.08, 0.17)) if self.steps4 else (0.9, 0.1, 0.0)
        return tuple(left * s for s in shares)

    def training_meta(self) -> dict:
        """What every stage's painter file records about the run."""
        a = self.a
        return {"brush": a.brush, "config": a.config, "prior": a.prior, "colour": a.colour,
                "noise_dim": a.noise_dim, "strokes": a.strokes, "pretrain_strokes": self.pretrain_strokes,
                "data_size": len(self.data), "stroke_size": a.size,
                "recipe": "pretrain-generator -> freeze -> pretrain-critic -> gan",
                "command": "neural-painters-train " + shlex.join(sys.argv[1:])}

    # -- the four steps -------------------------------------------------------------------------------
    def pretrain_generator(self, budget: float) -> str:
        """Step 1; returns the generator file."""
        a = self.a
        out = os.path.join(a.out, "1_pretrain_generator")
        s1 = PretrainGenerator(stage_options(a, out=out, steps=self.steps1, lr=a.lr, schedule="cosine", budget=budget,
                                             batch=self.batch,
                                             extra={"config": a.config, "brush_id": self.brush_id,
                                                    "training_meta": self.meta, "prior": a.prior, "colour": a.colour,
                                                    "noise_dim": a.noise_dim, "reach": self.reach.to_dict(),
                                                    **self.recon, "texture_weight": 0.0}),
                               self.pretrain_data, self.heldout, self.d).run()
        self.stage_info["pretrain_generator"] = s1.get("summary", s1)
        return os.path.join(out, "generator.safetensors")

    def freeze(self, generator_path: str, frozen_path: str):
        """Step 2: the generator frozen (verified), as a painter file."""
        g = freeze_generator(generator_path)
        assert is_frozen(g)
        m = read_metadata(generator_path)
        save_painter(frozen_path, g, layout=m["layout"], brush=m["brush"],
                     training={**m.get("training", {}), "frozen": True}, metrics=m.get("metrics", {}),
                     reach=self.reach)

    def critic_and_gan(self, frozen_path: str, critic_budget: float, gan_budget: float) -> dict[str, str]:
        """Steps 3 (the critic pre-trained against the frozen generator) and 4 (GAN); returns the
        candidates they make: the last generator and, where it was kept, the one nearest the bar."""
        a, heldout, other = self.a, self.heldout, self.other
        n = min(len(heldout), StageOptions.eval_count)
        ceiling = repeatability_ceiling(heldout.strokes[:n], other[:n]) if other is not None else None
        s3_dir = os.path.join(a.out, "3_pretrain_critic")
        s3 = PretrainCritic(stage_options(a, out=s3_dir, steps=self.steps3, lr=a.lr, schedule="constant",
                                          budget=critic_budget, batch=self.batch, sample_every=0,
                                          extra={"config": a.config, "generator": frozen_path, "conditional": True}),
                            self.data, heldout, self.d).run()
        self.stage_info["pretrain_critic"] = s3.get("summary", s3)
        s4_dir = os.path.join(a.out, "4_gan")
        s4 = GAN(stage_options(a, out=s4_dir, steps=self.steps4, lr=a.gan_lr, schedule="constant", budget=gan_budget,
                               batch=self.batch, eval_every=a.gan_eval_every,
                               extra={"config": a.config, "generator": frozen_path,
                                      "critic": os.path.join(s3_dir, "critic.safetensors"), "gan": a.gan,
                                      "adv_weight": a.adv_weight, "ceiling": ceiling, "brush_id": self.brush_id,
                                      "training_meta": self.meta, "reach": self.reach.to_dict(), **self.recon}),
                 self.data, heldout, self.d).run()
        self.stage_info["gan"] = s4.get("summary", s4)
        candidates = {"gan": os.path.join(s4_dir, "generator.safetensors")}
        if os.path.exists(os.path.join(s4_dir, BEST_GENERATOR)):
            candidates["gan_best"] = os.path.join(s4_dir, BEST_GENERATOR)
        return candidates

    # -- export (rank 0) ------------------------------------------------------------------------------
    def export(self, candidates: dict[str, str], t0: float) -> dict:
        """Every candidate evaluated on the held-out strokes; the chosen one saved as the painter with its
        model card, evaluation and the run's summary (recipe.json)."""
        a, heldout = self.a, self.heldout
        backbone = feature_backbone(self.d.device) if self.other is not None else None
        evaluated = {name: evaluate_painter(path, heldout.actions, heldout.strokes, self.other,
                                            os.path.join(a.out, f"eval_{name}"), self.d.device, backbone=backbone)
                     for name, path in candidates.items()}
        choice = choose_export(evaluated, a.export)
        metrics = evaluated[choice]
        eval_dir = os.path.join(a.out, "eval")
        if os.path.isdir(eval_dir):
            shutil.rmtree(eval_dir)
        shutil.copytree(os.path.join(a.out, f"eval_{choice}"), eval_dir)
        painter = load_painter(candidates[choice])
        training = self.training_record(painter, choice, evaluated)
        painter_path = a.painter or os.path.join(a.out, "painter.safetensors")
        ink = self.ink(painter)
        save_painter(painter_path, painter.generator, layout=painter.layout, brush=self.brush_id, training=training,
                     metrics=metrics, reach=self.reach, ink=ink)
        card = os.path.join(a.out, "MODEL_CARD.md")
        write_model_card(card, training, metrics, os.path.join(eval_dir, "grid.png"), bool(a.noise_dim), ink)
        result = {"painter": painter_path, "metrics": metrics, "training": training, "stages": self.stage_info,
                  "wall_time_this_run_s": round(time.monotonic() - t0, 1)}
        write_text(os.path.join(a.out, "recipe.json"), json.dumps(result, indent=2, default=str))
        print(f"[recipe] painter -> {painter_path}  (exported: {choice})")
        _print_metrics(metrics)
        return result

    def ink(self, painter):
        """The painter's ink by box size, measured on its MyPaint brush (None for the rasteriser, or when
        --ink-strokes is 0)."""
        if self.brush_id.startswith("raster") or not self.a.ink_strokes:
            return None
        from .ink import fit_ink_by_size
        count = self.a.ink_strokes
        ink = fit_ink_by_size(self.a.brush, painter.layout, count, max(1, round(0.4 * count)), tile=painter.stroke_size)
        print(f"[recipe] ink by box size: " + ", ".join(f"{side} px {ink.fit['psnr_before'][side]:.2f} -> "
                                                        f"{ink.fit['psnr_after'][side]:.2f} dB"
                                                        for side in ink.fit["psnr_before"]))
        return ink

    def training_record(self, painter, choice: str, evaluated: dict[str, dict]) -> dict:
        """The exported painter's training metadata: the run, its stages' steps and times (data generation
        included) and every candidate's held-out metrics."""
        a, data_time = self.a, self.data_time
        stages = [v for v in self.stage_info.values() if isinstance(v, dict)]
        stage_wall = sum(float(v.get("wall_time_s", 0)) for v in stages)
        stage_cpu = sum(float(v.get("cpu_time_s", 0)) for v in stages)
        return {**self.meta, "layout": painter.layout.name, "exported": choice,
                "parameters": sum(p.numel() for p in painter.generator.parameters()),
                "steps": sum(int(v.get("steps", 0)) for v in stages),
                "stage_steps": {k: v.get("steps") for k, v in self.stage_info.items()},
                "batch_size": self.batch, "strokes_seen": sum(int(v.get("strokes_seen", 0)) for v in stages),
                "wall_time_s": round(stage_wall + data_time["wall_s"], 1),
                "training_wall_time_s": round(stage_wall, 1),
                "data_time_s": data_time["wall_s"], "cpu_time_s": round(stage_cpu + data_time["cpu_s"], 1),
                "data_cpu_time_s": data_time["cpu_s"], "hardware": hardware(), "world_size": self.d.world,
                "gan": a.gan if self.steps4 else None, "backbone": a.backbone, "seed": a.seed,
                **{f"metrics_{k}": v for k, v in evaluated.items()}}


def ship_fine_tune(base: str, steps: list[dict], heldout: str, out: str, device: str = "cpu") -> dict:
    """A recipe painter (`base`) after further training (`steps`, in order: {"what", "generator", "command"},
    each generator's steps and time read from its file) as a painter file at `out`: the last generator frozen,
    evaluated on the held-out set (a recipe's heldout.safetensors: the ceiling and the bar with it), with the
    base's training record, the steps taken after the recipe, its model card (OUT's stem + .md) and grid."""
    base_meta = read_metadata(base)
    after = []
    for step in steps:
        t = read_metadata(step["generator"]).get("training", {})
        after.append({"what": step["what"], "steps": t.get("steps"), "wall_time_s": t.get("wall_time_s"),
                      "cpu_time_s": t.get("cpu_time_s"), "command": step["command"]})
    last = steps[-1]["generator"]
    data, extra = load_set(heldout)
    stem = os.path.splitext(out)[0]
    eval_dir = stem + "_eval"     # the trained generator's file is evaluated as it is, as the recipe's candidates are
    metrics = evaluate_painter(last, data.actions, data.strokes, extra.get("strokes_seed1"), eval_dir, device)
    training = {**base_meta["training"], "after_recipe": after}
    generator = freeze_generator(last, device)
    ink = painter_ink(base, base_meta)      # the brush's, as measured for the base
    save_painter(out, generator, layout=base_meta["layout"], brush=base_meta["brush"], training=training,
                 metrics=metrics, reach=BrushReach.from_dict(base_meta["reach"]), ink=ink)
    grid = stem + "_grid.png"
    shutil.copyfile(os.path.join(eval_dir, "grid.png"), grid)
    shutil.rmtree(eval_dir)
    write_model_card(stem + ".md", training, metrics, grid, bool(generator.config.noise_dim), ink)
    _print_metrics(metrics)
    return metrics


def _print_metrics(metrics: dict):
    print(f"[recipe] held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics.get('ssim', float('nan')):.4f}, "
          f"alpha IoU {metrics['alpha_iou']:.3f}, texture_ratio {metrics['texture_ratio']:.3f}"
          + (f"; MyPaint ceiling PSNR {metrics['ceiling_psnr']:.2f} dB, texture_ratio "
             f"{metrics['ceiling_texture_ratio']:.3f}; feature distance {metrics['feature_distance']:.3f} "
             f"(MyPaint vs itself {metrics['ceiling_feature_distance']:.3f}); bar "
             f"{'met' if metrics['bar']['meets_bar'] else 'not met'}" if "bar" in metrics else ""))


def run_compare(a: argparse.Namespace) -> dict:
    """Pure adversarial training from scratch (Nakano-style WGAN-GP + pixel term, no feature loss,
    no texture term, no pre-training; the recipe's generator architecture, noise input included) on
    the recipe's data and held-out set, for the recipe's training CPU time (CPU seconds: a fair share
    on a machine other jobs load unevenly); then a plot and a table of held-out PSNR and texture_ratio
    against CPU time for both, and the final painters' metrics (feature distance and the bar included)."""
    set_threads(a.threads)
    d = Dist(a.device)
    with open(os.path.join(a.recipe_dir, "recipe.json")) as f:
        rec = json.load(f)
    data = load_training_data(os.path.join(a.recipe_dir, "data"))
    heldout, extra = load_set(os.path.join(a.recipe_dir, "heldout.safetensors"))
    other = extra.get("strokes_seed1")
    t = rec["training"]
    budget = a.time_budget or float(t["cpu_time_s"]) - float(t.get("data_cpu_time_s", 0))
    n = min(len(heldout), StageOptions.eval_count)
    opts = StageOptions(out=os.path.join(a.out, "scratch_gan"), steps=10 ** 9, batch_size=a.batch_size, lr=1e-4,
                        schedule="constant", seed=a.seed, device=a.device, time_budget=budget, clock="cpu",
                        eval_every=a.eval_every, sample_every=10 * a.eval_every, progress=not a.no_progress,
                        extra={"config": t.get("config", "nakano"), "prior": t.get("prior"),  # the recipe's architecture
                               "colour": t.get("colour", "residual"), "noise_dim": t.get("noise_dim", 0),
                               "generator": None, "critic": None, "gan": a.gan, "adv_weight": 1.0,
                               "backbone": "none", "feature_weight": 0.0, "texture_weight": 0.0,
                               "ceiling": repeatability_ceiling(heldout.strokes[:n], other[:n]) if other is not None else None,
                               "reach": read_metadata(rec["painter"]).get("reach"),
                               "brush_id": "scratch"})
    GAN(opts, data, heldout, d).run()
    if not d.is_main:
        d.close()
        return {}
    curves = {"four-step recipe": _recipe_curve(a.recipe_dir),
              "pure GAN from scratch": _curve(os.path.join(opts.out, "metrics.jsonl"), 0.0)}
    backbone = feature_backbone(d.device) if other is not None else None
    finals = {"four-step recipe": rec["metrics"]}
    scratch = {name: os.path.join(opts.out, f) for name, f in (("last", "generator.safetensors"),
                                                                 ("best", BEST_GENERATOR))
               if os.path.exists(os.path.join(opts.out, f))}
    for name, path in scratch.items():
        finals[f"pure GAN from scratch ({name})"] = evaluate_painter(
            path, heldout.actions, heldout.strokes, other, os.path.join(a.out, f"eval_scratch_{name}"), d.device,
            backbone=backbone)
    _plot_compare(os.path.join(a.out, "compare.png"), curves, rec["metrics"])
    rows = ["| painter | CPU min | held-out PSNR dB | texture_ratio | feature distance | bar shortfall dB |",
            "|---|---|---|---|---|---|"]
    for name, m in finals.items():
        cpu = (float(t["cpu_time_s"]) if name == "four-step recipe" else budget + float(t.get("data_cpu_time_s", 0)))
        rows.append(f"| {name} | {cpu / 60:.1f} | {m['psnr']:.2f} | {m['texture_ratio']:.3f} | "
                    f"{m.get('feature_distance', float('nan')):.3f} | {m['bar']['shortfall_db'] if 'bar' in m else float('nan'):.2f} |")
    if "ceiling_psnr" in rec["metrics"]:
        m = rec["metrics"]
        rows.append(f"| MyPaint, brush seed 1 (the ceiling) | - | {m['ceiling_psnr']:.2f} | {m['ceiling_texture_ratio']:.3f} | "
                    f"{m['ceiling_feature_distance']:.3f} | - |")
    table = "\n".join(rows)
    write_text(os.path.join(a.out, "compare.md"),
               "Held-out metrics of the final painters, same data and CPU time, same held-out strokes (CPU "
               "minutes include the data generation both share).\n\n" + table + "\n")
    write_text(os.path.join(a.out, "compare.json"), json.dumps({"curves": curves, "finals": finals}, indent=2))
    print(table)
    d.close()
    return {"curves": curves, "finals": finals}


def _plot_compare(path: str, curves: dict, metrics: dict):
    """Held-out PSNR and texture_ratio against CPU minutes, with MyPaint's ceiling and the texture band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts in curves.items():
        if pts:
            minutes = [p[0] / 60 for p in pts]
            axes[0].plot(minutes, [p[1] for p in pts], marker="o", ms=3, label=name)
            axes[1].plot(minutes, [p[2] for p in pts], marker="o", ms=3, label=name)
    if "ceiling_psnr" in metrics:
        axes[0].axhline(metrics["ceiling_psnr"], ls="--", c="gray", label="MyPaint repeatability ceiling")
        axes[0].axhline(metrics["ceiling_psnr"] - 0.5, ls=":", c="gray", label="the bar (ceiling - 0.5 dB)")
        lo, hi = metrics["bar"]["texture_band"]
        axes[1].axhspan(lo, hi, color="green", alpha=0.1, label="the bar (0.8-1.25 x MyPaint's)")
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[1].set_ylabel("held-out texture_ratio")
    for ax in axes:
        ax.set_xlabel("CPU minutes (data generation included)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _curve(jsonl: str, offset: float):
    """(CPU seconds + offset, held-out PSNR, texture_ratio) of each evaluation in a stage's log."""
    pts = []
    if os.path.exists(jsonl):
        with open(jsonl) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "eval_psnr" in r and "cpu_time" in r:
                    pts.append((offset + r["cpu_time"], r["eval_psnr"], r["eval_texture_ratio"]))
    return pts


def _recipe_curve(recipe_dir: str):
    """Held-out PSNR and texture of the recipe against its cumulative CPU time (data generation included)."""
    with open(os.path.join(recipe_dir, "recipe.json")) as f:
        rec = json.load(f)
    offset = float(rec["training"].get("data_cpu_time_s", 0))
    pts = _curve(os.path.join(recipe_dir, "1_pretrain_generator", "metrics.jsonl"), offset)
    s1 = float(rec["stages"].get("pretrain_generator", {}).get("cpu_time_s", 0))
    s3 = float(rec["stages"].get("pretrain_critic", {}).get("cpu_time_s", 0))
    pts += _curve(os.path.join(recipe_dir, "4_gan", "metrics.jsonl"), offset + s1 + s3)
    return pts
