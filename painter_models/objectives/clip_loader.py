"""CLIP models through open_clip, for text-to-paint: `load_clip(...) -> ClipModel`.

Where the weights come from (`pretrained=`)
  None / "random"     random weights (tests); `model_name` may also be a config dict (see TINY_CLIP_CONFIG).
  a file path         a local checkpoint (.safetensors / .pt / .pth / .bin) for `model_name`.
  a tag ("openai", "laion2b_s34b_b79k", ...)
                      (1) a file in one of `search_dirs` (e.g. ComfyUI/models/clip) named
                          `{model}-{tag}.safetensors` (or _ / .pt / .pth / .bin; OpenAI's own `ViT-B-32.pt`
                          for tag openai), or the Hugging Face repo folder open_clip uses
                          (`vit_base_patch32_clip_224.openai/open_clip_model.safetensors`);
                      (2) the Hugging Face cache / open_clip's URL cache (no network);
                      (3) a download through open_clip, unless offline ($HF_HUB_OFFLINE,
                          $NEURAL_PAINTERS_OFFLINE, download=False) or the hub is unreachable
                          (checked with a 3 s connection probe, so offline machines fail in seconds,
                          not after ~47 s of retries);
                      else `ClipWeightsMissing`, whose message says which file to put where.

QuickGELU: OpenAI's weights were trained with QuickGELU; open_clip's plain `ViT-B-32` config uses GELU.
Tags whose pretrained config says quick_gelu (all "openai" tags) get it forced, and so do local files
whose path contains "openai" or that are named like OpenAI's releases (`ViT-B-32.pt`). Override with
`quick_gelu=True/False`.
"""
from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlparse

import torch
import torch.nn as nn

__all__ = ["ClipModel", "ClipWeightsMissing", "PACK_CLIP_CONFIGS", "TINY_CLIP_CONFIG", "load_clip",
           "clip_file_candidates", "register_pack_configs"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_EXTS = (".safetensors", ".pt", ".pth", ".bin")
# open_clip configs that ship with the pack (np-tiny-rn-64: the shapes CLIP trained by training/tiny_clip.py)
PACK_CLIP_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shapes_clip")

# A 7 M parameter CLIP (6.3 M of it the token embedding) that builds in ~0.1 s: for tests only.
TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}


_pack_configs_registered = False


def register_pack_configs() -> None:
    """Make the pack's own open_clip model names known to open_clip (once per process)."""
    global _pack_configs_registered
    if not _pack_configs_registered:
        import open_clip
        open_clip.add_model_config(PACK_CLIP_CONFIGS)
        _pack_configs_registered = True


class ClipWeightsMissing(FileNotFoundError):
    """No CLIP checkpoint could be found or downloaded; the message says how to provide one."""


def _truthy(v: str | None) -> bool:
    return str(v or "").strip().lower() in ("1", "true", "yes", "on")


def _offline() -> bool:
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("NEURAL_PAINTERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    except ImportError:  # pragma: no cover
        return False


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """A quick TCP probe. Behind a proxy a direct probe says nothing, so assume reachable."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _clean_name(model_name: str) -> str:
    return str(model_name).strip().replace("/", "-")


def clip_file_candidates(model_name: str, tag: str) -> list[str]:
    """File names (relative to a search folder) looked for, in order, for model_name + tag."""
    import open_clip
    name = _clean_name(model_name)
    base = name[: -len("-quickgelu")] if name.endswith("-quickgelu") else name
    stems = []
    for n in dict.fromkeys([name, base]):
        stems += [f"{n}-{tag}", f"{n}_{tag}", f"{n}.{tag}"]
    if tag == "openai":
        stems += [base]  # OpenAI's own release file: ViT-B-32.pt
    names = [s + e for s in stems for e in _EXTS]
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    hub = cfg.get("hf_hub", "")
    if hub:
        repo = _hf_repo(hub)
        fname = "" if hub.endswith("/") else os.path.basename(hub)
        folder = os.path.basename(repo)
        for f in ([fname] if fname else []) + ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            names.append(os.path.join(folder, f))
        names += [folder + e for e in _EXTS]
    url = cfg.get("url", "")
    if url:
        names.append(os.path.basename(urlparse(url).path))
    return list(dict.fromkeys(names))


def _cached_file(cfg: dict, cache_dir: str | None) -> str | None:
    """The tag's checkpoint if it is already in the HF cache or open_clip's URL cache (no network)."""
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:  # pragma: no cover
            hf_hub_download = None
        if hf_hub_download is not None:
            model_id, filename = os.path.split(hub)
            files = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            if filename.endswith((".bin", ".pth")):
                files.insert(0, filename[:-4] + ".safetensors")
            for f in files:
                try:
                    return hf_hub_download(repo_id=model_id, filename=f, cache_dir=cache_dir, local_files_only=True)
                except Exception:  # noqa: BLE001 - not cached
                    pass
    url = cfg.get("url", "")
    if url:
        root = cache_dir or os.path.expanduser("~/.cache/clip")
        p = os.path.join(root, os.path.basename(urlparse(url).path))
        if os.path.isfile(p):
            return p
    return None


def _hf_repo(hub: str) -> str:
    """'org/repo/' -> 'org/repo'; 'org/repo/file.bin' -> 'org/repo'."""
    return hub.rstrip("/") if hub.endswith("/") else os.path.split(hub)[0]


def _missing_message(name: str, tag: str, looked: list[str], reason: str, cfg: dict) -> str:
    want = f"{name}-{tag}.safetensors" if tag else f"{name}.safetensors"
    src = []
    if cfg.get("hf_hub"):
        src.append(f"https://huggingface.co/{_hf_repo(cfg['hf_hub'])}")
    if cfg.get("url"):
        src.append(cfg["url"])
    lines = [f"CLIP weights for {name} ({tag or 'no tag'}) are not available ({reason}).",
             "Provide them in one of these ways:",
             f"  - pass a local checkpoint: --clip-weights PATH (a .safetensors/.pt/.bin file for {name});",
             f"  - put the checkpoint in ComfyUI/models/clip/ (or another searched folder) named {want}"
             + (f" (or OpenAI's {name.replace('-quickgelu', '')}.pt)" if tag == "openai" else "") + ";",
             "  - run once with internet access so open_clip downloads it into the Hugging Face cache.",
             ]
    if src:
        lines.append("Weights source: " + " or ".join(src))
    if looked:
        lines.append("Folders searched: " + ", ".join(looked))
    return "\n".join(lines)


def _looks_openai(path: str, model_name: str) -> bool:
    p = path.lower()
    base = _clean_name(model_name).replace("-quickgelu", "")
    return "openai" in p or os.path.basename(path) in (f"{base}.pt", f"{base.replace('-', '/')}.pt")


class ClipModel(nn.Module):
    """A frozen open_clip model plus its tokenizer and image normalisation.

    encode_text(list[str]) -> unit-norm features [N, D] (no grad);
    encode_image(images [B, 3, S, S] in 0..1, S = image_size) -> unit-norm features [B, D] (grad flows
    to the images, never to the parameters). Normalisation (the model's own mean/std) is applied inside.
    """

    def __init__(self, model: nn.Module, tokenizer, name: str, source: str,
                 mean=None, std=None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        visual = getattr(model, "visual", model)
        pp = getattr(visual, "preprocess_cfg", None) or {}
        size = pp.get("size", getattr(visual, "image_size", 224))
        if isinstance(size, (tuple, list)):
            size = tuple(int(s) for s in size)
        else:
            size = (int(size), int(size))
        self.image_size = size
        mean = mean or pp.get("mean") or getattr(visual, "image_mean", None) or OPENAI_MEAN
        std = std or pp.get("std") or getattr(visual, "image_std", None) or OPENAI_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @torch.no_grad()
    def encode_text(self, texts) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        tokens = self.tokenizer(list(texts)).to(self.device)
        f = self.model.encode_text(tokens).float()
        return f / f.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != self.image_size:
            raise ValueError(f"encode_image expects {self.image_size} images, got {tuple(images.shape[-2:])}")
        x = (images.float() - self.mean) / self.std
        dtype = next(self.model.parameters()).dtype
        f = self.model.encode_image(x.to(dtype)).float()
        return f / f.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, source={self.source!r}, image_size={self.image_size}"


def _tokenizer_for(model_name: str | None, context_length: int):
    import open_clip
    if model_name:
        try:
            return open_clip.get_tokenizer(model_name)
        except Exception:  # noqa: BLE001 - fall back to CLIP's BPE (ships in the wheel)
            pass
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer(context_length=context_length)


def _from_config(cfg: dict, device, seed: int | None) -> ClipModel:
    import open_clip
    if seed is not None:
        torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    ctx = int(cfg.get("text_cfg", {}).get("context_length", 77))
    return ClipModel(model, _tokenizer_for(None, ctx), "custom", "random").to(device)


def load_clip(model_name="ViT-B-32", pretrained: str | os.PathLike | None = "openai", device="cpu",
              search_dirs=(), *, cache_dir: str | None = None, download: bool | None = None,
              quick_gelu: bool | None = None, precision: str = "fp32", seed: int | None = None) -> ClipModel:
    """Load a frozen `ClipModel` (see the module docstring for the lookup order).

    model_name: an open_clip model name ("ViT-B-32", "ViT-B/32", "ViT-L-14", ...) or a config dict
    (random weights). pretrained: tag, file path, or None/"random". download: None = allowed unless
    offline. Raises ClipWeightsMissing (fast) when no weights can be had.
    """
    import open_clip
    if isinstance(model_name, dict):
        return _from_config(model_name, device, seed)
    register_pack_configs()
    name = _clean_name(model_name)
    if open_clip.get_model_config(name) is None:
        raise ValueError(f"unknown open_clip model {model_name!r}; e.g. ViT-B-32, ViT-B-16, ViT-L-14 "
                         f"(open_clip.list_models() has {len(open_clip.list_models())})")
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    tok = _tokenizer_for(name, 77)

    def build(path: str | None, qg: bool, pp: dict | None, source: str) -> ClipModel:
        return _create_model(name, tok, path, qg, pp, source, device, precision, seed)

    if pretrained in (None, "", "random", "none"):
        return build(None, bool(quick_gelu), None, "random")

    pretrained = str(pretrained)
    expanded = os.path.expanduser(pretrained)
    if os.path.isfile(expanded):
        qg = _looks_openai(expanded, name) if quick_gelu is None else quick_gelu
        return build(expanded, qg, None, expanded)
    if os.sep in pretrained or pretrained.endswith(_EXTS):
        raise ClipWeightsMissing(_missing_message(name, "", [], f"no file at {expanded}", {}))

    tag = pretrained
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(f"{tag!r} is neither a file nor a known pretrained tag for {name}; "
                         f"tags: {', '.join(tags) if tags else 'none (pass a checkpoint file)'}")
    qg = bool(cfg.get("quick_gelu", False)) if quick_gelu is None else quick_gelu
    pp = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    path, source = _tagged_weights(name, tag, cfg, search_dirs, cache_dir, download)
    return build(path, qg, pp, source)


def _create_model(name: str, tokenizer, path: str | None, quick_gelu: bool, preprocess: dict | None, source: str,
                  device, precision: str, seed: int | None) -> ClipModel:
    """open_clip's model `name` with the weights in `path` (None: random), frozen, as a ClipModel."""
    import open_clip
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = open_clip.create_model(name, pretrained=path, device=device, precision=precision,
                                       force_quick_gelu=quick_gelu and not name.endswith("-quickgelu"),
                                       force_preprocess_cfg=preprocess or None)
    except Exception as e:  # noqa: BLE001 - corrupt file, wrong architecture, unpicklable...
        raise ClipWeightsMissing(
            f"could not load CLIP weights for {name} from {path}: {type(e).__name__}: {str(e)[:400]}\n"
            "Check that the checkpoint matches the model name (--clip MODEL) and is a CLIP state dict.") from e
    return ClipModel(model, tokenizer, name, source).to(device)


def _tagged_weights(name: str, tag: str, cfg: dict, search_dirs, cache_dir: str | None,
                    download: bool | None) -> tuple[str, str]:
    """(file, source) of a pretrained tag's weights: in a searched folder, in the download cache, or
    downloaded where that is allowed and the host reachable; else ClipWeightsMissing saying how to
    provide them."""
    import open_clip
    looked = []
    for d in [str(d) for d in (search_dirs or ()) if d]:
        looked.append(d)
        for rel in clip_file_candidates(name, tag):
            p = os.path.join(d, rel)
            if os.path.isfile(p):
                return p, p

    cached = _cached_file(cfg, cache_dir)
    if cached:
        return cached, cached

    if download is None:
        download = not _offline()
    if not download:
        raise ClipWeightsMissing(_missing_message(name, tag, looked, "offline: no download attempted", cfg))
    host = "huggingface.co" if cfg.get("hf_hub") else urlparse(cfg.get("url", "")).hostname or "huggingface.co"
    if not _reachable(host):
        raise ClipWeightsMissing(_missing_message(name, tag, looked, f"{host} is unreachable", cfg))
    t0 = time.time()
    try:
        path = open_clip.download_pretrained(cfg, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001
        raise ClipWeightsMissing(_missing_message(
            name, tag, looked, f"download failed after {time.time() - t0:.0f} s: {type(e).__name__}: {str(e)[:200]}",
            cfg)) from e
    if not path or not os.path.isfile(path):
        raise ClipWeightsMissing(_missing_message(name, tag, looked, "download gave no file", cfg))
    return path, f"{tag} ({path})"
