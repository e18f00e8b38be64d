"""Clips in and out of the core: a folder of frames (always), an animated GIF or WebP (Pillow), or a video file
(.mp4, .webm, .mkv, .mov, ... through PyAV, FFmpeg's bindings, which ComfyUI itself installs).

    clip = read_frames("clip.mp4", max_side=256)    # clip.frames [T, 3, H, W] in 0..1, clip.names, clip.fps
    write_frames("out/", frames, clip.names)         # one PNG a frame, named as the input frames
    write_frames("painted.mp4", frames, fps=clip.fps)

Frames are scaled down on reading so that their long side is at most max_side (the canvas's): a clip never
sits in memory at its full resolution. The number of frames times their pixels is bounded (limits.check_batch).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..files import atomic_write
from ..images import to_uint8
from ..limits import check_batch
from .image_files import IMAGE_FORMATS, ImageFileError

FRAME_FILES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ANIMATIONS = (".gif", ".webp")
VIDEO_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx-vp9"}
DEFAULT_FPS = 12.0
PYAV_HINT = "pip install av (PyAV; ComfyUI installs it), or use a folder of frames"


@dataclass
class Clip:
    frames: torch.Tensor        # [T, 3, H, W] in 0..1
    names: list[str]            # one per frame: the input file names (a folder) or frame_00000.png ...
    fps: float


def _shrink(image, max_side: int):
    from PIL import Image
    w, h = image.size
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _stack(arrays: list[np.ndarray], source: str) -> torch.Tensor:
    if not arrays:
        raise ImageFileError(f"{source!r} holds no frames")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ImageFileError(f"the frames of {source!r} differ in size ({sorted(shapes)[:3]}): a clip's frames "
                             f"must all be one size")
    check_batch(len(arrays), *arrays[0].shape[:2], f"the clip {source!r}", "paint fewer frames or a smaller size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def read_frames(path: str, max_side: int = 0) -> Clip:
    """A folder of frames (sorted by name), an animated GIF / WebP or a video file, as a Clip."""
    if not os.path.exists(path):
        raise ImageFileError(f"{path!r} does not exist: give a video file or a folder of frames")
    if os.path.isdir(path):
        return _read_folder(path, max_side)
    ext = os.path.splitext(path)[1].lower()
    if ext in ANIMATIONS:
        return _read_animation(path, max_side)
    return _read_video(path, max_side)


def _read_folder(path: str, max_side: int) -> Clip:
    from PIL import Image, UnidentifiedImageError
    names = sorted(n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in FRAME_FILES)
    if not names:
        raise ImageFileError(f"the folder {path!r} holds no frames ({', '.join(FRAME_FILES)} files)")
    check_batch(len(names), max_side or 1, max_side or 1, f"the folder {path!r}", "paint fewer frames")
    arrays = []
    for name in names:
        try:
            with Image.open(os.path.join(path, name)) as im:
                arrays.append(_shrink(im, max_side))
        except (UnidentifiedImageError, OSError) as e:
            raise ImageFileError(f"cannot read the frame {name!r} in {path!r} ({e})") from None
    return Clip(_stack(arrays, path), names, DEFAULT_FPS)


def _read_animation(path: str, max_side: int) -> Clip:
    from PIL import Image, ImageSequence, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            duration = im.info.get("duration") or 1000 / DEFAULT_FPS
            arrays = [_shrink(frame.copy(), max_side) for frame in ImageSequence.Iterator(im)]
    except (UnidentifiedImageError, OSError) as e:
        raise ImageFileError(f"cannot read {path!r} as an animation ({e})") from None
    return Clip(_stack(arrays, path), _frame_names(len(arrays)), 1000.0 / max(1.0, float(duration)))


def _read_video(path: str, max_side: int) -> Clip:
    try:
        import av
    except ImportError:
        raise ImageFileError(f"reading the video {path!r} needs PyAV: {PYAV_HINT}") from None
    from PIL import Image
    arrays, fps = [], DEFAULT_FPS
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ImageFileError(f"{path!r} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or DEFAULT_FPS)
            for frame in container.decode(stream):
                arrays.append(_shrink(Image.fromarray(frame.to_ndarray(format="rgb24")), max_side))
                if len(arrays) % 64 == 0:
                    check_batch(len(arrays), *arrays[0].shape[:2], f"the video {path!r}", "paint a shorter clip")
    except av.error.FFmpegError as e:
        raise ImageFileError(f"cannot read {path!r} as a video ({e})") from None
    return Clip(_stack(arrays, path), _frame_names(len(arrays)), fps)


def _frame_names(count: int) -> list[str]:
    return [f"frame_{i:05d}.png" for i in range(count)]


def write_frames(path: str, frames: torch.Tensor, names: list[str] | None = None, fps: float = DEFAULT_FPS) -> str:
    """frames [T, 3, H, W] in 0..1 written to a folder (a path without an extension: one PNG a frame, named as
    `names` with .png), an animated .gif / .webp, or a video file; every file atomically."""
    images = [to_uint8(f.detach().float().permute(1, 2, 0).cpu().numpy()) for f in frames]
    ext = os.path.splitext(path)[1].lower()
    if not ext or os.path.isdir(path):
        names = names or _frame_names(len(images))
        os.makedirs(path, exist_ok=True)
        from .image_files import save_image
        for name, image in zip(names, images):
            save_image(os.path.join(path, os.path.splitext(name)[0] + ".png"), image)
        return path
    if ext in ANIMATIONS:
        from PIL import Image
        pictures = [Image.fromarray(i) for i in images]
        atomic_write(path, lambda tmp: pictures[0].save(tmp, format=IMAGE_FORMATS.get(ext, "GIF"), save_all=True,
                                                         append_images=pictures[1:], duration=round(1000 / fps),
                                                         loop=0))
        return path
    if ext not in VIDEO_CODECS:
        raise ImageFileError(f"output {path!r}: use a folder, .gif, .webp or a video file "
                             f"({', '.join(VIDEO_CODECS)})")
    atomic_write(path, lambda tmp: _encode(tmp, images, fps, VIDEO_CODECS[ext], ext))
    return path


def _encode(tmp: str, images: list[np.ndarray], fps: float, codec: str, ext: str):
    try:
        import av
    except ImportError:
        raise ImageFileError(f"writing a video needs PyAV: {PYAV_HINT}") from None
    from fractions import Fraction
    h, w = images[0].shape[:2]
    with av.open(tmp, "w", format={".mkv": "matroska"}.get(ext, ext[1:])) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"   # 4:2:0 needs even sides
        for image in images:
            even = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(even, format="rgb24")))
        container.mux(stream.encode())
