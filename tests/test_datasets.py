"""Stroke datasets: shards, manifest, resume after SIGKILL, corrupt/foreign folders, the training loader."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import skip_no_mypaint
from painter_models import NAKANO, RasterProgram
from neural_painters_training import datasets
from neural_painters_training.datasets import (DatasetError, ShardStream, StrokeShards, load_all, load_arrays, main,
                                     read_manifest, shard_actions, strokes_to_float)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 6 shards: 5 x 16 + 13 (an odd total, for the DDP split); 32 px raster strokes, about a second to render.
ARGS = ["--brush", "raster", "--count", "93", "--shard-size", "16", "--size", "32", "--seed", "3", "--quiet"]
N, SHARDS = 93, [16, 16, 16, 16, 16, 13]


def run(out, *extra):
    return main(ARGS + ["--out", str(out), *extra])


def files(folder) -> dict[str, bytes]:
    """Every visible file of a dataset folder, by name (the lock file is hidden and empty)."""
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder)) if not f.startswith(".")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of ARGS."""
    out = tmp_path_factory.mktemp("datasets") / "reference"
    assert run(out) == 0
    return out


@pytest.fixture
def copy(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    return out


def test_manifest_and_shards(reference):
    m = read_manifest(str(reference))
    assert m["format"] == "neural-painters-strokes" and m["format_version"] == 1
    assert (m["program"], m["brush"], m["brush_path"], m["library"]) == ("raster", "raster:soft_round", "raster",
                                                                         "raster")
    assert m["layout"] == NAKANO.to_dict()
    assert (m["stroke_size"], m["shard_size"], m["count"], m["seed"], m["brush_seed"]) == (32, 16, N, 3, 0)
    assert m["complete"] and m["num_shards"] == 6
    assert [e["file"] for e in m["shards"]] == [f"shard_{i:05d}.npz" for i in range(6)]
    assert [e["count"] for e in m["shards"]] == SHARDS
    program = RasterProgram(32)
    for e in m["shards"]:
        path = os.path.join(reference, e["file"])
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == e["sha256"]
        assert os.path.getsize(path) == e["bytes"]
        with np.load(path) as z:  # a plain, uncompressed npz
            actions, strokes = z["actions"], z["strokes"]
        assert actions.dtype == np.float32 and actions.shape == (e["count"], 12)
        assert strokes.dtype == np.uint8 and strokes.shape == (e["count"], 32, 32, 4)
        # shard i is a pure function of (seed, i): actions from default_rng([seed, i]), strokes as rendered
        np.testing.assert_array_equal(actions, shard_actions(NAKANO, 3, e["index"], e["count"]))
        if e["index"] == 5:
            np.testing.assert_array_equal(strokes, program.render(actions))
        assert (strokes[..., :3] <= strokes[..., 3:]).all()  # premultiplied
    assert not shard_actions(NAKANO, 3, 0, 5).tolist() == shard_actions(NAKANO, 4, 0, 5).tolist()
    assert not shard_actions(NAKANO, 3, 0, 5).tolist() == shard_actions(NAKANO, 3, 1, 5).tolist()
    assert datasets.verify(str(reference)) == []
    assert main(["--verify", "--out", str(reference)]) == 0


def test_rerun_of_a_complete_dataset_changes_nothing(copy, reference, capsys):
    before = {f: os.stat(os.path.join(copy, f)).st_mtime_ns for f in files(copy)}
    assert run(copy) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {f: os.stat(os.path.join(copy, f)).st_mtime_ns for f in files(copy)} == before
    assert files(copy) == files(reference)


def test_interrupted_run_resumes_to_identical_content(reference, tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "neural_painters_training.datasets", *ARGS, "--out", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "shard_00000.npz"
    deadline = time.monotonic() + 120
    try:
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert first.exists(), err.decode()[-2000:]
    m = json.load(open(out / "manifest.json"))
    assert not m["complete"] and len(m["shards"]) < 6, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert run(out) == 0  # the same command again continues it
    assert files(out) == files(reference)  # shards and manifest byte-identical to the uninterrupted run
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_shard_written_but_not_recorded(copy, reference):
    """A kill between renaming a shard into place and rewriting the manifest: the shard is regenerated
    and kept only when byte-identical; a different file there is reported, not overwritten."""
    m = json.load(open(copy / "manifest.json"))
    m["shards"] = m["shards"][:4]
    m["complete"] = False
    (copy / "manifest.json").write_text(json.dumps(m))
    assert "not recorded" in " ".join(datasets.verify(str(copy)))
    assert run(copy) == 0
    assert files(copy) == files(reference)

    m["shards"] = m["shards"][:4]
    (copy / "manifest.json").write_text(json.dumps(m))
    bad = bytearray((copy / "shard_00005.npz").read_bytes())
    bad[-10] ^= 0xFF
    (copy / "shard_00005.npz").write_bytes(bytes(bad))
    with pytest.raises(DatasetError, match=r"shard_00005\.npz is not recorded .* delete it"):
        datasets.generate(str(copy), "raster", N, 16, 32, seed=3, progress=False)
    assert (copy / "shard_00005.npz").read_bytes() == bytes(bad)


def test_corrupt_shard_is_reported_never_used(copy, reference, capsys):
    path = copy / "shard_00002.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the strokes
    path.write_bytes(bytes(data))
    assert run(copy) == 2
    err = capsys.readouterr().err
    assert "shard_00002.npz" in err and "checksum" in err and "Delete it" in err
    assert path.read_bytes() == bytes(data)  # not overwritten
    assert main(["--verify", "--out", str(copy)]) == 1
    assert "shard_00002.npz" in capsys.readouterr().err
    with pytest.raises(DatasetError, match=r"shard_00002\.npz does not match its sha256"):
        StrokeShards(str(copy))
    lazy = StrokeShards(str(copy), verify="lazy")
    lazy.open(1)
    with pytest.raises(DatasetError, match=r"shard_00002\.npz"):
        lazy.open(2)
    with pytest.raises(DatasetError, match=r"shard_00002\.npz"):
        list(DataLoader(ShardStream(lazy, batch_size=8, split="all"), batch_size=None))
    # a truncated shard is caught by its size even without checksums
    path.write_bytes(bytes(data[:1000]))
    with pytest.raises(DatasetError, match=r"shard_00002\.npz has 1000 bytes"):
        StrokeShards(str(copy), verify="none")
    # deleting it, as the message says, and re-running regenerates it
    path.unlink()
    assert run(copy) == 0
    assert files(copy) == files(reference)


def test_foreign_dataset_is_reported(copy, reference, capsys, tmp_path):
    before = files(copy)
    assert main(["--brush", "raster", "--count", "93", "--shard-size", "16", "--size", "64", "--seed", "4",
                 "--quiet", "--out", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "already holds another stroke dataset" in err and "stroke_size: 32 there, 64 asked" in err
    assert "seed: 3 there, 4 asked" in err and "Use another --out" in err
    assert run(copy, "--shard-size", "20") == 2
    assert "shard_size" in capsys.readouterr().err
    assert files(copy) == before
    # shards without a manifest, or a damaged manifest, are not a dataset this code will touch
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(copy / "shard_00000.npz", bare)
    assert run(bare) == 2
    assert "no manifest.json" in capsys.readouterr().err
    (copy / "manifest.json").write_text("{not json")
    assert run(copy) == 2
    assert "not readable JSON" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="not a stroke dataset"):
        StrokeShards(str(tmp_path))


def test_count_may_grow_by_whole_shards(tmp_path, capsys):
    out = tmp_path / "grow"
    common = ["--brush", "raster", "--shard-size", "20", "--size", "32", "--quiet", "--out", str(out)]
    assert main(common + ["--count", "40"]) == 0
    assert main(common + ["--count", "50"]) == 0
    m = read_manifest(str(out))
    assert m["count"] == 50 and [e["count"] for e in m["shards"]] == [20, 20, 10] and m["complete"]
    assert main(common + ["--count", "60"]) == 2  # would change the 10-stroke shard
    assert "--count 50" in capsys.readouterr().err


def _rows(actions: torch.Tensor) -> list[bytes]:
    return [r.tobytes() for r in actions.numpy()]


def test_loader_yields_every_sample_once_across_two_workers(reference):
    data = StrokeShards(str(reference))
    assert len(data) == N and data.shards == list(range(6))
    all_a, all_s = load_all(str(reference))
    assert all_a.shape == (N, 12) and all_s.shape == (N, 4, 32, 32) and all_s.dtype == torch.float32
    by_action = {k: i for i, k in enumerate(_rows(all_a))}
    assert len(by_action) == N

    def epoch(stream, e):
        stream.set_epoch(e)
        batches = list(DataLoader(stream, batch_size=None, num_workers=2))
        a = torch.cat([b[0] for b in batches])
        s = torch.cat([b[1] for b in batches])
        assert all(len(b[0]) <= 16 for b in batches)
        return a, s

    stream = ShardStream(data, batch_size=16, split="all", seed=1, buffer_size=48)
    a0, s0 = epoch(stream, 0)
    order = [by_action[k] for k in _rows(a0)]
    assert sorted(order) == list(range(N))                          # every sample exactly once
    torch.testing.assert_close(s0, all_s[order], rtol=0, atol=0)   # each stroke with its own action
    assert s0.dtype == torch.float32 and 0 <= s0.min() and s0.max() <= 1
    assert order != sorted(order)                                   # shuffled
    a0b, _ = epoch(stream, 0)
    a1, _ = epoch(stream, 1)
    assert torch.equal(a0, a0b)                                     # the order is a function of (seed, epoch)
    assert sorted(_rows(a1)) == sorted(_rows(a0)) and not torch.equal(a0, a1)

    plain = ShardStream(data, batch_size=16, split="all", shuffle=False)
    a, _ = epoch(plain, 0)
    assert sorted(by_action[k] for k in _rows(a)) == list(range(N))


def test_loader_heldout_split_and_ranks(reference):
    data = StrokeShards(str(reference))
    all_a, all_s_u8 = load_all(data, strokes="uint8")
    assert all_s_u8.dtype == torch.uint8 and all_s_u8.shape == (N, 32, 32, 4)
    torch.testing.assert_close(strokes_to_float(all_s_u8), load_all(data)[1], rtol=0, atol=0)
    keys = _rows(all_a)
    held = set(keys[80:])  # the last shard: 13 strokes

    assert data.select("train", heldout=1) == [0, 1, 2, 3, 4] and data.select("heldout", heldout=1) == [5]
    train = ShardStream(data, batch_size=16, split="train", heldout=1)
    got = [k for a, _ in DataLoader(train, batch_size=None, num_workers=2) for k in _rows(a)]
    assert len(got) == 80 and set(got) == set(keys[:80])
    test = ShardStream(data, batch_size=None, split="heldout", heldout=1, shuffle=False)
    got = [k for a, _ in test for k in _rows(a[None])]
    assert got == keys[80:] and set(got) == held
    ha, hs = load_all(data, split="heldout", heldout=1)
    assert set(_rows(ha)) == held and hs.shape == (13, 4, 32, 32)
    np_a, np_s, manifest = load_arrays(str(reference), shards=[5])
    assert set(_rows(torch.from_numpy(np_a))) == held and np_s.dtype == np.uint8 and manifest["count"] == N
    with pytest.raises(DatasetError, match="hold out"):
        data.select("train", heldout=6)

    # DDP: two ranks, each with two workers, get disjoint halves of equal size (93 is odd: one is skipped)
    per_rank = []
    for rank in range(2):
        stream = ShardStream(data, batch_size=8, split="all", seed=2, rank=rank, world_size=2)
        assert stream.samples_per_epoch() == N // 2
        batches = list(DataLoader(stream, batch_size=None, num_workers=2))
        per_rank.append([k for a, _ in batches for k in _rows(a)])
        per_rank[-1].append(len(batches))
    r0, r1 = (p[:-1] for p in per_rank)
    n0, n1 = (p[-1] for p in per_rank)
    assert len(r0) == len(r1) == N // 2 and n0 == n1
    assert not set(r0) & set(r1) and len(set(r0) | set(r1)) == N - 1


def test_stream_advances_epochs_by_itself(reference):
    """Persistent workers never see set_epoch: each new pass in the same process is the next epoch."""
    stream = ShardStream(str(reference), batch_size=20, split="all", seed=0, buffer_size=40)
    first = torch.cat([a for a, _ in stream])
    second = torch.cat([a for a, _ in stream])
    assert not torch.equal(first, second)
    stream.set_epoch(0)
    assert torch.equal(torch.cat([a for a, _ in stream]), first)
    stream.set_epoch(1)
    assert torch.equal(torch.cat([a for a, _ in stream]), second)


def test_memory_mapped(reference):
    data = StrokeShards(str(reference))
    actions, strokes = data.open(0)
    assert isinstance(strokes, np.memmap) and not strokes.flags.writeable
    with np.load(os.path.join(reference, "shard_00000.npz")) as z:
        np.testing.assert_array_equal(strokes, z["strokes"])
        np.testing.assert_array_equal(actions, z["actions"])


@skip_no_mypaint
@pytest.mark.mypaint
def test_a_brush_that_paints_nothing_is_refused_before_a_dataset_of_blanks(tmp_path):
    """ramon/Pastel_1 leaves every pixel transparent on strokes whole in their tile (the recipe's data);
    an hour of training on blank strokes would follow without this."""
    from painter_models.brush.mypaint import brush_reach
    reach = brush_reach("ramon/Pastel_1")
    with pytest.raises(DatasetError, match=r"'ramon/Pastel_1' painted nothing at all in the first 40 strokes"):
        datasets.generate(str(tmp_path / "blank"), "ramon/Pastel_1", 40, 40, 64, progress=False,
                          log=lambda *a: None, reach=reach)


@skip_no_mypaint
@pytest.mark.mypaint
def test_dry_brush_dataset(tmp_path, dry_brush):
    out = tmp_path / "dry"
    assert main(["--brush", "classic/dry_brush", "--count", "48", "--shard-size", "24", "--size", "64",
                 "--workers", "2", "--seed", "0", "--quiet", "--out", str(out)]) == 0
    m = read_manifest(str(out))
    assert m["program"] == "mypaint" and m["brush"] == "classic/dry_brush"
    assert m["library"].startswith("libmypaint") and m["brush_path"].endswith("dry_brush.myb")
    assert len(m["brush_sha256"]) == 64 and m["complete"] and len(m["shards"]) == 2
    assert datasets.verify(str(out)) == []
    actions, strokes = StrokeShards(str(out)).load()
    np.testing.assert_array_equal(actions, np.concatenate([shard_actions(NAKANO, 0, i, 24) for i in range(2)]))
    np.testing.assert_array_equal(strokes, dry_brush.render(actions))  # same pixels as the program, deterministic
    assert (strokes[..., 3] > 0).any(axis=(1, 2)).mean() > 0.9
    # the same dataset asked with another brush seed is another dataset
    assert main(["--brush", "classic/dry_brush", "--count", "48", "--shard-size", "24", "--brush-seed", "1",
                 "--quiet", "--out", str(out)]) == 2
