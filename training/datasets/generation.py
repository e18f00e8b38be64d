"""Generating a stroke dataset (under a lock on its folder) and verifying one."""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from painter_models.brush.actions import NAKANO, ActionLayout, BrushReach, get_layout
from painter_models.files import write_text
from .format import (FORMAT, FORMAT_VERSION, IDENTITY, LOCK, MANIFEST, SHARD_RE, DatasetError, check_arrays,
                     check_shard_file, manifest_path, map_npz, read_manifest, sha256_file, shard_actions,
                     shard_files, shard_name, shard_plan, write_npz)

_CHUNK = 2048  # strokes rendered per call (progress granularity)


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
    write_text(path, json.dumps(data, indent=1) + "\n")


def _program_info(program, brush: str) -> dict:
    """program / brush / brush_path / brush_sha256 / library for a painting program."""
    from painter_models.brush.raster import RasterProgram
    if isinstance(program, RasterProgram):
        return {"program": "raster", "brush": program.brush, "brush_path": "raster", "brush_sha256": None,
                "library": "raster"}
    from painter_models.brush.mypaint import library_version
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
    from painter_models.brush.raster import make_program
    count, shard_size, size, seed, brush_seed = int(count), int(shard_size), int(size), int(seed), int(brush_seed)
    if count < 1 or shard_size < 1:
        raise DatasetError(f"--count ({count}) and --shard-size ({shard_size}) must be at least 1")
    if seed < 0 or brush_seed < 0:
        raise DatasetError("--seed and --brush-seed must be >= 0")
    layout = get_layout(layout)
    os.makedirs(out, exist_ok=True)
    with _Lock(out):
        _remove_temporary_files(out)
        old = read_manifest(out) if os.path.exists(os.path.join(out, MANIFEST)) or shard_files(out) else None
        program = make_program(brush, size, layout, brush_seed=brush_seed, workers=workers)
        try:
            plan = shard_plan(count, shard_size)
            manifest = _new_manifest(program, brush, layout, size, count, shard_size, len(plan), seed, brush_seed,
                                     reach)
            shards = _verified_shards(old, manifest, out)
            writer = _ShardWriter(out, manifest, plan, shards, old)
            todo = [i for i in range(len(plan)) if i not in shards]
            manifest["shards"] = [shards[i] for i in sorted(shards)]
            manifest["complete"] = not todo
            if manifest != old:
                writer.save_manifest()  # record the plan (and a new --count) before the first shard
            if not todo:
                log(f"{out}: complete, {count} strokes in {len(plan)} shards, every checksum matches; nothing to do")
                return manifest
            if shards:
                log(f"{out}: {len(shards)} of {len(plan)} shards present and verified; generating {len(todo)} more")
            start = time.perf_counter()
            generated = _render_shards(program, writer, todo, layout, seed, reach, brush, progress)
            elapsed = time.perf_counter() - start
            if generated:
                log(f"{out}: generated {generated} strokes in {elapsed:.1f} s ({generated / elapsed:.0f} strokes/s); "
                    f"{count} strokes in {len(plan)} shards")
            return manifest
        finally:
            program.close()


def _remove_temporary_files(out: str):
    for pattern in (".shard_*.npz.*.tmp", f".{MANIFEST}.*.tmp"):
        for tmp in glob.glob(os.path.join(out, pattern)):
            os.remove(tmp)  # left by a killed run; only a generator holding the lock writes these


def _new_manifest(program, brush: str, layout: ActionLayout, size: int, count: int, shard_size: int, num_shards: int,
                  seed: int, brush_seed: int, reach: BrushReach | None) -> dict:
    """The manifest of the dataset these arguments describe, with no shard yet."""
    from painter_models import __version__
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, **_program_info(program, brush),
        "layout": layout.to_dict(), "stroke_size": size, "shard_size": shard_size, "count": count,
        "num_shards": num_shards, "seed": seed, "brush_seed": brush_seed,
        "reach": None if reach is None else reach.to_dict(),
        "actions": f"float32 [n, {layout.dim}] in 0..1, fields in layout order; shard i drawn from "
                   f"numpy.random.default_rng([seed, i])"
                   + ("" if reach is None else ", then whole in their tile for this reach"),
        "strokes": f"uint8 [n, {size}, {size}, 4], premultiplied RGBA on a transparent surface",
        "generator": f"painter_models {__version__} (neural-painters-dataset)",
        "complete": False, "shards": [],
    }


def _verified_shards(old: dict | None, manifest: dict, out: str) -> dict[int, dict]:
    """The shards of the dataset already in `out` that can be kept (index -> manifest entry): it must be
    this dataset and every shard it lists that is present must match its checksum (DatasetError)."""
    shards: dict[int, dict] = {}
    if old is None:
        return shards
    _compare(old, manifest, out)
    if old.get("brush") != manifest["brush"]:
        manifest["brush"] = old["brush"]  # same file under another name: keep the first name
    problems = []
    for e in old["shards"]:
        if os.path.isfile(os.path.join(out, e["file"])):
            problem = check_shard_file(out, e)
            if problem:
                problems.append(problem)
            else:
                shards[e["index"]] = e
    if problems:
        raise DatasetError("\n".join(problems))
    return shards


class _ShardWriter:
    """Stores generated shards in `out` and records each in the manifest as soon as it is in place."""

    def __init__(self, out: str, manifest: dict, plan: list[int], shards: dict[int, dict], old: dict | None):
        self.out, self.manifest, self.plan, self.shards = out, manifest, plan, shards
        self.recorded = {e["index"]: e for e in (old or {}).get("shards", [])}
        listed = {shard_name(i) for i in shards}
        self.unlisted = {int(SHARD_RE.match(f).group(1)) for f in shard_files(out) if f not in listed}
        beyond = sorted(i for i in self.unlisted if i >= len(plan))
        if beyond:
            raise DatasetError(f"{os.path.join(out, shard_name(beyond[0]))} is not part of this dataset "
                               f"(--count {manifest['count']} has {len(plan)} shards) and is not in {MANIFEST}; "
                               f"delete it, or use another --out")

    def save_manifest(self):
        self.manifest["shards"] = [self.shards[i] for i in sorted(self.shards)]
        self.manifest["complete"] = len(self.shards) == len(self.plan)
        _write_json(os.path.join(self.out, MANIFEST), self.manifest)

    def store(self, i: int, actions: np.ndarray, strokes: np.ndarray):
        """Shard i into place, unless it contradicts a checksum on record (DatasetError)."""
        path = os.path.join(self.out, shard_name(i))
        tmp, entry = _write_shard_tmp(self.out, i, actions, strokes)
        try:
            want = self.recorded.get(i, {}).get("sha256")
            if want and want != entry["sha256"]:
                raise DatasetError(
                    f"regenerated {path} does not match the checksum {MANIFEST} recorded for it: this "
                    f"machine's painting program ({self.manifest['library']}) renders differently from the one "
                    f"that made the dataset; use another --out")
            if i in self.unlisted and sha256_file(path) != entry["sha256"]:
                # A run killed between writing a shard and recording it leaves exactly these bytes.
                raise DatasetError(f"{path} is not recorded in {MANIFEST} and differs from the shard this "
                                   f"command generates; delete it and re-run, or use another --out")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        self.shards[i] = {"file": shard_name(i), "index": i, "count": self.plan[i], **entry}
        self.save_manifest()


def _render_shards(program, writer: _ShardWriter, todo: list[int], layout: ActionLayout, seed: int,
                   reach: BrushReach | None, brush: str, progress: bool) -> int:
    """Render the shards `todo` in chunks and store each; returns the strokes generated."""
    from tqdm import tqdm
    out, plan, size = writer.out, writer.plan, writer.manifest["stroke_size"]
    new_dataset = not writer.shards
    bar = tqdm(total=writer.manifest["count"], initial=sum(plan[i] for i in writer.shards), unit="stroke",
               unit_scale=True, disable=not progress, desc=os.path.basename(os.path.normpath(out)) or "strokes",
               dynamic_ncols=True)
    generated = 0
    with ThreadPoolExecutor(1) as background:  # write/hash shard i while shard i+1 renders
        pending = None
        for i in todo:
            actions = shard_actions(layout, seed, i, plan[i], reach)
            strokes = np.empty((plan[i], size, size, 4), np.uint8)
            for a in range(0, plan[i], _CHUNK):
                b = min(plan[i], a + _CHUNK)
                strokes[a:b] = program.render(actions[a:b])
                if new_dataset and not generated and a == 0 and not strokes[a:b, ..., 3].any():
                    # a preset can paint nothing with the inputs we give (ramon/Pastel_1 on whole strokes)
                    raise DatasetError(f"{brush!r} painted nothing at all in the first {b} strokes (every pixel "
                                       f"transparent): a painter cannot learn it; pick another preset")
                bar.update(b - a)
            if pending is not None:
                pending.result()
            pending = background.submit(writer.store, i, actions, strokes)
            generated += plan[i]
        if pending is not None:
            pending.result()
    bar.close()
    return generated


def verify(path: str, deep: bool = True) -> list[str]:
    """Problems with a dataset folder (empty list: complete and every shard matches its checksum)."""
    try:
        manifest = read_manifest(path)
    except DatasetError as e:
        return [str(e)]
    folder = os.path.dirname(manifest_path(path))
    problems = [p for e in manifest["shards"] if (p := check_shard_file(folder, e, deep))]
    listed = {e["file"] for e in manifest["shards"]}
    problems += [f"{os.path.join(folder, f)} is not recorded in {MANIFEST}: an interrupted run wrote it; re-run the "
                 f"generating command to check and record it" for f in shard_files(folder) if f not in listed]
    if not problems:
        for e in manifest["shards"]:
            try:
                check_arrays(folder, manifest, e, map_npz(os.path.join(folder, e["file"])))
            except (DatasetError, ValueError, OSError, zipfile.BadZipFile) as err:
                problems.append(str(err))
    n = len(shard_plan(manifest["count"], manifest["shard_size"]))
    if len(manifest["shards"]) < n:
        problems.append(f"{folder} is incomplete: {len(manifest['shards'])} of {n} shards; re-run the generating "
                        f"command to finish it")
    return problems

