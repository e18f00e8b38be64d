"""Training data for the scripts: stroke arrays in memory, a deterministic batch order, held-out sets.

The batch order is a pure function of (seed, position): position p is the p-th global batch,
sample k = p * batch + j belongs to epoch k // N and is item perm_epoch[k % N] of a permutation
seeded by (seed, epoch). Each rank takes its own slice of the global batch. So the only "data
position" a checkpoint needs is p, a resumed run sees exactly the batches the uninterrupted run
would have seen, and the order does not depend on the number of processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from painter_models.brush.actions import NAKANO, BrushReach, get_layout
from neural_painters_training.datasets import whole_strokes
from painter_models.brush.raster import make_program

from .training_state import atomic_save, load_tensors


@dataclass
class StrokeArrays:
    """actions float32 [N, D], strokes uint8 [N, S, S, 4] premultiplied RGBA, plus provenance."""
    actions: np.ndarray
    strokes: np.ndarray
    brush: str
    layout: object = NAKANO
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.actions)

    @property
    def size(self) -> int:
        return int(self.strokes.shape[1])


def joined(*sets: StrokeArrays) -> StrokeArrays:
    """One training set of several (the same brush and stroke size; provenance: the first's, without a reach)."""
    if len({(x.brush, x.size) for x in sets}) != 1:
        raise SystemExit("cannot train on stroke sets of different brushes or sizes together")
    return StrokeArrays(np.concatenate([x.actions for x in sets]), np.concatenate([x.strokes for x in sets]),
                        sets[0].brush, sets[0].layout, {**sets[0].info, "reach": None, "joined": len(sets)})


# -- small in-process stroke sets (held-out sets, tests) -------------------------------------------
def render_set(brush: str, n: int, size: int, seed: int, workers: int = 1, brush_seed: int = 0,
               actions: np.ndarray | None = None, reach: BrushReach | None = None) -> StrokeArrays:
    """Render n random actions (or the given ones) with a painting program ('raster' or a MyPaint preset);
    with the brush's reach, random strokes as a painter meets them, whole in their tile (datasets.whole_strokes)."""
    layout = NAKANO
    if actions is None:
        actions = layout.sample(n, seed=seed)
        if reach is not None:
            actions = whole_strokes(layout, actions, reach)
    program = make_program(brush, size, layout, brush_seed=brush_seed, workers=workers)
    try:
        strokes = program.render(actions)
    finally:
        program.close()
    return StrokeArrays(actions.astype(np.float32), strokes, brush, layout,
                        {"seed": seed, "brush_seed": brush_seed, "count": int(n),
                         "reach": None if reach is None else reach.to_dict()})


def save_set(path: str, data: StrokeArrays, extra: dict[str, np.ndarray] | None = None):
    tensors = {"actions": torch.from_numpy(data.actions), "strokes": torch.from_numpy(data.strokes)}
    for k, v in (extra or {}).items():
        tensors[k] = torch.from_numpy(v)
    atomic_save(path, tensors, {"brush": data.brush, "layout": get_layout(data.layout).to_dict(),
                                "info": data.info})


def load_set(path: str) -> tuple[StrokeArrays, dict[str, np.ndarray]]:
    tensors, meta = load_tensors(path)
    extra = {k: v.numpy() for k, v in tensors.items() if k not in ("actions", "strokes")}
    return StrokeArrays(tensors["actions"].numpy(), tensors["strokes"].numpy(), meta.get("brush", "?"),
                        get_layout(meta.get("layout", NAKANO.name)), meta.get("info", {})), extra


def heldout_set(path: str, brush: str, n: int, size: int, seed: int, workers: int = 1,
                ceiling: bool = True, reach: BrushReach | None = None) -> tuple[StrokeArrays, np.ndarray | None]:
    """The held-out strokes (fresh random actions, a seed the training data never uses; whole in their
    tile for a brush's reach, as the training data) and, for MyPaint brushes, the same actions rendered
    with brush_seed=1 (the repeatability ceiling). Cached in `path` (safetensors)."""
    want_reach = None if reach is None else reach.to_dict()
    if os.path.exists(path):
        data, extra = load_set(path)
        if (data.brush == brush and len(data) == n and data.size == size and data.info.get("seed") == seed
                and data.info.get("reach") == want_reach):
            return data, extra.get("strokes_seed1")
    data = render_set(brush, n, size, seed, workers, reach=reach)
    other = None
    if ceiling and not brush.startswith("raster"):
        other = render_set(brush, n, size, seed, workers, brush_seed=1, actions=data.actions).strokes
    save_set(path, data, {"strokes_seed1": other} if other is not None else None)
    return data, other


# -- training data -------------------------------------------------------------------------------
def load_training_data(path: str) -> StrokeArrays:
    """All strokes of a dataset folder (neural_painters_training.datasets shards) or a .safetensors stroke set."""
    if path.endswith(".safetensors"):
        return load_set(path)[0]
    from neural_painters_training import datasets  # the shard format belongs to the datasets module
    return datasets_to_arrays(datasets, path)


def datasets_to_arrays(datasets, path: str) -> StrokeArrays:
    loader = getattr(datasets, "load_arrays", None)
    if loader is None:
        raise SystemExit("neural_painters_training.datasets has no load_arrays(path); cannot read " + path)
    out = loader(path)
    if isinstance(out, StrokeArrays):
        return out
    actions, strokes, manifest = out
    return StrokeArrays(np.asarray(actions, np.float32), np.asarray(strokes), manifest.get("brush", "?"),
                        get_layout(manifest.get("layout", NAKANO.name)), manifest)


class BatchOrder:
    """Deterministic, shuffled, epoch-based batches by position (see module doc)."""

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1):
        if batch % world:
            raise SystemExit(f"--batch-size {batch} must be a multiple of the number of processes ({world})")
        if n < 1:
            raise SystemExit("the training set is empty")
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, position: int) -> np.ndarray:
        per = self.batch // self.world
        k = position * self.batch + self.rank * per + np.arange(per, dtype=np.int64)
        epochs, within = k // self.n, k % self.n
        out = np.empty(per, np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(int(e))[within[sel]]
        return out

    def epoch(self, position: int) -> float:
        return position * self.batch / self.n


class Batches:
    """(actions [B, D] float, strokes uint8 [B, S, S, 4]) tensors for a position, on a device."""

    def __init__(self, data: StrokeArrays, batch: int, seed: int, device, rank: int = 0, world: int = 1):
        self.data, self.device = data, device
        self.order = BatchOrder(len(data), batch, seed, rank, world)

    def get(self, position: int):
        idx = np.sort(self.order.indices(position))  # sorted reads are kinder to memory maps
        a = torch.from_numpy(self.data.actions[idx]).to(self.device, non_blocking=True)
        s = torch.from_numpy(np.ascontiguousarray(self.data.strokes[idx])).to(self.device, non_blocking=True)
        return a, s
