"""Feature backbones: shapes, frozen, offline EfficientNet-Lite0 weights classify real photos, VGG weight lookup."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from painter_models.objectives.backbones import (BackboneWeightsError, BackboneWeightsMissing, FeatureExtractor,
                                      backbone_layer_names, build_backbone, build_efficientnet_classifier,
                                      vgg_weight_file_name)


@pytest.fixture
def no_vgg_anywhere(tmp_path, monkeypatch):
    """An empty torch hub cache, no $NEURAL_PAINTERS_WEIGHTS, and no download attempted."""
    hub = tmp_path / "hub"
    hub.mkdir()
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    monkeypatch.delenv("NEURAL_PAINTERS_WEIGHTS", raising=False)
    monkeypatch.setenv("NEURAL_PAINTERS_OFFLINE", "1")
    yield hub
    torch.hub.set_dir(old)


def _photo(name, size=224):
    import skimage.data as skdata
    x = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def test_efficientnet_default_layers_shapes_and_frozen():
    fx = build_backbone()
    assert isinstance(fx, FeatureExtractor)
    assert fx.layer_names == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert fx.channels == [16, 24, 40, 112, 320]
    assert len(fx.default_layer_weights) == 5 and all(w > 0 for w in fx.default_layer_weights)
    assert fx.weights_source.startswith("package:")
    assert not fx.training and all(not p.requires_grad for p in fx.parameters())
    fx.train()  # must stay in eval mode (batch norm statistics must not move)
    assert not fx.training and not any(m.training for m in fx.modules())
    x = torch.rand(2, 3, 96, 128, requires_grad=True)
    feats = fx(x)
    assert [tuple(f.shape) for f in feats] == [(2, 16, 48, 64), (2, 24, 24, 32), (2, 40, 12, 16),
                                               (2, 112, 6, 8), (2, 320, 3, 4)]
    sum(f.mean() for f in feats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in fx.parameters())


def test_truncation_after_deepest_layer_and_layer_selection():
    full = build_backbone(weights="random")
    shallow = build_backbone(weights="random", layers=["stage2"])
    assert sum(p.numel() for p in shallow.parameters()) < 0.05 * sum(p.numel() for p in full.parameters())
    assert [tuple(f.shape) for f in shallow(torch.rand(1, 3, 64, 64))] == [(1, 24, 16, 16)]
    assert build_backbone(weights="random", layers=[1, 3]).layer_names == ["stage2", "stage4"]
    with pytest.raises(ValueError, match="unknown layer"):
        build_backbone(weights="random", layers=["relu3_3"])
    with pytest.raises(ValueError, match="ordered"):
        build_backbone(weights="random", layers=["stage3", "stage1"])
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet50")


def test_efficientnet_features_match_the_full_network():
    """The truncated extractor gives the same stage outputs as the complete pretrained network."""
    fx = build_backbone(layers=["stage3"])
    full = build_efficientnet_classifier()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        h = full.bn1(full.conv_stem((x - fx.mean) / fx.std))
        for b in full.blocks[:3]:
            h = b(h)
        assert torch.allclose(fx(x)[0], h, atol=1e-5)


@pytest.mark.parametrize("photo,plausible", [
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat", "lynx", "Persian cat", "tiger", "kitten"}),
    ("coffee", {"espresso", "cup", "coffee mug", "eggnog", "cappuccino"}),
])
def test_pretrained_efficientnet_classifies_real_photographs(photo, plausible):
    from timm.data import ImageNetInfo
    model = build_efficientnet_classifier()
    x = (_photo(photo) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        p = model(x).softmax(-1)[0]
    top = ImageNetInfo().index_to_description(int(p.argmax()))
    assert any(name in top for name in plausible), top
    assert float(p.max()) > 0.3


def test_random_weights_are_not_the_pretrained_ones():
    a, b = build_backbone(weights="random", layers=["stage1"]), build_backbone(layers=["stage1"])
    assert not torch.equal(a.body[0].weight, b.body[0].weight)


@pytest.mark.parametrize("name,bn", [("vgg16", False), ("vgg16_bn", True)])
def test_vgg_layers_shapes_defaults(name, bn):
    names = backbone_layer_names(name)
    assert "relu1_2" in names and "relu5_3" in names and ("bn3_3" in names) == bn
    fx = build_backbone(name, weights="random")
    assert fx.layer_names == ["relu3_3", "relu4_3", "relu5_3"]
    assert fx.default_layer_weights == [5.0, 15.0, 2.0]
    assert fx.channels == [256, 512, 512]
    assert all(not p.requires_grad for p in fx.parameters()) and not fx.training
    feats = fx(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 512, 4, 4)]
    assert all(float(f.min()) >= 0 for f in feats)  # ReLU outputs
    # truncated after the deepest layer: relu2_2 needs only the first two blocks
    small = build_backbone(name, weights="random", layers=["relu1_2", "relu2_2"])
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in list(small.body)[-1:])
    assert sum(p.numel() for p in small.parameters()) < 300_000
    assert [f.shape[1] for f in small(torch.rand(1, 3, 32, 32))] == [64, 128]


def test_vgg_conv_tap_is_not_overwritten_by_relu():
    fx = build_backbone("vgg16", weights="random", layers=["conv1_2", "relu1_2"])
    conv, relu = fx(torch.rand(1, 3, 16, 16))
    assert float(conv.min()) < 0 and torch.equal(relu, conv.clamp_min(0))


def test_missing_vgg_weights_name_the_file_folder_and_url(no_vgg_anywhere, tmp_path):
    comfy = tmp_path / "ComfyUI" / "models" / "neural_painters"
    comfy.mkdir(parents=True)
    with pytest.raises(BackboneWeightsMissing) as e:
        build_backbone("vgg16", search_dirs=[str(comfy)])
    msg = str(e.value)
    assert "vgg16-397923af.pth" in msg and "https://download.pytorch.org/models/vgg16-397923af.pth" in msg
    assert "models/neural_painters" in msg and str(comfy) in msg
    assert os.path.join(str(no_vgg_anywhere), "checkpoints") in msg
    with pytest.raises(BackboneWeightsMissing, match="vgg16_bn-6c64b313.pth"):
        build_backbone("vgg16_bn")
    with pytest.raises(BackboneWeightsMissing, match="no file at"):
        build_backbone("vgg16", weights=str(tmp_path / "nope.pth"))


def test_missing_weights_when_download_fails(no_vgg_anywhere, monkeypatch):
    import painter_models.objectives.backbones as bb

    def fail(name, timeout=30.0):
        raise OSError("Name or service not known")
    monkeypatch.setattr(bb, "_download_vgg", fail)
    with pytest.raises(BackboneWeightsMissing, match="download failed.*Name or service not known"):
        build_backbone("vgg16", download=True)


def _random_vgg_file(path, name="vgg16", prefix="features."):
    """A random VGG state dict saved like torchvision's (features only: the classifier is 0.5 GB)."""
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(1)
    features = make_layers(cfgs["D"], batch_norm=name == "vgg16_bn")
    sd = {prefix + k: v for k, v in features.state_dict().items()}
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, str(path))
    return features


@pytest.mark.parametrize("fname,prefix", [("my_vgg.pth", "features."), ("my_vgg.safetensors", "features."),
                                          ("bare.pth", "")])
def test_vgg_loads_a_local_file(tmp_path, fname, prefix):
    path = tmp_path / fname
    features = _random_vgg_file(path, prefix=prefix)
    fx = build_backbone("vgg16", weights=str(path), layers=["relu1_1"])
    assert fx.weights_source == str(path)
    assert torch.equal(fx.body[0].weight, features[0].weight)


def test_vgg_found_in_search_dir_env_and_hub_cache(no_vgg_anywhere, tmp_path, monkeypatch):
    d = tmp_path / "models"
    d.mkdir()
    _random_vgg_file(d / vgg_weight_file_name("vgg16"))
    assert build_backbone("vgg16", search_dirs=[str(d)], layers=["relu1_1"]).weights_source.startswith(str(d))
    monkeypatch.setenv("NEURAL_PAINTERS_WEIGHTS", str(d))
    assert build_backbone("vgg16", layers=["relu1_1"]).weights_source.startswith(str(d))
    monkeypatch.delenv("NEURAL_PAINTERS_WEIGHTS")
    ckpt = no_vgg_anywhere / "checkpoints"
    ckpt.mkdir()
    _random_vgg_file(ckpt / "vgg16_bn-6c64b313.pth", name="vgg16_bn")
    assert build_backbone("vgg16_bn", layers=["relu1_1"]).weights_source.startswith(str(ckpt))


def test_bad_weights_file_gives_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="could not read backbone weights"):
        build_backbone("vgg16", weights=str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, str(wrong))
    with pytest.raises(BackboneWeightsError, match="not a torchvision vgg16 state dict"):
        build_backbone("vgg16", weights=str(wrong))
    bn = tmp_path / "plain_for_bn.pth"
    _random_vgg_file(bn)  # plain vgg16 weights given to vgg16_bn
    with pytest.raises(BackboneWeightsError, match="vgg16_bn"):
        build_backbone("vgg16_bn", weights=str(bn))
    with pytest.raises(BackboneWeightsError, match="efficientnet_lite0"):
        build_backbone("efficientnet_lite0", weights=str(wrong))
