"""The stroke file of a clip: every frame's strokes (each frame a stroke file's document, docs/stroke_json.md)
and which stroke is which: a stroke keeps its id in every frame it lives in.

    save_clip("clip.json", [(strokes, ids, "frame_00000.png"), ...], fps=12)
    for strokes, ids, name in load_clip("clip.json").frames: ...
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..brush.strokes import StrokeSet
from ..files import write_text
from .stroke_file import StrokeFileError, read_json_file, strokes_from_json, strokes_to_json

CLIP_FORMAT = "neural-painters-stroke-clip"
CLIP_FORMAT_VERSION = 1


@dataclass
class StrokeClip:
    frames: list[tuple[StrokeSet, list[int], str]]     # (strokes, their ids, the frame's name) in clip order
    fps: float


def save_clip(path: str, frames, fps: float) -> str:
    """frames: [(StrokeSet, ids, name)]; written atomically, one frame a line."""
    head = {"format": CLIP_FORMAT, "format_version": CLIP_FORMAT_VERSION, "fps": float(fps),
            "n_frames": len(frames)}
    lines = [json.dumps({"name": name, "ids": [int(i) for i in ids], "strokes": strokes_to_json(strokes)},
                        allow_nan=False) for strokes, ids, name in frames]
    text = json.dumps(head)[:-1] + ', "frames": [\n' + ",\n".join(lines) + "\n]}\n"
    write_text(path, text)
    return path


def load_clip(path: str) -> StrokeClip:
    """Read a clip's stroke file written by save_clip; StrokeFileError says what is wrong and where."""
    label = repr(path)
    doc = read_json_file(path, label, "clip stroke file", "paint a shorter clip")
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != CLIP_FORMAT:
        raise StrokeFileError(f"{label} is not a clip stroke file (format {found!r}, expected {CLIP_FORMAT!r}); a "
                              f"single painting's strokes load with load_strokes")
    if not isinstance(doc.get("format_version"), int) or doc["format_version"] > CLIP_FORMAT_VERSION:
        raise StrokeFileError(f"{label}: format_version {doc.get('format_version')!r} is not one this version "
                              f"reads (<= {CLIP_FORMAT_VERSION}); update the package")
    items = doc.get("frames")
    if not isinstance(items, list) or doc.get("n_frames") != len(items):
        raise StrokeFileError(f"{label}: 'frames' must be a list of n_frames ({doc.get('n_frames')!r}) frames "
                              f"(truncated?)")
    frames = []
    for k, item in enumerate(items):
        where = f"{path}: frame {k}"
        if not isinstance(item, dict):
            raise StrokeFileError(f"{where}: must be an object with 'ids' and 'strokes'")
        strokes = strokes_from_json(item.get("strokes"), where)
        ids = item.get("ids")
        if (not isinstance(ids, list) or len(ids) != len(strokes) or len(set(ids)) != len(ids)
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)):
            raise StrokeFileError(f"{where}: 'ids' must be {len(strokes)} distinct whole numbers >= 0, one a stroke")
        frames.append((strokes, ids, str(item.get("name", f"frame_{k:05d}.png"))))
    fps = doc.get("fps")
    if not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise StrokeFileError(f"{label}: fps must be a number in 0..1000, got {fps!r}")
    return StrokeClip(frames, float(fps))
