"""Guided painting benchmark: text prompts through the shapes CLIP and ImageNet classes through
EfficientNet-Lite0, each painting judged by what it was not optimised for (training/guided_checks.py).

    python bench/bench_guided.py                    # both parts, contact sheets in bench/results/
    python bench/bench_guided.py --part text        # or --part imagenet

Prints a Markdown section (command, machine, date, per-painting verdicts and times) for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from neural_painters_training import guided_checks as gc  # noqa: E402
from neural_painters_training.judges import ImageNetJudge, ShapeJudge  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")


def text_part(painter, lines: list[str]) -> None:
    clip = gc.load_shapes_clip()
    judge = ShapeJudge()
    canvases, labels = [], []
    lines += ["| prompt | negative | judge | colour share | blob centre | m2/m3/m4 -> shape | seconds |",
              "|---|---|---|---|---|---|---|"]
    prompt, negative, opposite = gc.NEGATIVE_CHECK
    cases = [(p, None, gc.SHAPE_PROMPTS[p]) for p in gc.SHAPE_PROMPTS] + [(prompt, negative, (None, "circle", None))]
    for p, neg, (colour, shape, position) in cases:
        t0 = time.perf_counter()
        result = gc.paint_prompt(painter, clip, p, negative=neg)
        seconds = time.perf_counter() - t0
        v = judge(result.canvas, colour, shape, position)
        share = v.colour_share[colour] if colour else gc.red_share(result.canvas)
        lines.append(f"| {p} | {neg or ''} | {'accepted' if v.accepted else 'REJECTED: ' + '; '.join(v.failures)} | "
                     f"{colour or 'red'} {share:.0%} | ({v.centroid[0]:.2f}, {v.centroid[1]:.2f}) | "
                     f"{v.moments[0]:.2f}/{v.moments[1]:.2f}/{v.moments[2]:.2f} -> {v.shape} | {seconds:.0f} |")
        canvases.append(result.canvas)
        labels.append(f"{p}" + (f"\nnot {neg}" if neg else "") + f"\n{'ok' if v.accepted else 'REJECTED'}")
        print(lines[-1], flush=True)
    path = os.path.join(RESULTS, "guided_text.png")
    gc.contact_sheet(canvases, labels, path)
    lines.append(f"\n![text-to-paint with the shapes CLIP]({os.path.relpath(path, ROOT)})")


def imagenet_part(painter, lines: list[str]) -> None:
    from painter_models.objectives.backbones import build_efficientnet_classifier
    from painter_models.objectives.imagenet_loss import imagenet_class, imagenet_class_names
    classifier = build_efficientnet_classifier()
    judge = ImageNetJudge()
    canvases, labels = [], []
    lines += ["| class | Lite0 p (guide) | Lite1 rank of the class (judge) | Lite1 top 5 | seconds |", "|---|---|---|---|---|"]
    for name in gc.IMAGENET_CLASSES:
        t0 = time.perf_counter()
        canvas = gc.paint_class(painter, classifier, name).canvas
        seconds = time.perf_counter() - t0
        target = imagenet_class(name)
        with torch.no_grad():
            x = torch.nn.functional.interpolate(canvas, size=(224, 224), mode="bilinear", antialias=True)
            guide_p = float(torch.softmax(classifier((x - torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1))
                                                     / torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)), 1)[0, target])
        probs = judge.probabilities(canvas)
        rank = int((probs > probs[target]).sum()) + 1
        top5 = ", ".join(f"{imagenet_class_names()[i][0]} {p:.2f}" for i, p in judge.top_k(canvas))
        lines.append(f"| {name} | {guide_p:.2f} | {rank} | {top5} | {seconds:.0f} |")
        canvases.append(canvas)
        labels.append(f"{name}\nLite1 rank {rank}")
        print(lines[-1], flush=True)
    path = os.path.join(RESULTS, "guided_imagenet.png")
    gc.contact_sheet(canvases, labels, path)
    lines.append(f"\n![ImageNet classes painted through EfficientNet-Lite0]({os.path.relpath(path, ROOT)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("text", "imagenet", "both"), default="both")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    painter = gc.load_shipped_painter()
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [f"Command: `python bench/bench_guided.py {shlex.join(argv if argv is not None else sys.argv[1:])}`; "
             f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), torch {torch.__version__}; "
             f"{now:%Y-%m-%d %H:%M} UTC.", ""]
    if args.part in ("text", "both"):
        lines.append(f"Text: recipe {gc.TEXT_RECIPE}, painter dry_brush, CLIP {os.path.basename(gc.shapes_clip_path())}.\n")
        text_part(painter, lines)
        lines.append("")
    if args.part in ("imagenet", "both"):
        lines.append(f"ImageNet: recipe {gc.IMAGENET_RECIPE}, guide EfficientNet-Lite0, judge EfficientNet-Lite1.\n")
        imagenet_part(painter, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
