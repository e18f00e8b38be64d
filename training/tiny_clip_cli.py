"""neural-painters-train-clip: trains the shapes CLIP (tiny_clip.py) and writes its checkpoint and model card.

    neural-painters-train-clip --out painter_models/shapes_clip/np-tiny-rn-64-shapes.safetensors --threads 1
    neural-painters-train-clip --out shapes.safetensors --minutes 4

The CLIP understands a small world only: coloured shapes ("a red circle", "two blue squares on the left",
"a yellow triangle at the top", "something green") drawn in several styles on several backgrounds, so
that text-to-paint can be run and checked offline.

The checkpoint is a plain open_clip state dict (safetensors, fp16) that loads like any user's CLIP
file: `load_clip("np-tiny-rn-64", PATH)`, `neural-painters paint --clip np-tiny-rn-64
--clip-weights PATH`, or Load CLIP in ComfyUI (file in models/clip, model name np-tiny-rn-64).
A model card (.md) with the zero-shot accuracies on held-out images is written next to it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys

import torch

from .shape_scenes import COLOURS, POSITION_PHRASES, SHAPES
from .tiny_clip import MODEL_NAME, train, zero_shot


def save(model, path: str, summary: dict, accuracy: dict, command: str) -> None:
    """fp16 open_clip state dict (safetensors, atomically) plus a model card next to it."""
    from safetensors.torch import save_file
    from painter_models.files import atomic_write, write_text
    sd = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    meta = {"open_clip_model": MODEL_NAME, "training": json.dumps(summary), "zero_shot": json.dumps(accuracy),
            "command": command}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=meta))
    card = model_card(path, summary, accuracy, command)
    write_text(os.path.splitext(path)[0] + ".md", card)


def model_card(path: str, summary: dict, acc: dict, command: str) -> str:
    styles = ", ".join(f"{k} {v:.0%}" for k, v in acc["by_style"].items())
    return f"""# Tiny CLIP for coloured shapes ({os.path.basename(path)})

An open_clip CLIP (`{MODEL_NAME}`: ModifiedResNet at 64 px, layers 1-1-1-1, width 16; text transformer
2 layers, width 64, open_clip's BPE tokenizer; config painter_models/shapes_clip/{MODEL_NAME}.json) trained by `training/tiny_clip.py` on captioned synthetic shapes.
It understands a small world only: {", ".join(COLOURS)} {", ".join(s + "s" for s in SHAPES)}, one to three of them,
{", ".join(POSITION_PHRASES.values())}, and partial captions ("something red", "a circle").
It exists so that text-to-paint can be run and checked offline; for real prompts use a real CLIP
(e.g. ViT-B-32 with OpenAI's weights).

Load it like any CLIP file: `load_clip("{MODEL_NAME}", "{os.path.basename(path)}")`, or
`neural-painters paint --prompt "a red circle" --clip {MODEL_NAME} --clip-weights {os.path.basename(path)}`,
or in ComfyUI put the file in models/clip and set Load CLIP's model_name to `{MODEL_NAME}`.

## Zero-shot accuracy on {acc["images"]} held-out synthetic images (seed {acc["seed"]}, never trained on)

| task | accuracy | chance |
|---|---|---|
| colour and shape ({len(COLOURS) * len(SHAPES)} captions "a red circle") | {acc["colour_shape"]:.1%} | {1 / (len(COLOURS) * len(SHAPES)):.1%} |
| colour alone (from the same choice) | {acc["colour"]:.1%} | {1 / len(COLOURS):.1%} |
| shape alone (from the same choice) | {acc["shape"]:.1%} | {1 / len(SHAPES):.1%} |
| position (5 phrases, colour and shape given) | {acc["position"]:.1%} | 20% |
| count (a / two / three, colour and shape given) | {acc["count"]:.1%} | 33% |

Colour and shape by drawing style: {styles}.

## Training

| | |
|---|---|
| steps | {summary["steps"]} |
| batch size | {summary["batch_size"]} |
| learning rate | {summary["lr"]} (AdamW, warm-up then cosine) |
| seed | {summary["seed"]} |
| wall time | {summary["seconds"]} s on {summary["threads"]} CPU thread(s), {platform.machine()}, torch {torch.__version__} |
| date | {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC |

Command: `{command}`
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="neural-painters-train-clip", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="checkpoint to write (.safetensors); the model card goes next to it")
    ap.add_argument("--steps", type=int, default=1200, help="optimiser steps (default 1200)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this many minutes (0: run all steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--eval-images", type=int, default=600, help="held-out images for the zero-shot accuracy")
    ap.add_argument("--eval-every", type=int, default=0, help="log a quick zero-shot accuracy every N steps")
    args = ap.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        ap.error(f"--out {args.out!r}: the checkpoint file name must end in .safetensors")
    torch.set_num_threads(args.threads)
    model, tokenizer, summary = train(args.steps, args.batch_size, args.lr, args.seed, args.minutes, args.eval_every,
                                      log=lambda *a: print(*a, flush=True))
    acc = zero_shot(model, tokenizer, args.eval_images)
    print(json.dumps(acc, indent=1))
    command = "neural-painters-train-clip " + shlex.join(argv if argv is not None else sys.argv[1:])
    save(model, args.out, summary, acc, command)
    print(f"wrote {args.out} and its model card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
