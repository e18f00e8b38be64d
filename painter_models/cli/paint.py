"""`neural-painters paint`: paint a photograph (or a text prompt) with brushstrokes.

    neural-painters paint IMAGE --strokes 300 --size 384 --out painting.png
    neural-painters paint IMAGE --json strokes.json --svg strokes.svg --frames timelapse.webp --rerender big.png
    neural-painters paint --prompt "black sheep" --clip ViT-B-32 --clip-weights openai --out sheep.png
    neural-painters paint --imagenet-class goldfish --strokes 200 --out goldfish.png

Image mode minimises a pixel distance (L2), optionally plus a perceptual feature loss
(--feature-weight; offline EfficientNet-Lite0 by default, or VGG16 with local weights); text mode
minimises a CLIP text loss (weights needed: a file or an open_clip tag). Both together paint the
image steered by the prompt. --imagenet-class paints what the offline EfficientNet-Lite0 ImageNet
classifier recognises as that class (no CLIP, no download), alone or with the other objectives.
The painting settings (strokes, rounds, steps, sizes, palette, ...) are painting/settings.py's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from ..brush.mypaint import MyPaintUnavailable
from ..painter.shipped import DEFAULT_PAINTER, find_painter, shipped_painters
from ..painting.settings import CLIP_SETTINGS, plan_canvas
from .common import (CliError, ShortErrorParser, add_setting_flags, check_output_path, default_threads, float_range,
                     int_range, pick_device, settings_from_args)

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp")


def build_parser() -> argparse.ArgumentParser:
    ap = ShortErrorParser(prog="neural-painters", description="Stroke-based neural painting.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("paint", help="paint an image or a text prompt with brushstrokes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="photograph to paint (PNG, JPEG, WebP, ...); optional with --prompt")
    p.add_argument("--out", "-o", default="painting.png", help="output PNG (default: painting.png)")
    p.add_argument("--painter", default=None,
                   help="painter checkpoint (.safetensors) or a shipped painter's name: "
                        f"{', '.join(shipped_painters()) or 'none shipped'} (default: {DEFAULT_PAINTER})")
    add_setting_flags(p, exclude=CLIP_SETTINGS)
    p.add_argument("--predictor", default=None,
                   help="stroke predictor file for --init predict (default: the one shipped for the painter's brush)")
    _add_objective_flags(p.add_argument_group("what the strokes are optimised for"))
    _add_output_flags(p.add_argument_group("more outputs"))
    run = p.add_argument_group("running")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    run.add_argument("--threads", type=int_range(1, 1024, "--threads"), default=None,
                     help="CPU threads for torch (default: torch's, fewer when other jobs keep the cores busy)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    from .video import add_video_parser
    add_video_parser(sub)
    return ap


def _add_objective_flags(g):
    g.add_argument("--backbone", default="efficientnet_lite0",
                   help="feature network: efficientnet_lite0 (offline, default), vgg16, vgg16_bn")
    g.add_argument("--backbone-weights", default="auto",
                   help="weights file for the backbone (default: the packaged / cached weights)")
    g.add_argument("--feature-weight", type=float_range(0, 1e6, "--feature-weight"), default=0.0,
                   help="weight of the perceptual feature loss through --backbone beside the pixel loss (default "
                        "0: pixel loss only, fastest and best PSNR; 1: the example workflow's balance, strokes that "
                        "follow the photo's edges and textures, in its colours; about 40%% slower)")
    g.add_argument("--pixel-weight", type=float_range(0, 1e6, "--pixel-weight"), default=1.0,
                   help="weight of the pixel loss (default 1)")
    g.add_argument("--pixel-loss", choices=("l1", "l2"), default="l2", help="pixel distance (default l2)")
    g.add_argument("--prompt", action="append", default=None, help="text to paint (CLIP); repeat for several prompts")
    g.add_argument("--negative", action="append", default=[], help="negative prompt (repeatable)")
    g.add_argument("--clip", default="ViT-B-32", help="open_clip model name (default ViT-B-32)")
    g.add_argument("--clip-weights", default=None,
                   help="CLIP checkpoint file or open_clip pretrained tag (e.g. openai); required for --prompt")
    g.add_argument("--clip-weight", type=float_range(0, 1e6, "--clip-weight"), default=1.0,
                   help="weight of the CLIP text loss (default 1)")
    g.add_argument("--negative-weight", type=float_range(0, 10, "--negative-weight"), default=0.3,
                   help="weight of the negative prompts (default 0.3, CLIPDraw's)")
    g.add_argument("--cutouts", type=int_range(1, 64, "--cutouts"), default=4,
                   help="augmented crops scored per step by CLIP and the ImageNet classifier (default 4)")
    g.add_argument("--imagenet-class", action="append", default=None, metavar="NAME",
                   help="paint an ImageNet-1k class (e.g. goldfish, lemon, volcano; a name or an index), "
                        "judged by the offline EfficientNet-Lite0; repeat for several")
    g.add_argument("--imagenet-weight", type=float_range(0, 1e6, "--imagenet-weight"), default=1.0,
                   help="weight of the ImageNet class loss (default 1)")
    g.add_argument("--imagenet-size", type=int_range(64, 512, "--imagenet-size"), default=224,
                   help="side of the crops the classifier sees (default 224, its own; 160 is faster on a CPU)")


def _add_output_flags(g):
    g.add_argument("--json", default=None, help="write the stroke list as JSON")
    g.add_argument("--svg", default=None, help="write the strokes as SVG")
    g.add_argument("--frames", default=None, help="write a stroke-by-stroke time-lapse (.webp or .gif)")
    g.add_argument("--frame-count", type=int_range(2, 2000, "--frame-count"), default=60,
                   help="frames in the time-lapse (default 60)")
    g.add_argument("--fps", type=float_range(0.5, 60, "--fps"), default=12.0, help="time-lapse frames per second")
    g.add_argument("--rerender", default=None,
                   help="re-render the strokes with the real MyPaint brush to this PNG (needs libmypaint)")
    g.add_argument("--rerender-scale", type=float_range(0.1, 16, "--rerender-scale"), default=4.0,
                   help="scale of the MyPaint re-render (default 4)")
    g.add_argument("--snapshots", default=None,
                   help="folder for snapshots of the optimisation (PNG), taken every --snapshot-every steps")


# ----------------------------------------------------------------------------------------------
# paint


@dataclass
class Request:
    """What was asked for, checked before anything slow."""
    prompts: list | None
    classes: list | None


def _check_request(args) -> Request:
    prompts = None
    if args.prompt is not None:
        prompts = [p.strip() for p in args.prompt if p.strip()]
        if not prompts:
            raise CliError("--prompt is empty: say what to paint, e.g. --prompt \"a black sheep\"")
        if not args.clip_weights:
            raise CliError("--prompt needs CLIP weights: pass --clip-weights with a checkpoint file "
                           "(e.g. ViT-B-32.pt / open_clip_model.safetensors) or an open_clip tag such as 'openai' "
                           "(downloaded once when online)")
    if args.image is None and prompts is None and not args.imagenet_class:
        raise CliError("give an IMAGE to paint, --prompt TEXT or --imagenet-class NAME (see neural-painters paint --help)")
    classes = None
    if args.imagenet_class:
        from ..objectives.imagenet_loss import UnknownImageNetClass, imagenet_class
        try:
            classes = [imagenet_class(c) for c in args.imagenet_class]
        except UnknownImageNetClass as e:
            raise CliError(f"--imagenet-class: {e}") from None
    if args.snapshots and not args.snapshot_every:
        raise CliError("--snapshots needs --snapshot-every N (a snapshot every N steps)")
    for path, exts, what in ((args.out, IMAGE_OUTPUTS, "--out"), (args.json, (".json",), "--json"),
                             (args.svg, (".svg",), "--svg"), (args.frames, (".webp", ".gif"), "--frames"),
                             (args.rerender, IMAGE_OUTPUTS, "--rerender")):
        check_output_path(path, exts, what)
    return Request(prompts, classes)


def _objective(args, request: Request, image, dev):
    """The terms asked for, CLIP first: a missing CLIP fails fast, before anything slow."""
    from ..objectives.clip_loss import ClipTextLoss
    from ..objectives.losses import combine
    terms = []
    if request.prompts:
        from ..objectives.clip_loader import ClipWeightsMissing, load_clip
        try:
            clip = load_clip(args.clip, args.clip_weights, device=dev)
        except ClipWeightsMissing:
            raise
        except ValueError as e:
            raise CliError(f"--clip/--clip-weights: {e}") from None
        terms.append(("clip", args.clip_weight, ClipTextLoss(clip, request.prompts, args.negative, cutouts=args.cutouts,
                                                            negative_weight=args.negative_weight, seed=args.seed)))
    if request.classes:
        from ..objectives.imagenet_loss import ImageNetClassLoss
        terms.append(("imagenet", args.imagenet_weight, ImageNetClassLoss(
            request.classes, cutouts=args.cutouts, input_size=args.imagenet_size, seed=args.seed)))
    if image is not None and (args.pixel_weight or args.feature_weight):
        from ..objectives.backbones import build_backbone
        from ..objectives.objective import photo_objective
        backbone = None
        if args.feature_weight:
            try:
                backbone = build_backbone(args.backbone, weights=args.backbone_weights, device=dev)
            except (FileNotFoundError, ValueError) as e:
                raise CliError(f"--backbone {args.backbone}: {e}") from None
        photo = photo_objective(image, pixel=args.pixel_weight, feature=args.feature_weight, backbone=backbone,
                                pixel_kind=args.pixel_loss)
        terms.extend(zip(photo.names, photo.weights, photo.terms))
    if not terms:
        raise CliError("every loss weight is 0: nothing to optimise")
    return combine(terms).to(dev)


def _paint(painter, objective, canvas_size, settings, image, args, dev, log):
    """paint() with a progress bar; Ctrl-C keeps the painting so far."""
    from ..painting.optimize import paint
    start = "predicted, then refined in" if settings.init == "predict" else "seeded,"
    log(f"painting {canvas_size[1]}x{canvas_size[0]} px with {settings.strokes} strokes {start} {settings.steps} steps, "
        f"painter {os.path.basename(painter.path)} ({painter.brush}), on {dev}")
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        polish = settings.polish_steps if settings.init == "seed" else 0    # predicted strokes are refined, not polished
        bar = tqdm(total=settings.steps + polish, unit="step", dynamic_ncols=True, file=sys.stderr)

    def progress(info):
        if bar is not None:
            bar.update(info.step - bar.n)
            bar.set_postfix(loss=f"{info.loss:.4f}", strokes=info.n_strokes, round=f"{info.round + 1}/{info.rounds}")

    try:
        return paint(painter, objective, canvas_size, settings, target_for_seeding=image, callback=progress,
                     device=dev, predictor=args.predictor)
    except KeyboardInterrupt as e:
        if getattr(e, "paint_result", None) is None:
            raise
        log("interrupted: saving the painting so far")
        return e.paint_result
    finally:
        if bar is not None:
            bar.close()


def _summary(result, image, canvas_size, seconds) -> str:
    msg = f"{len(result.strokes)} strokes in {seconds:.1f} s"
    if image is not None:
        from ..metrics import psnr
        from ..objectives.image_ops import fit_to
        target = fit_to(image.to(result.canvas.device), *canvas_size)
        msg += f", PSNR {float(psnr(result.canvas, target)):.2f} dB"
    msg += f", painted by {result.renderer}" + (f" ({result.note})" if result.note else "")
    return msg + (" (interrupted)" if result.cancelled else "")


def run_paint(args) -> int:
    request = _check_request(args)
    settings = settings_from_args(args)
    if args.predictor and settings.init != "predict":
        raise CliError("--predictor is the stroke predictor of --init predict: add --init predict, or leave it out")
    from ..export.image_files import load_image, save_image
    image = load_image(args.image) if args.image else None
    canvas_size, _ = plan_canvas(settings, None if image is None else tuple(image.shape[-2:]))
    painter_path = find_painter(args.painter)

    import torch
    from ..export.exports import ExportRequest, write_exports
    from ..painter.checkpoint import load_painter
    dev = pick_device(args.device)
    torch.set_num_threads(args.threads or default_threads())
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    objective = _objective(args, request, image, dev)
    painter = load_painter(painter_path, device=dev)
    t0 = time.perf_counter()
    result = _paint(painter, objective, canvas_size, settings, image, args, dev, log)
    seconds = time.perf_counter() - t0
    result.strokes.extra["painter"] = os.path.basename(painter_path)
    save_image(args.out, result.canvas)
    exports = ExportRequest(args.json, args.svg, args.frames, args.frame_count, args.fps, args.snapshots,
                            args.rerender, args.rerender_scale)
    written = [args.out] + write_exports(result, painter, exports)
    log(_summary(result, image, canvas_size, seconds))
    log("wrote " + ", ".join(written))
    return 0


def _video(args) -> int:
    from .video import run_paint_video
    return run_paint_video(args)


SUBCOMMANDS = {"paint": run_paint, "paint-video": _video}


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help(sys.stderr)
        return 2
    try:
        return SUBCOMMANDS[args.command](args)
    except (CliError, ValueError, FileNotFoundError, MyPaintUnavailable) as e:
        # the core's own errors (settings, files, painters, weights) say what is wrong and how to fix it
        print(f"neural-painters {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
