"""Stroke datasets: many (action, stroke) pairs of one painting program, in checksummed shards.

Generate (console script, or ``python -m neural_painters_training.datasets``)::

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

The package, one job a module: ``format`` (the shard files and the manifest: names, plan,
actions, checksums, npz writing and mapping, checks), ``generation`` (generate, verify),
``reading`` (StrokeShards, ShardStream, load_all, load_arrays) and ``cli`` (the command line).
"""
from .cli import main
from .format import (FORMAT, FORMAT_VERSION, IDENTITY, LOCK, MANIFEST, SHARD_RE, DatasetError, map_npz,
                     read_manifest, sha256_file, shard_actions, shard_name, shard_plan, whole_strokes, write_npz)
from .generation import generate, verify
from .reading import ShardStream, StrokeShards, load_all, load_arrays, strokes_to_float

__all__ = ["FORMAT", "FORMAT_VERSION", "IDENTITY", "LOCK", "MANIFEST", "SHARD_RE", "DatasetError", "ShardStream",
           "StrokeShards", "generate", "load_all", "load_arrays", "main", "map_npz", "read_manifest", "sha256_file",
           "shard_actions", "shard_name", "shard_plan", "strokes_to_float", "verify", "whole_strokes", "write_npz"]
