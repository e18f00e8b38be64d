"""The one module of the pack that touches ComfyUI.

Inside a running ComfyUI it uses `folder_paths`, `comfy.utils.ProgressBar` and
`comfy.model_management`; anywhere else (pytest, scripts) it degrades to plain equivalents:
model folders from $NEURAL_PAINTERS_WEIGHTS, a tqdm progress bar, no-op interrupts (plus a flag
tests can raise), and CUDA / MPS / CPU device detection. Every other node module imports ComfyUI
only through here, so the pack imports cleanly with no ComfyUI present.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

import torch

from ..painter_models import images

# -------------------------------------------------------------------------------------------------
# Is ComfyUI here? It is when its modules are already imported by a running server (the pack is
# loaded by main.py after folder_paths and comfy.model_management). Importing them ourselves outside
# a server could pick an unrelated module or fail on a CPU-only machine, so we only look them up.
# -------------------------------------------------------------------------------------------------


def _comfy_modules():
    fp = sys.modules.get("folder_paths")
    mm = sys.modules.get("comfy.model_management")
    if fp is None or mm is None or not hasattr(fp, "folder_names_and_paths"):
        return None, None, None
    try:
        import comfy.utils as cu
    except Exception:  # pragma: no cover - a broken ComfyUI: behave as if absent
        return None, None, None
    return fp, mm, cu


folder_paths, model_management, comfy_utils = _comfy_modules()
IN_COMFYUI = folder_paths is not None

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_PREFIX = "shipped/"

# model folders of the pack: ComfyUI folder name -> (sub folder of models/, accepted extensions)
MODEL_FOLDERS = {
    "neural_painters": ("neural_painters", {".safetensors"}),
    # open_clip checkpoints; ComfyUI maps the legacy name "clip" to "text_encoders" (models/clip is in it),
    # which also holds Stable Diffusion's text encoders: the CLIP loader lists only open_clip files from it
    "clip": ("clip", {".safetensors", ".pt", ".pth", ".bin"}),
    # the pack's own folder for open_clip checkpoints in any format (.pt files cannot be checked unopened)
    "open_clip": ("open_clip", {".safetensors", ".pt", ".pth", ".bin"}),
    "vgg": ("vgg", {".safetensors", ".pt", ".pth"}),
    # stroke predictors (neural-painters-train predictor), for Predict Strokes
    "stroke_predictors": ("stroke_predictors", {".safetensors"}),
}
ENV_WEIGHTS = "NEURAL_PAINTERS_WEIGHTS"


def register_model_folders():
    """Add the pack's model folders to ComfyUI: extend, never overwrite (extra_model_paths.yaml has
    already been applied and may have registered paths for these names). Idempotent."""
    if not IN_COMFYUI:
        return
    for name, (sub, exts) in MODEL_FOLDERS.items():
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, sub))
        key = folder_paths.map_legacy(name) if hasattr(folder_paths, "map_legacy") else name
        paths, old_exts = folder_paths.folder_names_and_paths[key]
        merged = set(old_exts) | exts if old_exts else set(exts)
        folder_paths.folder_names_and_paths[key] = (paths, merged)


EXAMPLE_INPUTS_DIR = os.path.join(PACK_DIR, "example_workflows", "input")


def install_example_inputs() -> list[str]:
    """Copy the example workflows' images and clip into ComfyUI's input folder so the examples run as shipped
    (Load Image lists only that folder). Never overwrites a file; returns the names copied."""
    if not IN_COMFYUI or not os.path.isdir(EXAMPLE_INPUTS_DIR):
        return []
    import shutil
    copied = []
    target_dir = folder_paths.get_input_directory()
    for name in sorted(os.listdir(EXAMPLE_INPUTS_DIR)):
        source = os.path.join(EXAMPLE_INPUTS_DIR, name)
        target = os.path.join(target_dir, name)
        if not name.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".mp4")) or os.path.exists(target):
            continue
        try:
            os.makedirs(target_dir, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(name)
        except OSError:  # a read-only input folder: the examples then need the user to pick an image
            pass
    return copied


def model_dirs(kind: str) -> list[str]:
    """Folders searched for a model kind ("neural_painters", "clip", "vgg", ...), in order."""
    if kind not in MODEL_FOLDERS:
        raise KeyError(f"unknown model folder {kind!r}; known: {sorted(MODEL_FOLDERS)}")
    dirs = []
    if IN_COMFYUI:
        dirs += list(folder_paths.get_folder_paths(kind))
    for d in os.environ.get(ENV_WEIGHTS, "").split(os.pathsep):
        if d:  # a folder laid out like ComfyUI's models/ (with a neural_painters/ sub folder), or a flat one
            sub = os.path.join(d, MODEL_FOLDERS[kind][0])
            if os.path.isdir(sub):
                dirs.append(sub)
            elif not any(os.path.isdir(os.path.join(d, s)) for s, _ in MODEL_FOLDERS.values()):
                dirs.append(d)
    return dirs


def list_models(kind: str) -> list[str]:
    """File names (relative to their folder) of one model kind, like folder_paths.get_filename_list."""
    if IN_COMFYUI:
        return list(folder_paths.get_filename_list(kind))
    exts = MODEL_FOLDERS[kind][1]
    names = set()
    for d in model_dirs(kind):
        if not os.path.isdir(d):
            continue
        for root, _, files in os.walk(d, followlinks=True):
            for f in files:
                if os.path.splitext(f)[1].lower() in exts:
                    names.add(os.path.relpath(os.path.join(root, f), d).replace(os.sep, "/"))
    return sorted(names)


def model_path(kind: str, name: str) -> str | None:
    """Full path of a listed model file, or None (also for a name that leads out of its folder:
    `..`, an absolute name). Links the server's owner put in a model folder are followed, as
    ComfyUI does."""
    if IN_COMFYUI:
        return folder_paths.get_full_path(kind, name)
    for d in model_dirs(kind):
        p = inside(d, name, links_may_leave=True)
        if p is not None and os.path.isfile(p):
            return p
    return None


def inside(folder: str, name: str, links_may_leave: bool = False) -> str | None:
    """The path of `name` within `folder`, or None when it leads out of the folder: through `..` or
    an absolute name, and (unless links_may_leave) through a symbolic link to elsewhere. Existence
    is not checked, so callers can refuse a name without telling whether anything exists outside."""
    resolve = os.path.abspath if links_may_leave else os.path.realpath
    base = resolve(folder)
    path = resolve(os.path.join(base, name))
    return path if os.path.commonpath([path, base]) == base else None


def models_root() -> str:
    """Where a user puts model files (ComfyUI's models/ folder, or a hint outside ComfyUI)."""
    if IN_COMFYUI:
        return folder_paths.models_dir
    return os.environ.get(ENV_WEIGHTS, "").split(os.pathsep)[0] or "ComfyUI/models"


def output_dir() -> str:
    return folder_paths.get_output_directory() if IN_COMFYUI else os.path.abspath("output")


def input_dir() -> str:
    return folder_paths.get_input_directory() if IN_COMFYUI else os.path.abspath("input")


def temp_dir() -> str:
    return folder_paths.get_temp_directory() if IN_COMFYUI else os.path.abspath("temp")


FOLDER_TAGS = ("input", "output", "temp")


def _folder(kind: str) -> str:
    return {"input": input_dir, "output": output_dir, "temp": temp_dir}[kind]()


def list_files(exts: tuple[str, ...], kinds=("input", "output")) -> list[str]:
    """Files with these extensions in ComfyUI's input folder (plain names) and the other folders
    (annotated like ComfyUI does: "name.json [output]"), sub folders included."""
    out = []
    for kind in kinds:
        base = _folder(kind)
        if not os.path.isdir(base):
            continue
        found = []
        for root, _, files in os.walk(base):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), base)
                if f.lower().endswith(exts) and not f.startswith(".") and inside(base, rel) is not None:
                    found.append(rel.replace(os.sep, "/"))
        out += [n if kind == "input" else f"{n} [{kind}]" for n in sorted(found)]
    return out


def resolve_file(name: str) -> str:
    """The path of a list_files() value ("a.json", "sub/a.json [output]"); refuses names that lead
    out of the folder, through `..` or a symbolic link, with the same message whatever is there."""
    kind = "input"
    for tag in FOLDER_TAGS:
        if name.endswith(f" [{tag}]"):
            kind, name = tag, name[: -len(tag) - 3]
            break
    path = inside(_folder(kind), name)
    if path is None:
        raise ValueError(f"{name!r} is not a file in ComfyUI's {kind} folder: pick a file from the list")
    return path


def save_path(filename_prefix: str, kind: str = "output") -> tuple[str, str, str]:
    """(folder, file stem with a counter, subfolder) for a new output file, like ComfyUI's Save Image:
    prefix "paintings/np" -> <output>/paintings/np_00001_. Refuses prefixes that leave the folder."""
    base = output_dir() if kind == "output" else temp_dir()
    prefix = (filename_prefix or "neural_painters").replace("\\", "/")
    sub, stem = os.path.split(prefix)
    folder = inside(base, sub)
    if folder is None:
        raise ValueError(f"filename_prefix {filename_prefix!r} points outside the {kind} folder: use a name like "
                         f"'paintings/strokes' (sub folders allowed)")
    os.makedirs(folder, exist_ok=True)
    taken = [f for f in os.listdir(folder) if f.startswith(stem + "_")]
    counter = 1
    for f in taken:
        digits = f[len(stem) + 1:].split("_")[0].split(".")[0]
        if digits.isdigit():
            counter = max(counter, int(digits) + 1)
    return folder, f"{stem}_{counter:05d}_", sub


# -------------------------------------------------------------------------------------------------
# devices and memory
# -------------------------------------------------------------------------------------------------
def compute_device() -> torch.device:
    """ComfyUI's torch device; outside ComfyUI $NEURAL_PAINTERS_DEVICE, else CUDA, MPS or CPU."""
    if IN_COMFYUI:
        return model_management.get_torch_device()
    env = os.environ.get("NEURAL_PAINTERS_DEVICE")
    if env:
        return torch.device(env)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where results handed to other nodes live (ComfyUI: CPU unless --gpu-only)."""
    if IN_COMFYUI:
        return model_management.intermediate_device()
    return torch.device("cpu")


def soft_empty_cache():
    if IN_COMFYUI:
        model_management.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


def storage_device() -> torch.device:
    """Where the pack's models (painters, CLIP, feature networks) wait between runs: ComfyUI's offload
    device (the CPU, unless ComfyUI runs with --highvram / --gpu-only), so they hold no VRAM that
    ComfyUI's own models need; outside ComfyUI, the compute device."""
    if IN_COMFYUI:
        return model_management.unet_offload_device()
    return compute_device()


WORKING_MEMORY = 512 << 20    # bytes for activations and canvases besides the models' own weights


@contextmanager
def on_compute_device(*models, working_memory: int = WORKING_MEMORY):
    """Run with `models` (nn.Modules, NeuralPainters; None is skipped) on the compute device, yielding it.
    Inside ComfyUI its memory manager first frees room for them (unloading its own models as it would for
    another of them, e.g. an SDXL checkpoint on a 24 GB card), and afterwards they go back to
    storage_device() and the cache is emptied; outside ComfyUI they stay where they are."""
    models = [m for m in models if hasattr(m, "to")]      # a loss may be a plain function
    if not IN_COMFYUI:
        yield compute_device()
        return
    device = model_management.get_torch_device()
    modules = [getattr(m, "generator", m) for m in models]
    need = sum(model_management.module_size(m) for m in modules if isinstance(m, torch.nn.Module))
    model_management.free_memory(need + working_memory, device)
    for m in models:
        m.to(device)
    try:
        yield device
    finally:
        store = storage_device()
        for m in models:
            m.to(store)
        model_management.soft_empty_cache()


# -------------------------------------------------------------------------------------------------
# interruption
# -------------------------------------------------------------------------------------------------
class Interrupted(Exception):
    """Raised outside ComfyUI when request_interrupt() was called (ComfyUI raises its own)."""


_interrupt = threading.Event()


def request_interrupt():
    """Ask the running node to stop (outside ComfyUI; inside it, the user's Cancel does this)."""
    _interrupt.set()


def interrupted() -> bool:
    if IN_COMFYUI:
        return model_management.processing_interrupted()
    return _interrupt.is_set()


def check_interrupt():
    """Raise ComfyUI's InterruptProcessingException after Cancel (or Interrupted outside ComfyUI)."""
    if IN_COMFYUI:
        model_management.throw_exception_if_processing_interrupted()
    elif _interrupt.is_set():
        _interrupt.clear()
        raise Interrupted("interrupted")


def is_interrupt(exc: BaseException) -> bool:
    """Whether an exception is an interruption (never wrap those in user-facing errors)."""
    if isinstance(exc, Interrupted):
        return True
    if IN_COMFYUI:
        return isinstance(exc, model_management.InterruptProcessingException)
    return False


# -------------------------------------------------------------------------------------------------
# progress with live preview
# -------------------------------------------------------------------------------------------------
def to_pil(image):
    """A PIL image from the core's image tensor ([1, 3, H, W] / [3, H, W] in 0..1)."""
    from PIL import Image
    return Image.fromarray(images.to_uint8(images.to_hwc(image)))


class Progress:
    """ComfyUI's progress bar (with a live JPEG preview in the node) or a tqdm bar outside ComfyUI.

    update(value, preview=None): absolute progress; `preview` is an image tensor (or a callable
    returning one, called only when a preview is due). Previews are throttled to one per
    `preview_interval` seconds, since each is a JPEG encode and a websocket message. Every update is
    also an interrupt point."""

    def __init__(self, total: int, desc: str = "neural painters", preview_interval: float = 0.5,
                 preview_size: int = 512):
        self.total = max(1, int(total))
        self.preview_interval, self.preview_size = preview_interval, preview_size
        self._last_preview = -1e9
        self.previews = 0
        if IN_COMFYUI:
            self._bar = comfy_utils.ProgressBar(self.total)
            self._tqdm = None
        else:
            self._bar = None
            try:
                from tqdm.auto import tqdm
                self._tqdm = tqdm(total=self.total, desc=desc, leave=False,
                                  disable=os.environ.get("TQDM_DISABLE") == "1")
            except ImportError:  # pragma: no cover
                self._tqdm = None
        self.value = 0

    def preview_due(self) -> bool:
        return time.monotonic() - self._last_preview >= self.preview_interval

    def update(self, value: int, preview=None):
        value = min(int(value), self.total)
        image = None
        if preview is not None and self.preview_due():
            image = preview() if callable(preview) else preview
            self._last_preview = time.monotonic()
            self.previews += 1
        if self._bar is not None:
            payload = ("JPEG", to_pil(image), self.preview_size) if image is not None else None
            self._bar.update_absolute(value, self.total, payload)  # also raises on Cancel
        else:
            if self._tqdm is not None:
                self._tqdm.update(value - self.value)
            check_interrupt()
        self.value = value

    def close(self):
        if self._tqdm is not None:
            self._tqdm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
