"""Objectives: pixel, feature, style and CLIP text losses, masks, combination, CLIP weight loading."""
import json
import os
import time

import numpy as np
import pytest
import torch

from painter_models.objectives.backbones import build_backbone
from painter_models.objectives.clip_loader import TINY_CLIP_CONFIG, ClipModel, ClipWeightsMissing, load_clip
from painter_models.objectives.clip_loss import ClipTextLoss, make_cutouts
from painter_models.objectives.image_ops import fit_to, gaussian_blur, srgb_to_oklab
from painter_models.objectives.losses import FEATURE_STRUCTURE_SCALE, FeatureLoss, PixelLoss, StyleLoss, WeightedLoss, combine
from painter_models.images import image_tensor, mask_tensor


@pytest.fixture(scope="module")
def photo():
    import skimage.data as skdata
    return fit_to(image_tensor(skdata.chelsea()), 96, 128)  # [1, 3, 96, 128]


@pytest.fixture(scope="module")
def effnet():
    return build_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip(TINY_CLIP_CONFIG, None, seed=0)


def _corrupt(x, level, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + level * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _half_mask(h, w):
    m = torch.zeros(h, w)
    m[:, : w // 2] = 1
    return m


def _loss_family(photo, effnet):
    return {
        "pixel_l1": PixelLoss(photo, "l1"),
        "pixel_l2_blur": PixelLoss(photo, "l2", blur_sigma=1.5),
        "feature_mse": FeatureLoss(photo, effnet),
        "feature_l1": FeatureLoss(photo, effnet, kind="l1"),
        "style": StyleLoss(photo, effnet),
    }


@pytest.mark.parametrize("which", ["pixel_l1", "pixel_l2_blur", "feature_mse", "feature_l1", "style"])
def test_zero_at_target_increasing_with_corruption_and_gradients(photo, effnet, which):
    loss = _loss_family(photo, effnet)[which]
    assert float(loss(photo.clone())) == pytest.approx(0.0, abs=1e-6)
    values = [float(loss(_corrupt(photo, lv))) for lv in (0.03, 0.1, 0.3)]
    assert values[0] > 0 and values[0] < values[1] < values[2], values
    canvas = _corrupt(photo, 0.1).requires_grad_(True)
    loss(canvas).backward()
    assert canvas.grad is not None and torch.isfinite(canvas.grad).all() and canvas.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_target_fitted_to_any_canvas_size(photo, effnet):
    # same content rendered at another size (and aspect: cover + centre crop) is still ~zero loss
    for loss in (PixelLoss(photo), FeatureLoss(photo, effnet)):
        for h, w in [(64, 85), (150, 200), (80, 80)]:
            canvas = fit_to(photo, h, w)
            assert float(loss(canvas)) == pytest.approx(0.0, abs=1e-6)
            assert float(loss(torch.full_like(canvas, 0.5))) > 1e-3
    wide = fit_to(photo, 50, 150)
    assert wide.shape[-2:] == (50, 150)


def test_pixel_blur_forgives_fine_noise(photo):
    noisy = _corrupt(photo, 0.2)
    sharp, blurred = PixelLoss(photo, "l2"), PixelLoss(photo, "l2", blur_sigma=2.0)
    assert float(blurred(noisy)) < 0.25 * float(sharp(noisy))
    x = torch.rand(1, 3, 20, 30)
    assert torch.allclose(gaussian_blur(x, 1.0).mean(), x.mean(), atol=0.02)
    assert gaussian_blur(x, 1.0).shape == x.shape and torch.equal(gaussian_blur(x, 0), x)


@pytest.mark.parametrize("which", ["pixel_l1", "feature_mse", "style"])
def test_mask_restricts_gradient_to_region(photo, effnet, which):
    h, w = photo.shape[-2:]
    mask = _half_mask(h, w)
    cls = {"pixel_l1": lambda: PixelLoss(photo, mask=mask),
           "feature_mse": lambda: FeatureLoss(photo, effnet, mask=mask),
           "style": lambda: StyleLoss(photo, effnet, mask=mask[None, None])}[which]
    loss = cls()
    canvas = _corrupt(photo, 0.2).requires_grad_(True)
    loss(canvas).backward()
    g = canvas.grad.abs().sum(dim=(0, 1))
    assert float(g[:, w // 2:].sum()) == 0.0
    assert float(g[:, : w // 2].sum()) > 0


def test_pixel_mask_weights_pixels(photo):
    h, w = photo.shape[-2:]
    mask = _half_mask(h, w)
    canvas = photo.clone()
    canvas[..., w // 2:] = 0  # wrong only outside the mask
    assert float(PixelLoss(photo, mask=mask)(canvas)) == pytest.approx(0.0, abs=1e-7)
    canvas = photo.clone()
    canvas[..., : w // 2] = 0  # wrong only inside: weighted mean over the region = full-image error x2
    full = float(PixelLoss(photo)(canvas))
    assert float(PixelLoss(photo, mask=mask)(canvas)) == pytest.approx(2 * full, rel=1e-4)
    # masks at another resolution, numpy and PIL masks are fitted to the canvas
    from PIL import Image
    m_np = (np.asarray(_half_mask(2 * h, 2 * w)) * 255).astype(np.uint8)
    for m in (m_np, Image.fromarray(m_np), _half_mask(2 * h, 2 * w)[None]):
        assert float(PixelLoss(photo, mask=m)(canvas)) == pytest.approx(2 * full, rel=0.02)


def test_feature_mask_weights_feature_maps(photo, effnet):
    h, w = photo.shape[-2:]
    canvas = photo.clone()
    canvas[..., : w // 4] = 1.0  # damage the left quarter
    left, right = _half_mask(h, w), 1 - _half_mask(h, w)
    assert float(FeatureLoss(photo, effnet, mask=left)(canvas)) > 3 * float(FeatureLoss(photo, effnet, mask=right)(canvas))


def test_feature_layer_weights_and_backbones(photo, effnet, one_thread):
    canvas = _corrupt(photo, 0.1)
    full = FeatureLoss(photo, effnet)
    total = float(full(canvas))
    parts = {k: float(v) for k, v in full.last_layers.items()}
    assert set(parts) == set(effnet.layer_names)
    # per layer a relative error: equal weights summing to 1, times the structure scale, plus the colour term
    assert all(0.01 < v < 10 for v in parts.values()), parts
    structure = FEATURE_STRUCTURE_SCALE * sum(parts.values()) / len(parts)
    assert total == pytest.approx(structure + full.colour_weight * float(full.last_colour), rel=1e-5)
    only4 = FeatureLoss(photo, effnet, layer_weights={"stage4": 2.0}, colour_weight=0)
    assert float(only4(canvas)) == pytest.approx(FEATURE_STRUCTURE_SCALE * 2 * parts["stage4"], rel=1e-5)
    assert list(only4.last_layers) == ["stage4"] and only4.last_colour is None
    with pytest.raises(ValueError, match="unknown layers"):
        FeatureLoss(photo, effnet, layer_weights={"relu3_3": 1})
    with pytest.raises(ValueError, match="3 layer_weights for 5 layers"):
        FeatureLoss(photo, effnet, layer_weights=[1, 2, 3])
    with pytest.raises(ValueError, match="build it with those layers"):
        FeatureLoss(photo, effnet, layers=["stage1"])
    with pytest.raises(ValueError, match="kind"):
        FeatureLoss(photo, effnet, kind="cosine")
    with pytest.raises(ValueError, match="colour_weight"):
        FeatureLoss(photo, effnet, colour_weight=-1)
    # a backbone by name, with layers; VGG's raw activations are on another scale, its relative errors are not
    vgg = FeatureLoss(photo, build_backbone("vgg16", weights="random", layers=["relu1_2", "relu2_2"]),
                      layer_weights=[1.0, 0.5])
    assert float(vgg(photo)) == pytest.approx(0.0, abs=1e-7) and float(vgg(canvas)) > 0
    assert all(0.001 < float(v) < 10 for v in vgg.last_layers.values()), vgg.last_layers
    vgg_default = FeatureLoss(photo, build_backbone("vgg16", weights="random"))  # wiring only: no VGG weights here
    assert vgg_default.layer_weights == [1 / 3] * 3 and float(vgg_default(photo)) == pytest.approx(0.0, abs=1e-7)
    assert float(vgg_default(canvas)) > 0 and list(vgg_default.last_layers) == ["relu3_3", "relu4_3", "relu5_3"]
    by_name = FeatureLoss(photo, "efficientnet_lite0", layers=["stage2", "stage3"])
    assert by_name.backbone.layer_names == ["stage2", "stage3"] and float(by_name(canvas)) > 0


def test_srgb_to_oklab_reference_values_and_finite_gradient_at_black():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(4, 3, 1, 1)
    lab = srgb_to_oklab(rgb).flatten(1)
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.62796, 0.22486, 0.12585],
                             [0.45201, -0.03246, -0.31153]])  # Ottosson's published OKLab of white, black, red, blue
    assert torch.allclose(lab, expected, atol=2e-4), lab
    black = torch.zeros(1, 3, 2, 2, requires_grad=True)
    srgb_to_oklab(black).sum().backward()
    assert torch.isfinite(black.grad).all()


def _hue_rotated(x, degrees):
    """The same luma (YIQ's Y), chroma (I, Q) turned by `degrees`: the false colours of issue 15."""
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    y = torch.einsum("ij,bjhw->bihw", yiq, x)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    y = torch.stack([y[:, 0], c * y[:, 1] - s * y[:, 2], s * y[:, 1] + c * y[:, 2]], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(yiq), y).clamp(0, 1)


def test_feature_loss_costs_false_colours_more_than_a_blur(photo, effnet, one_thread):
    # image features barely see colour: alone they rank a hue rotation or greyscale below a 2 px blur, so
    # strokes trade colour for texture; the feature loss must rank them as a painter does
    loss = FeatureLoss(photo, effnet)
    blurred = float(loss(gaussian_blur(photo, 2.0)))
    for shifted in (_hue_rotated(photo, 45), photo.mean(1, keepdim=True).expand_as(photo)):
        assert float(loss(shifted)) > 1.5 * blurred


def _flat_cells_painting(photo, objective, cells=8, steps=40):
    """A painting that cannot copy the photograph: a cells x cells grid of flat colours, optimised with Adam
    from the photograph's cell means (the pixel L2 optimum)."""
    h, w = photo.shape[-2:]
    logits = torch.logit(torch.nn.functional.adaptive_avg_pool2d(photo, cells).clamp(0.02, 0.98)).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        canvas = torch.nn.functional.interpolate(torch.sigmoid(logits), size=(h, w), mode="nearest")
        opt.zero_grad()
        objective(canvas).backward()
        opt.step()
    return torch.nn.functional.interpolate(torch.sigmoid(logits.detach()), size=(h, w), mode="nearest")


def test_feature_loss_beside_pixel_loss_keeps_the_colours(photo, effnet, one_thread):
    # issue 15: pixel 1 + feature 1 (the example workflow) painted false colours because the feature term
    # outweighed the pixel term ~2000:1 in gradient: the cells' colours drifted to ~27 dB from the
    # photograph's (here ~42 dB)
    from painter_models.metrics import psnr
    square = fit_to(photo, 64, 64)
    painted = _flat_cells_painting(square, combine([(1.0, PixelLoss(square, "l2")), (1.0, FeatureLoss(square, effnet))]))
    cell_means = lambda x: torch.nn.functional.avg_pool2d(x, 8)  # noqa: E731 - what the pixel loss alone gets exactly
    assert float(psnr(cell_means(painted), cell_means(square))) > 34.0


def test_inputs_follow_one_layout_rule(photo):
    """Arrays and PIL images are channels-last, tensors channels-first: nothing guessed from sizes."""
    from PIL import Image
    arr = (photo[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    for img in (arr, Image.fromarray(arr), photo[0], photo, torch.from_numpy(arr).permute(2, 0, 1)):
        t = image_tensor(img)
        assert t.shape == (1, 3, 96, 128) and float((t - photo).abs().max()) < 1 / 255 + 1e-6
    assert image_tensor(arr[..., 0]).shape == (1, 3, 96, 128)
    assert image_tensor(torch.rand(3, 4, 3)).shape == (1, 3, 4, 3)   # a 4x3 image, whatever its sizes suggest
    with pytest.raises(ValueError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        image_tensor(photo.permute(0, 2, 3, 1))                     # ComfyUI's IMAGE layout: the nodes convert it
    with pytest.raises(ValueError, match="batch of 2"):
        image_tensor(torch.rand(2, 3, 8, 8))
    assert mask_tensor(torch.ones(1, 1, 5, 6)).shape == (1, 1, 5, 6)
    assert mask_tensor(np.full((5, 6), 255, np.uint8)).min() == 1.0
    with pytest.raises(ValueError, match="canvas"):
        PixelLoss(photo)(photo[0])
    with pytest.raises(ValueError, match="kind"):
        PixelLoss(photo, kind="huber")


def test_losses_follow_the_canvas_batch(photo, effnet):
    batch = torch.cat([photo, _corrupt(photo, 0.2)])
    for loss in (PixelLoss(photo), FeatureLoss(photo, effnet), StyleLoss(photo, effnet)):
        v = loss(batch)
        assert v.dim() == 0 and float(v) > 0


# ----------------------------------------------------------------------------------------------------
# CLIP


def test_clip_text_loss_runs_with_gradients_and_is_deterministic(tiny_clip):
    canvas = torch.rand(2, 3, 80, 120, requires_grad=True)
    loss = ClipTextLoss(tiny_clip, "a black sheep", cutouts=3, seed=7)
    v = loss(canvas)
    # 1 - cosine of the text's and each cutout's features, the cutouts drawn as the loss draws them
    gen = torch.Generator()
    gen.manual_seed(7)
    cuts = make_cutouts(canvas.detach(), 3, tiny_clip.image_size, gen, loss.cutout_scale, loss.perspective)
    with torch.no_grad():
        image, text = tiny_clip.encode_image(cuts), tiny_clip.encode_text(["a black sheep"])
    want = 1 - torch.nn.functional.cosine_similarity(image, text.expand_as(image)).mean()
    assert v.dim() == 0 and float(v.detach()) == pytest.approx(float(want), abs=1e-5)
    v.backward()
    assert canvas.grad.abs().sum() > 0 and all(p.grad is None for p in tiny_clip.parameters())
    again = ClipTextLoss(tiny_clip, "a black sheep", cutouts=3, seed=7)
    assert float(again(canvas).detach()) == pytest.approx(float(v.detach()), abs=1e-6)
    other = ClipTextLoss(tiny_clip, "a black sheep", cutouts=3, seed=8)
    assert float(other(canvas).detach()) != pytest.approx(float(v.detach()), abs=1e-6)
    assert loss.augment(canvas).shape == (6, 3, 64, 64)


def test_clip_cutouts_follow_clipdraw_augmentation(tiny_clip):
    loss = ClipTextLoss(tiny_clip, "x", cutouts=8, seed=0)
    white = torch.ones(1, 3, 64, 64)
    # perspective fills with white, crops rescale: a white canvas stays white
    assert torch.allclose(loss.augment(white), torch.ones(8, 3, 64, 64), atol=1e-5)
    black = torch.zeros(1, 3, 200, 200)
    cut = loss.augment(black)
    assert float(cut.mean()) > 0.0  # some white fill from the perspective warp shows in some cutouts
    assert float(cut.mean()) < 0.5


def test_clip_negative_prompts_add_weighted_cosine(tiny_clip):
    canvas = torch.rand(1, 3, 64, 64)
    pos = ClipTextLoss(tiny_clip, ["a cat", "a kitten"], seed=3)
    both = ClipTextLoss(tiny_clip, ["a cat", "a kitten"], negative_prompts=["a dog"], negative_weight=0.3, seed=3)
    neg_only = ClipTextLoss(tiny_clip, "a dog", seed=3)
    cos_neg = 1 - float(neg_only(canvas))
    assert float(both(canvas)) == pytest.approx(float(pos(canvas)) + 0.3 * cos_neg, abs=1e-5)


def test_clip_text_features_are_computed_once(tiny_clip, monkeypatch):
    loss = ClipTextLoss(tiny_clip, "a sheep", negative_prompts="a goat", seed=0)
    calls = []
    monkeypatch.setattr(tiny_clip, "encode_text", lambda *a, **k: calls.append(1))
    for _ in range(3):
        loss(torch.rand(1, 3, 64, 64))
    assert calls == []
    assert loss.text_features.shape == (1, 64) and loss.negative_features.shape == (1, 64)


@pytest.mark.parametrize("prompts,neg", [("", ()), ("   ", ()), ([], ()), (["ok", " "], ()), ("ok", ["\t"]),
                                         (None, ())])
def test_clip_prompt_validation(tiny_clip, prompts, neg):
    with pytest.raises(ValueError, match="prompt"):
        ClipTextLoss(tiny_clip, prompts, negative_prompts=neg)


def test_clip_mask_modes(tiny_clip):
    mask = _half_mask(64, 96)
    base = torch.rand(1, 3, 64, 96)
    comp = ClipTextLoss(tiny_clip, "a sheep", mask=mask, seed=1)
    changed = base.clone()
    changed[..., 48:] = torch.rand(1, 3, 64, 48)
    # composite onto white: what lies outside the mask does not matter at all
    assert float(comp(changed)) == pytest.approx(float(ClipTextLoss(tiny_clip, "a sheep", mask=mask, seed=1)(base)),
                                                 abs=1e-6)
    for mode in ("composite", "gradient"):
        canvas = base.clone().requires_grad_(True)
        ClipTextLoss(tiny_clip, "a sheep", mask=mask, seed=1, mask_mode=mode)(canvas).backward()
        g = canvas.grad.abs().sum(dim=(0, 1))
        assert float(g[:, 48:].sum()) == 0.0 and float(g[:, :48].sum()) > 0


# ----------------------------------------------------------------------------------------------------
# combination


def test_combine_weights_and_reports_terms(photo, effnet, tiny_clip):
    canvas = _corrupt(photo, 0.1).requires_grad_(True)
    feat, pix = FeatureLoss(photo, effnet), PixelLoss(photo)
    clip = ClipTextLoss(tiny_clip, "a cat", seed=0)
    total = combine([(1.0, feat), (0.5, pix), (0.25, clip), (0.0, PixelLoss(photo, "l2"))])
    v = total(canvas)
    f, p = float(feat(canvas).detach()), float(pix(canvas).detach())
    c = float(ClipTextLoss(tiny_clip, "a cat", seed=0)(canvas).detach())
    assert float(v.detach()) == pytest.approx(f + 0.5 * p + 0.25 * c, rel=1e-5)
    assert set(total.last_terms) == {"feature", "pixel", "clip"}  # the weight-0 term is skipped
    assert total.last_terms["pixel"] == pytest.approx(p, rel=1e-6)
    assert total.last_weighted["pixel"] == pytest.approx(0.5 * p, rel=1e-6)
    assert total.last_total == pytest.approx(float(v.detach()))
    v.backward()
    assert canvas.grad.abs().sum() > 0
    named = WeightedLoss({"content": (1.0, pix), "blurred": (2.0, PixelLoss(photo, blur_sigma=1))})
    named(canvas)
    assert set(named.last_terms) == {"content", "blurred"} and named["content"] is pix
    dup = combine([(1.0, PixelLoss(photo)), (1.0, PixelLoss(photo))])
    assert dup.names == ["pixel", "pixel_2"]
    with pytest.raises(ValueError):
        combine([])


# ----------------------------------------------------------------------------------------------------
# CLIP loading


def test_clip_weights_missing_offline_is_fast_and_helpful(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    comfy = tmp_path / "ComfyUI" / "models" / "clip"
    comfy.mkdir(parents=True)
    t = time.time()
    with pytest.raises(ClipWeightsMissing) as e:
        load_clip("ViT-B-32", "openai", search_dirs=[str(comfy)], cache_dir=str(tmp_path / "cache"))
    assert time.time() - t < 5
    msg = str(e.value)
    assert "--clip-weights PATH" in msg and "ViT-B-32-openai.safetensors" in msg and "models/clip" in msg
    assert str(comfy) in msg and "huggingface.co" in msg


def test_clip_weights_missing_when_hub_unreachable_is_fast(monkeypatch, tmp_path):
    import painter_models.objectives.clip_loader as cl
    monkeypatch.setattr(cl, "_offline", lambda: False)
    monkeypatch.setattr(cl, "_reachable", lambda host, port=443, timeout=3.0: False)
    t = time.time()
    with pytest.raises(ClipWeightsMissing, match="unreachable"):
        load_clip("ViT-B-32", "laion2b_s34b_b79k", cache_dir=str(tmp_path))
    assert time.time() - t < 5


def test_clip_download_failure_becomes_weights_missing(monkeypatch, tmp_path):
    import open_clip

    import painter_models.objectives.clip_loader as cl
    monkeypatch.setattr(cl, "_offline", lambda: False)
    monkeypatch.setattr(cl, "_reachable", lambda *a, **k: True)

    def boom(cfg, cache_dir=None):
        raise OSError("connection reset")
    monkeypatch.setattr(open_clip, "download_pretrained", boom)
    with pytest.raises(ClipWeightsMissing, match="download failed.*connection reset"):
        load_clip("ViT-B-32", "openai", cache_dir=str(tmp_path))


def test_clip_unknown_tag_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="laion2b_s34b_b79k"):
        load_clip("ViT-B-32", "no-such-tag")
    with pytest.raises(ClipWeightsMissing, match="no file at"):
        load_clip("ViT-B-32", str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_clip("ViT-Nope-99", None)


@pytest.fixture
def tiny_named(tmp_path):
    """Register TINY_CLIP_CONFIG as an open_clip model name and save random weights for it."""
    import open_clip
    from safetensors.torch import save_file
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "np-tiny-test.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(str(cfg_dir / "np-tiny-test.json"))
    torch.manual_seed(5)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    path = tmp_path / "np-tiny-test-mytag.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def test_clip_loads_local_checkpoint_and_finds_it_in_search_dirs(tiny_named, monkeypatch, tmp_path):
    import open_clip
    model, path = tiny_named
    clip = load_clip("np-tiny-test", str(path))
    assert isinstance(clip, ClipModel) and clip.source == str(path) and clip.image_size == (64, 64)
    assert torch.equal(clip.model.visual.conv1.weight, model.visual.conv1.weight)
    assert clip.encode_text(["a sheep"]).shape == (1, 64)
    # found by tag in a search folder (a fake pretrained tag for the tiny model)
    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda m, t: {"hf_hub": "org/np-tiny-test.mytag/",
                                                                       "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
                        if (m, t) == ("np-tiny-test", "mytag") else real(m, t))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = load_clip("np-tiny-test", "mytag", search_dirs=[str(tmp_path / "nothing"), str(path.parent)])
    assert found.source == str(path)
    assert torch.allclose(found.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))  # the tag's own normalisation
    assert torch.equal(found.model.visual.conv1.weight, model.visual.conv1.weight)


def test_clip_bad_checkpoint_gives_clear_error(tiny_named, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ClipWeightsMissing, match="could not load CLIP weights"):
        load_clip("np-tiny-test", str(bad))


def test_openai_files_get_quickgelu():
    from painter_models.objectives.clip_loader import _looks_openai, clip_file_candidates
    assert _looks_openai("/models/clip/ViT-B-32.pt", "ViT-B-32")
    assert _looks_openai("/hf/models--timm--vit_base_patch32_clip_224.openai/x.safetensors", "ViT-B-32")
    assert not _looks_openai("/models/clip/ViT-B-32-laion2b_s34b_b79k.safetensors", "ViT-B-32")
    names = clip_file_candidates("ViT-B/32", "openai")
    assert names[0] == "ViT-B-32-openai.safetensors" and "ViT-B-32.pt" in names
    assert os.path.join("vit_base_patch32_clip_224.openai", "open_clip_model.safetensors") in names
