"""What a stroke predictor trains on (training/predictor.py), all made on the fly:

  * natural regions: crops of photographs (8..256 px patches, recoloured, flipped), G x G neighbouring
    patches at a time, over a plausible "canvas so far" (white, flat, the photograph at a coarser scale,
    sometimes whitened or with white gaps where no stroke landed yet);
  * rollouts: the (photograph, canvas) patches the predictor itself meets when it paints whole crops level
    by level (painting/predict.py), so it learns on the canvases it will really see;
  * synthetic patches: 1..K random strokes over 0-4 background strokes and a flat colour, painted by the
    frozen painter: the strokes to find again (losses in predictor_losses.py).
"""
from __future__ import annotations

import glob
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from painter_models.brush.actions import keep_inside

# scikit-image's sample photographs trained on; astronaut, coffee, chelsea, cat and rocket are never trained on
# (the evaluation's, in the model card)
SKIMAGE_PHOTOS = ("brick", "camera", "clock", "coins", "colorwheel", "grass", "gravel", "hubble_deep_field",
                  "immunohistochemistry", "logo", "moon", "page", "retina", "text", "cell")
MATPLOTLIB_PHOTOS = ("Minduka_Present_Blue_Pack.png", "logo2.png")
EVALUATION_PHOTOS = ("astronaut", "coffee")
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp")


def _as_tensor(image) -> torch.Tensor:
    """[3, H, W] float in 0..1 from a uint8 / bool array (grey expanded, alpha composited over white)."""
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    if a.shape[-1] == 4:
        alpha = a[..., 3:4] / 255.0
        a = (a[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return torch.from_numpy(a.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _resized(image: torch.Tensor, longer: int) -> torch.Tensor:
    f = longer / max(image.shape[-2:])
    return F.interpolate(image[None], scale_factor=f, mode="bilinear", antialias=f < 1,
                         align_corners=False)[0].clamp(0, 1)


def photo_bank(folder: str | None = None) -> list[torch.Tensor]:
    """The training photographs as [3, H, W] tensors: every image in `folder`, or scikit-image's sample
    photographs (at 256 px and, where larger, 512 px) and matplotlib's two, where they are installed."""
    from PIL import Image
    if folder:
        paths = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                       if p.lower().endswith(IMAGE_TYPES))
        if not paths:
            raise SystemExit(f"--images {folder}: no PNG, JPEG or WebP images in it")
        images = [_as_tensor(Image.open(p).convert("RGB")) for p in paths]
        return [_resized(image, min(512, max(image.shape[-2:]))) for image in images]
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("no training photographs: pass --images FOLDER (PNG / JPEG / WebP), or install "
                         "scikit-image for its sample photographs") from None
    bank = []
    for name in SKIMAGE_PHOTOS:
        image = _as_tensor(getattr(skimage.data, name)())
        bank += [_resized(image, 256)] + ([_resized(image, 512)] if max(image.shape[-2:]) > 512 else [])
    try:
        import matplotlib
        sample_data = os.path.join(matplotlib.get_data_path(), "sample_data")
        bank += [_as_tensor(Image.open(os.path.join(sample_data, n)).convert("RGB")) for n in MATPLOTLIB_PHOTOS
                 if os.path.exists(os.path.join(sample_data, n))]
    except ImportError:
        pass
    return bank


def evaluation_photos(paths=None, size: int = 256) -> dict[str, torch.Tensor]:
    """{name: [1, 3, h, w]} with the longer side `size`: the given files, else scikit-image's astronaut and
    coffee (never trained on); {} when there are none."""
    from PIL import Image
    if paths:
        return {os.path.basename(p): _resized(_as_tensor(Image.open(p).convert("RGB")), size)[None] for p in paths}
    try:
        import skimage.data
    except ImportError:
        return {}
    return {n: _resized(_as_tensor(getattr(skimage.data, n)()), size)[None] for n in EVALUATION_PHOTOS}


def _pick(bank, gen) -> torch.Tensor:
    return bank[int(torch.randint(len(bank), (1,), generator=gen))]


def _recolour(crop: torch.Tensor, grey: bool, gen) -> torch.Tensor:
    """Colour augmentation: a grey photograph gets a random two-colour map 60 % of the time, a colour one
    its channels shuffled half the time."""
    r = float(torch.rand(1, generator=gen))
    if grey and r < 0.6:
        c0, c1 = torch.rand(3, generator=gen), torch.rand(3, generator=gen)
        return c0.view(1, 3, 1, 1) + crop[:, :1] * (c1 - c0).view(1, 3, 1, 1)
    if not grey and r < 0.5:
        return crop[:, torch.randperm(3, generator=gen)]
    return crop


def _is_grey(image: torch.Tensor) -> bool:
    return bool((image[0, ::16, ::16] == image[1, ::16, ::16]).all())


def natural_regions(bank, n: int, grid: int, px: int, gen) -> torch.Tensor:
    """n regions [n, 3, grid * px, grid * px] of grid x grid neighbouring patches, a patch 8..256 px of the
    photograph (log-uniform), recoloured and flipped at random."""
    out = []
    for _ in range(n):
        image = _pick(bank, gen)
        h, w = image.shape[-2:]
        lo, hi = math.log(8), math.log(max(8.5, min(h, w, 256 * grid) / grid))
        c = min(int(round(math.exp(lo + (hi - lo) * float(torch.rand(1, generator=gen))))) * grid, h, w)
        y, x = int(torch.randint(h - c + 1, (1,), generator=gen)), int(torch.randint(w - c + 1, (1,), generator=gen))
        crop = F.interpolate(image[None, :, y:y + c, x:x + c], size=(grid * px, grid * px), mode="bilinear",
                             align_corners=False, antialias=c > grid * px)
        crop = _recolour(crop, _is_grey(image), gen)
        out.append(crop.flip(-1) if float(torch.rand(1, generator=gen)) < 0.5 else crop)
    return torch.cat(out).clamp(0, 1)


def split_patches(regions: torch.Tensor, grid: int, px: int) -> torch.Tensor:
    """[n, 3, grid * px, grid * px] -> [n * grid * grid, 3, px, px], patches row by row."""
    n = regions.shape[0]
    return regions.view(n, 3, grid, px, grid, px).permute(0, 2, 4, 1, 3, 5).reshape(n * grid * grid, 3, px, px)


def degraded_canvases(target: torch.Tensor, gen) -> torch.Tensor:
    """A plausible canvas so far under each target region: white (15 %), its mean colour (15 %), else the
    target at 1/2..1/8 of a 32 px patch's resolution, sometimes whitened, sometimes with white gaps."""
    n, _, side, _ = target.shape
    scale = side / min(32, side)        # the degradation is relative to a 32 px patch
    out = torch.empty_like(target)
    for i in range(n):
        r, t = float(torch.rand(1, generator=gen)), target[i:i + 1]
        if r < 0.15:
            out[i] = 1.0
        elif r < 0.3:
            out[i] = (t.mean((2, 3), keepdim=True) + 0.15 * torch.randn(1, 3, 1, 1, generator=gen))[0]
        else:
            out[i] = _coarser(t, side, scale, gen)[0]
    return out.clamp(0, 1)


def _coarser(t, side, scale, gen):
    f = 2 + 6 * float(torch.rand(1, generator=gen))
    d = F.interpolate(F.interpolate(t, size=(max(1, round(side / f)),) * 2, mode="area"), size=(side, side),
                      mode="bilinear", align_corners=False)
    d = d + 0.05 * torch.randn(1, 3, 1, 1, generator=gen)
    if float(torch.rand(1, generator=gen)) < 0.3:
        d = d + (1 - d) * 0.6 * float(torch.rand(1, generator=gen))
    if float(torch.rand(1, generator=gen)) < 0.35:        # white where no stroke landed yet
        cells = int(torch.randint(2, 6, (1,), generator=gen) * scale)
        noise = F.interpolate(torch.rand(1, 1, cells, cells, generator=gen), size=(side, side), mode="bilinear",
                              align_corners=False)
        mask = (noise > float(torch.rand(1, generator=gen)) * 0.8).float()
        d = d * mask + (1 - mask)
    return d


@torch.no_grad()
def rollout_pool(predictor, painter, bank, n_images: int, gen, size: int = 256, grid: int = 2):
    """([target], [canvas]) pairs of whole levels [1, 3, rows * px, columns * px] from the predictor painting
    n_images random crops (100..1500 strokes, MyPaint between levels where it can) as at inference."""
    from painter_models.painting.predict import predict_strokes
    network = predictor.network
    was_training = network.training
    network.eval()
    targets, canvases, seen = [], [], []
    for _ in range(n_images):
        image = _pick(bank, gen)
        h, w = image.shape[-2:]
        c = int(torch.randint(min(h, w, 128), min(h, w) + 1, (1,), generator=gen))
        y, x = int(torch.randint(h - c + 1, (1,), generator=gen)), int(torch.randint(w - c + 1, (1,), generator=gen))
        crop = F.interpolate(image[None, :, y:y + c, x:x + c], size=(size, size), mode="bilinear",
                             align_corners=False, antialias=c > size).clamp(0, 1)
        crop = _recolour(crop, _is_grey(image), gen).clamp(0, 1)
        n = int(math.exp(math.log(100) + (math.log(1500) - math.log(100)) * float(torch.rand(1, generator=gen))))
        predict_strokes(predictor, painter, crop, n, progress=lambda done, total, canvas: seen.append(canvas))
        _levels_into(crop, seen, predictor.config.patch, grid, targets, canvases)
        seen.clear()
    network.train(was_training)
    return targets, canvases


def _levels_into(target, canvases_after, px, grid, targets, canvases):
    """Each level's (target, canvas before it) resampled to px a patch, for levels of at least grid x grid
    patches (the canvas before level l is the one after level l - 1; white before the first)."""
    before = [torch.ones_like(target)] + canvases_after[:-1]
    for level, canvas in enumerate(before):
        cells = 2 ** level
        if cells >= grid:
            targets.append(_whole_level(target, cells, px))
            canvases.append(_whole_level(canvas, cells, px))


def _whole_level(image, cells: int, px: int) -> torch.Tensor:
    """A square image as the predictor sees a level of cells x cells patches, the patches put back together."""
    from painter_models.painting.predict import grid_patches
    patches = grid_patches(image, image.shape[-1] / cells, cells, cells, px)
    return patches.view(cells, cells, 3, px, px).permute(2, 0, 3, 1, 4).reshape(1, 3, cells * px, cells * px)


def sample_rollouts(pool, n: int, grid: int, px: int, gen):
    """n grid x grid windows (on the patch grid) of the rollouts' levels: (targets, canvases)."""
    targets, canvases = pool
    out_t, out_c = [], []
    for _ in range(n):
        i = int(torch.randint(len(targets), (1,), generator=gen))
        rows, columns = targets[i].shape[-2] // px, targets[i].shape[-1] // px
        y = int(torch.randint(rows - grid + 1, (1,), generator=gen)) * px
        x = int(torch.randint(columns - grid + 1, (1,), generator=gen)) * px
        out_t.append(targets[i][..., y:y + grid * px, x:x + grid * px])
        out_c.append(canvases[i][..., y:y + grid * px, x:x + grid * px])
    return torch.cat(out_t), torch.cat(out_c)


def random_strokes(n: int, k: int, gen, config, layout, reach, centre=(0.0, 1.0), side=None):
    """n x k random strokes (mostly visible: pressures 0.3..1) in patch units: (actions [n, k, dim] kept inside
    their box, boxes [n, k, 3]), sides log-uniform in `side` (default the predictor's range)."""
    side = side or (config.side_min, config.side_max)
    a = torch.rand(n, k, layout.dim, generator=gen)
    pressure = layout.indices("entry_pressure", "exit_pressure")
    a[..., pressure] = 0.3 + 0.7 * a[..., pressure]
    a = keep_inside(layout, a.reshape(-1, layout.dim), reach).view(n, k, layout.dim)
    c = centre[0] + (centre[1] - centre[0]) * torch.rand(n, k, 2, generator=gen)
    ls = math.log(side[0]) + (math.log(side[1]) - math.log(side[0])) * torch.rand(n, k, 1, generator=gen)
    return a, torch.cat([c, torch.exp(ls)], -1)


@torch.no_grad()
def synthetic_batch(n: int, config, painter_fn, layout, reach, gen, amp: bool = True):
    """n synthetic patches: (target, canvas under the strokes, true actions [n, K, dim], true boxes [n, K, 3],
    mask [n, K] of the strokes really painted: 1..K of them)."""
    from .predictor_losses import render_patches
    px, k = config.patch, config.k
    colour = torch.rand(n, 3, 1, 1, generator=gen)
    colour[torch.rand(n, generator=gen) < 0.3] = 1.0
    under = colour.expand(n, 3, px, px).contiguous()
    ba, bb = random_strokes(n, 4, gen, config, layout, reach, centre=(-0.2, 1.2), side=(1.0, 3.0))
    shown = (torch.rand(n, 4, generator=gen) < 0.6).float()
    under = render_patches(painter_fn, layout, reach, ba, bb, under, mask=shown, amp=amp)
    actions, boxes = random_strokes(n, k, gen, config, layout, reach)
    mask = (torch.arange(k)[None] < torch.randint(1, k + 1, (n,), generator=gen)[:, None]).float()
    target = render_patches(painter_fn, layout, reach, actions, boxes, under, mask=mask, amp=amp)
    return target, under, actions, boxes, mask
