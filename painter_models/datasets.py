"""Stroke datasets: many (action, stroke) pairs of one painting program, in checksummed shards.

Generate (console script, or ``python -m painter_models.datasets``)::

    neural-painters-dataset --brush classic/dry_brush --count 100000 --out data/dry_brush \\
        --shard-size 10000 --size 64 --seed 0 --workers 2
    neural-painters-dataset --verify --out data/dry_brush

A dataset is a folder::

    manifest.json        what the shards are (below), rewritten atomically after each shard
    shard_00000.npz      uncompressed npz: actions float32 [n, D], strokes uint8 [n, S, S, 4]
    shard_00001.npz      ...

``actions`` are normalised to 0..1 in the layout's field order (``manifest["layout"]``);
``strokes`` are what the program rendered: premultiplied RGBA on a transparent surface.
The actions of shard i are drawn from ``numpy.random.default_rng([seed, i])``, rendering is
deterministic, and the npz files are written byte-reproducibly (fixed zip timestamps), so any
shard can be regenerated on its own and an interrupted run, re-run with the same command,
ends with exactly the files an uninterrupted run writes. Re-running keeps every shard whose
sha256 matches the manifest and generates the missing ones; a shard that does not match, or a
folder holding another dataset (brush, size, layout, seed, library ... differ), is reported
with what to do and is never used or overwritten.

Train from a dataset with :class:`ShardStream` (a ``torch.utils.data.IterableDataset``)::

    data = StrokeShards("data/dry_brush")                 # reads and checks the manifest
    train = ShardStream(data, batch_size=256, split="train", heldout=1, seed=0)
    loader = DataLoader(train, batch_size=None, num_workers=2)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        for actions, strokes in loader:                   # [B, D] float32, [B, 4, S, S] float32
            ...
    actions, strokes = load_all("data/dry_brush", split="heldout", heldout=1)   # small eval sets

Shards are memory-mapped (the npz members are stored uncompressed, so they are mapped in
place; ``np.load(mmap_mode=...)`` would read npz members whole), so memory stays bounded by the
shuffle buffer whatever the dataset size.
"""
from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import math
import os
import re
import struct
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .actions import LAYOUTS, NAKANO, ActionLayout, BrushReach, get_layout, hold_whole, keep_inside
from .files import atomic_write

FORMAT = "neural-painters-strokes"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
SHARD_RE = re.compile(r"^shard_(\d{5,})\.npz$")
# Fields that make two datasets the same dataset (a re-run may only continue a matching one).
IDENTITY = ("program", "brush_sha256", "library", "layout", "stroke_size", "shard_size", "seed", "brush_seed", "reach")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 2048  # strokes rendered per call (progress granularity)


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


def _write_shard_tmp(out: str, index: int, actions: np.ndarray, strokes: np.ndarray) -> tuple[str, dict]:
    """Write shard `index` to a temporary file in `out` (synced); returns (tmp path, manifest entry
    with the checksum of the bytes on disk). The caller renames it into place or removes it."""
    fd, tmp = tempfile.mkstemp(dir=out, prefix="." + shard_name(index) + ".", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)
        write_npz(tmp, {"actions": actions, "strokes": strokes})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        return tmp, {"bytes": os.path.getsize(tmp), "sha256": sha256_file(tmp)}
    except BaseException:
        os.remove(tmp)
        raise


def _write_json(path: str, data: dict):
    text = json.dumps(data, indent=1) + "\n"

    def write(tmp):
        os.chmod(tmp, 0o644)
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


# -- manifest -------------------------------------------------------------------------------------
def _manifest_path(path: str) -> str:
    return path if path.endswith(".json") else os.path.join(path, MANIFEST)


def read_manifest(path: str) -> dict:
    """The manifest of a dataset folder (or of the manifest.json path); DatasetError if unusable."""
    mpath = _manifest_path(path)
    folder = os.path.dirname(mpath) or "."
    if not os.path.isfile(mpath):
        if os.path.isdir(folder) and _shard_files(folder):
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


def _shard_files(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder) if SHARD_RE.match(f))


def _check_shard_file(folder: str, entry: dict, deep: bool = True) -> str | None:
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


# -- generation -----------------------------------------------------------------------------------
def _program_info(program, brush: str) -> dict:
    """program / brush / brush_path / brush_sha256 / library for a painting program."""
    from .raster import RasterProgram
    if isinstance(program, RasterProgram):
        return {"program": "raster", "brush": program.brush, "brush_path": "raster", "brush_sha256": None,
                "library": "raster"}
    from .mypaint import library_version
    path = os.path.abspath(program.brush_path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"program": "mypaint", "brush": brush, "brush_path": path, "brush_sha256": digest,
            "library": library_version()}


def _describe(m: dict, key: str):
    v = m.get(key)
    if key == "layout" and isinstance(v, dict):
        return v.get("name", "?") + ("" if v == NAKANO.to_dict() or v.get("name") != NAKANO.name else " (modified)")
    if key == "brush_sha256" and v:
        return f"{m.get('brush')} (sha256 {v[:12]})"
    return v


def _compare(old: dict, new: dict, out: str):
    diffs = [k for k in IDENTITY if old.get(k) != new.get(k)]
    if diffs:
        lines = ", ".join(f"{k}: {_describe(old, k)!r} there, {_describe(new, k)!r} asked" for k in diffs)
        raise DatasetError(
            f"{out} already holds another stroke dataset ({old.get('brush')}, {old.get('stroke_size')} px, "
            f"seed {old.get('seed')}); it differs in {lines}. Use another --out, or delete {out} to replace it "
            f"(re-run with the settings in {os.path.join(out, MANIFEST)} to continue that dataset)")
    old_plan = shard_plan(old["count"], old["shard_size"])
    new_plan = shard_plan(new["count"], new["shard_size"])
    for e in old["shards"]:
        i = e["index"]
        if i >= len(new_plan) or new_plan[i] != e["count"]:
            raise DatasetError(
                f"{out} holds shard {e['file']} with {e['count']} strokes, which --count {new['count']} "
                f"(shard size {new['shard_size']}) would not keep; continue it with --count {old['count']}"
                + (" or a larger multiple of the shard size" if len(old_plan) and old_plan[-1] == old["shard_size"]
                   else "") + ", or use another --out")


class _Lock:
    """An exclusive lock on the dataset folder so two generators never write it at once."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK)

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise DatasetError(f"another neural-painters-dataset process is writing {os.path.dirname(self.path)}; "
                               f"wait for it to finish (or stop it) first") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def generate(out: str, brush: str = "classic/dry_brush", count: int = 100_000, shard_size: int = 10_000,
             size: int = 64, seed: int = 0, workers: int = 1, brush_seed: int = 0,
             layout: ActionLayout | str = NAKANO, progress: bool = True, log=print,
             reach: BrushReach | None = None) -> dict:
    """Generate (or continue) a stroke dataset in `out`; returns the final manifest.

    Existing shards are kept when their checksum matches the manifest; a corrupt shard or a
    folder holding another dataset raises DatasetError (nothing is overwritten).
    reach: the brush's reach (mypaint.brush_reach): strokes whole in their tile (whole_strokes),
    the only strokes a painter is asked for; None: uniform random actions."""
    from tqdm import tqdm

    from . import __version__
    from .raster import make_program
    count, shard_size, size, seed, brush_seed = int(count), int(shard_size), int(size), int(seed), int(brush_seed)
    if count < 1 or shard_size < 1:
        raise DatasetError(f"--count ({count}) and --shard-size ({shard_size}) must be at least 1")
    if seed < 0 or brush_seed < 0:
        raise DatasetError("--seed and --brush-seed must be >= 0")
    layout = get_layout(layout)
    os.makedirs(out, exist_ok=True)
    with _Lock(out):
        for pattern in (".shard_*.npz.*.tmp", f".{MANIFEST}.*.tmp"):
            for tmp in glob.glob(os.path.join(out, pattern)):
                os.remove(tmp)  # left by a killed run; only a generator holding the lock writes these
        old = read_manifest(out) if os.path.exists(os.path.join(out, MANIFEST)) or _shard_files(out) else None
        program = make_program(brush, size, layout, brush_seed=brush_seed, workers=workers)
        try:
            plan = shard_plan(count, shard_size)
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, **_program_info(program, brush),
                "layout": layout.to_dict(), "stroke_size": size, "shard_size": shard_size, "count": count,
                "num_shards": len(plan), "seed": seed, "brush_seed": brush_seed,
                "reach": None if reach is None else reach.to_dict(),
                "actions": f"float32 [n, {layout.dim}] in 0..1, fields in layout order; shard i drawn from "
                           f"numpy.random.default_rng([seed, i])"
                           + ("" if reach is None else ", then whole in their tile for this reach"),
                "strokes": f"uint8 [n, {size}, {size}, 4], premultiplied RGBA on a transparent surface",
                "generator": f"painter_models {__version__} (neural-painters-dataset)",
                "complete": False, "shards": [],
            }
            shards: dict[int, dict] = {}
            if old is not None:
                _compare(old, manifest, out)
                if old.get("brush") != manifest["brush"]:
                    manifest["brush"] = old["brush"]  # same file under another name: keep the first name
                problems = []
                for e in old["shards"]:
                    if os.path.isfile(os.path.join(out, e["file"])):
                        problem = _check_shard_file(out, e)
                        if problem:
                            problems.append(problem)
                        else:
                            shards[e["index"]] = e
                if problems:
                    raise DatasetError("\n".join(problems))
            listed = {shard_name(i) for i in shards}
            unlisted = {int(SHARD_RE.match(f).group(1)) for f in _shard_files(out) if f not in listed}
            beyond = sorted(i for i in unlisted if i >= len(plan))
            if beyond:
                raise DatasetError(f"{os.path.join(out, shard_name(beyond[0]))} is not part of this dataset "
                                   f"(--count {count} has {len(plan)} shards) and is not in {MANIFEST}; "
                                   f"delete it, or use another --out")
            recorded = {e["index"]: e for e in (old or {}).get("shards", [])}
            todo = [i for i in range(len(plan)) if i not in shards]
            done = sum(plan[i] for i in shards)

            def save_manifest():
                manifest["shards"] = [shards[i] for i in sorted(shards)]
                manifest["complete"] = len(shards) == len(plan)
                _write_json(os.path.join(out, MANIFEST), manifest)

            def store(i, actions, strokes):
                path = os.path.join(out, shard_name(i))
                tmp, entry = _write_shard_tmp(out, i, actions, strokes)
                try:
                    want = recorded.get(i, {}).get("sha256")
                    if want and want != entry["sha256"]:
                        raise DatasetError(
                            f"regenerated {path} does not match the checksum {MANIFEST} recorded for it: this "
                            f"machine's painting program ({manifest['library']}) renders differently from the one "
                            f"that made the dataset; use another --out")
                    if i in unlisted and sha256_file(path) != entry["sha256"]:
                        # A run killed between writing a shard and recording it leaves exactly these bytes.
                        raise DatasetError(f"{path} is not recorded in {MANIFEST} and differs from the shard this "
                                           f"command generates; delete it and re-run, or use another --out")
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
                shards[i] = {"file": shard_name(i), "index": i, "count": plan[i], **entry}
                save_manifest()

            manifest["shards"] = [shards[i] for i in sorted(shards)]
            manifest["complete"] = not todo
            if manifest != old:
                save_manifest()  # record the plan (and a new --count) before the first shard
            if not todo:
                log(f"{out}: complete, {count} strokes in {len(plan)} shards, every checksum matches; nothing to do")
                return manifest
            if shards:
                log(f"{out}: {len(shards)} of {len(plan)} shards present and verified; generating {len(todo)} more")
            start, generated = time.perf_counter(), 0
            bar = tqdm(total=count, initial=done, unit="stroke", unit_scale=True, disable=not progress,
                       desc=os.path.basename(os.path.normpath(out)) or "strokes", dynamic_ncols=True)
            with ThreadPoolExecutor(1) as writer:  # write/hash shard i while shard i+1 renders
                pending = None
                for i in todo:
                    actions = shard_actions(layout, seed, i, plan[i], reach)
                    strokes = np.empty((plan[i], size, size, 4), np.uint8)
                    for a in range(0, plan[i], _CHUNK):
                        b = min(plan[i], a + _CHUNK)
                        strokes[a:b] = program.render(actions[a:b])
                        bar.update(b - a)
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(store, i, actions, strokes)
                    generated += plan[i]
                if pending is not None:
                    pending.result()
            bar.close()
            elapsed = time.perf_counter() - start
            if generated:
                log(f"{out}: generated {generated} strokes in {elapsed:.1f} s ({generated / elapsed:.0f} strokes/s); "
                    f"{count} strokes in {len(plan)} shards")
            return manifest
        finally:
            program.close()


def verify(path: str, deep: bool = True) -> list[str]:
    """Problems with a dataset folder (empty list: complete and every shard matches its checksum)."""
    try:
        manifest = read_manifest(path)
    except DatasetError as e:
        return [str(e)]
    folder = os.path.dirname(_manifest_path(path))
    problems = [p for e in manifest["shards"] if (p := _check_shard_file(folder, e, deep))]
    listed = {e["file"] for e in manifest["shards"]}
    problems += [f"{os.path.join(folder, f)} is not recorded in {MANIFEST}: an interrupted run wrote it; re-run the "
                 f"generating command to check and record it" for f in _shard_files(folder) if f not in listed]
    if not problems:
        for e in manifest["shards"]:
            try:
                _check_arrays(folder, manifest, e, map_npz(os.path.join(folder, e["file"])))
            except (DatasetError, ValueError, OSError, zipfile.BadZipFile) as err:
                problems.append(str(err))
    n = len(shard_plan(manifest["count"], manifest["shard_size"]))
    if len(manifest["shards"]) < n:
        problems.append(f"{folder} is incomplete: {len(manifest['shards'])} of {n} shards; re-run the generating "
                        f"command to finish it")
    return problems


def _check_arrays(folder, manifest, entry, arrays):
    s, d = manifest["stroke_size"], len(manifest["layout"]["fields"])
    a, st = arrays.get("actions"), arrays.get("strokes")
    if (a is None or st is None or a.dtype != np.float32 or a.shape != (entry["count"], d)
            or st.dtype != np.uint8 or st.shape != (entry["count"], s, s, 4)):
        n = entry["count"]
        raise DatasetError(f"{os.path.join(folder, entry['file'])} does not hold actions float32 [{n}, {d}] and "
                           f"strokes uint8 [{n}, {s}, {s}, 4]; delete it and re-run the generating command")
    return a, st


# -- reading --------------------------------------------------------------------------------------
class StrokeShards:
    """A dataset folder opened for reading: manifest checked, shards memory-mapped on demand.

    verify: "open" checks the sha256 of every shard now (once; cheap next to an epoch of training),
    "lazy" checks each shard the first time this process maps it, "none" only checks file sizes.
    An incomplete dataset (generation still running or interrupted) is refused unless
    allow_incomplete=True. Held-out shards are the last `heldout` shards of the planned dataset,
    so the split does not move while a dataset grows."""

    def __init__(self, path: str, verify: str | bool = "open", allow_incomplete: bool = False):
        if verify is True:
            verify = "open"
        if verify is False:
            verify = "none"
        if verify not in ("open", "lazy", "none"):
            raise ValueError(f"verify must be 'open', 'lazy' or 'none', got {verify!r}")
        self.path = os.path.dirname(_manifest_path(path)) or "."
        self.manifest = read_manifest(path)
        self.layout = get_layout(self.manifest["layout"])
        self.stroke_size = int(self.manifest["stroke_size"])
        self.brush = self.manifest["brush"]
        self.num_planned = len(shard_plan(self.manifest["count"], self.manifest["shard_size"]))
        self.entries = {e["index"]: e for e in self.manifest["shards"]}
        self.complete = len(self.entries) == self.num_planned
        if not self.complete and not allow_incomplete:
            raise DatasetError(f"{self.path} is incomplete ({len(self.entries)} of {self.num_planned} shards): finish "
                               f"it by re-running the command that generated it, or pass allow_incomplete=True")
        self.verify_mode = verify
        self._verified: set[int] = set()
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        problems = [p for e in self.entries.values() if (p := _check_shard_file(self.path, e, deep=False))]
        if problems:
            raise DatasetError("\n".join(problems))
        if verify == "open":
            self.verify()

    @property
    def shards(self) -> list[int]:
        """Indices of the shards present, in order."""
        return sorted(self.entries)

    def __len__(self) -> int:
        return sum(e["count"] for e in self.entries.values())

    def count(self, indices=None) -> int:
        return sum(self.entries[i]["count"] for i in (self.shards if indices is None else indices))

    def __repr__(self):
        return (f"StrokeShards({self.path!r}: {len(self)} strokes of {self.brush} at {self.stroke_size} px in "
                f"{len(self.entries)}/{self.num_planned} shards)")

    def verify(self, indices=None):
        """Check the sha256 of the given shards (default all); DatasetError naming every bad file."""
        problems = []
        for i in self.shards if indices is None else indices:
            if i in self._verified:
                continue
            problem = _check_shard_file(self.path, self.entries[i])
            if problem:
                problems.append(problem)
            else:
                self._verified.add(i)
        if problems:
            raise DatasetError("\n".join(problems))

    def select(self, split: str = "all", heldout: int = 0, shards=None) -> list[int]:
        """Shard indices: `shards` if given, else the split ("all", "train": all but the last `heldout`
        planned shards, "heldout": those last shards)."""
        if shards is not None:
            chosen = [int(i) for i in shards]
            missing = [i for i in chosen if i not in self.entries]
            if missing:
                raise DatasetError(f"{self.path} has no shard(s) {missing}; present: {self.shards}")
            return chosen
        heldout = int(heldout)
        if split == "all":
            return self.shards
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
        if not 0 <= heldout < self.num_planned or (split == "heldout" and heldout == 0):
            fix = (f"hold out 1..{self.num_planned - 1} shards" if self.num_planned > 1 else "use split='all'")
            raise DatasetError(f"cannot hold out {heldout} of the {self.num_planned} shard(s) of {self.path} for the "
                               f"{split!r} split: {fix}, or generate the dataset with more shards (a smaller "
                               f"--shard-size)")
        first = self.num_planned - heldout
        if split == "train":
            return [i for i in self.shards if i < first]
        missing = [i for i in range(first, self.num_planned) if i not in self.entries]
        if missing:
            raise DatasetError(f"held-out shard(s) {[shard_name(i) for i in missing]} of {self.path} are not "
                               f"generated yet; finish the dataset first")
        return list(range(first, self.num_planned))

    def open(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(actions float32 [n, D], strokes uint8 [n, S, S, 4]) of one shard, memory-mapped read-only."""
        if index not in self._maps:
            entry = self.entries.get(index)
            if entry is None:
                raise DatasetError(f"{self.path} has no shard {index}; present: {self.shards}")
            if self.verify_mode == "lazy":
                self.verify([index])
            path = os.path.join(self.path, entry["file"])
            try:
                arrays = map_npz(path)
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                raise DatasetError(f"{path} cannot be read ({e}); delete it and re-run the generating "
                                   f"command") from None
            self._maps[index] = _check_arrays(self.path, self.manifest, entry, arrays)
        return self._maps[index]

    def load(self, indices=None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Shards read into memory: (actions float32 [N, D], strokes uint8 [N, S, S, 4])."""
        indices = self.shards if indices is None else list(indices)
        acts, strokes, left = [], [], math.inf if limit is None else int(limit)
        for i in indices:
            if left <= 0:
                break
            a, s = self.open(i)
            k = int(min(len(a), left))
            acts.append(np.array(a[:k]))
            strokes.append(np.array(s[:k]))
            left -= k
        if not acts:
            s = self.stroke_size
            return np.empty((0, self.layout.dim), np.float32), np.empty((0, s, s, 4), np.uint8)
        return np.concatenate(acts), np.concatenate(strokes)

    def __getstate__(self):  # memory maps are not sent to worker processes; they re-map
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state


def strokes_to_float(strokes) -> torch.Tensor:
    """uint8 strokes [..., S, S, 4] (as stored) -> float32 [..., 4, S, S] premultiplied RGBA in 0..1.

    Works on any device: move the uint8 batch to the GPU first for 4x less transfer."""
    t = torch.as_tensor(strokes)
    if t.dtype != torch.uint8:
        raise TypeError(f"strokes_to_float expects uint8 strokes, got {t.dtype}")
    return t.movedim(-1, -3).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardStream(torch.utils.data.IterableDataset):
    """Shuffled batches from a stroke dataset for training (a torch IterableDataset).

    Yields (actions float32 [B, D], strokes [B, 4, S, S] float32 premultiplied RGBA in 0..1);
    with strokes="uint8" the strokes stay as stored, uint8 [B, S, S, 4] (convert on the device
    with strokes_to_float): 4x less to pass from DataLoader workers and to copy to the GPU, the
    faster choice for training. batch_size=None yields single samples instead, for a DataLoader
    that batches itself; otherwise use DataLoader(stream, batch_size=None, num_workers=...).

    Each epoch the selected shards are put in a random order (seed, epoch) and read as one
    sequence. Position p of that sequence goes to DDP rank p % world_size, and the rank's k-th
    sample to DataLoader worker k % num_workers, so ranks and workers get disjoint data and,
    together, every sample exactly once. With world_size > 1 and even_ranks, the last
    (N % world_size) positions are skipped so every rank gets N // world_size samples (and the
    same number of batches, which DDP needs). Each worker reads its rows chunk by chunk from
    memory-mapped shards into a shuffle buffer of `buffer_size` samples (half is kept between
    chunks), so memory is about buffer_size * S * S * 4 bytes per worker (64 px: 8192 -> 128 MiB).

    Call set_epoch(epoch) before each epoch (like DistributedSampler). Persistent workers do not see
    set_epoch, so each later pass over the stream in the same process advances the epoch by one.
    rank/world_size default to torch.distributed's when it is initialised when the stream is
    created (or, with fork workers, when iterated)."""

    def __init__(self, data: StrokeShards | str, batch_size: int | None = 256, split: str = "train",
                 heldout: int = 1, shards=None, shuffle: bool = True, seed: int = 0, buffer_size: int = 8192,
                 drop_last: bool = False, strokes: str = "float", rank: int | None = None,
                 world_size: int | None = None, even_ranks: bool = True, verify: str = "open"):
        super().__init__()
        self.data = data if isinstance(data, StrokeShards) else StrokeShards(data, verify=verify)
        if strokes not in ("float", "uint8"):
            raise ValueError(f"strokes must be 'float' or 'uint8', got {strokes!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.indices = self.data.select(split, heldout, shards)
        if not self.indices:
            raise DatasetError(f"the {split!r} split of {self.data.path} has no shards")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, int(seed)
        self.buffer_size = max(int(buffer_size), 2 * (batch_size or 1))
        self.drop_last, self.strokes, self.even_ranks = drop_last, strokes, even_ranks
        if rank is None and world_size is None:
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                rank, world_size = _dist_info()
        self.rank, self.world_size = rank, world_size
        if (rank is None) != (world_size is None) or (world_size is not None and not 0 <= rank < world_size):
            raise ValueError(f"give both rank and world_size with 0 <= rank < world_size, got {rank}, {world_size}")
        self.epoch, self._epoch_set, self._last_epoch = 0, True, None

    def set_epoch(self, epoch: int):
        self.epoch, self._epoch_set = int(epoch), True

    def _ranks(self) -> tuple[int, int]:
        return (self.rank, self.world_size) if self.world_size is not None else _dist_info()

    def samples_per_epoch(self) -> int:
        """Samples this rank gets per epoch (all its DataLoader workers together)."""
        rank, world = self._ranks()
        n = self.data.count(self.indices)
        return n // world if (world > 1 and self.even_ranks) else len(range(rank, n, world))

    def epoch_order(self, epoch: int) -> list[int]:
        """The shard order of an epoch (the same in every rank and worker)."""
        if not self.shuffle:
            return list(self.indices)
        rng = np.random.default_rng([self.seed, int(epoch), 0x5EED])
        return [self.indices[k] for k in rng.permutation(len(self.indices))]

    def _convert(self, actions: np.ndarray, strokes: np.ndarray):
        a = torch.from_numpy(actions)
        s = torch.from_numpy(strokes)
        return a, (strokes_to_float(s) if self.strokes == "float" else s)

    def __iter__(self):
        if self._epoch_set or self._last_epoch is None:
            epoch = self.epoch
        else:
            epoch = self._last_epoch + 1
        self._epoch_set, self._last_epoch = False, epoch
        rank, world = self._ranks()
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        order = self.epoch_order(epoch)
        total = self.data.count(order)
        limit = (total // world) * world if (world > 1 and self.even_ranks) else total
        # Position p belongs to rank p % world; the rank's q-th position (q = p // world) to worker q % nw.
        # So this stream takes p = rank + world * (wid + nw * j): p ≡ g (mod T).
        T, g = world * nw, rank + world * wid
        rng = np.random.default_rng([self.seed, int(epoch), g, 1])
        buf_a = buf_s = None
        chunk = max(self.buffer_size // 2, 1)
        bs = self.batch_size
        pos = 0
        for index in order:
            n = self.data.entries[index]["count"]
            start, stop = (g - pos) % T, min(n, limit - pos)
            pos += n
            if start >= stop:
                if pos >= limit:
                    break
                continue
            actions, strokes = self.data.open(index)
            rows = range(start, stop, T)
            for c in range(0, len(rows), chunk):
                sel = rows[c:c + chunk]
                a = np.array(actions[sel.start:sel.stop:T])  # copies out of the memory map
                s = np.array(strokes[sel.start:sel.stop:T])
                if buf_a is None:
                    buf_a, buf_s = a, s
                else:
                    buf_a, buf_s = np.concatenate([buf_a, a]), np.concatenate([buf_s, s])
                if len(buf_a) >= self.buffer_size:
                    keep = self.buffer_size // 2 if self.shuffle else 0
                    n_out = len(buf_a) - keep
                    if bs is not None:
                        n_out = n_out // bs * bs
                    if self.shuffle:
                        perm = rng.permutation(len(buf_a))
                        buf_a, buf_s = buf_a[perm], buf_s[perm]
                    yield from self._emit(buf_a[:n_out], buf_s[:n_out], last=False)
                    buf_a, buf_s = buf_a[n_out:], buf_s[n_out:]
            if pos >= limit:
                break
        if buf_a is not None and len(buf_a):
            if self.shuffle:
                perm = rng.permutation(len(buf_a))
                buf_a, buf_s = buf_a[perm], buf_s[perm]
            yield from self._emit(buf_a, buf_s, last=True)

    def _emit(self, a: np.ndarray, s: np.ndarray, last: bool):
        if self.batch_size is None:
            for k in range(len(a)):
                ta, ts = self._convert(a[k:k + 1], s[k:k + 1])
                yield ta[0], ts[0]
            return
        bs = self.batch_size
        for k in range(0, len(a), bs):
            if len(a) - k < bs and (self.drop_last or not last):
                return
            yield self._convert(a[k:k + bs], s[k:k + bs])


def load_all(path: str | StrokeShards, shards=None, split: str = "all", heldout: int = 0, strokes: str = "float",
             limit: int | None = None, verify: str = "open"):
    """A small set (e.g. held-out shards) in memory as tensors: (actions float32 [N, D],
    strokes float32 [N, 4, S, S] premultiplied RGBA in 0..1, or uint8 [N, S, S, 4] with strokes="uint8")."""
    data = path if isinstance(path, StrokeShards) else StrokeShards(path, verify="none" if verify == "none" else "lazy")
    a, s = data.load(data.select(split, heldout, shards), limit)
    a, s = torch.from_numpy(a), torch.from_numpy(s)
    return a, (strokes_to_float(s) if strokes == "float" else s)


def load_arrays(path: str, shards=None, split: str = "all", heldout: int = 0, limit: int | None = None):
    """numpy (actions float32 [N, D], strokes uint8 [N, S, S, 4], manifest dict) of a dataset folder."""
    data = StrokeShards(path, verify="lazy")
    a, s = data.load(data.select(split, heldout, shards), limit)
    return a, s, data.manifest


# -- command line ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="neural-painters-dataset",
        description="Generate a stroke dataset (random actions and the strokes a painting program renders for "
                    "them) into checksummed shards. Re-running the same command continues an interrupted run.")
    p.add_argument("--out", required=True, help="dataset folder (created; re-run to resume)")
    p.add_argument("--brush", default="classic/dry_brush",
                   help="MyPaint preset name or .myb path, or 'raster' for the torch rasteriser (default: %(default)s)")
    p.add_argument("--count", type=int, default=100_000, help="number of strokes (default: %(default)s)")
    p.add_argument("--shard-size", type=int, default=10_000, help="strokes per shard file (default: %(default)s)")
    p.add_argument("--size", type=int, default=64, help="stroke size in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the actions (default: %(default)s)")
    p.add_argument("--brush-seed", type=int, default=0, help="MyPaint brush randomness variant (default: %(default)s)")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                   help="MyPaint rendering processes (default: %(default)s)")
    p.add_argument("--layout", default=NAKANO.name, choices=sorted(LAYOUTS),
                   help="action layout (default: %(default)s)")
    p.add_argument("--verify", action="store_true", help="only check the dataset in --out: every shard's checksum")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.verify:
        problems = verify(args.out)
        if problems:
            for line in problems:
                print("error: " + line, file=sys.stderr)
            return 1
        m = read_manifest(args.out)
        print(f"{args.out}: OK: {m['count']} strokes of {m['brush']} at {m['stroke_size']} px in {len(m['shards'])} "
              f"shards, every checksum matches")
        return 0
    try:
        generate(args.out, args.brush, args.count, args.shard_size, args.size, args.seed, args.workers,
                 args.brush_seed, args.layout, progress=not args.quiet)
    except DatasetError as e:
        print("error: " + str(e), file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as e:  # bad size, MyPaint missing (MyPaintUnavailable says what to install)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: re-run the same command to continue {args.out}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
