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
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

from ..painter.checkpoint import DEFAULT_PAINTER, WEIGHTS_DIR

MAX_SIZE = 4096
MAX_STROKES = 20_000
MAX_STEPS = 100_000


# The defaults of a painting from the command line (and the painting bench): with the real brush in
# the loop, 3 rounds of 200 steps in all paint 200 strokes at 256 px best within the time asked of them
# (astronaut 21.35 dB at 3 rounds, 21.00 at 4, 20.97 with 150 steps; BENCHMARKS.md)
DEFAULT_ROUNDS, DEFAULT_STEPS = 3, 200


class CliError(Exception):
    """A user error: printed as 'error: ...' with exit status 2, never a traceback."""


# ----------------------------------------------------------------------------------------------
# painters


def shipped_painters() -> dict[str, str]:
    """{name: path} of the painters shipped in painter_models/weights/ (name = file stem)."""
    return {os.path.splitext(os.path.basename(p))[0]: p
            for p in sorted(glob.glob(os.path.join(WEIGHTS_DIR, "*.safetensors")))}


def resolve_painter_path(spec: str | None) -> str:
    """A painter file from a path or a shipped name ('dry_brush', 'classic/dry_brush', a file stem)."""
    shipped = shipped_painters()
    if spec is None:
        if shipped:
            return shipped.get(DEFAULT_PAINTER, next(iter(shipped.values())))
        raise CliError(f"no painter is shipped in {WEIGHTS_DIR}; pass --painter PATH.safetensors "
                       f"(train one with: neural-painters-train recipe --brush classic/dry_brush)")
    path = os.path.expanduser(spec)
    if os.path.isfile(path):
        return path
    key = spec.replace("classic/", "").replace("mypaint:", "").replace("/", "_")
    for name in (spec, key):
        if name in shipped:
            return shipped[name]
    matches = [p for n, p in shipped.items() if key in n]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(shipped) or "none"
    raise CliError(f"painter {spec!r} is neither a file nor a shipped painter (shipped: {known})")


# ----------------------------------------------------------------------------------------------
# arguments


def _positive_int(lo, hi, what):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be {lo}..{hi}, got {v}")
        return v
    return parse


def _float_range(lo, hi, what):
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo:g}..{hi:g}, got {v:g}")
        return v
    return parse


class ShortErrorParser(argparse.ArgumentParser):
    """An argparse parser whose errors take three lines: a one-line usage, the error, where the options are
    (argparse's own prints the whole usage first, 22 lines for `paint`, and the error is lost under it)."""

    def short_usage(self) -> str:
        positionals = [a for a in self._actions if not a.option_strings]
        names = [f"[{a.metavar or a.dest}]" if a.nargs in ("?", "*") else (a.metavar or a.dest) for a in positionals]
        return " ".join(["usage:", self.prog, "[options]", *names])

    def error(self, message):
        self.exit(2, f"{self.short_usage()}\n{self.prog}: error: {message}\n(all options: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = ShortErrorParser(prog="neural-painters", description="Stroke-based neural painting.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("paint", help="paint an image or a text prompt with brushstrokes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="photograph to paint (PNG, JPEG, WebP, ...); optional with --prompt")
    p.add_argument("--out", "-o", default="painting.png", help="output PNG (default: painting.png)")
    p.add_argument("--strokes", "-n", type=_positive_int(1, MAX_STROKES, "--strokes"), default=300,
                   help="number of strokes (default 300)")
    p.add_argument("--size", "-s", type=_positive_int(16, MAX_SIZE, "--size"), default=256,
                   help="long side of the canvas in px (default 256; the image's aspect ratio is kept)")
    p.add_argument("--steps", type=_positive_int(1, MAX_STEPS, "--steps"), default=DEFAULT_STEPS,
                   help=f"optimisation steps in all (default {DEFAULT_STEPS})")
    p.add_argument("--rounds", type=_positive_int(1, 50, "--rounds"), default=DEFAULT_ROUNDS,
                   help=f"coarse-to-fine rounds of strokes (default {DEFAULT_ROUNDS})")
    p.add_argument("--lr", type=_float_range(1e-5, 10, "--lr"), default=None, help="learning rate")
    p.add_argument("--min-size", type=_float_range(1, 8192, "--min-size"), default=None,
                   help="smallest stroke box side in px (default: from canvas and stroke count)")
    p.add_argument("--max-size", type=_float_range(1, 8192, "--max-size"), default=None,
                   help="largest stroke box side in px")
    p.add_argument("--painter", default=None,
                   help="painter checkpoint (.safetensors) or a shipped painter's name: "
                        f"{', '.join(shipped_painters()) or 'none shipped'} (default: {DEFAULT_PAINTER})")
    p.add_argument("--blend", choices=("alpha", "linear"), default="alpha",
                   help="alpha: the painter's alpha; linear: Nakano's darkness mask with the action colour")
    p.add_argument("--background", default="#ffffff", help="canvas colour (hex, default #ffffff)")
    # objective
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="feature network: efficientnet_lite0 (offline, default), vgg16, vgg16_bn")
    p.add_argument("--backbone-weights", default="auto",
                   help="weights file for the backbone (default: the packaged / cached weights)")
    p.add_argument("--feature-weight", type=_float_range(0, 1e6, "--feature-weight"), default=None,
                   help="weight of the perceptual feature loss through --backbone beside the pixel loss (default "
                        "0: pixel loss only, fastest and best PSNR; 1: the example workflow's balance, strokes that "
                        "follow the photo's edges and textures, in its colours; about 40%% slower)")
    p.add_argument("--pixel-weight", type=_float_range(0, 1e6, "--pixel-weight"), default=1.0,
                   help="weight of the pixel loss (default 1)")
    p.add_argument("--pixel-loss", choices=("l1", "l2"), default="l2", help="pixel distance (default l2)")
    p.add_argument("--prompt", action="append", default=None,
                   help="text to paint (CLIP); repeat for several prompts")
    p.add_argument("--negative", action="append", default=[], help="negative prompt (repeatable)")
    p.add_argument("--clip", default="ViT-B-32", help="open_clip model name (default ViT-B-32)")
    p.add_argument("--clip-weights", default=None,
                   help="CLIP checkpoint file or open_clip pretrained tag (e.g. openai); required for --prompt")
    p.add_argument("--clip-weight", type=_float_range(0, 1e6, "--clip-weight"), default=1.0,
                   help="weight of the CLIP text loss (default 1)")
    p.add_argument("--negative-weight", type=_float_range(0, 10, "--negative-weight"), default=0.3,
                   help="weight of the negative prompts (default 0.3, CLIPDraw's)")
    p.add_argument("--cutouts", type=_positive_int(1, 64, "--cutouts"), default=4,
                   help="augmented crops scored per step by CLIP and the ImageNet classifier (default 4)")
    p.add_argument("--imagenet-class", action="append", default=None, metavar="NAME",
                   help="paint an ImageNet-1k class (e.g. goldfish, lemon, volcano; a name or an index), "
                        "judged by the offline EfficientNet-Lite0; repeat for several")
    p.add_argument("--imagenet-weight", type=_float_range(0, 1e6, "--imagenet-weight"), default=1.0,
                   help="weight of the ImageNet class loss (default 1)")
    p.add_argument("--imagenet-size", type=_positive_int(64, 512, "--imagenet-size"), default=224,
                   help="side of the crops the classifier sees (default 224, its own; 160 is faster on a CPU)")
    # constraints
    p.add_argument("--palette", default=None,
                   help="a number k (k-means palette of the image) or hex colours '#112233,#ddeeff,...'")
    p.add_argument("--no-real-brush", dest="real_brush", action="store_false",
                   help="paint with the neural painter's canvas only (default: where libmypaint is installed, "
                        "MyPaint paints every canvas the loss sees and the painting is MyPaint's own)")
    p.add_argument("--brush-seed", type=_positive_int(0, 1000, "--brush-seed"), default=0,
                   help="the real brush's random texture (as a re-render's brush seed; default 0)")
    p.add_argument("--greyscale", "--grayscale", action="store_true", help="grey strokes only")
    p.add_argument("--opaque", action="store_true", help="opaque strokes (full pressure)")
    # outputs
    p.add_argument("--json", default=None, help="write the stroke list as JSON")
    p.add_argument("--svg", default=None, help="write the strokes as SVG")
    p.add_argument("--frames", default=None, help="write a stroke-by-stroke time-lapse (.webp or .gif)")
    p.add_argument("--frame-count", type=_positive_int(2, 2000, "--frame-count"), default=60,
                   help="frames in the time-lapse (default 60)")
    p.add_argument("--fps", type=_float_range(0.5, 60, "--fps"), default=12.0, help="time-lapse frames per second")
    p.add_argument("--rerender", default=None,
                   help="re-render the strokes with the real MyPaint brush to this PNG (needs libmypaint)")
    p.add_argument("--rerender-scale", type=_float_range(0.1, 16, "--rerender-scale"), default=4.0,
                   help="scale of the MyPaint re-render (default 4)")
    p.add_argument("--snapshots", default=None, help="folder for snapshots of the optimisation (PNG)")
    p.add_argument("--snapshot-every", type=_positive_int(1, MAX_STEPS, "--snapshot-every"), default=25)
    # run
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default)")
    p.add_argument("--threads", type=_positive_int(1, 1024, "--threads"), default=None,
                   help="CPU threads for torch (default: torch's, fewer when other jobs keep the cores busy)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return ap


# ----------------------------------------------------------------------------------------------
# helpers


def _device(spec: str):
    import torch
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise CliError(f"unknown device {spec!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
    return dev


def default_threads() -> int:
    """torch's thread count, reduced to the cores other jobs leave idle (1-minute load average):
    painting runs many small operations, and a thread that the OS parks makes every one of them
    wait (on 2 busy cores, 2 threads measured 5x slower than 1)."""
    import torch
    n = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        idle = cores - os.getloadavg()[0]
    except (AttributeError, OSError):
        return n
    return max(1, min(n, int(idle + 0.5)))


def _load_image(path: str):
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError
    if not os.path.exists(path):
        raise CliError(f"image {path!r} does not exist")
    if os.path.isdir(path):
        raise CliError(f"{path!r} is a folder, not an image file")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise CliError(f"cannot read {path!r} as an image ({e})") from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise CliError(f"image {path!r} is too small ({arr.shape[1]}x{arr.shape[0]} px)")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]


def _canvas_size(image, size: int) -> tuple[int, int]:
    if image is None:
        return size, size
    h, w = image.shape[-2:]
    f = size / max(h, w)
    return max(8, round(h * f)), max(8, round(w * f))


def _hex_colour(s: str):
    from ..painting.palette import PaletteError, parse_hex
    try:
        return parse_hex(s)
    except PaletteError as e:
        raise CliError(f"--background: {e}") from None


def _palette(spec: str | None):
    if spec is None:
        return None
    from ..painting.palette import PaletteError, parse_palette
    s = spec.strip()
    if s.isdigit():
        k = int(s)
        if not 1 <= k <= 256:
            raise CliError(f"--palette {k}: a k-means palette has 1..256 colours")
        return k
    try:
        return parse_palette(s)
    except PaletteError as e:
        raise CliError(f"--palette: {e}") from None


def _save_png(path: str, canvas):
    import numpy as np
    from PIL import Image
    from ..files import atomic_write
    arr = (canvas[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr)
    ext = os.path.splitext(path)[1].lower() or ".png"
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(ext)
    if fmt is None:
        raise CliError(f"output {path!r}: use a .png, .jpg or .webp file name")
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt))


def _check_out(path: str | None, exts: tuple[str, ...], what: str):
    if path is None:
        return
    ext = os.path.splitext(path)[1].lower()
    if ext not in exts:
        raise CliError(f"{what} {path!r}: the file name must end in {' or '.join(exts)}")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise CliError(f"{what} {path!r}: folder {d} does not exist")


# ----------------------------------------------------------------------------------------------
# paint


def run_paint(args) -> int:
    text_mode = args.prompt is not None
    if text_mode:
        prompts = [p.strip() for p in args.prompt]
        if not any(prompts):
            raise CliError("--prompt is empty: say what to paint, e.g. --prompt \"a black sheep\"")
        prompts = [p for p in prompts if p]
    if args.image is None and not text_mode and not args.imagenet_class:
        raise CliError("give an IMAGE to paint, --prompt TEXT or --imagenet-class NAME (see neural-painters paint --help)")
    classes = None
    if args.imagenet_class:
        from ..objectives.imagenet_loss import UnknownImageNetClass, imagenet_class
        try:  # before anything slow
            classes = [imagenet_class(c) for c in args.imagenet_class]
        except UnknownImageNetClass as e:
            raise CliError(f"--imagenet-class: {e}") from None
    if text_mode and not args.clip_weights:
        raise CliError("--prompt needs CLIP weights: pass --clip-weights with a checkpoint file "
                       "(e.g. ViT-B-32.pt / open_clip_model.safetensors) or an open_clip tag such as 'openai' "
                       "(downloaded once when online)")
    if args.min_size and args.max_size and args.min_size > args.max_size:
        raise CliError(f"--min-size {args.min_size:g} is larger than --max-size {args.max_size:g}")
    _check_out(args.out, (".png", ".jpg", ".jpeg", ".webp"), "--out")
    _check_out(args.json, (".json",), "--json")
    _check_out(args.svg, (".svg",), "--svg")
    _check_out(args.frames, (".webp", ".gif"), "--frames")
    _check_out(args.rerender, (".png", ".jpg", ".jpeg", ".webp"), "--rerender")
    background = _hex_colour(args.background)
    palette = _palette(args.palette)
    image = _load_image(args.image) if args.image else None
    if isinstance(palette, int) and image is None:
        raise CliError("--palette K (k-means) needs an IMAGE; in text mode give hex colours")
    h, w = _canvas_size(image, args.size)
    if args.min_size and args.min_size > max(h, w) or args.max_size and args.max_size > 2 * max(h, w):
        raise CliError(f"stroke sizes ({args.min_size or '-'}..{args.max_size or '-'} px) do not fit a "
                       f"{w}x{h} canvas")
    painter_path = resolve_painter_path(args.painter)

    import torch
    dev = _device(args.device)
    torch.set_num_threads(args.threads or default_threads())
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))

    from ..objectives.losses import ClipTextLoss, FeatureLoss, PixelLoss, combine
    terms = []
    if text_mode:  # CLIP first: fail fast, before anything slow
        from ..objectives.clip_loader import ClipWeightsMissing, load_clip
        try:
            clip = load_clip(args.clip, args.clip_weights, device=dev)
        except ClipWeightsMissing as e:
            raise CliError(str(e)) from None
        except ValueError as e:
            raise CliError(f"--clip/--clip-weights: {e}") from None
        terms.append(("clip", args.clip_weight, ClipTextLoss(clip, prompts, args.negative, cutouts=args.cutouts,
                                                            negative_weight=args.negative_weight, seed=args.seed)))
    if classes:
        from ..objectives.imagenet_loss import ImageNetClassLoss
        terms.append(("imagenet", args.imagenet_weight, ImageNetClassLoss(
            classes, cutouts=args.cutouts, input_size=args.imagenet_size, seed=args.seed)))
    if image is not None:
        feature_weight = args.feature_weight or 0.0
        if args.pixel_weight:
            terms.append(("pixel", args.pixel_weight, PixelLoss(image, kind=args.pixel_loss)))
        if feature_weight:
            from ..objectives.backbones import build_backbone
            try:
                bb = build_backbone(args.backbone, weights=args.backbone_weights, device=dev)
            except (FileNotFoundError, ValueError) as e:
                raise CliError(f"--backbone {args.backbone}: {e}") from None
            terms.append(("feature", feature_weight, FeatureLoss(image, backbone=bb)))
    if not terms:
        raise CliError("every loss weight is 0: nothing to optimise")
    objective = combine(terms).to(dev)

    from ..painter.checkpoint import CheckpointError, load_painter
    try:
        painter = load_painter(painter_path, device=dev)
    except CheckpointError as e:
        raise CliError(str(e)) from None

    from ..painting.optimize import paint
    steps = args.steps
    log(f"painting {w}x{h} px with {args.strokes} strokes, {steps} steps, painter "
        f"{os.path.basename(painter_path)} ({painter.brush}), on {dev}")
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=steps, unit="step", dynamic_ncols=True, file=sys.stderr)

    def progress(info):
        if bar is not None:
            bar.update(info.step - bar.n)
            bar.set_postfix(loss=f"{info.loss:.4f}", strokes=info.n_strokes, round=f"{info.round + 1}/{info.rounds}")

    kwargs = {}
    if args.lr is not None:
        kwargs["lr"] = args.lr
    t0 = time.perf_counter()
    try:
        result = paint(painter, objective, (h, w), strokes=args.strokes, rounds=args.rounds, steps=steps,
                       min_size=args.min_size, max_size=args.max_size, palette=palette, greyscale=args.greyscale,
                       opaque=args.opaque, blend=args.blend, background=background, seed=args.seed,
                       target_for_seeding=image, callback=progress, brush_seed=args.brush_seed,
                       real_brush="auto" if args.real_brush else False,
                       snapshot_every=args.snapshot_every if args.snapshots else 0, device=dev, **kwargs)
    except KeyboardInterrupt as e:
        result = getattr(e, "paint_result", None)
        if bar is not None:
            bar.close()
        if result is None:
            raise
        log("interrupted: saving the painting so far")
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    strokes = result.strokes
    strokes.extra["painter"] = os.path.basename(painter_path)

    _save_png(args.out, result.canvas)
    written = [args.out]
    msg = f"{len(strokes)} strokes in {seconds:.1f} s"
    if image is not None:
        from ..objectives.losses import fit_to
        from ..metrics import psnr
        target = fit_to(image.to(result.canvas.device), h, w)
        msg += f", PSNR {float(psnr(result.canvas, target)):.2f} dB"
    msg += f", painted by {result.renderer}" + (f" ({result.note})" if result.note else "")
    from ..brush import rerender
    from ..export import stroke_file
    from ..export import timelapse
    if args.json:
        stroke_file.save_strokes(args.json, strokes)
        written.append(args.json)
    if args.svg:
        from ..export.svg import save_svg
        save_svg(args.svg, strokes)
        written.append(args.svg)
    if args.frames:
        # the painting's own time-lapse: the real brush's strokes where it painted them
        renderer = "mypaint" if result.renderer.startswith("mypaint:") else painter
        frames = timelapse.timelapse_frames(renderer, strokes, n_frames=args.frame_count, background=background,
                                         brush_seed=args.brush_seed)
        timelapse.save_animation(frames, args.frames, fps=args.fps)
        written.append(args.frames)
    if args.snapshots:
        os.makedirs(args.snapshots, exist_ok=True)
        for step, snap in result.snapshots:
            p = os.path.join(args.snapshots, f"step_{step:05d}.png")
            _save_png(p, snap)
        written.append(args.snapshots + os.sep)
    if args.rerender:
        from ..brush.mypaint import MyPaintUnavailable
        brush = rerender.mypaint_brush_name(strokes.brush)
        try:
            big = rerender.rerender_mypaint(strokes, scale=args.rerender_scale,
                                          brush=None if brush else "classic/dry_brush")
        except MyPaintUnavailable as e:
            raise CliError(f"--rerender needs libmypaint: {e}") from None
        from PIL import Image
        from ..files import atomic_write
        atomic_write(args.rerender, lambda tmp: Image.fromarray(big).save(tmp, format="PNG"))
        written.append(args.rerender)
    log(msg + (" (interrupted)" if result.cancelled else ""))
    log("wrote " + ", ".join(written))
    return 0


SUBCOMMANDS = {"paint": run_paint}


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help(sys.stderr)
        return 2
    try:
        return SUBCOMMANDS[args.command](args)
    except CliError as e:
        print(f"neural-painters {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
