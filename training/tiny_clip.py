"""A tiny CLIP trained here, on captioned synthetic shapes (shape_scenes.py): text-to-paint that can be
checked offline. Owns the model (build_model), its contrastive training (train) and its zero-shot
accuracy (zero_shot); the command that trains and saves it is tiny_clip_cli.py (neural-painters-train-clip).

No CLIP weights can be downloaded on the machines this pack is built on, so the text loss was only
ever run with random weights; this CLIP really understands a small world (shape_scenes.py).

The model is an open_clip `CLIP` built from the registered config `np-tiny-rn-64`
(painter_models/shapes_clip/np-tiny-rn-64.json: open_clip's ModifiedResNet at 64 px, one
bottleneck per stage, width 16, and a 2-layer text transformer on open_clip's own BPE tokenizer; a
ViT of the same cost learnt shapes several times slower here). It is trained contrastively with
several positives: a caption is a positive for every image in the batch it is true of ("red" matches every red image),
so partial captions, which negative prompts are made of, get meaning too. Images go through the
same cutout augmentations as the CLIP text loss (painter_models.objectives.clip_loss.make_cutouts) for 30 % of them.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from .shape_scenes import COLOURS, POSITIONS, SHAPES, STYLES, batch, caption_text, heldout_scenes

MODEL_NAME = "np-tiny-rn-64"


# ----------------------------------------------------------------------------------------------------
# model


def config_path() -> str:
    from painter_models.objectives.clip_loader import PACK_CLIP_CONFIGS
    return os.path.join(PACK_CLIP_CONFIGS, MODEL_NAME + ".json")


def build_model(seed: int = 0):
    """A fresh open_clip CLIP from the registered config, with its tokenizer."""
    import open_clip
    from painter_models.objectives.clip_loader import register_pack_configs
    register_pack_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(MODEL_NAME, pretrained=None)
    return model, open_clip.get_tokenizer(MODEL_NAME)


def augment(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """The CLIP text loss's cutouts (perspective + resized crop) on a share p of the images."""
    from painter_models.objectives.clip_loss import make_cutouts
    out = x.clone()
    for i in range(len(x)):
        if float(torch.rand(1, generator=gen)) < p:
            out[i:i + 1] = make_cutouts(x[i:i + 1], 1, (x.shape[-2], x.shape[-1]), gen)
    return out


def normalise(model, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(model.visual.image_mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.image_std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def multi_positive_loss(image_f, text_f, truth, logit_scale):
    """Symmetric InfoNCE where truth[i, j] = caption j is true of image i (several positives each)."""
    logits = logit_scale * image_f @ text_f.t()
    t = truth.float()
    li = -(F.log_softmax(logits, 1) * t / t.sum(1, keepdim=True)).sum(1).mean()
    lt = -(F.log_softmax(logits, 0) * t / t.sum(0, keepdim=True)).sum(0).mean()
    return (li + lt) / 2


# ----------------------------------------------------------------------------------------------------
# zero-shot evaluation


@torch.no_grad()
def zero_shot(model, tokenizer, n: int = 600, seed: int = 1_000_003) -> dict:
    """Zero-shot accuracies on held-out images (another seed than training):
    colour_shape   which of the 24 'a {colour} {shape}' captions (single objects; chance 1/24)
    colour, shape  the same choice, scored on one attribute
    position       which of the 5 position phrases, colour and shape given (objects with a position)
    count          'a / two / three {colour} {shape}(s)', colour and shape given (chance 1/3)
    by_style       colour_shape accuracy per drawing style"""
    model.eval()

    def encode_text(texts):
        f = model.encode_text(tokenizer(texts))
        return f / f.norm(dim=-1, keepdim=True)

    def encode_images(x):
        f = torch.cat([model.encode_image(normalise(model, x[i:i + 256])) for i in range(0, len(x), 256)])
        return f / f.norm(dim=-1, keepdim=True)

    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    cs_text = encode_text([caption_text(c, s, 1, None) for c, s in pairs])
    scenes, x = heldout_scenes(n, seed, count=1)
    f = encode_images(x)
    pred = (f @ cs_text.t()).argmax(1).tolist()
    ok_cs = [pairs[p] == (s.colour, s.shape) for p, s in zip(pred, scenes)]
    ok_c = [pairs[p][0] == s.colour for p, s in zip(pred, scenes)]
    ok_s = [pairs[p][1] == s.shape for p, s in zip(pred, scenes)]
    by_style = {st: float(np.mean([o for o, s in zip(ok_cs, scenes) if s.style == st])) for st in STYLES}

    pos_ok = []
    for fi, s in zip(f, scenes):
        if not s.positions:
            continue
        t = encode_text([caption_text(s.colour, s.shape, 1, p) for p in POSITIONS])
        pos_ok.append(POSITIONS[int((t @ fi).argmax())] in s.positions)

    scenes_n, xn = heldout_scenes(n // 2, seed + 1)
    fn = encode_images(xn)
    count_ok = []
    for fi, s in zip(fn, scenes_n):
        t = encode_text([caption_text(s.colour, s.shape, k, None) for k in (1, 2, 3)])
        count_ok.append(int((t @ fi).argmax()) + 1 == s.count)
    return {"colour_shape": float(np.mean(ok_cs)), "colour": float(np.mean(ok_c)), "shape": float(np.mean(ok_s)),
            "position": float(np.mean(pos_ok)), "count": float(np.mean(count_ok)),
            "by_style": by_style, "images": n, "seed": seed}


# ----------------------------------------------------------------------------------------------------
# training


def train(steps: int = 1200, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, minutes: float = 0.0,
          eval_every: int = 0, locked_text: float = 0.3, log=print) -> tuple:
    """Train from scratch; returns (model, tokenizer, summary). `minutes` > 0 stops early at that time;
    `eval_every` > 0 logs a quick zero-shot accuracy (200 held-out images) that often.

    The text tower is locked (not trained) for the first `locked_text` share of the steps: its random
    features already tell captions apart, so the image tower must learn shapes to match them. Trained
    together from the start, both towers first agree to ignore shape words (neither side has shape
    features for the other to follow), and shapes came out at chance after 500 steps."""
    locked_text_steps = int(locked_text * steps)
    model, tokenizer = build_model(seed)
    with torch.no_grad():
        # the text features are read at the end-of-text token; with its own embedding at the usual random
        # init it dominates them, every caption starts out the same and shape words are learnt very slowly
        model.token_embedding.weight[[tokenizer.sot_token_id, tokenizer.eot_token_id]] = 0
    model.train()
    groups = []
    for tower in ("visual", "text"):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith("visual.") == (tower == "visual")]
        decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
        groups += [{"params": decay, "weight_decay": 0.05, "tower": tower},
                   {"params": rest, "weight_decay": 0.0, "tower": tower}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    warmup = max(1, steps // 20)
    t0 = time.perf_counter()
    done = 0
    for step in range(steps):
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for g in opt.param_groups:
            locked = g["tower"] == "text" and step < locked_text_steps
            g["lr"] = 0.0 if locked else lr * scale
        scenes, x, captions = batch(rng, batch_size, easy=0.5 * (1 - step / steps))
        x = augment(x, gen, p=0.3)
        truth = torch.tensor([[c.true_of(s) for c in captions] for s in scenes])
        image_f = F.normalize(model.encode_image(normalise(model, x)), dim=-1)
        text_f = F.normalize(model.encode_text(tokenizer([c.text for c in captions])), dim=-1)
        loss = multi_positive_loss(image_f, text_f, truth, model.logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {float(loss.detach()):.3f}  lr {lr * scale:.2e}  {time.perf_counter() - t0:6.1f} s")
        if eval_every and done % eval_every == 0:
            acc = zero_shot(model, tokenizer, 200)
            model.train()
            log(f"step {done:5d}  zero-shot " + "  ".join(f"{k} {acc[k]:.0%}" for k in
                                                         ("colour", "shape", "position", "count")))
        if minutes and time.perf_counter() - t0 > 60 * minutes:
            log(f"time budget of {minutes:g} min reached at step {done}")
            break
    model.eval()
    summary = {"steps": done, "batch_size": batch_size, "lr": lr, "seed": seed,
               "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
    return model, tokenizer, summary
