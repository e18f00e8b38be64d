"""Images at the edges of the core, with one rule for their layout: a tensor is channels-first
([1, C, H, W] or [C, H, W], the core's own convention: float in 0..1), an array or a PIL image is
channels-last ([H, W, C] or [H, W], as image files and numpy hold them). Nothing is guessed from
sizes: `image_tensor` / `mask_tensor` bring anything in, `to_hwc` / `to_uint8` take the core's
tensors out; ComfyUI's channels-last IMAGE tensors are converted by the nodes (nodes/common.py).

Also here: a canvas of a colour or an image at a size (`background_canvas`) and '#rrggbb' colours."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def background_canvas(background, canvas_size, device=None, dtype=torch.float32) -> torch.Tensor:
    """A [1, 3, H, W] canvas from a colour (RGB tuple in 0..1 or a single grey) or an image tensor.

    An image [3, H, W] or [1, 3, H, W] (channels first, as every image in the core) of another size
    is resized."""
    h, w = canvas_size
    if isinstance(background, torch.Tensor) and background.dim() >= 3 and background.numel() > 3:
        img = background.to(device=device, dtype=dtype)
        if img.dim() == 3:
            img = img[None]
        if img.shape[0] != 1 or img.shape[1] != 3:
            raise ValueError(f"a background image is [1, 3, H, W] or [3, H, W] (channels first), got "
                             f"{list(background.shape)}")
        if tuple(img.shape[-2:]) != (h, w):
            img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return img.clamp(0, 1)
    colour = torch.as_tensor(background if background is not None else (1.0, 1.0, 1.0), dtype=dtype,
                             device=device).flatten()
    if colour.numel() == 1:
        colour = colour.expand(3)
    if colour.numel() != 3:
        raise ValueError(f"background colour must be 3 numbers in 0..1, got {background!r}")
    return colour.view(1, 3, 1, 1).expand(1, 3, h, w).contiguous()


def hex_colour(rgb) -> str:
    r, g, b = (int(round(min(1.0, max(0.0, float(c))) * 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _array_to_tensor(image) -> torch.Tensor:
    """A PIL image or a channels-last array -> float tensor [1, C, H, W] (uint8 / uint16 scaled to 0..1)."""
    from PIL import Image
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    a = np.asarray(image)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype, 1.0)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"an image array is [H, W] or [H, W, C] (channels last), got shape {list(a.shape)}")
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.float32) / scale)).permute(2, 0, 1)[None]


def _one_channels_first(x: torch.Tensor, what: str) -> torch.Tensor:
    """A tensor [C, H, W] / [1, C, H, W] (or [H, W]) -> float [1, C, H, W]; uint8 scaled to 0..1."""
    if not 2 <= x.dim() <= 4:
        raise ValueError(f"the {what} tensor must be [C, H, W] or [1, C, H, W] (channels first), "
                         f"got shape {list(x.shape)}")
    x = x.detach()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.reshape((1,) * (4 - x.dim()) + tuple(x.shape))
    if x.shape[0] != 1:
        raise ValueError(f"one {what} expected, got a batch of {x.shape[0]}: give them one at a time")
    return x


def image_tensor(image) -> torch.Tensor:
    """Any image (tensor channels-first; array or PIL channels-last) -> float [1, 3, H, W] in 0..1,
    grey repeated, alpha dropped."""
    x = (_one_channels_first(image, "image") if isinstance(image, torch.Tensor) else _array_to_tensor(image))
    c = x.shape[1]
    if c not in (1, 3, 4):
        hint = (" (a channels-last [1, H, W, C] tensor, e.g. ComfyUI's IMAGE? use .permute(0, 3, 1, 2))"
                if x.shape[-1] in (1, 3, 4) else "")
        raise ValueError(f"an image has 1, 3 or 4 channels, got {c} in shape {list(x.shape)}{hint}")
    x = x.repeat(1, 3, 1, 1) if c == 1 else x[:, :3]
    return x.clamp(0, 1).contiguous()


def mask_tensor(mask) -> torch.Tensor:
    """Any mask (tensor [H, W] / [1, H, W] / [1, 1, H, W]; array or PIL [H, W] or channels-last, first
    channel) -> float [1, 1, H, W] in 0..1."""
    if isinstance(mask, torch.Tensor):
        m = _one_channels_first(mask, "mask")
        if m.shape[1] != 1:
            raise ValueError(f"a mask has one channel, got shape {list(mask.shape)}")
    else:
        from PIL import Image
        m = _array_to_tensor(mask.convert("L") if isinstance(mask, Image.Image) else mask)[:, :1]
    return m.clamp(0, 1).contiguous()


def to_hwc(image) -> np.ndarray:
    """The core's image (tensor [1, 3, H, W] / [3, H, W]) or an array [H, W, 3] (float 0..1 or uint8)
    -> float32 [H, W, 3]."""
    if isinstance(image, torch.Tensor):
        image = image_tensor(image)[0].permute(1, 2, 0).cpu().numpy()
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {list(np.shape(image))}")
    a = a[..., :3]
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def is_colour(bg) -> bool:
    """An RGB colour (tuple, list, 1-d array or tensor of 3 numbers), not an image."""
    return isinstance(bg, (tuple, list)) or (np.ndim(bg) == 1 and np.size(bg) == 3)




def resize_hwc(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """float HWC image resized with Pillow (Lanczos; box filter when shrinking a lot)."""
    from PIL import Image
    u8 = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(u8.resize((width, height), Image.LANCZOS), np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
