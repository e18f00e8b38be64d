"""Images at the edges of the core: what a painting is painted over (a StrokeSet's backdrop as an
image), and conversions between the core's tensors and the arrays, colours and files outside code
holds: float HWC arrays, 8-bit pixels, '#rrggbb' colours. The core itself works on [1, 3, H, W]
float tensors in 0..1 (canvas.background_canvas makes one from a colour or an image)."""
from __future__ import annotations

import numpy as np
import torch

from .strokes import StrokeSet


def canvas_image(strokes: StrokeSet) -> np.ndarray | None:
    """The StrokeSet's background image stretched to its canvas, float32 [H, W, 3], with the
    resize render_canvas uses (canvas.background_canvas), so every output shows the same pixels."""
    if strokes.background_image is None:
        return None
    from .canvas import background_canvas
    img = background_canvas(strokes.background_image.detach().float().cpu(), strokes.canvas_size)
    return img[0].permute(1, 2, 0).numpy()


def own_backdrop(background, strokes: StrokeSet):
    """`background` if one is given, else the StrokeSet's: its image (HWC at canvas size) or its colour."""
    if background is not None:
        return background
    image = canvas_image(strokes)
    return strokes.background if image is None else image


def hex_colour(rgb) -> str:
    r, g, b = (int(round(min(1.0, max(0.0, float(c))) * 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def to_hwc(image) -> np.ndarray:
    """[1, 3, H, W] / [3, H, W] tensor or array, or [H, W, 3] array (float 0..1 or uint8) -> float32 HWC."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    a = np.asarray(image)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise ValueError(f"expected an RGB image, got shape {list(np.shape(image))}")
    a = a[..., :3]
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def is_colour(bg) -> bool:
    """An RGB colour (tuple, list, 1-d array or tensor of 3 numbers), not an image."""
    return isinstance(bg, (tuple, list)) or (np.ndim(bg) == 1 and np.size(bg) == 3)


def backdrop_image(background, strokes: StrokeSet) -> np.ndarray:
    """What strokes are painted over, as a float32 [H, W, 3] image at their canvas size: `background`
    (a colour or an image, resized) or, when None, the StrokeSet's own backdrop."""
    h, w = strokes.canvas_size
    bg = own_backdrop(background, strokes)
    if is_colour(bg):
        return np.broadcast_to(np.asarray(bg, np.float32), (h, w, 3)).copy()
    img = to_hwc(bg)
    if img.shape[:2] != (h, w):
        img = resize_hwc(img, w, h)
    return img


def resize_hwc(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """float HWC image resized with Pillow (Lanczos; box filter when shrinking a lot)."""
    from PIL import Image
    u8 = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(u8.resize((width, height), Image.LANCZOS), np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
