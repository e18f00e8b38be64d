"""The stroke dataset format: shard files (names, plan, actions, checksums, npz writing and
memory-mapping), the manifest, and the checks of a shard against its manifest entry."""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile

import numpy as np
import torch

from painter_models.brush.actions import ActionLayout, BrushReach, get_layout, hold_whole, keep_inside

FORMAT = "neural-painters-strokes"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
SHARD_RE = re.compile(r"^shard_(\d{5,})\.npz$")
# Fields that make two datasets the same dataset (a re-run may only continue a matching one).
IDENTITY = ("program", "brush_sha256", "library", "layout", "stroke_size", "shard_size", "seed", "brush_seed", "reach")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class DatasetError(ValueError):
    """A dataset folder that cannot be used as asked; the message names the file and what to do."""


# -- shard files ------------------------------------------------------------------------------------
def shard_name(index: int) -> str:
    return f"shard_{index:05d}.npz"


def shard_plan(count: int, shard_size: int) -> list[int]:
    """Number of strokes in each shard: full shards then the remainder."""
    full, rest = divmod(int(count), int(shard_size))
    return [int(shard_size)] * full + ([rest] if rest else [])


def shard_actions(layout: ActionLayout, seed: int, index: int, count: int,
                  reach: BrushReach | None = None) -> np.ndarray:
    """The actions of shard `index`: float32 [count, D], a pure function of (seed, index); with the
    brush's `reach`, the strokes a painter is asked for (whole_strokes)."""
    actions = get_layout(layout).sample(count, generator=np.random.default_rng([int(seed), int(index)]))
    return actions if reach is None else whole_strokes(layout, actions, reach)


def whole_strokes(layout: ActionLayout, actions: np.ndarray, reach: BrushReach) -> np.ndarray:
    """Random actions as a painter meets them on a canvas (canvas.render): kept inside their box and
    moved into a box that holds all the brush paints (actions.keep_inside, actions.hold_whole), so
    the stroke is whole in its tile."""
    layout = get_layout(layout)
    a = keep_inside(layout, torch.from_numpy(np.asarray(actions, np.float32)), reach)
    a, _ = hold_whole(layout, a, torch.tensor([[0.5, 0.5, 1.0]]).expand(len(a), 3), reach)
    return a.numpy().astype(np.float32)


def sha256_file(path: str, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def write_npz(path: str, arrays: dict[str, np.ndarray]):
    """An uncompressed .npz (readable by np.load) whose bytes depend only on the arrays."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def map_npz(path: str) -> dict[str, np.ndarray]:
    """The members of an uncompressed .npz as read-only memory maps (np.load(mmap_mode=...) would
    read npz members whole). Falls back to reading members that cannot be mapped."""
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                out[name] = np.load(zf.open(info), allow_pickle=False)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"bad zip local header for {info.filename}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                out[name] = np.load(zf.open(info), allow_pickle=False)
                continue
            if dtype.hasobject:
                raise ValueError(f"{info.filename} holds Python objects")
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape,
                                  order="F" if fortran else "C")
    return out

# -- manifest -------------------------------------------------------------------------------------
def manifest_path(path: str) -> str:
    """The manifest.json of a dataset folder (a path ending in .json is that file already)."""
    return path if path.endswith(".json") else os.path.join(path, MANIFEST)


def read_manifest(path: str) -> dict:
    """The manifest of a dataset folder (or of the manifest.json path); DatasetError if unusable."""
    mpath = manifest_path(path)
    folder = os.path.dirname(mpath) or "."
    if not os.path.isfile(mpath):
        if os.path.isdir(folder) and shard_files(folder):
            raise DatasetError(f"{folder} holds shard files but no {MANIFEST}, so they cannot be checked; "
                               f"delete the folder (or use another --out) and generate the dataset again")
        raise DatasetError(f"{folder} is not a stroke dataset (no {MANIFEST}); create one with "
                           f"neural-painters-dataset --brush ... --count ... --out {folder}")
    try:
        with open(mpath) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{mpath} is not readable JSON ({e}); delete the folder (or use another --out) "
                           f"and generate the dataset again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DatasetError(f"{mpath} is not a stroke dataset manifest (format={got!r}, expected {FORMAT!r}); "
                           f"use another --out or delete that folder")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(f"{mpath} has dataset format version {version!r}; this code reads up to "
                           f"{FORMAT_VERSION}: update comfyui-neural-painters")
    try:
        plan = shard_plan(manifest["count"], manifest["shard_size"])
        get_layout(manifest["layout"])
        int(manifest["stroke_size"])
        for e in manifest["shards"]:
            if (e["file"] != shard_name(e["index"]) or not 0 <= e["index"] < len(plan)
                    or e["count"] != plan[e["index"]] or not isinstance(e["sha256"], str)):
                raise ValueError(f"shard entry {e} does not fit count={manifest['count']}, "
                                 f"shard_size={manifest['shard_size']}")
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{mpath} is damaged ({e!r}); delete the folder (or use another --out) "
                           f"and generate the dataset again") from None
    return manifest


def shard_files(folder: str) -> list[str]:
    """The shard file names in a folder, sorted (listed in the manifest or not)."""
    return sorted(f for f in os.listdir(folder) if SHARD_RE.match(f))


def check_shard_file(folder: str, entry: dict, deep: bool = True) -> str | None:
    """None when the shard file matches its manifest entry, else what is wrong and what to do."""
    path = os.path.join(folder, entry["file"])
    if not os.path.isfile(path):
        return f"{path} is missing (listed in {MANIFEST}); re-run the generating command to regenerate it"
    size = os.path.getsize(path)
    if "bytes" in entry and size != entry["bytes"]:
        return (f"{path} has {size} bytes but {MANIFEST} records {entry['bytes']}: the file is truncated or was "
                f"modified. Delete it and re-run the generating command to regenerate it")
    if deep and sha256_file(path) != entry["sha256"]:
        return (f"{path} does not match its sha256 checksum in {MANIFEST}: the file is corrupt or was modified. "
                f"Delete it and re-run the generating command to regenerate it")
    return None


def check_arrays(folder, manifest, entry, arrays):
    """(actions, strokes) of a mapped shard when their dtypes and shapes fit its manifest entry; else
    DatasetError."""
    s, d = manifest["stroke_size"], len(manifest["layout"]["fields"])
    a, st = arrays.get("actions"), arrays.get("strokes")
    if (a is None or st is None or a.dtype != np.float32 or a.shape != (entry["count"], d)
            or st.dtype != np.uint8 or st.shape != (entry["count"], s, s, 4)):
        n = entry["count"]
        raise DatasetError(f"{os.path.join(folder, entry['file'])} does not hold actions float32 [{n}, {d}] and "
                           f"strokes uint8 [{n}, {s}, {s}, 4]; delete it and re-run the generating command")
    return a, st

