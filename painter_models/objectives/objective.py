"""The objective for painting a photograph, as the CLI and the benches build it."""
from __future__ import annotations

from .losses import FeatureLoss, PixelLoss, combine


def photo_objective(image, pixel: float = 1.0, feature: float = 0.0, backbone="efficientnet_lite0",
                    pixel_kind: str = "l2", blur_sigma: float = 0.0, mask=None):
    """Pixel distance to the photograph plus (optionally) a perceptual feature loss through `backbone`
    (a name or a built FeatureExtractor)."""
    terms = []
    if pixel:
        terms.append(("pixel", pixel, PixelLoss(image, kind=pixel_kind, blur_sigma=blur_sigma, mask=mask)))
    if feature:
        terms.append(("feature", feature, FeatureLoss(image, backbone=backbone, mask=mask)))
    if not terms:
        raise ValueError("a photograph's objective needs a positive pixel or feature weight")
    return combine(terms)


def photo_objectives(feature: float = 0.0):
    """objective_for(image) -> its photo_objective (pixel L2, plus `feature` x EfficientNet-Lite0 features), for
    one photograph after another (a clip's frames): the feature network is built once, on the images' device."""
    built = {}

    def objective_for(image):
        backbone = "efficientnet_lite0"
        if feature:
            from .backbones import build_backbone
            if image.device not in built:
                built[image.device] = build_backbone(backbone, device=image.device)
            backbone = built[image.device]
        return photo_objective(image, pixel=1.0, feature=feature, backbone=backbone).to(image.device)
    return objective_for
