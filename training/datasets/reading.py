"""Reading a stroke dataset: StrokeShards (a folder opened, shards memory-mapped), ShardStream
(shuffled batches for training, split across DDP ranks and DataLoader workers), load_all and
load_arrays (small sets in memory)."""
from __future__ import annotations

import math
import os
import zipfile

import numpy as np
import torch

from painter_models.brush.actions import get_layout
from .format import (DatasetError, check_arrays, check_shard_file, manifest_path, map_npz, read_manifest,
                     shard_name, shard_plan)

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
        self.path = os.path.dirname(manifest_path(path)) or "."
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
        problems = [p for e in self.entries.values() if (p := check_shard_file(self.path, e, deep=False))]
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
            problem = check_shard_file(self.path, self.entries[i])
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
            self._maps[index] = check_arrays(self.path, self.manifest, entry, arrays)
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

