"""Image files in and out of the core: a photograph read as [1, 3, H, W] in 0..1, a canvas written as
PNG, JPEG or WebP (atomically)."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..files import atomic_write
from ..images import to_uint8

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


class ImageFileError(ValueError):
    """An image file that cannot be read or written; the message names the file and what to do."""


def load_image(path: str) -> torch.Tensor:
    """An image file as a float tensor [1, 3, H, W] in 0..1 (alpha dropped, grey expanded)."""
    from PIL import Image, UnidentifiedImageError
    if not os.path.exists(path):
        raise ImageFileError(f"image {path!r} does not exist")
    if os.path.isdir(path):
        raise ImageFileError(f"{path!r} is a folder, not an image file")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ImageFileError(f"cannot read {path!r} as an image ({e})") from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ImageFileError(f"image {path!r} is too small ({arr.shape[1]}x{arr.shape[0]} px)")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]


def save_image(path: str, image):
    """A canvas [1, 3, H, W] (or an [H, W, 3] uint8 array) written by its extension's format."""
    from PIL import Image
    fmt = IMAGE_FORMATS.get(os.path.splitext(path)[1].lower() or ".png")
    if fmt is None:
        raise ImageFileError(f"output {path!r}: use a .png, .jpg or .webp file name")
    if isinstance(image, torch.Tensor):
        image = to_uint8(image[0].detach().float().permute(1, 2, 0).cpu().numpy())
    picture = Image.fromarray(image)
    atomic_write(path, lambda tmp: picture.save(tmp, format=fmt))
