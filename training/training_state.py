"""Resumable training state, and the stop requests that let a run end by writing it.

One safetensors file per stage (`state.safetensors`) with every tensor needed to continue exactly
(model weights and buffers, optimiser state, the global RNG states as uint8 tensors) and JSON
metadata (step, data position, elapsed wall time, optimiser hyper-parameters, arguments). It is
written to a temporary file, fsync'ed and renamed, so a SIGKILL at any moment leaves either the
previous or the new state, never a broken one. Training randomness that must be reproduced is drawn
from generators seeded by (seed, rank, step) (randomness.step_generator), and the data order is a
pure function of (seed, position), so a resumed run repeats the uninterrupted one.
"""
from __future__ import annotations

import json
import signal

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from painter_models.painter.checkpoint import save_tensors

from .distributed import unwrap

STATE_FILE = "state.safetensors"
STATE_FORMAT = "neural-painters-training-state"


def atomic_save(path: str, tensors: dict[str, torch.Tensor], metadata: dict):
    """safetensors file written atomically and synced (painter_models.painter.checkpoint.save_tensors)."""
    save_tensors(path, tensors, metadata)


def load_tensors(path: str, device="cpu") -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(path, framework="pt", device=str(device)) as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def optimizer_to_flat(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state dict as flat tensors plus JSON (param groups, scalar state)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.state.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict):
    state: dict = {}
    prefix = name + ".state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    for key, value in meta.get("scalars", {}).items():
        idx, field = key.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    out["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    return out


def restore_rng(tensors: dict, meta: dict):
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].cpu())
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"].cpu())
    if "rng.numpy" in tensors and "numpy_rng_pos" in meta:
        np.random.set_state(("MT19937", tensors["rng.numpy"].numpy().astype(np.uint32), meta["numpy_rng_pos"], 0, 0.0))


def save_state(path: str, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               info: dict):
    """Write the resumable state of a stage (rank 0 only)."""
    tensors, meta = {}, {"format": STATE_FORMAT, "format_version": 1, **info}
    for name, module in modules.items():
        for k, v in unwrap(module).state_dict().items():
            tensors[f"{name}.{k}"] = v
    opt_meta = {}
    for name, opt in optimizers.items():
        t, m = optimizer_to_flat("opt_" + name, opt)
        tensors.update(t)
        opt_meta[name] = m
    meta["optimizers"] = opt_meta
    tensors.update(rng_tensors())
    meta["numpy_rng_pos"] = int(np.random.get_state()[2])
    atomic_save(path, tensors, meta)


def load_state(path: str, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               device) -> dict:
    """Restore modules, optimisers and RNGs from a state file; returns its metadata."""
    tensors, meta = load_tensors(path)
    if meta.get("format") != STATE_FORMAT:
        raise SystemExit(f"{path} is not a training state file (format {meta.get('format')!r})")
    for name, module in modules.items():
        prefix = name + "."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        unwrap(module).load_state_dict(sd)
    for name, opt in optimizers.items():
        optimizer_from_flat("opt_" + name, opt, tensors, meta["optimizers"][name])  # moved to the params' device
    restore_rng(tensors, meta)
    return meta


# -- stop requests (SIGINT / SIGTERM save a checkpoint first) -------------------------------------
class StopFlag:
    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second ^C: stop at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
