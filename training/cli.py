"""`neural-painters-train`: the recipe's steps as subcommands.

  pretrain-generator   step 1: feature + stroke-weighted pixel/alpha loss, no adversary
  freeze               step 2: freeze a generator for real and write it (verification included)
  pretrain-critic      step 3: BCE classifier real vs G(a) with the frozen generator
  gan                  step 4: both continue adversarially (--gan bce | wgan-gp)
  recipe               data (if missing) -> 1 -> 2 -> 3 -> 4 -> evaluation -> painter export
  evaluate             held-out metrics + repeatability ceiling + grid PNG of a painter file
  ship                 a recipe painter after further training (e.g. pretrain-generator --init PAINTER) as a
                       painter file: its record, the steps taken after the recipe, metrics, model card, grid
  compare              pure adversarial training from scratch vs the recipe: PSNR against wall time
  predictor            a stroke predictor for a painter (Predict Strokes, neural-painters paint --init predict)

Every training subcommand resumes from its folder's state.safetensors when run again (use
--fresh to start over; predictor: from the state file beside its --out) and, but for predictor, runs under
torchrun for DistributedDataParallel, e.g.
  python -m torch.distributed.run --nproc_per_node 2 -m neural_painters_training.cli pretrain-generator ...
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from painter_models.painter.model import COLOURS

from .options import DEFAULT_HELDOUT, HELDOUT_SEED, RECIPE_DEFAULTS, recon_options, set_threads, stage_options
from .predictor import add_parser as add_predictor_parser

def add_common(p: argparse.ArgumentParser, steps: int | None = None, lr: float = 1e-3):
    g = p.add_argument_group("training")
    g.add_argument("--out", required=True, help="folder of this stage (state, logs, samples, product)")
    g.add_argument("--data", help="training strokes: a dataset folder (neural-painters-dataset) or a .safetensors set")
    g.add_argument("--heldout", help="held-out set (.safetensors, written by `recipe`/`evaluate`) for eval during training")
    g.add_argument("--config", default="nakano", help="model size: tiny | nakano | large")
    g.add_argument("--steps", type=int, default=steps, help="optimiser steps of this stage")
    g.add_argument("--batch-size", type=int, default=64, help="global batch (split over torchrun processes)")
    g.add_argument("--lr", type=float, default=lr)
    g.add_argument("--schedule", choices=("cosine", "constant"), default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    g.add_argument("--time-budget", type=float, default=0, help="seconds for this stage (0 = steps only)")
    g.add_argument("--checkpoint-every", type=int, default=500, help="steps between training-state checkpoints")
    g.add_argument("--checkpoint-seconds", type=float, default=120, help="also checkpoint after this many seconds")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--eval-every", type=int, default=250)
    g.add_argument("--sample-every", type=int, default=500)
    g.add_argument("--fresh", action="store_true", help="ignore an existing state and start over")
    g.add_argument("--no-progress", action="store_true")


def add_recon(p):
    g = p.add_argument_group("reconstruction loss")
    g.add_argument("--backbone", default="efficientnet_lite0", help="efficientnet_lite0 | vgg16 | vgg16_bn | none")
    g.add_argument("--backbone-weights", default="auto", help="auto | random | path to a state dict")
    g.add_argument("--backbone-layers", default=None, help="comma-separated layer names (default: the backbone's)")
    g.add_argument("--feature-weight", type=float, default=0.1)
    g.add_argument("--pixel-weight", type=float, default=1.0)
    g.add_argument("--alpha-weight", type=float, default=1.0)
    g.add_argument("--stroke-weight", type=float, default=10.0, help="extra weight of stroke pixels (alpha > 0)")
    g.add_argument("--mse-weight", type=float, default=0.0, help="weight of a stroke-weighted squared-error term "
                   "(what PSNR measures)")
    g.add_argument("--edge-weight", type=float, default=0.0,
                   help="weight of a stroke-weighted edge term: the error of neighbouring pixels' differences (a "
                        "deterministic brush's edges where they are, not softer)")
    g.add_argument("--texture-weight", type=float, default=None,
                   help="weight of the texture term: each stroke's fine-texture energy against the real stroke's "
                        "(squared log ratio; the grain's amount, not its place). Default: 0, and 1 in GAN mode of a "
                        "painter with a noise input (on a deterministic painter it buys texture_ratio with a "
                        "hatch along the strokes, not crisper edges)")


def _load_data(a):
    from .data import load_set, load_training_data
    if not a.data:
        raise SystemExit("--data is required (a dataset folder or .safetensors stroke set)")
    data = load_training_data(a.data)
    heldout = load_set(a.heldout)[0] if a.heldout else None
    return data, heldout


def _run_stage(cls, a, default_schedule, extra):
    from .distributed import Dist
    set_threads(a.threads)
    if a.steps is None and not a.time_budget:
        raise SystemExit("give --steps or --time-budget")
    if a.steps is None:
        a.steps = 10 ** 9
    d = Dist(a.device)
    try:
        data, heldout = _load_data(a)
        options = stage_options(a, out=a.out, steps=a.steps, lr=a.lr, schedule=a.schedule or default_schedule,
                                budget=a.time_budget, batch=a.batch_size, extra=extra)
        stage = cls(options, data, heldout, d)
        return stage.run()
    finally:
        d.close()


# -- subcommands ------------------------------------------------------------------------------
def cmd_pretrain_generator(a):
    from .stages import PretrainGenerator
    extra = {"config": a.config, "init": a.init, "prior": a.prior, "colour": a.colour, "noise_dim": a.noise_dim,
             "training_meta": {"command": "neural-painters-train " + shlex.join(a.argv), "init": a.init},
             **recon_options(a)}
    return _run_stage(PretrainGenerator, a, "cosine", extra)


def cmd_freeze(a):
    from painter_models.painter.checkpoint import read_metadata, save_painter
    from painter_models.brush.actions import get_layout
    from .freezing import is_frozen
    from .stages import freeze_generator
    g = freeze_generator(a.generator, colour_from_action=a.colour_from_action)
    meta = read_metadata(a.generator)
    assert is_frozen(g) and all(not p.requires_grad for p in g.parameters())
    training = {**meta.get("training", {}), "frozen": True, "colour": g.config.colour}
    save_painter(a.out, g, layout=get_layout(meta["layout"]), brush=meta["brush"], training=training,
                 metrics=meta.get("metrics", {}))
    print(f"frozen generator ({sum(p.numel() for p in g.parameters())} parameters, none trainable) -> {a.out}")


def cmd_pretrain_critic(a):
    from .stages import PretrainCritic
    extra = {"config": a.config, "generator": a.generator, "conditional": not a.unconditional}
    return _run_stage(PretrainCritic, a, "constant", extra)


def cmd_gan(a):
    from .stages import GAN
    extra = {"config": a.config, "generator": a.generator, "critic": a.critic, "gan": a.gan,
             "n_critic": a.n_critic, "adv_weight": a.adv_weight, "gp_weight": a.gp_weight,
             "critic_lr": a.critic_lr or a.lr, "conditional": not a.unconditional, "prior": a.prior,
             "colour": a.colour, "noise_dim": a.noise_dim, **recon_options(a)}
    return _run_stage(GAN, a, "constant", extra)


def cmd_evaluate(a):
    from .data import heldout_set, load_set
    from .evaluate import evaluate_painter
    from painter_models.painter.checkpoint import read_metadata
    set_threads(a.threads)
    if a.heldout and os.path.exists(a.heldout):
        data, extra = load_set(a.heldout)
        other = extra.get("strokes_seed1")
    else:   # fresh strokes, whole in their tile where the painter's metadata has the brush's reach (every recipe
            # painter's has, whatever it trained on; older painters without one get uniform strokes)
        from painter_models.brush.actions import BrushReach
        meta = read_metadata(a.painter)
        brush = a.brush or meta.get("brush", "").split(":", 1)[-1]
        path = a.heldout or os.path.join(a.out, "heldout.safetensors")
        reach = BrushReach.from_dict(meta["reach"]) if "reach" in meta else None
        data, other = heldout_set(path, brush, a.count, int(meta["stroke_size"]), a.seed, a.workers, reach=reach)
    m = evaluate_painter(a.painter, data.actions, data.strokes, other, a.out)
    print(json.dumps(m, indent=2))
    return m


def cmd_ship(a):
    from .recipe import ship_fine_tune
    set_threads(a.threads)
    with open(a.steps) as f:
        steps = json.load(f)
    return ship_fine_tune(a.base, steps, a.heldout, a.out)


def cmd_ink(a):
    from painter_models.brush.rerender import mypaint_brush_name
    from painter_models.painter.checkpoint import load_painter, save_painter
    from .ink import fit_ink_by_size, write_card_section
    set_threads(a.threads)
    painter = load_painter(a.painter, ink=False)     # measured again: a damaged or older record is replaced
    brush = mypaint_brush_name(painter.brush)
    if brush is None:
        raise SystemExit(f"{a.painter!r} imitates {painter.brush!r}, not a MyPaint brush: its ink by box size is "
                         f"measured on MyPaint")
    painter.ink = fit_ink_by_size(brush, painter.layout, a.strokes, a.check_strokes, a.steps, tile=painter.stroke_size)
    out = a.out or a.painter
    save_painter(out, painter)
    card = os.path.splitext(out)[0] + ".md"
    if os.path.isfile(card):
        write_card_section(card, painter.ink)
    fit = painter.ink.fit
    print(f"[ink] {brush}: PSNR by box side on {fit['check_strokes']} strokes, scaled tile -> with the ink by size: "
          + ", ".join(f"{side} px {fit['psnr_before'][side]:.2f} -> {fit['psnr_after'][side]:.2f}"
                      for side in fit["psnr_before"]))
    print(f"[ink] wrote {out}" + (f" and its card's section ({card})" if os.path.isfile(card) else ""))


def cmd_recipe(a):
    from .recipe import run_recipe
    return run_recipe(a)


def cmd_compare(a):
    from .recipe import run_compare
    return run_compare(a)


def add_generator_options(p):
    p.add_argument("--prior", default="none", help="generator prior (GeneratorConfig.prior), e.g. raster")
    p.add_argument("--noise-dim", type=int, default=0,
                   help="noise numbers per stroke (GeneratorConfig.noise_dim): a stochastic painter that paints "
                        "the brush's grain (GAN mode learns it); 0: deterministic, for brushes without grain")
    p.add_argument("--colour", choices=COLOURS, default="action",
                   help="stroke colour: the action's own (action: brushes that lay down the colour they are "
                        "given) or a learned residual on it (residual: brushes that mix or tint)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neural-painters-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    _add_pretrain_generator(sub)
    _add_freeze(sub)
    _add_pretrain_critic(sub)
    _add_gan(sub)
    _add_recipe(sub)
    _add_evaluate(sub)
    _add_ship(sub)
    _add_ink(sub)
    _add_compare(sub)
    add_predictor_parser(sub)
    return p


def _add_pretrain_generator(subcommands):
    s = subcommands.add_parser("pretrain-generator", help="step 1: feature + pixel/alpha loss")
    add_common(s, lr=1e-3)
    add_recon(s)
    s.add_argument("--init", help="start from this painter file instead of random weights")
    add_generator_options(s)
    s.set_defaults(func=cmd_pretrain_generator)


def _add_freeze(subcommands):
    s = subcommands.add_parser("freeze", help="step 2: freeze a generator (parameters + eval mode)")
    s.add_argument("--generator", required=True)
    s.add_argument("--out", required=True, help="output painter file")
    s.add_argument("--colour-from-action", action="store_true",
                   help="drop a learned colour residual: strokes take the action's colour exactly, as MyPaint "
                        "paints them (colour='action'); the alpha is unchanged")
    s.set_defaults(func=cmd_freeze)


def _add_pretrain_critic(subcommands):
    s = subcommands.add_parser("pretrain-critic", help="step 3: BCE critic on real vs G(a), G frozen")
    add_common(s, lr=1e-3)
    s.add_argument("--generator", required=True, help="painter file from pretrain-generator")
    s.add_argument("--unconditional", action="store_true", help="critic without the action (Libre AI)")
    s.set_defaults(func=cmd_pretrain_critic)


def _add_gan(subcommands):
    s = subcommands.add_parser("gan", help="step 4: adversarial training, feature loss kept")
    add_common(s, lr=1e-4)
    add_recon(s)
    s.add_argument("--generator", help="painter file (pre-trained generator); none = from scratch")
    s.add_argument("--critic", help="critic file from pretrain-critic; none = fresh critic")
    s.add_argument("--gan", choices=("bce", "wgan-gp"), default="bce")
    s.add_argument("--n-critic", type=int, default=0, help="critic steps per generator step (default 1 bce, 5 wgan-gp)")
    s.add_argument("--adv-weight", type=float, default=None, help="weight of the adversarial term for G")
    s.add_argument("--gp-weight", type=float, default=10.0)
    s.add_argument("--critic-lr", type=float, default=None)
    s.add_argument("--unconditional", action="store_true")
    add_generator_options(s)   # of a generator trained from scratch (no --generator)
    s.set_defaults(func=cmd_gan)


def _add_recipe(subcommands):
    s = subcommands.add_parser("recipe", help="the whole recipe for one brush, data to exported painter")
    s.add_argument("--brush", required=True, help="MyPaint preset (classic/dry_brush) or 'raster'")
    s.add_argument("--out", required=True)
    s.add_argument("--config", default="nakano", choices=sorted(RECIPE_DEFAULTS))
    s.add_argument("--size", type=int, default=64, help="stroke size in pixels")
    s.add_argument("--data-size", type=int, default=None, help="training strokes to generate")
    s.add_argument("--heldout-size", type=int, default=DEFAULT_HELDOUT)
    s.add_argument("--pretrain-steps", type=int, default=None)
    s.add_argument("--critic-steps", type=int, default=None)
    s.add_argument("--gan-steps", type=int, default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--lr", type=float, default=1e-3, help="learning rate of step 1 (and 3)")
    s.add_argument("--gan-lr", type=float, default=1e-4)
    s.add_argument("--gan", choices=("bce", "wgan-gp"), default="bce")
    s.add_argument("--adv-weight", type=float, default=None)
    add_generator_options(s)
    s.add_argument("--export", choices=("best", "gan", "gan_best", "pretrained"), default="best",
                   help="which generator becomes the painter: the one nearest the bar on the held-out strokes "
                        "(best: texture_ratio in its band and PSNR near MyPaint's ceiling, see neural_painters_training.evaluate.bar), "
                        "or a fixed one (gan_best: GAN mode's generator nearest the bar during training)")
    s.add_argument("--strokes", choices=("whole", "uniform"), default="whole",
                   help="training strokes: whole in their tile for the brush's reach (what a painter is asked for "
                        "on a canvas), or uniform random actions (cut by the tile); the held-out strokes are whole")
    s.add_argument("--pretrain-strokes", choices=("whole", "uniform", "both"), default=None,
                   help="step 1's training strokes where they differ from --strokes (default: the same; both: whole and "
                        "uniform together): a painter pre-trained on uniform strokes paints photographs better, GAN mode "
                        "on whole strokes learns the grain where the bar measures it (BENCHMARKS.md, 'Where the gap "
                        "comes from')")
    s.add_argument("--gan-eval-every", type=int, default=100, help="GAN steps between held-out evaluations "
                   "(each may keep a new best generator)")
    add_recon(s)
    s.add_argument("--time-budget", type=float, default=0, help="seconds for the whole recipe (split over stages)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--workers", type=int, default=0, help="rendering processes for data (0 = CPU count)")
    s.add_argument("--painter", help="where to write the painter (default OUT/painter.safetensors)")
    s.add_argument("--ink-strokes", type=int, default=1500,
                   help="strokes on which the exported painter's ink by box size is measured (the `ink` "
                        "subcommand's --strokes; MyPaint brushes only; 0: not measured)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--no-amp", action="store_true")
    s.add_argument("--checkpoint-every", type=int, default=500)
    s.add_argument("--checkpoint-seconds", type=float, default=120)
    s.add_argument("--eval-every", type=int, default=500)
    s.add_argument("--sample-every", type=int, default=1000)
    s.set_defaults(func=cmd_recipe)


def _add_evaluate(subcommands):
    s = subcommands.add_parser("evaluate", help="held-out metrics, repeatability ceiling and grid of a painter")
    s.add_argument("--painter", required=True)
    s.add_argument("--out", required=True, help="folder for metrics.json and grid.png")
    s.add_argument("--heldout", help="held-out set; generated into OUT/heldout.safetensors if missing")
    s.add_argument("--brush", help="brush to render the held-out set with (default: the painter's)")
    s.add_argument("--count", type=int, default=DEFAULT_HELDOUT)
    s.add_argument("--seed", type=int, default=HELDOUT_SEED + 1)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--threads", type=int, default=0)
    s.set_defaults(func=cmd_evaluate)


def _add_ship(subcommands):
    s = subcommands.add_parser("ship", help="a recipe painter after further training, as a painter file with its "
                                            "record, held-out metrics, model card and grid")
    s.add_argument("--base", required=True, help="the recipe's painter the training started from")
    s.add_argument("--steps", required=True, help='JSON file: [{"what": ..., "generator": GENERATOR_FILE, '
                                                  '"command": ...}, ...], in the order they ran, the last the one shipped')
    s.add_argument("--heldout", required=True, help="the held-out set (a recipe's heldout.safetensors, with the "
                                                    "strokes of MyPaint's second brush seed)")
    s.add_argument("--out", required=True, help="the painter file (its .md model card and _grid.png beside it)")
    s.add_argument("--threads", type=int, default=0)
    s.set_defaults(func=cmd_ship)


def _add_ink(subcommands):
    s = subcommands.add_parser("ink", help="measure on MyPaint how much ink the painter's brush lays in boxes of other "
                                           "sizes, and keep it in the painter file (the canvas applies it)")
    s.add_argument("--painter", required=True)
    s.add_argument("--out", help="the painter file to write (default: the painter, in place; its .md card beside it "
                                 "gets the section)")
    s.add_argument("--strokes", type=int, default=1500, help="strokes the fit sees (at every box side)")
    s.add_argument("--check-strokes", type=int, default=600, help="other strokes the fit is checked on")
    s.add_argument("--steps", type=int, default=1500)
    s.add_argument("--threads", type=int, default=0)
    s.set_defaults(func=cmd_ink)


def _add_compare(subcommands):
    s = subcommands.add_parser("compare", help="recipe vs pure adversarial training from scratch (PSNR vs wall time)")
    s.add_argument("--recipe-dir", required=True, help="a finished recipe folder (its data and held-out set are reused)")
    s.add_argument("--out", required=True)
    s.add_argument("--time-budget", type=float, default=None, help="seconds for the from-scratch run "
                   "(default: the recipe's wall time)")
    s.add_argument("--gan", choices=("bce", "wgan-gp"), default="wgan-gp")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--eval-every", type=int, default=100)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_compare)


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)      # the command as typed, for model cards
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
