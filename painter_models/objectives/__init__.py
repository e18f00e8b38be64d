"""What a painting is scored by: callables canvas [B, 3, H, W] -> scalar (stage 3).

Owns the image operations the losses share (image_ops.py), the pixel, feature and style losses and their
combination (losses.py), CLIP text guidance (clip_loss.py, clip_loader.py), ImageNet class guidance
(imagenet_loss.py) and the feature networks (backbones.py).
May import: the base modules, brush/ and painter/.
"""
